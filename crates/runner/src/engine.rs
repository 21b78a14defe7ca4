//! The DAG executor: checks a [`Plan`] before anything starts, then runs its steps on a
//! [`Backend`] with Drone's semantics (ci.md §2.7, §2.13): steps start as soon as their
//! dependencies are done, run policies decide whether a visited step runs, `failure: ignore`
//! and `failure: fast`, detached steps, exit code 78, cancel and timeout. Everything the
//! build created is torn down whatever happens.

use crate::RunnerError;
use crate::auth;
use crate::backend::{Backend, BuildSpec, RegistryAuth, StepExit, StepSpec};
use crate::builtin::{BuiltinContext, BuiltinLog, BuiltinStep, Builtins};
use crate::log::{LogSink, StepLog};
use crate::mask::Masker;
use crate::script;
use skiff_pipeline::{BackendKind, FailurePolicy, Plan, RunPolicy, VolumeSource};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Exit code with which a step ends the pipeline early and successfully.
pub const EXIT_SKIP_PENDING: i64 = 78;
/// Exit code recorded for killed steps.
pub const EXIT_KILLED: i64 = 137;
/// Exit code recorded for steps the backend could not run.
pub const EXIT_ERROR: i64 = 255;

/// Choices of the caller that are not part of the plan (flags of `skiff exec`).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Unique id of this run, used to label what the backend creates. Empty: generated.
    pub build_id: String,
    /// Secret values by name, for `from_secret` and `image_pull_secrets`. All are masked.
    pub secrets: BTreeMap<String, String>,
    /// Extra environment for every step (`--env-file`).
    pub extra_env: BTreeMap<String, String>,
    /// Only these steps run (`--include`); empty means all.
    pub include: Vec<String>,
    /// These steps do not run (`--exclude`).
    pub exclude: Vec<String>,
    /// Allows privileged steps, host volumes and the other trusted-only features.
    pub trusted: bool,
    /// Host directory used as the workspace instead of an empty one.
    pub host_workspace: Option<PathBuf>,
}

/// Drone's step and stage statuses (ci.md §2.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Success,
    Failure,
    Skipped,
    Killed,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Skipped => "skipped",
            Status::Killed => "killed",
            Status::Error => "error",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub name: String,
    pub number: usize,
    pub is_service: bool,
    pub status: Status,
    pub exit_code: i64,
    /// Time from start to end; zero for steps that never ran.
    pub duration: Duration,
    /// `failure: ignore`: a failure here did not fail the pipeline.
    pub ignored: bool,
    /// Why the step errored, when it did.
    pub error: Option<String>,
}

/// How the whole pipeline ended.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub pipeline: String,
    pub build_id: String,
    pub status: Status,
    pub steps: Vec<StepReport>,
    pub duration: Duration,
    /// Things worth telling the user that did not stop the build.
    pub warnings: Vec<String>,
    /// Resources the backend could not remove.
    pub cleanup_errors: Vec<String>,
}

/// A plan checked and resolved against the options, ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What the backend prepares: every step except the built-in ones.
    build: BuildSpec,
    /// Every step of the plan, in plan order.
    steps: Vec<StepSpec>,
    /// Index dependencies of each step.
    deps: Vec<Vec<usize>>,
    masker: Arc<Masker>,
    warnings: Vec<String>,
    builtins: Builtins,
    backend_kind: BackendKind,
}

impl Prepared {
    /// What the backend will be asked to prepare (built-in steps are not in it: they run in
    /// the runner's process, no image is checked or pulled for them).
    pub fn build(&self) -> &BuildSpec {
        &self.build
    }

    /// Registers built-in plugins (see [`crate::builtin`]): a step whose `image` one of them
    /// matches runs in this process instead of on the backend.
    pub fn with_builtins(mut self, builtins: impl Into<Builtins>) -> Self {
        self.builtins = builtins.into();
        let builtins = &self.builtins;
        self.build.steps = self
            .steps
            .iter()
            .filter(|s| builtins.find(s.step.image.as_deref()).is_none())
            .cloned()
            .collect();
        self
    }

    /// Names of the steps that run as built-ins.
    pub fn builtin_steps(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| self.builtins.find(s.step.image.as_deref()).is_some())
            .map(|s| s.step.name.clone())
            .collect()
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The masker for this build's secrets, for messages printed outside step logs.
    pub fn masker(&self) -> Arc<Masker> {
        self.masker.clone()
    }
}

/// Checks `plan` and resolves it against `opts`. Every problem that would stop the build is
/// found here, before anything starts.
pub fn prepare(plan: &Plan, opts: &RunOptions) -> Result<Prepared, RunnerError> {
    let name = plan.name.as_str();
    let mut warnings = plan.warnings.clone();
    let index: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    if index.len() != plan.steps.len() {
        return Err(RunnerError::invalid(name, "two steps have the same name"));
    }
    for listed in opts.include.iter().chain(&opts.exclude) {
        if !index.contains_key(listed.as_str()) {
            return Err(RunnerError::invalid(
                name,
                format!("no step named `{listed}` (from --include/--exclude)"),
            ));
        }
    }

    // Dependencies. The runner has no clone step in exec mode, so `clone` is dropped when no
    // step carries that name.
    let mut deps = Vec::with_capacity(plan.steps.len());
    for step in &plan.steps {
        let mut list = Vec::new();
        for dep in &step.depends_on {
            match index.get(dep.as_str()) {
                Some(&i) => list.push(i),
                None if dep == "clone" => {}
                None => {
                    return Err(RunnerError::invalid(
                        name,
                        format!("step `{}` depends on unknown step `{dep}`", step.name),
                    ));
                }
            }
        }
        deps.push(list);
    }
    if let Some(step) = find_cycle(&deps) {
        return Err(RunnerError::invalid(
            name,
            format!("dependency cycle through step `{}`", plan.steps[step].name),
        ));
    }

    check_trust_and_volumes(plan, opts)?;

    let auths = resolve_pull_secrets(plan, opts, &mut warnings)?;
    let masker = Arc::new(Masker::new(opts.secrets.values()));

    let mut steps = Vec::with_capacity(plan.steps.len());
    for (i, step) in plan.steps.iter().enumerate() {
        if plan.backend != BackendKind::Exec && step.image.as_deref().unwrap_or("").is_empty() {
            return Err(RunnerError::invalid(
                name,
                format!("step `{}` has no image", step.name),
            ));
        }
        let mut step = step.clone();
        let listed_out =
            (!opts.include.is_empty() && !step.is_service && !opts.include.contains(&step.name))
                || opts.exclude.contains(&step.name);
        if listed_out {
            step.run_policy = RunPolicy::Never;
        }
        let mut env = plan.environment.clone();
        env.extend(opts.extra_env.clone());
        env.extend(step.environment.clone());
        for (var, secret) in &step.secret_environment {
            let value = match opts.secrets.get(secret) {
                Some(value) => value.clone(),
                None => {
                    warnings.push(format!(
                        "step `{}`: secret `{secret}` for ${var} is not defined; it is empty",
                        step.name
                    ));
                    String::new()
                }
            };
            env.insert(var.clone(), value);
        }
        env.entry("DRONE_WORKSPACE".into())
            .or_insert_with(|| plan.workspace.path.clone());
        env.entry("DRONE_WORKSPACE_BASE".into())
            .or_insert_with(|| plan.workspace.base.clone());
        env.entry("DRONE_WORKSPACE_PATH".into()).or_insert_with(|| {
            plan.workspace
                .path
                .strip_prefix(&plan.workspace.base)
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string()
        });
        env.insert("DRONE_STEP_NAME".into(), step.name.clone());
        env.insert("DRONE_STEP_NUMBER".into(), (i + 1).to_string());
        env.insert("DRONE_BUILD_STATUS".into(), "success".into());
        env.insert("DRONE_STAGE_STATUS".into(), "success".into());
        let script = if step.commands.is_empty() {
            None
        } else {
            Some(script::posix_script(&step.commands))
        };
        let precreate = step.run_policy == RunPolicy::OnSuccess;
        steps.push(StepSpec {
            number: i + 1,
            step,
            env,
            script,
            precreate,
        });
    }

    let build = BuildSpec {
        id: if opts.build_id.is_empty() {
            new_build_id()
        } else {
            opts.build_id.clone()
        },
        pipeline: plan.name.clone(),
        workspace: plan.workspace.clone(),
        host_workspace: opts.host_workspace.clone(),
        volumes: plan.volumes.clone(),
        steps: steps.clone(),
        auths,
    };
    Ok(Prepared {
        build,
        steps,
        deps,
        masker,
        warnings,
        builtins: Builtins::default(),
        backend_kind: plan.backend,
    })
}

/// A short random id: unique enough per machine, short enough for container names.
pub fn new_build_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The trusted-only features (ci.md §2.1, Drone's linter) and volume references.
fn check_trust_and_volumes(plan: &Plan, opts: &RunOptions) -> Result<(), RunnerError> {
    let name = plan.name.as_str();
    let untrusted = |what: String| {
        RunnerError::invalid(
            name,
            format!("{what} requires a trusted build (use --trusted)"),
        )
    };
    let by_name: HashMap<&str, &VolumeSource> = plan
        .volumes
        .iter()
        .map(|v| (v.name.as_str(), &v.source))
        .collect();
    for volume in &plan.volumes {
        match &volume.source {
            VolumeSource::Host { path } => {
                if !path.starts_with('/') {
                    return Err(RunnerError::invalid(
                        name,
                        format!(
                            "host volume `{}` needs an absolute path, not `{path}`",
                            volume.name
                        ),
                    ));
                }
                if !opts.trusted {
                    return Err(untrusted(format!("host volume `{}`", volume.name)));
                }
            }
            VolumeSource::Temp { in_memory: true } if !opts.trusted => {
                return Err(untrusted(format!("in-memory volume `{}`", volume.name)));
            }
            VolumeSource::Temp { .. } => {}
        }
    }
    for step in &plan.steps {
        if !opts.trusted {
            if step.privileged {
                return Err(untrusted(format!("privileged step `{}`", step.name)));
            }
            if step.network_mode.is_some() {
                return Err(untrusted(format!("network_mode of step `{}`", step.name)));
            }
            if step.shm_size.is_some() {
                return Err(untrusted(format!("shm_size of step `{}`", step.name)));
            }
        }
        for mount in &step.volumes {
            if !by_name.contains_key(mount.name.as_str()) {
                return Err(RunnerError::invalid(
                    name,
                    format!(
                        "step `{}` mounts volume `{}`, which the pipeline does not define",
                        step.name, mount.name
                    ),
                ));
            }
            if !mount.path.starts_with('/') {
                return Err(RunnerError::invalid(
                    name,
                    format!(
                        "step `{}` mounts volume `{}` at `{}`; the path must be absolute",
                        step.name, mount.name, mount.path
                    ),
                ));
            }
            if mount.path == "/run/drone" || mount.path.starts_with("/run/drone/") {
                return Err(RunnerError::invalid(
                    name,
                    format!("step `{}` may not mount /run/drone", step.name),
                ));
            }
        }
        if plan.backend == BackendKind::Exec && !step.volumes.is_empty() {
            return Err(RunnerError::invalid(
                name,
                format!(
                    "step `{}` mounts volumes; exec pipelines run on the host and have none",
                    step.name
                ),
            ));
        }
    }
    Ok(())
}

fn resolve_pull_secrets(
    plan: &Plan,
    opts: &RunOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<RegistryAuth>, RunnerError> {
    let mut auths = Vec::new();
    for secret in &plan.image_pull_secrets {
        match opts.secrets.get(secret) {
            Some(json) => auths.extend(auth::parse_docker_config(secret, json)?),
            None => warnings.push(format!(
                "image_pull_secrets: secret `{secret}` is not defined; pulling without it"
            )),
        }
    }
    Ok(auths)
}

/// A step on a dependency cycle, if there is one (Kahn's algorithm).
fn find_cycle(deps: &[Vec<usize>]) -> Option<usize> {
    let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); deps.len()];
    for (i, list) in deps.iter().enumerate() {
        for &d in list {
            dependents[d].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..deps.len()).filter(|&i| remaining[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &j in &dependents[i] {
            remaining[j] -= 1;
            if remaining[j] == 0 {
                ready.push(j);
            }
        }
    }
    if done == deps.len() {
        None
    } else {
        remaining.iter().position(|&r| r > 0)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Pending,
    Running(Instant),
    Done(StepReport),
}

/// Runs a prepared build to its end and tears it down. `cancel` (Ctrl-C, SIGTERM, timeout)
/// kills running steps and skips pending ones; the build then ends `killed`.
/// Returns `Err` only when the backend could not set the build up (nothing ran).
pub async fn execute(
    prepared: Prepared,
    backend: Arc<dyn Backend>,
    sink: Arc<dyn LogSink>,
    cancel: CancellationToken,
) -> Result<BuildReport, RunnerError> {
    let started = Instant::now();
    let Prepared {
        build,
        steps: all_steps,
        deps,
        masker,
        warnings,
        builtins,
        backend_kind,
    } = prepared;

    let setup = tokio::select! {
        result = backend.setup(&build) => Some(result),
        _ = cancel.cancelled() => None,
    };
    match setup {
        Some(Ok(())) => {}
        Some(Err(error)) => {
            backend.teardown().await;
            return Err(error);
        }
        None => {
            let cleanup = backend.teardown().await;
            let steps: Vec<StepReport> = all_steps
                .iter()
                .map(|s| never_ran(s, Status::Skipped))
                .collect();
            for report in &steps {
                sink.step_finished(report);
            }
            return Ok(BuildReport {
                pipeline: build.pipeline.clone(),
                build_id: build.id.clone(),
                status: Status::Killed,
                steps,
                duration: started.elapsed(),
                warnings,
                cleanup_errors: cleanup.iter().map(|e| e.to_string()).collect(),
            });
        }
    }

    let specs = &all_steps;
    // Built-in steps work on the workspace as the host sees it.
    let host_workspace = build
        .host_workspace
        .clone()
        .or_else(|| backend.host_workspace());
    let mut slots = vec![Slot::Pending; specs.len()];
    let mut failing = false; // a non-ignored step failed, errored or was killed
    let mut any_error = false;
    let mut early_exit = false; // a step exited 78
    let mut cancelled = false; // user cancel or timeout
    let mut fail_fast = false;
    let stop_running = cancel.child_token();
    let mut tasks: JoinSet<(usize, StepExit)> = JoinSet::new();
    let mut task_index: HashMap<tokio::task::Id, usize> = HashMap::new();

    loop {
        // A cancel may have been seen first by a step (its token is a child of `cancel`).
        if cancel.is_cancelled() && !cancelled {
            cancelled = true;
            stop_running.cancel();
        }
        // Visit every pending step whose dependencies are all done, until none is left.
        let mut visited = true;
        while visited {
            visited = false;
            for i in 0..specs.len() {
                if slots[i] != Slot::Pending
                    || !deps[i].iter().all(|&d| matches!(slots[d], Slot::Done(_)))
                {
                    continue;
                }
                visited = true;
                let spec = &specs[i];
                let runs = !cancelled
                    && !fail_fast
                    && !early_exit
                    && match spec.step.run_policy {
                        RunPolicy::Never => false,
                        RunPolicy::OnSuccess => !failing,
                        RunPolicy::OnFailure => failing,
                        RunPolicy::Always => true,
                    };
                if !runs {
                    let report = never_ran(spec, Status::Skipped);
                    sink.step_finished(&report);
                    slots[i] = Slot::Done(report);
                    continue;
                }
                let mut spec = spec.clone();
                if failing {
                    spec.env
                        .insert("DRONE_BUILD_STATUS".into(), "failure".into());
                    spec.env
                        .insert("DRONE_STAGE_STATUS".into(), "failure".into());
                    spec.env
                        .insert("DRONE_FAILED_STEPS".into(), failed_steps(&slots).join(","));
                }
                let log = StepLog::new(&spec.step.name, spec.number, masker.clone(), sink.clone());
                let backend = backend.clone();
                let token = stop_running.child_token();
                let builtin = builtins.find(spec.step.image.as_deref());
                let workspace = host_workspace.clone();
                let unknown_plugin = builtin.is_none() && exec_plugin(backend_kind, &spec);
                // Before the task exists, so that the start comes before the step's first line.
                sink.step_started(&spec.step.name, spec.number);
                let handle = tasks.spawn(async move {
                    let exit = match builtin {
                        Some(builtin) => run_builtin(builtin, spec, log, token, workspace).await,
                        None if unknown_plugin => StepExit::Error(format!(
                            "step `{}` is a plugin (`image: {}`, no commands); exec pipelines \
                             run only built-in plugins, and none is named so",
                            spec.step.name,
                            spec.step.image.as_deref().unwrap_or_default()
                        )),
                        None => backend.run(&spec, log, token).await,
                    };
                    (i, exit)
                });
                task_index.insert(handle.id(), i);
                tracing::debug!(build = %build.id, step = %specs[i].step.name, "step started");
                slots[i] = Slot::Running(Instant::now());
            }
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            joined = tasks.join_next_with_id() => {
                let (i, exit) = match joined {
                    Some(Ok((_, result))) => result,
                    Some(Err(join_error)) => match task_index.get(&join_error.id()) {
                        Some(&i) => (i, StepExit::Error(format!("step task failed: {join_error}"))),
                        None => continue,
                    },
                    None => continue,
                };
                let began = match &slots[i] {
                    Slot::Running(at) => *at,
                    _ => Instant::now(),
                };
                let spec = &specs[i];
                let ignored = spec.step.failure == FailurePolicy::Ignore;
                let (status, exit_code, error) = match exit {
                    StepExit::Exited(0) => (Status::Success, 0, None),
                    StepExit::Exited(EXIT_SKIP_PENDING) => {
                        early_exit = true;
                        (Status::Success, EXIT_SKIP_PENDING, None)
                    }
                    StepExit::Exited(code) => (Status::Failure, code, None),
                    StepExit::Detached => (Status::Success, 0, None),
                    StepExit::Killed => (Status::Killed, EXIT_KILLED, None),
                    StepExit::Error(message) => (Status::Error, EXIT_ERROR, Some(message)),
                };
                if let Some(message) = &error {
                    // The backend's log writer is gone; say why in the step's log all the same.
                    let mut log =
                        StepLog::new(&spec.step.name, spec.number, masker.clone(), sink.clone());
                    log.note(&format!("skiff: {message}"));
                }
                if status == Status::Error && !ignored {
                    any_error = true;
                }
                if matches!(status, Status::Failure | Status::Error | Status::Killed) && !ignored {
                    failing = true;
                    if spec.step.failure == FailurePolicy::Fast && !cancelled {
                        fail_fast = true;
                        stop_running.cancel();
                    }
                }
                tracing::debug!(
                    build = %build.id,
                    step = %spec.step.name,
                    status = status.as_str(),
                    exit_code,
                    duration_ms = began.elapsed().as_millis() as u64,
                    "step finished"
                );
                let report = StepReport {
                    name: spec.step.name.clone(),
                    number: spec.number,
                    is_service: spec.step.is_service,
                    status,
                    exit_code,
                    duration: began.elapsed(),
                    ignored,
                    error,
                };
                sink.step_finished(&report);
                slots[i] = Slot::Done(report);
            }
            _ = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                stop_running.cancel();
            }
        }
    }

    cancelled |= cancel.is_cancelled();
    let cleanup = backend.teardown().await;
    let steps: Vec<StepReport> = slots
        .into_iter()
        .zip(specs)
        .map(|(slot, spec)| match slot {
            Slot::Done(report) => report,
            _ => {
                let report = never_ran(spec, Status::Skipped);
                sink.step_finished(&report);
                report
            }
        })
        .collect();
    let status = if cancelled {
        Status::Killed
    } else if any_error {
        Status::Error
    } else if failing {
        Status::Failure
    } else {
        Status::Success
    };
    Ok(BuildReport {
        pipeline: build.pipeline.clone(),
        build_id: build.id.clone(),
        status,
        steps,
        duration: started.elapsed(),
        warnings,
        cleanup_errors: cleanup.iter().map(|e| e.to_string()).collect(),
    })
}

/// Runs a built-in step in this process: its future is dropped when `cancel` fires.
async fn run_builtin(
    builtin: Arc<dyn BuiltinStep>,
    spec: StepSpec,
    log: StepLog,
    cancel: CancellationToken,
    workspace: Option<PathBuf>,
) -> StepExit {
    let Some(workspace) = workspace else {
        return StepExit::Error(format!(
            "built-in step `{}` ({}) needs the workspace on the runner host, and this backend has none",
            spec.step.name,
            spec.step.image.as_deref().unwrap_or_default()
        ));
    };
    let log = BuiltinLog::new(log);
    let ctx = BuiltinContext {
        step: spec.step.name.clone(),
        env: spec.env,
        workspace,
        log: log.clone(),
        cancel: cancel.clone(),
    };
    let exit = tokio::select! {
        code = builtin.run(ctx) => StepExit::Exited(code),
        _ = cancel.cancelled() => StepExit::Killed,
    };
    log.finish();
    exit
}

/// A plugin step (an image, nothing to run) in an exec pipeline: only a built-in can run it.
fn exec_plugin(backend: BackendKind, spec: &StepSpec) -> bool {
    backend == BackendKind::Exec
        && spec.script.is_none()
        && spec.step.entrypoint.is_none()
        && spec.step.command.is_none()
        && spec.step.image.as_deref().is_some_and(|i| !i.is_empty())
}

fn never_ran(spec: &StepSpec, status: Status) -> StepReport {
    StepReport {
        name: spec.step.name.clone(),
        number: spec.number,
        is_service: spec.step.is_service,
        status,
        exit_code: 0,
        duration: Duration::ZERO,
        ignored: spec.step.failure == FailurePolicy::Ignore,
        error: None,
    }
}

fn failed_steps(slots: &[Slot]) -> Vec<String> {
    slots
        .iter()
        .filter_map(|slot| match slot {
            Slot::Done(r)
                if !r.ignored
                    && matches!(r.status, Status::Failure | Status::Error | Status::Killed) =>
            {
                Some(r.name.clone())
            }
            _ => None,
        })
        .collect()
}
