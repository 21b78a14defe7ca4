//! Commit statuses on a real Gitea: the test starts Gitea (built from its Go module by
//! `scripts/gitea-testenv build`, cached in `$SKIFF_GITEA_DIR`), creates a user, an API token
//! and a repository through Gitea's API, points a Gitea webhook at Skiff, commits a pipeline
//! through Gitea's contents API (so Gitea itself delivers the push), lets the in-process runner
//! run it (exec pipeline, no Docker) and reads the statuses back from Gitea's API; on SQLite
//! and PostgreSQL.
//!
//! Gated on the Gitea binary: without it the test prints SKIP, also under CI=true (a cold Gitea
//! build takes longer than the test environment's budget, so `scripts/test` does not build it).

mod common;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const GITEA_USER: &str = "skiffbot";
const GITEA_PASSWORD: &str = "gitea-test-password-1";

const PIPELINE: &str = "kind: pipeline
type: exec
name: ci
steps:
- name: hello
  commands:
  - echo built on gitea
";

fn gitea_dir() -> Option<PathBuf> {
    let dir = std::env::var("SKIFF_GITEA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let cache =
                std::env::var("SKIFF_CACHE").unwrap_or_else(|_| "/var/cache/skiff-testenv".into());
            Path::new(&cache).join("gitea/v1.27.3")
        });
    dir.join("gitea").is_file().then_some(dir)
}

/// A Gitea process on a free port, killed on drop.
struct Gitea {
    url: String,
    child: Child,
}

impl Drop for Gitea {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn gitea_command(gitea: &Path, work: &Path) -> Command {
    let mut cmd = Command::new(gitea.join("gitea"));
    cmd.arg("--config")
        .arg(work.join("app.ini"))
        .arg("--work-path")
        .arg(work)
        .env("GITEA_WORK_DIR", work)
        .env("HOME", work)
        // Gitea refuses root unless told; the test machine runs tests as root.
        .env("GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT", "true");
    cmd
}

async fn start_gitea(gitea: &Path, work: &Path) -> Gitea {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let ini = format!(
        "APP_NAME = skiff-test\nRUN_MODE = prod\nRUN_USER = {user}\nWORK_PATH = {work}\n\
         I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true\n\n\
         [server]\nPROTOCOL = http\nHTTP_ADDR = 127.0.0.1\nHTTP_PORT = {port}\n\
         ROOT_URL = {url}/\nDOMAIN = 127.0.0.1\nSTATIC_ROOT_PATH = {static_root}\n\
         APP_DATA_PATH = {work}/data\nDISABLE_SSH = true\nOFFLINE_MODE = true\n\
         LFS_START_SERVER = false\n\n\
         [database]\nDB_TYPE = sqlite3\nPATH = {work}/gitea.db\n\n\
         [repository]\nROOT = {work}/repos\nDEFAULT_BRANCH = main\n\n\
         [security]\nINSTALL_LOCK = true\nSECRET_KEY = skiff-test-secret-key\n\n\
         [service]\nDISABLE_REGISTRATION = true\n\n\
         [webhook]\nALLOWED_HOST_LIST = loopback\nDELIVER_TIMEOUT = 30\n\n\
         [session]\nPROVIDER = memory\n\n[cache]\nADAPTER = memory\n\n\
         [mailer]\nENABLED = false\n\n[log]\nMODE = console\nLEVEL = warn\n",
        work = work.display(),
        static_root = gitea.display(),
    );
    std::fs::write(work.join("app.ini"), ini).expect("app.ini");
    let migrate = gitea_command(gitea, work)
        .arg("migrate")
        .output()
        .expect("gitea migrate");
    assert!(
        migrate.status.success(),
        "gitea migrate: {}{}",
        String::from_utf8_lossy(&migrate.stdout),
        String::from_utf8_lossy(&migrate.stderr)
    );
    let admin = gitea_command(gitea, work)
        .args([
            "admin",
            "user",
            "create",
            "--admin",
            "--username",
            GITEA_USER,
        ])
        .args(["--password", GITEA_PASSWORD, "--email", "bot@example.com"])
        .arg("--must-change-password=false")
        .output()
        .expect("gitea admin user create");
    assert!(
        admin.status.success(),
        "gitea admin user create: {}{}",
        String::from_utf8_lossy(&admin.stdout),
        String::from_utf8_lossy(&admin.stderr)
    );
    let log = std::fs::File::create(work.join("gitea.log")).expect("log");
    let child = gitea_command(gitea, work)
        .arg("web")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start gitea");
    let gitea = Gitea { url, child };
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(resp) = http
            .get(format!("{}/api/v1/version", gitea.url))
            .send()
            .await
            && resp.status().is_success()
        {
            return gitea;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "gitea did not answer: {}",
        std::fs::read_to_string(work.join("gitea.log")).unwrap_or_default()
    );
}

async fn gitea_call(req: reqwest::RequestBuilder, what: &str) -> Value {
    let resp = req.send().await.expect(what);
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{what}: {status} {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_on_a_real_gitea() {
    let Some(gitea_dir) = gitea_dir() else {
        eprintln!(
            "SKIP: no Gitea binary (run scripts/gitea-testenv build, or set SKIFF_GITEA_DIR); \
             this test is gated on it, also under CI=true"
        );
        return;
    };
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let work = dir.path().join("gitea");
        std::fs::create_dir_all(&work).expect("mkdir");
        let gitea = start_gitea(&gitea_dir, &work).await;
        let http = reqwest::Client::new();
        let api_url = format!("{}/api/v1", gitea.url);

        let token = gitea_call(
            http.post(format!("{api_url}/users/{GITEA_USER}/tokens"))
                .basic_auth(GITEA_USER, Some(GITEA_PASSWORD))
                .json(&json!({"name": "skiff", "scopes": ["write:repository", "write:user"]})),
            "create a Gitea token",
        )
        .await["sha1"]
            .as_str()
            .expect("token")
            .to_string();
        let auth = format!("token {token}");
        gitea_call(
            http.post(format!("{api_url}/user/repos"))
                .header("Authorization", &auth)
                .json(
                    &json!({"name": "app", "auto_init": true, "default_branch": "main",
                              "private": false}),
                ),
            "create a Gitea repository",
        )
        .await;

        // Skiff, with the repository's forge set to this Gitea.
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let (store, _) = open_store(&db, &data).await;
        let server = Server::start(config(&data), store).await;
        let api = Client::login(&server.url).await;
        let slug = format!("{GITEA_USER}/app");
        let (status, repo) = api
            .post(
                "/api/v1/repos",
                json!({"slug": slug, "git_url": format!("{}/{slug}.git", gitea.url),
                       "webhook_secret": HOOK_SECRET, "forge": "gitea",
                       "forge_url": gitea.url, "forge_token": token}),
            )
            .await;
        assert_eq!(status, 201, "{repo}");

        // Gitea delivers its push webhook to Skiff.
        gitea_call(
            http.post(format!("{api_url}/repos/{slug}/hooks"))
                .header("Authorization", &auth)
                .json(&json!({"type": "gitea", "active": true, "events": ["push"],
                              "config": {"url": format!("{}/hook/gitea", server.url),
                                         "content_type": "json", "secret": HOOK_SECRET}})),
            "create a Gitea webhook",
        )
        .await;
        let content = base64::engine::general_purpose::STANDARD.encode(PIPELINE);
        let commit = gitea_call(
            http.post(format!("{api_url}/repos/{slug}/contents/.drone.yml"))
                .header("Authorization", &auth)
                .json(&json!({"content": content, "message": "add the pipeline",
                              "branch": "main"})),
            "commit the pipeline",
        )
        .await;
        let sha = commit["commit"]["sha"].as_str().expect("sha").to_string();

        let build = wait_for_build(&api, &slug).await;
        assert_eq!(build["status"], "success", "{build:#}");
        assert_eq!(build["sha"], sha.as_str());

        // Gitea keeps every status posted: pending (created, then running), then success.
        let mut statuses = Vec::new();
        for _ in 0..600 {
            let list = gitea_call(
                http.get(format!("{api_url}/repos/{slug}/statuses/{sha}?sort=oldest"))
                    .header("Authorization", &auth),
                "read the statuses",
            )
            .await;
            statuses = list.as_array().cloned().unwrap_or_default();
            if statuses.iter().any(|s| s["status"] == "success") && statuses.len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut seen: Vec<(String, String)> = statuses
            .iter()
            .map(|s| {
                (
                    s["status"].as_str().unwrap_or_default().to_string(),
                    s["description"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        seen.sort_by_key(|(state, description)| {
            (state == "success", description.contains("running"))
        });
        assert_eq!(
            seen,
            [
                ("pending".to_string(), "Build is pending".to_string()),
                ("pending".to_string(), "Build is running".to_string()),
                ("success".to_string(), "Build is passing".to_string()),
            ],
            "{statuses:#?}"
        );
        assert!(
            statuses
                .iter()
                .all(|s| s["context"] == "continuous-integration/skiff/push"
                    && s["target_url"] == format!("http://skiff.test/{slug}/1").as_str()),
            "{statuses:#?}"
        );
        let combined = gitea_call(
            http.get(format!("{api_url}/repos/{slug}/commits/{sha}/status"))
                .header("Authorization", &auth),
            "read the combined status",
        )
        .await;
        assert_eq!(combined["state"], "success", "{combined:#}");

        server.stop().await;
        drop(gitea);
    }
}

/// Waits for the first build Gitea's webhook makes, then for it to end.
async fn wait_for_build(api: &Client, slug: &str) -> Value {
    for _ in 0..600 {
        let (status, builds) = api.get(&format!("/api/v1/repos/{slug}/builds")).await;
        assert_eq!(status, 200, "{builds}");
        if let Some(number) = builds
            .as_array()
            .and_then(|b| b.last())
            .and_then(|b| b["number"].as_i64())
        {
            return api.wait_build(slug, number).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Gitea's push webhook made no build in Skiff");
}
