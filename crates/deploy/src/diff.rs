//! What a change looks like to a person: live and planned objects are stripped of the fields
//! the server owns (status, managed fields, resource versions, timestamps), Secret values are
//! masked, and the two are compared as YAML in a unified diff.

use serde_json::Value;
use sha2::Digest;

/// Remove server-owned fields and mask Secret values, so two objects compare by intent.
pub fn normalize(object: &Value) -> Value {
    let mut object = object.clone();
    let Some(map) = object.as_object_mut() else {
        return object;
    };
    map.remove("status");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "uid",
            "selfLink",
        ] {
            meta.remove(key);
        }
        if meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.is_empty())
        {
            meta.remove("annotations");
        }
    }
    if map.get("kind").and_then(Value::as_str) == Some("Secret")
        && map.get("apiVersion").and_then(Value::as_str) == Some("v1")
    {
        for key in ["data", "stringData"] {
            if let Some(data) = map.get_mut(key).and_then(Value::as_object_mut) {
                for value in data.values_mut() {
                    let text = value.as_str().unwrap_or_default();
                    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
                    *value = Value::String(format!("(masked, sha256 {})", &digest[..12]));
                }
            }
        }
    }
    object
}

/// A unified diff between the live and the planned object (both normalized first).
pub fn unified(live: Option<&Value>, planned: &Value) -> String {
    let old = live.map(|l| yaml(&normalize(l))).unwrap_or_default();
    let new = yaml(&normalize(planned));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("live", "planned")
        .to_string()
}

fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_fields_do_not_count() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "1", "resourceVersion": "9", "managedFields": []},
            "data": {"k": "v"}});
        let planned = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "1", "resourceVersion": "10"}, "data": {"k": "v"}});
        assert_eq!(normalize(&live), normalize(&planned));
    }

    #[test]
    fn secrets_are_masked_and_diffs_show_changes() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"password": "aHVudGVyMg=="}});
        let text = unified(None, &secret);
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert!(text.contains("+kind: Secret"), "{text}");
    }
}
