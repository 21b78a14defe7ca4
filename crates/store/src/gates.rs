//! Gates on builds: repository settings changed in place (approval policy, throttle, ignore and
//! auto-cancel flags, and the older settings), approving or declining a blocked build, and
//! finding the older builds a new one supersedes. The concurrency limits themselves are
//! enforced by the claim statement in [`crate::queue`].

use crate::model::status;
use crate::{Build, Repo, Store, StoreError, now_ms, with_pool};

/// A partial update of a repository's settings: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RepoSettings {
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

impl Store {
    /// Applies `settings` to repository `repo_id` in one statement (each field set only when
    /// given, so two concurrent updates of different fields both stick). `None` if there is no
    /// such repository.
    pub async fn update_repo(
        &self,
        repo_id: i64,
        settings: &RepoSettings,
    ) -> Result<Option<Repo>, StoreError> {
        const SQL: &str = "UPDATE repos SET config_path = COALESCE($1, config_path), \
             default_branch = COALESCE($2, default_branch), trusted = COALESCE($3, trusted), \
             timeout_secs = COALESCE($4, timeout_secs), visibility = COALESCE($5, visibility), \
             fork_pr_secrets = COALESCE($6, fork_pr_secrets), active = COALESCE($7, active), \
             approval = COALESCE($8, approval), throttle = COALESCE($9, throttle), \
             ignore_forks = COALESCE($10, ignore_forks), \
             ignore_pull_requests = COALESCE($11, ignore_pull_requests), \
             cancel_pulls = COALESCE($12, cancel_pulls), cancel_push = COALESCE($13, cancel_push), \
             cancel_running = COALESCE($14, cancel_running) WHERE id = $15 RETURNING *";
        let s = settings;
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Repo>(SQL)
            .bind(&s.config_path)
            .bind(&s.default_branch)
            .bind(s.trusted)
            .bind(s.timeout_secs)
            .bind(&s.visibility)
            .bind(s.fork_pr_secrets)
            .bind(s.active)
            .bind(&s.approval)
            .bind(s.throttle)
            .bind(s.ignore_forks)
            .bind(s.ignore_pull_requests)
            .bind(s.cancel_pulls)
            .bind(s.cancel_push)
            .bind(s.cancel_running)
            .bind(repo_id)
            .fetch_optional(p)
            .await)?)
    }

    /// Queues a blocked build: it becomes `pending`, its stages `pending` (or `waiting` when
    /// they depend on others). False when the build is not blocked (already approved, declined
    /// or cancelled), so approving twice changes nothing.
    pub async fn approve_build(&self, build_id: i64) -> Result<bool, StoreError> {
        const BUILD: &str =
            "UPDATE builds SET status = 'pending' WHERE id = $1 AND status = 'blocked'";
        const STAGES: &str = "UPDATE stages SET status = CASE WHEN depends_on = '[]' THEN \
             'pending' ELSE 'waiting' END WHERE build_id = $1 AND status = 'blocked'";
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(BUILD)
                .bind(build_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(STAGES).bind(build_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<bool, StoreError>(true)
        })
    }

    /// Declines a blocked build: it and its stages end `declined` and never run. False when
    /// the build is not blocked.
    pub async fn decline_build(&self, build_id: i64) -> Result<bool, StoreError> {
        const BUILD: &str = "UPDATE builds SET status = 'declined', finished = $1 WHERE id = $2 \
             AND status = 'blocked'";
        const STAGES: &str = "UPDATE stages SET status = 'declined', finished = $1 WHERE \
             build_id = $2 AND status = 'blocked'";
        let now = now_ms();
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(BUILD)
                .bind(now)
                .bind(build_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(STAGES)
                .bind(now)
                .bind(build_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<bool, StoreError>(true)
        })
    }

    /// Builds of `build`'s repository for the same event and ref with a lower number that
    /// have not started (pending or blocked), and with `running` those running too: the ones a
    /// newer build makes pointless (Drone's `cancel_pulls`/`cancel_push`/`cancel_running`).
    pub async fn superseded_builds(
        &self,
        build: &Build,
        running: bool,
    ) -> Result<Vec<Build>, StoreError> {
        const SQL: &str = "SELECT * FROM builds WHERE repo_id = $1 AND event = $2 AND git_ref = \
             $3 AND number < $4 AND (status IN ($5, $6) OR ($7 AND status = $8)) ORDER BY number";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Build>(SQL)
            .bind(build.repo_id)
            .bind(&build.event)
            .bind(&build.git_ref)
            .bind(build.number)
            .bind(status::PENDING)
            .bind(status::BLOCKED)
            .bind(running)
            .bind(status::RUNNING)
            .fetch_all(p)
            .await)?)
    }
}
