//! Test harness for the control plane: a real HTTP server from the library's router on a free
//! port, on SQLite or on a fresh PostgreSQL database (`SKIFF_TEST_DATABASE_URL`, from
//! `eval "$(scripts/postgres-testenv up)"`; with CI=true its absence fails the test), plus real
//! git repositories made with the `git` CLI and signed forge payloads.
#![allow(dead_code)]

use serde_json::{Value, json};
use skiff_server::{App, ServerConfig};
use skiff_store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";
pub const HOOK_SECRET: &str = "hook-secret";

/// Where a test's database lives, so a restarted server can reopen it.
#[derive(Clone)]
pub enum Db {
    Sqlite,
    Postgres(String),
}

/// The databases to run on: SQLite always, PostgreSQL when configured.
pub fn databases() -> Vec<Db> {
    let mut all = vec![Db::Sqlite];
    match std::env::var("SKIFF_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => all.push(Db::Postgres(url)),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("SKIFF_TEST_DATABASE_URL is not set; run scripts/postgres-testenv up");
            }
            eprintln!("skipping PostgreSQL: SKIFF_TEST_DATABASE_URL is not set");
        }
    }
    all
}

pub fn config(data_dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir.to_path_buf());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.public_url = "http://skiff.test".into();
    config.lease = Duration::from_secs(2);
    config.poll_interval = Duration::from_millis(100);
    config.cron_interval = Duration::from_millis(200);
    config
}

/// Opens the test's store: SQLite under `data_dir`, or a new PostgreSQL database whose URL is
/// returned so a restart can reconnect.
pub async fn open_store(db: &Db, data_dir: &Path) -> (Store, Option<String>) {
    match db {
        Db::Sqlite => (
            Store::open_sqlite(&data_dir.join("skiff.db"))
                .await
                .expect("sqlite"),
            None,
        ),
        Db::Postgres(url) => {
            let url = Store::create_postgres_database(url)
                .await
                .expect("create database");
            let store = Store::connect(&url).await.expect("postgres");
            (store, Some(url))
        }
    }
}

/// A running server.
pub struct Server {
    pub url: String,
    pub app_stop: tokio_util::sync::CancellationToken,
    pub store: Store,
    serve: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(config: ServerConfig, store: Store) -> Server {
        let app: App = skiff_server::app_with_store(config, store)
            .await
            .expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app.router.clone();
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let app_stop = app.stop_token();
        let store = app.store.clone();
        Server {
            url,
            app_stop,
            store,
            serve,
            tasks: app.tasks,
        }
    }

    pub async fn stop(self) {
        self.app_stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.serve.abort();
    }
}

pub struct Client {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Client {
    pub async fn login(base: &str) -> Client {
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{base}/api/v1/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.expect("json");
        Client {
            base: base.into(),
            token: body["token"].as_str().expect("token").into(),
            http,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn http_delete(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("delete");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Sends a webhook with the given headers and exact body.
    pub async fn hook(
        &self,
        provider: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/hook/{provider}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("hook");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls a build until it ends.
    pub async fn wait_build(&self, slug: &str, number: i64) -> Value {
        for _ in 0..600 {
            let (status, build) = self
                .get(&format!("/api/v1/repos/{slug}/builds/{number}"))
                .await;
            assert_eq!(status, 200, "{build}");
            if build["finished"].as_i64().unwrap_or(0) > 0 {
                return build;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("build {slug}#{number} did not finish");
    }
}

pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(aws_lc_rs::hmac::sign(&key, body).as_ref())
}

/// A git repository on disk with one commit per call to [`GitRepo::commit`].
pub struct GitRepo {
    pub path: PathBuf,
}

impl GitRepo {
    pub fn new(dir: &Path) -> GitRepo {
        let path = dir.join("origin");
        std::fs::create_dir_all(&path).expect("mkdir");
        let repo = GitRepo { path };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.path)
            .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
            .args(args)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Writes `.drone.yml` and commits it on the current branch; returns the sha.
    pub fn commit(&self, pipeline: &str, message: &str) -> String {
        std::fs::write(self.path.join(".drone.yml"), pipeline).expect("write");
        std::fs::write(self.path.join("README"), message).expect("write");
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

/// A Gitea push payload in Gitea's format.
pub fn gitea_push(slug: &str, branch: &str, before: &str, sha: &str, message: &str) -> Vec<u8> {
    let (owner, name) = slug.split_once('/').expect("slug");
    serde_json::to_vec(&json!({
        "ref": format!("refs/heads/{branch}"),
        "before": before,
        "after": sha,
        "compare_url": "",
        "commits": [{
            "id": sha, "message": format!("{message}\n"), "url": "",
            "author": {"name": "Test", "email": "test@example.com", "username": "test"},
            "committer": {"name": "Test", "email": "test@example.com", "username": "test"},
            "timestamp": "2026-11-25T10:00:00Z"
        }],
        "head_commit": {
            "id": sha, "message": format!("{message}\n"), "url": "",
            "author": {"name": "Test", "email": "test@example.com", "username": "test"},
            "committer": {"name": "Test", "email": "test@example.com", "username": "test"},
            "timestamp": "2026-11-25T10:00:00Z"
        },
        "repository": {
            "id": 1, "name": name, "full_name": slug,
            "owner": {"id": 1, "login": owner, "username": owner},
            "private": false, "default_branch": "main",
            "clone_url": format!("http://gitea.test/{slug}.git")
        },
        "pusher": {"id": 1, "login": "test", "username": "test"},
        "sender": {"id": 1, "login": "test", "username": "test"}
    }))
    .expect("json")
}

pub fn gitea_headers(delivery: &str, body: &[u8], secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Gitea-Event", "push".into()),
        ("X-Gitea-Delivery", delivery.into()),
        ("X-Gitea-Signature", hmac_hex(secret, body)),
    ]
}

/// A `skiff runner` loop (the library's `remote::run`) against `server`, in this process.
pub struct Runner {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<(), skiff_server::Error>>,
}

impl Runner {
    /// Starts a remote runner named `name` with capacity `capacity`, no labels and no built-ins,
    /// working under `work_dir`.
    pub fn spawn(
        server: &str,
        token: &str,
        name: &str,
        capacity: usize,
        work_dir: PathBuf,
    ) -> Runner {
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(skiff_server::remote::run(
            skiff_server::remote::RemoteRunner {
                server: server.to_string(),
                token: token.to_string(),
                name: name.into(),
                capacity,
                work_dir,
                labels: Default::default(),
                builtins: Default::default(),
            },
            stop.clone(),
        ));
        Runner { stop, task }
    }

    /// Stops it (running steps are killed, their stages released) and checks it ended cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("join").expect("runner ends cleanly");
    }
}

/// A GitHub `pull_request` (opened) payload for `acme/app`; a `head_repo` other than
/// `acme/app` makes it a pull request from a fork.
pub fn pr_body(number: i64, head_repo: &str, head: &str, base: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "action": "opened", "number": number,
        "pull_request": {"number": number, "title": "change", "user": {"login": "bob"},
            "head": {"ref": "feature", "sha": head, "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "sha": base, "repo": {"full_name": "acme/app"}}},
        "repository": {"full_name": "acme/app", "name": "app", "owner": {"login": "acme"}}
    }))
    .expect("json")
}

/// Delivers a signed GitHub pull request webhook and returns the build number it made.
pub async fn pull_request(api: &Client, delivery: &str, body: &[u8]) -> i64 {
    let headers = vec![
        ("X-GitHub-Event", "pull_request".to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(HOOK_SECRET, body)),
        ),
    ];
    let (status, created) = api.hook("github", &headers, body).await;
    assert_eq!(status, 201, "{created}");
    created["build"]["number"].as_i64().expect("number")
}
