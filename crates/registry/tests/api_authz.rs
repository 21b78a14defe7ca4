//! Table-driven authorization check over every endpoint × caller, in process (no sockets):
//! each handler must ask for the (repository, action) the spec implies, and nothing more lenient.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use tower::ServiceExt as _;

const DIGEST: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn app(dir: &std::path::Path) -> axum::Router {
    skiff_registry::app(&skiff_registry::Config {
        data_dir: dir.to_path_buf(),
        s3: None,
        admin_password: Some("pw".into()),
        verifier: None,
        public: vec!["pub/*".into()],
    })
    .expect("app")
}

async fn call(app: &axum::Router, method: &str, uri: &str, auth: Option<&str>) -> StatusCode {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("Host", "registry.test");
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let body = if method == "PUT" && uri.contains("/manifests/") {
        Body::from("{}")
    } else {
        Body::empty()
    };
    app.clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("response")
        .status()
}

async fn token(app: &axum::Router, scope: &str, basic: Option<&str>) -> String {
    let uri = format!("/auth/token?service=skiff-registry&scope={scope}");
    let mut request = Request::builder().uri(uri);
    if let Some(basic) = basic {
        request = request.header("Authorization", basic);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    format!("Bearer {}", json["token"].as_str().expect("token"))
}

#[tokio::test]
async fn every_endpoint_checks_its_scope() {
    let dir = tempfile::tempdir().expect("dir");
    let app = app(dir.path());
    let admin = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:pw")
    );
    let pull_only = token(&app, "repository:priv/app:pull", Some(&admin)).await;
    let anonymous = token(&app, "repository:priv/app:pull,push,delete", None).await;

    // (method, path, needed action) for one private repository.
    let endpoints = [
        ("GET", format!("/v2/priv/app/blobs/{DIGEST}"), "pull"),
        ("HEAD", format!("/v2/priv/app/blobs/{DIGEST}"), "pull"),
        ("DELETE", format!("/v2/priv/app/blobs/{DIGEST}"), "delete"),
        ("POST", "/v2/priv/app/blobs/uploads/".to_string(), "push"),
        (
            "PATCH",
            "/v2/priv/app/blobs/uploads/00000000-0000-4000-8000-000000000000".to_string(),
            "push",
        ),
        (
            "GET",
            "/v2/priv/app/blobs/uploads/00000000-0000-4000-8000-000000000000".to_string(),
            "push",
        ),
        (
            "DELETE",
            "/v2/priv/app/blobs/uploads/00000000-0000-4000-8000-000000000000".to_string(),
            "push",
        ),
        ("GET", "/v2/priv/app/manifests/latest".to_string(), "pull"),
        ("HEAD", "/v2/priv/app/manifests/latest".to_string(), "pull"),
        ("PUT", "/v2/priv/app/manifests/latest".to_string(), "push"),
        (
            "DELETE",
            "/v2/priv/app/manifests/latest".to_string(),
            "delete",
        ),
        ("GET", "/v2/priv/app/tags/list".to_string(), "pull"),
        ("GET", format!("/v2/priv/app/referrers/{DIGEST}"), "pull"),
    ];
    for (method, path, action) in &endpoints {
        // Nobody without credentials gets through.
        for auth in [None, Some(anonymous.as_str())] {
            assert_eq!(
                call(&app, method, path, auth).await,
                StatusCode::UNAUTHORIZED,
                "{method} {path} as anonymous"
            );
        }
        // A pull-only token passes exactly the pull endpoints.
        let status = call(&app, method, path, Some(&pull_only)).await;
        if *action == "pull" {
            assert_ne!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with pull"
            );
        } else {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with pull only"
            );
        }
        // The admin passes every check (then gets whatever the content says).
        let status = call(&app, method, path, Some(&admin)).await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path} as admin");
    }
    // Public repositories: anonymous pull yes, anything else no.
    let public = format!("/v2/pub/app/blobs/{DIGEST}");
    assert_eq!(
        call(&app, "GET", &public, None).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, "DELETE", &public, None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "POST", "/v2/pub/app/blobs/uploads/", None).await,
        StatusCode::UNAUTHORIZED
    );
    // The catalog is admin-only; the ping needs any valid credentials.
    assert_eq!(
        call(&app, "GET", "/v2/_catalog", Some(&pull_only)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "GET", "/v2/_catalog", Some(&admin)).await,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/v2/", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "GET", "/v2/", Some(&pull_only)).await,
        StatusCode::OK
    );
}

/// A user store outside the registry: only `ops` with `from-the-store` is an administrator.
struct StoreVerifier;

impl skiff_registry::auth::PasswordVerifier for StoreVerifier {
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move { user == "ops" && password == "from-the-store" })
    }
}

#[tokio::test]
async fn an_external_verifier_replaces_the_configured_password() {
    let dir = tempfile::tempdir().expect("dir");
    let app = skiff_registry::app(&skiff_registry::Config {
        data_dir: dir.path().to_path_buf(),
        s3: None,
        admin_password: Some("pw".into()),
        verifier: Some(std::sync::Arc::new(StoreVerifier)),
        public: Vec::new(),
    })
    .expect("app");
    let basic = |credentials: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    assert_eq!(
        call(
            &app,
            "GET",
            "/v2/_catalog",
            Some(&basic("ops:from-the-store"))
        )
        .await,
        StatusCode::OK
    );
    // The configured password no longer opens the registry once a verifier is set.
    assert_eq!(
        call(&app, "GET", "/v2/_catalog", Some(&basic("admin:pw"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "GET", "/v2/_catalog", Some(&basic("ops:wrong"))).await,
        StatusCode::UNAUTHORIZED
    );
}
