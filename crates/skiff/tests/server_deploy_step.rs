//! End-to-end: the `skiff/deploy` built-in run by the server's runners, with the real binary
//! against the real API server (`scripts/k8s-testenv`). `skiff server` (its in-process runner)
//! and `skiff server --no-runner` plus `skiff runner` each run a repository whose pipeline
//! deploys on `promote` to `production`: a manual run skips the step, the promotion applies the
//! manifests from the cloned commit with the kubeconfig from a repository secret, and the
//! object is then read back from the cluster. Without a usable KUBECONFIG the test skips with a
//! reason (fails under CI=true).

mod cli_support;
mod deploy_support;

use base64::Engine as _;
use cli_support::{git, skiff};
use deploy_support::{cluster, config_map, unique};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const PASSWORD: &str = "server-deploy-test-password";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "skiff failed: {}",
        deploy_support::text(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `skiff server` on a free port; returns it and its URL.
fn start_server(data: &Path, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["server", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .env("SKIFF_ADMIN_PASSWORD", PASSWORD)
        .env_remove("SKIFF_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start skiff server");
    let stderr = child.stderr.take().expect("stderr");
    let server = Running(child);
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("skiff server exited before listening")
            .expect("read stderr");
        if let Some(url) = line.strip_prefix("skiff: server listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (server, url)
}

/// The repository: a pipeline whose `deploy` step runs only on a promotion to production, and
/// one manifest without a namespace (the step's `namespace` setting places it).
fn origin(dir: &Path, app: &str, ns: &str) -> std::path::PathBuf {
    let origin = dir.join("origin");
    std::fs::create_dir_all(origin.join("k8s")).expect("mkdir");
    git(&origin, &["init", "-q", "-b", "main"]);
    let pipeline = format!(
        r#"kind: pipeline
type: exec
name: release
steps:
- name: build
  commands: [echo building]
- name: deploy
  image: skiff/deploy
  settings:
    app: {app}
    files: [k8s/]
    namespace: {ns}
    timeout: 2m
    kubeconfig:
      from_secret: kubeconfig
  when:
    event: promote
    target: production
"#
    );
    std::fs::write(origin.join(".drone.yml"), pipeline).expect("write pipeline");
    let manifest =
        config_map(ns, "settings", "from-server").replace(&format!(", namespace: {ns}}}"), "}");
    std::fs::write(origin.join("k8s/config.yaml"), manifest).expect("write manifest");
    git(&origin, &["add", "-A"]);
    git(&origin, &["commit", "-q", "-m", "release"]);
    origin
}

fn step_status(build: &serde_json::Value, step: &str) -> String {
    build["stages"][0]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == step)
        .and_then(|s| s["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Logs in, adds the repository and its kubeconfig secret, runs it by hand (the deploy step is
/// skipped) and promotes that build (it deploys); returns the promotion's log.
fn run_and_promote(config: &Path, url: &str, origin: &Path) -> String {
    ok(&skiff(
        config,
        &[
            "login",
            "--server",
            url,
            "--user",
            "admin",
            "--password",
            PASSWORD,
        ],
    ));
    ok(&skiff(
        config,
        &[
            "repo",
            "add",
            "acme/deploy",
            "--git-url",
            &origin.to_string_lossy(),
        ],
    ));
    let path = std::env::var("KUBECONFIG").expect("KUBECONFIG checked by cluster()");
    let kubeconfig = std::fs::read_to_string(path).expect("read the kubeconfig");
    let encoded = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
    ok(&skiff(
        config,
        &[
            "secret",
            "add",
            "acme/deploy",
            "kubeconfig",
            "--value",
            &encoded,
        ],
    ));

    let info = |number: &str| -> serde_json::Value {
        ok(&skiff(
            config,
            &["build", "logs", "acme/deploy", number, "--follow"],
        ));
        serde_json::from_str(&ok(&skiff(
            config,
            &["build", "info", "acme/deploy", number, "--json"],
        )))
        .expect("build json")
    };

    ok(&skiff(
        config,
        &["build", "run", "acme/deploy", "--branch", "main"],
    ));
    let manual = info("1");
    assert_eq!(manual["status"], "success", "{manual:#}");
    assert_eq!(step_status(&manual, "deploy"), "skipped", "{manual:#}");

    ok(&skiff(
        config,
        &["build", "promote", "acme/deploy", "1", "production"],
    ));
    let promoted = info("2");
    let log = ok(&skiff(config, &["build", "logs", "acme/deploy", "2"]));
    assert_eq!(promoted["status"], "success", "{promoted:#}\n{log}");
    assert_eq!(step_status(&promoted, "build"), "success", "{promoted:#}");
    assert_eq!(step_status(&promoted, "deploy"), "success", "{promoted:#}");
    // The kubeconfig's token never reaches the stored log.
    assert!(!log.contains("skiff-testenv-admin-token"), "{log}");
    log
}

fn create_namespace(rt: &tokio::runtime::Runtime, client: &kube::Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("namespace");
    rt.block_on(namespaces.create(&PostParams::default(), &object))
        .expect("create namespace");
}

/// Checks the promotion deployed: its log says so and the object is in the cluster.
fn assert_deployed(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    app: &str,
    ns: &str,
    log: &str,
) {
    assert!(
        log.contains(&format!("app {app}: revision 1 deployed")),
        "{log}"
    );
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let map = rt
        .block_on(maps.get_opt("settings"))
        .expect("get config map")
        .unwrap_or_else(|| panic!("the promotion did not deploy settings into {ns}: {log}"));
    assert_eq!(
        map.data.and_then(|d| d.get("value").cloned()).as_deref(),
        Some("from-server")
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = rt.block_on(namespaces.delete(ns, &DeleteParams::default()));
}

#[test]
fn server_runners_run_the_deploy_builtin() {
    let test = "server_runners_run_the_deploy_builtin";
    let rt = runtime();
    let Some(client) = rt.block_on(cluster(test)) else {
        return;
    };

    // The in-process runner of `skiff server`.
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ns, app) = (unique("skt-srv"), unique("srv"));
        create_namespace(&rt, &client, &ns);
        let origin = origin(dir.path(), &app, &ns);
        let (_server, url) = start_server(&dir.path().join("data"), &[]);
        let log = run_and_promote(&dir.path().join("cli"), &url, &origin);
        assert_deployed(&rt, &client, &app, &ns, &log);
    }

    // `skiff runner` against `skiff server --no-runner`.
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ns, app) = (unique("skt-rmt"), unique("rmt"));
        create_namespace(&rt, &client, &ns);
        let origin = origin(dir.path(), &app, &ns);
        let (_server, url) = start_server(&dir.path().join("data"), &["--no-runner"]);
        let cli = dir.path().join("cli");
        ok(&skiff(
            &cli,
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
        let creds: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(cli.join("credentials.json")).expect("credentials"),
        )
        .expect("credentials json");
        let token = creds["token"].as_str().expect("token").to_string();
        let runner = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["runner", "--server", &url, "--token", &token, "--work-dir"])
            .arg(dir.path().join("runner-work"))
            .args(["--name", "deployer"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start skiff runner");
        let _runner = Running(runner);
        let log = run_and_promote(&cli, &url, &origin);
        assert_deployed(&rt, &client, &app, &ns, &log);
    }
}
