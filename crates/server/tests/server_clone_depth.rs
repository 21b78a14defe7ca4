//! `clone: depth` on the server's runners, in-process (shallow fetch from the server's mirror)
//! and remote (shallow fetch from the repository's URL), on SQLite and PostgreSQL: with
//! `depth: 1` the workspace holds exactly the build's commit, for a branch push, a tag and a
//! pull request whose commit only a `refs/pull/N/head` ref holds; without `depth` the whole
//! history is there, as before.

mod common;

use common::*;
use serde_json::{Value, json};

/// An exec pipeline whose one step prints what the workspace's git history looks like.
fn pipeline(depth: Option<u32>) -> String {
    let clone = depth
        .map(|d| format!("clone:\n  depth: {d}\n"))
        .unwrap_or_default();
    format!(
        "kind: pipeline\ntype: exec\nname: ci\n{clone}steps:\n- name: count\n  commands:\n  \
         - echo \"commits $(git rev-list --count HEAD) head $(git rev-parse HEAD) shallow \
         $(git rev-parse --is-shallow-repository)\"\n"
    )
}

fn log_text(logs: &Value) -> String {
    let mut out = String::new();
    for step in logs["steps"].as_array().into_iter().flatten() {
        for line in step["lines"].as_array().into_iter().flatten() {
            out.push_str(line["out"].as_str().unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// Sends a Gitea webhook of `event` with `body`; returns the new build's number.
async fn hook(api: &Client, event: &str, delivery: &str, body: &[u8]) -> i64 {
    let mut headers = gitea_headers(delivery, body, HOOK_SECRET);
    headers[0].1 = event.to_string();
    let (status, created) = api.hook("gitea", &headers, body).await;
    assert_eq!(status, 201, "{created}");
    created["build"]["number"].as_i64().expect("build number")
}

/// The one log line of build `number`, after checking the build succeeded.
async fn count_line(api: &Client, number: i64) -> String {
    let build = api.wait_build("acme/app", number).await;
    assert_eq!(build["status"], "success", "{build:#}");
    let (_, logs) = api
        .get(&format!("/api/v1/repos/acme/app/builds/{number}/logs"))
        .await;
    let text = log_text(&logs);
    text.lines()
        .find(|l| l.starts_with("commits "))
        .unwrap_or_else(|| panic!("no count line in the log of #{number}: {text}"))
        .to_string()
}

/// Pushes, a tag and a pull request with `depth: 1`, then a push without depth.
async fn shallow_and_full_checkouts(api: &Client, dir: &std::path::Path) {
    let origin = GitRepo::new(dir);
    let shallow = pipeline(Some(1));
    origin.commit(&shallow, "one");
    let second = origin.commit(&shallow, "two");
    let third = origin.commit(&shallow, "three");
    let (status, repo) = api
        .post(
            "/api/v1/repos",
            json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                   "webhook_secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(status, 201, "{repo}");

    // A branch push: only the pushed commit.
    let body = gitea_push("acme/app", "main", &second, &third, "three");
    let push = hook(api, "push", "d-push", &body).await;

    // A tag on an older commit: only that commit.
    origin.git(&["tag", "v1.0.0", &second]);
    let mut tag: Value =
        serde_json::from_slice(&gitea_push("acme/app", "main", "", &second, "two")).expect("json");
    tag["ref"] = json!("refs/tags/v1.0.0");
    let body = serde_json::to_vec(&tag).expect("json");
    let tagged = hook(api, "push", "d-tag", &body).await;

    // A pull request whose head only `refs/pull/7/head` holds (the branch is gone).
    origin.git(&["checkout", "-q", "-b", "feature"]);
    let head = origin.commit(&shallow, "feature work");
    origin.git(&["update-ref", "refs/pull/7/head", &head]);
    origin.git(&["checkout", "-q", "main"]);
    origin.git(&["branch", "-q", "-D", "feature"]);
    let body = serde_json::to_vec(&json!({
        "action": "opened", "number": 7,
        "pull_request": {"number": 7, "title": "Add feature", "user": {"login": "bob"},
            "head": {"ref": "feature", "sha": head, "repo": {"full_name": "acme/app"}},
            "base": {"ref": "main", "sha": third, "repo": {"full_name": "acme/app"}}},
        "repository": {"full_name": "acme/app", "name": "app", "owner": {"login": "acme"}},
        "sender": {"login": "bob"}
    }))
    .expect("json");
    let pull = hook(api, "pull_request", "d-pr", &body).await;

    assert_eq!(
        count_line(api, push).await,
        format!("commits 1 head {third} shallow true")
    );
    assert_eq!(
        count_line(api, tagged).await,
        format!("commits 1 head {second} shallow true")
    );
    assert_eq!(
        count_line(api, pull).await,
        format!("commits 1 head {head} shallow true")
    );

    // No depth: the whole history, as Drone's default clone.
    let fourth = origin.commit(&pipeline(None), "four");
    let body = gitea_push("acme/app", "main", &third, &fourth, "four");
    let full = hook(api, "push", "d-full", &body).await;
    assert_eq!(
        count_line(api, full).await,
        format!("commits 4 head {fourth} shallow false")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_runner_honours_clone_depth() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let server = Server::start(config(&data), store).await;
        let api = Client::login(&server.url).await;
        shallow_and_full_checkouts(&api, dir.path()).await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_runner_honours_clone_depth() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let mut cfg = config(&data);
        cfg.runner = false;
        let server = Server::start(cfg, store).await;
        let api = Client::login(&server.url).await;
        let runner = Runner::spawn(
            &server.url,
            &api.token,
            "shallow",
            2,
            dir.path().join("runner-work"),
        );
        shallow_and_full_checkouts(&api, dir.path()).await;
        runner.stop().await;
        server.stop().await;
    }
}
