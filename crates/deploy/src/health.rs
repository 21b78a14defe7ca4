//! Readiness rules per kind, in the spirit of kapp's wait rules and kstatus: given the live
//! object, is it ready, still progressing, or failed for good? Pure functions over JSON so they
//! are tested without a cluster.

use serde_json::Value;

/// Annotation that turns waiting off for one resource (`"false"`).
pub const WAIT_ANNOTATION: &str = "skiff.dev/wait";

/// The verdict on one live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Not there yet; the message says what is missing.
    Progressing(String),
    /// Will not get there without a change; the message says why.
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"].as_str() == Some(type_))
}

fn condition_is(object: &Value, type_: &str, status: &str) -> bool {
    condition(object, type_).is_some_and(|c| c["status"].as_str() == Some(status))
}

fn condition_text(object: &Value, type_: &str) -> String {
    condition(object, type_)
        .map(|c| {
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            format!(
                "{type_}={}: {reason} {message}",
                c["status"].as_str().unwrap_or("?")
            )
            .trim()
            .to_string()
        })
        .unwrap_or_default()
}

/// Whether the controller has seen the latest spec.
fn observed(object: &Value) -> bool {
    let generation = int(&object["metadata"]["generation"]);
    let observed = &object["status"]["observedGeneration"];
    observed.is_null() && generation == 0 || int(observed) >= generation
}

/// Judge one live object of the given group and kind.
pub fn health(group: &str, kind: &str, object: &Value) -> Health {
    if object["metadata"]["annotations"][WAIT_ANNOTATION].as_str() == Some("false") {
        return Health::Ready;
    }
    match (group, kind) {
        ("apps", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("batch", "Job") => job(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object),
        ("", "PersistentVolumeClaim") => pvc(object),
        ("", "Pod") => pod(object),
        _ => generic(object),
    }
}

fn deployment(object: &Value) -> Health {
    if !observed(object) {
        return Health::Progressing("waiting for the controller to observe the new spec".into());
    }
    if condition_is(object, "Progressing", "False") {
        return Health::Failed(condition_text(object, "Progressing"));
    }
    let status = &object["status"];
    let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = int(&status["updatedReplicas"]);
    let available = int(&status["availableReplicas"]);
    let total = int(&status["replicas"]);
    let unavailable = int(&status["unavailableReplicas"]);
    if updated >= wanted && available >= wanted && total <= wanted && unavailable == 0 {
        return Health::Ready;
    }
    let mut message = format!("{available}/{wanted} available, {updated} updated");
    if total > wanted {
        message.push_str(&format!(", {} old replicas terminating", total - wanted));
    }
    if condition_is(object, "ReplicaFailure", "True") {
        message.push_str(&format!("; {}", condition_text(object, "ReplicaFailure")));
    }
    Health::Progressing(message)
}

fn stateful_set(object: &Value) -> Health {
    if !observed(object) {
        return Health::Progressing("waiting for the controller to observe the new spec".into());
    }
    let status = &object["status"];
    let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let partition = int(&object["spec"]["updateStrategy"]["rollingUpdate"]["partition"]);
    let ready = int(&status["readyReplicas"]);
    let updated = int(&status["updatedReplicas"]);
    let total = int(&status["replicas"]);
    if ready >= wanted && updated >= wanted - partition && total <= wanted {
        return Health::Ready;
    }
    Health::Progressing(format!("{ready}/{wanted} ready, {updated} updated"))
}

fn daemon_set(object: &Value) -> Health {
    if !observed(object) {
        return Health::Progressing("waiting for the controller to observe the new spec".into());
    }
    let status = &object["status"];
    let desired = int(&status["desiredNumberScheduled"]);
    let updated = int(&status["updatedNumberScheduled"]);
    let available = int(&status["numberAvailable"]);
    if updated >= desired && available >= desired && int(&status["numberUnavailable"]) == 0 {
        return Health::Ready;
    }
    Health::Progressing(format!(
        "{available}/{desired} available, {updated} updated"
    ))
}

fn job(object: &Value) -> Health {
    if condition_is(object, "Failed", "True") {
        return Health::Failed(condition_text(object, "Failed"));
    }
    if condition_is(object, "Complete", "True") {
        return Health::Ready;
    }
    let status = &object["status"];
    Health::Progressing(format!(
        "{} active, {} succeeded, {} failed",
        int(&status["active"]),
        int(&status["succeeded"]),
        int(&status["failed"])
    ))
}

fn crd(object: &Value) -> Health {
    if condition_is(object, "NamesAccepted", "False") {
        return Health::Failed(condition_text(object, "NamesAccepted"));
    }
    if condition_is(object, "Established", "True") {
        return Health::Ready;
    }
    Health::Progressing("not established yet".into())
}

fn pvc(object: &Value) -> Health {
    match object["status"]["phase"].as_str() {
        Some("Bound") => Health::Ready,
        Some("Lost") => Health::Failed("phase Lost: the bound volume is gone".into()),
        other => Health::Progressing(format!("phase {}", other.unwrap_or("unknown"))),
    }
}

fn pod(object: &Value) -> Health {
    match object["status"]["phase"].as_str() {
        Some("Succeeded") => Health::Ready,
        Some("Failed") => Health::Failed(format!(
            "phase Failed: {}",
            object["status"]["message"].as_str().unwrap_or_default()
        )),
        Some("Running") if condition_is(object, "Ready", "True") => Health::Ready,
        other => Health::Progressing(format!("phase {}", other.unwrap_or("Pending"))),
    }
}

/// kstatus-style rule for everything else: a `Ready` condition, when present, must be True.
fn generic(object: &Value) -> Health {
    if condition(object, "Ready").is_some() && !observed(object) {
        return Health::Progressing("waiting for the controller to observe the new spec".into());
    }
    if condition_is(object, "Ready", "False") {
        return Health::Progressing(condition_text(object, "Ready"));
    }
    Health::Ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_rollout() {
        let progressing = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 1}});
        assert!(matches!(deployment(&progressing), Health::Progressing(_)));
        let ready = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert_eq!(health("apps", "Deployment", &ready), Health::Ready);
        let stale = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert!(matches!(deployment(&stale), Health::Progressing(_)));
        let failed = json!({"metadata": {"generation": 1}, "spec": {},
            "status": {"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]}});
        let Health::Failed(message) = deployment(&failed) else {
            panic!("not failed")
        };
        assert!(message.contains("ProgressDeadlineExceeded"), "{message}");
    }

    #[test]
    fn jobs_crds_pvcs_and_others() {
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(health("batch", "Job", &done), Health::Ready);
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert!(matches!(health("batch", "Job", &failed), Health::Failed(_)));
        let crd = json!({"status": {"conditions": [{"type": "Established", "status": "True"}]}});
        assert_eq!(
            health("apiextensions.k8s.io", "CustomResourceDefinition", &crd),
            Health::Ready
        );
        let pending = json!({"status": {"phase": "Pending"}});
        assert!(matches!(
            health("", "PersistentVolumeClaim", &pending),
            Health::Progressing(_)
        ));
        assert_eq!(health("", "ConfigMap", &json!({})), Health::Ready);
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        assert!(matches!(
            health("example.com", "Widget", &not_ready),
            Health::Progressing(_)
        ));
        let opted_out = json!({"metadata": {"annotations": {WAIT_ANNOTATION: "false"}}, "status": {"phase": "Pending"}});
        assert_eq!(
            health("", "PersistentVolumeClaim", &opted_out),
            Health::Ready
        );
    }

    #[test]
    fn stateful_and_daemon_sets() {
        let sts = json!({"metadata": {"generation": 1}, "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}});
        assert_eq!(health("apps", "StatefulSet", &sts), Health::Ready);
        let ds = json!({"metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1}});
        assert!(matches!(
            health("apps", "DaemonSet", &ds),
            Health::Progressing(_)
        ));
    }
}
