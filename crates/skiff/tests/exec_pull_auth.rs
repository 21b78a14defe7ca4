//! End-to-end: `image_pull_secrets` really authenticate. Skiff's own registry runs with an
//! admin password (so every repository is private and pulls need a token), the test image is
//! pushed to it with `docker login` + `docker push`, removed locally, and `skiff exec` must pull
//! it back with the credentials from the pull secret — and fail, before any step runs, with
//! wrong ones.

mod exec_support;
mod registry_support;

use base64::Engine as _;
use exec_support::{IMAGE, Workspace, build_id, docker_ready, leftovers};
use registry_support::Server;
use std::io::Write;
use std::process::{Command, Stdio};

const PASSWORD: &str = "pull-secret-test";

/// The docker CLI with its own config dir, so `docker login` never touches the user's.
fn docker(config: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("docker")
        .env("DOCKER_CONFIG", config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin piped")
            .write_all(input.as_bytes())
            .expect("write docker stdin");
    }
    let output = child.wait_with_output().expect("wait for docker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn pull_secret(registry: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("dockerconfig='{{\"auths\":{{\"{registry}\":{{\"auth\":\"{auth}\"}}}}}}'\n")
}

#[test]
fn private_image_is_pulled_with_pull_secret_and_refused_without() {
    let test = "private_image_is_pulled_with_pull_secret_and_refused_without";
    if !docker_ready(test) {
        return;
    }
    let server = Server::start(&[("SKIFF_ADMIN_PASSWORD", PASSWORD)]);
    let registry = server.addr.clone();
    let remote = format!("{registry}/private/busybox:1");
    let config = tempfile::tempdir().expect("docker config dir");

    let (ok, out) = docker(
        config.path(),
        &[
            "login",
            &registry,
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(ok, "docker login: {out}");
    let (ok, out) = docker(config.path(), &["tag", IMAGE, &remote], None);
    assert!(ok, "docker tag: {out}");
    let (ok, out) = docker(config.path(), &["push", &remote], None);
    assert!(ok, "docker push: {out}");
    let (ok, out) = docker(config.path(), &["rmi", &remote], None);
    assert!(ok, "docker rmi: {out}");

    let ws = Workspace::new(&format!(
        r#"kind: pipeline
type: docker
name: default
image_pull_secrets: [dockerconfig]
steps:
- name: private
  image: {remote}
  pull: if-not-exists
  commands:
  - echo ran-private-image
"#
    ));

    // Wrong password: the registry refuses the pull, so nothing runs.
    ws.write("secrets.env", &pull_secret(&registry, "admin", "wrong"));
    let id = build_id("pullauth-wrong");
    let run = ws.run(&["--build-id", &id, "--secret-file", "secrets.env"]);
    assert_ne!(run.code, Some(0), "{}", run.dump());
    assert!(
        run.stderr.contains("pull failed") && run.stderr.contains("unauthorized"),
        "the error names the refused pull: {}",
        run.dump()
    );
    assert!(
        !run.stdout.contains("ran-private-image"),
        "the step must not run: {}",
        run.dump()
    );
    let (present, _) = docker(config.path(), &["image", "inspect", &remote], None);
    assert!(
        !present,
        "a refused pull must not leave the image behind: {}",
        run.dump()
    );
    assert_eq!(leftovers(&id), Vec::<String>::new());

    // Right password: pulled and run.
    ws.write("secrets.env", &pull_secret(&registry, "admin", PASSWORD));
    let id = build_id("pullauth-right");
    let run = ws.run(&["--build-id", &id, "--secret-file", "secrets.env"]);
    let (removed, _) = docker(config.path(), &["rmi", &remote], None);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(
        run.step_log("private"),
        "+ echo ran-private-image\nran-private-image"
    );
    assert!(removed, "the image was pulled, so it can be removed");
    assert_eq!(leftovers(&id), Vec::<String>::new());
}
