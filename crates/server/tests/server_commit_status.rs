//! Commit statuses back to the forges, end to end through the real server, its in-process
//! runner and a remote runner (exec pipelines, real git), on SQLite and PostgreSQL.
//!
//! GitHub and GitLab cannot run on this machine (and a real Gitea only when its binary was
//! built, see `server_gitea.rs`), so the forge here is a small recording HTTP server (axum)
//! that implements the three documented status endpoints and checks what each real API
//! requires: the path (`POST /repos/{o}/{r}/statuses/{sha}` for GitHub,
//! `/api/v1/repos/{o}/{r}/statuses/{sha}` for Gitea, `/api/v4/projects/{url-encoded path}/
//! statuses/{sha}` for GitLab), the auth header (`Authorization: Bearer T`, `token T`,
//! `PRIVATE-TOKEN: T`) and the JSON body (state from the forge's own set, context or name,
//! target_url, description). Anything else is answered 4xx and counted as a rejection; the
//! test asserts there are none. Its first GitLab request is answered 503 to prove retries.

mod common;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::*;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const GITHUB_TOKEN: &str = "ghp_recorder-token";
const GITEA_TOKEN: &str = "gitea-recorder-token";
const GITLAB_TOKEN: &str = "glpat-recorder-token";

const PASSING: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: ok
  commands:
  - echo fine
";

const FAILING: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: broken
  commands:
  - echo about to fail
  - exit 3
";

const SLOW: &str = "kind: pipeline
type: exec
name: slow
steps:
- name: wait
  commands:
  - echo waiting
  - sleep 60
";

/// One accepted status: which forge, for which repository and commit, and what it said.
#[derive(Debug, Clone)]
struct Recorded {
    forge: &'static str,
    repo: String,
    sha: String,
    state: String,
    context: String,
    description: String,
    target_url: String,
}

#[derive(Default)]
struct Log {
    accepted: Vec<Recorded>,
    rejected: Vec<String>,
    /// GitLab requests seen, to fail the first one.
    gitlab_requests: usize,
}

type Shared = Arc<Mutex<Log>>;

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn reject(log: &Shared, status: StatusCode, why: String) -> (StatusCode, Json<Value>) {
    log.lock().expect("lock").rejected.push(why.clone());
    (status, Json(json!({ "message": why })))
}

/// The fields all three APIs share, checked: a state from `states`, a non-empty description
/// and an http(s) target URL. Returns (state, description, target_url).
fn common_fields(body: &Value, states: &[&str]) -> Result<(String, String, String), String> {
    let state = body["state"].as_str().unwrap_or_default();
    if !states.contains(&state) {
        return Err(format!("state `{state}` is not one of {states:?}"));
    }
    let description = body["description"].as_str().unwrap_or_default();
    let target_url = body["target_url"].as_str().unwrap_or_default();
    if description.is_empty() || !target_url.starts_with("http") {
        return Err(format!("bad description or target_url in {body}"));
    }
    Ok((state.into(), description.into(), target_url.into()))
}

fn is_sha(sha: &str) -> bool {
    sha.len() == 40 && sha.chars().all(|c| c.is_ascii_hexdigit())
}

async fn github(
    State(log): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if header(&headers, "authorization") != format!("Bearer {GITHUB_TOKEN}") {
        return reject(&log, StatusCode::UNAUTHORIZED, "github: bad token".into());
    }
    if header(&headers, "user-agent").is_empty() || !is_sha(&sha) {
        return reject(
            &log,
            StatusCode::FORBIDDEN,
            "github: no user agent or sha".into(),
        );
    }
    let fields = common_fields(&body, &["pending", "success", "failure", "error"]);
    let context = body["context"].as_str().unwrap_or_default().to_string();
    match fields {
        Ok((state, description, target_url)) if !context.is_empty() => {
            log.lock().expect("lock").accepted.push(Recorded {
                forge: "github",
                repo: format!("{owner}/{repo}"),
                sha,
                state,
                context,
                description,
                target_url,
            });
            (StatusCode::CREATED, Json(body))
        }
        Ok(_) => reject(
            &log,
            StatusCode::UNPROCESSABLE_ENTITY,
            "github: no context".into(),
        ),
        Err(why) => reject(
            &log,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("github: {why}"),
        ),
    }
}

async fn gitea(
    State(log): State<Shared>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if header(&headers, "authorization") != format!("token {GITEA_TOKEN}") {
        return reject(&log, StatusCode::UNAUTHORIZED, "gitea: bad token".into());
    }
    let fields = common_fields(
        &body,
        &["pending", "success", "error", "failure", "warning"],
    );
    let context = body["context"].as_str().unwrap_or_default().to_string();
    match fields {
        Ok((state, description, target_url)) if !context.is_empty() && is_sha(&sha) => {
            log.lock().expect("lock").accepted.push(Recorded {
                forge: "gitea",
                repo: format!("{owner}/{repo}"),
                sha,
                state,
                context,
                description,
                target_url,
            });
            (StatusCode::CREATED, Json(body))
        }
        Ok(_) => reject(
            &log,
            StatusCode::UNPROCESSABLE_ENTITY,
            "gitea: no context".into(),
        ),
        Err(why) => reject(
            &log,
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("gitea: {why}"),
        ),
    }
}

async fn gitlab(
    State(log): State<Shared>,
    Path((project, sha)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    {
        let mut log = log.lock().expect("lock");
        log.gitlab_requests += 1;
        if log.gitlab_requests == 1 {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"message": "try again"})),
            );
        }
    }
    if header(&headers, "private-token") != GITLAB_TOKEN {
        return reject(&log, StatusCode::UNAUTHORIZED, "gitlab: bad token".into());
    }
    // The project is its path, URL-encoded into one segment (`acme%2Flab`).
    if !uri.path().contains(&project.replace('/', "%2F")) || !project.contains('/') {
        return reject(
            &log,
            StatusCode::NOT_FOUND,
            format!("gitlab: project not URL-encoded: {}", uri.path()),
        );
    }
    let states = [
        "pending", "running", "success", "failed", "canceled", "skipped",
    ];
    let fields = common_fields(&body, &states);
    let name = body["name"].as_str().unwrap_or_default().to_string();
    match fields {
        Ok((state, description, target_url)) if !name.is_empty() && is_sha(&sha) => {
            log.lock().expect("lock").accepted.push(Recorded {
                forge: "gitlab",
                repo: project,
                sha,
                state,
                context: name,
                description,
                target_url,
            });
            (StatusCode::CREATED, Json(body))
        }
        Ok(_) => reject(&log, StatusCode::BAD_REQUEST, "gitlab: no name".into()),
        Err(why) => reject(&log, StatusCode::BAD_REQUEST, format!("gitlab: {why}")),
    }
}

/// Starts the recording forge; returns its base URL and log.
async fn recording_forge() -> (String, Shared) {
    let log: Shared = Arc::default();
    let app = Router::new()
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(github))
        .route("/api/v1/repos/{owner}/{repo}/statuses/{sha}", post(gitea))
        .route("/api/v4/projects/{project}/statuses/{sha}", post(gitlab))
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, log)
}

/// The states the forge accepted for one repository, in order.
fn states(log: &Shared, repo: &str) -> Vec<Recorded> {
    log.lock()
        .expect("lock")
        .accepted
        .iter()
        .filter(|r| r.repo == repo)
        .cloned()
        .collect()
}

/// Waits until `repo` has `n` statuses (the reports are asynchronous), then returns them.
async fn wait_states(log: &Shared, repo: &str, n: usize) -> Vec<Recorded> {
    for _ in 0..600 {
        let got = states(log, repo);
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{repo}: expected {n} statuses, got {:#?}",
        states(log, repo)
    );
}

fn summary(records: &[Recorded]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| (r.state.clone(), r.description.clone()))
        .collect()
}

fn github_push(slug: &str, sha: &str) -> Vec<u8> {
    let (owner, name) = slug.split_once('/').expect("slug");
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": sha, "created": true,
        "deleted": false,
        "head_commit": {"id": sha, "message": "first", "author": {"name": "T", "email": "t@x", "username": "t"}},
        "repository": {"id": 1, "name": name, "full_name": slug, "owner": {"login": owner},
                       "default_branch": "main", "clone_url": "https://github.test/x.git",
                       "url": format!("https://api.github.com/repos/{slug}")},
        "pusher": {"name": "t"}, "sender": {"login": "t"}
    }))
    .expect("json")
}

/// Adds a repository with its own origin holding `pipeline`; returns the commit.
async fn add_repo(
    api: &Client,
    dir: &std::path::Path,
    slug: &str,
    pipeline: &str,
    forge: Value,
) -> String {
    let origin = GitRepo::new(&dir.join(slug.replace('/', "-")));
    let sha = origin.commit(pipeline, "first");
    let mut body = json!({"slug": slug, "git_url": origin.path.to_string_lossy(),
                          "webhook_secret": HOOK_SECRET});
    if let (Some(body), Some(forge)) = (body.as_object_mut(), forge.as_object()) {
        body.extend(forge.clone());
    }
    let (status, repo) = api.post("/api/v1/repos", body).await;
    assert_eq!(status, 201, "{repo}");
    sha
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_each_build_on_all_three_forges() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let server = Server::start(config(&data), store).await;
        let api = Client::login(&server.url).await;
        let (forge_url, log) = recording_forge().await;

        // GitHub, set with POST /repos fields: a passing push.
        let hub_sha = add_repo(
            &api,
            dir.path(),
            "acme/hub",
            PASSING,
            json!({"forge": "github", "forge_url": forge_url, "forge_token": GITHUB_TOKEN}),
        )
        .await;
        // Gitea and GitLab, set with PUT …/forge.
        let tea_sha = add_repo(&api, dir.path(), "acme/tea", FAILING, json!({})).await;
        let lab_sha = add_repo(&api, dir.path(), "acme/lab", SLOW, json!({})).await;
        let (status, body) = put(
            &api,
            "/api/v1/repos/acme/tea/forge",
            json!({"kind": "gitea", "url": format!("{forge_url}/api/v1"), "token": GITEA_TOKEN}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = put(
            &api,
            "/api/v1/repos/acme/lab/forge",
            json!({"kind": "gitlab", "url": forge_url, "token": GITLAB_TOKEN}),
        )
        .await;
        assert_eq!(status, 200, "{body}");

        let body = github_push("acme/hub", &hub_sha);
        let sig = format!("sha256={}", hmac_hex(HOOK_SECRET, &body));
        let headers = [
            ("X-GitHub-Event", "push".to_string()),
            ("X-GitHub-Delivery", "gh-1".into()),
            ("X-Hub-Signature-256", sig),
        ];
        let (status, answer) = api.hook("github", &headers, &body).await;
        assert_eq!(status, 201, "{answer}");
        let body = gitea_push("acme/tea", "main", &"0".repeat(40), &tea_sha, "first");
        let (status, answer) = api
            .hook("gitea", &gitea_headers("tea-1", &body, HOOK_SECRET), &body)
            .await;
        assert_eq!(status, 201, "{answer}");
        let (status, answer) = api
            .post("/api/v1/repos/acme/lab/builds", json!({"branch": "main"}))
            .await;
        assert_eq!(status, 201, "{answer}");

        let hub = api.wait_build("acme/hub", 1).await;
        assert_eq!(hub["status"], "success", "{hub:#}");
        let tea = api.wait_build("acme/tea", 1).await;
        assert_eq!(tea["status"], "failure", "{tea:#}");
        // The slow build: cancel it once it runs.
        for _ in 0..600 {
            let (_, build) = api.get("/api/v1/repos/acme/lab/builds/1").await;
            if build["status"] == "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, cancelled) = api
            .post("/api/v1/repos/acme/lab/builds/1/cancel", json!({}))
            .await;
        assert_eq!(status, 200, "{cancelled}");
        let lab = api.wait_build("acme/lab", 1).await;
        assert_eq!(lab["status"], "killed", "{lab:#}");

        let hub = wait_states(&log, "acme/hub", 3).await;
        assert_eq!(
            summary(&hub),
            [
                ("pending".into(), "Build is pending".into()),
                ("pending".into(), "Build is running".into()),
                ("success".into(), "Build is passing".into()),
            ]
        );
        assert!(hub.iter().all(|r| r.forge == "github"
            && r.sha == hub_sha
            && r.context == "continuous-integration/skiff/push"
            && r.target_url == "http://skiff.test/acme/hub/1"));

        let tea = wait_states(&log, "acme/tea", 3).await;
        assert_eq!(
            summary(&tea),
            [
                ("pending".into(), "Build is pending".into()),
                ("pending".into(), "Build is running".into()),
                ("failure".into(), "Build is failing".into()),
            ]
        );
        assert!(
            tea.iter()
                .all(|r| r.forge == "gitea" && r.sha == tea_sha && r.context.ends_with("/push"))
        );

        let lab = wait_states(&log, "acme/lab", 3).await;
        let lab_states: Vec<&str> = lab.iter().map(|r| r.state.as_str()).collect();
        assert_eq!(lab_states, ["pending", "running", "canceled"]);
        assert!(lab.iter().all(|r| r.forge == "gitlab"
            && r.sha == lab_sha
            && r.context == "continuous-integration/skiff/custom"));
        // The first GitLab request was answered 503 and retried.
        assert_eq!(log.lock().expect("lock").gitlab_requests, 4);

        // No state is reported twice, however often it is noticed (the sweep runs every
        // second here), and nothing was refused.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for repo in ["acme/hub", "acme/tea", "acme/lab"] {
            assert_eq!(
                states(&log, repo).len(),
                3,
                "{repo}: {:#?}",
                states(&log, repo)
            );
        }
        assert!(log.lock().expect("lock").rejected.is_empty());

        server.stop().await;
    }
}

async fn put(api: &Client, path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .json(&body)
        .send()
        .await
        .expect("put");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A remote runner (over `/rpc/v1`) moves the build; the server still reports every state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_from_builds_run_by_a_remote_runner() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let mut cfg = config(&data);
        cfg.runner = false;
        let server = Server::start(cfg, store).await;
        let api = Client::login(&server.url).await;
        let (forge_url, log) = recording_forge().await;
        let sha = add_repo(
            &api,
            dir.path(),
            "acme/far",
            PASSING,
            json!({"forge": "gitea", "forge_url": forge_url, "forge_token": GITEA_TOKEN}),
        )
        .await;

        let runner = Runner::spawn(
            &server.url,
            &api.token,
            "far-away",
            1,
            dir.path().join("runner-work"),
        );
        let body = gitea_push("acme/far", "main", &"0".repeat(40), &sha, "first");
        let (status, answer) = api
            .hook("gitea", &gitea_headers("far-1", &body, HOOK_SECRET), &body)
            .await;
        assert_eq!(status, 201, "{answer}");
        let build = api.wait_build("acme/far", 1).await;
        assert_eq!(build["status"], "success", "{build:#}");
        assert_eq!(build["stages"][0]["lease_owner"], "far-away");
        let got = wait_states(&log, "acme/far", 3).await;
        assert_eq!(
            summary(&got),
            [
                ("pending".into(), "Build is pending".into()),
                ("pending".into(), "Build is running".into()),
                ("success".into(), "Build is passing".into()),
            ]
        );
        runner.stop().await;
        server.stop().await;
    }
}

/// The forge settings API: the token is write-only (stored sealed), bad input is a 400 with a
/// reason, and a webhook records its forge when nothing is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_settings_are_write_only_and_checked() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let server = Server::start(config(&data), store).await;
        let api = Client::login(&server.url).await;

        let secret_token = "very-secret-forge-token";
        let origin = GitRepo::new(dir.path());
        let sha = origin.commit(PASSING, "first");
        let (status, repo) = api
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/app", "git_url": origin.path.to_string_lossy(),
                       "webhook_secret": HOOK_SECRET, "forge": "github",
                       "forge_token": secret_token}),
            )
            .await;
        assert_eq!(status, 201, "{repo}");
        assert_eq!(repo["forge"]["kind"], "github");
        assert_eq!(repo["forge"]["url"], "https://api.github.com");
        assert_eq!(repo["forge"]["token_set"], true);
        assert!(!repo.to_string().contains(secret_token));
        let (status, forge) = api.get("/api/v1/repos/acme/app/forge").await;
        assert_eq!(status, 200);
        assert_eq!(forge["token_set"], true);
        assert!(!forge.to_string().contains(secret_token));
        let (_, info) = api.get("/api/v1/repos/acme/app").await;
        assert!(!info.to_string().contains(secret_token));
        let row = server
            .store
            .forge(info["id"].as_i64().expect("id"))
            .await
            .expect("forge row")
            .expect("set");
        assert!(
            !row.sealed_token
                .windows(secret_token.len())
                .any(|w| w == secret_token.as_bytes()),
            "the token is stored sealed"
        );

        // Bad input: a reason, no change.
        for (body, reason) in [
            (
                json!({"kind": "bitbucket"}),
                "not one of gitea, github, gitlab",
            ),
            (json!({"kind": "gitea"}), "needs its URL"),
            (
                json!({"kind": "gitlab", "url": "gitlab.example.com"}),
                "http:// or https://",
            ),
            (json!({"kind": "github", "tokn": "x"}), "unknown field"),
        ] {
            let (status, answer) = put(&api, "/api/v1/repos/acme/app/forge", body).await;
            assert!(status == 400 || status == 422, "{status} {answer}");
            assert!(
                answer.to_string().contains(reason) || status == 422,
                "{answer}"
            );
        }
        let (status, answer) = api
            .post(
                "/api/v1/repos",
                json!({"slug": "acme/bad", "git_url": "/nowhere", "forge_token": "t"}),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains("need forge")
        );
        let (status, _) = api.get("/api/v1/repos/acme/bad").await;
        assert_eq!(status, 404, "a refused repository is not half created");
        let (status, _) = put(
            &api,
            "/api/v1/repos/acme/nope/forge",
            json!({"kind": "github"}),
        )
        .await;
        assert_eq!(status, 404);

        // Same forge without a token keeps it; an empty token removes it.
        let (_, kept) = put(
            &api,
            "/api/v1/repos/acme/app/forge",
            json!({"kind": "github"}),
        )
        .await;
        assert_eq!(kept["token_set"], true, "{kept}");
        let (_, cleared) = put(
            &api,
            "/api/v1/repos/acme/app/forge",
            json!({"kind": "github", "token": ""}),
        )
        .await;
        assert_eq!(cleared["token_set"], false, "{cleared}");
        let (status, _) = api.http_delete("/api/v1/repos/acme/app/forge").await;
        assert_eq!(status, 204);
        let (_, gone) = api.get("/api/v1/repos/acme/app/forge").await;
        assert_eq!(gone["kind"], Value::Null);

        // A Gitea webhook names its server: recorded as the forge, without a token.
        let mut payload: Value = serde_json::from_slice(&gitea_push(
            "acme/app",
            "main",
            &"0".repeat(40),
            &sha,
            "first",
        ))
        .expect("json");
        payload["repository"]["html_url"] = json!("http://gitea.example.com:3000/acme/app");
        let body = serde_json::to_vec(&payload).expect("json");
        let (status, answer) = api
            .hook("gitea", &gitea_headers("note-1", &body, HOOK_SECRET), &body)
            .await;
        assert_eq!(status, 201, "{answer}");
        let (_, noted) = api.get("/api/v1/repos/acme/app/forge").await;
        assert_eq!(noted["kind"], "gitea", "{noted}");
        assert_eq!(noted["url"], "http://gitea.example.com:3000");
        assert_eq!(noted["token_set"], false);
        // Settings made by hand are not overwritten by later webhooks.
        let (_, set) = put(
            &api,
            "/api/v1/repos/acme/app/forge",
            json!({"kind": "gitea", "url": "https://git.example.org", "token": "t"}),
        )
        .await;
        assert_eq!(set["url"], "https://git.example.org");
        let body = serde_json::to_vec(&payload).expect("json");
        let (status, _) = api
            .hook("gitea", &gitea_headers("note-2", &body, HOOK_SECRET), &body)
            .await;
        assert!(status == 200 || status == 201);
        let (_, still) = api.get("/api/v1/repos/acme/app/forge").await;
        assert_eq!(still["url"], "https://git.example.org");

        api.wait_build("acme/app", 1).await;
        server.stop().await;
    }
}
