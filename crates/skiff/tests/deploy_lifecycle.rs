//! `skiff deploy` against the real API server of `scripts/k8s-testenv`: first deploy, no-op
//! redeploy, update with a changed image, prune of a removed resource, history, rollback and
//! app deletion; refusing without `--yes` when there is no terminal.

mod deploy_support;

use deploy_support::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

async fn image(client: &kube::Client, ns: &str, name: &str) -> String {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = api.get(name).await.expect("deployment exists");
    let d = serde_json::to_value(d).expect("json");
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn config_map_exists(client: &kube::Client, ns: &str, name: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.get_opt(name).await.expect("get configmap").is_some()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_update_prune_rollback_delete() {
    let Some(client) = cluster("deploy_update_prune_rollback_delete").await else {
        return;
    };
    let ns = unique("skt-life");
    let app = unique("life");
    let v1 = manifests(&[
        ("0-ns.yaml", namespace(&ns)),
        (
            "1-config.yaml",
            format!(
                "{}---\n{}",
                config_map(&ns, "keep", "1"),
                config_map(&ns, "old", "1")
            ),
        ),
        (
            "2-web.yaml",
            deployment(&ns, "web", "registry.example/web:1", ""),
        ),
    ]);
    let dir = v1.path().to_str().expect("utf-8 path");

    // Without --yes and without a terminal: refuse, change nothing.
    let out = skiff(&["deploy", "-a", &app, "-f", dir], None).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("refusing"), "{}", text(&out));
    let out = skiff(&["deploy", "ls"], None).await;
    assert!(!text(&out).contains(&app), "{}", text(&out));

    let out = skiff(
        &["deploy", "-a", &app, "-f", dir, "--yes", "--timeout", "90"],
        None,
    )
    .await;
    assert!(out.status.success(), "first deploy: {}", text(&out));
    assert!(
        text(&out).contains("3 create") || text(&out).contains("4 create"),
        "{}",
        text(&out)
    );
    assert_eq!(image(&client, &ns, "web").await, "registry.example/web:1");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let web = serde_json::to_value(deployments.get("web").await.expect("web")).expect("json");
    assert_eq!(web["status"]["readyReplicas"], 1, "waited for readiness");
    assert_eq!(
        web["metadata"]["labels"]["skiff.dev/app"].as_str(),
        Some(app.as_str())
    );

    // Same set again: nothing to do.
    let out = skiff(&["deploy", "-a", &app, "-f", dir, "--yes"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no changes"), "{}", text(&out));

    // Changed image, one ConfigMap dropped: update + prune, with a diff shown.
    let v2 = manifests(&[
        ("0-ns.yaml", namespace(&ns)),
        ("1-config.yaml", config_map(&ns, "keep", "1")),
        (
            "2-web.yaml",
            deployment(&ns, "web", "registry.example/web:2", ""),
        ),
    ]);
    // --dry-run shows the plan and the diff and changes nothing.
    let v2_dir = v2.path().to_str().expect("utf-8");
    let out = skiff(&["deploy", "-a", &app, "-f", v2_dir, "--dry-run"], None).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("registry.example/web:2"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("1 update") && text(&out).contains("1 delete"),
        "{}",
        text(&out)
    );
    assert_eq!(image(&client, &ns, "web").await, "registry.example/web:1");
    assert!(
        config_map_exists(&client, &ns, "old").await,
        "dry run pruned nothing"
    );
    let out = skiff(
        &[
            "deploy",
            "-a",
            &app,
            "-f",
            v2.path().to_str().expect("utf-8"),
            "--yes",
            "--timeout",
            "90",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "update: {}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("+") && log.contains("registry.example/web:2"),
        "diff shown: {log}"
    );
    assert!(log.contains("delete    ConfigMap"), "{log}");
    assert_eq!(image(&client, &ns, "web").await, "registry.example/web:2");
    assert!(!config_map_exists(&client, &ns, "old").await, "pruned");
    assert!(config_map_exists(&client, &ns, "keep").await);

    let out = skiff(&["deploy", "history", "-a", &app], None).await;
    assert!(out.status.success(), "{}", text(&out));
    let history = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        history.lines().filter(|l| l.contains("succeeded")).count(),
        2,
        "{history}"
    );

    // Back to revision 1: old image, pruned ConfigMap restored.
    let out = skiff(
        &[
            "deploy",
            "rollback",
            "-a",
            &app,
            "--to",
            "1",
            "--yes",
            "--timeout",
            "90",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "rollback: {}", text(&out));
    assert_eq!(image(&client, &ns, "web").await, "registry.example/web:1");
    assert!(
        config_map_exists(&client, &ns, "old").await,
        "restored by rollback"
    );
    let out = skiff(&["deploy", "inspect", "-a", &app], None).await;
    assert!(text(&out).contains("revision 3"), "{}", text(&out));

    let out = skiff(
        &["deploy", "rollback", "-a", &app, "--to", "99", "--yes"],
        None,
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("no revision 99"), "{}", text(&out));

    // Delete: resources and the app record go.
    let out = skiff(&["deploy", "delete", "-a", &app, "--yes"], None).await;
    assert!(out.status.success(), "delete: {}", text(&out));
    let out = skiff(&["deploy", "ls"], None).await;
    assert!(!text(&out).contains(&app), "{}", text(&out));
    let out = skiff(&["deploy", "inspect", "-a", &app], None).await;
    assert!(!out.status.success());
}
