//! Events become builds: read the pipeline file at the commit from the repository's mirror,
//! honour the skip directive, plan it with `skiff-pipeline` (trigger evaluation included), and
//! record the build with its stages and steps. A file that does not parse still makes a build,
//! a failed one whose error names the line and column; an event no pipeline matches makes none
//! (Drone consumes no number then either, ci.md §2.3).

use crate::{Error, State};
use skiff_pipeline::{BackendKind, BuildContext, PlanOptions, plan_build, skip_requested};
use skiff_store::{Build, NewBuild, NewStage, Repo, status};

/// The object id git and the forges give a ref that does not exist (before a create, after a
/// delete).
pub(crate) const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// One forge or manual event, in Drone's terms.
#[derive(Debug, Clone, Default)]
pub(crate) struct Event {
    /// push | tag | pull_request | custom
    pub event: String,
    pub action: String,
    pub git_ref: String,
    /// The source branch (the head branch of a pull request).
    pub branch: String,
    /// The branch conditions compare against (the base branch of a pull request).
    pub target_branch: String,
    pub sha: String,
    pub before: String,
    pub message: String,
    pub author: String,
    pub author_email: String,
    pub fork: bool,
    /// The target of a promotion or rollback.
    pub deploy_to: String,
    /// The cron job's name.
    pub cron: String,
}

pub(crate) enum Outcome {
    Created(Box<Build>),
    /// The delivery id was seen before.
    Duplicate,
    /// No build, and why.
    Skipped(String),
}

/// The facts a pipeline sees, from a recorded build (the runner re-plans with these).
pub(crate) fn context(public_url: &str, repo: &Repo, b: &Build) -> BuildContext {
    let (host, proto) = split_url(public_url);
    let target = if b.target_branch.is_empty() {
        b.branch.clone()
    } else {
        b.target_branch.clone()
    };
    BuildContext {
        event: b.event.clone(),
        action: b.action.clone(),
        branch: target.clone(),
        source_branch: b.branch.clone(),
        target_branch: target,
        git_ref: b.git_ref.clone(),
        sha: b.sha.clone(),
        before: b.before_sha.clone(),
        message: b.message.clone(),
        author: b.author.clone(),
        author_email: b.author_email.clone(),
        repo_owner: repo.owner.clone(),
        repo_name: repo.name.clone(),
        repo_default_branch: repo.default_branch.clone(),
        remote_url: repo.git_url.clone(),
        link: String::new(),
        build_number: b.number.max(0) as u64,
        deploy_to: b.deploy_to.clone(),
        cron: b.cron.clone(),
        instance: host.clone(),
        system_host: host,
        system_proto: proto,
        params: serde_json::from_str(&b.params).unwrap_or_default(),
        trusted: repo.trusted,
        created_unix: b.created / 1000,
        ..Default::default()
    }
}

fn split_url(url: &str) -> (String, String) {
    match url.split_once("://") {
        Some((proto, rest)) => (rest.trim_end_matches('/').to_string(), proto.to_string()),
        None => (url.to_string(), "http".to_string()),
    }
}

/// Plans `event` for `repo` and records the build (or says why there is none).
pub(crate) async fn create(
    state: &State,
    repo: &Repo,
    event: Event,
    delivery: Option<String>,
) -> Result<Outcome, Error> {
    create_with_params(state, repo, event, delivery, Default::default()).await
}

pub(crate) async fn create_with_params(
    state: &State,
    repo: &Repo,
    event: Event,
    delivery: Option<String>,
    params: std::collections::BTreeMap<String, String>,
) -> Result<Outcome, Error> {
    let mut new = NewBuild {
        repo_id: repo.id,
        event: event.event,
        action: event.action,
        git_ref: event.git_ref,
        branch: event.branch,
        target_branch: event.target_branch,
        sha: event.sha,
        before_sha: event.before,
        message: event.message,
        author: event.author,
        author_email: event.author_email,
        fork: event.fork,
        params: serde_json::to_string(&params).unwrap_or_else(|_| "{}".into()),
        delivery_id: delivery,
        status: status::PENDING.into(),
        error: String::new(),
        deploy_to: event.deploy_to,
        cron: event.cron,
        config: String::new(),
        stages: Vec::new(),
    };
    // The same facts the runner will see, without a number yet.
    let draft = Build {
        id: 0,
        repo_id: repo.id,
        number: 0,
        event: new.event.clone(),
        action: new.action.clone(),
        git_ref: new.git_ref.clone(),
        branch: new.branch.clone(),
        target_branch: new.target_branch.clone(),
        sha: new.sha.clone(),
        before_sha: new.before_sha.clone(),
        message: new.message.clone(),
        author: new.author.clone(),
        author_email: new.author_email.clone(),
        fork: new.fork,
        params: new.params.clone(),
        status: String::new(),
        error: String::new(),
        delivery_id: None,
        created: skiff_store::now_ms(),
        started: 0,
        finished: 0,
        deploy_to: new.deploy_to.clone(),
        cron: new.cron.clone(),
        config: String::new(),
    };
    let ctx = context(&state.config.public_url, repo, &draft);
    if skip_requested(&ctx) {
        return Ok(Outcome::Skipped(
            "the commit message asks to skip CI ([ci skip])".into(),
        ));
    }
    match state.git.read_file(repo, &new.sha, &repo.config_path).await {
        Err(e) => fail(&mut new, format!("cannot read {}: {e}", repo.config_path)),
        Ok(None) => {
            let error = format!("{} not found at commit {}", repo.config_path, new.sha);
            fail(&mut new, error)
        }
        Ok(Some(text)) => {
            let options = PlanOptions {
                trusted: repo.trusted,
            };
            match plan_build(&repo.config_path, &text, &ctx, &options) {
                Err(diagnostics) => fail(&mut new, diagnostics.to_string()),
                Ok(plan) => {
                    new.stages = plan.matched().map(stage_row).collect();
                    // Kept with the build: runners plan their stage from this same text.
                    new.config = text;
                    if new.stages.is_empty() {
                        return Ok(Outcome::Skipped(format!(
                            "no pipeline's trigger matches the {} event on `{}`",
                            ctx.event,
                            ctx.target()
                        )));
                    }
                }
            }
        }
    }
    if new.status == status::PENDING
        && crate::gates::needs_approval(&repo.approval, &new.event, new.fork)
    {
        new.status = status::BLOCKED.into();
    }
    match state.store.create_build(&new).await? {
        Some(build) => {
            tracing::info!(repo = %repo.slug(), number = build.number, status = %build.status, "build created");
            state.reporter.created(&build);
            crate::gates::cancel_superseded(state, repo, &build).await;
            // Wake every idle claimer (remote long polls) and leave a permit for the next one.
            state.queued.notify_waiters();
            state.queued.notify_one();
            Ok(Outcome::Created(Box::new(build)))
        }
        None => Ok(Outcome::Duplicate),
    }
}

fn fail(new: &mut NewBuild, error: String) {
    new.status = status::ERROR.into();
    new.error = error;
    new.stages.clear();
}

pub(crate) fn kind_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Docker => "docker",
        BackendKind::Exec => "exec",
        BackendKind::Kubernetes => "kubernetes",
    }
}

fn stage_row(stage: &skiff_pipeline::Stage) -> NewStage {
    let plan = &stage.plan;
    let labels: Vec<String> = stage.node.iter().map(|(k, v)| format!("{k}={v}")).collect();
    NewStage {
        name: plan.name.clone(),
        kind: kind_name(plan.backend).into(),
        os: if plan.platform.os.is_empty() {
            "linux".into()
        } else {
            plan.platform.os.clone()
        },
        arch: if plan.platform.arch.is_empty() {
            "amd64".into()
        } else {
            plan.platform.arch.clone()
        },
        labels: labels.join(","),
        depends_on: stage.depends_on.clone(),
        on_success: stage.on_success,
        on_failure: stage.on_failure,
        steps: plan.steps.iter().map(|s| s.name.clone()).collect(),
        concurrency: stage
            .concurrency
            .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX))
            .unwrap_or(0),
    }
}
