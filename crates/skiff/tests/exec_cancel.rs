//! End-to-end: stopping `skiff exec` (Ctrl-C, SIGTERM, `--timeout`) kills running steps,
//! skips pending ones and removes every container, network and volume of the build.

mod exec_support;

use exec_support::{Workspace, build_id, docker_ready, leftovers};
use std::io::{BufRead, BufReader, Read};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PIPELINE: &str = r#"kind: pipeline
type: docker
name: default

services:
- name: svc
  image: skiff-test/busybox:1
  commands:
  - sleep 300

steps:
- name: long
  image: skiff-test/busybox:1
  commands:
  - echo started
  - sleep 300
- name: after
  image: skiff-test/busybox:1
  commands:
  - echo never
"#;

/// Starts `skiff exec`, waits until the `long` step printed `started`, sends `signal`, and
/// returns (exit code, stdout).
fn interrupt(ws: &Workspace, id: &str, signal: &str) -> (Option<i32>, String) {
    let mut child = ws.spawn(&["--build-id", id]);
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line == "[long:1] started" => break,
            Ok(_) => {}
            Err(_) if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("the step never started");
            }
            Err(_) => {}
        }
    }
    // The shell's builtin `kill`: no dependency on procps.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill {signal} {}", child.id()))
        .status()
        .expect("run kill");
    assert!(status.success());
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("skiff exec did not stop within 30s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let out = reader.join().expect("reader");
    (code, format!("{out}\n--- stderr\n{stderr}"))
}

#[test]
fn ctrl_c_kills_and_removes_everything() {
    if !docker_ready("ctrl_c_kills_and_removes_everything") {
        return;
    }
    let ws = Workspace::new(PIPELINE);
    let id = build_id("sigint");
    let (code, out) = interrupt(&ws, &id, "-INT");
    assert_eq!(code, Some(130), "{out}");
    assert!(out.contains("pipeline `default`: killed"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("long ") && l.contains("killed")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("after ") && l.contains("skipped")),
        "{out}"
    );
    assert!(!out.contains("never"), "{out}");
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn sigterm_kills_and_removes_everything() {
    if !docker_ready("sigterm_kills_and_removes_everything") {
        return;
    }
    let ws = Workspace::new(PIPELINE);
    let id = build_id("sigterm");
    let (code, out) = interrupt(&ws, &id, "-TERM");
    assert_eq!(code, Some(130), "{out}");
    assert_eq!(leftovers(&id), Vec::<String>::new());
}

#[test]
fn timeout_kills_the_build() {
    if !docker_ready("timeout_kills_the_build") {
        return;
    }
    let ws = Workspace::new(PIPELINE);
    let id = build_id("timeout");
    let run = ws.run(&["--build-id", &id, "--timeout", "8s"]);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.status_of("long"), "killed");
    assert_eq!(run.status_of("after"), "skipped");
    assert!(run.stderr.contains("timed out after"), "{}", run.dump());
    assert_eq!(leftovers(&id), Vec::<String>::new());
}
