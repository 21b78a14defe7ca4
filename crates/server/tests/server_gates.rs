//! Gates over HTTP on SQLite and PostgreSQL: a GitHub pull request from a fork makes a blocked
//! build that no runner claims until it is approved (then it runs to success on the exec
//! backend) or declined; the ignore flags answer `ignored` and use no build number; settings
//! change through `PATCH /api/v1/repos/{o}/{n}` with reasons for bad values; the pipeline's
//! `concurrency: {limit: 1}` and the repository throttle hold a second stage back in the queue.

mod common;

use common::*;
use serde_json::{Value, json};
use skiff_store::{RunnerSpec, Store};
use std::time::Duration;

const PIPELINE: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: show
  commands:
  - echo event $DRONE_BUILD_EVENT ref $DRONE_COMMIT_REF
";

const LIMITED: &str = "kind: pipeline
type: exec
name: deploy
concurrency:
  limit: 1
steps:
- name: show
  commands:
  - echo deploying
";

async fn setup(
    db: &Db,
    dir: &std::path::Path,
    pipeline: &str,
    runner: bool,
) -> (Server, Client, GitRepo, String) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (store, _) = open_store(db, &data).await;
    let mut config = config(&data);
    config.runner = runner;
    let server = Server::start(config, store).await;
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
    assert_eq!(repo["approval"], "forks", "the default policy: {repo}");
    (server, api, origin, sha)
}

async fn patch(api: &Client, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .patch(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .json(&body)
        .send()
        .await
        .expect("patch");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A GitHub `pull_request` webhook; `head_repo` other than acme/app makes it a fork.
async fn pull_request(
    api: &Client,
    delivery: &str,
    number: i64,
    head_repo: &str,
    sha: &str,
) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({
        "action": "opened", "number": number,
        "pull_request": {"number": number, "title": "A change", "user": {"login": "bob"},
            "head": {"ref": "feature", "sha": sha, "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "sha": sha, "repo": {"full_name": "acme/app"}}},
        "repository": {"full_name": "acme/app", "name": "app", "owner": {"login": "acme"}},
        "sender": {"login": "bob"}
    }))
    .expect("json");
    let headers = vec![
        ("X-GitHub-Event", "pull_request".to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(HOOK_SECRET, &body)),
        ),
    ];
    api.hook("github", &headers, &body).await
}

async fn push(api: &Client, delivery: &str, sha: &str) -> (u16, Value) {
    let body = gitea_push("acme/app", "main", &"0".repeat(40), sha, "push");
    api.hook("gitea", &gitea_headers(delivery, &body, HOOK_SECRET), &body)
        .await
}

fn exec_runner() -> RunnerSpec {
    RunnerSpec {
        name: "test".into(),
        os: "linux".into(),
        arch: "amd64".into(),
        kinds: vec!["exec".into()],
        labels: String::new(),
    }
}

async fn claim(store: &Store) -> Option<skiff_store::Claim> {
    store
        .claim(&exec_runner(), Duration::from_secs(30))
        .await
        .expect("claim")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_pull_request_waits_for_approval() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server, api, origin, sha) = setup(&db, dir.path(), PIPELINE, true).await;
        let backend = server.store.backend();
        origin.git(&["checkout", "-q", "-b", "feature"]);
        let head = origin.commit(PIPELINE, "from a fork");
        origin.git(&["update-ref", "refs/pull/7/head", &head]);

        let (status, created) = pull_request(&api, "pr-1", 7, "bob/app", &head).await;
        assert_eq!(status, 201, "{backend}: {created}");
        assert_eq!(created["build"]["status"], "blocked", "{created}");
        let (_, build) = api.get("/api/v1/repos/acme/app/builds/1").await;
        assert_eq!(build["stages"][0]["status"], "blocked", "{build}");
        assert_eq!(build["finished"], 0);
        // Neither the in-process runner nor any other claims it.
        assert!(claim(&server.store).await.is_none(), "{backend}");

        let (status, approved) = api
            .post("/api/v1/repos/acme/app/builds/1/approve", Value::Null)
            .await;
        assert_eq!(status, 200, "{approved}");
        assert_ne!(approved["status"], "blocked", "{approved}");
        let build = api.wait_build("acme/app", 1).await;
        assert_eq!(build["status"], "success", "{backend}: {build:#}");
        let (_, logs) = api.get("/api/v1/repos/acme/app/builds/1/logs").await;
        assert!(
            logs.to_string()
                .contains("event pull_request ref refs/pull/7/head"),
            "{logs}"
        );
        let (status, again) = api
            .post("/api/v1/repos/acme/app/builds/1/approve", Value::Null)
            .await;
        assert_eq!(status, 409, "approving twice: {again}");
        assert!(again["error"].as_str().is_some(), "{again}");

        // Declined: it ends without running and cannot be approved afterwards.
        let (status, created) = pull_request(&api, "pr-2", 7, "bob/app", &head).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["build"]["number"], 2);
        assert_eq!(created["build"]["status"], "blocked");
        let (status, declined) = api
            .post("/api/v1/repos/acme/app/builds/2/decline", Value::Null)
            .await;
        assert_eq!(status, 200, "{declined}");
        assert_eq!(declined["status"], "declined", "{declined}");
        assert_eq!(declined["stages"][0]["status"], "declined", "{declined}");
        let build = api.wait_build("acme/app", 2).await;
        assert_eq!(build["status"], "declined");
        let (status, _) = api
            .post("/api/v1/repos/acme/app/builds/2/approve", Value::Null)
            .await;
        assert_eq!(status, 409);
        let (status, _) = api
            .post("/api/v1/repos/acme/app/builds/2/cancel", Value::Null)
            .await;
        assert_eq!(status, 409, "a declined build has ended");
        let (status, missing) = api
            .post("/api/v1/repos/acme/app/builds/99/approve", Value::Null)
            .await;
        assert_eq!(status, 404, "{missing}");

        // A pull request from the repository itself and a push run at once under `forks`.
        origin.git(&["update-ref", "refs/pull/8/head", &head]);
        let (status, created) = pull_request(&api, "pr-3", 8, "acme/app", &head).await;
        assert_eq!(status, 201, "{created}");
        assert_ne!(created["build"]["status"], "blocked", "{created}");
        let (status, created) = push(&api, "push-1", &sha).await;
        assert_eq!(status, 201, "{created}");
        assert_ne!(created["build"]["status"], "blocked", "{created}");
        for n in [3, 4] {
            let build = api.wait_build("acme/app", n).await;
            assert_eq!(build["status"], "success", "{build:#}");
        }

        // `all`: a push waits too.
        let (status, repo) =
            patch(&api, "/api/v1/repos/acme/app", json!({"approval": "all"})).await;
        assert_eq!(status, 200, "{repo}");
        assert_eq!(repo["approval"], "all");
        let (status, created) = push(&api, "push-2", &sha).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["build"]["status"], "blocked", "{created}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_flags_and_settings() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server, api, origin, sha) = setup(&db, dir.path(), PIPELINE, false).await;
        let backend = server.store.backend();
        origin.git(&["update-ref", "refs/pull/3/head", &sha]);

        let (status, repo) = patch(
            &api,
            "/api/v1/repos/acme/app",
            json!({"ignore_forks": true, "throttle": 2, "cancel_push": true}),
        )
        .await;
        assert_eq!(status, 200, "{backend}: {repo}");
        assert_eq!(repo["ignore_forks"], true);
        assert_eq!(repo["throttle"], 2);
        assert_eq!(repo["cancel_push"], true);
        assert_eq!(repo["ignore_pull_requests"], false, "untouched");
        let (_, info) = api.get("/api/v1/repos/acme/app").await;
        assert_eq!(info["ignore_forks"], true, "{info}");

        let (status, answer) = pull_request(&api, "pr-1", 3, "eve/app", &sha).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "ignored", "{answer}");
        assert!(
            answer["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("ignore_forks"),
            "{answer}"
        );
        let (_, list) = api.get("/api/v1/repos/acme/app/builds").await;
        assert_eq!(list.as_array().map(Vec::len), Some(0), "no build: {list}");

        // A pull request from the repository itself still builds.
        let (status, created) = pull_request(&api, "pr-2", 3, "acme/app", &sha).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(
            created["build"]["number"], 1,
            "the ignored one used no number"
        );

        let (status, _) = patch(
            &api,
            "/api/v1/repos/acme/app",
            json!({"ignore_pull_requests": true}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, answer) = pull_request(&api, "pr-3", 3, "acme/app", &sha).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "ignored", "{answer}");
        assert!(
            answer["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("ignore_pull_requests"),
            "{answer}"
        );
        let (status, created) = push(&api, "push-1", &sha).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["build"]["number"], 2, "pushes still build");

        // cancel_push: a newer push of main cancels the older one that has not started.
        let (status, created) = push(&api, "push-2", &sha).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["build"]["number"], 3);
        let (_, old) = api.get("/api/v1/repos/acme/app/builds/2").await;
        assert_eq!(old["status"], "killed", "superseded: {old}");
        let (_, pr) = api.get("/api/v1/repos/acme/app/builds/1").await;
        assert_eq!(pr["status"], "pending", "another ref is untouched: {pr}");

        // Bad settings get a reason; the repository is unchanged.
        for (body, want) in [
            (json!({"approval": "sometimes"}), 400),
            (json!({"throttle": -1}), 400),
            (json!({"timeout_secs": 0}), 400),
            (json!({"visibility": "secret"}), 400),
            (json!({"config_path": ""}), 400),
            (json!({"no_such_setting": true}), 400),
            (json!({"throttle": "two"}), 400),
        ] {
            let (status, err) = patch(&api, "/api/v1/repos/acme/app", body.clone()).await;
            assert_eq!(status, want, "{body}: {err}");
            assert!(err["error"].as_str().is_some(), "{body}: {err}");
        }
        let (status, _) = patch(&api, "/api/v1/repos/acme/nope", json!({"throttle": 1})).await;
        assert_eq!(status, 404);
        let (_, info) = api.get("/api/v1/repos/acme/app").await;
        assert_eq!(info["approval"], "forks", "{info}");
        assert_eq!(info["throttle"], 2, "{info}");

        // Settings given when the repository is added.
        let (status, added) = api
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/other", "git_url": origin.path.to_string_lossy(),
                       "approval": "pull_requests", "throttle": 3, "ignore_forks": true}),
            )
            .await;
        assert_eq!(status, 201, "{added}");
        assert_eq!(added["approval"], "pull_requests");
        assert_eq!(added["throttle"], 3);
        assert_eq!(added["ignore_forks"], true);
        assert!(
            added["webhook_secret"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
        let (status, err) = api
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/third", "git_url": "/x", "approval": "maybe"}),
            )
            .await;
        assert_eq!(status, 400, "{err}");
        let (status, _) = api.get("/api/v1/repos/acme/third").await;
        assert_eq!(status, 404, "a refused add makes no repository");
        server.stop().await;
    }
}

/// The pipeline's `concurrency: {limit: 1}` (parsed by skiff-pipeline) and the repository
/// throttle, asserted through the queue: the runner is off and the test claims itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_and_throttle_hold_stages_in_the_queue() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server, api, origin, sha) = setup(&db, dir.path(), LIMITED, false).await;
        let backend = server.store.backend();
        for delivery in ["d-1", "d-2"] {
            let (status, created) = push(&api, delivery, &sha).await;
            assert_eq!(status, 201, "{created}");
        }
        let (_, build) = api.get("/api/v1/repos/acme/app/builds/1").await;
        assert_eq!(build["stages"][0]["concurrency"], 1, "{build}");

        let first = claim(&server.store).await.expect("the first deploy");
        assert!(
            claim(&server.store).await.is_none(),
            "{backend}: the second deploy waits for the first"
        );
        let (_, second) = api.get("/api/v1/repos/acme/app/builds/2").await;
        assert_eq!(second["stages"][0]["status"], "pending", "{second}");
        assert!(
            server
                .store
                .finish_stage(first.stage.id, &first.lease_token, "success", "")
                .await
                .expect("finish")
        );
        let next = claim(&server.store).await.expect("a slot freed");
        assert_ne!(next.stage.id, first.stage.id);
        server
            .store
            .finish_stage(next.stage.id, &next.lease_token, "success", "")
            .await
            .expect("finish");

        // Throttle 1 on a pipeline without a limit.
        origin.commit(PIPELINE, "no limit");
        let sha = origin.git(&["rev-parse", "HEAD"]);
        let (status, _) = patch(&api, "/api/v1/repos/acme/app", json!({"throttle": 1})).await;
        assert_eq!(status, 200);
        for delivery in ["d-3", "d-4"] {
            let (status, created) = push(&api, delivery, &sha).await;
            assert_eq!(status, 201, "{created}");
        }
        let first = claim(&server.store).await.expect("one stage");
        assert_eq!(first.stage.name, "ci");
        assert!(
            claim(&server.store).await.is_none(),
            "{backend}: throttle 1"
        );
        server
            .store
            .finish_stage(first.stage.id, &first.lease_token, "success", "")
            .await
            .expect("finish");
        assert!(claim(&server.store).await.is_some(), "{backend}: freed");
        server.stop().await;
    }
}

/// `cancel_running` (Drone's): with `cancel_push`, a newer push of the branch also cancels an
/// older build that is already running; its step is killed and the new build runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_stops_an_older_running_build() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The step runs until the test makes this file (at most a minute).
        let flag = dir.path().join("release");
        let pipeline = format!(
            "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: wait\n  commands:\n  \
             - echo waiting\n  - i=0; while [ ! -f {flag} ] && [ $i -lt 600 ]; do sleep 0.1; \
             i=$((i+1)); done\n  - echo released\n",
            flag = flag.display()
        );
        let (server, api, _origin, sha) = setup(&db, dir.path(), &pipeline, true).await;
        let (status, repo) = patch(
            &api,
            "/api/v1/repos/acme/app",
            json!({"cancel_push": true, "cancel_running": true}),
        )
        .await;
        assert_eq!(status, 200, "{repo}");
        assert_eq!(repo["cancel_running"], true);

        let (status, created) = push(&api, "run-1", &sha).await;
        assert_eq!(status, 201, "{created}");
        let mut first = Value::Null;
        for _ in 0..600 {
            first = api.get("/api/v1/repos/acme/app/builds/1").await.1;
            if first["status"] == "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(first["status"], "running", "{first}");

        let (status, created) = push(&api, "run-2", &sha).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["build"]["number"], 2);
        let first = api.wait_build("acme/app", 1).await;
        assert_eq!(
            first["status"], "killed",
            "superseded while running: {first}"
        );
        std::fs::write(&flag, "").expect("flag");
        let second = api.wait_build("acme/app", 2).await;
        assert_eq!(second["status"], "success", "{second}");
        server.stop().await;
    }
}
