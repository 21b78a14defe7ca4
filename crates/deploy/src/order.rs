//! The order in which a manifest set is applied. Resources are sorted into groups by weight;
//! a group is applied and waited for before the next one starts, so CRDs are established
//! before their custom resources and namespaces exist before what lives in them.
//! The annotation `skiff.dev/apply-order: "<integer>"` overrides a resource's weight.

use serde_json::Value;

/// Annotation that overrides the weight of one resource.
pub const ORDER_ANNOTATION: &str = "skiff.dev/apply-order";

/// CustomResourceDefinitions.
pub const WEIGHT_CRDS: i64 = 0;
/// Namespaces.
pub const WEIGHT_NAMESPACES: i64 = 10;
/// Other cluster-scoped objects (ClusterRoles, StorageClasses, PriorityClasses, ...).
pub const WEIGHT_CLUSTER: i64 = 20;
/// What workloads need: ServiceAccounts, RBAC, ConfigMaps, Secrets, storage, policies.
pub const WEIGHT_WORKLOAD_DEPENDENCIES: i64 = 30;
/// Everything else: workloads, services, custom resources.
pub const WEIGHT_REST: i64 = 40;

/// The weight of one resource; lower weights are applied first.
pub fn weight(group: &str, kind: &str, namespaced: bool, object: &Value) -> i64 {
    if let Some(weight) = object["metadata"]["annotations"][ORDER_ANNOTATION]
        .as_str()
        .and_then(|w| w.trim().parse::<i64>().ok())
    {
        return weight;
    }
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => WEIGHT_CRDS,
        ("", "Namespace") => WEIGHT_NAMESPACES,
        _ if !namespaced => WEIGHT_CLUSTER,
        (
            "",
            "ServiceAccount"
            | "ConfigMap"
            | "Secret"
            | "PersistentVolumeClaim"
            | "ResourceQuota"
            | "LimitRange",
        )
        | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
        | ("networking.k8s.io", "NetworkPolicy")
        | ("policy", "PodDisruptionBudget") => WEIGHT_WORKLOAD_DEPENDENCIES,
        _ => WEIGHT_REST,
    }
}

/// Whether an annotation value asks for a non-integer order (reported as a problem).
pub fn invalid_order_annotation(object: &Value) -> Option<String> {
    let value = object["metadata"]["annotations"][ORDER_ANNOTATION].as_str()?;
    match value.trim().parse::<i64>() {
        Ok(_) => None,
        Err(_) => Some(format!(
            "annotation {ORDER_ANNOTATION} must be an integer, not {value:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_weights_put_crds_and_namespaces_first() {
        let none = json!({});
        assert_eq!(
            weight(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                false,
                &none
            ),
            0
        );
        assert_eq!(weight("", "Namespace", false, &none), 10);
        assert_eq!(
            weight("rbac.authorization.k8s.io", "ClusterRole", false, &none),
            20
        );
        assert_eq!(weight("", "ConfigMap", true, &none), 30);
        assert_eq!(weight("apps", "Deployment", true, &none), 40);
        assert_eq!(weight("example.com", "Widget", true, &none), 40);
    }

    #[test]
    fn annotation_overrides() {
        let obj = json!({"metadata": {"annotations": {ORDER_ANNOTATION: "5"}}});
        assert_eq!(weight("apps", "Deployment", true, &obj), 5);
        let bad = json!({"metadata": {"annotations": {ORDER_ANNOTATION: "first"}}});
        assert!(invalid_order_annotation(&bad).is_some());
        assert!(invalid_order_annotation(&obj).is_none());
    }
}
