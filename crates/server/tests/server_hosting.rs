//! Repositories Skiff hosts, with the real `git` client over HTTP, on SQLite and PostgreSQL:
//! adding one without a git URL makes a bare repository served at `/OWNER/NAME.git`; a push by
//! a writer makes a `push` build of the branch and a pushed tag a `tag` build, which the
//! in-process runner runs from the hosted repository; readers may clone but not push;
//! anonymous callers are challenged (401 with `WWW-Authenticate: Basic`) unless the repository
//! is public, and then may only clone; an API token works as the password; a repository cloned
//! from elsewhere is not served.

mod common;
mod people_support;

use common::*;
use people_support::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PIPELINE: &str = "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: greet\n  \
                        commands:\n  - echo \"built $DRONE_COMMIT_REF by $DRONE_COMMIT_AUTHOR\"\n";

/// `git` without any credential helper or prompt, so only the URL's credentials are used.
fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "credential.helper=", "-c", "user.name=Dana Dev"])
        .args(["-c", "user.email=dana@example.com"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .output()
        .expect("git")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "git failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fails_with(out: &Output, text: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "git should have failed");
    assert!(stderr.contains(text), "expected `{text}` in: {stderr}");
}

/// `http://user:secret@host:port/acme/site.git` from the server's URL.
fn url_as(server: &str, credentials: Option<(&str, &str)>) -> String {
    let (scheme, rest) = server.split_once("://").expect("url");
    match credentials {
        Some((user, secret)) => format!("{scheme}://{user}:{secret}@{rest}/acme/site.git"),
        None => format!("{server}/acme/site.git"),
    }
}

/// A server on `db` (the in-process runner as `runner` says) with hosted, private `acme/site`;
/// the admin's API client and token.
async fn start_with_site(db: &Db, dir: &Path, runner: bool) -> (Server, Api, As, String) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let (store, _) = open_store(db, &data).await;
    let mut cfg = config(&data);
    cfg.runner = runner;
    let server = Server::start(cfg, store).await;
    let api = Api::new(&server.url);
    let admin = api.login("admin", ADMIN_PASSWORD).await;
    let As::Token(token) = admin.clone() else {
        unreachable!("login returns a token")
    };
    // No git URL: Skiff hosts it.
    let (status, repo) = api
        .post(&admin, "/api/v1/repos", json!({"slug": "acme/site"}))
        .await;
    assert_eq!(status, 201, "{repo}");
    assert_eq!(repo["hosted"], true);
    assert_eq!(repo["visibility"], "private");
    (server, api, admin, token)
}

/// A working repository under `dir/work` whose one commit (on `main`, by Dana Dev) has
/// `pipeline` as `.drone.yml`.
fn work_repo(dir: &Path, pipeline: &str, message: &str) -> PathBuf {
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    ok(&git(&work, &["init", "-q", "-b", "main"]));
    std::fs::write(work.join(".drone.yml"), pipeline).expect("write");
    ok(&git(&work, &["add", "-A"]));
    ok(&git(&work, &["commit", "-q", "-m", message]));
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_to_a_hosted_repository_make_builds_and_access_is_enforced() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server, api, admin, _) = start_with_site(&db, dir.path(), true).await;
        let (_, repo) = api.get(&admin, "/api/v1/repos/acme/site").await;
        assert_eq!(
            repo["git_url"], "http://skiff.test/acme/site.git",
            "the public URL"
        );
        api.user(&admin, "dana", "dana-password").await;
        api.user(&admin, "rita", "rita-password").await;
        api.user(&admin, "otto", "otto-password").await;
        let (status, _) = api
            .post(&admin, "/api/v1/repos", json!({"slug": "acme/site"}))
            .await;
        assert_eq!(status, 409, "a second add of the name is refused");
        for (login, role) in [("dana", "write"), ("rita", "read")] {
            let (status, body) = api
                .post(
                    &admin,
                    "/api/v1/repos/acme/site/members",
                    json!({"login": login, "role": role}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }

        // Anonymous git is challenged, so it would send credentials next.
        let resp = reqwest::get(format!(
            "{}/acme/site.git/info/refs?service=git-upload-pack",
            server.url
        ))
        .await
        .expect("get");
        assert_eq!(resp.status(), 401);
        let challenge = resp.headers().get("www-authenticate").expect("challenge");
        assert!(challenge.to_str().expect("ascii").starts_with("Basic "));

        // The writer pushes a branch: one push build, run from the hosted repository.
        let work = work_repo(dir.path(), PIPELINE, "first page");
        let sha = ok(&git(&work, &["rev-parse", "HEAD"]));
        let dana = url_as(&server.url, Some(("dana", "dana-password")));
        ok(&git(&work, &["push", "-q", &dana, "main"]));
        let build = wait_for_build(&api, &admin, 1).await;
        assert_eq!(build["event"], "push", "{build}");
        assert_eq!(build["branch"], "main");
        assert_eq!(build["git_ref"], "refs/heads/main");
        assert_eq!(build["sha"], sha.as_str());
        assert_eq!(build["message"], "first page");
        assert_eq!(build["author"], "Dana Dev");
        assert_eq!(build["status"], "success", "{build}");
        let (status, log) = api
            .get(&admin, "/api/v1/repos/acme/site/builds/1/logs")
            .await;
        assert_eq!(status, 200, "{log}");
        assert!(
            log.to_string()
                .contains("built refs/heads/main by Dana Dev"),
            "{log}"
        );

        // A tag is a tag build.
        ok(&git(&work, &["tag", "v1.0.0"]));
        ok(&git(&work, &["push", "-q", &dana, "v1.0.0"]));
        let build = wait_for_build(&api, &admin, 2).await;
        assert_eq!(build["event"], "tag", "{build}");
        assert_eq!(build["git_ref"], "refs/tags/v1.0.0");
        assert_eq!(build["status"], "success", "{build}");

        // A reader clones (with an API token as the password) but may not push.
        let rita_token = match api.login("rita", "rita-password").await {
            As::Token(token) => token,
            _ => unreachable!("login returns a token"),
        };
        let clone = dir.path().join("clone");
        ok(&git(
            dir.path(),
            &[
                "clone",
                "-q",
                &url_as(&server.url, Some(("rita", &rita_token))),
                clone.to_str().expect("utf-8"),
            ],
        ));
        assert_eq!(ok(&git(&clone, &["rev-parse", "HEAD"])), sha);
        std::fs::write(clone.join("page"), "more").expect("write");
        ok(&git(&clone, &["add", "-A"]));
        ok(&git(&clone, &["commit", "-q", "-m", "not allowed"]));
        let rita = url_as(&server.url, Some(("rita", "rita-password")));
        fails_with(&git(&clone, &["push", &rita, "main"]), "403");
        fails_with(
            &git(
                &clone,
                &[
                    "push",
                    &url_as(&server.url, Some(("rita", "wrong"))),
                    "main",
                ],
            ),
            "Authentication failed",
        );
        // Someone who is not a member does not learn the private repository exists.
        let otto = url_as(&server.url, Some(("otto", "otto-password")));
        fails_with(&git(&clone, &["ls-remote", &otto]), "not found");
        // Anonymous: challenged, so git wants a user name (and here may not ask for one).
        fails_with(
            &git(&clone, &["ls-remote", &url_as(&server.url, None)]),
            "could not read Username",
        );

        // Public: anyone clones, nobody anonymous pushes. The default branch moves the hosted
        // repository's HEAD (what a clone checks out); a name git refuses is a 400.
        let (status, body) = api
            .patch(
                &admin,
                "/api/v1/repos/acme/site",
                json!({"visibility": "public", "default_branch": "trunk"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let head = dir.path().join("data/repos/acme/site.git/HEAD");
        let head = std::fs::read_to_string(head).expect("HEAD");
        assert_eq!(head.trim(), "ref: refs/heads/trunk");
        let (status, body) = api
            .patch(
                &admin,
                "/api/v1/repos/acme/site",
                json!({"default_branch": "bad..name", "visibility": "private"}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        let (_, repo) = api.get(&admin, "/api/v1/repos/acme/site").await;
        assert_eq!(
            repo["visibility"], "public",
            "a refused update changes nothing"
        );
        assert_eq!(repo["default_branch"], "trunk");
        let heads = ok(&git(&clone, &["ls-remote", &url_as(&server.url, None)]));
        assert!(
            heads.contains(&format!("{sha}\trefs/heads/main")),
            "{heads}"
        );
        fails_with(
            &git(&clone, &["push", &url_as(&server.url, None), "main"]),
            "could not read Username",
        );

        // Nothing rejected became a build, and the hosted branch did not move.
        let (_, builds) = api.get(&admin, "/api/v1/repos/acme/site/builds").await;
        assert_eq!(builds.as_array().map(Vec::len), Some(2), "{builds}");
        let heads = ok(&git(&clone, &["ls-remote", &dana, "refs/heads/main"]));
        assert!(heads.starts_with(&sha), "{heads}");

        // A repository cloned from elsewhere is not served here.
        let (status, body) = api
            .post(
                &admin,
                "/api/v1/repos",
                json!({"slug": "acme/mirror", "git_url": work.to_string_lossy(), "visibility": "public"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let resp = reqwest::get(format!(
            "{}/acme/mirror.git/info/refs?service=git-upload-pack",
            server.url
        ))
        .await
        .expect("get");
        assert_eq!(resp.status(), 404);
        server.stop().await;
    }
}

async fn wait_for_build(api: &Api, who: &As, number: i64) -> serde_json::Value {
    for _ in 0..600 {
        let (status, build) = api
            .get(who, &format!("/api/v1/repos/acme/site/builds/{number}"))
            .await;
        if status == 200 && build["finished"].as_i64().unwrap_or(0) > 0 {
            return build;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("build {number} did not finish");
}

/// A remote runner clones a private hosted repository from the server it talks to, with its
/// stage's lease as the credential; a made-up lease gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_runner_clones_a_private_hosted_repository_with_its_lease() {
    for db in databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (server, api, admin, token) = start_with_site(&db, dir.path(), false).await;
        let work = work_repo(dir.path(), PIPELINE, "remote");
        let push = url_as(&server.url, Some(("admin", &token)));
        ok(&git(&work, &["push", "-q", &push, "main"]));

        let runner = Runner::spawn(
            &server.url,
            &token,
            "far-away",
            1,
            dir.path().join("runner"),
        );
        let build = wait_for_build(&api, &admin, 1).await;
        assert_eq!(build["status"], "success", "{build}");
        let (_, log) = api
            .get(&admin, "/api/v1/repos/acme/site/builds/1/logs")
            .await;
        assert!(
            log.to_string()
                .contains("built refs/heads/main by Dana Dev"),
            "{log}"
        );
        runner.stop().await;

        // The lease user with a lease nobody holds is refused.
        let forged = reqwest::Client::new()
            .get(format!(
                "{}/acme/site.git/info/refs?service=git-upload-pack",
                server.url
            ))
            .basic_auth("skiff-stage-lease", Some("1.not-the-lease"))
            .send()
            .await
            .expect("get");
        assert_eq!(forged.status(), 401);
        server.stop().await;
    }
}

/// The log stream is live: a line printed while the build still runs reaches a follower (the
/// CLI's client) before the build ends; the `done` event ends the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_stream_while_the_build_runs() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, api, admin, token) = start_with_site(&Db::Sqlite, dir.path(), true).await;

    // The step waits (at most a minute) for a file the test makes once it saw the first line.
    let flag = dir.path().join("go-on");
    let pipeline = format!(
        "kind: pipeline\ntype: exec\nname: ci\nsteps:\n- name: slow\n  commands:\n  \
         - echo first line\n  - i=0; while [ ! -f {flag} ] && [ $i -lt 600 ]; do sleep 0.1; \
         i=$((i+1)); done\n  - echo second line\n",
        flag = flag.display()
    );
    let work = work_repo(dir.path(), &pipeline, "slow");
    ok(&git(
        &work,
        &[
            "push",
            "-q",
            &url_as(&server.url, Some(("admin", &token))),
            "main",
        ],
    ));

    let client = skiff_server::client::Client::new(&server.url, Some(token.clone()));
    let events = client
        .events("/repos/acme/site/builds/1/logs/stream")
        .await
        .expect("stream");
    let mut events = std::pin::pin!(events);
    let mut lines = Vec::new();
    let mut done = None;
    while let Some(event) = events.next().await {
        let event = event.expect("event");
        let data: serde_json::Value = serde_json::from_str(&event.data).expect("json");
        match event.event.as_str() {
            "line" => {
                let out = data["out"].as_str().unwrap_or_default().to_string();
                if out == "first line" {
                    let (_, build) = api.get(&admin, "/api/v1/repos/acme/site/builds/1").await;
                    assert_eq!(
                        build["status"], "running",
                        "streamed before the end: {build}"
                    );
                    std::fs::write(&flag, "").expect("flag");
                }
                lines.push(out);
            }
            "done" => {
                done = Some(data);
                break;
            }
            other => panic!("unexpected event {other}: {}", event.data),
        }
    }
    assert!(lines.contains(&"first line".to_string()), "{lines:?}");
    assert!(lines.contains(&"second line".to_string()), "{lines:?}");
    assert_eq!(done.expect("done event")["status"], "success");
    server.stop().await;
}
