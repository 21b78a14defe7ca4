//! What the CLI tests against a real server share: running the skiff binary with its own
//! credentials directory, checking its outcome, and making commits with git.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

/// The skiff binary with its CLI credentials in `config_dir`, and none of the `SKIFF_*`
/// variables that would point it elsewhere or answer its prompts.
pub fn skiff(config_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env("SKIFF_CONFIG_DIR", config_dir)
        .env_remove("SKIFF_SERVER")
        .env_remove("SKIFF_TOKEN")
        .env_remove("SKIFF_PASSWORD")
        .env_remove("SKIFF_RUNNER_TOKEN")
        .env_remove("SKIFF_NEW_USER_PASSWORD")
        .output()
        .expect("run skiff")
}

/// Standard output of a command that must have succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "skiff failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command that must have failed, saying `text` on standard error.
pub fn fails_with(out: &Output, text: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(text), "{stderr}");
}

/// git in `dir` with a fixed author.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
