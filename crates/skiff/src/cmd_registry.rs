//! `skiff registry`: the OCI registry on its own — `serve` runs it, `gc` collects unreferenced
//! blobs and abandoned uploads. The flags here are the single definition of the registry's
//! settings; `skiff server` reuses them.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Serve the OCI distribution API at /v2/.
    Serve(ServeArgs),
    /// Delete blobs no manifest references and abandoned uploads.
    Gc(GcArgs),
}

/// Where the registry keeps its data and who may use it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data directory (uploads are staged here; content too unless --s3-bucket is set).
    #[arg(long, env = "SKIFF_DATA_DIR", default_value = "skiff-data")]
    pub data_dir: PathBuf,
    /// Keep content in this S3 bucket instead of the data directory.
    #[arg(long, env = "SKIFF_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint URL (for MinIO and other S3-compatible servers).
    #[arg(long, env = "SKIFF_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "SKIFF_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
}

/// Settings of a serving registry.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed on stderr).
    #[arg(long, env = "SKIFF_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Password of the `admin` account. Unset: the registry is open to everyone (development).
    #[arg(long, env = "SKIFF_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Repositories anyone may pull without logging in: `name`, `prefix/*` or `*` (comma-separated).
    #[arg(long, env = "SKIFF_REGISTRY_PUBLIC", value_delimiter = ',')]
    pub public: Vec<String>,
}

#[derive(Debug, Args)]
struct GcArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Report what would be deleted without deleting anything.
    #[arg(long)]
    dry_run: bool,
    /// Spare blobs and uploads touched within this many seconds (pushes in flight).
    #[arg(long, env = "SKIFF_GC_GRACE_SECONDS", default_value_t = 3600)]
    grace_seconds: u64,
}

impl ServeArgs {
    /// The registry settings these flags describe.
    pub fn registry_config(&self) -> skiff_registry::Config {
        self.store
            .config(self.admin_password.clone(), self.public.clone())
    }
}

impl StoreArgs {
    fn config(
        &self,
        admin_password: Option<String>,
        public: Vec<String>,
    ) -> skiff_registry::Config {
        skiff_registry::Config {
            data_dir: self.data_dir.clone(),
            s3: self
                .s3_bucket
                .as_ref()
                .map(|bucket| skiff_registry::storage::s3::S3Config {
                    bucket: bucket.clone(),
                    endpoint: self.s3_endpoint.clone(),
                    region: self.s3_region.clone(),
                }),
            admin_password: admin_password.filter(|p| !p.is_empty()),
            verifier: None,
            public,
        }
    }
}

pub fn run(args: RegistryArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RegistryCommand::Serve(serve) => serve_registry(serve),
        RegistryCommand::Gc(gc) => collect_garbage(gc),
    }
}

/// Runs the registry until SIGINT or SIGTERM.
pub fn serve_registry(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.registry_config();
    if config.admin_password.is_none() {
        tracing::warn!(
            "SKIFF_ADMIN_PASSWORD is not set: the registry accepts anonymous pushes and deletes."
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr).await?;
        eprintln!(
            "skiff: registry listening on http://{}",
            listener.local_addr()?
        );
        skiff_registry::serve(&config, listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

fn collect_garbage(args: GcArgs) -> anyhow::Result<ExitCode> {
    let config = args.store.config(None, Vec::new());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let options = skiff_registry::gc::GcOptions {
            dry_run: args.dry_run,
            grace: Duration::from_secs(args.grace_seconds),
        };
        let report = skiff_registry::gc::run(&config, &options).await?;
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for blob in &report.blobs {
            println!("{verb} blob {blob}");
        }
        for upload in &report.uploads {
            println!("{verb} upload {upload}");
        }
        println!(
            "gc: {verb} {} blobs ({} bytes) and {} uploads; kept {} blobs",
            report.blobs.len(),
            report.bytes,
            report.uploads.len(),
            report.kept
        );
        Ok(ExitCode::SUCCESS)
    })
}
