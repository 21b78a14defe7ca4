//! The HTTP surface: health and readiness, forge webhooks, and the JSON API under `/api/v1`
//! that the CLI drives (login, repositories, builds, logs, cancel/restart, manual runs,
//! write-only secrets). Every handler returns `Result<_, Error>`; `error.rs` turns errors into
//! a status and `{"error": reason}`. Every repository handler checks the caller's permission
//! with `auth::repo_as`/`auth::require` and the `Role` its action needs; login, accounts,
//! members, organisation secrets and runner tokens are in `people.rs`.

use crate::auth::{self, Authed, Caller, Role};
use crate::builds::{self, Event, Outcome};
use crate::{Error, Shared, State, webhook};
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use skiff_store::{Build, NewRepo, Repo, status};
use std::collections::{BTreeMap, HashMap, VecDeque};

pub(crate) fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(crate::openapi::json))
        .route("/openapi.yaml", get(crate::openapi::yaml))
        .route("/user", get(whoami))
        .route("/repos", get(list_repos).post(add_repo))
        .route(
            "/repos/{owner}/{name}",
            get(repo_info).patch(crate::gates::update_repo),
        )
        .route(
            "/repos/{owner}/{name}/builds",
            get(list_builds).post(run_build),
        )
        .route("/repos/{owner}/{name}/builds/{number}", get(build_info))
        .route(
            "/repos/{owner}/{name}/builds/{number}/cancel",
            post(cancel_build),
        )
        .route(
            "/repos/{owner}/{name}/builds/{number}/restart",
            post(restart_build),
        )
        .route(
            "/repos/{owner}/{name}/builds/{number}/approve",
            post(crate::gates::approve),
        )
        .route(
            "/repos/{owner}/{name}/builds/{number}/decline",
            post(crate::gates::decline),
        )
        .route(
            "/repos/{owner}/{name}/builds/{number}/logs",
            get(build_logs),
        )
        .route(
            "/repos/{owner}/{name}/builds/{number}/logs/stream",
            get(stream_logs),
        )
        .route(
            "/repos/{owner}/{name}/builds/{number}/promote",
            post(promote),
        )
        .route(
            "/repos/{owner}/{name}/builds/{number}/rollback",
            post(rollback),
        )
        .route(
            "/repos/{owner}/{name}/crons",
            get(list_crons).post(add_cron),
        )
        .route(
            "/repos/{owner}/{name}/crons/{cron}",
            axum::routing::delete(delete_cron),
        )
        .route(
            "/repos/{owner}/{name}/secrets",
            get(list_secrets).post(put_secret),
        )
        .route(
            "/repos/{owner}/{name}/secrets/{secret}",
            axum::routing::delete(delete_secret),
        )
        .route(
            "/repos/{owner}/{name}/forge",
            get(crate::forge::get_settings)
                .put(crate::forge::put_settings)
                .delete(crate::forge::delete_settings),
        )
        .merge(crate::people::router())
        .fallback(|| async { Error::NotFound("no such API endpoint".into()) });
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/hook/gitea", post(webhook::gitea))
        .route("/hook/github", post(webhook::github))
        .route("/hook/gitlab", post(webhook::gitlab))
        .nest("/api/v1", api)
        .nest("/rpc/v1", crate::rpc::router())
        .merge(crate::hosting::router())
        .with_state(state)
        .layer(axum::middleware::map_response(
            crate::error::json_client_errors,
        ))
}

async fn ready(AxState(state): AxState<Shared>) -> Result<&'static str, Error> {
    state
        .store
        .ping()
        .await
        .map_err(|e| Error::Unavailable(format!("the database does not answer: {e}")))?;
    Ok("ready")
}

/// Prometheus text format: builds and stages by status, users and repositories.
async fn metrics(AxState(state): AxState<Shared>) -> Result<String, Error> {
    use std::fmt::Write;
    let (builds, stages) = state.store.status_counts().await?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP skiff_ci_builds Builds by status.\n# TYPE skiff_ci_builds gauge"
    );
    for (status, n) in builds {
        let _ = writeln!(out, "skiff_ci_builds{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP skiff_ci_stages Stages by status (pending: queued).\n# TYPE skiff_ci_stages gauge"
    );
    for (status, n) in stages {
        let _ = writeln!(out, "skiff_ci_stages{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP skiff_ci_repos Repositories.\n# TYPE skiff_ci_repos gauge"
    );
    let _ = writeln!(out, "skiff_ci_repos {}", state.store.repos().await?.len());
    let _ = writeln!(out, "# HELP skiff_users Users.\n# TYPE skiff_users gauge");
    let _ = writeln!(out, "skiff_users {}", state.store.count_users().await?);
    Ok(out)
}

async fn whoami(Authed(user): Authed) -> Json<Value> {
    Json(json!(user))
}

/// The repositories the caller may read: public ones for anyone, internal ones for any
/// logged-in user, private ones for their owner, members and site admins.
async fn list_repos(
    AxState(state): AxState<Shared>,
    Caller(caller): Caller,
) -> Result<Json<Vec<Repo>>, Error> {
    let all = state.store.repos().await?;
    if caller.as_ref().is_some_and(|u| u.admin) {
        return Ok(Json(all));
    }
    let mine: std::collections::HashSet<i64> = match &caller {
        Some(user) => state
            .store
            .repo_roles_of(user.id)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
        None => Default::default(),
    };
    Ok(Json(
        all.into_iter()
            .filter(|r| match r.visibility.as_str() {
                "public" => true,
                "internal" => caller.is_some(),
                _ => mine.contains(&r.id),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRepo {
    /// `owner/name`.
    slug: String,
    /// Empty or absent: Skiff hosts the repository.
    #[serde(default)]
    git_url: Option<String>,
    #[serde(default)]
    config_path: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
    #[serde(default)]
    webhook_secret: Option<String>,
    #[serde(default)]
    trusted: bool,
    #[serde(default)]
    timeout_secs: Option<i64>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    fork_pr_secrets: bool,
    /// Commit statuses: the forge (`gitea`, `github`, `gitlab`), its URL and API token.
    #[serde(default)]
    forge: Option<String>,
    #[serde(default)]
    forge_url: Option<String>,
    #[serde(default)]
    forge_token: Option<String>,
    /// Gate settings (`crate::gates`), applied right after the repository is made.
    #[serde(default)]
    approval: Option<String>,
    #[serde(default)]
    throttle: Option<i64>,
    #[serde(default)]
    ignore_forks: Option<bool>,
    #[serde(default)]
    ignore_pull_requests: Option<bool>,
    #[serde(default)]
    cancel_pulls: Option<bool>,
    #[serde(default)]
    cancel_push: Option<bool>,
    #[serde(default)]
    cancel_running: Option<bool>,
}

async fn add_repo(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Json(req): Json<AddRepo>,
) -> Result<(StatusCode, Json<Value>), Error> {
    let (owner, name) = split_slug(&req.slug)?;
    let external = req.git_url.as_deref().map(str::trim).unwrap_or_default();
    let hosted = external.is_empty();
    for (field, value) in [
        ("git_url", req.git_url.as_ref()),
        ("config_path", req.config_path.as_ref()),
        ("default_branch", req.default_branch.as_ref()),
        ("webhook_secret", req.webhook_secret.as_ref()),
    ] {
        no_nul(field, value.map_or("", String::as_str))?;
    }
    if req.trusted && !user.admin {
        return Err(Error::Forbidden(
            "only an admin can mark a repository trusted".into(),
        ));
    }
    let visibility = req.visibility.unwrap_or_else(|| "private".into());
    if !matches!(visibility.as_str(), "private" | "internal" | "public") {
        return Err(Error::BadRequest(
            "visibility is private, internal or public".into(),
        ));
    }
    let forge = crate::forge::input_of(req.forge, req.forge_url, req.forge_token)?;
    let gates = crate::gates::SettingsPatch {
        approval: req.approval,
        throttle: req.throttle,
        ignore_forks: req.ignore_forks,
        ignore_pull_requests: req.ignore_pull_requests,
        cancel_pulls: req.cancel_pulls,
        cancel_push: req.cancel_push,
        cancel_running: req.cancel_running,
        ..Default::default()
    }
    .validate(&user)?;
    let secret = req
        .webhook_secret
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| crate::crypto::random_token(20));
    let default_branch = req.default_branch.unwrap_or_else(|| "main".into());
    let git_url = if hosted {
        crate::hosting::create(&state, owner, name, &default_branch).await?
    } else {
        external.to_string()
    };
    let created = state
        .store
        .create_repo(&NewRepo {
            owner: owner.into(),
            name: name.into(),
            git_url,
            config_path: req
                .config_path
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| ".drone.yml".into()),
            default_branch,
            trusted: req.trusted,
            timeout_secs: req.timeout_secs.unwrap_or(3600).max(1),
            visibility,
            fork_pr_secrets: req.fork_pr_secrets,
            webhook_secret: secret.clone(),
            hosted,
        })
        .await;
    let repo = match created {
        Ok(repo) => repo,
        Err(e) => {
            // The name was taken: the bare repository made for it is not the other one's.
            if hosted {
                crate::hosting::remove_new(&state, owner, name).await;
            }
            return Err(e.into());
        }
    };
    // Whoever adds a repository administers it.
    state.store.set_repo_owner(repo.id, user.id).await?;
    let repo = state
        .store
        .update_repo(repo.id, &gates)
        .await?
        .unwrap_or(repo);
    // The secret is shown once, to configure the forge's webhook.
    let mut body = json!(repo);
    body["webhook_secret"] = json!(secret);
    if let Some(forge) = forge {
        let settings = crate::forge::apply(&state, &repo, &forge).await?;
        body["forge"] = crate::forge::settings_json(Some(&settings));
    }
    Ok((StatusCode::CREATED, Json(body)))
}

fn split_slug(slug: &str) -> Result<(&str, &str), Error> {
    match slug.split_once('/') {
        Some((o, n)) if valid_name(o) && valid_name(n) => Ok((o, n)),
        _ => Err(Error::BadRequest(format!(
            "`{slug}` is not OWNER/NAME (letters, digits, '-', '_', '.')"
        ))),
    }
}

/// PostgreSQL cannot store a NUL character in text, and no field needs one.
fn no_nul(field: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::BadRequest(format!(
            "{field} contains a NUL character"
        )));
    }
    Ok(())
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(crate) async fn find_build(state: &State, repo: &Repo, number: i64) -> Result<Build, Error> {
    state
        .store
        .build(repo.id, number)
        .await?
        .ok_or_else(|| Error::NotFound(format!("build {}#{number} not found", repo.slug())))
}

async fn repo_info(
    AxState(state): AxState<Shared>,
    Caller(caller): Caller,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<Repo>, Error> {
    Ok(Json(
        auth::repo_as(&state, &owner, &name, caller.as_ref(), Role::Read).await?,
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    limit: Option<i64>,
}

async fn list_builds(
    AxState(state): AxState<Shared>,
    Caller(caller): Caller,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Build>>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, caller.as_ref(), Role::Read).await?;
    let limit = q.limit.unwrap_or(25).clamp(1, 500);
    Ok(Json(state.store.builds(repo.id, limit).await?))
}

/// A build with its stages and their steps.
pub(crate) async fn build_json(state: &State, build: &Build) -> Result<Value, Error> {
    let mut stages = Vec::new();
    for stage in state.store.stages(build.id).await? {
        let steps = state.store.steps(stage.id).await?;
        let mut value = json!(stage);
        value["steps"] = json!(steps);
        stages.push(value);
    }
    let mut value = json!(build);
    value["stages"] = json!(stages);
    Ok(value)
}

async fn build_info(
    AxState(state): AxState<Shared>,
    Caller(caller): Caller,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, caller.as_ref(), Role::Read).await?;
    let build = find_build(&state, &repo, number).await?;
    Ok(Json(build_json(&state, &build).await?))
}

#[derive(Deserialize)]
struct LogQuery {
    /// Only lines of this stage number.
    #[serde(default)]
    stage: Option<i64>,
    /// Only lines of this step name.
    #[serde(default)]
    step: Option<String>,
}

/// Every stored line of a build, grouped by stage and step.
async fn build_logs(
    AxState(state): AxState<Shared>,
    Caller(caller): Caller,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, caller.as_ref(), Role::Read).await?;
    let build = find_build(&state, &repo, number).await?;
    let mut out = Vec::new();
    for stage in state.store.stages(build.id).await? {
        if q.stage.is_some_and(|n| n != stage.number) {
            continue;
        }
        for step in state.store.steps(stage.id).await? {
            if q.step.as_ref().is_some_and(|s| s != &step.name) {
                continue;
            }
            let lines: Vec<Value> = state
                .store
                .logs(step.id, 0)
                .await?
                .into_iter()
                .map(|l| json!({ "pos": l.pos, "out": l.line, "time": l.time_secs }))
                .collect();
            out.push(json!({
                "stage": stage.name,
                "stage_number": stage.number,
                "step": step.name,
                "step_number": step.number,
                "status": step.status,
                "lines": lines,
            }));
        }
    }
    Ok(Json(
        json!({ "build": build.number, "status": build.status, "steps": out }),
    ))
}

/// Server-Sent Events: every log line of the build as it is stored (`event: line`, data
/// `{"stage","step","pos","out","time"}`), then `event: done` with the build's status. Reads
/// the database, so it works on any replica and after a restart.
async fn stream_logs(
    AxState(state): AxState<Shared>,
    Caller(caller): Caller,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> Result<Sse<impl futures::Stream<Item = Result<SseEvent, std::convert::Infallible>>>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, caller.as_ref(), Role::Read).await?;
    let build = find_build(&state, &repo, number).await?;
    let follow = Follow {
        changes: state.activity.subscribe(),
        state,
        build_id: build.id,
        seen: HashMap::new(),
        queue: VecDeque::new(),
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        loop {
            if let Some(event) = f.queue.pop_front() {
                return Some((Ok(event), f));
            }
            if f.done {
                return None;
            }
            if let Err(error) = f.poll().await {
                f.queue
                    .push_back(SseEvent::default().event("error").data(error.to_string()));
                f.done = true;
                continue;
            }
            if f.queue.is_empty() && !f.done {
                // Woken by this server's writers; the timeout covers lines another replica
                // stored.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(1), f.changes.changed())
                        .await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

struct Follow {
    state: Shared,
    /// Changes when lines are stored or a stage ends ([`crate::State::touched`]).
    changes: tokio::sync::watch::Receiver<u64>,
    build_id: i64,
    /// Next position to read, per step id.
    seen: HashMap<i64, i64>,
    queue: VecDeque<SseEvent>,
    done: bool,
}

impl Follow {
    async fn poll(&mut self) -> Result<(), Error> {
        // Seen now: a change from here on wakes the next wait.
        self.changes.borrow_and_update();
        let store = &self.state.store;
        // Read the status first: lines stored before the build ended are then all read below.
        let build = store
            .build_by_id(self.build_id)
            .await?
            .ok_or_else(|| Error::NotFound("the build is gone".into()))?;
        for stage in store.stages(self.build_id).await? {
            for step in store.steps(stage.id).await? {
                let next = self.seen.entry(step.id).or_insert(0);
                for line in store.logs(step.id, *next).await? {
                    *next = line.pos + 1;
                    let data = json!({"stage": stage.name, "step": step.name,
                        "pos": line.pos, "out": line.line, "time": line.time_secs});
                    self.queue
                        .push_back(SseEvent::default().event("line").data(data.to_string()));
                }
            }
        }
        if build.finished > 0 {
            let data = json!({"status": build.status, "error": build.error});
            self.queue
                .push_back(SseEvent::default().event("done").data(data.to_string()));
            self.done = true;
        }
        Ok(())
    }
}

async fn cancel_build(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
    let build = find_build(&state, &repo, number).await?;
    if status::is_done(&build.status) {
        return Err(Error::Conflict(format!(
            "build #{number} already ended ({})",
            build.status
        )));
    }
    state.store.cancel_build(&build).await?;
    state.reporter.build_changed(build.id, None);
    let build = find_build(&state, &repo, number).await?;
    Ok(Json(build_json(&state, &build).await?))
}

async fn restart_build(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name, number)): Path<(String, String, i64)>,
) -> Result<(StatusCode, Json<Value>), Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
    let old = find_build(&state, &repo, number).await?;
    let event = event_of(&old);
    let params: BTreeMap<String, String> = serde_json::from_str(&old.params).unwrap_or_default();
    created(builds::create_with_params(&state, &repo, event, None, params).await?)
}

/// The event a recorded build was made for.
fn event_of(old: &Build) -> Event {
    Event {
        event: old.event.clone(),
        action: old.action.clone(),
        git_ref: old.git_ref.clone(),
        branch: old.branch.clone(),
        target_branch: old.target_branch.clone(),
        sha: old.sha.clone(),
        before: old.before_sha.clone(),
        message: old.message.clone(),
        author: old.author.clone(),
        author_email: old.author_email.clone(),
        fork: old.fork,
        deploy_to: old.deploy_to.clone(),
        cron: old.cron.clone(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteRequest {
    target: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

async fn promote(
    state: AxState<Shared>,
    user: Authed,
    path: Path<(String, String, i64)>,
    req: Json<PromoteRequest>,
) -> Result<(StatusCode, Json<Value>), Error> {
    promote_build(state, user, path, req, "promote").await
}

async fn rollback(
    state: AxState<Shared>,
    user: Authed,
    path: Path<(String, String, i64)>,
    req: Json<PromoteRequest>,
) -> Result<(StatusCode, Json<Value>), Error> {
    promote_build(state, user, path, req, "rollback").await
}

/// `promote` (or `rollback`) of a build's commit to a target: a new build whose pipelines
/// match `trigger: {event: promote, target: …}` and see `DRONE_DEPLOY_TO`.
async fn promote_build(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name, number)): Path<(String, String, i64)>,
    Json(req): Json<PromoteRequest>,
    kind: &str,
) -> Result<(StatusCode, Json<Value>), Error> {
    if req.target.trim().is_empty() {
        return Err(Error::BadRequest("target is empty".into()));
    }
    no_nul("target", &req.target)?;
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
    let old = find_build(&state, &repo, number).await?;
    let mut event = event_of(&old);
    event.event = kind.into();
    event.action = String::new();
    event.deploy_to = req.target;
    event.cron = String::new();
    event.author = user.login.clone();
    let mut params: BTreeMap<String, String> =
        serde_json::from_str(&old.params).unwrap_or_default();
    params.extend(req.params);
    created(builds::create_with_params(&state, &repo, event, None, params).await?)
}

// ---- cron ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddCron {
    name: String,
    /// Six fields, seconds first (Drone), or `@hourly`, `@daily`, …
    expr: String,
    #[serde(default)]
    branch: Option<String>,
}

async fn list_crons(
    AxState(state): AxState<Shared>,
    Caller(caller): Caller,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, caller.as_ref(), Role::Read).await?;
    Ok(Json(json!(state.store.crons(repo.id).await?)))
}

async fn add_cron(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
    Json(req): Json<AddCron>,
) -> Result<(StatusCode, Json<Value>), Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
    if !valid_name(&req.name) {
        return Err(Error::BadRequest(
            "a cron name has letters, digits, '-', '_' and '.'".into(),
        ));
    }
    no_nul("branch", req.branch.as_deref().unwrap_or(""))?;
    let next = crate::cron::next_run(&req.expr, skiff_store::now_ms())?;
    let branch = req
        .branch
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| repo.default_branch.clone());
    let job = state
        .store
        .create_cron(repo.id, &req.name, &req.expr, &branch, next)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(job))))
}

async fn delete_cron(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name, cron)): Path<(String, String, String)>,
) -> Result<StatusCode, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
    if valid_name(&cron) && state.store.delete_cron(repo.id, &cron).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!("cron job `{cron}` not found")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    branch: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
}

/// A manual run (`custom` event) of the head of a branch.
async fn run_build(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
    Json(req): Json<RunRequest>,
) -> Result<(StatusCode, Json<Value>), Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Write).await?;
    if req.branch.is_empty() || req.branch.starts_with('-') {
        return Err(Error::BadRequest("branch is empty or invalid".into()));
    }
    let git_ref = format!("refs/heads/{}", req.branch);
    let sha = state
        .git
        .resolve(&repo, &git_ref)
        .await
        .map_err(|e| match e {
            // The fetch worked; the ref is not there.
            Error::Git { action, .. } if action == "rev-parse" => {
                Error::NotFound(format!("no branch `{}` in {}", req.branch, repo.git_url))
            }
            e => Error::BadRequest(format!("cannot find branch `{}`: {e}", req.branch)),
        })?;
    let event = Event {
        event: "custom".into(),
        git_ref,
        branch: req.branch.clone(),
        target_branch: req.branch,
        sha,
        message: format!("manual run by {}", user.login),
        author: user.login.clone(),
        ..Default::default()
    };
    created(builds::create_with_params(&state, &repo, event, None, req.params).await?)
}

fn created(outcome: Outcome) -> Result<(StatusCode, Json<Value>), Error> {
    match outcome {
        Outcome::Created(build) => Ok((StatusCode::CREATED, Json(json!(build)))),
        Outcome::Duplicate => Err(Error::Conflict("this build exists already".into())),
        Outcome::Skipped(reason) => Ok((
            StatusCode::OK,
            Json(json!({ "status": "ignored", "reason": reason })),
        )),
    }
}

// ---- secrets: write-only ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutSecret {
    name: String,
    value: String,
    /// Expose it to pull requests (from forks only if the repository allows).
    #[serde(default)]
    pull_request: bool,
}

fn secret_context(repo: &Repo, name: &str) -> String {
    format!("repo:{}:{name}", repo.id)
}

async fn put_secret(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
    Json(req): Json<PutSecret>,
) -> Result<StatusCode, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    if !valid_name(&req.name) {
        return Err(Error::BadRequest(
            "a secret name has letters, digits, '-', '_' and '.'".into(),
        ));
    }
    let sealed = state
        .key
        .seal(&secret_context(&repo, &req.name), req.value.as_bytes())?;
    state
        .store
        .put_secret(repo.id, &req.name, &sealed, req.pull_request)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_secrets(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<Value>, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    let names: Vec<Value> = state
        .store
        .secrets(repo.id)
        .await?
        .into_iter()
        .map(|s| json!({ "name": s.name, "pull_request": s.pull_request }))
        .collect();
    Ok(Json(json!(names)))
}

async fn delete_secret(
    AxState(state): AxState<Shared>,
    Authed(user): Authed,
    Path((owner, name, secret)): Path<(String, String, String)>,
) -> Result<StatusCode, Error> {
    let repo = auth::repo_as(&state, &owner, &name, Some(&user), Role::Admin).await?;
    if valid_name(&secret) && state.store.delete_secret(repo.id, &secret).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::NotFound(format!("secret `{secret}` not found")))
    }
}

/// The secrets a build may see, opened: all of them for push, tag and manual events; for pull
/// requests only those marked `pull_request`, and from forks only if the repository allows.
/// Organisation secrets of the repository's owner (`org/*`) are seen too, under the same rule;
/// a repository secret of the same name shadows the organisation's, also for an event that may
/// not see the repository's.
pub(crate) async fn secrets_for_build(
    state: &State,
    repo: &Repo,
    build: &Build,
) -> Result<BTreeMap<String, String>, Error> {
    let pr = build.event == "pull_request";
    let visible =
        |pull_request: bool| !pr || (pull_request && (!build.fork || repo.fork_pr_secrets));
    let mut out = BTreeMap::new();
    let rows = state.store.secrets(repo.id).await?;
    for row in &rows {
        if !visible(row.pull_request) {
            continue;
        }
        let plain = state
            .key
            .open(&secret_context(repo, &row.name), &row.sealed)?;
        out.insert(
            row.name.clone(),
            String::from_utf8_lossy(&plain).into_owned(),
        );
    }
    for row in state.store.org_secrets(&repo.owner).await? {
        if rows.iter().any(|r| r.name == row.name) || !visible(row.pull_request) {
            continue;
        }
        let plain = state.key.open(
            &crate::people::org_secret_context(&repo.owner, &row.name),
            &row.sealed,
        )?;
        out.insert(row.name, String::from_utf8_lossy(&plain).into_owned());
    }
    Ok(out)
}
