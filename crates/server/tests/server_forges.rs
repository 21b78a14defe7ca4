//! GitHub and GitLab webhooks in their own payload formats (push, tag, pull/merge request),
//! their signature schemes, and cancel and restart through the API.

mod common;

use common::*;
use serde_json::{Value, json};

const PIPELINE: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: show
  commands:
  - echo event $DRONE_BUILD_EVENT ref $DRONE_COMMIT_REF
";

const SLOW: &str = "kind: pipeline
type: exec
name: slow
steps:
- name: wait
  commands:
  - echo waiting
  - sleep 30
";

async fn setup(
    db: &Db,
    dir: &std::path::Path,
    pipeline: &str,
) -> (Server, Client, GitRepo, String) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (store, _) = open_store(db, &data).await;
    let server = Server::start(config(&data), store).await;
    let api = Client::login(&server.url).await;
    let origin = GitRepo::new(dir);
    let sha = origin.commit(pipeline, "first");
    let (status, repo) = api
        .post(
            "/api/v1/repos",
            json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                   "webhook_secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(status, 201, "{repo}");
    (server, api, origin, sha)
}

fn github_push(git_ref: &str, sha: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": git_ref, "before": "0".repeat(40), "after": sha, "created": true, "deleted": false,
        "head_commit": {"id": sha, "message": "first", "author": {"name": "T", "email": "t@x", "username": "t"}},
        "repository": {"id": 1, "name": "app", "full_name": "acme/app", "owner": {"login": "acme"},
                       "default_branch": "main", "clone_url": "https://github.test/acme/app.git"},
        "pusher": {"name": "t"}, "sender": {"login": "t"}
    }))
    .expect("json")
}

fn logs_text(logs: &Value) -> String {
    logs["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["lines"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["out"].as_str().map(String::from))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_push_tag_and_pull_request() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server, api, origin, sha) = setup(&db, dir.path(), PIPELINE).await;

        let body = github_push("refs/heads/main", &sha);
        let sig = format!("sha256={}", hmac_hex(HOOK_SECRET, &body));
        let headers = |delivery: &str, sig: &str| {
            vec![
                ("X-GitHub-Event", "push".to_string()),
                ("X-GitHub-Delivery", delivery.to_string()),
                ("X-Hub-Signature-256", sig.to_string()),
            ]
        };
        let (status, created) = api.hook("github", &headers("gh-1", &sig), &body).await;
        assert_eq!(status, 201, "{created}");
        let (status, err) = api
            .hook(
                "github",
                &headers("gh-2", &hmac_hex(HOOK_SECRET, &body)),
                &body,
            )
            .await;
        assert_eq!(status, 401, "no sha256= prefix: {err}");

        origin.git(&["tag", "v1.0.0"]);
        let body = github_push("refs/tags/v1.0.0", &sha);
        let sig = format!("sha256={}", hmac_hex(HOOK_SECRET, &body));
        let (status, created) = api.hook("github", &headers("gh-3", &sig), &body).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["build"]["event"], "tag");

        // A pull request from a branch of the same repository.
        origin.git(&["checkout", "-q", "-b", "feature"]);
        let head = origin.commit(PIPELINE, "feature work");
        origin.git(&["update-ref", "refs/pull/5/head", &head]);
        let body = serde_json::to_vec(&json!({
            "action": "opened", "number": 5,
            "pull_request": {"number": 5, "title": "Add feature", "user": {"login": "bob"},
                "head": {"ref": "feature", "sha": head, "repo": {"full_name": "acme/app"}},
                "base": {"ref": "main", "sha": sha, "repo": {"full_name": "acme/app"}}},
            "repository": {"full_name": "acme/app", "name": "app", "owner": {"login": "acme"}},
            "sender": {"login": "bob"}
        }))
        .expect("json");
        let sig = format!("sha256={}", hmac_hex(HOOK_SECRET, &body));
        let pr_headers = vec![
            ("X-GitHub-Event", "pull_request".to_string()),
            ("X-GitHub-Delivery", "gh-4".to_string()),
            ("X-Hub-Signature-256", sig),
        ];
        let (status, created) = api.hook("github", &pr_headers, &body).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["build"]["event"], "pull_request");
        let number = created["build"]["number"].as_i64().expect("number");

        for n in 1..=number {
            let build = api.wait_build("acme/app", n).await;
            assert_eq!(build["status"], "success", "{build:#}");
        }
        let (_, logs) = api.get("/api/v1/repos/acme/app/builds/2/logs").await;
        assert!(
            logs_text(&logs).contains("event tag ref refs/tags/v1.0.0"),
            "{logs}"
        );
        let (_, logs) = api
            .get(&format!("/api/v1/repos/acme/app/builds/{number}/logs"))
            .await;
        assert!(
            logs_text(&logs).contains("event pull_request ref refs/pull/5/head"),
            "{logs}"
        );
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_push_with_token() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server, api, _origin, sha) = setup(&db, dir.path(), PIPELINE).await;
        let body = serde_json::to_vec(&json!({
            "object_kind": "push", "event_name": "push", "before": "0".repeat(40), "after": sha,
            "ref": "refs/heads/main", "checkout_sha": sha, "user_username": "t", "user_name": "T",
            "user_email": "t@x", "project_id": 1,
            "project": {"id": 1, "name": "app", "path_with_namespace": "acme/app", "default_branch": "main",
                        "git_http_url": "https://gitlab.test/acme/app.git"},
            "commits": [{"id": sha, "message": "first\n", "author": {"name": "T", "email": "t@x"}}],
            "total_commits_count": 1
        }))
        .expect("json");
        let headers = |token: &str| {
            vec![
                ("X-Gitlab-Event", "Push Hook".to_string()),
                ("X-Gitlab-Event-UUID", "gl-1".to_string()),
                ("X-Gitlab-Token", token.to_string()),
            ]
        };
        let (status, err) = api.hook("gitlab", &headers("wrong"), &body).await;
        assert_eq!(status, 401, "{err}");
        let (status, created) = api.hook("gitlab", &headers(HOOK_SECRET), &body).await;
        assert_eq!(status, 201, "{created}");
        let (status, again) = api.hook("gitlab", &headers(HOOK_SECRET), &body).await;
        assert_eq!((status, again["status"].as_str()), (200, Some("duplicate")));
        let build = api.wait_build("acme/app", 1).await;
        assert_eq!(build["status"], "success", "{build:#}");
        assert_eq!(build["author"], "t");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_a_running_build_and_restart_makes_a_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, api, _origin, _sha) = setup(&Db::Sqlite, dir.path(), SLOW).await;
    let (status, build) = api
        .post("/api/v1/repos/acme/app/builds", json!({"branch": "main"}))
        .await;
    assert_eq!(status, 201, "{build}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, logs) = api.get("/api/v1/repos/acme/app/builds/1/logs").await;
        if logs_text(&logs).contains("waiting") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, cancelled) = api
        .post("/api/v1/repos/acme/app/builds/1/cancel", Value::Null)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "killed");
    // The runner notices at its next heartbeat and kills the step well before `sleep 30` ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, b) = api.get("/api/v1/repos/acme/app/builds/1").await;
        if b["stages"][0]["finished"].as_i64().unwrap_or(0) > 0 {
            assert_eq!(b["stages"][0]["status"], "killed", "{b:#}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stage never stopped: {b:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, err) = api
        .post("/api/v1/repos/acme/app/builds/1/cancel", Value::Null)
        .await;
    assert_eq!(status, 409, "{err}");

    let (status, restarted) = api
        .post("/api/v1/repos/acme/app/builds/1/restart", Value::Null)
        .await;
    assert_eq!(status, 201, "{restarted}");
    assert_eq!(restarted["number"], 2);
    assert_eq!(restarted["event"], "custom");
    let (status, _) = api
        .post("/api/v1/repos/acme/app/builds/2/cancel", Value::Null)
        .await;
    assert_eq!(status, 200);
    server.stop().await;
}
