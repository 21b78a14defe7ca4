//! Skiff's CI control plane: forge webhooks in, builds planned with `skiff-pipeline`, stages
//! queued durably in `skiff-store`, run by an in-process runner loop on `skiff-runner`, logs
//! stored masked, and a JSON API under `/api/v1` that the CLI drives. Behaviour and status are
//! in `docs/server.md`.
//!
//! # Wiring it into `skiff server`
//!
//! ```no_run
//! # async fn demo() -> Result<(), skiff_server::Error> {
//! let config = skiff_server::ServerConfig::new("/var/lib/skiff".into());
//! let server = skiff_server::app(config).await?;
//! // Merge `server.router` with the other routers (the registry's `/v2/`), serve it, and keep
//! // `server.tasks` (the runner loop) alive; call `server.shutdown()` to stop them.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.map_err(skiff_server::Error::Io)?;
//! axum::serve(listener, server.router.clone()).await.map_err(skiff_server::Error::Io)?;
//! # Ok(()) }
//! ```
//!
//! [`app`] opens the database (SQLite at `data_dir/skiff.db` unless `database_url` is set),
//! migrates it, creates the first admin (printing a one-time password unless
//! `SKIFF_ADMIN_PASSWORD`/`admin_password` is set), loads or creates the secret key
//! (`data_dir/secret.key`) and starts the runner loop.

mod api;
mod auth;
mod builds;
pub mod client;
mod commit_status;
mod cron;
mod crypto;
mod error;
mod forge;
mod gates;
mod git;
mod hosting;
mod openapi;
mod people;
pub mod remote;
mod rpc;
mod runner;
mod webhook;

pub use error::Error;
pub use runner::{Job, StepResult};

use skiff_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Every setting of the control plane. `skiff server` fills it from flags and `SKIFF_*`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the SQLite database, the secret key, git mirrors and build workspaces live.
    pub data_dir: PathBuf,
    /// `postgres://…`; `None` means SQLite at `data_dir/skiff.db`.
    pub database_url: Option<String>,
    /// The first admin's password (`SKIFF_ADMIN_PASSWORD`); `None`: a random one printed once.
    pub admin_password: Option<String>,
    /// The URL people and forges reach the server at (links, `DRONE_SYSTEM_HOST`).
    pub public_url: String,
    /// Start the in-process runner.
    pub runner: bool,
    /// Stages the in-process runner runs at once (Drone's `DRONE_RUNNER_CAPACITY`).
    pub runner_capacity: usize,
    /// How long a claimed stage stays leased without a heartbeat.
    pub lease: Duration,
    /// How often an idle runner looks for work when not woken by a new build.
    pub poll_interval: Duration,
    /// How often the cron scheduler looks for due jobs.
    pub cron_interval: Duration,
    /// Built-in plugins the in-process runner runs in its own process (`image: skiff/deploy`),
    /// registered by the binary as for `skiff exec`; none by default.
    pub builtins: skiff_runner::Builtins,
}

impl ServerConfig {
    /// Defaults for a data directory: SQLite, an in-process runner of capacity 2, a 30 s lease.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            database_url: None,
            admin_password: std::env::var("SKIFF_ADMIN_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty()),
            public_url: "http://localhost:8080".into(),
            runner: true,
            runner_capacity: 2,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
            cron_interval: Duration::from_secs(15),
            builtins: skiff_runner::Builtins::default(),
        }
    }
}

/// What [`app`] hands back.
pub struct App {
    /// Routes: `/hook/*`, `/api/v1/*`, `/healthz`, `/readyz`, hosted repositories at
    /// `/OWNER/NAME.git`.
    pub router: axum::Router,
    /// Background tasks (the runner loop); they end after [`App::shutdown`].
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The database, for callers that need it (tests, the lead's wiring).
    pub store: Store,
    stop: CancellationToken,
}

impl App {
    /// Stops the runner loop (running steps are killed and their stages released) and waits.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Whether `user` is an administrator and `secret` is their password or one of their API
    /// tokens: for other parts of the binary that log people in against the server's accounts
    /// (the registry's `PasswordVerifier`).
    pub async fn verify_admin(&self, user: &str, secret: &str) -> bool {
        auth::verify_admin(&self.store, user, secret).await
    }

    /// Stops background tasks without waiting.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }
}

/// Shared state of every handler and of the runner loop.
pub(crate) struct State {
    pub store: Store,
    pub config: ServerConfig,
    pub key: crypto::SecretKey,
    /// Woken when a build is queued, so an idle runner claims at once.
    pub queued: tokio::sync::Notify,
    pub git: git::Git,
    /// Repositories Skiff hosts (served over git's smart HTTP).
    pub hosting: hosting::Hosting,
    /// Where changes of a build's status are sent, for commit statuses on the forge.
    pub reporter: commit_status::Reporter,
    /// Bumped when log lines are stored or a stage ends, so log streams read at once.
    pub activity: tokio::sync::watch::Sender<u64>,
}

impl State {
    /// Wakes the log streams: new lines or a finished stage.
    pub(crate) fn touched(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// After a stage ended, however it ended: log streams see it at once, and idle claimers
    /// wake, since a freed slot (concurrency limits) or released dependants may be claimable.
    /// The forge is told by the caller, who knows the build or only the stage.
    pub(crate) fn stage_ended(&self) {
        self.touched();
        self.queued.notify_waiters();
    }
}

pub(crate) type Shared = Arc<State>;

/// Opens the database, prepares the data directory and the first admin, starts the runner loop
/// and returns the router.
pub async fn app(config: ServerConfig) -> Result<App, Error> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store = match &config.database_url {
        Some(url) => Store::connect(url).await?,
        None => Store::open_sqlite(&config.data_dir.join("skiff.db")).await?,
    };
    app_with_store(config, store).await
}

/// Like [`app`] on an already opened store (tests use a fresh PostgreSQL database each).
pub async fn app_with_store(config: ServerConfig, store: Store) -> Result<App, Error> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    auth::bootstrap_admin(&store, config.admin_password.as_deref()).await?;
    let key = crypto::SecretKey::load_or_create(&config.data_dir.join("secret.key"))?;
    let hosted_root = config.data_dir.join("repos");
    let git = git::Git::new(config.data_dir.join("git"), hosted_root.clone());
    let (reporter, notices) = commit_status::Reporter::new();
    let state = Arc::new(State {
        store: store.clone(),
        config: config.clone(),
        key,
        queued: tokio::sync::Notify::new(),
        git,
        hosting: hosting::Hosting::new(hosted_root),
        reporter,
        activity: tokio::sync::watch::channel(0).0,
    });
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    if config.runner {
        tasks.push(runner::spawn(state.clone(), stop.clone()));
    }
    tasks.push(cron::spawn(state.clone(), stop.clone()));
    tasks.push(commit_status::spawn(state.clone(), notices, stop.clone()));
    let router = api::router(state);
    Ok(App {
        router,
        tasks,
        store,
        stop,
    })
}
