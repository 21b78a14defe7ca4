//! Live step status, in-process and from a remote runner, on SQLite and PostgreSQL: while a
//! step runs, the API shows it `running` (with its start time) and the next one `pending`; when
//! it ends, its result shows while the next one runs. The steps wait for files the test creates
//! only after it has seen the state it checks, so nothing depends on timing. `/rpc/v1` refuses
//! a step status a runner never reports.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Two steps, each waiting for its own gate file.
fn pipeline(gates: &Path) -> String {
    let gate = |name: &str| gates.join(name).display().to_string();
    format!(
        "kind: pipeline\ntype: exec\nname: ci\nsteps:\n\
         - name: first\n  commands:\n  - echo first waits\n  \
         - while [ ! -f {one} ]; do sleep 0.05; done\n\
         - name: second\n  commands:\n  - echo second waits\n  \
         - while [ ! -f {two} ]; do sleep 0.05; done\n",
        one = gate("one"),
        two = gate("two"),
    )
}

/// Polls build 1 until `ready` holds for its steps, and returns them.
async fn steps_when(api: &Client, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..1200 {
        let (status, build) = api.get("/api/v1/repos/acme/app/builds/1").await;
        assert_eq!(status, 200, "{build}");
        let steps = build["stages"][0]["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if ready(&steps) {
            return steps;
        }
        assert!(
            build["finished"].as_i64().unwrap_or(0) == 0,
            "the build ended before {what}: {build:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never saw {what}");
}

fn status(steps: &[Value], n: usize) -> &str {
    steps[n]["status"].as_str().unwrap_or_default()
}

async fn steps_report_as_they_run(api: &Client, dir: &Path) {
    let gates = dir.join("gates");
    std::fs::create_dir_all(&gates).expect("mkdir");
    let origin = GitRepo::new(dir);
    let sha = origin.commit(&pipeline(&gates), "live");
    let (code, repo) = api
        .post(
            "/api/v1/repos",
            json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                   "webhook_secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(code, 201, "{repo}");
    let body = gitea_push("acme/app", "main", &"0".repeat(40), &sha, "live");
    let (code, created) = api
        .hook("gitea", &gitea_headers("live-1", &body, HOOK_SECRET), &body)
        .await;
    assert_eq!(code, 201, "{created}");

    // The first step runs; the second has not started.
    let steps = steps_when(api, "the first step running", |s| {
        s.len() == 2 && status(s, 0) == "running"
    })
    .await;
    assert_eq!(status(&steps, 1), "pending", "{steps:#?}");
    let first_started = steps[0]["started"].as_i64().unwrap_or(0);
    assert!(first_started > 0, "{steps:#?}");
    assert_eq!(steps[0]["finished"], 0, "{steps:#?}");

    // Let it end: its result shows while the second one runs.
    std::fs::write(gates.join("one"), "").expect("open gate one");
    let steps = steps_when(api, "the second step running", |s| {
        status(s, 1) == "running"
    })
    .await;
    assert_eq!(status(&steps, 0), "success", "{steps:#?}");
    assert_eq!(steps[0]["exit_code"], 0);
    assert_eq!(
        steps[0]["started"], first_started,
        "the live start time is kept"
    );
    let first_finished = steps[0]["finished"].as_i64().unwrap_or(0);
    assert!(first_finished >= first_started, "{steps:#?}");
    assert!(
        steps[1]["started"].as_i64().unwrap_or(0) >= first_finished,
        "{steps:#?}"
    );

    std::fs::write(gates.join("two"), "").expect("open gate two");
    let build = api.wait_build("acme/app", 1).await;
    assert_eq!(build["status"], "success", "{build:#}");
    let steps = &build["stages"][0]["steps"];
    assert_eq!(steps[0]["status"], "success");
    assert_eq!(steps[0]["started"], first_started);
    assert_eq!(steps[0]["finished"], first_finished);
    assert_eq!(steps[1]["status"], "success");
    let (_, logs) = api.get("/api/v1/repos/acme/app/builds/1/logs").await;
    let text = logs.to_string();
    assert!(
        text.contains("first waits") && text.contains("second waits"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_runner_reports_steps_live() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let server = Server::start(config(&data), store).await;
        let api = Client::login(&server.url).await;
        steps_report_as_they_run(&api, dir.path()).await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_runner_reports_steps_live() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let mut cfg = config(&data);
        cfg.runner = false;
        let server = Server::start(cfg, store).await;
        let api = Client::login(&server.url).await;

        // A status no runner reports is refused before anything else is looked at.
        let (code, answer) = api
            .post(
                "/rpc/v1/stages/1/steps",
                json!({"lease_token": "x", "step": {"number": 1, "status": "pending",
                       "exit_code": 0, "error": "", "started": 0, "finished": 0}}),
            )
            .await;
        assert_eq!(code, 400, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains("pending"),
            "{answer}"
        );

        let runner = Runner::spawn(
            &server.url,
            &api.token,
            "live",
            1,
            dir.path().join("runner-work"),
        );
        steps_report_as_they_run(&api, dir.path()).await;
        runner.stop().await;
        server.stop().await;
    }
}
