//! Running claimed stages, for the in-process runner and for remote ones (`skiff runner`).
//!
//! A claim becomes a [`Job`]: the stage and its lease token, the build, the repository, the
//! pipeline file at the commit and the secrets the build may see. [`run_job`] checks the commit
//! out into a workspace with `git`, re-plans the stage, runs it with `skiff-runner` (exec
//! backend for `type: exec`, Docker when an engine answers), streams the masked log lines out,
//! heartbeats the lease, and reports step and stage results. Where results go is an [`Io`]:
//! straight into the store in-process, or over `/rpc/v1` from a remote runner.
//!
//! A heartbeat that finds the build cancelled kills the steps; one that finds the lease lost
//! (this runner was presumed dead and another took the stage) stops and writes nothing more.
//! On shutdown, running stages are killed and handed back to the queue.

use crate::builds::{context, kind_name};
use crate::{Error, Shared};
use serde::{Deserialize, Serialize};
use skiff_pipeline::{BackendKind, PlanOptions, plan_build};
use skiff_runner::docker::DockerBackend;
use skiff_runner::exec::ExecBackend;
use skiff_runner::{Backend, Builtins, LogLine, LogSink, RunOptions, StepReport};
use skiff_store::{Build, Claim, LeaseState, Repo, RunnerSpec, Stage, status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Everything a runner needs to run one claimed stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub stage: Stage,
    pub lease_token: String,
    pub lease_ms: i64,
    pub build: Build,
    pub repo: Repo,
    /// The pipeline file at the build's commit.
    pub config: String,
    /// Opened secrets this build may see (already filtered for pull requests).
    pub secrets: BTreeMap<String, String>,
    pub public_url: String,
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub number: i64,
    pub status: String,
    pub exit_code: i64,
    pub error: String,
    pub started: i64,
    pub finished: i64,
}

/// Where a running stage reports to.
#[derive(Clone)]
pub(crate) enum Io {
    Local(Shared),
    Remote(Arc<crate::remote::RpcClient>),
}

impl Io {
    async fn heartbeat(&self, job: &Job) -> Result<LeaseState, Error> {
        match self {
            Io::Local(state) => Ok(state
                .store
                .heartbeat(job.stage.id, &job.lease_token, lease(job))
                .await?),
            Io::Remote(rpc) => rpc.heartbeat(job).await,
        }
    }

    async fn logs(
        &self,
        job: &Job,
        step_number: i64,
        lines: &[(i64, String, i64)],
    ) -> Result<(), Error> {
        match self {
            Io::Local(state) => {
                state
                    .store
                    .append_stage_logs(job.stage.id, step_number, lines)
                    .await?;
                state.touched();
                Ok(())
            }
            Io::Remote(rpc) => rpc.logs(job, step_number, lines).await,
        }
    }

    async fn step(&self, job: &Job, step: &StepResult) -> Result<(), Error> {
        match self {
            Io::Local(state) => {
                state
                    .store
                    .update_step(
                        job.stage.id,
                        &job.lease_token,
                        step.number,
                        &step.status,
                        step.exit_code,
                        &step.error,
                        step.started,
                        step.finished,
                    )
                    .await?;
                Ok(())
            }
            Io::Remote(rpc) => rpc.step(job, step).await,
        }
    }

    async fn finish(&self, job: &Job, outcome: &str, error: &str) -> Result<(), Error> {
        match self {
            Io::Local(state) => {
                state
                    .store
                    .finish_stage(job.stage.id, &job.lease_token, outcome, error)
                    .await?;
                state.stage_ended();
                state.reporter.build_changed(job.stage.build_id, None);
                Ok(())
            }
            Io::Remote(rpc) => rpc.finish(job, outcome, error).await,
        }
    }

    async fn release(&self, job: &Job) -> Result<(), Error> {
        match self {
            Io::Local(state) => {
                state
                    .store
                    .release_stage(job.stage.id, &job.lease_token)
                    .await?;
                Ok(())
            }
            Io::Remote(rpc) => rpc.release(job).await,
        }
    }

    /// Puts the commit in `dest`: from the server's mirror in-process, else cloned from the
    /// repository's URL on this host; `depth` is the pipeline's `clone: depth` (none: full).
    async fn checkout(&self, job: &Job, depth: Option<u32>, dest: &Path) -> Result<(), Error> {
        match self {
            Io::Local(state) => {
                state
                    .git
                    .checkout(&job.repo, &job.build.sha, depth, dest)
                    .await
            }
            Io::Remote(rpc) => {
                // A hosted repository is cloned from the server this runner talks to, with the
                // stage's lease as a read-only credential that ends with the lease.
                let (url, auth_header) = if job.repo.hosted {
                    (
                        crate::hosting::clone_url(rpc.server(), &job.repo.owner, &job.repo.name),
                        Some(crate::hosting::lease_auth_header(
                            job.stage.id,
                            &job.lease_token,
                        )),
                    )
                } else {
                    (job.repo.git_url.clone(), None)
                };
                crate::git::clone_commit(
                    &url,
                    &job.build.git_ref,
                    &job.build.sha,
                    depth,
                    dest,
                    auth_header.as_deref(),
                )
                .await
            }
        }
    }
}

fn lease(job: &Job) -> Duration {
    Duration::from_millis(job.lease_ms.max(100) as u64)
}

/// The platform of this host in Drone's words.
pub(crate) fn host_platform() -> (String, String) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    (std::env::consts::OS.to_string(), arch.to_string())
}

/// Pipeline types this host can run: exec always, docker when an engine answers.
pub(crate) async fn detect_kinds() -> Vec<String> {
    let mut kinds = vec![kind_name(BackendKind::Exec).to_string()];
    if let Ok(docker) = DockerBackend::connect()
        && tokio::time::timeout(Duration::from_secs(3), docker.ping())
            .await
            .is_ok_and(|r| r.is_ok())
    {
        kinds.push(kind_name(BackendKind::Docker).to_string());
    }
    kinds
}

/// Builds the job for a stage claimed from the store (the in-process runner and `/rpc/v1`).
pub(crate) async fn job_for(state: &Shared, claim: Claim) -> Result<Job, (Claim, Error)> {
    // Every claim goes through here; a claimed stage means its build is running.
    state
        .reporter
        .build_changed(claim.stage.build_id, Some(status::RUNNING));
    let load = async {
        let build = state
            .store
            .build_by_id(claim.stage.build_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("build #{}", claim.stage.build_id)))?;
        let repo = state
            .store
            .repo_by_id(build.repo_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("repository #{}", build.repo_id)))?;
        // Builds keep the file they were planned from; older ones read it from git again.
        let config = if build.config.is_empty() {
            state
                .git
                .read_file(&repo, &build.sha, &repo.config_path)
                .await?
                .ok_or_else(|| Error::NotFound(format!("{} at {}", repo.config_path, build.sha)))?
        } else {
            build.config.clone()
        };
        let secrets = crate::api::secrets_for_build(state, &repo, &build).await?;
        Ok::<_, Error>((build, repo, config, secrets))
    };
    match load.await {
        Ok((build, repo, config, secrets)) => Ok(Job {
            stage: claim.stage,
            lease_token: claim.lease_token,
            lease_ms: state.config.lease.as_millis() as i64,
            build,
            repo,
            config,
            secrets,
            public_url: state.config.public_url.clone(),
        }),
        Err(error) => Err((claim, error)),
    }
}

/// The in-process runner loop.
pub(crate) fn spawn(state: Shared, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (os, arch) = host_platform();
        let kinds = detect_kinds().await;
        tracing::info!(?kinds, %os, %arch, capacity = state.config.runner_capacity, "in-process runner started");
        let spec = RunnerSpec {
            name: format!("in-process-{}", std::process::id()),
            os,
            arch,
            kinds,
            labels: String::new(),
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(
            state.config.runner_capacity.max(1),
        ));
        let work = state.config.data_dir.join("work");
        let mut running = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stop.cancelled() => break,
            };
            match state.store.claim(&spec, state.config.lease).await {
                Ok(Some(claim)) => match job_for(&state, claim).await {
                    Ok(job) => {
                        let io = Io::Local(state.clone());
                        let stop = stop.clone();
                        let work = work.clone();
                        let builtins = state.config.builtins.clone();
                        running.spawn(async move {
                            run_job(io, job, &work, &builtins, stop).await;
                            drop(permit);
                        });
                    }
                    Err((claim, error)) => {
                        drop(permit);
                        let _ = state
                            .store
                            .finish_stage(
                                claim.stage.id,
                                &claim.lease_token,
                                status::ERROR,
                                &error.to_string(),
                            )
                            .await;
                        state.stage_ended();
                        state.reporter.build_changed(claim.stage.build_id, None);
                    }
                },
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = state.queued.notified() => {}
                        _ = tokio::time::sleep(state.config.poll_interval) => {}
                        _ = stop.cancelled() => break,
                    }
                }
                Err(error) => {
                    drop(permit);
                    tracing::warn!(%error, "cannot claim a stage");
                    tokio::select! {
                        _ = tokio::time::sleep(state.config.poll_interval) => {}
                        _ = stop.cancelled() => break,
                    }
                }
            }
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
        tracing::info!("in-process runner stopped");
    })
}

/// Runs one job to its end and reports the outcome through `io`; steps whose image one of
/// `builtins` matches run in this process (e.g. `skiff/deploy`).
pub(crate) async fn run_job(
    io: Io,
    job: Job,
    work: &Path,
    builtins: &Builtins,
    stop: CancellationToken,
) {
    tracing::info!(stage = job.stage.id, name = %job.stage.name, attempt = job.stage.attempts, "stage claimed");
    let cancel = stop.child_token();
    let lost = Arc::new(AtomicBool::new(false));
    let build_cancelled = Arc::new(AtomicBool::new(false));
    let done = CancellationToken::new();

    let heartbeat = {
        let io = io.clone();
        let job = job.clone();
        let cancel = cancel.clone();
        let lost = lost.clone();
        let build_cancelled = build_cancelled.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let every = (lease(&job) / 3).max(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = done.cancelled() => return,
                }
                match io.heartbeat(&job).await {
                    Ok(LeaseState::Held) => {}
                    Ok(LeaseState::Cancelled) => {
                        build_cancelled.store(true, Ordering::SeqCst);
                        cancel.cancel();
                    }
                    Ok(LeaseState::Lost) => {
                        tracing::warn!(
                            stage = job.stage.id,
                            "lease lost; another runner has the stage"
                        );
                        lost.store(true, Ordering::SeqCst);
                        cancel.cancel();
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "heartbeat failed"),
                }
            }
        })
    };

    let workspace = work.join(format!("stage-{}-{}", job.stage.id, job.stage.attempts));
    let result = execute(&io, &job, &workspace, builtins, cancel.clone()).await;
    let _ = std::fs::remove_dir_all(&workspace);
    done.cancel();
    let _ = heartbeat.await;

    if lost.load(Ordering::SeqCst) {
        return;
    }
    if stop.is_cancelled() && !build_cancelled.load(Ordering::SeqCst) {
        match io.release(&job).await {
            Ok(()) => tracing::info!(stage = job.stage.id, "stage handed back to the queue"),
            Err(error) => tracing::warn!(%error, "cannot release a stage; its lease will expire"),
        }
        return;
    }
    let (outcome, error) = match result {
        Ok(outcome) => outcome,
        Err(error) => (status::ERROR.to_string(), error.to_string()),
    };
    let outcome = if build_cancelled.load(Ordering::SeqCst) {
        status::KILLED.to_string()
    } else {
        outcome
    };
    tracing::info!(stage = job.stage.id, status = %outcome, "stage finished");
    if let Err(error) = io.finish(&job, &outcome, &error).await {
        tracing::warn!(%error, "cannot record a stage's end; its lease will expire and it reruns");
    }
}

/// Checks out, plans and runs a stage; returns its status and error text.
async fn execute(
    io: &Io,
    job: &Job,
    workspace: &PathBuf,
    builtins: &Builtins,
    cancel: CancellationToken,
) -> Result<(String, String), Error> {
    let repo = &job.repo;
    let ctx = context(&job.public_url, repo, &job.build);
    let plan = plan_build(
        &repo.config_path,
        &job.config,
        &ctx,
        &PlanOptions {
            trusted: repo.trusted,
        },
    )
    .map_err(|d| Error::BadRequest(d.to_string()))?;
    let planned = plan
        .stages
        .into_iter()
        .find(|s| s.plan.name == job.stage.name)
        .ok_or_else(|| Error::NotFound(format!("pipeline `{}` in the file", job.stage.name)))?;

    if let Some(clone) = &planned.plan.clone {
        io.checkout(job, clone.depth, workspace).await?;
    } else {
        std::fs::create_dir_all(workspace).map_err(Error::Io)?;
    }

    let opts = RunOptions {
        build_id: format!("skiff-{}-{}", job.stage.id, job.stage.attempts),
        secrets: job.secrets.clone(),
        extra_env: BTreeMap::new(),
        include: Vec::new(),
        exclude: Vec::new(),
        trusted: repo.trusted,
        host_workspace: Some(workspace.clone()),
    };
    let prepared = skiff_runner::prepare(&planned.plan, &opts)
        .map_err(|e| Error::BadRequest(e.to_string()))?
        .with_builtins(builtins.clone());
    let backend: Arc<dyn Backend> = match planned.plan.backend {
        BackendKind::Exec => Arc::new(ExecBackend::new()),
        BackendKind::Docker => {
            let docker = DockerBackend::connect().map_err(|e| Error::Internal(e.to_string()))?;
            docker
                .ping()
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            docker
                .check_images(prepared.build())
                .await
                .map_err(|e| Error::BadRequest(e.to_string()))?;
            Arc::new(docker)
        }
        BackendKind::Kubernetes => {
            return Err(Error::BadRequest(
                "kubernetes pipelines have no runner yet".into(),
            ));
        }
    };

    let (sink, writer) = LineSink::start(io.clone(), job.clone());
    let timed_out = Arc::new(AtomicBool::new(false));
    let timer = {
        let cancel = cancel.clone();
        let timed_out = timed_out.clone();
        let limit = Duration::from_secs(repo.timeout_secs.max(1) as u64);
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            timed_out.store(true, Ordering::SeqCst);
            cancel.cancel();
        })
    };
    let report =
        skiff_runner::execute(prepared, backend, sink.clone() as Arc<dyn LogSink>, cancel).await;
    timer.abort();
    sink.close();
    let _ = writer.await;
    let report = report.map_err(|e| Error::Internal(e.to_string()))?;

    // Steps were reported live as they started and ended; write again only what did not get
    // through (a failed write), so the stored steps always end as the report says.
    let now = skiff_store::now_ms();
    let live = sink.live_steps();
    for step in &report.steps {
        let number = step.number as i64;
        let result = step_result(step, live.started(number), now);
        if live.recorded(number) != Some(result.status.as_str()) {
            io.step(job, &result).await?;
        }
    }
    if timed_out.load(Ordering::SeqCst) {
        return Ok((
            status::KILLED.into(),
            format!("timed out after {}s", repo.timeout_secs),
        ));
    }
    Ok((report.status.as_str().to_string(), String::new()))
}

/// The outcome of a step as stored: `started` is when it started (`now` minus its duration
/// when it never reported a start), `finished` is `now`.
fn step_result(step: &StepReport, started: Option<i64>, now: i64) -> StepResult {
    StepResult {
        number: step.number as i64,
        status: step.status.as_str().to_string(),
        exit_code: step.exit_code,
        error: step.error.clone().unwrap_or_default(),
        started: started.unwrap_or(now - step.duration.as_millis() as i64),
        finished: now,
    }
}

/// What the runner tells the sink, in the order it happened.
enum Event {
    Line(LogLine),
    Started { number: i64, at: i64 },
    Finished { report: StepReport, at: i64 },
}

/// What the live step reports got into the store: start times and the final statuses written.
#[derive(Debug, Default, Clone)]
struct LiveSteps {
    started: BTreeMap<i64, i64>,
    recorded: BTreeMap<i64, String>,
}

impl LiveSteps {
    fn started(&self, number: i64) -> Option<i64> {
        self.started.get(&number).copied()
    }

    fn recorded(&self, number: i64) -> Option<&str> {
        self.recorded.get(&number).map(String::as_str)
    }
}

/// Log lines (already masked) and step starts and ends from the runner on their way out, in
/// order: lines in batches per step, a step's `running` before its first line and its result
/// after its last. Each write goes through `io`, which checks the lease token.
struct LineSink {
    tx: std::sync::Mutex<Option<mpsc::UnboundedSender<Event>>>,
    live: Arc<std::sync::Mutex<LiveSteps>>,
}

impl LineSink {
    fn start(io: Io, job: Job) -> (Arc<LineSink>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let live = Arc::new(std::sync::Mutex::new(LiveSteps::default()));
        let writer_live = live.clone();
        let writer = tokio::spawn(async move {
            loop {
                let first = rx.recv().await;
                let closed = first.is_none();
                let mut batch: Vec<Event> = first.into_iter().collect();
                while let Ok(event) = rx.try_recv() {
                    batch.push(event);
                }
                let mut lines: BTreeMap<i64, Vec<(i64, String, i64)>> = BTreeMap::new();
                for event in batch {
                    match event {
                        Event::Line(line) => {
                            lines.entry(line.step_number as i64).or_default().push((
                                line.pos as i64,
                                line.text,
                                line.time as i64,
                            ));
                        }
                        Event::Started { number, at } => {
                            flush_lines(&io, &job, &mut lines).await;
                            lock(&writer_live).started.insert(number, at);
                            let running = StepResult {
                                number,
                                status: status::RUNNING.into(),
                                exit_code: 0,
                                error: String::new(),
                                started: at,
                                finished: 0,
                            };
                            if let Err(error) = io.step(&job, &running).await {
                                tracing::warn!(%error, step = number, "cannot record a step's start");
                            }
                        }
                        Event::Finished { report, at } => {
                            flush_lines(&io, &job, &mut lines).await;
                            let number = report.number as i64;
                            let started = lock(&writer_live).started(number);
                            let result = step_result(&report, started, at);
                            match io.step(&job, &result).await {
                                Ok(()) => {
                                    lock(&writer_live).recorded.insert(number, result.status);
                                }
                                Err(error) => {
                                    tracing::warn!(%error, step = number, "cannot record a step's end")
                                }
                            }
                        }
                    }
                }
                flush_lines(&io, &job, &mut lines).await;
                if closed {
                    return;
                }
            }
        });
        (
            Arc::new(LineSink {
                tx: std::sync::Mutex::new(Some(tx)),
                live,
            }),
            writer,
        )
    }

    /// No more events: lets the writer send the rest and end.
    fn close(&self) {
        match self.tx.lock() {
            Ok(mut tx) => tx.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
    }

    /// What the live reports stored (complete once the writer has ended).
    fn live_steps(&self) -> LiveSteps {
        lock(&self.live).clone()
    }

    fn send(&self, event: Event) {
        let guard = match self.tx.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = guard.as_ref() {
            let _ = tx.send(event);
        }
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Stores the lines gathered so far, step by step, and empties `lines`.
async fn flush_lines(io: &Io, job: &Job, lines: &mut BTreeMap<i64, Vec<(i64, String, i64)>>) {
    for (step, batch) in std::mem::take(lines) {
        if let Err(error) = io.logs(job, step, &batch).await {
            tracing::warn!(%error, "cannot store log lines");
        }
    }
}

impl LogSink for LineSink {
    fn line(&self, line: LogLine) {
        self.send(Event::Line(line));
    }

    fn step_started(&self, _step: &str, number: usize) {
        self.send(Event::Started {
            number: number as i64,
            at: skiff_store::now_ms(),
        });
    }

    fn step_finished(&self, report: &StepReport) {
        self.send(Event::Finished {
            report: report.clone(),
            at: skiff_store::now_ms(),
        });
    }
}
