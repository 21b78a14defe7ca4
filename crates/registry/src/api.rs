//! The HTTP face of the registry: the OCI distribution spec v1.1 under `/v2/`. Repository
//! names contain slashes, which axum cannot match in the middle of a path, so one catch-all
//! route hands the rest of the path to [`parse_route`], which splits it from the right into
//! `<name>` and the endpoint. Every handler asks [`Auth`] for the (repository, action) it needs
//! before touching storage.

use crate::auth::{Action, Auth};
use crate::error::{Error, Result};
use crate::reference::{Algorithm, Digest, Reference, RepoName};
use crate::registry::{Page, Registry};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::StreamExt;
use std::sync::Arc;

/// Shared state of the registry's HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub auth: Arc<Auth>,
}

/// The registry's routes: `/v2/...` and the token endpoint `/auth/token`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2", any(ping))
        .route("/v2/", any(ping))
        .route("/v2/{*rest}", any(dispatch))
        .route("/auth/token", any(crate::auth::token_endpoint))
        .layer(axum::middleware::map_response(api_version_header))
        .with_state(state)
}

async fn api_version_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

/// The endpoint a `/v2/<rest>` path addresses.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Referrers(String, String),
}

/// Splits `<name>/<endpoint>` from the right; the name is validated by the caller.
pub fn parse_route(rest: &str) -> Option<Route> {
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let n = parts.len();
    let name = |k: usize| parts[..n - k].join("/");
    if n >= 3 && parts[n - 2] == "tags" && parts[n - 1] == "list" {
        return Some(Route::Tags(name(2)));
    }
    if n >= 3 && parts[n - 2] == "manifests" {
        return Some(Route::Manifest(name(2), parts[n - 1].to_string()));
    }
    if n >= 3 && parts[n - 2] == "referrers" {
        return Some(Route::Referrers(name(2), parts[n - 1].to_string()));
    }
    if n >= 4 && parts[n - 3] == "blobs" && parts[n - 2] == "uploads" {
        return Some(if parts[n - 1].is_empty() {
            Route::UploadStart(name(3))
        } else {
            Route::Upload(name(3), parts[n - 1].to_string())
        });
    }
    if n >= 3 && parts[n - 2] == "blobs" && parts[n - 1] == "uploads" {
        return Some(Route::UploadStart(name(2)));
    }
    if n >= 3 && parts[n - 2] == "blobs" {
        return Some(Route::Blob(name(2), parts[n - 1].to_string()));
    }
    None
}

async fn ping(State(state): State<AppState>, request: Request) -> Response {
    match state.auth.check(request.headers(), None).await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    match handle(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Query parameters, in order, repeated keys kept (`?tag=a&tag=b`).
struct Query(Vec<(String, String)>);

impl Query {
    fn of(request: &Request) -> Self {
        let pairs = request
            .uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .unwrap_or_default();
        Query(pairs)
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn n(&self) -> Result<Option<usize>> {
        match self.get("n") {
            None | Some("") => Ok(None),
            Some(text) => text
                .parse::<usize>()
                .map(Some)
                .map_err(|_| Error::PaginationInvalid {
                    reason: format!("n={text:?}"),
                }),
        }
    }
}

async fn handle(state: &AppState, request: Request) -> Result<Response> {
    let path = request.uri().path().to_string();
    let rest = path.strip_prefix("/v2/").unwrap_or("");
    let route = parse_route(rest).ok_or(Error::NotFound)?;
    let method = request.method().clone();
    let query = Query::of(&request);
    let registry = &state.registry;
    let auth = &state.auth;
    match route {
        Route::Catalog => {
            if method != Method::GET {
                return Err(unsupported(&method));
            }
            auth.check_catalog(request.headers()).await?;
            let page = registry.catalog(query.n()?, query.get("last")).await?;
            Ok(listing(
                "/v2/_catalog",
                "repositories",
                None,
                page,
                query.n()?,
            ))
        }
        Route::Tags(name) => {
            let repo = RepoName::parse(&name)?;
            if method != Method::GET {
                return Err(unsupported(&method));
            }
            auth.check(request.headers(), Some((&repo, Action::Pull)))
                .await?;
            let page = registry.tags(&repo, query.n()?, query.get("last")).await?;
            Ok(listing(
                &format!("/v2/{repo}/tags/list"),
                "tags",
                Some(&repo),
                page,
                query.n()?,
            ))
        }
        Route::Referrers(name, digest) => {
            let repo = RepoName::parse(&name)?;
            let digest = Digest::parse(&digest)?;
            if method != Method::GET {
                return Err(unsupported(&method));
            }
            auth.check(request.headers(), Some((&repo, Action::Pull)))
                .await?;
            let filter = query.get("artifactType");
            let artifact_type = filter.filter(|t| !t.is_empty());
            let manifests = registry.referrers(&repo, &digest, artifact_type).await?;
            let body = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": crate::manifest::OCI_INDEX,
                "manifests": manifests,
            });
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, crate::manifest::OCI_INDEX)],
                body.to_string(),
            )
                .into_response();
            if filter.is_some() {
                response.headers_mut().insert(
                    "OCI-Filters-Applied",
                    HeaderValue::from_static("artifactType"),
                );
            }
            Ok(response)
        }
        Route::Blob(name, digest) => {
            let repo = RepoName::parse(&name)?;
            let digest = Digest::parse(&digest)?;
            match method {
                Method::GET | Method::HEAD => {
                    auth.check(request.headers(), Some((&repo, Action::Pull)))
                        .await?;
                    blob_get(
                        registry,
                        &repo,
                        &digest,
                        request.headers(),
                        method == Method::HEAD,
                    )
                    .await
                }
                Method::DELETE => {
                    auth.check(request.headers(), Some((&repo, Action::Delete)))
                        .await?;
                    registry.blob_delete(&repo, &digest).await?;
                    Ok(accepted())
                }
                _ => Err(unsupported(&method)),
            }
        }
        Route::UploadStart(name) => {
            let repo = RepoName::parse(&name)?;
            if method != Method::POST {
                return Err(unsupported(&method));
            }
            auth.check(request.headers(), Some((&repo, Action::Push)))
                .await?;
            upload_start(state, &repo, &query, request).await
        }
        Route::Upload(name, id) => {
            let repo = RepoName::parse(&name)?;
            // Upload sessions belong to a push, status queries included.
            auth.check(request.headers(), Some((&repo, Action::Push)))
                .await?;
            match method {
                Method::GET => {
                    let size = registry.upload_size(&repo, &id).await?;
                    Ok(upload_progress(StatusCode::NO_CONTENT, &repo, &id, size))
                }
                Method::PATCH => {
                    let start = content_range_start(request.headers())?;
                    let length = content_length(request.headers());
                    let body = request.into_body().into_data_stream();
                    let size = registry
                        .upload_append(&repo, &id, body, start, length)
                        .await?;
                    Ok(upload_progress(StatusCode::ACCEPTED, &repo, &id, size))
                }
                Method::PUT => {
                    let digest = Digest::parse(query.get("digest").unwrap_or(""))?;
                    let start = content_range_start(request.headers())?;
                    let has_body = !matches!(
                        request.headers().get(header::CONTENT_LENGTH),
                        Some(v) if v.as_bytes() == b"0"
                    );
                    if has_body {
                        let length = content_length(request.headers());
                        let body = request.into_body().into_data_stream();
                        registry
                            .upload_append(&repo, &id, body, start, length)
                            .await?;
                    }
                    registry.upload_commit(&repo, &id, &digest).await?;
                    Ok(blob_created(&repo, &digest))
                }
                Method::DELETE => {
                    registry.upload_cancel(&repo, &id).await?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(unsupported(&method)),
            }
        }
        Route::Manifest(name, reference) => {
            let repo = RepoName::parse(&name)?;
            let reference = Reference::parse(&reference)?;
            match method {
                Method::GET | Method::HEAD => {
                    auth.check(request.headers(), Some((&repo, Action::Pull)))
                        .await?;
                    let found = registry.manifest_get(&repo, &reference).await?;
                    let builder = Response::builder()
                        .status(StatusCode::OK)
                        .header(header::CONTENT_TYPE, found.media_type.as_str())
                        .header(header::CONTENT_LENGTH, found.body.len())
                        .header("Docker-Content-Digest", found.digest.to_string())
                        .header(header::ETAG, format!("\"{}\"", found.digest));
                    if method == Method::HEAD {
                        return build(builder, Body::empty());
                    }
                    build(builder, Body::from(found.body))
                }
                Method::PUT => {
                    auth.check(request.headers(), Some((&repo, Action::Push)))
                        .await?;
                    let content_type = request
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let limit = crate::manifest::MAX_MANIFEST_SIZE;
                    let body = axum::body::to_bytes(request.into_body(), limit + 1)
                        .await
                        .map_err(|_| Error::ManifestTooLarge { limit })?;
                    let extra_tags = query.all("tag");
                    let put = registry
                        .manifest_put(
                            &repo,
                            &reference,
                            content_type.as_deref(),
                            body,
                            &extra_tags,
                        )
                        .await?;
                    let mut builder = Response::builder()
                        .status(StatusCode::CREATED)
                        .header(
                            header::LOCATION,
                            format!("/v2/{repo}/manifests/{}", put.digest),
                        )
                        .header("Docker-Content-Digest", put.digest.to_string())
                        .header(header::CONTENT_LENGTH, 0);
                    if let Some(subject) = &put.subject {
                        builder = builder.header("OCI-Subject", subject.to_string());
                    }
                    for tag in &extra_tags {
                        builder = builder.header("OCI-Tag", tag.as_str());
                    }
                    build(builder, Body::empty())
                }
                Method::DELETE => {
                    auth.check(request.headers(), Some((&repo, Action::Delete)))
                        .await?;
                    registry.manifest_delete(&repo, &reference).await?;
                    Ok(accepted())
                }
                _ => Err(unsupported(&method)),
            }
        }
    }
}

fn build(builder: axum::http::response::Builder, body: Body) -> Result<Response> {
    builder
        .body(body)
        .map_err(|e| Error::Internal(format!("building a response: {e}")))
}

fn unsupported(method: &Method) -> Error {
    Error::Unsupported {
        reason: format!("method {method} not allowed here"),
    }
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response()
}

fn listing(
    path: &str,
    field: &str,
    repo: Option<&RepoName>,
    page: Page,
    n: Option<usize>,
) -> Response {
    let mut body = serde_json::Map::new();
    if let Some(repo) = repo {
        body.insert("name".into(), repo.to_string().into());
    }
    body.insert(field.into(), page.items.into());
    let mut response = axum::Json(serde_json::Value::Object(body)).into_response();
    if let Some(next) = page.next {
        let n = n
            .unwrap_or(crate::registry::MAX_PAGE)
            .min(crate::registry::MAX_PAGE);
        let query =
            serde_urlencoded::to_string([("n", n.to_string()), ("last", next)]).unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(&format!("<{path}?{query}>; rel=\"next\"")) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    let mut response = (StatusCode::CREATED, [(header::CONTENT_LENGTH, "0")]).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/{repo}/blobs/{digest}")) {
        headers.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        headers.insert("Docker-Content-Digest", v);
    }
    response
}

fn upload_progress(status: StatusCode, repo: &RepoName, id: &str, size: u64) -> Response {
    let mut response = (status, [(header::CONTENT_LENGTH, "0")]).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/{repo}/blobs/uploads/{id}")) {
        headers.insert(header::LOCATION, v);
    }
    // `Range` is inclusive and carries no unit; an empty upload reports 0-0 like Distribution.
    let end = size.saturating_sub(1);
    if let Ok(v) = HeaderValue::from_str(&format!("0-{end}")) {
        headers.insert(header::RANGE, v);
    }
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert("Docker-Upload-UUID", v);
    }
    response
}

/// The start offset of a chunk from `Content-Range: <start>-<end>` (unit optional).
fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || Error::RangeNotSatisfiable {
        reason: "malformed Content-Range".into(),
        size: 0,
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let text = text
        .strip_prefix("bytes=")
        .or_else(|| text.strip_prefix("bytes "))
        .unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end
        .split('/')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    Ok(Some(start))
}

/// The request's `Content-Length`, when it is a number (a hint for reserving disk space; the
/// body itself decides how much is written).
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn upload_start(
    state: &AppState,
    repo: &RepoName,
    query: &Query,
    request: Request,
) -> Result<Response> {
    let registry = &state.registry;
    if let Some(mount) = query.get("mount")
        && let Ok(digest) = Digest::parse(mount)
    {
        let from = match query.get("from") {
            Some(from) => match RepoName::parse(from) {
                // Mounting reads the source: it needs pull there (CVE-2024-39897).
                Ok(from) => state
                    .auth
                    .check(request.headers(), Some((&from, Action::Pull)))
                    .await
                    .ok()
                    .map(|()| Some(from)),
                Err(_) => None,
            },
            None => state.auth.allows_anonymous_mount().then_some(None),
        };
        if let Some(from) = from
            && registry.mount(repo, &digest, from.as_ref()).await?
        {
            return Ok(blob_created(repo, &digest));
        }
    }
    if let Some(digest) = query.get("digest") {
        let digest = Digest::parse(digest)?;
        let id = registry
            .uploads()
            .create(repo, digest.algorithm())
            .await?
            .to_string();
        let length = content_length(request.headers());
        let body = request.into_body().into_data_stream();
        if let Err(e) = registry.upload_append(repo, &id, body, None, length).await {
            registry.uploads().remove(&id).await;
            return Err(e);
        }
        registry.upload_commit(repo, &id, &digest).await?;
        return Ok(blob_created(repo, &digest));
    }
    let algorithm = match query.get("digest-algorithm") {
        Some(name) => Algorithm::parse(name).ok_or_else(|| Error::DigestInvalid {
            reason: format!("unsupported digest algorithm {name:?}"),
        })?,
        None => Algorithm::Sha256,
    };
    let id = registry
        .uploads()
        .create(repo, algorithm)
        .await?
        .to_string();
    Ok(upload_progress(StatusCode::ACCEPTED, repo, &id, 0))
}

/// Parses `Range: bytes=a-b | a- | -n` against a blob of `size`; `None` means the whole blob.
fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>> {
    let unsatisfiable = || Error::RangeNotSatisfiable {
        reason: format!("range {value:?} of a {size} byte blob"),
        size,
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: serve the whole blob, which is allowed
    }
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| unsatisfiable())?;
            if n == 0 || size == 0 {
                return Err(unsatisfiable());
            }
            (size - n.min(size), size - 1)
        }
        (start, "") => {
            let start: u64 = start.parse().map_err(|_| unsatisfiable())?;
            (start, size.saturating_sub(1))
        }
        (start, end) => {
            let start: u64 = start.parse().map_err(|_| unsatisfiable())?;
            let end: u64 = end.parse().map_err(|_| unsatisfiable())?;
            if end < start {
                return Err(unsatisfiable());
            }
            (start, end.min(size.saturating_sub(1)))
        }
    };
    if start >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end - start + 1)))
}

async fn blob_get(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let meta = registry.blob_stat(repo, digest).await?;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => parse_range(value, meta.size)?,
        None => None,
    };
    let (status, length) = match range {
        Some((_, len)) => (StatusCode::PARTIAL_CONTENT, len),
        None => (StatusCode::OK, meta.size),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::CACHE_CONTROL, "max-age=31536000");
    if let Some((start, len)) = range {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", start + len - 1, meta.size),
        );
    }
    if head {
        return build(builder, Body::empty());
    }
    let stream = registry.blob_read(digest, range).await?;
    build(builder, Body::from_stream(stream.map(|r| r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_from_the_right() {
        assert_eq!(parse_route("_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse_route("a/b/tags/list"),
            Some(Route::Tags("a/b".into()))
        );
        assert_eq!(
            parse_route("a/manifests/manifests/x"),
            Some(Route::Manifest("a/manifests".into(), "x".into()))
        );
        assert_eq!(
            parse_route("a/b/blobs/uploads/"),
            Some(Route::UploadStart("a/b".into()))
        );
        assert_eq!(
            parse_route("a/blobs/uploads/123"),
            Some(Route::Upload("a".into(), "123".into()))
        );
        assert_eq!(
            parse_route("a/blobs/sha256:x"),
            Some(Route::Blob("a".into(), "sha256:x".into()))
        );
        assert_eq!(parse_route("tags/list"), None);
        assert_eq!(parse_route("a/b"), None);
    }

    #[test]
    fn blob_ranges() {
        let r = |v: &str| parse_range(v, 1000);
        assert_eq!(r("bytes=500-599").ok().flatten(), Some((500, 100)));
        assert_eq!(r("bytes=500-").ok().flatten(), Some((500, 500)));
        assert_eq!(r("bytes=-100").ok().flatten(), Some((900, 100)));
        assert_eq!(r("bytes=900-5000").ok().flatten(), Some((900, 100)));
        assert!(r("bytes=500-0").is_err());
        assert!(r("bytes=1000-2000").is_err());
    }
}
