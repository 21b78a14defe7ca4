//! Secrets and pull requests (ci.md §3: Drone users leak secrets to fork PRs): a push sees every
//! secret; a pull request sees only secrets marked `pull_request`; a pull request from a fork
//! sees none unless the repository allows it. Also the repository timeout.

mod common;

use common::*;
use serde_json::{Value, json};

const PIPELINE: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: show
  environment:
    PLAIN:
      from_secret: plain
    FOR_PR:
      from_secret: for_pr
  commands:
  - echo \"plain=[$${#PLAIN}] for_pr=[$${#FOR_PR}]\"
";

async fn output(api: &Client, number: i64) -> String {
    let build = api.wait_build("acme/app", number).await;
    assert_eq!(build["status"], "success", "{build:#}");
    let (_, logs) = api
        .get(&format!("/api/v1/repos/acme/app/builds/{number}/logs"))
        .await;
    // The first line is the shell trace of the command; the second its output.
    logs["steps"][0]["lines"][1]["out"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_requests_get_only_allowed_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (store, _) = open_store(&Db::Sqlite, &data).await;
    let server = Server::start(config(&data), store).await;
    let api = Client::login(&server.url).await;
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
    for (name, value, pr) in [("plain", "abc", false), ("for_pr", "defgh", true)] {
        let (status, _) = api
            .post(
                "/api/v1/repos/acme/app/secrets",
                json!({"name": name, "value": value, "pull_request": pr}),
            )
            .await;
        assert_eq!(status, 204);
    }
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
        "plain=[3] for_pr=[5]",
        "a push-like event sees all"
    );

    let same_repo = pull_request(&api, "pr-1", &pr_body(1, "acme/app", &head, &base)).await;
    assert_eq!(output(&api, same_repo).await, "plain=[0] for_pr=[5]");

    let fork = pull_request(&api, "pr-2", &pr_body(2, "mallory/app", &head, &base)).await;
    // A pull request from a fork waits for approval by default (docs/server.md, Gates).
    let (status, approved) = api
        .post(
            &format!("/api/v1/repos/acme/app/builds/{fork}/approve"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(
        output(&api, fork).await,
        "plain=[0] for_pr=[0]",
        "forks get nothing"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_timeout_kills_the_build() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (store, _) = open_store(&Db::Sqlite, &data).await;
    let server = Server::start(config(&data), store).await;
    let api = Client::login(&server.url).await;
    let origin = GitRepo::new(dir.path());
    origin.commit(
        "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: forever\n  commands:\n  - sleep 60\n",
        "slow",
    );
    let (status, _) = api
        .post(
            "/api/v1/repos",
            json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                   "webhook_secret": HOOK_SECRET, "timeout_secs": 1}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .post("/api/v1/repos/acme/app/builds", json!({"branch": "main"}))
        .await;
    assert_eq!(status, 201);
    let build: Value = api.wait_build("acme/app", 1).await;
    assert_eq!(build["status"], "killed", "{build:#}");
    assert_eq!(build["stages"][0]["error"], "timed out after 1s");
    server.stop().await;
}
