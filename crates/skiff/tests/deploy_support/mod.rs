//! Shared helpers of the `deploy_*` tests: find the test cluster (`scripts/k8s-testenv up`),
//! run the real `skiff` binary, and read objects back with a kube client. Without a usable
//! KUBECONFIG the tests skip with a reason, except under CI=true where that is a failure.
#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;

/// The test cluster, or `None` (after printing why) when the test must be skipped.
pub async fn cluster(test: &str) -> Option<kube::Client> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let reason = match std::env::var("KUBECONFIG") {
        Err(_) => "KUBECONFIG is not set (run `eval \"$(scripts/k8s-testenv up)\"`)".to_string(),
        Ok(path) if !std::path::Path::new(&path).exists() => {
            format!("KUBECONFIG={path} does not exist")
        }
        Ok(_) => {
            let out = skiff(&["deploy", "ls", "-n", "default"], None).await;
            if out.status.success() {
                let (client, _) =
                    skiff_deploy::connect(&skiff_deploy::KubeconfigSource::Default, None)
                        .await
                        .expect("kube client from KUBECONFIG");
                return Some(client);
            }
            format!(
                "the cluster in KUBECONFIG is not usable: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        }
    };
    if ci {
        panic!("{test}: {reason}");
    }
    eprintln!("skipping {test}: {reason}");
    None
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id() % 100_000,
        nanos % 10_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Run the skiff binary; stdin is `input` or nothing (never a terminal).
pub async fn skiff(args: &[&str], input: Option<&str>) -> Output {
    skiff_env(args, input, &[]).await
}

/// Like [`skiff`], with extra environment (a value of `None` removes the variable).
pub async fn skiff_env(args: &[&str], input: Option<&str>, env: &[(&str, Option<&str>)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    let mut child = cmd.spawn().expect("skiff runs");
    if let Some(text) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).await.expect("write stdin");
        drop(stdin);
    }
    child.wait_with_output().await.expect("skiff finishes")
}

/// stderr and stdout of a run, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Write manifests into a fresh folder and return it.
pub fn manifests(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).expect("write manifest");
    }
    dir
}

/// A Deployment that becomes ready on the KWOK node.
pub fn deployment(ns: &str, name: &str, image: &str, extra_pod_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n{extra_pod_spec}      containers: [{{name: main, image: \"{image}\"}}]\n"
    )
}

pub fn namespace(ns: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")
}

pub fn config_map(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{value: \"{value}\"}}\n"
    )
}
