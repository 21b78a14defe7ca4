//! `skiff runner`: a remote runner on this host. It long-polls a Skiff server for stages that
//! match this host's platform, pipeline types (exec; docker when an engine answers) and labels,
//! clones each commit itself and runs it, with the same built-in plugins as `skiff exec`
//! (`skiff/deploy`); Ctrl-C or SIGTERM kills running steps and hands their stages back to the
//! queue. The loop lives in `skiff_server::remote`.
//!
//! `skiff runner token add|ls|rm` manages per-runner tokens with the saved login (site admins):
//! each runner gets its own token, revocable alone.

use anyhow::{Context, bail};
use skiff_server::remote::{self, RemoteRunner};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Run a remote runner that claims stages from a Skiff server.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RunnerArgs {
    #[command(subcommand)]
    pub command: Option<RunnerCommand>,
    /// The server's URL.
    #[arg(long, env = "SKIFF_SERVER", required = true)]
    pub server: Option<String>,
    /// The runner's token (`skiff runner token add NAME`); a site admin's API token also works.
    #[arg(
        long,
        env = "SKIFF_RUNNER_TOKEN",
        hide_env_values = true,
        required = true
    )]
    pub token: Option<String>,
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

#[derive(Debug, clap::Subcommand)]
pub enum RunnerCommand {
    /// Manage per-runner tokens on the server of the saved login (site admins).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Register a runner; its token is printed once.
    Add {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List runners and when each last called in.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a runner's token.
    Rm { name: String },
}

pub fn run(args: RunnerArgs) -> anyhow::Result<ExitCode> {
    if let Some(RunnerCommand::Token(command)) = args.command {
        return token(command);
    }
    let (Some(server), Some(token)) = (args.server.clone(), args.token.clone()) else {
        bail!("give --server and --token (or SKIFF_SERVER and SKIFF_RUNNER_TOKEN)");
    };
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
                server,
                token,
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

fn token(command: TokenCommand) -> anyhow::Result<ExitCode> {
    use crate::cmd_login::{block_on, field, print_json};
    block_on(async {
        let client = skiff_server::client::Client::from_saved()?;
        match command {
            TokenCommand::Add { name, json } => {
                let runner = client
                    .post("/runners", serde_json::json!({ "name": name }))
                    .await?;
                if json {
                    print_json(&runner);
                } else {
                    println!("{}", field(&runner, "token"));
                    eprintln!(
                        "runner {name} registered; start it with `skiff runner --server {} \
                         --token TOKEN` (the token is shown only now)",
                        client.server()
                    );
                }
            }
            TokenCommand::Ls { json } => {
                let runners = client.get("/runners").await?;
                if json {
                    print_json(&runners);
                } else {
                    for r in runners.as_array().into_iter().flatten() {
                        let seen = match r["last_seen"].as_i64() {
                            Some(ms) if ms > 0 => format!("last seen {}s ago", seconds_since(ms)),
                            _ => "never seen".into(),
                        };
                        println!("{}\t{seen}", field(r, "name"));
                    }
                }
            }
            TokenCommand::Rm { name } => {
                client.delete(&format!("/runners/{name}")).await?;
                eprintln!("runner {name} revoked");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn seconds_since(ms: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(ms);
    (now - ms).max(0) / 1000
}
