//! A remote runner (the loop behind `skiff runner`) against a server without an in-process
//! runner: it long-polls `/rpc/v1/claim`, clones the commit from the repository's URL itself,
//! and reports logs, steps and the stage over HTTP; on PostgreSQL too.

mod common;

use common::*;
use serde_json::json;

const PIPELINE: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: remote
  commands:
  - echo remote runner says hi
  - cat README
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_runner_claims_and_reports_over_http() {
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
            "far-away",
            2,
            dir.path().join("runner-work"),
        );

        let origin = GitRepo::new(dir.path());
        let sha = origin.commit(PIPELINE, "cloned by the runner");
        let (status, _) = api
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                       "webhook_secret": HOOK_SECRET}),
            )
            .await;
        assert_eq!(status, 201);
        let body = gitea_push(
            "acme/app",
            "main",
            &"0".repeat(40),
            &sha,
            "cloned by the runner",
        );
        let (status, created) = api
            .hook("gitea", &gitea_headers("r-1", &body, HOOK_SECRET), &body)
            .await;
        assert_eq!(status, 201, "{created}");
        let build = api.wait_build("acme/app", 1).await;
        assert_eq!(build["status"], "success", "{build:#}");
        assert_eq!(build["stages"][0]["lease_owner"], "far-away");
        assert_eq!(build["stages"][0]["steps"][0]["status"], "success");
        let (_, logs) = api.get("/api/v1/repos/acme/app/builds/1/logs").await;
        let text = logs.to_string();
        assert!(text.contains("remote runner says hi"), "{text}");
        assert!(text.contains("cloned by the runner"), "{text}");

        runner.stop().await;
        server.stop().await;
    }
}
