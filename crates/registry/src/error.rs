//! The registry's one error type, and the single place where it becomes an OCI error response
//! (`{"errors":[{"code","message","detail"}]}` with the status the distribution spec assigns).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Everything that can go wrong while serving the registry API or running GC.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob unknown to registry: {digest}")]
    BlobUnknown { digest: String },
    #[error("blob upload unknown to registry: {id}")]
    UploadUnknown { id: String },
    #[error("blob upload invalid: {reason}")]
    UploadInvalid { reason: String },
    #[error("requested range not satisfiable: {reason}")]
    RangeNotSatisfiable { reason: String, size: u64 },
    #[error("provided digest did not match uploaded content or is malformed: {reason}")]
    DigestInvalid { reason: String },
    #[error("manifest references a blob or manifest unknown to the repository: {digest}")]
    ManifestBlobUnknown { digest: String },
    #[error("manifest invalid: {reason}")]
    ManifestInvalid { reason: String },
    #[error("manifest unknown to registry: {reference}")]
    ManifestUnknown { reference: String },
    #[error("manifest is larger than the {limit} byte limit")]
    ManifestTooLarge { limit: usize },
    #[error("invalid repository name: {name:?}")]
    NameInvalid { name: String },
    #[error("repository name not known to registry: {name}")]
    NameUnknown { name: String },
    #[error("invalid tag: {tag:?}")]
    TagInvalid { tag: String },
    #[error("invalid pagination parameter: {reason}")]
    PaginationInvalid { reason: String },
    #[error("provided length did not match content length: {reason}")]
    SizeInvalid { reason: String },
    #[error("authentication required")]
    Unauthorized { challenge: Option<String> },
    #[error("requested access to the resource is denied")]
    Denied,
    #[error("the operation is unsupported: {reason}")]
    Unsupported { reason: String },
    #[error("not found")]
    NotFound,
    #[error("storage error at {key}: {source}")]
    Storage {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("object storage error: {0}")]
    ObjectStore(String),
    #[error("request body error: {0}")]
    Body(String),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the storage key it happened on.
    pub fn io(key: impl Into<String>, source: std::io::Error) -> Self {
        Error::Storage {
            key: key.into(),
            source,
        }
    }

    /// The OCI error code and HTTP status of this error.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        use Error::*;
        match self {
            BlobUnknown { .. } => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
            UploadUnknown { .. } => ("BLOB_UPLOAD_UNKNOWN", StatusCode::NOT_FOUND),
            UploadInvalid { .. } => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST),
            RangeNotSatisfiable { .. } => {
                ("BLOB_UPLOAD_INVALID", StatusCode::RANGE_NOT_SATISFIABLE)
            }
            DigestInvalid { .. } => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
            ManifestBlobUnknown { .. } => ("MANIFEST_BLOB_UNKNOWN", StatusCode::BAD_REQUEST),
            ManifestInvalid { .. } => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
            ManifestUnknown { .. } => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
            ManifestTooLarge { .. } => ("SIZE_INVALID", StatusCode::PAYLOAD_TOO_LARGE),
            NameInvalid { .. } => ("NAME_INVALID", StatusCode::BAD_REQUEST),
            NameUnknown { .. } => ("NAME_UNKNOWN", StatusCode::NOT_FOUND),
            TagInvalid { .. } => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
            PaginationInvalid { .. } => ("PAGINATION_NUMBER_INVALID", StatusCode::BAD_REQUEST),
            SizeInvalid { .. } => ("SIZE_INVALID", StatusCode::BAD_REQUEST),
            Unauthorized { .. } => ("UNAUTHORIZED", StatusCode::UNAUTHORIZED),
            Denied => ("DENIED", StatusCode::FORBIDDEN),
            Unsupported { .. } => ("UNSUPPORTED", StatusCode::METHOD_NOT_ALLOWED),
            NotFound => ("NOT_FOUND", StatusCode::NOT_FOUND),
            Body(_) => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST),
            Storage { .. } | ObjectStore(_) | Internal(_) => {
                ("UNKNOWN", StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, status) = self.code_and_status();
        if status.is_server_error() {
            tracing::error!(error = %self, "Registry request failed.");
        }
        // Server-side details (paths, I/O errors) stay in the log, not in the response.
        let message = if status.is_server_error() {
            "internal server error".to_string()
        } else {
            self.to_string()
        };
        let body = serde_json::json!({
            "errors": [{ "code": code, "message": message, "detail": serde_json::Value::Null }]
        });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            "Docker-Distribution-API-Version",
            HeaderValue::from_static("registry/2.0"),
        );
        match &self {
            Error::Unauthorized {
                challenge: Some(challenge),
            } => {
                if let Ok(value) = HeaderValue::from_str(challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Error::RangeNotSatisfiable { size, .. } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}
