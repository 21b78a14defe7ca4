//! `skiff server`: the whole Skiff server in one process on one address — the CI control plane
//! from `skiff-server` (webhooks, `/api/v1`, the durable queue, the in-process runner, `/rpc/v1`
//! for remote runners) and the OCI registry from `skiff-registry` at `/v2/`. Both keep their
//! files in the same data directory, and registry logins are checked against the server's
//! accounts, so there is one admin and no open registry. The in-process runner gets the same
//! built-in plugins as `skiff exec` (`skiff/deploy`).

use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    serve: crate::cmd_registry::ServeArgs,
    /// PostgreSQL URL (`postgres://…`); without it, SQLite in the data directory.
    #[arg(long, env = "SKIFF_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The URL people and forges reach this server at (links in builds and statuses).
    #[arg(long, env = "SKIFF_PUBLIC_URL")]
    public_url: Option<String>,
    /// Do not start the in-process runner (remote `skiff runner`s do the work).
    #[arg(long, env = "SKIFF_NO_RUNNER")]
    no_runner: bool,
}

/// Registry logins checked against the control plane's accounts.
struct AccountsVerifier(Arc<skiff_server::App>);

impl skiff_registry::auth::PasswordVerifier for AccountsVerifier {
    fn verify<'a>(
        &'a self,
        user: &'a str,
        password: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(self.0.verify_admin(user, password))
    }
}

pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let mut registry_config = args.serve.registry_config();
    let mut config = skiff_server::ServerConfig::new(registry_config.data_dir.clone());
    config.database_url = args.database_url.filter(|url| !url.is_empty());
    config.admin_password = registry_config.admin_password.clone();
    config.runner = !args.no_runner;
    config.builtins = crate::cmd_exec::builtin_steps();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.serve.addr).await?;
        let address = listener.local_addr()?;
        config.public_url = args
            .public_url
            .unwrap_or_else(|| format!("http://{address}"));
        let app = Arc::new(skiff_server::app(config).await?);
        registry_config.verifier = Some(Arc::new(AccountsVerifier(app.clone())));
        let router = app
            .router
            .clone()
            .merge(skiff_registry::app(&registry_config)?);
        eprintln!("skiff: server listening on http://{address}");
        axum::serve(listener, router)
            .with_graceful_shutdown(crate::cmd_registry::shutdown_signal())
            .await?;
        // The router (and the verifier it held) is gone now, so the app is ours alone again:
        // stop the runner loop, which hands running stages back to the queue.
        match Arc::try_unwrap(app) {
            Ok(app) => app.shutdown().await,
            Err(app) => app.stop_token().cancel(),
        }
        Ok(ExitCode::SUCCESS)
    })
}
