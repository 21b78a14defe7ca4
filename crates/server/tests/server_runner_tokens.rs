//! Per-runner tokens for `/rpc/v1`, on SQLite and PostgreSQL: site admins register runners and
//! see when each last called in; a runner claims with its own token and gets the job with the
//! build's secrets (organisation ones included); a revoked token is refused; a site admin's API
//! token still works (compatibility) and another user's does not.

mod common;
mod people_support;

use common::*;
use people_support::*;
use serde_json::{Value, json};

fn claim_body(wait_secs: u64) -> Value {
    json!({"name": "far-away", "os": std::env::consts::OS, "arch": skiff_arch(),
           "kinds": ["exec"], "labels": "", "wait_secs": wait_secs})
}

/// The architecture name stages are planned with (Drone's: amd64, arm64).
fn skiff_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_tokens_claim_until_revoked() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let mut cfg = config(&data);
        cfg.runner = false;
        let server = Server::start(cfg, store).await;
        let api = Api::new(&server.url);
        let admin = api.login("admin", ADMIN_PASSWORD).await;
        let bob = api.user(&admin, "bob", "bob-password").await;

        let (status, _) = api
            .post(&bob, "/api/v1/runners", json!({"name": "r1"}))
            .await;
        assert_eq!(status, 403, "only site admins register runners");
        let (status, made) = api
            .post(&admin, "/api/v1/runners", json!({"name": "r1"}))
            .await;
        assert_eq!(status, 201, "{made}");
        let token = made["token"].as_str().expect("token").to_string();
        assert!(token.starts_with("skr_"), "{token}");
        let (status, _) = api
            .post(&admin, "/api/v1/runners", json!({"name": "r1"}))
            .await;
        assert_eq!(status, 409);
        let (status, list) = api.get(&admin, "/api/v1/runners").await;
        assert_eq!(status, 200);
        assert_eq!(list[0]["name"], "r1");
        assert_eq!(list[0]["last_seen"], 0, "never called in yet");
        assert!(
            !list.to_string().contains(&token),
            "the token is shown once"
        );
        let runner = As::Token(token.clone());

        // Nothing queued: 204, and the runner was seen.
        let (status, body) = api.post(&runner, "/rpc/v1/claim", claim_body(0)).await;
        assert_eq!(status, 204, "{body}");
        let (_, list) = api.get(&admin, "/api/v1/runners").await;
        assert!(list[0]["last_seen"].as_i64().expect("ms") > 0, "{list}");
        // A runner token is not an API token.
        let (status, _) = api.get(&runner, "/api/v1/user").await;
        assert_eq!(status, 401);
        // Another user's API token does not run builds; a site admin's still does.
        let (status, body) = api.post(&bob, "/rpc/v1/claim", claim_body(0)).await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = api.post(&admin, "/rpc/v1/claim", claim_body(0)).await;
        assert_eq!(status, 204);
        let (status, _) = api
            .post(&As::Anonymous, "/rpc/v1/claim", claim_body(0))
            .await;
        assert_eq!(status, 401);

        // A queued build: the runner's claim gets the job with the build's secrets.
        let origin = GitRepo::new(dir.path());
        origin.commit(
            "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands:\n  - true\n",
            "init",
        );
        let (status, _) = api
            .post(
                &admin,
                "/api/v1/repos",
                json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy()}),
            )
            .await;
        assert_eq!(status, 201);
        for (path, name, value) in [
            ("/api/v1/orgs/acme/secrets", "registry", "org-registry"),
            ("/api/v1/orgs/acme/secrets", "deploy", "org-deploy"),
            ("/api/v1/repos/acme/app/secrets", "deploy", "repo-deploy"),
        ] {
            let (status, _) = api
                .post(&admin, path, json!({"name": name, "value": value}))
                .await;
            assert_eq!(status, 204);
        }
        let (status, _) = api
            .post(
                &admin,
                "/api/v1/repos/acme/app/builds",
                json!({"branch": "main"}),
            )
            .await;
        assert_eq!(status, 201);
        let (status, job) = api.post(&runner, "/rpc/v1/claim", claim_body(5)).await;
        assert_eq!(status, 200, "{job}");
        assert_eq!(
            job["secrets"],
            json!({"deploy": "repo-deploy", "registry": "org-registry"})
        );
        let lease = json!({"lease_token": job["lease_token"]});
        let stage = job["stage"]["id"].as_i64().expect("stage id");
        let (status, body) = api
            .post(
                &runner,
                &format!("/rpc/v1/stages/{stage}/heartbeat"),
                lease.clone(),
            )
            .await;
        assert_eq!((status, body["state"].as_str()), (200, Some("held")));

        // Revoked: refused, even mid-stage.
        let (status, _) = api.delete(&bob, "/api/v1/runners/r1").await;
        assert_eq!(status, 403);
        let (status, _) = api.delete(&admin, "/api/v1/runners/r1").await;
        assert_eq!(status, 204);
        let (status, _) = api.delete(&admin, "/api/v1/runners/r1").await;
        assert_eq!(status, 404);
        let (status, body) = api.post(&runner, "/rpc/v1/claim", claim_body(0)).await;
        assert_eq!(status, 401, "{body}");
        let (status, _) = api
            .post(&runner, &format!("/rpc/v1/stages/{stage}/heartbeat"), lease)
            .await;
        assert_eq!(status, 401);
        let (_, list) = api.get(&admin, "/api/v1/runners").await;
        assert_eq!(list, json!([]));
        server.stop().await;
    }
}
