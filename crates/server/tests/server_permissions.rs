//! Repository permissions over the real HTTP API, on SQLite and PostgreSQL: the owner and the
//! member roles `read`, `write` and `admin` allow and deny each kind of action; visibility
//! decides what anonymous and other logged-in callers see; a private repository is a 404 to
//! those who may not read it. The in-process runner is off, so builds stay pending and every
//! answer is decided by the permission check alone.

mod common;
mod people_support;

use common::*;
use people_support::*;
use serde_json::{Value, json};

const PIPELINE: &str =
    "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  commands:\n  - echo hi\n";

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["owner"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_roles_allow_and_deny_each_kind_of_action() {
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
        let olive = api.user(&admin, "olive", "olive-password").await;
        let rita = api.user(&admin, "rita", "rita-password").await;
        let will = api.user(&admin, "will", "will-password").await;
        let ada = api.user(&admin, "ada", "ada-password").await;
        let otto = api.user(&admin, "otto", "otto-password").await;
        let anon = As::Anonymous;
        let origin = GitRepo::new(dir.path());
        origin.commit(PIPELINE, "init");
        let git_url = origin.path.to_string_lossy().into_owned();

        // olive adds the repositories, so she owns them; a non-admin may not mark one trusted.
        let (status, _) = api
            .post(
                &olive,
                "/api/v1/repos",
                json!({"slug": "acme/app", "git_url": git_url, "trusted": true}),
            )
            .await;
        assert_eq!(status, 403);
        for (slug, visibility) in [
            ("acme/app", "private"),
            ("acme/int", "internal"),
            ("acme/pub", "public"),
        ] {
            let (status, body) = api
                .post(
                    &olive,
                    "/api/v1/repos",
                    json!({"slug": slug, "git_url": git_url, "visibility": visibility}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        for (who, role) in [("rita", "read"), ("will", "write"), ("ada", "admin")] {
            let (status, body) = api
                .post(
                    &olive,
                    "/api/v1/repos/acme/app/members",
                    json!({"login": who, "role": role}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, _) = api
            .post(
                &olive,
                "/api/v1/repos/acme/app/members",
                json!({"login": "rita", "role": "owner"}),
            )
            .await;
        assert_eq!(status, 400, "unknown role");
        let (status, _) = api
            .post(
                &olive,
                "/api/v1/repos/acme/app/members",
                json!({"login": "nobody", "role": "read"}),
            )
            .await;
        assert_eq!(status, 400, "unknown user");
        let (status, members) = api.get(&olive, "/api/v1/repos/acme/app/members").await;
        assert_eq!(status, 200);
        assert_eq!(
            members,
            json!([
                {"login": "olive", "role": "admin", "owner": true},
                {"login": "ada", "role": "admin", "owner": false,
                 "created": members[1]["created"]},
                {"login": "rita", "role": "read", "owner": false,
                 "created": members[2]["created"]},
                {"login": "will", "role": "write", "owner": false,
                 "created": members[3]["created"]},
            ])
        );

        // Write: run a build.
        let run = json!({"branch": "main"});
        let (status, body) = api
            .post(&rita, "/api/v1/repos/acme/app/builds", run.clone())
            .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(
            body["error"],
            "rita needs write access to acme/app (has read)"
        );
        let (status, body) = api
            .post(&otto, "/api/v1/repos/acme/app/builds", run.clone())
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"], "repository acme/app not found");
        let (status, _) = api
            .post(&anon, "/api/v1/repos/acme/app/builds", run.clone())
            .await;
        assert_eq!(status, 401);
        for who in [&will, &ada, &olive, &admin] {
            let (status, body) = api
                .post(who, "/api/v1/repos/acme/app/builds", run.clone())
                .await;
            assert_eq!(status, 201, "{body}");
        }

        // Read: repository, builds, one build, its logs, cron list.
        for path in [
            "/api/v1/repos/acme/app",
            "/api/v1/repos/acme/app/builds",
            "/api/v1/repos/acme/app/builds/1",
            "/api/v1/repos/acme/app/builds/1/logs",
            "/api/v1/repos/acme/app/crons",
        ] {
            for who in [&rita, &will, &ada, &olive, &admin] {
                let (status, body) = api.get(who, path).await;
                assert_eq!(status, 200, "{path}: {body}");
            }
            for who in [&otto, &anon] {
                let (status, body) = api.get(who, path).await;
                assert_eq!(status, 404, "{path}: {body}");
                assert_eq!(body["error"], "repository acme/app not found");
            }
        }
        let (status, body) = api.get(&otto, "/api/v1/repos/acme/nothing").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("repository acme/nothing not found")),
            "a private repository looks like a missing one"
        );

        // Write: cancel, restart, promote, crons.
        let (status, _) = api
            .post(&rita, "/api/v1/repos/acme/app/builds/1/cancel", json!({}))
            .await;
        assert_eq!(status, 403);
        let (status, body) = api
            .post(&will, "/api/v1/repos/acme/app/builds/1/cancel", json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "killed");
        let (status, _) = api
            .post(&rita, "/api/v1/repos/acme/app/builds/1/restart", json!({}))
            .await;
        assert_eq!(status, 403);
        let (status, body) = api
            .post(&will, "/api/v1/repos/acme/app/builds/1/restart", json!({}))
            .await;
        assert_eq!(status, 201, "{body}");
        let promote = json!({"target": "production"});
        let (status, _) = api
            .post(
                &rita,
                "/api/v1/repos/acme/app/builds/1/promote",
                promote.clone(),
            )
            .await;
        assert_eq!(status, 403);
        let (status, body) = api
            .post(&will, "/api/v1/repos/acme/app/builds/1/promote", promote)
            .await;
        assert_eq!(status, 201, "{body}");
        let cron = json!({"name": "nightly", "expr": "@daily"});
        let (status, _) = api
            .post(&rita, "/api/v1/repos/acme/app/crons", cron.clone())
            .await;
        assert_eq!(status, 403);
        let (status, body) = api.post(&will, "/api/v1/repos/acme/app/crons", cron).await;
        assert_eq!(status, 201, "{body}");
        let (status, _) = api
            .delete(&rita, "/api/v1/repos/acme/app/crons/nightly")
            .await;
        assert_eq!(status, 403);
        let (status, _) = api
            .delete(&will, "/api/v1/repos/acme/app/crons/nightly")
            .await;
        assert_eq!(status, 204);

        // Admin: secrets and members.
        let secret = json!({"name": "token", "value": "s3cr3t-value"});
        for who in [&rita, &will] {
            let (status, body) = api
                .post(who, "/api/v1/repos/acme/app/secrets", secret.clone())
                .await;
            assert_eq!(status, 403, "{body}");
            let (status, _) = api.get(who, "/api/v1/repos/acme/app/secrets").await;
            assert_eq!(status, 403);
            let (status, _) = api.get(who, "/api/v1/repos/acme/app/members").await;
            assert_eq!(status, 403);
            let (status, _) = api
                .post(
                    who,
                    "/api/v1/repos/acme/app/members",
                    json!({"login": "otto", "role": "admin"}),
                )
                .await;
            assert_eq!(status, 403, "no one grants themselves more");
        }
        let (status, _) = api
            .post(&ada, "/api/v1/repos/acme/app/secrets", secret)
            .await;
        assert_eq!(status, 204);
        let (status, list) = api.get(&ada, "/api/v1/repos/acme/app/secrets").await;
        assert_eq!(
            (status, list),
            (200, json!([{"name": "token", "pull_request": false}]))
        );
        let (status, _) = api
            .delete(&will, "/api/v1/repos/acme/app/secrets/token")
            .await;
        assert_eq!(status, 403);
        let (status, _) = api
            .delete(&ada, "/api/v1/repos/acme/app/secrets/token")
            .await;
        assert_eq!(status, 204);
        let (status, _) = api
            .post(
                &ada,
                "/api/v1/repos/acme/app/members",
                json!({"login": "otto", "role": "read"}),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = api.get(&otto, "/api/v1/repos/acme/app").await;
        assert_eq!(status, 200, "a new member reads");
        let (status, _) = api
            .delete(&ada, "/api/v1/repos/acme/app/members/otto")
            .await;
        assert_eq!(status, 204);
        let (status, _) = api.get(&otto, "/api/v1/repos/acme/app").await;
        assert_eq!(status, 404, "a removed member no longer reads");
        let (status, _) = api
            .delete(&ada, "/api/v1/repos/acme/app/members/otto")
            .await;
        assert_eq!(status, 404);

        // Visibility: public for anyone, internal for any logged-in user.
        let (status, _) = api
            .post(&will, "/api/v1/repos/acme/pub/builds", run.clone())
            .await;
        assert_eq!(status, 403, "a public repository is readable, not writable");
        let (status, _) = api
            .post(&olive, "/api/v1/repos/acme/pub/builds", run.clone())
            .await;
        assert_eq!(status, 201);
        for path in [
            "/api/v1/repos/acme/pub",
            "/api/v1/repos/acme/pub/builds",
            "/api/v1/repos/acme/pub/builds/1",
            "/api/v1/repos/acme/pub/builds/1/logs",
        ] {
            let (status, body) = api.get(&anon, path).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        let (status, _) = api
            .post(&anon, "/api/v1/repos/acme/pub/builds", run.clone())
            .await;
        assert_eq!(status, 401, "anonymous callers only read");
        let (status, _) = api.get(&anon, "/api/v1/repos/acme/int").await;
        assert_eq!(status, 404);
        let (status, _) = api.get(&otto, "/api/v1/repos/acme/int").await;
        assert_eq!(status, 200);
        let (status, _) = api.post(&otto, "/api/v1/repos/acme/int/builds", run).await;
        assert_eq!(status, 403);

        let (_, list) = api.get(&anon, "/api/v1/repos").await;
        assert_eq!(names(&list), ["acme/pub"]);
        let (_, list) = api.get(&otto, "/api/v1/repos").await;
        assert_eq!(names(&list), ["acme/int", "acme/pub"]);
        let (_, list) = api.get(&rita, "/api/v1/repos").await;
        assert_eq!(names(&list), ["acme/app", "acme/int", "acme/pub"]);
        let (_, list) = api.get(&admin, "/api/v1/repos").await;
        assert_eq!(names(&list), ["acme/app", "acme/int", "acme/pub"]);

        // Deleting the owner leaves the repository to its members and the site admins.
        let (status, _) = api.delete(&admin, "/api/v1/users/olive").await;
        assert_eq!(status, 204);
        let (status, members) = api.get(&ada, "/api/v1/repos/acme/app/members").await;
        assert_eq!(status, 200);
        assert_eq!(members.as_array().map(Vec::len), Some(3), "{members}");
        server.stop().await;
    }
}
