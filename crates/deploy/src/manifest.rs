//! Reading a manifest set: YAML or JSON files, folders (recursively, in name order) and stdin,
//! with several documents per file and `List` kinds flattened. Problems are reported with the
//! file, line and column, or the document number, before anything talks to a cluster.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One Kubernetes object as written by the user, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `file.yaml#2` (1-based document number) for messages.
    pub origin: String,
    /// The object; always a JSON object with `apiVersion`, `kind` and `metadata.name`.
    pub object: Value,
}

impl Document {
    /// `apiVersion` of the object.
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }
    /// `kind` of the object.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    /// `metadata.name` of the object.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
    /// `metadata.namespace`, when written.
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"]
            .as_str()
            .filter(|ns| !ns.is_empty())
    }
    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        split_api_version(self.api_version()).0
    }
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// Read every path (`-` is stdin) and return the documents in the order given.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Document>> {
    let mut documents = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
            documents.extend(parse_documents("<stdin>", &text)?);
        } else {
            load_path(path, &mut documents)?;
        }
    }
    Ok(documents)
}

fn load_path(path: &Path, out: &mut Vec<Document>) -> Result<()> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let is_manifest = entry
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if entry.is_dir() || is_manifest {
                load_path(&entry, out)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    out.extend(parse_documents(&path.display().to_string(), &text)?);
    Ok(())
}

/// Parse a multi-document YAML (or JSON) text into objects, flattening `*List` kinds.
pub fn parse_documents(source_name: &str, text: &str) -> Result<Vec<Document>> {
    let options = serde_saphyr::options! { with_snippet: false };
    let values: Vec<Value> =
        serde_saphyr::from_str_multiple_with_options(text, options).map_err(|error| {
            let (line, column) = error
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            Error::Yaml {
                source_name: source_name.to_string(),
                line,
                column,
                message: first_line(&error.to_string()),
            }
        })?;
    let mut out = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let index = i + 1;
        collect(source_name, index, value, &mut out)?;
    }
    Ok(out)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().to_string()
}

fn collect(source_name: &str, index: usize, value: Value, out: &mut Vec<Document>) -> Result<()> {
    let bad = |message: String| Error::Manifest {
        source_name: source_name.to_string(),
        index,
        message,
    };
    let Value::Object(map) = value else {
        if value.is_null() {
            return Ok(());
        }
        return Err(bad(
            "a document must be a mapping (a Kubernetes object)".into()
        ));
    };
    let kind = string_field(&map, "kind").ok_or_else(|| bad("missing `kind`".into()))?;
    string_field(&map, "apiVersion").ok_or_else(|| bad(format!("{kind}: missing `apiVersion`")))?;
    if kind.ends_with("List")
        && let Some(items) = map.get("items")
    {
        let Value::Array(items) = items else {
            return Err(bad(format!("{kind}: `items` must be a list")));
        };
        for item in items {
            collect(source_name, index, item.clone(), out)?;
        }
        return Ok(());
    }
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    if name.is_none() {
        let generate = map
            .get("metadata")
            .and_then(|m| m.get("generateName"))
            .is_some();
        let why = if generate {
            "`metadata.generateName` cannot be tracked; give it a `metadata.name`"
        } else {
            "missing `metadata.name`"
        };
        return Err(bad(format!("{kind}: {why}")));
    }
    out.push(Document {
        origin: format!("{source_name}#{index}"),
        object: Value::Object(map),
    });
    Ok(())
}

fn string_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Render documents back to a multi-document YAML text.
pub fn to_yaml(objects: &[Value]) -> Result<String, String> {
    serde_saphyr::to_string_multiple(objects).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_several_documents_and_lists() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n";
        let docs = parse_documents("x.yaml", text).expect("valid");
        let names: Vec<_> = docs.iter().map(|d| (d.kind(), d.name())).collect();
        assert_eq!(names, vec![("ConfigMap", "a"), ("Secret", "b")]);
        assert_eq!(docs[0].origin, "x.yaml#1");
    }

    #[test]
    fn yaml_errors_have_line_and_column() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n";
        let err = parse_documents("bad.yaml", text).expect_err("invalid");
        let Error::Yaml { line, column, .. } = &err else {
            panic!("unexpected {err}");
        };
        assert!(*line >= 4, "line {line}");
        assert!(*column > 0);
        assert!(err.to_string().starts_with("bad.yaml:"), "{err}");
    }

    #[test]
    fn missing_name_is_reported_with_document_number() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\n";
        let err = parse_documents("m.yaml", text).expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "m.yaml: document 2: Secret: missing `metadata.name`"
        );
    }

    #[test]
    fn splits_api_versions() {
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
    }
}
