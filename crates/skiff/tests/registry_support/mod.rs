//! Shared pieces of the registry end-to-end tests: start the real `skiff` binary on a free
//! port, find the client tools built by `scripts/registry-tools`, and a minimal HTTP/1.1
//! client over a raw socket (so tests control every header and can cut a body short).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `skiff registry serve`, killed on drop.
pub struct Server {
    pub addr: String,
    pub data: tempfile::TempDir,
    child: Child,
}

impl Server {
    pub fn start(env: &[(&str, &str)]) -> Server {
        let data = tempfile::tempdir().expect("temp data dir");
        Self::start_in(data, env, &[])
    }

    pub fn start_in(data: tempfile::TempDir, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skiff"));
        command
            .args(["registry", "serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .args(args)
            .env_remove("SKIFF_ADMIN_PASSWORD")
            .env_remove("SKIFF_REGISTRY_PUBLIC")
            .env_remove("SKIFF_S3_BUCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start skiff registry serve");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("skiff exited before listening")
                .expect("read stderr");
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Server { addr, data, child }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Directory of the Go tools (`scripts/registry-tools`): `$SKIFF_TOOLS_BIN`, else
/// `$SKIFF_CACHE/bin`, else `/var/cache/skiff-testenv/bin`.
pub fn tools_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("SKIFF_TOOLS_BIN") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var("SKIFF_CACHE").unwrap_or_else(|_| "/var/cache/skiff-testenv".into());
    PathBuf::from(cache).join("bin")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Finds a tool, or reports why the test cannot run: a failure under CI=true, a skip otherwise.
pub fn require_tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = Some(tools_bin().join(name))
        .filter(|p| p.is_file())
        .or_else(|| on_path(name));
    if found.is_none() {
        missing(
            test,
            &format!(
                "`{name}` not found in {} or PATH (run scripts/registry-tools)",
                tools_bin().display()
            ),
        );
    }
    found
}

/// A required service or tool is missing: fail under CI, else print why and skip.
pub fn missing(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}");
    }
    eprintln!("SKIP {test}: {why}");
}

/// The Docker daemon to use: `$DOCKER_HOST`, else the one `scripts/docker-testenv up` starts.
pub fn docker_host(test: &str) -> Option<String> {
    let host = std::env::var("DOCKER_HOST").ok().or_else(|| {
        let run = std::env::var("SKIFF_RUN").unwrap_or_else(|_| "/run/skiff-testenv".into());
        let sock = PathBuf::from(run).join("docker.sock");
        sock.exists().then(|| format!("unix://{}", sock.display()))
    });
    let ok = host.as_ref().is_some_and(|h| {
        Command::new("docker")
            .env("DOCKER_HOST", h)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ok {
        missing(test, "no Docker Engine (run scripts/docker-testenv up)");
        return None;
    }
    host
}

/// Runs a command and returns its stdout; panics with its output when it fails.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The first OCI error code in the body.
    pub fn error_code(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        value["errors"][0]["code"].as_str().map(str::to_string)
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
    read_response(stream, method == "HEAD")
}

/// Sends a request head announcing `declared` bytes but only `sent` of them, then hangs up.
pub fn http_cut(addr: &str, method: &str, path: &str, declared: usize, sent: &[u8]) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(sent).expect("send part");
    stream.flush().ok();
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
    std::thread::sleep(Duration::from_millis(300));
}

fn read_response(stream: TcpStream, head_only: bool) -> Response {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = Vec::new();
    if !head_only {
        reader.read_to_end(&mut body).ok();
    }
    Response {
        status,
        headers,
        body,
    }
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}
