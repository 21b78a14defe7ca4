//! `skiff deploy`: wires the command line to `skiff_deploy::Engine` — deploy a manifest set as
//! an app, list, inspect, delete, show history, roll back. Confirmation prompts live here;
//! all Kubernetes logic lives in the library.

use anyhow::Context;
use skiff_deploy::{Action, Engine, KubeconfigSource, Plan, progress::Console};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Deploy a manifest set to Kubernetes as a named app: diff, ordered apply, wait, prune.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeployArgs {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    deploy: ApplyArgs,
    #[command(flatten)]
    cluster: Cluster,
}

#[derive(Debug, clap::Args)]
struct Cluster {
    /// Namespace for namespaced resources that name none, and for the app record.
    #[arg(short = 'n', long, global = true, env = "SKIFF_DEPLOY_NAMESPACE")]
    namespace: Option<String>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Read the kubeconfig (YAML or base64 of it) from this environment variable, e.g. a
    /// pipeline secret, instead of KUBECONFIG / ~/.kube/config.
    #[arg(long, global = true, value_name = "VAR")]
    kubeconfig_env: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ApplyArgs {
    /// App name.
    #[arg(short = 'a', long)]
    app: Option<String>,
    /// Manifest files or folders; `-` reads stdin.
    #[arg(short = 'f', long = "file")]
    files: Vec<PathBuf>,
    /// Apply without asking.
    #[arg(short = 'y', long)]
    yes: bool,
    /// Show the plan and diff, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not print the diff of updated resources.
    #[arg(long)]
    no_diff: bool,
    /// How long to wait for the whole deploy, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Apply without waiting for resources to become ready.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// List the apps deployed in the namespace.
    Ls,
    /// Show an app's resources and their live status.
    Inspect {
        #[arg(short = 'a', long)]
        app: String,
    },
    /// Delete an app and everything it deployed.
    Delete {
        #[arg(short = 'a', long)]
        app: String,
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// List an app's revisions.
    History {
        #[arg(short = 'a', long)]
        app: String,
    },
    /// Deploy the manifests of an earlier revision again.
    Rollback {
        #[arg(short = 'a', long)]
        app: String,
        /// Revision to go back to (see `skiff deploy history`).
        #[arg(long)]
        to: u64,
        #[arg(short = 'y', long)]
        yes: bool,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

pub fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(dispatch(args))
}

async fn engine(cluster: &Cluster) -> anyhow::Result<Engine> {
    let source = match &cluster.kubeconfig_env {
        Some(var) => KubeconfigSource::Env(var.clone()),
        None => KubeconfigSource::Default,
    };
    let (client, context_ns) = skiff_deploy::connect(&source, cluster.context.as_deref()).await?;
    let namespace = cluster
        .namespace
        .clone()
        .or(context_ns)
        .unwrap_or_else(|| "default".into());
    Ok(Engine::new(client, &namespace))
}

async fn dispatch(args: DeployArgs) -> anyhow::Result<ExitCode> {
    let cluster = args.cluster;
    match args.command {
        None => deploy(args.deploy, &cluster).await,
        Some(Sub::Ls) => {
            let engine = engine(&cluster).await?;
            let apps = engine.inventory().apps().await?;
            println!(
                "{:<30} {:>8} {:<10} {:>9}",
                "APP", "REVISION", "STATUS", "RESOURCES"
            );
            for app in apps {
                println!(
                    "{:<30} {:>8} {:<10} {:>9}",
                    app.app,
                    app.revision,
                    app.status,
                    app.resources.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Sub::Inspect { app }) => {
            let engine = engine(&cluster).await?;
            let (record, statuses) = engine.status(&app).await?;
            println!(
                "app {} in {}: revision {} ({})",
                record.app, record.namespace, record.revision, record.status
            );
            for status in statuses {
                let health = match status.health {
                    None => "missing".to_string(),
                    Some(skiff_deploy::health::Health::Ready) => "ready".to_string(),
                    Some(skiff_deploy::health::Health::Progressing(m)) => {
                        format!("progressing: {m}")
                    }
                    Some(skiff_deploy::health::Health::Failed(m)) => format!("failed: {m}"),
                };
                println!("  {:<60} {health}", status.id.to_string());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Sub::History { app }) => {
            let engine = engine(&cluster).await?;
            let revisions = engine.inventory().revisions(&app).await?;
            if revisions.is_empty() {
                anyhow::bail!(
                    "app {app} has no history in namespace {}",
                    engine.namespace()
                );
            }
            println!(
                "{:>8} {:<26} {:<10} {:>9}  DESCRIPTION",
                "REVISION", "CREATED", "STATUS", "RESOURCES"
            );
            for rev in revisions {
                println!(
                    "{:>8} {:<26} {:<10} {:>9}  {}",
                    rev.revision,
                    rev.created_at.unwrap_or_default(),
                    rev.status,
                    rev.resources.len(),
                    rev.description
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Sub::Delete { app, yes }) => {
            let engine = engine(&cluster).await?;
            let ids = engine.plan_delete(&app).await?;
            eprintln!("app {app}: {} resource(s) will be deleted:", ids.len());
            for id in &ids {
                eprintln!("  - {id}");
            }
            if !confirm(yes, false, &format!("Delete app {app}?"))? {
                return Ok(ExitCode::FAILURE);
            }
            engine.delete(&app, &ids, &Console::new()).await?;
            eprintln!("app {app} deleted");
            Ok(ExitCode::SUCCESS)
        }
        Some(Sub::Rollback {
            app,
            to,
            yes,
            timeout,
        }) => {
            let engine = engine(&cluster).await?;
            let plan = engine.plan_rollback(&app, to).await?;
            execute(&engine, &plan, yes, false, false, timeout).await
        }
    }
}

async fn deploy(args: ApplyArgs, cluster: &Cluster) -> anyhow::Result<ExitCode> {
    let Some(app) = args.app.as_deref() else {
        anyhow::bail!("`skiff deploy` needs an app name (-a APP) and manifests (-f PATH)");
    };
    if args.files.is_empty() {
        anyhow::bail!("no manifests given: pass -f FILE, -f FOLDER or -f - (stdin)");
    }
    let documents = skiff_deploy::load_paths(&args.files)?;
    if documents.is_empty() {
        anyhow::bail!("the manifests contain no objects");
    }
    let mut engine = engine(cluster).await?;
    if args.no_wait {
        engine = engine.without_wait();
    }
    let files: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    let plan = engine
        .plan(app, &documents, &format!("deploy of {}", files.join(", ")))
        .await?;
    let stdin_used = args.files.iter().any(|f| f.as_os_str() == "-");
    if args.dry_run {
        show(&plan, args.no_diff);
        return Ok(ExitCode::SUCCESS);
    }
    execute(
        &engine,
        &plan,
        args.yes,
        stdin_used,
        args.no_diff,
        args.timeout,
    )
    .await
}

fn show(plan: &Plan, no_diff: bool) {
    eprintln!(
        "app {} in {}, revision {}: {}",
        plan.app,
        plan.namespace,
        plan.revision,
        plan.summary()
    );
    for change in &plan.changes {
        let note = change
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        eprintln!("  {:<9} {}{note}", change.action.to_string(), change.id);
        if !no_diff && change.action == Action::Update {
            for line in change.diff.lines() {
                eprintln!("      {line}");
            }
        }
    }
}

async fn execute(
    engine: &Engine,
    plan: &Plan,
    yes: bool,
    stdin_used: bool,
    no_diff: bool,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    show(plan, no_diff);
    if plan.is_noop() {
        eprintln!("no changes");
        return Ok(ExitCode::SUCCESS);
    }
    if !confirm(yes, stdin_used, "Apply these changes?")? {
        return Ok(ExitCode::FAILURE);
    }
    let outcome = engine
        .apply(plan, Duration::from_secs(timeout), &Console::new())
        .await?;
    eprintln!(
        "app {}: revision {} deployed ({})",
        plan.app, outcome.revision, outcome.summary
    );
    Ok(ExitCode::SUCCESS)
}

/// Ask on the terminal. Without `--yes` and without a terminal to ask on, refuse.
fn confirm(yes: bool, stdin_used: bool, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if stdin_used || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to change the cluster without confirmation: stdin is not a terminal \
             (or carries the manifests); review the plan above and pass --yes"
        );
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let ok = matches!(answer.trim(), "y" | "Y" | "yes");
    if !ok {
        eprintln!("aborted; nothing was changed");
    }
    Ok(ok)
}
