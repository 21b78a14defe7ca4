//! End to end over HTTP on SQLite and PostgreSQL: a repository pointing at a real git
//! repository, a Gitea push webhook in Gitea's format with a valid signature, the build run by
//! the in-process runner (exec pipelines: no Docker needed), its masked log lines read back
//! through the API; redelivery, bad signatures, malformed payloads, an unmatched trigger and an
//! invalid pipeline file.

mod common;

use common::*;
use serde_json::{Value, json};

const PIPELINE: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: greet
  environment:
    TOKEN:
      from_secret: token
  commands:
  - echo hello from skiff
  - echo \"token is $TOKEN\"
  - test -f README
- name: build
  commands:
  - echo build number $DRONE_BUILD_NUMBER on $DRONE_BRANCH
trigger:
  branch: [main]
";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_push_runs_a_build_once_and_rejects_bad_hooks() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let backend = store.backend();
        let server = Server::start(config(&data), store).await;
        let api = Client::login(&server.url).await;

        let origin = GitRepo::new(dir.path());
        let sha = origin.commit(PIPELINE, "first");

        let (status, repo) = api
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                       "webhook_secret": HOOK_SECRET}),
            )
            .await;
        assert_eq!(status, 201, "{repo}");
        let (status, _) = api
            .post(
                "/api/v1/repos/acme/app/secrets",
                json!({"name": "token", "value": "hunter2-secret"}),
            )
            .await;
        assert_eq!(status, 204);
        let (_, secrets) = api.get("/api/v1/repos/acme/app/secrets").await;
        assert_eq!(
            secrets.to_string(),
            r#"[{"name":"token","pull_request":false}]"#,
            "write-only"
        );

        // A signed push makes build 1, which runs to success.
        let body = gitea_push("acme/app", "main", &"0".repeat(40), &sha, "first");
        let (status, created) = api
            .hook(
                "gitea",
                &gitea_headers("delivery-1", &body, HOOK_SECRET),
                &body,
            )
            .await;
        assert_eq!(status, 201, "{backend}: {created}");
        assert_eq!(created["build"]["number"], 1);
        let build = api.wait_build("acme/app", 1).await;
        assert_eq!(build["status"], "success", "{backend}: {build:#}");
        assert_eq!(build["stages"][0]["steps"][0]["status"], "success");
        let (status, logs) = api.get("/api/v1/repos/acme/app/builds/1/logs").await;
        assert_eq!(status, 200);
        let text = log_text(&logs);
        assert!(text.contains("hello from skiff"), "{text}");
        assert!(text.contains("build number 1 on main"), "{text}");
        assert!(text.contains("token is ******"), "secret masked: {text}");
        assert!(!text.contains("hunter2"), "{text}");

        // The same lines as Server-Sent Events, ending with the build's status.
        let sse = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/repos/acme/app/builds/1/logs/stream",
                server.url
            ))
            .bearer_auth(&api.token)
            .send()
            .await
            .expect("stream");
        assert_eq!(sse.status(), 200);
        let events = sse.text().await.expect("events");
        assert!(events.contains("event: line"), "{events}");
        assert!(events.contains("hello from skiff"), "{events}");
        assert!(
            events.contains("event: done\ndata: {\"error\":\"\",\"status\":\"success\"}"),
            "{events}"
        );

        let metrics = reqwest::get(format!("{}/metrics", server.url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            metrics.contains("skiff_ci_builds{status=\"success\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("skiff_ci_stages{status=\"success\"} 1"),
            "{metrics}"
        );

        // The same delivery again: no second build.
        let (status, again) = api
            .hook(
                "gitea",
                &gitea_headers("delivery-1", &body, HOOK_SECRET),
                &body,
            )
            .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["status"], "duplicate");
        let (_, list) = api.get("/api/v1/repos/acme/app/builds").await;
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

        // A wrong signature, none at all, a malformed body.
        let (status, err) = api
            .hook("gitea", &gitea_headers("delivery-2", &body, "wrong"), &body)
            .await;
        assert_eq!(status, 401);
        assert!(
            err["error"]
                .as_str()
                .unwrap_or("")
                .contains("does not match"),
            "{err}"
        );
        let (status, err) = api
            .hook(
                "gitea",
                &[
                    ("X-Gitea-Event", "push".into()),
                    ("X-Gitea-Delivery", "d3".into()),
                ],
                &body,
            )
            .await;
        assert_eq!(status, 401);
        assert!(
            err["error"]
                .as_str()
                .unwrap_or("")
                .contains("X-Gitea-Signature"),
            "{err}"
        );
        let junk = b"{not json";
        let (status, err) = api
            .hook(
                "gitea",
                &gitea_headers("delivery-4", junk, HOOK_SECRET),
                junk,
            )
            .await;
        assert_eq!(status, 400, "{err}");

        // A push to a branch the trigger excludes makes no build and consumes no number.
        origin.git(&["checkout", "-q", "-b", "other"]);
        let other = origin.commit(PIPELINE, "on other");
        let body = gitea_push("acme/app", "other", &sha, &other, "on other");
        let (status, ignored) = api
            .hook(
                "gitea",
                &gitea_headers("delivery-5", &body, HOOK_SECRET),
                &body,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(ignored["status"], "ignored", "{ignored}");

        // An invalid file: a failed build whose error names line and column.
        origin.git(&["checkout", "-q", "main"]);
        let bad = origin.commit(
            "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: a\n  comands: [true]\n",
            "typo",
        );
        let body = gitea_push("acme/app", "main", &sha, &bad, "typo");
        let (status, created) = api
            .hook(
                "gitea",
                &gitea_headers("delivery-6", &body, HOOK_SECRET),
                &body,
            )
            .await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(
            created["build"]["number"], 2,
            "the ignored push took no number"
        );
        assert_eq!(created["build"]["status"], "error");
        let error = created["build"]["error"].as_str().unwrap_or("");
        assert!(error.contains(".drone.yml:6:3"), "{error}");

        // A skip directive makes no build.
        let skipped = origin.commit(PIPELINE, "docs [ci skip]");
        let body = gitea_push("acme/app", "main", &bad, &skipped, "docs [ci skip]");
        let (status, ignored) = api
            .hook(
                "gitea",
                &gitea_headers("delivery-7", &body, HOOK_SECRET),
                &body,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(ignored["status"], "ignored", "{ignored}");

        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requires_auth_and_health_endpoints_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open_store(&Db::Sqlite, dir.path()).await;
    {
        let other = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(other.path());
        cfg.runner = false;
        let app = skiff_server::app_with_store(cfg, store.clone())
            .await
            .expect("app");
        assert!(app.verify_admin("admin", ADMIN_PASSWORD).await);
        assert!(!app.verify_admin("admin", "wrong").await);
        assert!(!app.verify_admin("nobody", ADMIN_PASSWORD).await);
        app.shutdown().await;
    }
    let server = Server::start(config(dir.path()), store).await;
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/api/v1/user", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "authentication required");
    // Anonymous callers list public repositories only (there are none here).
    let resp = http
        .get(format!("{}/api/v1/repos", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        serde_json::json!([])
    );
    let resp = http
        .get(format!("{}/api/v1/repos", server.url))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 401);
    let resp = http
        .get(format!("{}/api/v1/repos", server.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    for path in ["/healthz", "/readyz"] {
        let resp = http
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), 200, "{path}");
    }
    server.stop().await;
}
