//! Skiff's OCI registry: the distribution spec v1.1 API (`api`), its content model
//! (`registry`), streaming uploads (`upload`), manifest checks (`manifest`), token auth
//! (`auth`), storage backends (`storage`) and garbage collection (`gc`).
//! The behaviour contract is written down in docs/registry.md.

pub mod api;
pub mod auth;
pub mod error;
pub mod gc;
pub mod hash;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod storage;
pub mod upload;

pub use api::{AppState, router};
pub use error::{Error, Result};
pub use registry::{Options, Registry};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything needed to serve a registry.
#[derive(Clone)]
pub struct Config {
    /// Local data directory: uploads are staged here, and the filesystem backend keeps content here.
    pub data_dir: PathBuf,
    /// S3 backend settings; `None` stores content under `data_dir`.
    pub s3: Option<storage::s3::S3Config>,
    /// `admin` password; `None` (and no `verifier`) leaves the registry open (development).
    pub admin_password: Option<String>,
    /// Checks logins against an external user store; takes precedence over `admin_password`.
    pub verifier: Option<Arc<dyn auth::PasswordVerifier>>,
    /// Repositories anonymous users may pull (`name`, `prefix/*` or `*`).
    pub public: Vec<String>,
}

/// Opens the configured storage backend.
pub fn open_storage(config: &Config) -> Result<Arc<dyn storage::Storage>> {
    Ok(match &config.s3 {
        Some(s3) => storage::s3::open(s3)?,
        None => Arc::new(storage::fs::FsStorage::new(&config.data_dir)?),
    })
}

/// The signing key for tokens, created on first use and kept in the data directory so tokens
/// survive restarts.
fn token_key(data_dir: &Path) -> Result<Vec<u8>> {
    let path = data_dir.join("auth").join("token.key");
    if let Ok(key) = std::fs::read(&path)
        && key.len() >= 32
    {
        return Ok(key);
    }
    std::fs::create_dir_all(data_dir.join("auth")).map_err(|e| Error::io("auth", e))?;
    // Two v4 UUIDs come from the OS random source: 244 random bits.
    let mut key = uuid::Uuid::new_v4().as_bytes().to_vec();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // Readable by the server's user only: whoever reads it can mint tokens.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("auth/token.key", e))?;
        file.write_all(&key)
            .map_err(|e| Error::io("auth/token.key", e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("auth/token.key", e))?;
    Ok(key)
}

/// Builds the registry's HTTP application (routes under `/v2/` and `/auth/token`).
pub fn app(config: &Config) -> Result<axum::Router> {
    let storage = open_storage(config)?;
    let registry = Registry::new(storage, config.data_dir.join("uploads"), Options::default())?;
    let admin = match (&config.verifier, &config.admin_password) {
        (Some(verifier), _) => Some(auth::AdminCredentials::Verifier(verifier.clone())),
        (None, Some(password)) => Some(auth::AdminCredentials::Password(password.clone())),
        (None, None) => None,
    };
    let auth = match admin {
        Some(admin) => auth::Auth::with_token(auth::TokenConfig {
            admin,
            key: token_key(&config.data_dir)?,
            policy: auth::Policy {
                public: config.public.clone(),
            },
            realm: None,
        }),
        None => auth::Auth::open(),
    };
    Ok(router(AppState {
        registry: Arc::new(registry),
        auth: Arc::new(auth),
    }))
}

/// Serves the registry on `listener` until `shutdown` resolves.
pub async fn serve(
    config: &Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = app(config)?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Internal(format!("server failed: {e}")))
}
