//! The CLI as the API's client, with the real binary against a real server (the library
//! router on a free port, SQLite): login, repo add/ls/forge, secret add/ls, build run/logs
//! --follow/info/ls, and the error a wrong password gets; build approve/decline of a blocked
//! build made by a GitLab push hook, and repo update.

mod cli_support;

use cli_support::{fails_with, git, ok, skiff};
use std::process::Command;

const PASSWORD: &str = "cli-test-password";

#[test]
fn login_repo_secret_and_build_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin).expect("mkdir");
    git(&origin, &["init", "-q", "-b", "main"]);
    std::fs::write(
        origin.join(".drone.yml"),
        "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: hi\n  environment:\n    TOKEN:\n      from_secret: token\n  commands:\n  - echo hello cli $TOKEN\n",
    )
    .expect("write");
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "init"]);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let data = dir.path().join("data");
    let url = runtime.block_on(async {
        let mut config = skiff_server::ServerConfig::new(data.clone());
        config.admin_password = Some(PASSWORD.into());
        config.poll_interval = std::time::Duration::from_millis(100);
        let app = skiff_server::app(config).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app.router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        std::mem::forget(app);
        url
    });
    let config = dir.path().join("config");

    let out = skiff(
        &config,
        &[
            "login",
            "--server",
            &url,
            "--user",
            "admin",
            "--password",
            "nope",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong user or password"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&skiff(
        &config,
        &[
            "login",
            "--server",
            &url,
            "--user",
            "admin",
            "--password",
            PASSWORD,
        ],
    ));
    let creds = config.join("credentials.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&creds).expect("creds").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let origin_text = origin.to_string_lossy().into_owned();
    let added = ok(&skiff(
        &config,
        &[
            "repo",
            "add",
            "acme/cli",
            "--git-url",
            &origin_text,
            "--webhook-secret",
            "s3",
        ],
    ));
    assert!(added.contains("webhook secret: s3"), "{added}");
    let listed = ok(&skiff(&config, &["repo", "ls", "--json"]));
    let repos: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(repos[0]["name"], "cli");

    ok(&skiff(
        &config,
        &["secret", "add", "acme/cli", "token", "--value", "sekrit"],
    ));
    assert_eq!(
        ok(&skiff(&config, &["secret", "ls", "acme/cli"])).trim(),
        "token"
    );

    let run = ok(&skiff(
        &config,
        &["build", "run", "acme/cli", "--branch", "main", "--json"],
    ));
    let build: serde_json::Value = serde_json::from_str(&run).expect("json");
    assert_eq!(build["number"], 1);
    let logs = ok(&skiff(
        &config,
        &["build", "logs", "acme/cli", "1", "--follow"],
    ));
    assert!(logs.contains("[hi] hello cli ******"), "{logs}");
    let info: serde_json::Value = serde_json::from_str(&ok(&skiff(
        &config,
        &["build", "info", "acme/cli", "1", "--json"],
    )))
    .expect("json");
    assert_eq!(info["status"], "success");
    assert_eq!(info["event"], "custom");
    let list = ok(&skiff(&config, &["build", "ls", "acme/cli"]));
    assert!(
        list.starts_with("#1\tsuccess\tcustom\trefs/heads/main"),
        "{list}"
    );

    let promoted = ok(&skiff(
        &config,
        &["build", "promote", "acme/cli", "1", "production"],
    ));
    // The pipeline has no trigger, so it runs for promotions too.
    assert!(
        promoted.starts_with("#2\t") && promoted.contains("\tpromote\t"),
        "{promoted}"
    );

    let added = ok(&skiff(
        &config,
        &["cron", "add", "acme/cli", "nightly", "0 0 2 * * *"],
    ));
    assert_eq!(added.trim(), "cron nightly added on branch main");
    let crons = ok(&skiff(&config, &["cron", "ls", "acme/cli"]));
    assert_eq!(crons.trim(), "nightly\t0 0 2 * * *\tmain");
    ok(&skiff(&config, &["cron", "rm", "acme/cli", "nightly"]));
    assert_eq!(ok(&skiff(&config, &["cron", "ls", "acme/cli"])), "");

    // Forge settings for commit statuses: set with `repo add`, shown and changed with
    // `repo forge`; the token is never printed back.
    let added = ok(&skiff(
        &config,
        &[
            "repo",
            "add",
            "acme/forged",
            "--git-url",
            &origin_text,
            "--forge",
            "gitea",
            "--forge-url",
            "https://gitea.example.com",
            "--forge-token",
            "tok-123",
        ],
    ));
    assert!(
        added.contains("acme/forged: gitea at https://gitea.example.com, token set"),
        "{added}"
    );
    assert!(!added.contains("tok-123"), "{added}");
    let shown = ok(&skiff(&config, &["repo", "forge", "acme/forged", "--json"]));
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(shown["token_set"], true);
    let changed = ok(&skiff(
        &config,
        &["repo", "forge", "acme/cli", "--forge", "github"],
    ));
    assert_eq!(
        changed.trim(),
        "acme/cli: github at https://api.github.com, no token: commit statuses off"
    );
    let out = skiff(&config, &["repo", "forge", "acme/cli", "--forge", "gitlab"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs its URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&skiff(&config, &["repo", "forge", "acme/cli", "--remove"]));
    assert_eq!(
        ok(&skiff(&config, &["repo", "forge", "acme/cli"])).trim(),
        "acme/cli: no forge set; no commit statuses"
    );

    // Without --git-url the server hosts the repository; a push to it makes a build.
    let added = ok(&skiff(&config, &["repo", "add", "acme/hosted"]));
    assert!(
        added.contains("clone URL:      http://localhost:8080/acme/hosted.git"),
        "{added}"
    );
    assert!(!added.contains("webhook secret"), "{added}");
    let (scheme, host) = url.split_once("://").expect("url");
    let push_url = format!("{scheme}://admin:{PASSWORD}@{host}/acme/hosted.git");
    git(&origin, &["push", "-q", &push_url, "main"]);
    // The push answered after the build was recorded; follow it live over the SSE stream.
    let logs = ok(&skiff(
        &config,
        &["build", "logs", "acme/hosted", "1", "--follow"],
    ));
    assert!(logs.contains("[hi] hello cli"), "{logs}");
    let followed = ok(&skiff(
        &config,
        &["build", "logs", "acme/hosted", "1", "--follow", "--json"],
    ));
    let last: serde_json::Value =
        serde_json::from_str(followed.lines().last().unwrap_or_default()).expect("json");
    assert_eq!(last["status"], "success", "{followed}");
    let listed = ok(&skiff(&config, &["build", "ls", "acme/hosted", "--json"]));
    let builds: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(builds[0]["event"], "push", "{builds}");
    // A failing build: `--follow` prints its lines and exits non-zero.
    git(&origin, &["checkout", "-q", "-b", "broken"]);
    std::fs::write(
        origin.join(".drone.yml"),
        "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: boom\n  commands:\n  - echo about to fail\n  - exit 3\n",
    )
    .expect("write");
    git(&origin, &["commit", "-q", "-am", "break it"]);
    git(&origin, &["push", "-q", &push_url, "broken"]);
    let out = skiff(&config, &["build", "logs", "acme/hosted", "2", "--follow"]);
    assert!(!out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("[boom] about to fail"), "{printed}");
    fails_with(&out, "build #2 failure");

    let out = skiff(&config, &["build", "info", "acme/cli", "9"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    runtime.shutdown_background();
}

/// Sends a GitLab push hook (the token header is the secret, so no HMAC is needed) over plain
/// HTTP/1.1 and returns the status code and the body.
fn gitlab_push(url: &str, secret: &str, delivery: &str, sha: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let body = serde_json::json!({
        "object_kind": "push", "ref": "refs/heads/main", "before": "0".repeat(40),
        "after": sha, "checkout_sha": sha, "user_username": "t", "user_email": "t@example.com",
        "project": {"path_with_namespace": "acme/gated"},
        "commits": [{"id": sha, "message": "init\n"}]
    })
    .to_string();
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "POST /hook/gitlab HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         X-Gitlab-Event: Push Hook\r\nX-Gitlab-Token: {secret}\r\nX-Gitlab-Event-UUID: {delivery}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn approve_decline_and_repo_update_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin).expect("mkdir");
    git(&origin, &["init", "-q", "-b", "main"]);
    std::fs::write(
        origin.join(".drone.yml"),
        "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: hi\n  commands:\n  - echo approved run\n",
    )
    .expect("write");
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "init"]);
    let sha = String::from_utf8_lossy(
        &Command::new("git")
            .arg("-C")
            .arg(&origin)
            .args(["rev-parse", "HEAD"])
            .output()
            .expect("git")
            .stdout,
    )
    .trim()
    .to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let data = dir.path().join("data");
    let url = runtime.block_on(async {
        let mut config = skiff_server::ServerConfig::new(data.clone());
        config.admin_password = Some(PASSWORD.into());
        config.poll_interval = std::time::Duration::from_millis(100);
        let app = skiff_server::app(config).await.expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app.router.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        std::mem::forget(app);
        url
    });
    let config = dir.path().join("config");
    ok(&skiff(
        &config,
        &[
            "login",
            "--server",
            &url,
            "--user",
            "admin",
            "--password",
            PASSWORD,
        ],
    ));
    let origin_text = origin.to_string_lossy().into_owned();
    let added: serde_json::Value = serde_json::from_str(&ok(&skiff(
        &config,
        &[
            "repo",
            "add",
            "acme/gated",
            "--git-url",
            &origin_text,
            "--webhook-secret",
            "s3",
            "--approval",
            "all",
            "--throttle",
            "2",
            "--json",
        ],
    )))
    .expect("json");
    assert_eq!(added["approval"], "all", "{added}");
    assert_eq!(added["throttle"], 2, "{added}");

    let (status, body) = gitlab_push(&url, "s3", "push-1", &sha);
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("\"status\":\"blocked\""), "{body}");
    let approved = skiff(&config, &["build", "approve", "acme/gated", "1"]);
    ok(&approved);
    assert!(
        String::from_utf8_lossy(&approved.stderr).contains("build #1 approved"),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let logs = ok(&skiff(
        &config,
        &["build", "logs", "acme/gated", "1", "--follow"],
    ));
    assert!(logs.contains("approved run"), "{logs}");
    let info: serde_json::Value = serde_json::from_str(&ok(&skiff(
        &config,
        &["build", "info", "acme/gated", "1", "--json"],
    )))
    .expect("json");
    assert_eq!(info["status"], "success");

    let (status, body) = gitlab_push(&url, "s3", "push-2", &sha);
    assert_eq!(status, 201, "{body}");
    ok(&skiff(&config, &["build", "decline", "acme/gated", "2"]));
    let list = ok(&skiff(&config, &["build", "ls", "acme/gated"]));
    assert!(list.starts_with("#2\tdeclined\tpush"), "{list}");
    let out = skiff(&config, &["build", "approve", "acme/gated", "2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not waiting for approval"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let updated: serde_json::Value = serde_json::from_str(&ok(&skiff(
        &config,
        &[
            "repo",
            "update",
            "acme/gated",
            "--approval",
            "none",
            "--ignore-forks",
            "true",
            "--throttle",
            "0",
            "--json",
        ],
    )))
    .expect("json");
    assert_eq!(updated["approval"], "none", "{updated}");
    assert_eq!(updated["ignore_forks"], true, "{updated}");
    assert_eq!(updated["throttle"], 0, "{updated}");
    assert_eq!(updated["config_path"], ".drone.yml", "untouched: {updated}");
    let (status, body) = gitlab_push(&url, "s3", "push-3", &sha);
    assert_eq!(status, 201, "{body}");
    assert!(!body.contains("\"status\":\"blocked\""), "{body}");

    let out = skiff(&config, &["repo", "update", "acme/gated"]);
    assert!(!out.status.success(), "no flags: nothing to change");
    let out = skiff(
        &config,
        &["repo", "update", "acme/gated", "--approval", "sometimes"],
    );
    assert!(!out.status.success());
    let out = skiff(&config, &["repo", "update", "acme/gated", "--throttle=-1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("throttle"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    runtime.shutdown_background();
}
