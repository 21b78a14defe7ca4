//! Gates between an event and a running build, as Drone and Woodpecker users know them
//! (docs/server.md, "Gates"):
//!
//! - ignore flags: `ignore_pull_requests` and `ignore_forks` drop pull request events before a
//!   build (and its number) exists (Drone's trigger, ci.md §2.3 step 2);
//! - approval: the repository's `approval` policy (`none`, `forks` — the default —,
//!   `pull_requests`, `all`; Woodpecker's `require_approval`) records matching builds as
//!   `blocked`, with blocked stages no runner claims, until someone approves (queued) or
//!   declines (`declined`) them. Builds a person starts through the API (`custom`, `promote`,
//!   `rollback`) are never blocked: the person who could approve started them;
//! - auto-cancel: with `cancel_push`/`cancel_pulls` a new build cancels older builds of the same
//!   branch or pull request that have not started, and with `cancel_running` also those that
//!   are running (their steps are killed as by a cancel);
//! - the repository `throttle` and the pipeline `concurrency: {limit: N}` are enforced by the
//!   queue's claim statement (`skiff_store::queue`); here they are only settings.
//!
//! Who may approve or decline (write) and change settings (admin) is decided by `auth::repo_as`.

use crate::api::{build_json, find_build};
use crate::auth::{self, Authed, Role};
use crate::builds::Event;
use crate::{Error, Shared, State};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use serde::Deserialize;
use serde_json::Value;
use skiff_store::{Build, Repo, RepoSettings, User};

/// The values of a repository's `approval` setting.
pub(crate) const APPROVAL_POLICIES: [&str; 4] = ["none", "forks", "pull_requests", "all"];

/// Why the repository's ignore flags drop `event`, if they do.
pub(crate) fn ignored_event(repo: &Repo, event: &Event) -> Option<&'static str> {
    if event.event != "pull_request" {
        return None;
    }
    if repo.ignore_pull_requests {
        return Some("the repository ignores pull requests (ignore_pull_requests)");
    }
    if repo.ignore_forks && event.fork {
        return Some("the repository ignores pull requests from forks (ignore_forks)");
    }
    None
}

/// Whether a build of `event` (from a fork or not) waits for approval under `policy`.
pub(crate) fn needs_approval(policy: &str, event: &str, fork: bool) -> bool {
    if matches!(event, "custom" | "promote" | "rollback") {
        return false;
    }
    match policy {
        "none" => false,
        "pull_requests" => event == "pull_request",
        "all" => true,
        // `forks`, and anything unexpected: the safe default.
        _ => event == "pull_request" && fork,
    }
}

/// After a build is recorded: with `cancel_push` (push events) or `cancel_pulls` (pull
/// requests), older builds of the same ref that have not started are cancelled, and with
/// `cancel_running` running ones too. Failures are
/// logged, not returned: the new build exists either way.
pub(crate) async fn cancel_superseded(state: &State, repo: &Repo, build: &Build) {
    let wanted = match build.event.as_str() {
        "push" => repo.cancel_push,
        "pull_request" => repo.cancel_pulls,
        _ => false,
    };
    if !wanted {
        return;
    }
    let older = match state
        .store
        .superseded_builds(build, repo.cancel_running)
        .await
    {
        Ok(older) => older,
        Err(error) => {
            tracing::warn!(%error, repo = %repo.slug(), "cannot look for superseded builds");
            return;
        }
    };
    for old in older {
        match state.store.cancel_build(&old).await {
            Ok(()) => {
                tracing::info!(repo = %repo.slug(), number = old.number, by = build.number, "superseded build cancelled")
            }
            Err(error) => {
                tracing::warn!(%error, repo = %repo.slug(), number = old.number, "cannot cancel a superseded build")
            }
        }
    }
}

/// `POST /api/v1/repos/{o}/{n}/builds/{N}/approve`: a blocked build is queued and runners
/// are woken. 409 when the build is not blocked.
pub(crate) async fn approve(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
    let build = find_build(&state, &repo, number).await?;
    if !state.store.approve_build(build.id).await? {
        return Err(not_blocked(&state, &repo, number).await);
    }
    tracing::info!(repo = %repo.slug(), number, by = %user.login, "build approved");
    state.queued.notify_waiters();
    state.queued.notify_one();
    let build = find_build(&state, &repo, number).await?;
    Ok(Json(build_json(&state, &build).await?))
}

/// `POST …/builds/{N}/decline`: a blocked build ends `declined`. 409 when it is not blocked.
pub(crate) async fn decline(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
    let build = find_build(&state, &repo, number).await?;
    if !state.store.decline_build(build.id).await? {
        return Err(not_blocked(&state, &repo, number).await);
    }
    tracing::info!(repo = %repo.slug(), number, by = %user.login, "build declined");
    let build = find_build(&state, &repo, number).await?;
    Ok(Json(build_json(&state, &build).await?))
}

async fn not_blocked(state: &State, repo: &Repo, number: i64) -> Error {
    match find_build(state, repo, number).await {
        Ok(build) => Error::Conflict(format!(
            "build #{number} is not waiting for approval ({})",
            build.status
        )),
        Err(error) => error,
    }
}

/// The settings of a repository that `PATCH /api/v1/repos/{o}/{n}` (and `POST /repos`, for
/// the gate settings) accepts; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsPatch {
    pub config_path: Option<String>,
    pub default_branch: Option<String>,
    pub trusted: Option<bool>,
    pub timeout_secs: Option<i64>,
    pub visibility: Option<String>,
    pub fork_pr_secrets: Option<bool>,
    pub active: Option<bool>,
    pub approval: Option<String>,
    pub throttle: Option<i64>,
    pub ignore_forks: Option<bool>,
    pub ignore_pull_requests: Option<bool>,
    pub cancel_pulls: Option<bool>,
    pub cancel_push: Option<bool>,
    pub cancel_running: Option<bool>,
}

impl SettingsPatch {
    /// Checks every given value (400 with the reason) and who may set it (403).
    pub(crate) fn validate(self, user: &User) -> Result<RepoSettings, Error> {
        let bad = |reason: &str| Err(Error::BadRequest(reason.into()));
        if self.trusted.is_some() && !user.admin {
            return Err(Error::Forbidden(
                "only an admin can change whether a repository is trusted".into(),
            ));
        }
        if self
            .config_path
            .as_ref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return bad("config_path is empty");
        }
        if self
            .default_branch
            .as_ref()
            .is_some_and(|b| b.trim().is_empty())
        {
            return bad("default_branch is empty");
        }
        if self.timeout_secs.is_some_and(|t| t < 1) {
            return bad("timeout_secs must be at least 1");
        }
        if self
            .visibility
            .as_ref()
            .is_some_and(|v| !matches!(v.as_str(), "private" | "internal" | "public"))
        {
            return bad("visibility is private, internal or public");
        }
        if self
            .approval
            .as_ref()
            .is_some_and(|a| !APPROVAL_POLICIES.contains(&a.as_str()))
        {
            return bad("approval is none, forks, pull_requests or all");
        }
        if self.throttle.is_some_and(|t| t < 0) {
            return bad("throttle must be 0 (unlimited) or more");
        }
        Ok(RepoSettings {
            config_path: self.config_path,
            default_branch: self.default_branch,
            trusted: self.trusted,
            timeout_secs: self.timeout_secs,
            visibility: self.visibility,
            fork_pr_secrets: self.fork_pr_secrets,
            active: self.active,
            approval: self.approval,
            throttle: self.throttle,
            ignore_forks: self.ignore_forks,
            ignore_pull_requests: self.ignore_pull_requests,
            cancel_pulls: self.cancel_pulls,
            cancel_push: self.cancel_push,
            cancel_running: self.cancel_running,
        })
    }
}

/// `PATCH /api/v1/repos/{o}/{n}` with any of [`SettingsPatch`]'s fields: the updated
/// repository. The body is parsed here so a bad one gets 400 `{"error": …}`.
pub(crate) async fn update_repo(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Repo>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    let patch: SettingsPatch = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("bad repository settings: {e}")))?;
    let settings = patch.validate(&user)?;
    if repo.hosted
        && let Some(branch) = &settings.default_branch
    {
        crate::hosting::check_branch_name(branch).await?;
    }
    let updated = state
        .store
        .update_repo(repo.id, &settings)
        .await?
        .ok_or_else(|| Error::NotFound(format!("repository {owner}/{name} not found")))?;
    // A hosted repository's HEAD follows its default branch (what a clone checks out).
    if updated.hosted
        && let Some(branch) = &settings.default_branch
        && let Err(error) = crate::hosting::set_default_branch(&state, &updated, branch).await
    {
        tracing::warn!(%error, repo = %updated.slug(), "cannot move the hosted repository's HEAD");
    }
    tracing::info!(repo = %updated.slug(), by = %user.login, "repository settings changed");
    Ok(Json(updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_policies() {
        // (policy, event, fork) -> blocked
        let cases = [
            ("forks", "pull_request", true, true),
            ("forks", "pull_request", false, false),
            ("forks", "push", false, false),
            ("none", "pull_request", true, false),
            ("pull_requests", "pull_request", false, true),
            ("pull_requests", "push", false, false),
            ("all", "push", false, true),
            ("all", "tag", false, true),
            ("all", "cron", false, true),
            ("all", "custom", false, false),
            ("all", "promote", false, false),
            ("all", "rollback", false, false),
            ("unexpected", "pull_request", true, true),
        ];
        for (policy, event, fork, blocked) in cases {
            assert_eq!(
                needs_approval(policy, event, fork),
                blocked,
                "{policy} {event} fork={fork}"
            );
        }
    }
}
