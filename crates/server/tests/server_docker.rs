//! A build on the Docker backend through the whole server: webhook, claim, git checkout into the
//! workspace (bind-mounted into the step containers), logs back through the API. Needs a
//! Docker Engine (`eval "$(scripts/docker-testenv up)"`) with the `skiff-test/busybox:1`
//! image (`scripts/test-images`); skips with a reason when `DOCKER_HOST` is unset, fails
//! instead under CI=true.

mod common;

use common::*;
use serde_json::json;

const PIPELINE: &str = "kind: pipeline
type: docker
name: containers
steps:
- name: inside
  image: skiff-test/busybox:1
  pull: never
  commands:
  - echo hello from a container
  - cat README
  - echo workspace $DRONE_WORKSPACE
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pipeline_runs_in_containers() {
    if std::env::var("DOCKER_HOST").unwrap_or_default().is_empty() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("DOCKER_HOST is not set; run scripts/docker-testenv up");
        }
        eprintln!("skipping: DOCKER_HOST is not set (scripts/docker-testenv up)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (store, _) = open_store(&Db::Sqlite, &data).await;
    let server = Server::start(config(&data), store).await;
    let api = Client::login(&server.url).await;
    let origin = GitRepo::new(dir.path());
    let sha = origin.commit(PIPELINE, "readme text from git");
    let (status, repo) = api
        .post(
            "/api/v1/repos",
            json!({"slug": "acme/boxed", "git_url": origin.path.to_string_lossy(),
                   "webhook_secret": HOOK_SECRET}),
        )
        .await;
    assert_eq!(status, 201, "{repo}");
    let body = gitea_push(
        "acme/boxed",
        "main",
        &"0".repeat(40),
        &sha,
        "readme text from git",
    );
    let (status, created) = api
        .hook(
            "gitea",
            &gitea_headers("docker-1", &body, HOOK_SECRET),
            &body,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let build = api.wait_build("acme/boxed", 1).await;
    assert_eq!(build["status"], "success", "{build:#}");
    let (_, logs) = api.get("/api/v1/repos/acme/boxed/builds/1/logs").await;
    let text = logs.to_string();
    assert!(text.contains("hello from a container"), "{text}");
    assert!(
        text.contains("readme text from git"),
        "the checkout is the workspace: {text}"
    );
    assert!(text.contains("workspace /drone/src"), "{text}");
    server.stop().await;
}
