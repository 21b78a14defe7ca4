//! `skiff exec`: runs the pipelines of a `.drone.yml` from the working directory, like
//! `drone exec`. Wiring only: the pipeline crate plans, the runner crate runs; this module
//! turns flags into a `BuildContext` and `RunOptions`, handles Ctrl-C, SIGTERM and
//! `--timeout`, and prints the summary. See docs/runner.md.

use anyhow::{Context, bail};
use skiff_pipeline::{BackendKind, BuildContext, PlanOptions, Stage, plan_build};
use skiff_runner::console::{self, Console};
use skiff_runner::docker::DockerBackend;
use skiff_runner::exec::ExecBackend;
use skiff_runner::{Backend, BuildReport, LogSink, RunOptions, Status, envfile};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod deploy_step;

/// The built-in plugins of every runner this binary starts (`skiff exec`, the in-process
/// runner of `skiff server`, `skiff runner`): steps with these images run in the runner's own
/// process instead of a container (docs/runner.md "Built-in plugins").
pub(crate) fn builtin_steps() -> skiff_runner::Builtins {
    let steps: Vec<Arc<dyn skiff_runner::BuiltinStep>> = vec![Arc::new(deploy_step::DeployStep)];
    steps.into()
}

/// Run a pipeline from the working directory, which is mounted as the workspace (no clone
/// step runs). Flags follow `drone exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The pipeline file.
    #[arg(default_value = ".drone.yml")]
    pub file: PathBuf,
    /// Run only the pipeline with this name (default: every pipeline whose trigger matches).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// The event to simulate.
    #[arg(long, default_value = "push")]
    pub event: String,
    /// The deployment target, for `promote` and `rollback` events (`when: {target: ...}`,
    /// `DRONE_DEPLOY_TO`).
    #[arg(long = "deploy-to", visible_alias = "target", value_name = "TARGET")]
    pub deploy_to: Option<String>,
    /// The branch (default: the current git branch, else master).
    #[arg(long)]
    pub branch: Option<String>,
    /// The git ref (default: refs/heads/<branch>).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// The commit sha (default: the current git HEAD).
    #[arg(long)]
    pub sha: Option<String>,
    /// KEY=VALUE lines: secrets for `from_secret` and `image_pull_secrets`; all are masked.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// KEY=VALUE lines: extra environment for every step.
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// Run only these steps (repeatable); services still run.
    #[arg(long)]
    pub include: Vec<String>,
    /// Do not run these steps (repeatable).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Trust the pipeline: allow privileged steps, host volumes, network_mode, shm_size.
    #[arg(long)]
    pub trusted: bool,
    /// Id used to label what the build creates (`io.skiff.build=<id>`); random by default.
    /// With several pipelines, each gets `<id>-<n>`. For tests and tooling.
    #[arg(long, hide = true)]
    pub build_id: Option<String>,
    /// Kill the build after this long (e.g. 90s, 30m, 1h30m).
    #[arg(long, value_parser = parse_duration, default_value = "60m")]
    pub timeout: Duration,
}

pub fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let file_name = args.file.to_string_lossy().into_owned();
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {file_name}"))?;
    let workspace = std::env::current_dir().context("cannot find the working directory")?;

    let secrets = match &args.secret_file {
        Some(path) => envfile::read(path)?,
        None => BTreeMap::new(),
    };
    let extra_env = match &args.env_file {
        Some(path) => envfile::read(path)?,
        None => BTreeMap::new(),
    };

    let ctx = build_context(&args, &workspace);
    let plan = plan_build(
        &file_name,
        &text,
        &ctx,
        &PlanOptions {
            trusted: args.trusted,
        },
    )
    .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
    for warning in &plan.warnings {
        eprintln!("{warning}");
    }

    let stages = select_stages(&plan.stages, args.pipeline.as_deref())?;
    if stages.is_empty() {
        eprintln!(
            "skiff: no pipeline matches the event `{}` on branch `{}`",
            ctx.event, ctx.branch
        );
        return Ok(ExitCode::SUCCESS);
    }

    // Check every stage before running any: bad input fails before anything starts.
    let opts = RunOptions {
        build_id: String::new(),
        secrets,
        extra_env,
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        trusted: args.trusted,
        host_workspace: Some(workspace),
    };
    let mut prepared = Vec::new();
    for (n, stage) in stages.iter().enumerate() {
        let mut opts = opts.clone();
        if let Some(id) = &args.build_id {
            opts.build_id = if stages.len() == 1 {
                id.clone()
            } else {
                format!("{id}-{}", n + 1)
            };
        }
        // Built-in plugins run in this process instead of a container (docs/runner.md).
        let ready = skiff_runner::prepare(&stage.plan, &opts)?.with_builtins(builtin_steps());
        for warning in ready.warnings() {
            eprintln!("skiff: pipeline `{}`: warning: {warning}", stage.plan.name);
        }
        let backend: Arc<dyn Backend> = match stage.plan.backend {
            BackendKind::Docker => {
                let docker = DockerBackend::connect()?;
                docker.ping().await?;
                docker.check_images(ready.build()).await?;
                Arc::new(docker)
            }
            BackendKind::Exec => Arc::new(ExecBackend::new()),
            BackendKind::Kubernetes => bail!(
                "pipeline `{}` is `type: kubernetes`; skiff exec runs docker and exec pipelines",
                stage.plan.name
            ),
        };
        prepared.push((stage, ready, backend));
    }

    let cancel = CancellationToken::new();
    let timed_out = Arc::new(AtomicBool::new(false));
    let interrupted = Arc::new(AtomicBool::new(false));
    spawn_cancel_watchers(&cancel, args.timeout, &timed_out, &interrupted);

    let color = console::use_color();
    let sink: Arc<dyn LogSink> = Arc::new(Console::new(color));
    let mut reports: Vec<BuildReport> = Vec::new();
    for (stage, ready, backend) in prepared {
        let failed = reports.iter().any(|r| r.status != Status::Success);
        // A pipeline picked with --pipeline runs alone; its dependencies are not run.
        let deps_done = args.pipeline.is_some()
            || stage
                .depends_on
                .iter()
                .all(|d| reports.iter().any(|r| &r.pipeline == d));
        // Drone's downstream rule: run on failure only if asked, on success unless told not to.
        let wanted = if failed {
            stage.on_failure
        } else {
            stage.on_success
        };
        if !wanted || !deps_done || cancel.is_cancelled() {
            eprintln!("skiff: pipeline `{}` skipped", stage.plan.name);
            continue;
        }
        let report = skiff_runner::execute(ready, backend, sink.clone(), cancel.clone()).await?;
        print!("{}", console::summary(&report, color));
        for problem in &report.cleanup_errors {
            eprintln!("skiff: cleanup: {problem}");
        }
        reports.push(report);
    }

    if timed_out.load(Ordering::SeqCst) {
        eprintln!(
            "skiff: timed out after {}",
            console::format_duration(args.timeout)
        );
    }
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("skiff: cancelled");
        return Ok(ExitCode::from(130));
    }
    if reports.iter().all(|r| r.status == Status::Success) {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// The stages to run: the named one (whatever its trigger says), or every matched one.
fn select_stages<'a>(stages: &'a [Stage], name: Option<&str>) -> anyhow::Result<Vec<&'a Stage>> {
    match name {
        Some(name) => match stages.iter().find(|s| s.plan.name == name) {
            Some(stage) => Ok(vec![stage]),
            None => {
                let names: Vec<&str> = stages.iter().map(|s| s.plan.name.as_str()).collect();
                bail!(
                    "no pipeline named `{name}`; the file has: {}",
                    names.join(", ")
                )
            }
        },
        None => Ok(dependency_order(
            stages.iter().filter(|s| s.matched).collect(),
        )),
    }
}

/// File order, except that a pipeline comes after the pipelines it depends on (Drone allows
/// depending on a later document). A cycle was already rejected by the planner; anything left
/// over keeps file order.
fn dependency_order(mut pending: Vec<&Stage>) -> Vec<&Stage> {
    let mut ordered: Vec<&Stage> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|stage| {
            stage.depends_on.iter().all(|dep| {
                ordered.iter().any(|done| &done.plan.name == dep)
                    || !pending.iter().any(|other| &other.plan.name == dep)
            })
        });
        ordered.push(pending.remove(ready.unwrap_or(0)));
    }
    ordered
}

/// Ctrl-C, SIGTERM and the timeout all cancel the build; the engine then cleans up.
fn spawn_cancel_watchers(
    cancel: &CancellationToken,
    timeout: Duration,
    timed_out: &Arc<AtomicBool>,
    interrupted: &Arc<AtomicBool>,
) {
    let token = cancel.clone();
    let flag = interrupted.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    flag.store(true, Ordering::SeqCst);
                    token.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!(
            "skiff: stopping: killing running steps and removing what the build created \
             (press Ctrl-C again to quit at once)"
        );
        flag.store(true, Ordering::SeqCst);
        token.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("skiff: quitting without cleanup; remove leftovers labelled io.skiff.build");
        std::process::exit(130);
    });
    let token = cancel.clone();
    let flag = timed_out.clone();
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        flag.store(true, Ordering::SeqCst);
        token.cancel();
    });
}

/// The event as `drone exec` would describe it, from the flags and the local git checkout.
fn build_context(args: &ExecArgs, workspace: &std::path::Path) -> BuildContext {
    let branch = args
        .branch
        .clone()
        .or_else(|| git(&["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD"))
        .unwrap_or_else(|| "master".to_string());
    let git_ref = args
        .git_ref
        .clone()
        .unwrap_or_else(|| format!("refs/heads/{branch}"));
    let sha = args
        .sha
        .clone()
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_default();
    let repo_name = workspace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    BuildContext {
        event: args.event.clone(),
        branch: branch.clone(),
        target_branch: branch.clone(),
        source_branch: branch,
        git_ref,
        sha,
        message: git(&["log", "-1", "--format=%s"]).unwrap_or_default(),
        author: git(&["log", "-1", "--format=%an"]).unwrap_or_default(),
        author_email: git(&["log", "-1", "--format=%ae"]).unwrap_or_default(),
        repo_name,
        build_number: 1,
        deploy_to: args.deploy_to.clone().unwrap_or_default(),
        trusted: args.trusted,
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
        ..Default::default()
    }
}

/// One line of `git` output, or `None` outside a repository.
fn git(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// `90s`, `30m`, `1h30m`, `500ms`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            unit = "ms".into();
        }
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 90s, 30m or 1h30m"))?;
        let seconds = match unit.as_str() {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => {
                return Err(format!(
                    "unknown unit `{unit}` in `{text}` (use ms, s, m, h)"
                ));
            }
        };
        total += Duration::from_secs_f64(seconds);
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(format!("`{text}` is not a duration like 90s, 30m or 1h30m"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("60m"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_ok());
    }
}
