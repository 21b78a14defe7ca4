//! Durability: the server is killed in the middle of a build (its whole runtime dropped, so
//! nothing is released or recorded), a new server starts on the same database, the dead
//! runner's lease expires, and the stage runs again from the start and completes exactly once.

mod common;

use common::*;
use skiff_store::Store;
use std::time::{Duration, Instant};

const SLOW: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: slow
  commands:
  - echo starting
  - sleep 3
  - echo finished
";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn killed_server_mid_build_loses_nothing_and_runs_the_stage_once() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let origin = GitRepo::new(dir.path());
        let sha = origin.commit(SLOW, "slow build");

        // First life: the build starts, then the server dies.
        let first = runtime();
        let pg_url = first.block_on(async {
            let (store, pg_url) = open_store(&db, &data).await;
            let server = Server::start(config(&data), store).await;
            let api = Client::login(&server.url).await;
            let (status, repo) = api
                .post(
                    "/api/v1/repos",
                    serde_json::json!({"slug": "acme/slow", "git_url": origin.path.to_string_lossy(),
                           "webhook_secret": HOOK_SECRET}),
                )
                .await;
            assert_eq!(status, 201, "{repo}");
            let body = gitea_push("acme/slow", "main", &"0".repeat(40), &sha, "slow build");
            let (status, created) = api
                .hook("gitea", &gitea_headers("d-1", &body, HOOK_SECRET), &body)
                .await;
            assert_eq!(status, 201, "{created}");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let (_, build) = api.get("/api/v1/repos/acme/slow/builds/1/logs").await;
                if build.to_string().contains("starting") {
                    break;
                }
                assert!(Instant::now() < deadline, "the build never started: {build}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            std::mem::forget(server);
            pg_url
        });
        // kill -9, as far as this process can: every task of that server vanishes mid-step.
        first.shutdown_background();

        // Second life on the same database and data directory.
        let second = runtime();
        second.block_on(async {
            let store = match &pg_url {
                Some(url) => Store::connect(url).await.expect("reconnect"),
                None => Store::open_sqlite(&data.join("skiff.db"))
                    .await
                    .expect("reopen"),
            };
            let server = Server::start(config(&data), store.clone()).await;
            let api = Client::login(&server.url).await;
            let build = api.wait_build("acme/slow", 1).await;
            assert_eq!(build["status"], "success", "{build:#}");
            assert_eq!(
                build["stages"][0]["attempts"], 2,
                "run again after the lease expired"
            );
            let (_, list) = api.get("/api/v1/repos/acme/slow/builds").await;
            assert_eq!(list.as_array().map(Vec::len), Some(1), "no duplicate build");
            let (_, logs) = api.get("/api/v1/repos/acme/slow/builds/1/logs").await;
            let lines: Vec<String> = logs["steps"][0]["lines"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["out"].as_str().map(String::from))
                .collect();
            let finished = lines.iter().filter(|l| l.as_str() == "finished").count();
            let started = lines.iter().filter(|l| l.as_str() == "starting").count();
            assert_eq!(
                (started, finished),
                (1, 1),
                "the logs of one complete run: {lines:?}"
            );
            server.stop().await;
        });
    }
}
