//! `skiff server` serves the registry at /v2/ with the same settings as `skiff registry serve`,
//! taken here from the environment (SKIFF_ADDR, SKIFF_DATA_DIR, SKIFF_ADMIN_PASSWORD).

mod registry_support;
use registry_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn skiff_server_serves_the_registry_from_env_settings() {
    let data = tempfile::tempdir().expect("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("server")
        .env("SKIFF_ADDR", "127.0.0.1:0")
        .env("SKIFF_DATA_DIR", data.path())
        .env("SKIFF_ADMIN_PASSWORD", "pw")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start skiff server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").expect("stderr line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let ping = http(&addr, "GET", "/v2/", &[], b"");
    assert_eq!(
        ping.status, 401,
        "the admin password from the env turns auth on"
    );
    assert_eq!(
        ping.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    let blob = b"via skiff server";
    let digest = sha256(blob);
    let auth = "Basic YWRtaW46cHc="; // admin:pw
    let r = http(
        &addr,
        "POST",
        &format!("/v2/srv/app/blobs/uploads/?digest={digest}"),
        &[("Authorization", auth)],
        blob,
    );
    assert_eq!(r.status, 201);
    assert!(
        data.path().join("blobs").exists(),
        "content lands in SKIFF_DATA_DIR"
    );
    let _ = child.kill();
    let _ = child.wait();
}
