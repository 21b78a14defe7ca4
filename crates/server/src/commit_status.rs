//! Commit statuses back to the forge: when a build is created (pending), starts running and
//! ends, its state is posted to Gitea, GitHub or GitLab with each forge's own API, for
//! repositories whose forge settings have a token.
//!
//! The code that changes a build's status (build creation, stage claims and finishes from the
//! in-process runner and from `/rpc/v1`, cancel) sends a [`Notice`]; one reporter task turns
//! notices into reports in the order they came. Each state is claimed once in the database
//! (`forge_reports`, never going back to an earlier state), so a state is reported once even
//! with several replicas, and a periodic sweep catches transitions nobody noticed (a replica
//! that died between the change and the report). Reports of one build are posted in order by a
//! worker of that build; a failed post is retried with backoff and then logged. Nothing here
//! can fail or slow down a build.

use crate::forge::{ForgeKind, token_context};
use crate::{Shared, State};
use serde_json::{Value, json};
use skiff_store::{Build, Repo, status};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Attempts per report, and the wait before the second one (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// A build's worker ends after this long without a report.
const WORKER_IDLE: Duration = Duration::from_secs(60);
/// The sweep leaves builds younger than this to their notices, which carry the order of
/// fresh transitions (pending, then running).
const SWEEP_MIN_AGE: Duration = Duration::from_secs(10);

/// Something may have changed a build's status.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A build was just recorded, in this state.
    Created(Box<Build>),
    /// A build changed; `state` when the caller knows it (a claim makes a build `running`),
    /// else it is read from the database.
    Build {
        id: i64,
        state: Option<&'static str>,
    },
    /// A stage of some build finished.
    Stage(i64),
}

/// The sending side, kept in [`State`]: cheap, never blocks.
#[derive(Clone)]
pub(crate) struct Reporter {
    tx: mpsc::UnboundedSender<Notice>,
}

impl Reporter {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Notice>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    pub(crate) fn created(&self, build: &Build) {
        let _ = self.tx.send(Notice::Created(Box::new(build.clone())));
    }

    pub(crate) fn build_changed(&self, build_id: i64, state: Option<&'static str>) {
        let _ = self.tx.send(Notice::Build {
            id: build_id,
            state,
        });
    }

    pub(crate) fn stage_finished(&self, stage_id: i64) {
        let _ = self.tx.send(Notice::Stage(stage_id));
    }
}

/// One HTTP request that sets a commit status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StatusRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
    /// For logs: `acme/app#3 success`.
    pub what: String,
}

/// Starts the reporter task. It ends when `stop` is cancelled.
pub(crate) fn spawn(
    state: Shared,
    mut notices: mpsc::UnboundedReceiver<Notice>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("skiff/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(http) => http,
            Err(error) => {
                tracing::error!(%error, "commit statuses disabled: cannot build an HTTP client");
                return;
            }
        };
        let mut workers: HashMap<i64, mpsc::UnboundedSender<StatusRequest>> = HashMap::new();
        let mut sweep = tokio::time::interval((state.config.poll_interval * 10).max(FIRST_BACKOFF));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let found = tokio::select! {
                _ = stop.cancelled() => break,
                notice = notices.recv() => match notice {
                    Some(notice) => resolve(&state, notice).await,
                    None => break,
                },
                _ = sweep.tick() => match state
                    .store
                    .unreported_builds(skiff_store::now_ms() - SWEEP_MIN_AGE.as_millis() as i64, 100)
                    .await
                {
                    Ok(builds) => builds.into_iter().map(|b| {
                        let status = b.status.clone();
                        (b, status)
                    }).collect(),
                    Err(error) => {
                        tracing::warn!(%error, "commit statuses: cannot look for unreported builds");
                        Vec::new()
                    }
                },
            };
            for (build, build_state) in found {
                let Some(request) = claim(&state, &build, &build_state).await else {
                    continue;
                };
                workers.retain(|_, tx| !tx.is_closed());
                let request = match workers.get(&build.id) {
                    Some(tx) => match tx.send(request) {
                        Ok(()) => continue,
                        Err(mpsc::error::SendError(request)) => request,
                    },
                    None => request,
                };
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(request);
                workers.insert(build.id, tx);
                tokio::spawn(worker(http.clone(), rx, stop.clone()));
            }
        }
    })
}

/// The build a notice is about and the state to report.
async fn resolve(state: &State, notice: Notice) -> Vec<(Build, String)> {
    let store = &state.store;
    let (build, known) = match notice {
        Notice::Created(build) => {
            let status = build.status.clone();
            return vec![(*build, status)];
        }
        Notice::Build { id, state } => (store.build_by_id(id).await, state),
        Notice::Stage(stage_id) => match store.stage(stage_id).await {
            Ok(Some(stage)) => (store.build_by_id(stage.build_id).await, None),
            Ok(None) => return Vec::new(),
            Err(error) => (Err(error), None),
        },
    };
    match build {
        Ok(Some(build)) => {
            let status = known
                .map(String::from)
                .unwrap_or_else(|| build.status.clone());
            vec![(build, status)]
        }
        Ok(None) => Vec::new(),
        Err(error) => {
            tracing::warn!(%error, "commit statuses: cannot read a build");
            Vec::new()
        }
    }
}

/// Claims the report of `build_state` and builds its request, or `None` when the repository
/// reports no statuses or this state was reported already (or a later one).
async fn claim(state: &State, build: &Build, build_state: &str) -> Option<StatusRequest> {
    let store = &state.store;
    let result = async {
        let Some(forge) = store.forge(build.repo_id).await? else {
            return Ok(None);
        };
        if !forge.has_token() || build.created < forge.since {
            return Ok(None);
        }
        let Ok(kind) = ForgeKind::parse(&forge.kind) else {
            return Ok(None);
        };
        let Some(repo) = store.repo_by_id(build.repo_id).await? else {
            return Ok(None);
        };
        if !store.claim_forge_report(build.id, build_state).await? {
            return Ok(None);
        }
        let token = state
            .key
            .open(&token_context(repo.id), &forge.sealed_token)?;
        let token = String::from_utf8_lossy(&token).into_owned();
        Ok::<_, crate::Error>(Some(request(
            kind,
            &forge.api_url,
            &token,
            &repo,
            build,
            build_state,
            &state.config.public_url,
        )))
    }
    .await;
    match result {
        Ok(request) => request,
        Err(error) => {
            tracing::warn!(%error, build = build.id, "commit statuses: cannot prepare a report");
            None
        }
    }
}

/// Posts one build's reports in order, each with retries; ends when idle or stopped.
async fn worker(
    http: reqwest::Client,
    mut requests: mpsc::UnboundedReceiver<StatusRequest>,
    stop: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            request = requests.recv() => match request {
                Some(request) => request,
                None => return,
            },
            _ = tokio::time::sleep(WORKER_IDLE) => return,
            _ = stop.cancelled() => return,
        };
        post_with_retries(&http, &request, &stop).await;
    }
}

async fn post_with_retries(
    http: &reqwest::Client,
    request: &StatusRequest,
    stop: &CancellationToken,
) {
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let mut builder = http.post(&request.url).json(&request.body);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let (retry, reason) = match builder.send().await {
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(report = %request.what, "commit status reported");
                return;
            }
            Ok(resp) => {
                let code = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let text: String = text.chars().take(300).collect();
                (
                    code.is_server_error() || code.as_u16() == 429,
                    format!("{code}: {text}"),
                )
            }
            Err(error) => (true, error.to_string()),
        };
        if !retry || attempt == ATTEMPTS {
            tracing::warn!(report = %request.what, url = %request.url, attempt, %reason,
                "commit status not reported");
            return;
        }
        tracing::info!(report = %request.what, attempt, %reason, "commit status failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        wait *= 2;
    }
}

/// The status label: `continuous-integration/skiff/push`, `…/pr`, `…/tag`,
/// `…/promote/<target>` like Drone's `continuous-integration/drone/…`.
pub(crate) fn status_context(build: &Build) -> String {
    let suffix = match build.event.as_str() {
        "pull_request" => "pr".to_string(),
        "promote" | "rollback" => format!("{}/{}", build.event, build.deploy_to),
        event => event.to_string(),
    };
    format!("continuous-integration/skiff/{suffix}")
}

/// Drone's words for a state.
fn description(build_state: &str) -> &'static str {
    match build_state {
        status::PENDING | status::WAITING => "Build is pending",
        status::RUNNING => "Build is running",
        status::SUCCESS => "Build is passing",
        status::FAILURE => "Build is failing",
        status::KILLED => "Build was killed",
        status::SKIPPED => "Build was skipped",
        _ => "Build encountered an error",
    }
}

/// A build state in the forge's words. GitHub and Gitea know pending, success, failure and
/// error (a running build is `pending` there); GitLab has running, failed and canceled.
pub(crate) fn forge_state(kind: ForgeKind, build_state: &str) -> &'static str {
    match (kind, build_state) {
        (_, status::PENDING | status::WAITING) => "pending",
        (ForgeKind::GitLab, status::RUNNING) => "running",
        (_, status::RUNNING) => "pending",
        (_, status::SUCCESS) => "success",
        (ForgeKind::GitLab, status::FAILURE | status::ERROR) => "failed",
        (ForgeKind::GitLab, status::KILLED) => "canceled",
        (ForgeKind::GitLab, status::SKIPPED) => "skipped",
        (_, status::SKIPPED) => "success",
        (_, status::FAILURE) => "failure",
        _ => "error",
    }
}

/// The build's page: Drone's link form, `{public_url}/{owner}/{name}/{number}`.
pub(crate) fn build_link(public_url: &str, repo: &Repo, build: &Build) -> String {
    format!(
        "{}/{}/{}/{}",
        public_url.trim_end_matches('/'),
        repo.owner,
        repo.name,
        build.number
    )
}

/// The request that sets `build_state` on the build's commit.
pub(crate) fn request(
    kind: ForgeKind,
    api_url: &str,
    token: &str,
    repo: &Repo,
    build: &Build,
    build_state: &str,
    public_url: &str,
) -> StatusRequest {
    let api_url = api_url.trim_end_matches('/');
    let state = forge_state(kind, build_state);
    let context = status_context(build);
    let target_url = build_link(public_url, repo, build);
    let description = description(build_state);
    let what = format!("{}#{} {state} ({})", repo.slug(), build.number, kind.name());
    match kind {
        ForgeKind::GitHub => StatusRequest {
            url: format!(
                "{api_url}/repos/{}/{}/statuses/{}",
                repo.owner, repo.name, build.sha
            ),
            headers: vec![
                ("Authorization", format!("Bearer {token}")),
                ("Accept", "application/vnd.github+json".into()),
                ("X-GitHub-Api-Version", "2022-11-28".into()),
            ],
            body: json!({"state": state, "target_url": target_url,
                         "description": description, "context": context}),
            what,
        },
        ForgeKind::Gitea => StatusRequest {
            url: format!(
                "{api_url}/api/v1/repos/{}/{}/statuses/{}",
                repo.owner, repo.name, build.sha
            ),
            headers: vec![("Authorization", format!("token {token}"))],
            body: json!({"state": state, "target_url": target_url,
                         "description": description, "context": context}),
            what,
        },
        ForgeKind::GitLab => StatusRequest {
            url: format!(
                "{api_url}/api/v4/projects/{}/statuses/{}",
                percent_encode(&repo.slug()),
                build.sha
            ),
            headers: vec![("PRIVATE-TOKEN", token.to_string())],
            body: json!({"state": state, "name": context, "target_url": target_url,
                         "description": description}),
            what,
        },
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (`acme/app` → `acme%2Fapp`).
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_in_each_forges_words() {
        assert_eq!(forge_state(ForgeKind::GitHub, status::RUNNING), "pending");
        assert_eq!(forge_state(ForgeKind::Gitea, status::KILLED), "error");
        assert_eq!(forge_state(ForgeKind::GitHub, status::FAILURE), "failure");
        assert_eq!(forge_state(ForgeKind::GitLab, status::RUNNING), "running");
        assert_eq!(forge_state(ForgeKind::GitLab, status::ERROR), "failed");
        assert_eq!(forge_state(ForgeKind::GitLab, status::KILLED), "canceled");
        assert_eq!(percent_encode("acme/my.app"), "acme%2Fmy.app");
    }
}
