//! Rows as plain typed values: what crosses from the store to the server and the API. Every
//! field decodes the same from SQLite and PostgreSQL (i64, String, bool, bytes).

use serde::{Deserialize, Serialize};

/// Build, stage and step statuses (Drone's words).
pub mod status {
    pub const PENDING: &str = "pending";
    /// A stage waiting for the stages it depends on.
    pub const WAITING: &str = "waiting";
    pub const RUNNING: &str = "running";
    pub const SUCCESS: &str = "success";
    pub const FAILURE: &str = "failure";
    pub const KILLED: &str = "killed";
    pub const SKIPPED: &str = "skipped";
    pub const ERROR: &str = "error";
    /// A build (and its stages) waiting for someone to approve it; no runner claims it.
    pub const BLOCKED: &str = "blocked";
    /// A blocked build someone declined: it never runs.
    pub const DECLINED: &str = "declined";

    /// A status nothing changes any more.
    pub fn is_done(status: &str) -> bool {
        matches!(
            status,
            SUCCESS | FAILURE | KILLED | SKIPPED | ERROR | DECLINED
        )
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub login: String,
    #[serde(skip)]
    pub password_hash: String,
    pub admin: bool,
    pub created: i64,
    /// A disabled account keeps its row but cannot log in or use its tokens.
    pub active: bool,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct Repo {
    pub id: i64,
    pub owner: String,
    pub name: String,
    pub git_url: String,
    pub config_path: String,
    pub default_branch: String,
    pub trusted: bool,
    pub timeout_secs: i64,
    pub visibility: String,
    pub fork_pr_secrets: bool,
    #[serde(skip)]
    pub webhook_secret: String,
    pub active: bool,
    pub build_counter: i64,
    pub created: i64,
    /// Which events wait for approval: `none`, `forks`, `pull_requests`, `all`.
    pub approval: String,
    /// Stages of this repository running at once; 0 = unlimited.
    pub throttle: i64,
    /// No builds for pull requests from forks.
    pub ignore_forks: bool,
    /// No builds for pull requests at all.
    pub ignore_pull_requests: bool,
    /// A new pull request build cancels older pending builds of the same pull request.
    pub cancel_pulls: bool,
    /// A new push build cancels older pending builds of the same branch.
    pub cancel_push: bool,
    /// Auto-cancel (`cancel_push`, `cancel_pulls`) also stops older builds already running.
    pub cancel_running: bool,
    /// Skiff hosts the repository (a bare repository in the data directory, served over git's
    /// smart HTTP); `git_url` is then the server's own URL for it.
    pub hosted: bool,
}

impl Repo {
    pub fn slug(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// What `add repo` needs.
#[derive(Debug, Clone)]
pub struct NewRepo {
    pub owner: String,
    pub name: String,
    pub git_url: String,
    pub config_path: String,
    pub default_branch: String,
    pub trusted: bool,
    pub timeout_secs: i64,
    pub visibility: String,
    pub fork_pr_secrets: bool,
    pub webhook_secret: String,
    pub hosted: bool,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct Build {
    pub id: i64,
    pub repo_id: i64,
    pub number: i64,
    pub event: String,
    pub action: String,
    pub git_ref: String,
    pub branch: String,
    pub target_branch: String,
    pub sha: String,
    pub before_sha: String,
    pub message: String,
    pub author: String,
    pub author_email: String,
    pub fork: bool,
    /// JSON object of manual-run parameters.
    pub params: String,
    pub status: String,
    pub error: String,
    pub delivery_id: Option<String>,
    pub created: i64,
    pub started: i64,
    pub finished: i64,
    /// The target of a `promote`/`rollback` build.
    pub deploy_to: String,
    /// The cron job's name for a `cron` build.
    pub cron: String,
    /// The pipeline file the build was planned from (empty for builds made before it was kept,
    /// and for builds whose file could not be read; empty in listings). Not part of the API's
    /// build.
    #[serde(default, skip_serializing)]
    pub config: String,
}

/// The event a build is made for, before it has a number.
#[derive(Debug, Clone, Default)]
pub struct NewBuild {
    pub repo_id: i64,
    pub event: String,
    pub action: String,
    pub git_ref: String,
    pub branch: String,
    pub target_branch: String,
    pub sha: String,
    pub before_sha: String,
    pub message: String,
    pub author: String,
    pub author_email: String,
    pub fork: bool,
    pub params: String,
    /// The forge's delivery id: a second build with the same one is refused.
    pub delivery_id: Option<String>,
    /// `pending` for a build to run, `blocked` for one that waits for approval, `error` for one
    /// that failed before running.
    pub status: String,
    pub error: String,
    pub deploy_to: String,
    pub cron: String,
    /// The pipeline file text the stages were planned from.
    pub config: String,
    pub stages: Vec<NewStage>,
}

#[derive(Debug, Clone, Default)]
pub struct NewStage {
    pub name: String,
    /// The pipeline type: docker, exec, kubernetes.
    pub kind: String,
    pub os: String,
    pub arch: String,
    /// `k=v,k2=v2`, sorted: a runner must have exactly these labels.
    pub labels: String,
    pub depends_on: Vec<String>,
    pub on_success: bool,
    pub on_failure: bool,
    /// Step names in plan order.
    pub steps: Vec<String>,
    /// The pipeline's `concurrency: {limit: N}`: running stages of this name in the
    /// repository; 0 = unlimited.
    pub concurrency: i64,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct Stage {
    pub id: i64,
    pub build_id: i64,
    pub number: i64,
    pub name: String,
    pub kind: String,
    pub os: String,
    pub arch: String,
    pub labels: String,
    /// JSON array of stage names.
    pub depends_on: String,
    pub on_success: bool,
    pub on_failure: bool,
    pub status: String,
    pub error: String,
    pub lease_owner: String,
    #[serde(skip)]
    pub lease_token: String,
    pub lease_until: i64,
    pub attempts: i64,
    pub started: i64,
    pub finished: i64,
    /// The pipeline's `concurrency: {limit: N}` (0 = unlimited), enforced by the claim.
    #[serde(default)]
    pub concurrency: i64,
}

impl Stage {
    pub fn dependencies(&self) -> Vec<String> {
        serde_json::from_str(&self.depends_on).unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct Step {
    pub id: i64,
    pub stage_id: i64,
    pub number: i64,
    pub name: String,
    pub status: String,
    pub exit_code: i64,
    pub error: String,
    pub started: i64,
    pub finished: i64,
}

/// One stored, already masked log line.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct LogRow {
    pub id: i64,
    pub step_id: i64,
    pub pos: i64,
    pub line: String,
    pub time_secs: i64,
}

/// A secret as stored: the value sealed by the server's key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SecretRow {
    pub id: i64,
    pub repo_id: i64,
    pub name: String,
    pub sealed: Vec<u8>,
    pub pull_request: bool,
    pub created: i64,
}

/// A cron schedule of a repository (Drone's six fields, seconds first, or `@daily` etc.).
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct CronJob {
    pub id: i64,
    pub repo_id: i64,
    pub name: String,
    pub expr: String,
    pub branch: String,
    /// Unix ms of the next run.
    pub next_run: i64,
    pub created: i64,
}
