//! Promotions, rollbacks and cron schedules through the API, on SQLite and PostgreSQL:
//! `promote` builds match `trigger: target:` and see `DRONE_DEPLOY_TO`; a cron job fires a
//! `cron` build of its branch that `trigger: cron:` matches and that sees `DRONE_CRON`.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PIPELINES: &str = "kind: pipeline
type: exec
name: ci
trigger:
  event: [custom]
steps:
- name: c
  commands: [echo ci]
---
kind: pipeline
type: exec
name: deploy
trigger:
  event: [promote, rollback]
  target: [production]
steps:
- name: d
  commands: [echo $DRONE_BUILD_EVENT to $DRONE_DEPLOY_TO]
---
kind: pipeline
type: exec
name: nightly
trigger:
  event: [cron]
  cron: [nightly]
steps:
- name: n
  commands: [echo cron $DRONE_CRON]
";

async fn text_of(api: &Client, number: i64) -> String {
    let (_, logs) = api
        .get(&format!("/api/v1/repos/acme/app/builds/{number}/logs"))
        .await;
    logs.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_rollback_and_cron() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let server = Server::start(config(&data), store).await;
        let api = Client::login(&server.url).await;
        let origin = GitRepo::new(dir.path());
        origin.commit(PIPELINES, "pipelines");
        let (status, _) = api
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                       "webhook_secret": HOOK_SECRET}),
            )
            .await;
        assert_eq!(status, 201);

        let (status, _) = api
            .post("/api/v1/repos/acme/app/builds", json!({"branch": "main"}))
            .await;
        assert_eq!(status, 201);
        assert_eq!(api.wait_build("acme/app", 1).await["status"], "success");

        let (status, promoted) = api
            .post(
                "/api/v1/repos/acme/app/builds/1/promote",
                json!({"target": "production"}),
            )
            .await;
        assert_eq!(status, 201, "{promoted}");
        assert_eq!(promoted["event"], "promote");
        assert_eq!(promoted["deploy_to"], "production");
        assert_eq!(api.wait_build("acme/app", 2).await["status"], "success");
        assert!(text_of(&api, 2).await.contains("promote to production"));

        let (status, none) = api
            .post(
                "/api/v1/repos/acme/app/builds/1/promote",
                json!({"target": "staging"}),
            )
            .await;
        assert_eq!(
            (status, none["status"].as_str()),
            (200, Some("ignored")),
            "{none}"
        );

        let (status, rolled) = api
            .post(
                "/api/v1/repos/acme/app/builds/1/rollback",
                json!({"target": "production"}),
            )
            .await;
        assert_eq!(status, 201, "{rolled}");
        assert_eq!(api.wait_build("acme/app", 3).await["status"], "success");
        assert!(text_of(&api, 3).await.contains("rollback to production"));

        let (status, err) = api
            .post(
                "/api/v1/repos/acme/app/crons",
                json!({"name": "bad", "expr": "0 0 * * *"}),
            )
            .await;
        assert_eq!(status, 400, "five fields: {err}");
        let (status, job) = api
            .post(
                "/api/v1/repos/acme/app/crons",
                json!({"name": "nightly", "expr": "* * * * * *"}),
            )
            .await;
        assert_eq!(status, 201, "{job}");
        assert_eq!(job["branch"], "main");
        let deadline = Instant::now() + Duration::from_secs(20);
        let cron_build = loop {
            let (_, list) = api.get("/api/v1/repos/acme/app/builds").await;
            if let Some(b) = list
                .as_array()
                .and_then(|l| l.iter().find(|b| b["event"] == "cron").cloned())
            {
                break b;
            }
            assert!(Instant::now() < deadline, "no cron build: {list}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(cron_build["cron"], "nightly");
        let number = cron_build["number"].as_i64().expect("number");
        assert_eq!(
            api.wait_build("acme/app", number).await["status"],
            "success"
        );
        assert!(text_of(&api, number).await.contains("cron nightly"));

        let (status, _) = api
            .http_delete("/api/v1/repos/acme/app/crons/nightly")
            .await;
        assert_eq!(status, 204);
        let (_, crons) = api.get("/api/v1/repos/acme/app/crons").await;
        assert_eq!(crons, Value::Array(vec![]));
        server.stop().await;
    }
}
