//! A remote runner: the loop `skiff runner --server URL --token T` runs on another host. It
//! long-polls the server's `/rpc/v1/claim` for stages matching this host's platform, pipeline
//! types and labels, up to `capacity` at once, and runs each like the in-process runner, except
//! that it clones the commit from the repository's URL itself and reports over HTTP.

use crate::Error;
use crate::rpc::{
    ClaimRequest, FinishRequest, LeaseAnswer, LeaseRequest, LogsRequest, StepRequest,
};
use crate::runner::{Io, Job, StepResult, detect_kinds, host_platform, run_job};
use skiff_runner::Builtins;
use skiff_store::LeaseState;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Settings of `skiff runner`.
#[derive(Debug, Clone)]
pub struct RemoteRunner {
    /// The server's URL.
    pub server: String,
    /// The runner's token (`POST /api/v1/runners`), or a site admin's API token.
    pub token: String,
    /// A name for people (shown as the stage's lease owner).
    pub name: String,
    /// Stages run at once.
    pub capacity: usize,
    /// Where workspaces are made.
    pub work_dir: PathBuf,
    /// Labels stages must ask for exactly (`node:` in the pipeline).
    pub labels: BTreeMap<String, String>,
    /// Built-in plugins run in this process (`image: skiff/deploy`), as the binary registers
    /// them for `skiff exec` and `skiff server`.
    pub builtins: Builtins,
}

/// Talks to `/rpc/v1` for one runner.
pub(crate) struct RpcClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl RpcClient {
    /// The server's URL, as this runner reaches it.
    pub(crate) fn server(&self) -> &str {
        &self.base
    }

    async fn post<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<reqwest::Response, Error> {
        let url = format!("{}/rpc/v1{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|e| Error::Internal(format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(text);
        Err(match status.as_u16() {
            409 => Error::Conflict(reason),
            401 => Error::Unauthorized(reason),
            403 => Error::Forbidden(reason),
            _ => Error::Internal(format!("{status} from {url}: {reason}")),
        })
    }

    fn lease(job: &Job) -> LeaseRequest {
        LeaseRequest {
            lease_token: job.lease_token.clone(),
        }
    }

    pub async fn heartbeat(&self, job: &Job) -> Result<LeaseState, Error> {
        let resp = self
            .post(
                &format!("/stages/{}/heartbeat", job.stage.id),
                &Self::lease(job),
            )
            .await?;
        let answer: LeaseAnswer = resp
            .json()
            .await
            .map_err(|e| Error::Internal(format!("bad heartbeat answer: {e}")))?;
        Ok(match answer.state.as_str() {
            "held" => LeaseState::Held,
            "cancelled" => LeaseState::Cancelled,
            _ => LeaseState::Lost,
        })
    }

    pub async fn logs(
        &self,
        job: &Job,
        step: i64,
        lines: &[(i64, String, i64)],
    ) -> Result<(), Error> {
        let body = LogsRequest {
            lease_token: job.lease_token.clone(),
            step,
            lines: lines.to_vec(),
        };
        self.post(&format!("/stages/{}/logs", job.stage.id), &body)
            .await?;
        Ok(())
    }

    pub async fn step(&self, job: &Job, step: &StepResult) -> Result<(), Error> {
        let body = StepRequest {
            lease_token: job.lease_token.clone(),
            step: step.clone(),
        };
        self.post(&format!("/stages/{}/steps", job.stage.id), &body)
            .await?;
        Ok(())
    }

    pub async fn finish(&self, job: &Job, outcome: &str, error: &str) -> Result<(), Error> {
        let body = FinishRequest {
            lease_token: job.lease_token.clone(),
            status: outcome.into(),
            error: error.into(),
        };
        self.post(&format!("/stages/{}/finish", job.stage.id), &body)
            .await?;
        Ok(())
    }

    pub async fn release(&self, job: &Job) -> Result<(), Error> {
        self.post(
            &format!("/stages/{}/release", job.stage.id),
            &Self::lease(job),
        )
        .await?;
        Ok(())
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>, Error> {
        let resp = self.post("/claim", req).await?;
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let job: Job = resp
            .json()
            .await
            .map_err(|e| Error::Internal(format!("bad claim answer: {e}")))?;
        Ok(Some(job))
    }
}

/// Runs the remote runner until `stop` is cancelled; running stages are then killed and handed
/// back to the queue.
pub async fn run(config: RemoteRunner, stop: CancellationToken) -> Result<(), Error> {
    let rpc = Arc::new(RpcClient {
        base: config.server.trim_end_matches('/').to_string(),
        token: config.token.clone(),
        http: reqwest::Client::new(),
    });
    std::fs::create_dir_all(&config.work_dir).map_err(Error::Io)?;
    let (os, arch) = host_platform();
    let request = ClaimRequest {
        name: config.name.clone(),
        os,
        arch,
        kinds: detect_kinds().await,
        labels: config
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        wait_secs: 25,
    };
    tracing::info!(server = %config.server, kinds = ?request.kinds, capacity = config.capacity, "remote runner started");
    let slots = Arc::new(tokio::sync::Semaphore::new(config.capacity.max(1)));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
        };
        let claimed = tokio::select! {
            claimed = rpc.claim(&request) => claimed,
            _ = stop.cancelled() => break,
        };
        match claimed {
            Ok(Some(job)) => {
                let io = Io::Remote(rpc.clone());
                let stop = stop.clone();
                let work = config.work_dir.clone();
                let builtins = config.builtins.clone();
                running.spawn(async move {
                    run_job(io, job, &work, &builtins, stop).await;
                    drop(permit);
                });
            }
            Ok(None) => drop(permit),
            Err(error @ (Error::Unauthorized(_) | Error::Forbidden(_))) => return Err(error),
            Err(error) => {
                drop(permit);
                tracing::warn!(%error, "claim failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
    Ok(())
}
