//! The runner API under `/rpc/v1`, for remote runners (`skiff runner --server URL --token T`).
//! A runner long-polls `claim` with its platform, pipeline types and labels and gets a
//! [`Job`](crate::Job) — or 204 after the wait — then heartbeats, sends log lines and
//! step results, and finishes or releases the stage. Every call after `claim` carries the lease
//! token; the store refuses writes from a runner whose lease was taken over. Callers
//! authenticate with a runner token (`POST /api/v1/runners`), or with a site admin's API token,
//! still accepted for runners set up before per-runner tokens ([`RunnerAuthed`]).

use crate::auth::RunnerAuthed;
use crate::runner::{StepResult, job_for};
use crate::{Error, Shared};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use skiff_store::{LeaseState, RunnerSpec, status};
use std::time::Duration;

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/claim", post(claim))
        .route("/stages/{id}/heartbeat", post(heartbeat))
        .route("/stages/{id}/logs", post(logs))
        .route("/stages/{id}/steps", post(step))
        .route("/stages/{id}/finish", post(finish))
        .route("/stages/{id}/release", post(release))
}

/// What a runner asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub name: String,
    pub os: String,
    pub arch: String,
    pub kinds: Vec<String>,
    /// `k=v,…` sorted.
    #[serde(default)]
    pub labels: String,
    /// How long to wait for work, at most 30 s.
    #[serde(default)]
    pub wait_secs: u64,
}

async fn claim(
    State(state): State<Shared>,
    _: RunnerAuthed,
    Json(req): Json<ClaimRequest>,
) -> Result<Response, Error> {
    if req.kinds.is_empty() {
        return Err(Error::BadRequest("kinds is empty".into()));
    }
    let spec = RunnerSpec {
        name: req.name,
        os: req.os,
        arch: req.arch,
        kinds: req.kinds,
        labels: req.labels,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(req.wait_secs.min(30));
    loop {
        if let Some(claimed) = state.store.claim(&spec, state.config.lease).await? {
            match job_for(&state, claimed).await {
                Ok(job) => return Ok(Json(job).into_response()),
                Err((claimed, error)) => {
                    state
                        .store
                        .finish_stage(
                            claimed.stage.id,
                            &claimed.lease_token,
                            status::ERROR,
                            &error.to_string(),
                        )
                        .await?;
                    state.stage_ended();
                    state.reporter.build_changed(claimed.stage.build_id, None);
                    continue;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        tokio::select! {
            _ = state.queued.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub lease_token: String,
}

/// `held`, `cancelled` or `lost`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LeaseAnswer {
    pub state: String,
}

async fn heartbeat(
    State(state): State<Shared>,
    _: RunnerAuthed,
    Path(id): Path<i64>,
    Json(req): Json<LeaseRequest>,
) -> Result<Json<LeaseAnswer>, Error> {
    let answer = match state
        .store
        .heartbeat(id, &req.lease_token, state.config.lease)
        .await?
    {
        LeaseState::Held => "held",
        LeaseState::Cancelled => "cancelled",
        LeaseState::Lost => "lost",
    };
    Ok(Json(LeaseAnswer {
        state: answer.into(),
    }))
}

/// Refuses writes from a runner that no longer holds the stage.
async fn check_lease(state: &Shared, id: i64, token: &str) -> Result<(), Error> {
    match state.store.stage(id).await? {
        Some(stage) if stage.lease_token == token && !status::is_done(&stage.status) => Ok(()),
        Some(stage) if stage.lease_token == token && stage.status == status::KILLED => Ok(()),
        _ => Err(Error::Conflict(
            "the lease on this stage is not yours".into(),
        )),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LogsRequest {
    pub lease_token: String,
    pub step: i64,
    /// `(pos, text, seconds since the step started)`, already masked.
    pub lines: Vec<(i64, String, i64)>,
}

async fn logs(
    State(state): State<Shared>,
    _: RunnerAuthed,
    Path(id): Path<i64>,
    Json(req): Json<LogsRequest>,
) -> Result<StatusCode, Error> {
    check_lease(&state, id, &req.lease_token).await?;
    state
        .store
        .append_stage_logs(id, req.step, &req.lines)
        .await?;
    state.touched();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StepRequest {
    pub lease_token: String,
    pub step: StepResult,
}

async fn step(
    State(state): State<Shared>,
    _: RunnerAuthed,
    Path(id): Path<i64>,
    Json(req): Json<StepRequest>,
) -> Result<StatusCode, Error> {
    let s = &req.step;
    // `running` when a step starts (live status), a final status when it ends.
    if s.status != status::RUNNING && !status::is_done(&s.status) {
        return Err(Error::BadRequest(format!(
            "`{}` is not a step status a runner reports (running, or a final one)",
            s.status
        )));
    }
    let ok = state
        .store
        .update_step(
            id,
            &req.lease_token,
            s.number,
            &s.status,
            s.exit_code,
            &s.error,
            s.started,
            s.finished,
        )
        .await?;
    if ok {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::Conflict(
            "the lease on this stage is not yours".into(),
        ))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FinishRequest {
    pub lease_token: String,
    pub status: String,
    #[serde(default)]
    pub error: String,
}

async fn finish(
    State(state): State<Shared>,
    _: RunnerAuthed,
    Path(id): Path<i64>,
    Json(req): Json<FinishRequest>,
) -> Result<StatusCode, Error> {
    if !status::is_done(&req.status) {
        return Err(Error::BadRequest(format!(
            "`{}` is not a final status",
            req.status
        )));
    }
    if state
        .store
        .finish_stage(id, &req.lease_token, &req.status, &req.error)
        .await?
    {
        state.stage_ended();
        state.reporter.stage_finished(id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::Conflict(
            "the lease on this stage is not yours".into(),
        ))
    }
}

async fn release(
    State(state): State<Shared>,
    _: RunnerAuthed,
    Path(id): Path<i64>,
    Json(req): Json<LeaseRequest>,
) -> Result<StatusCode, Error> {
    state.store.release_stage(id, &req.lease_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
