//! End-to-end: images really pulled. A throwaway registry (Debian's `docker-registry`, CNCF
//! Distribution) on loopback holds a copy of the test image; `skiff exec` must pull it, with
//! the credentials of `image_pull_secrets` passed along.

mod exec_support;

use exec_support::{IMAGE, Workspace, build_id, docker_ready, leftovers};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A registry process, killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Option<Registry> {
    if Command::new("docker-registry")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let data = tempfile::tempdir().expect("registry dir");
    let config = data.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.path().join("store").display()
        ),
    )
    .expect("write config");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    Some(Registry {
        child,
        port,
        _data: data,
    })
}

fn docker(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn pulls_missing_images_with_pull_secret_credentials() {
    if !docker_ready("pulls_missing_images_with_pull_secret_credentials") {
        return;
    }
    let Some(registry) = start_registry() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("docker-registry is not installed (scripts/test installs it)");
        }
        eprintln!("skipping: docker-registry is not installed");
        return;
    };
    let remote = format!("127.0.0.1:{}/skiff/busybox:1", registry.port);
    assert!(docker(&["tag", IMAGE, &remote]), "docker tag");
    let mut pushed = false;
    for _ in 0..100 {
        if docker(&["push", &remote]) {
            pushed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pushed, "docker push to the test registry failed");
    assert!(docker(&["rmi", &remote]), "docker rmi");

    let ws = Workspace::new(&format!(
        r#"kind: pipeline
type: docker
name: default
image_pull_secrets: [dockerconfig]
steps:
- name: pulled
  image: {remote}
  pull: if-not-exists
  commands:
  - echo pulled-and-ran
"#
    ));
    ws.write(
        "secrets.env",
        &format!(
            "dockerconfig='{{\"auths\":{{\"127.0.0.1:{}\":{{\"auth\":\"cm9ib3Q6czNjcjN0\"}}}}}}'\n",
            registry.port
        ),
    );
    let id = build_id("pull");
    let run = ws.run(&["--build-id", &id, "--secret-file", "secrets.env"]);
    let cleaned = docker(&["rmi", &remote]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(
        run.step_log("pulled"),
        "+ echo pulled-and-ran\npulled-and-ran"
    );
    assert!(cleaned, "the image was pulled, so it can be removed");
    assert_eq!(leftovers(&id), Vec::<String>::new());

    // A malformed pull secret is refused before anything starts.
    ws.write("secrets.env", "dockerconfig=not-json\n");
    let run = ws.run(&["--secret-file", "secrets.env"]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert!(run.stderr.contains("dockerconfig"), "{}", run.dump());
}
