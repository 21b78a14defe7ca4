//! The API's OpenAPI 3.0 document: hand-written in `openapi.yaml` (so routes added in parallel
//! only add a few lines there, never a derive on every type), embedded in the binary and served
//! unauthenticated at `GET /api/v1/openapi.json` (parsed once) and `/api/v1/openapi.yaml` (as
//! written). A unit test below fails when a route of the router is missing from the document;
//! `tests/server_openapi.rs` fuzzes the served document with schemathesis.

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
    use std::collections::BTreeSet;

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

    /// The routes the router source declares, as (METHOD, full path) with every parameter
    /// written `{}`. Reads every `.route(PATH, get(…).post(…))` call of the modules that build
    /// the public router (all but `rpc.rs`, the runner protocol, which is not documented, and
    /// this file, whose test has example routes).
    /// Paths under `/healthz`, `/readyz`, `/metrics` and `/hook/` are top-level; the rest are
    /// nested under `/api/v1`.
    fn declared_routes() -> BTreeSet<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut routes = BTreeSet::new();
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !file.ends_with(".rs") || file == "rpc.rs" || file == "openapi.rs" {
                continue;
            }
            let source = std::fs::read_to_string(&path).expect("read source");
            for (route, methods) in routes_in(&source) {
                let top_level = ["/healthz", "/readyz", "/metrics", "/hook/"]
                    .iter()
                    .any(|p| route.starts_with(p));
                let full = if top_level {
                    route
                } else {
                    format!("/api/v1{route}")
                };
                for method in methods {
                    routes.insert((method, normalize(&full)));
                }
            }
        }
        routes
    }

    /// `(path, methods)` of each `.route(` call in `source`.
    fn routes_in(source: &str) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let args = rest.trim_start();
            let Some(literal) = args.strip_prefix('"') else {
                continue;
            };
            let Some(end) = literal.find('"') else {
                break;
            };
            let path = literal[..end].to_string();
            // The method routers: up to the `)` that closes `.route(`.
            let mut depth = 1;
            let mut close = literal.len();
            for (i, c) in literal[end..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = end + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let handlers = &literal[end..close];
            let methods: Vec<String> = ["get", "post", "put", "patch", "delete"]
                .iter()
                .filter(|m| {
                    handlers
                        .match_indices(&format!("{m}("))
                        .any(|(i, _)| i == 0 || !is_ident(handlers[..i].chars().last()))
                })
                .map(|m| m.to_string())
                .collect();
            assert!(
                !methods.is_empty(),
                "cannot tell the methods of route {path}: {handlers}"
            );
            out.push((path, methods));
        }
        out
    }

    fn is_ident(c: Option<char>) -> bool {
        c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    fn normalize(path: &str) -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Whether a router path (`{}` matches any one segment) covers a documented path.
    fn covers(route: &str, documented: &str) -> bool {
        let (r, d): (Vec<_>, Vec<_>) =
            (route.split('/').collect(), documented.split('/').collect());
        r.len() == d.len() && r.iter().zip(&d).all(|(r, d)| r == d || *r == "{}")
    }

    /// The lead merges routes from several branches: this names every one the document lacks.
    #[test]
    fn every_route_of_the_router_is_documented() {
        let doc = document();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| *k != "parameters")
                    .map(|method| (method.clone(), normalize(path)))
                    .collect::<Vec<_>>()
            })
            .collect();
        let routes = declared_routes();
        assert!(
            routes.contains(&("post".into(), "/api/v1/repos".into())),
            "the route scan found {routes:?}"
        );
        let missing: Vec<String> = routes
            .iter()
            .filter(|(method, route)| {
                !documented
                    .iter()
                    .any(|(m, d)| m == method && covers(route, d))
            })
            .map(|(method, route)| format!("{} {route}", method.to_uppercase()))
            .collect();
        assert!(
            missing.is_empty(),
            "routes missing from crates/server/src/openapi.yaml:\n  {}",
            missing.join("\n  ")
        );
        // And nothing documented that the router does not serve.
        let stale: Vec<String> = documented
            .iter()
            .filter(|(m, d)| !routes.iter().any(|(method, r)| m == method && covers(r, d)))
            .map(|(m, d)| format!("{} {d}", m.to_uppercase()))
            .collect();
        assert!(
            stale.is_empty(),
            "documented but not routed:\n  {}",
            stale.join("\n  ")
        );
    }

    #[test]
    fn the_route_scan_reads_multi_line_routes_and_method_chains() {
        let source = r#"
            Router::new()
                .route("/a", get(x))
                .route(
                    "/b/{id}",
                    get(list).post(add),
                )
                .route("/c/{id}", axum::routing::delete(remove).patch(update_targets))
        "#;
        let found = routes_in(source);
        assert_eq!(
            found,
            vec![
                ("/a".to_string(), vec!["get".to_string()]),
                ("/b/{id}".into(), vec!["get".into(), "post".into()]),
                ("/c/{id}".into(), vec!["patch".into(), "delete".into()]),
            ]
        );
    }
}
