//! End-to-end: the `skiff/deploy` built-in pipeline step, run by the real `skiff exec` against
//! the real API server (`scripts/k8s-testenv`). The kubeconfig comes from a `--secret-file`
//! (base64-encoded, one line), the step runs on `--event promote --deploy-to production` and is
//! skipped on `push`; a wrong kubeconfig fails the step with a clear message. One variant runs
//! on a docker pipeline (the built-in still runs on the host, next to a real container step).

mod deploy_support;
mod exec_support;

use base64::Engine as _;
use deploy_support::{cluster, config_map, deployment, unique};
use exec_support::{IMAGE, Workspace, docker_ready};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{DeleteParams, PostParams};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The test cluster's kubeconfig, base64-encoded for a one-line secret file value.
fn kubeconfig_base64() -> String {
    let path = std::env::var("KUBECONFIG").expect("KUBECONFIG checked by cluster()");
    let text = std::fs::read_to_string(path).expect("read the kubeconfig");
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A pipeline of `kind` (`exec` or `docker`) whose `deploy` step deploys `k8s/` as `app`.
fn pipeline(kind: &str, app: &str, ns: &str) -> String {
    let before = if kind == "docker" {
        format!("- name: build\n  image: {IMAGE}\n  commands: [echo building]\n")
    } else {
        "- name: build\n  commands: [echo building]\n".to_string()
    };
    format!(
        r#"kind: pipeline
type: {kind}
name: release

steps:
{before}- name: deploy
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
    )
}

/// A workspace with the pipeline, `k8s/` manifests (a config map and a deployment, without a
/// namespace: the step's `namespace` setting places them) and a secret file holding
/// `kubeconfig`.
fn workspace(kind: &str, app: &str, ns: &str, kubeconfig: &str) -> Workspace {
    let ws = Workspace::new(&pipeline(kind, app, ns));
    std::fs::create_dir(ws.path().join("k8s")).expect("mkdir k8s");
    let unplaced = |text: String| text.replace(&format!(", namespace: {ns}}}"), "}");
    ws.write(
        "k8s/10-config.yaml",
        &unplaced(config_map(ns, "settings", "1")),
    );
    ws.write(
        "k8s/20-app.yaml",
        &unplaced(deployment(ns, "web", "registry.example/web:1", "")),
    );
    ws.write("secrets.env", &format!("kubeconfig={kubeconfig}\n"));
    ws
}

/// Creates the namespace the step deploys into (it exists before a promote, like `prod`).
fn create_namespace(rt: &tokio::runtime::Runtime, client: &kube::Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("namespace");
    rt.block_on(namespaces.create(&PostParams::default(), &object))
        .expect("create namespace");
}

fn delete_namespace(rt: &tokio::runtime::Runtime, client: &kube::Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = rt.block_on(namespaces.delete(ns, &DeleteParams::default()));
}

fn deploys_on_promote(kind: &str, test: &str) {
    let rt = runtime();
    let Some(client) = rt.block_on(cluster(test)) else {
        return;
    };
    let ns = unique("skt-step");
    let app = unique("step");
    create_namespace(&rt, &client, &ns);
    let ws = workspace(kind, &app, &ns, &kubeconfig_base64());

    // A push does not match `when: {event: promote}`: the step is skipped, nothing is applied.
    let run = ws.run(&["--event", "push", "--secret-file", "secrets.env"]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.status_of("deploy"), "skipped", "{}", run.dump());
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(
        rt.block_on(maps.get_opt("settings"))
            .expect("get")
            .is_none(),
        "a push must not deploy"
    );

    // A promote to another target is skipped too.
    let run = ws.run(&[
        "--event",
        "promote",
        "--deploy-to",
        "staging",
        "--secret-file",
        "secrets.env",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.status_of("deploy"), "skipped", "{}", run.dump());

    // The promote to production deploys, waits and records the app.
    let run = ws.run(&[
        "--event",
        "promote",
        "--deploy-to",
        "production",
        "--secret-file",
        "secrets.env",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert_eq!(run.status_of("build"), "success", "{}", run.dump());
    assert_eq!(run.status_of("deploy"), "success", "{}", run.dump());
    let log = run.step_log("deploy");
    assert!(
        log.contains(&format!("app {app} in {ns}, revision 1")),
        "{log}"
    );
    assert!(log.contains("2 create"), "{log}");
    assert!(log.contains(&format!("Deployment.apps {ns}/web")), "{log}");
    assert!(log.contains(": ready"), "{log}");
    assert!(
        log.contains(&format!("app {app}: revision 1 deployed")),
        "{log}"
    );
    // The kubeconfig's token never shows, even though it sat in the step's environment.
    assert!(
        !run.stdout.contains("skiff-testenv-admin-token"),
        "{}",
        run.dump()
    );

    let map = rt
        .block_on(maps.get("settings"))
        .expect("config map deployed");
    assert_eq!(
        map.data.and_then(|d| d.get("value").cloned()).as_deref(),
        Some("1")
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let web = rt
        .block_on(deployments.get("web"))
        .expect("deployment deployed");
    assert_eq!(
        web.status.and_then(|s| s.available_replicas),
        Some(1),
        "waited until available"
    );
    let inspect = rt.block_on(deploy_support::skiff(
        &["deploy", "inspect", "-a", &app, "-n", &ns],
        None,
    ));
    let inspect_text = deploy_support::text(&inspect);
    assert!(inspect.status.success(), "{inspect_text}");
    assert!(inspect_text.contains("revision 1"), "{inspect_text}");

    // Promoting again changes nothing.
    let run = ws.run(&[
        "--event",
        "promote",
        "--deploy-to",
        "production",
        "--secret-file",
        "secrets.env",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.dump());
    assert!(
        run.step_log("deploy").contains("no changes"),
        "{}",
        run.dump()
    );

    let out = rt.block_on(deploy_support::skiff(
        &["deploy", "delete", "-a", &app, "-n", &ns, "--yes"],
        None,
    ));
    assert!(out.status.success(), "{}", deploy_support::text(&out));
    delete_namespace(&rt, &client, &ns);
}

#[test]
fn exec_pipeline_deploys_on_promote_and_skips_on_push() {
    deploys_on_promote("exec", "exec_pipeline_deploys_on_promote_and_skips_on_push");
}

#[test]
fn docker_pipeline_runs_the_deploy_step_on_the_host() {
    let test = "docker_pipeline_runs_the_deploy_step_on_the_host";
    if !docker_ready(test) {
        return;
    }
    deploys_on_promote("docker", test);
}

#[test]
fn wrong_kubeconfig_fails_the_step_clearly() {
    let test = "wrong_kubeconfig_fails_the_step_clearly";
    let rt = runtime();
    let Some(client) = rt.block_on(cluster(test)) else {
        return;
    };
    let ns = unique("skt-stepbad");
    let app = unique("stepbad");
    create_namespace(&rt, &client, &ns);
    let path = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let good = std::fs::read_to_string(path).expect("read the kubeconfig");
    let promote = [
        "--event",
        "promote",
        "--deploy-to",
        "production",
        "--secret-file",
        "secrets.env",
    ];

    // A token the API server does not know.
    let bad_token = good.replace(
        "token: skiff-testenv-admin-token",
        "token: not-a-valid-token",
    );
    assert_ne!(
        bad_token, good,
        "the test kubeconfig uses the testenv token"
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(bad_token);
    let ws = workspace("exec", &app, &ns, &encoded);
    let run = ws.run(&promote);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    assert_eq!(run.status_of("deploy"), "failure", "{}", run.dump());
    let log = run.step_log("deploy");
    assert!(log.contains("skiff/deploy: deploy failed:"), "{log}");
    assert!(
        log.contains("cannot use the cluster with this kubeconfig"),
        "{log}"
    );
    assert!(log.to_lowercase().contains("unauthorized"), "{log}");

    // Not a kubeconfig at all.
    let ws = workspace("exec", &app, &ns, "bm90IGEga3ViZWNvbmZpZw");
    let run = ws.run(&promote);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    let log = run.step_log("deploy");
    assert!(log.contains("kubeconfig"), "{log}");

    // No secret: the setting is empty and the step says so.
    let ws = workspace("exec", &app, &ns, "x");
    std::fs::write(ws.path().join("secrets.env"), "other=1\n").expect("write secrets");
    let run = ws.run(&promote);
    assert_eq!(run.code, Some(1), "{}", run.dump());
    let log = run.step_log("deploy");
    assert!(log.contains("setting `kubeconfig`: missing"), "{log}");

    // Nothing was applied.
    let maps: Api<ConfigMap> = Api::namespaced(client, &ns);
    assert!(
        rt.block_on(maps.get_opt("settings"))
            .expect("get")
            .is_none()
    );
}
