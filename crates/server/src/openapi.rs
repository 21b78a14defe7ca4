//! The API's OpenAPI 3.0 document: hand-written in `openapi.yaml` (so routes added in parallel
//! only add a few lines there, never a derive on every type), embedded in the binary and served
//! unauthenticated at `GET /api/v1/openapi.json` (parsed once) and `/api/v1/openapi.yaml` (as
//! written). `tests/server_openapi.rs` fails when a route of the router is missing from the
//! document, and fuzzes the served document with schemathesis.

use crate::Error;
use axum::Json;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::Value;
use std::sync::LazyLock;

/// The document as written.
pub(crate) const SOURCE: &str = include_str!("openapi.yaml");

/// The document as JSON, parsed on first use (its aliases expanded).
static DOCUMENT: LazyLock<Result<Value, String>> =
    LazyLock::new(|| serde_saphyr::from_str::<Value>(SOURCE).map_err(|e| e.to_string()));

pub(crate) async fn json() -> Result<Json<Value>, Error> {
    match &*DOCUMENT {
        Ok(document) => Ok(Json(document.clone())),
        Err(reason) => Err(Error::Internal(format!(
            "the embedded OpenAPI document does not parse: {reason}"
        ))),
    }
}

pub(crate) async fn yaml() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/yaml")], SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> &'static Value {
        match &*DOCUMENT {
            Ok(document) => document,
            Err(reason) => panic!("openapi.yaml does not parse: {reason}"),
        }
    }

    #[test]
    fn document_parses_and_every_reference_resolves() {
        let doc = document();
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.0")),
            "{}",
            doc["openapi"]
        );
        let mut refs = Vec::new();
        collect_refs(doc, &mut refs);
        assert!(refs.len() > 50, "only {} references", refs.len());
        for reference in refs {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{reference} is not local"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{reference} points at nothing"
            );
        }
        // Every operation answers something, and documents its errors as `Error`.
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if method == "parameters" {
                    continue;
                }
                let responses = op["responses"].as_object();
                assert!(
                    responses.is_some_and(|r| !r.is_empty()),
                    "{method} {path} has no responses"
                );
            }
        }
    }

    fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if key == "$ref" {
                        if let Some(r) = v.as_str() {
                            out.push(r);
                        }
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
