//! The one error type of `skiff-deploy`. Every variant names what failed (a file and position,
//! a resource, an app or an image) so the CLI can print it without adding context.

use std::path::PathBuf;

/// Everything that can go wrong while loading, planning, applying, waiting or locking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}:{line}:{column}: invalid YAML: {message}")]
    Yaml {
        source_name: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{source_name}: document {index}: {message}")]
    Manifest {
        source_name: String,
        index: usize,
        message: String,
    },
    #[error("{id} appears twice in the manifest set ({first} and {second})")]
    Duplicate {
        id: String,
        first: String,
        second: String,
    },
    #[error("kubeconfig: {message}")]
    Config { message: String },
    #[error("{id}: {kind} is not served by the cluster ({api_version})")]
    UnknownKind {
        id: String,
        kind: String,
        api_version: String,
    },
    #[error("{id}: {action} failed: {message}")]
    Api {
        id: String,
        action: &'static str,
        message: String,
    },
    #[error("the manifest set was rejected by the API server; nothing was changed:\n{}", problems.join("\n"))]
    Rejected { problems: Vec<String> },
    #[error("{id} belongs to app {owner}, not to {app}")]
    Ownership {
        id: String,
        owner: String,
        app: String,
    },
    #[error("{id} failed: {reason}")]
    NotReady { id: String, reason: String },
    #[error("timed out after {seconds}s waiting for {}", pending.join("; "))]
    Timeout { seconds: u64, pending: Vec<String> },
    #[error("app {app} not found in namespace {namespace}")]
    AppNotFound { app: String, namespace: String },
    #[error("app {app} has no revision {revision}")]
    NoRevision { app: String, revision: u64 },
    #[error("app record of {app}: {message}")]
    Inventory { app: String, message: String },
    #[error("invalid app name {app:?}: use lowercase letters, digits and '-' (at most 40)")]
    AppName { app: String },
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    #[error("lock file {path}: {message}")]
    LockFile { path: PathBuf, message: String },
    /// A setting of the pipeline deploy step (`PLUGIN_<NAME>`) is missing or invalid.
    #[error("setting `{setting}`: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of a kube error without the transport noise: the API server's own message
/// when there is one.
pub(crate) fn kube_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

/// Whether a kube error is the API server saying "not found".
pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
