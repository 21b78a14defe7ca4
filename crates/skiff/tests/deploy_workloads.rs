//! Readiness waits against the real controllers (made to run by KWOK): a Job waited for until
//! Complete, a StatefulSet and a DaemonSet until their pods are ready.

mod deploy_support;

use deploy_support::*;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;

#[tokio::test(flavor = "multi_thread")]
async fn job_statefulset_and_daemonset_are_waited_for() {
    let Some(client) = cluster("job_statefulset_and_daemonset_are_waited_for").await else {
        return;
    };
    let ns = unique("skt-work");
    let app = unique("work");
    let pod = "    metadata: {labels: {app: APP}}\n    spec: {containers: [{name: main, image: registry.example/x:1}]}\n";
    let job = format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: migrate, namespace: {ns}}}\nspec:\n  template:\n    spec: {{restartPolicy: Never, containers: [{{name: main, image: registry.example/migrate:1}}]}}\n"
    );
    let sts = format!(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db, namespace: {ns}}}\nspec:\n  replicas: 2\n  serviceName: db\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n{}",
        pod.replace("APP", "db")
    );
    let ds = format!(
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{app: agent}}}}\n  template:\n{}",
        pod.replace("APP", "agent")
    );
    let set = manifests(&[
        ("0.yaml", namespace(&ns)),
        ("1.yaml", job),
        ("2.yaml", sts),
        ("3.yaml", ds),
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
            "120",
        ],
        None,
    )
    .await;
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    for name in ["Job.batch", "StatefulSet.apps", "DaemonSet.apps"] {
        assert!(
            log.contains(&format!("{name} {ns}/")) && log.contains("ready"),
            "{name}: {log}"
        );
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job = serde_json::to_value(jobs.get("migrate").await.expect("job")).expect("json");
    assert_eq!(
        job["status"]["succeeded"], 1,
        "waited until the Job completed: {job}"
    );
    let out = skiff(&["deploy", "delete", "-a", &app, "--yes"], None).await;
    assert!(out.status.success(), "{}", text(&out));
}
