//! How `skiff deploy` fails against the real API server: a Deployment that never becomes
//! ready names itself and the reason and stops the next group; an invalid manifest is
//! rejected by the dry run with nothing applied.

mod deploy_support;

use deploy_support::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;

#[tokio::test(flavor = "multi_thread")]
async fn wait_failure_names_resource_and_stops_next_group() {
    let Some(client) = cluster("wait_failure_names_resource_and_stops_next_group").await else {
        return;
    };
    let ns = unique("skt-wait");
    let app = unique("wait");
    // The pod can never be scheduled: no node has this label.
    let stuck = deployment(
        &ns,
        "stuck",
        "registry.example/stuck:1",
        "      nodeSelector: {skiff.dev/no-such-node: \"true\"}\n",
    )
    // Let the controller declare it failed (ProgressDeadlineExceeded) well before the timeout.
    .replace(
        "  replicas: 1\n",
        "  replicas: 1\n  progressDeadlineSeconds: 8\n",
    );
    let later = config_map(&ns, "after", "1").replace(
        "metadata: {",
        "metadata: {annotations: {skiff.dev/apply-order: \"50\"}, ",
    );
    let set = manifests(&[
        ("ns.yaml", namespace(&ns)),
        ("stuck.yaml", stuck),
        ("later.yaml", later),
    ]);
    let out = skiff(
        &[
            "deploy",
            "-a",
            &app,
            "-f",
            set.path().to_str().expect("utf-8"),
            "--yes",
            "--timeout",
            "60",
        ],
        None,
    )
    .await;
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("Deployment.apps") && log.contains("/stuck"),
        "names the resource: {log}"
    );
    assert!(
        log.contains("ProgressDeadlineExceeded")
            || log.contains("node affinity/selector")
            || log.contains("FailedScheduling"),
        "says why: {log}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert!(
        cms.get_opt("after").await.expect("get").is_none(),
        "next group not applied"
    );
    let out = skiff(&["deploy", "history", "-a", &app], None).await;
    assert!(text(&out).contains("failed"), "{}", text(&out));
    let out = skiff(&["deploy", "delete", "-a", &app, "--yes"], None).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_manifest_is_rejected_before_anything_changes() {
    let Some(client) = cluster("invalid_manifest_is_rejected_before_anything_changes").await else {
        return;
    };
    let ns = unique("skt-bad");
    let app = unique("bad");
    let bad = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: bad, namespace: {ns}}}\nspec:\n  replicas: many\n  selector: {{matchLabels: {{app: bad}}}}\n  template:\n    metadata: {{labels: {{app: bad}}}}\n    spec: {{containers: [{{name: c, image: x}}]}}\n"
    );
    let set = manifests(&[
        ("ns.yaml", namespace(&ns)),
        ("cm.yaml", config_map(&ns, "good", "1")),
        ("bad.yaml", bad),
    ]);
    let out = skiff(
        &[
            "deploy",
            "-a",
            &app,
            "-f",
            set.path().to_str().expect("utf-8"),
            "--yes",
        ],
        None,
    )
    .await;
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("rejected") && log.contains("bad"), "{log}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    assert!(
        namespaces.get_opt(&ns).await.expect("get").is_none(),
        "nothing applied"
    );
    let out = skiff(&["deploy", "ls"], None).await;
    assert!(!text(&out).contains(&app), "no app record: {}", text(&out));

    // A YAML syntax error is reported with file, line and column, before any cluster access.
    let broken = manifests(&[(
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n".to_string(),
    )]);
    let out = skiff(
        &[
            "deploy",
            "-a",
            &app,
            "-f",
            broken.path().to_str().expect("utf-8"),
            "--yes",
        ],
        None,
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("broken.yaml:"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn crd_and_custom_resource_in_one_set_from_stdin_with_kubeconfig_env() {
    let Some(client) = cluster("crd_and_custom_resource_in_one_set").await else {
        return;
    };
    let ns = unique("skt-crd");
    let app = unique("crd");
    let group = format!("{}.skiff.test", unique("g"));
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: widgets.{group}}}\nspec:\n  group: {group}\n  scope: Namespaced\n  names: {{plural: widgets, singular: widget, kind: Widget}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec: {{type: object, properties: {{size: {{type: integer}}}}}}\n"
    );
    let widget = format!(
        "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: w1, namespace: {ns}}}\nspec: {{size: 3}}\n"
    );
    // Custom resource first in the stream: ordering must still put the CRD first.
    let stdin = format!("{widget}---\n{}---\n{crd}", namespace(&ns));
    let kubeconfig = std::fs::read_to_string(std::env::var("KUBECONFIG").expect("KUBECONFIG"))
        .expect("read kubeconfig");
    let out = skiff_env(
        &[
            "deploy",
            "-a",
            &app,
            "-f",
            "-",
            "--yes",
            "--kubeconfig-env",
            "SKIFF_TEST_KUBECONFIG",
        ],
        Some(&stdin),
        &[
            ("KUBECONFIG", None),
            ("SKIFF_TEST_KUBECONFIG", Some(&kubeconfig)),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let gvk = kube::core::GroupVersionKind::gvk(&group, "v1", "Widget");
    let (resource, _) = kube::discovery::pinned_kind(&client, &gvk)
        .await
        .expect("CRD served");
    let widgets: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &resource);
    let w1 = widgets.get("w1").await.expect("widget created");
    assert_eq!(w1.data["spec"]["size"], 3);
    let out = skiff(&["deploy", "delete", "-a", &app, "--yes"], None).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_cannot_take_over_another_apps_resource() {
    let Some(_client) = cluster("an_app_cannot_take_over_another_apps_resource").await else {
        return;
    };
    let ns = unique("skt-own");
    let (first, second) = (unique("own-a"), unique("own-b"));
    let set = manifests(&[
        ("ns.yaml", namespace(&ns)),
        ("cm.yaml", config_map(&ns, "shared", "1")),
    ]);
    let dir = set.path().to_str().expect("utf-8");
    let out = skiff(&["deploy", "-a", &first, "-f", dir, "--yes"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = skiff(&["deploy", "-a", &second, "-f", dir, "--yes"], None).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("belongs to app {first}")),
        "{}",
        text(&out)
    );
    let out = skiff(&["deploy", "delete", "-a", &first, "--yes"], None).await;
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_wait_applies_without_waiting_for_readiness() {
    let Some(_client) = cluster("no_wait_applies_without_waiting_for_readiness").await else {
        return;
    };
    let ns = unique("skt-nowait");
    let app = unique("nowait");
    let stuck = deployment(
        &ns,
        "stuck",
        "registry.example/stuck:1",
        "      nodeSelector: {skiff.dev/no-such-node: \"true\"}\n",
    );
    let set = manifests(&[("ns.yaml", namespace(&ns)), ("stuck.yaml", stuck)]);
    let dir = set.path().to_str().expect("utf-8");
    let out = skiff(
        &[
            "deploy",
            "-a",
            &app,
            "-f",
            dir,
            "--yes",
            "--no-wait",
            "--timeout",
            "20",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = skiff(&["deploy", "inspect", "-a", &app], None).await;
    assert!(text(&out).contains("progressing"), "{}", text(&out));
    let out = skiff(&["deploy", "delete", "-a", &app, "--yes"], None).await;
    assert!(out.status.success(), "{}", text(&out));
}
