//! `skiff runner`: a remote runner on this host. It long-polls a Skiff server for stages that
//! match this host's platform, pipeline types (exec; docker when an engine answers) and labels,
//! clones each commit itself and runs it, with the same built-in plugins as `skiff exec`
//! (`skiff/deploy`); Ctrl-C or SIGTERM kills running steps and hands their stages back to the
//! queue. The loop lives in `skiff_server::remote`.

use anyhow::{Context, bail};
use skiff_server::remote::{self, RemoteRunner};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Run a remote runner that claims stages from a Skiff server.
#[derive(Debug, clap::Args)]
pub struct RunnerArgs {
    /// The server's URL.
    #[arg(long, env = "SKIFF_SERVER")]
    pub server: String,
    /// An admin's API token (from `skiff login`, or the API).
    #[arg(long, env = "SKIFF_RUNNER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Stages run at once.
    #[arg(long, env = "SKIFF_RUNNER_CAPACITY", default_value_t = 2)]
    pub capacity: usize,
    /// Name shown as the lease owner of the stages it runs (default: the host name).
    #[arg(long, env = "SKIFF_RUNNER_NAME")]
    pub name: Option<String>,
    /// Where build workspaces are made.
    #[arg(long, env = "SKIFF_RUNNER_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// KEY=VALUE labels (repeatable); a stage runs here only if its `node:` is exactly these.
    #[arg(long = "label")]
    pub labels: Vec<String>,
}

pub fn run(args: RunnerArgs) -> anyhow::Result<ExitCode> {
    let mut labels = BTreeMap::new();
    for label in &args.labels {
        let Some((k, v)) = label.split_once('=') else {
            bail!("--label `{label}` is not KEY=VALUE");
        };
        labels.insert(k.to_string(), v.to_string());
    }
    let name = args.name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "runner".into())
    });
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("skiff-runner"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let signals = stop.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                        signals.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("skiff runner: stopping; running stages go back to the queue");
            signals.cancel();
        });
        remote::run(
            RemoteRunner {
                server: args.server,
                token: args.token,
                name,
                capacity: args.capacity,
                work_dir,
                labels,
                builtins: crate::cmd_exec::builtin_steps(),
            },
            stop,
        )
        .await
        .context("the runner stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}
