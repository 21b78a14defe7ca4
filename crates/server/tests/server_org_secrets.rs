//! Organisation secrets (Drone's org secrets), on SQLite and PostgreSQL: only site admins
//! manage them and values never come back; a build of `acme/app` sees `acme`'s secrets (masked
//! in its logs), not another organisation's; the repository's own secret wins on a name clash;
//! pull requests see only those marked `pull_request`, and forks none.

mod common;
mod people_support;

use common::*;
use people_support::*;
use serde_json::json;

const PIPELINE: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: show
  environment:
    SHARED:
      from_secret: shared
    BOTH:
      from_secret: both
    FOR_PR:
      from_secret: for_pr
    ELSEWHERE:
      from_secret: elsewhere
  commands:
  - echo \"shared=[$${#SHARED}] both=[$${#BOTH}] for_pr=[$${#FOR_PR}] elsewhere=[$${#ELSEWHERE}]\"
  - echo \"value $SHARED\"
";

/// The output lines of the build's only step (each command's trace line is skipped).
async fn output(api: &Client, number: i64) -> Vec<String> {
    let build = api.wait_build("acme/app", number).await;
    assert_eq!(build["status"], "success", "{build:#}");
    let (_, logs) = api
        .get(&format!("/api/v1/repos/acme/app/builds/{number}/logs"))
        .await;
    logs["steps"][0]["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["out"].as_str().unwrap_or_default().to_string())
        .filter(|l| !l.starts_with("+ "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_secrets_reach_builds_and_the_repository_secret_wins() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let server = Server::start(config(&data), store).await;
        let api = Client::login(&server.url).await;
        let people = Api::new(&server.url);
        let admin = As::Token(api.token.clone());
        let bob = people.user(&admin, "bob", "bob-password").await;

        let origin = GitRepo::new(dir.path());
        let base = origin.commit(PIPELINE, "base");
        let (status, _) = api
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                       "webhook_secret": HOOK_SECRET}),
            )
            .await;
        assert_eq!(status, 201);

        // Only site admins manage organisation secrets.
        let (status, body) = people
            .post(
                &bob,
                "/api/v1/orgs/acme/secrets",
                json!({"name": "shared", "value": "x"}),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = people.get(&bob, "/api/v1/orgs/acme/secrets").await;
        assert_eq!(status, 403);
        for (org, name, value, pr) in [
            ("acme", "shared", "org-shared", false),
            ("acme", "both", "from-the-organisation", true),
            ("acme", "for_pr", "prval", true),
            ("other", "elsewhere", "not-for-acme", false),
        ] {
            let (status, body) = api
                .post(
                    &format!("/api/v1/orgs/{org}/secrets"),
                    json!({"name": name, "value": value, "pull_request": pr}),
                )
                .await;
            assert_eq!(status, 204, "{body}");
        }
        let (status, _) = api
            .post(
                "/api/v1/orgs/acme/secrets",
                json!({"name": "bad name", "value": "v"}),
            )
            .await;
        assert_eq!(status, 400);
        // The repository's own `both` is not for pull requests, and shadows the org's.
        let (status, _) = api
            .post(
                "/api/v1/repos/acme/app/secrets",
                json!({"name": "both", "value": "repo-wins"}),
            )
            .await;
        assert_eq!(status, 204);
        let (status, list) = api.get("/api/v1/orgs/acme/secrets").await;
        assert_eq!(status, 200);
        assert_eq!(
            list,
            json!([{"name": "both", "pull_request": true},
                   {"name": "for_pr", "pull_request": true},
                   {"name": "shared", "pull_request": false}])
        );

        origin.git(&["checkout", "-q", "-b", "feature"]);
        let head = origin.commit(PIPELINE, "feature");
        origin.git(&["update-ref", "refs/pull/1/head", &head]);
        origin.git(&["update-ref", "refs/pull/2/head", &head]);

        let (status, manual) = api
            .post("/api/v1/repos/acme/app/builds", json!({"branch": "main"}))
            .await;
        assert_eq!(status, 201, "{manual}");
        assert_eq!(
            output(&api, 1).await,
            [
                // org-shared: 10; repo-wins: 9; prval: 5; another organisation's: none.
                "shared=[10] both=[9] for_pr=[5] elsewhere=[0]",
                "value ******",
            ]
        );

        let same_repo = pull_request(&api, "pr-1", &pr_body(1, "acme/app", &head, &base)).await;
        assert_eq!(
            output(&api, same_repo).await[0],
            "shared=[0] both=[0] for_pr=[5] elsewhere=[0]",
            "the repository's `both` hides the org's also where it is not exposed"
        );
        let fork = pull_request(&api, "pr-2", &pr_body(2, "mallory/app", &head, &base)).await;
        // A pull request from a fork waits for approval by default (docs/server.md, Gates).
        let (status, approved) = api
            .post(
                &format!("/api/v1/repos/acme/app/builds/{fork}/approve"),
                json!(null),
            )
            .await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(
            output(&api, fork).await[0],
            "shared=[0] both=[0] for_pr=[0] elsewhere=[0]",
            "forks get nothing"
        );

        // Deleting the repository's `both` lets the organisation's through.
        let (status, _) = api.http_delete("/api/v1/repos/acme/app/secrets/both").await;
        assert_eq!(status, 204);
        let (status, _) = api.http_delete("/api/v1/orgs/acme/secrets/shared").await;
        assert_eq!(status, 204);
        let (status, _) = api.http_delete("/api/v1/orgs/acme/secrets/shared").await;
        assert_eq!(status, 404);
        let (status, _) = api
            .post("/api/v1/repos/acme/app/builds", json!({"branch": "main"}))
            .await;
        assert_eq!(status, 201);
        assert_eq!(
            output(&api, 4).await[0],
            "shared=[0] both=[21] for_pr=[5] elsewhere=[0]"
        );
        server.stop().await;
    }
}
