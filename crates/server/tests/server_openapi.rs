//! The OpenAPI document: served unauthenticated, and fuzzed by schemathesis (PyPI, installed by
//! `scripts/schemathesis`) against a real server with real repositories, builds, crons and
//! secrets, on SQLite and on PostgreSQL. Any 5xx, or an answer the document does not describe
//! (status, content type, body schema), fails. Also: axum's own rejections answer
//! `{"error": reason}` like the handlers do.

mod common;

use common::{Client, GitRepo, Server, config, databases, open_store};
use serde_json::{Value, json};
use std::path::PathBuf;

const PIPELINE: &str = "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: hello\n  commands:\n  - echo hello from the fuzzed server\n";

/// Where `scripts/schemathesis` put the fuzzer; `None` (with SKIP printed) when it is missing,
/// a failure under CI=true.
fn schemathesis() -> Option<PathBuf> {
    let path = std::env::var_os("SKIFF_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("SKIFF_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/var/cache/skiff-testenv".into());
            cache.join("schemathesis-venv/bin/schemathesis")
        });
    if path.is_file() {
        return Some(path);
    }
    let reason = format!(
        "schemathesis is not installed at {} (run scripts/schemathesis)",
        path.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}");
    }
    eprintln!("SKIP: {reason}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_without_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = open_store(&common::Db::Sqlite, dir.path()).await;
    let server = Server::start(config(dir.path()), store).await;
    let http = reqwest::Client::new();

    let resp = http
        .get(format!("{}/api/v1/openapi.json", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/api/v1/repos/{owner}/{name}/builds"]["post"].is_object());
    // YAML aliases are expanded in the JSON form.
    assert_eq!(
        doc["paths"]["/hook/github"]["post"]["responses"],
        doc["paths"]["/hook/gitea"]["post"]["responses"]
    );
    assert!(doc["paths"]["/hook/gitlab"]["post"]["responses"]["201"].is_object());

    let resp = http
        .get(format!("{}/api/v1/openapi.yaml", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/yaml");
    assert!(
        resp.text()
            .await
            .expect("text")
            .starts_with("openapi: 3.0.3")
    );
    server.stop().await;
}

/// Each client error axum produces before a handler runs, with the status it keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_answer_json_errors_with_a_reason() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = open_store(&db, dir.path()).await;
        let server = Server::start(config(dir.path()), store).await;
        let client = Client::login(&server.url).await;
        let http = reqwest::Client::new();
        let url = |path: &str| format!("{}{path}", server.url);

        let cases = [
            // Not JSON at all.
            (
                http.post(url("/api/v1/repos"))
                    .bearer_auth(&client.token)
                    .header("content-type", "application/json")
                    .body("{not json"),
                400,
            ),
            // No Content-Type.
            (
                http.post(url("/api/v1/repos"))
                    .bearer_auth(&client.token)
                    .body("{}"),
                415,
            ),
            // JSON of the wrong shape (a missing field, an unknown one).
            (
                http.post(url("/api/v1/repos"))
                    .bearer_auth(&client.token)
                    .json(&json!({"slug": "a/b"})),
                422,
            ),
            (
                http.post(url("/api/v1/repos"))
                    .bearer_auth(&client.token)
                    .json(&json!({"slug": "a/b", "git_url": "x", "colour": "red"})),
                422,
            ),
            // A path parameter that is not a number.
            (
                http.get(url("/api/v1/repos/a/b/builds/first"))
                    .bearer_auth(&client.token),
                400,
            ),
            // A query parameter that is not a number.
            (
                http.get(url("/api/v1/repos/a/b/builds?limit=many"))
                    .bearer_auth(&client.token),
                400,
            ),
            // A method the route lacks.
            (
                http.delete(url("/api/v1/repos")).bearer_auth(&client.token),
                405,
            ),
            (
                http.get(url("/api/v1/no/such/thing"))
                    .bearer_auth(&client.token),
                404,
            ),
            (http.get(url("/api/v1/user")), 401),
        ];
        for (request, status) in cases {
            let resp = request.send().await.expect("send");
            let what = format!("{} {}", resp.status(), resp.url());
            assert_eq!(resp.status().as_u16(), status, "{what}");
            let allow = resp.headers().get("allow").cloned();
            assert_eq!(resp.headers()["content-type"], "application/json", "{what}");
            let body: Value = resp.json().await.expect("json body");
            let reason = body["error"].as_str().unwrap_or_default();
            assert!(!reason.is_empty(), "{what}: {body}");
            if status == 405 {
                assert!(allow.is_some(), "405 keeps its Allow header");
                assert_eq!(reason, "method not allowed");
            }
        }
        server.stop().await;
    }
}

/// Text with a NUL byte, which PostgreSQL cannot store, is refused or not found — never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_input_are_client_errors() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = open_store(&db, dir.path()).await;
        let server = Server::start(config(dir.path()), store).await;
        let client = Client::login(&server.url).await;
        let (status, body) = client
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/widgets", "git_url": "/nowhere"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");

        let (status, body) = client.get("/api/v1/repos/acme%00/widgets").await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = client
            .http_delete("/api/v1/repos/acme/widgets/secrets/a%00b")
            .await;
        assert_eq!(status, 404, "{body}");
        let (status, body) = client
            .http_delete("/api/v1/repos/acme/widgets/crons/a%00b")
            .await;
        assert_eq!(status, 404, "{body}");
        for request in [
            json!({"slug": "acme/nul", "git_url": "/a\u{0}b"}),
            json!({"slug": "acme/nul", "git_url": "/a", "config_path": "x\u{0}"}),
            json!({"slug": "acme/nul", "git_url": "/a", "default_branch": "m\u{0}"}),
        ] {
            let (status, body) = client.post("/api/v1/repos", request).await;
            assert_eq!(status, 400, "{body}");
        }
        let (status, body) = client
            .post(
                "/api/v1/repos/acme/widgets/crons",
                json!({"name": "nightly", "expr": "@daily", "branch": "b\u{0}"}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/login", server.url))
            .json(&json!({"username": "ad\u{0}min", "password": "x"}))
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status(), 401);
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/user", server.url))
            .basic_auth("ad\u{0}min", Some("x"))
            .send()
            .await
            .expect("user");
        assert_eq!(resp.status(), 401);
        let payload = json!({"repository": {"full_name": "acme\u{0}/widgets"}});
        let (status, body) = client
            .hook(
                "gitea",
                &[("X-Gitea-Event", "push".into())],
                payload.to_string().as_bytes(),
            )
            .await;
        assert_eq!(status, 404, "{body}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let Some(fuzzer) = schemathesis() else {
        return;
    };
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = GitRepo::new(dir.path());
        origin.commit(PIPELINE, "init");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let server = Server::start(config(&data), store).await;
        let client = Client::login(&server.url).await;

        // Things for the examples in the document to find: acme/widgets with a finished
        // build #1, a cron job and a secret; a second repository.
        let git_url = origin.path.to_string_lossy().into_owned();
        for slug in ["acme/widgets", "acme/gadgets"] {
            let (status, body) = client
                .post(
                    "/api/v1/repos",
                    json!({"slug": slug, "git_url": git_url, "timeout_secs": 60}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let (status, body) = client
            .post(
                "/api/v1/repos/acme/widgets/builds",
                json!({"branch": "main"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let build = client.wait_build("acme/widgets", 1).await;
        assert_eq!(build["status"], "success", "{build}");
        let (status, body) = client
            .post(
                "/api/v1/repos/acme/widgets/crons",
                json!({"name": "nightly", "expr": "0 0 3 * * *"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = client
            .post(
                "/api/v1/repos/acme/widgets/secrets",
                json!({"name": "token", "value": "s3cret"}),
            )
            .await;
        assert_eq!(status, 204, "{body}");

        // Bounded and deterministic by default; SKIFF_SCHEMATHESIS_EXAMPLES / _SEED explore more.
        let examples = std::env::var("SKIFF_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "25".into());
        let seed = std::env::var("SKIFF_SCHEMATHESIS_SEED").unwrap_or_else(|_| "4".into());
        let work = dir.path().join("schemathesis");
        std::fs::create_dir_all(&work).expect("mkdir");
        let output = tokio::process::Command::new(&fuzzer)
            .current_dir(&work)
            .args(["run", &format!("{}/api/v1/openapi.json", server.url)])
            .args(["--url", &server.url])
            .args([
                "--header",
                &format!("Authorization: Bearer {}", client.token),
            ])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance,response_headers_conformance,\
                 negative_data_rejection,positive_data_acceptance,missing_required_header,\
                 unsupported_method,allow_header_conformance,ignored_auth,use_after_free,\
                 ensure_resource_availability",
            ])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .args([
                "--max-examples",
                &examples,
                "--seed",
                &seed,
                "--workers",
                "1",
            ])
            .args(["--request-timeout", "60", "--generation-database", "none"])
            .args(["--no-color", "--suppress-health-check", "all"])
            .args(["--report", "junit", "--report-junit-path", "junit.xml"])
            .output()
            .await
            .expect("run schemathesis");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!("{stdout}");
        assert!(
            output.status.success(),
            "schemathesis found problems ({}):\n{stdout}\n{stderr}",
            output.status
        );
        // It really ran, and on every operation of the document (but the document's own URL,
        // which schemathesis leaves out).
        let doc: Value = reqwest::get(format!("{}/api/v1/openapi.json", server.url))
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let report = std::fs::read_to_string(work.join("junit.xml")).expect("junit report");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                let label = format!("{} {path}", method.to_uppercase());
                if method == "parameters" || label == "GET /api/v1/openapi.json" {
                    continue;
                }
                assert!(
                    report.contains(&format!("name=\"{label}\"")),
                    "{label} was not tested:\n{report}"
                );
            }
        }
        server.stop().await;
    }
}
