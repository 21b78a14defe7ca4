//! Queries on users, tokens, repositories, builds, steps, logs and secrets. Each is written once
//! and run on whichever pool the [`Store`] has (see the crate docs for the SQL both accept).

use crate::model::status;
use crate::{
    Build, CronJob, LogRow, NewBuild, NewRepo, Repo, SecretRow, Stage, Step, Store, StoreError,
    User, now_ms, with_pool,
};

const INSERT_BUILD: &str = "INSERT INTO builds (repo_id, number, event, action, git_ref, branch, \
     target_branch, sha, before_sha, message, author, author_email, fork, params, status, error, \
     delivery_id, created, finished, deploy_to, cron, config) VALUES ($1, $2, $3, $4, $5, $6, $7, \
     $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) ON CONFLICT (repo_id, delivery_id) DO NOTHING RETURNING *";
const INSERT_STAGE: &str = "INSERT INTO stages (build_id, number, name, kind, os, arch, labels, \
     depends_on, on_success, on_failure, status, repo_id, concurrency) VALUES ($1, $2, $3, $4, \
     $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";
const INSERT_STEP: &str =
    "INSERT INTO steps (stage_id, number, name, status) VALUES ($1, $2, $3, $4)";

impl Store {
    // ---- users and tokens ----

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let n: i64 = with_pool!(self, |p| sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(p)
            .await)?;
        Ok(n)
    }

    pub async fn create_user(
        &self,
        login: &str,
        password_hash: &str,
        admin: bool,
    ) -> Result<User, StoreError> {
        const SQL: &str = "INSERT INTO users (login, password_hash, admin, created) \
                           VALUES ($1, $2, $3, $4) RETURNING *";
        with_pool!(self, |p| sqlx::query_as::<_, User>(SQL)
            .bind(login)
            .bind(password_hash)
            .bind(admin)
            .bind(now_ms())
            .fetch_one(p)
            .await)
        .map_err(|e| StoreError::conflict_on_unique(e, format!("user `{login}`")))
    }

    pub async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        const SQL: &str = "SELECT * FROM users WHERE login = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, User>(SQL)
            .bind(login)
            .fetch_optional(p)
            .await)?)
    }

    /// Records an API token by the hash of its value (the value itself is never stored).
    pub async fn create_token(
        &self,
        user_id: i64,
        token_hash: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "INSERT INTO tokens (user_id, token_hash, name, created) VALUES ($1, $2, $3, $4)";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(user_id)
            .bind(token_hash)
            .bind(name)
            .bind(now_ms())
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        const SQL: &str = "SELECT users.* FROM users JOIN tokens ON tokens.user_id = users.id \
                           WHERE tokens.token_hash = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, User>(SQL)
            .bind(token_hash)
            .fetch_optional(p)
            .await)?)
    }

    // ---- repositories ----

    pub async fn create_repo(&self, repo: &NewRepo) -> Result<Repo, StoreError> {
        const SQL: &str = "INSERT INTO repos (owner, name, git_url, config_path, default_branch, \
             trusted, timeout_secs, visibility, fork_pr_secrets, webhook_secret, active, created, hosted) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *";
        with_pool!(self, |p| sqlx::query_as::<_, Repo>(SQL)
            .bind(&repo.owner)
            .bind(&repo.name)
            .bind(&repo.git_url)
            .bind(&repo.config_path)
            .bind(&repo.default_branch)
            .bind(repo.trusted)
            .bind(repo.timeout_secs)
            .bind(&repo.visibility)
            .bind(repo.fork_pr_secrets)
            .bind(&repo.webhook_secret)
            .bind(true)
            .bind(now_ms())
            .bind(repo.hosted)
            .fetch_one(p)
            .await)
        .map_err(|e| {
            StoreError::conflict_on_unique(e, format!("repository {}/{}", repo.owner, repo.name))
        })
    }

    pub async fn repo(&self, owner: &str, name: &str) -> Result<Option<Repo>, StoreError> {
        const SQL: &str = "SELECT * FROM repos WHERE owner = $1 AND name = $2";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Repo>(SQL)
            .bind(owner)
            .bind(name)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn repo_by_id(&self, id: i64) -> Result<Option<Repo>, StoreError> {
        const SQL: &str = "SELECT * FROM repos WHERE id = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Repo>(SQL)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn repos(&self) -> Result<Vec<Repo>, StoreError> {
        const SQL: &str = "SELECT * FROM repos ORDER BY owner, name";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Repo>(SQL)
            .fetch_all(p)
            .await)?)
    }

    // ---- builds ----

    /// Records a build with its stages and steps under the repository's next number. Returns
    /// `None`, consuming no number, when a build with the same delivery id exists.
    pub async fn create_build(&self, new: &NewBuild) -> Result<Option<Build>, StoreError> {
        const BUMP: &str = "UPDATE repos SET build_counter = build_counter + 1 WHERE id = $1 RETURNING build_counter";
        let created = now_ms();
        let finished = if status::is_done(&new.status) {
            created
        } else {
            0
        };
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let number: Option<i64> = sqlx::query_scalar(BUMP)
                .bind(new.repo_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(number) = number else {
                return Err(StoreError::NotFound {
                    what: format!("repository #{}", new.repo_id),
                });
            };
            let build: Option<Build> = sqlx::query_as::<_, Build>(INSERT_BUILD)
                .bind(new.repo_id)
                .bind(number)
                .bind(&new.event)
                .bind(&new.action)
                .bind(&new.git_ref)
                .bind(&new.branch)
                .bind(&new.target_branch)
                .bind(&new.sha)
                .bind(&new.before_sha)
                .bind(&new.message)
                .bind(&new.author)
                .bind(&new.author_email)
                .bind(new.fork)
                .bind(if new.params.is_empty() {
                    "{}"
                } else {
                    &new.params
                })
                .bind(&new.status)
                .bind(&new.error)
                .bind(&new.delivery_id)
                .bind(created)
                .bind(finished)
                .bind(&new.deploy_to)
                .bind(&new.cron)
                .bind(&new.config)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(build) = build else {
                tx.rollback().await?;
                return Ok(None);
            };
            for (i, stage) in new.stages.iter().enumerate() {
                let initial = if new.status == status::BLOCKED {
                    status::BLOCKED
                } else if stage.depends_on.is_empty() {
                    status::PENDING
                } else {
                    status::WAITING
                };
                let depends_on =
                    serde_json::to_string(&stage.depends_on).unwrap_or_else(|_| "[]".into());
                let stage_id: i64 = sqlx::query_scalar(INSERT_STAGE)
                    .bind(build.id)
                    .bind(i as i64 + 1)
                    .bind(&stage.name)
                    .bind(&stage.kind)
                    .bind(&stage.os)
                    .bind(&stage.arch)
                    .bind(&stage.labels)
                    .bind(depends_on)
                    .bind(stage.on_success)
                    .bind(stage.on_failure)
                    .bind(initial)
                    .bind(new.repo_id)
                    .bind(stage.concurrency)
                    .fetch_one(&mut *tx)
                    .await?;
                for (n, step) in stage.steps.iter().enumerate() {
                    sqlx::query(INSERT_STEP)
                        .bind(stage_id)
                        .bind(n as i64 + 1)
                        .bind(step)
                        .bind(status::PENDING)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(Some(build))
        })
    }

    pub async fn build(&self, repo_id: i64, number: i64) -> Result<Option<Build>, StoreError> {
        const SQL: &str = "SELECT * FROM builds WHERE repo_id = $1 AND number = $2";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Build>(SQL)
            .bind(repo_id)
            .bind(number)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn build_by_id(&self, id: i64) -> Result<Option<Build>, StoreError> {
        const SQL: &str = "SELECT * FROM builds WHERE id = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Build>(SQL)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// The newest builds of a repository first, without their pipeline files (`config` is
    /// empty): a listing does not need them, and they are the largest part of a build's row.
    pub async fn builds(&self, repo_id: i64, limit: i64) -> Result<Vec<Build>, StoreError> {
        const SQL: &str = "SELECT id, repo_id, number, event, action, git_ref, branch, \
            target_branch, sha, before_sha, message, author, author_email, fork, params, status, \
            error, delivery_id, created, started, finished, deploy_to, cron, '' AS config \
            FROM builds WHERE repo_id = $1 ORDER BY number DESC LIMIT $2";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Build>(SQL)
            .bind(repo_id)
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }

    pub async fn stages(&self, build_id: i64) -> Result<Vec<Stage>, StoreError> {
        const SQL: &str = "SELECT * FROM stages WHERE build_id = $1 ORDER BY number";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Stage>(SQL)
            .bind(build_id)
            .fetch_all(p)
            .await)?)
    }

    pub async fn stage(&self, id: i64) -> Result<Option<Stage>, StoreError> {
        const SQL: &str = "SELECT * FROM stages WHERE id = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Stage>(SQL)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn steps(&self, stage_id: i64) -> Result<Vec<Step>, StoreError> {
        const SQL: &str = "SELECT * FROM steps WHERE stage_id = $1 ORDER BY number";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Step>(SQL)
            .bind(stage_id)
            .fetch_all(p)
            .await)?)
    }

    /// Records a step's outcome, if the caller still holds the stage's lease.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_step(
        &self,
        stage_id: i64,
        lease_token: &str,
        number: i64,
        status: &str,
        exit_code: i64,
        error: &str,
        started: i64,
        finished: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE steps SET status = $1, exit_code = $2, error = $3, started = $4, \
             finished = $5 WHERE stage_id = $6 AND number = $7 AND EXISTS (SELECT 1 FROM stages \
             WHERE stages.id = $8 AND stages.lease_token = $9)";
        let done = with_pool!(self, |p| sqlx::query(SQL)
            .bind(status)
            .bind(exit_code)
            .bind(error)
            .bind(started)
            .bind(finished)
            .bind(stage_id)
            .bind(number)
            .bind(stage_id)
            .bind(lease_token)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Stores masked log lines of one step.
    pub async fn append_logs(
        &self,
        step_id: i64,
        lines: &[(i64, String, i64)],
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "INSERT INTO logs (step_id, pos, line, time_secs) VALUES ($1, $2, $3, $4)";
        if lines.is_empty() {
            return Ok(());
        }
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for (pos, line, time) in lines {
                sqlx::query(SQL)
                    .bind(step_id)
                    .bind(*pos)
                    .bind(line)
                    .bind(*time)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }

    /// Stores masked log lines of the step numbered `step_number` in a stage.
    pub async fn append_stage_logs(
        &self,
        stage_id: i64,
        step_number: i64,
        lines: &[(i64, String, i64)],
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO logs (step_id, pos, line, time_secs) SELECT id, $1, $2, $3 \
             FROM steps WHERE stage_id = $4 AND number = $5";
        if lines.is_empty() {
            return Ok(());
        }
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for (pos, line, time) in lines {
                sqlx::query(SQL)
                    .bind(*pos)
                    .bind(line)
                    .bind(*time)
                    .bind(stage_id)
                    .bind(step_number)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }

    /// A step's lines from position `from` on.
    pub async fn logs(&self, step_id: i64, from: i64) -> Result<Vec<LogRow>, StoreError> {
        const SQL: &str = "SELECT * FROM logs WHERE step_id = $1 AND pos >= $2 ORDER BY pos, id";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, LogRow>(SQL)
            .bind(step_id)
            .bind(from)
            .fetch_all(p)
            .await)?)
    }

    // ---- secrets ----

    /// Creates or replaces a repository secret (already sealed by the caller).
    pub async fn put_secret(
        &self,
        repo_id: i64,
        name: &str,
        sealed: &[u8],
        pull_request: bool,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO secrets (repo_id, name, sealed, pull_request, created) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo_id, name) DO UPDATE SET \
             sealed = excluded.sealed, pull_request = excluded.pull_request";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(repo_id)
            .bind(name)
            .bind(sealed)
            .bind(pull_request)
            .bind(now_ms())
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn secrets(&self, repo_id: i64) -> Result<Vec<SecretRow>, StoreError> {
        const SQL: &str = "SELECT * FROM secrets WHERE repo_id = $1 ORDER BY name";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, SecretRow>(SQL)
            .bind(repo_id)
            .fetch_all(p)
            .await)?)
    }

    pub async fn delete_secret(&self, repo_id: i64, name: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM secrets WHERE repo_id = $1 AND name = $2";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(repo_id)
            .bind(name)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    // ---- cron ----

    pub async fn create_cron(
        &self,
        repo_id: i64,
        name: &str,
        expr: &str,
        branch: &str,
        next_run: i64,
    ) -> Result<CronJob, StoreError> {
        const SQL: &str = "INSERT INTO crons (repo_id, name, expr, branch, next_run, created) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *";
        with_pool!(self, |p| sqlx::query_as::<_, CronJob>(SQL)
            .bind(repo_id)
            .bind(name)
            .bind(expr)
            .bind(branch)
            .bind(next_run)
            .bind(now_ms())
            .fetch_one(p)
            .await)
        .map_err(|e| StoreError::conflict_on_unique(e, format!("cron job `{name}`")))
    }

    pub async fn crons(&self, repo_id: i64) -> Result<Vec<CronJob>, StoreError> {
        const SQL: &str = "SELECT * FROM crons WHERE repo_id = $1 ORDER BY name";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, CronJob>(SQL)
            .bind(repo_id)
            .fetch_all(p)
            .await)?)
    }

    pub async fn delete_cron(&self, repo_id: i64, name: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM crons WHERE repo_id = $1 AND name = $2";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(repo_id)
            .bind(name)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Cron jobs whose next run is due.
    pub async fn due_crons(&self, now: i64) -> Result<Vec<CronJob>, StoreError> {
        const SQL: &str = "SELECT * FROM crons WHERE next_run <= $1 ORDER BY next_run";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, CronJob>(SQL)
            .bind(now)
            .fetch_all(p)
            .await)?)
    }

    /// Moves a job's next run from `seen` to `next`; false if another scheduler (replica) did
    /// it first, so each run fires once.
    pub async fn advance_cron(&self, id: i64, seen: i64, next: i64) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE crons SET next_run = $1 WHERE id = $2 AND next_run = $3";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(next)
            .bind(id)
            .bind(seen)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}
