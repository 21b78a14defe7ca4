//! `skiff lock` against real registries: CNCF Distribution (Debian's `docker-registry`),
//! anonymous and with htpasswd (Basic) auth, and Skiff's own registry (Docker token flow).
//! Images are pushed with `skopeo copy` from an OCI layout made here — nothing is pulled.

use sha2::Digest;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Skip (or fail under CI=true) when a tool is missing.
fn have_tools(test: &str) -> bool {
    let missing: Vec<&str> = ["/usr/bin/docker-registry", "/usr/bin/skopeo"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "missing {} (Debian packages docker-registry, skopeo)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {reason}");
    }
    eprintln!("skipping {test}: {reason}");
    false
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_listening(port: u16) {
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {port}");
}

/// Debian's docker-registry on a free port, optionally with an htpasswd file.
fn distribution(dir: &Path, htpasswd: Option<&Path>) -> (Server, String) {
    let port = free_port();
    let auth = htpasswd
        .map(|p| {
            format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                p.display()
            )
        })
        .unwrap_or_default();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: '127.0.0.1:{port}'}}\n{auth}",
            dir.join("data").display()
        ),
    )
    .expect("config");
    let child = Command::new("/usr/bin/docker-registry")
        .args(["serve", config.to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    wait_listening(port);
    (Server(child), format!("127.0.0.1:{port}"))
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A one-layer OCI image layout tagged `tag`; returns (layout dir, manifest digest).
fn oci_layout(root: &Path, tag: &str, marker: &str) -> (PathBuf, String) {
    let dir = root.join(format!("layout-{tag}-{marker}"));
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout");
    let put = |bytes: &[u8]| {
        let digest = sha(bytes);
        std::fs::write(blobs.join(&digest[7..]), bytes).expect("blob");
        (digest, bytes.len())
    };
    let layer = vec![0u8; 1024]; // an empty tar archive
    let (layer_digest, layer_size) = put(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"marker":"{marker}"}}}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    );
    let (config_digest, config_size) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#
    );
    let (manifest_digest, manifest_size) = put(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{manifest_size},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#
        ),
    )
    .expect("index.json");
    (dir, manifest_digest)
}

/// Push a fresh image as `registry/repo:tag` and return its digest as the registry sees it.
fn push(root: &Path, registry: &str, repo: &str, tag: &str, creds: Option<&str>) -> String {
    static PUSHES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = PUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (layout, _) = oci_layout(root, tag, &format!("{repo}-{tag}-{n}").replace('/', "-"));
    let dest = format!("docker://{registry}/{repo}:{tag}");
    let mut copy = Command::new("skopeo");
    copy.args(["copy", "--quiet", "--dest-tls-verify=false"]);
    if let Some(c) = creds {
        copy.args(["--dest-creds", c]);
    }
    let src = format!("oci:{}:{tag}", layout.display());
    let out = copy
        .args([src.as_str(), dest.as_str()])
        .output()
        .expect("skopeo copy");
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut inspect = Command::new("skopeo");
    inspect.args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"]);
    if let Some(c) = creds {
        inspect.args(["--creds", c]);
    }
    let out = inspect.arg(&dest).output().expect("skopeo inspect");
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn skiff(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("skiff runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    child.wait_with_output().expect("skiff finishes")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn deployment(images: &[&str]) -> String {
    let containers: Vec<String> = images
        .iter()
        .enumerate()
        .map(|(i, image)| format!("{{name: c{i}, image: \"{image}\"}}"))
        .collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{}]\n",
        containers.join(", ")
    )
}

/// A Docker config.json with credentials for one registry.
fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) -> PathBuf {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config_dir = dir.join("docker-config");
    std::fs::create_dir_all(&config_dir).expect("dir");
    std::fs::write(
        config_dir.join("config.json"),
        format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
    )
    .expect("config.json");
    config_dir
}

#[test]
fn lock_against_distribution_is_idempotent_and_reuses_the_lock() {
    if !have_tools("lock_against_distribution_is_idempotent_and_reuses_the_lock") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (_server, registry) = distribution(tmp.path(), None);
    let v1 = push(tmp.path(), &registry, "team/app", "v1", None);
    let tools = push(tmp.path(), &registry, "tools", "latest", None);
    let pinned = format!("{registry}/tools@{tools}");
    let input = deployment(&[
        &format!("{registry}/team/app:v1"),
        &format!("{registry}/tools"),
        &pinned,
    ]);
    let lock_file = tmp.path().join("skiff.lock.yaml");
    let lock_arg = lock_file.to_str().expect("utf-8");

    // Helm-style: manifests on stdin, pinned manifests on stdout.
    let out = skiff(
        &["lock", "-f", "-", "--lock-file", lock_arg],
        Some(&input),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let locked = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        locked.contains(&format!("{registry}/team/app@{v1}")),
        "{locked}"
    );
    assert!(
        locked.contains(&format!("{registry}/tools@{tools}")),
        "{locked}"
    );
    assert!(!locked.contains(":v1\""), "{locked}");
    let lock_text = std::fs::read_to_string(&lock_file).expect("lock file");
    assert!(
        lock_text.contains("ImageLock") && lock_text.contains(&v1),
        "{lock_text}"
    );
    assert!(
        text(&out).contains("2 resolved") && text(&out).contains("1 already pinned"),
        "{}",
        text(&out)
    );

    // Locking the locked output changes nothing.
    let again = skiff(
        &["lock", "-f", "-", "--lock-file", lock_arg],
        Some(&locked),
        &[],
    );
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), locked);

    // The tag moves in the registry: the lock file keeps the old digest until --update.
    let v1_moved = push(tmp.path(), &registry, "team/app", "v1", None);
    assert_ne!(v1, v1_moved);
    let input_file = tmp.path().join("app.yaml");
    std::fs::write(&input_file, &input).expect("write");
    let out_file = tmp.path().join("locked.yaml");
    let file_arg = input_file.to_str().expect("utf-8");
    let out_arg = out_file.to_str().expect("utf-8");
    let out = skiff(
        &[
            "lock",
            "-f",
            file_arg,
            "--lock-file",
            lock_arg,
            "-o",
            out_arg,
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("2 from the lock file"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&out_file).expect("out"), locked);
    let out = skiff(
        &[
            "lock",
            "-f",
            file_arg,
            "--lock-file",
            lock_arg,
            "-o",
            out_arg,
            "--update",
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read_to_string(&out_file)
            .expect("out")
            .contains(&v1_moved)
    );

    // A tag that does not exist is an error naming the image.
    let out = skiff(
        &["lock", "-f", "-", "--lock-file", lock_arg],
        Some(&deployment(&[&format!("{registry}/team/app:nope")])),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("team/app:nope") && text(&out).contains("not found"),
        "{}",
        text(&out)
    );
}

#[test]
fn lock_with_basic_auth_from_docker_config() {
    if !have_tools("lock_with_basic_auth_from_docker_config") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // Distribution reads bcrypt htpasswd entries.
    let hash = bcrypt::hash("s3cret", 6).expect("bcrypt");
    assert!(hash.starts_with("$2"), "bcrypt hash: {hash}");
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("bob:{hash}\n")).expect("htpasswd");
    let (_server, registry) = distribution(tmp.path(), Some(&htpasswd));
    let digest = push(
        tmp.path(),
        &registry,
        "private/app",
        "v1",
        Some("bob:s3cret"),
    );
    let input = deployment(&[&format!("{registry}/private/app:v1")]);
    let lock_file = tmp.path().join("lock.yaml");
    let lock_arg = lock_file.to_str().expect("utf-8");

    let empty = tmp.path().join("no-config");
    std::fs::create_dir_all(&empty).expect("dir");
    let out = skiff(
        &["lock", "-f", "-", "--lock-file", lock_arg],
        Some(&input),
        &[("DOCKER_CONFIG", empty.to_str().expect("utf-8"))],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("private/app:v1"), "{}", text(&out));

    let config = docker_config(tmp.path(), &registry, "bob", "s3cret");
    let out = skiff(
        &["lock", "-f", "-", "--lock-file", lock_arg],
        Some(&input),
        &[("DOCKER_CONFIG", config.to_str().expect("utf-8"))],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{registry}/private/app@{digest}")),
        "{}",
        text(&out)
    );
}

#[test]
fn lock_against_skiff_registry_with_token_flow() {
    if !have_tools("lock_against_skiff_registry_with_token_flow") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let registry = format!("127.0.0.1:{port}");
    let data = tmp.path().join("skiff-data");
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args([
            "registry",
            "serve",
            "--addr",
            &registry,
            "--data-dir",
            data.to_str().expect("utf-8"),
        ])
        .env("SKIFF_ADMIN_PASSWORD", "adm1n")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("skiff registry starts");
    let _server = Server(child);
    wait_listening(port);
    let digest = push(
        tmp.path(),
        &registry,
        "apps/api",
        "2.0",
        Some("admin:adm1n"),
    );
    let config = docker_config(tmp.path(), &registry, "admin", "adm1n");
    let lock_file = tmp.path().join("lock.yaml");
    let out = skiff(
        &[
            "lock",
            "-f",
            "-",
            "--lock-file",
            lock_file.to_str().expect("utf-8"),
        ],
        Some(&deployment(&[&format!("{registry}/apps/api:2.0")])),
        &[("DOCKER_CONFIG", config.to_str().expect("utf-8"))],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("{registry}/apps/api@{digest}")),
        "{}",
        text(&out)
    );
}
