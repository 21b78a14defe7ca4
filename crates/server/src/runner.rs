//! The in-process runner: a loop that claims stages from the durable queue (up to the
//! configured capacity at once), checks the commit out into a workspace with `git`, re-plans
//! the stage from the pipeline file at that commit, runs it with `skiff-runner` (the exec
//! backend for `type: exec`, the Docker backend when a Docker Engine answers), stores the masked
//! log lines as they come, heartbeats the lease, and records step and stage statuses.
//!
//! A heartbeat that finds the build cancelled kills the steps; one that finds the lease lost
//! (this runner was presumed dead and another took the stage) stops and writes nothing more.
//! On shutdown, running stages are killed and handed back to the queue.

use crate::builds::{context, kind_name};
use crate::{Error, Shared};
use skiff_pipeline::{BackendKind, PlanOptions, plan_build};
use skiff_runner::docker::DockerBackend;
use skiff_runner::exec::ExecBackend;
use skiff_runner::{Backend, LogLine, LogSink, RunOptions};
use skiff_store::{Claim, LeaseState, RunnerSpec, Stage, status};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The platform of this host in Drone's words.
fn host_platform() -> (String, String) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    (std::env::consts::OS.to_string(), arch.to_string())
}

/// Pipeline types this host can run: exec always, docker when an engine answers.
async fn detect_kinds() -> Vec<String> {
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
                Ok(Some(claim)) => {
                    let state = state.clone();
                    let stop = stop.clone();
                    running.spawn(async move {
                        run_claim(state, claim, stop).await;
                        drop(permit);
                    });
                }
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
            // Reap finished stages.
            while running.try_join_next().is_some() {}
        }
        while running.join_next().await.is_some() {}
        tracing::info!("in-process runner stopped");
    })
}

/// Runs one claimed stage to its end and records the outcome.
async fn run_claim(state: Shared, claim: Claim, stop: CancellationToken) {
    let Claim { stage, lease_token } = claim;
    tracing::info!(stage = stage.id, name = %stage.name, attempt = stage.attempts, "stage claimed");
    let cancel = stop.child_token();
    let lost = Arc::new(AtomicBool::new(false));
    let build_cancelled = Arc::new(AtomicBool::new(false));
    let done = CancellationToken::new();

    let heartbeat = {
        let state = state.clone();
        let token = lease_token.clone();
        let cancel = cancel.clone();
        let lost = lost.clone();
        let build_cancelled = build_cancelled.clone();
        let done = done.clone();
        let stage_id = stage.id;
        tokio::spawn(async move {
            let every = (state.config.lease / 3).max(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = done.cancelled() => return,
                }
                match state
                    .store
                    .heartbeat(stage_id, &token, state.config.lease)
                    .await
                {
                    Ok(LeaseState::Held) => {}
                    Ok(LeaseState::Cancelled) => {
                        build_cancelled.store(true, Ordering::SeqCst);
                        cancel.cancel();
                    }
                    Ok(LeaseState::Lost) => {
                        tracing::warn!(
                            stage = stage_id,
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

    let result = execute_stage(&state, &stage, &lease_token, cancel.clone()).await;
    done.cancel();
    let _ = heartbeat.await;

    if lost.load(Ordering::SeqCst) {
        return;
    }
    if stop.is_cancelled() && !build_cancelled.load(Ordering::SeqCst) {
        // The server is stopping: hand the stage back for the next claim.
        match state.store.release_stage(stage.id, &lease_token).await {
            Ok(_) => tracing::info!(stage = stage.id, "stage handed back to the queue"),
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
    tracing::info!(stage = stage.id, status = %outcome, "stage finished");
    if let Err(error) = state
        .store
        .finish_stage(stage.id, &lease_token, &outcome, &error)
        .await
    {
        tracing::warn!(%error, "cannot record a stage's end; its lease will expire and it reruns");
    }
}

/// Checks out, plans and runs a stage; returns its status and error text.
async fn execute_stage(
    state: &Shared,
    stage: &Stage,
    lease_token: &str,
    cancel: CancellationToken,
) -> Result<(String, String), Error> {
    let build = state
        .store
        .build_by_id(stage.build_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("build #{}", stage.build_id)))?;
    let repo = state
        .store
        .repo_by_id(build.repo_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("repository #{}", build.repo_id)))?;

    let text = state
        .git
        .read_file(&repo, &build.sha, &repo.config_path)
        .await?
        .ok_or_else(|| Error::NotFound(format!("{} at {}", repo.config_path, build.sha)))?;
    let ctx = context(state, &repo, &build);
    let plan = plan_build(
        &repo.config_path,
        &text,
        &ctx,
        &PlanOptions {
            trusted: repo.trusted,
        },
    )
    .map_err(|d| Error::BadRequest(d.to_string()))?;
    let planned = plan
        .stages
        .into_iter()
        .find(|s| s.plan.name == stage.name)
        .ok_or_else(|| Error::NotFound(format!("pipeline `{}` in the file", stage.name)))?;

    let workspace = state
        .config
        .data_dir
        .join("work")
        .join(format!("stage-{}-{}", stage.id, stage.attempts));
    let clone_wanted = planned.plan.clone.is_some();
    if clone_wanted {
        state.git.checkout(&repo, &build.sha, &workspace).await?;
    } else {
        std::fs::create_dir_all(&workspace).map_err(Error::Io)?;
    }

    let secrets = crate::api::secrets_for_build(state, &repo, &build).await?;
    let opts = RunOptions {
        build_id: format!("skiff-{}-{}", stage.id, stage.attempts),
        secrets,
        extra_env: BTreeMap::new(),
        include: Vec::new(),
        exclude: Vec::new(),
        trusted: repo.trusted,
        host_workspace: Some(workspace.clone()),
    };
    let prepared = skiff_runner::prepare(&planned.plan, &opts)
        .map_err(|e| Error::BadRequest(e.to_string()))?;
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

    let step_ids: HashMap<usize, i64> = state
        .store
        .steps(stage.id)
        .await?
        .into_iter()
        .map(|s| (s.number as usize, s.id))
        .collect();
    let (sink, writer) = StoreSink::start(state.clone(), step_ids);

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
    let _ = std::fs::remove_dir_all(&workspace);
    let report = report.map_err(|e| Error::Internal(e.to_string()))?;

    let now = skiff_store::now_ms();
    for step in &report.steps {
        let started = now - step.duration.as_millis() as i64;
        state
            .store
            .update_step(
                stage.id,
                lease_token,
                step.number as i64,
                step.status.as_str(),
                step.exit_code,
                step.error.as_deref().unwrap_or(""),
                started,
                now,
            )
            .await?;
    }
    if timed_out.load(Ordering::SeqCst) {
        return Ok((
            status::KILLED.into(),
            format!("timed out after {}s", repo.timeout_secs),
        ));
    }
    Ok((report.status.as_str().to_string(), String::new()))
}

/// Log lines from the runner (already masked) on their way into the store, in batches.
struct StoreSink {
    tx: std::sync::Mutex<Option<mpsc::UnboundedSender<LogLine>>>,
}

impl StoreSink {
    fn start(
        state: Shared,
        step_ids: HashMap<usize, i64>,
    ) -> (Arc<StoreSink>, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<LogLine>();
        let writer = tokio::spawn(async move {
            let mut batch: Vec<LogLine> = Vec::new();
            loop {
                let first = rx.recv().await;
                let closed = first.is_none();
                batch.extend(first);
                while let Ok(line) = rx.try_recv() {
                    batch.push(line);
                }
                let mut by_step: BTreeMap<i64, Vec<(i64, String, i64)>> = BTreeMap::new();
                for line in batch.drain(..) {
                    if let Some(id) = step_ids.get(&line.step_number) {
                        by_step.entry(*id).or_default().push((
                            line.pos as i64,
                            line.text,
                            line.time as i64,
                        ));
                    }
                }
                for (step_id, lines) in by_step {
                    if let Err(error) = state.store.append_logs(step_id, &lines).await {
                        tracing::warn!(%error, "cannot store log lines");
                    }
                }
                if closed {
                    return;
                }
            }
        });
        (
            Arc::new(StoreSink {
                tx: std::sync::Mutex::new(Some(tx)),
            }),
            writer,
        )
    }

    /// No more lines: lets the writer store the rest and end.
    fn close(&self) {
        match self.tx.lock() {
            Ok(mut tx) => tx.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
    }
}

impl LogSink for StoreSink {
    fn line(&self, line: LogLine) {
        let guard = match self.tx.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = guard.as_ref() {
            let _ = tx.send(line);
        }
    }
}
