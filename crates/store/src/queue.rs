//! The durable build queue. Stages wait as rows; a runner claims the oldest one that matches
//! its platform, pipeline types and labels with one `UPDATE … WHERE id = (SELECT …) RETURNING`
//! under a lease (a random token and an expiry). Heartbeats extend the lease; a stage whose lease
//! expired (its runner or the whole server died) becomes claimable again and is run from the
//! start, and only the holder of the current token may write its results. So a killed server or
//! runner neither loses nor duplicates a build.
//!
//! The outer `WHERE` repeats the claimable condition: on PostgreSQL two concurrent claims may
//! pick the same row in their subqueries, and the one that waits for the row lock re-checks the
//! outer condition on the updated row and updates nothing.
//!
//! Concurrency limits are part of the same statement: a stage is skipped (it stays pending and
//! is claimed when a slot frees) while its repository's `throttle` running stages are running,
//! or while its pipeline's `concurrency: {limit: N}` stages of the same name in the repository
//! are (Drone's `shouldThrottle` and `withinLimits`). Counting rows another claim is about to
//! change is a race the row re-check cannot see, so claims are serialized: SQLite runs one
//! writing statement at a time anyway, and on PostgreSQL the claim first takes a
//! transaction-level advisory lock, after which the statement's snapshot sees every committed
//! claim. Blocked stages (a build waiting for approval) are not `pending`, so no runner claims
//! them.

use crate::model::status;
use crate::{Build, Pool, Stage, Store, StoreError, now_ms, with_pool};
use std::time::Duration;

/// What a runner can run.
#[derive(Debug, Clone)]
pub struct RunnerSpec {
    /// A name for people (`lease_owner`).
    pub name: String,
    pub os: String,
    pub arch: String,
    /// Pipeline types it runs (`docker`, `exec`); one or two.
    pub kinds: Vec<String>,
    /// `k=v,…` sorted; Drone matches labels exactly.
    pub labels: String,
}

/// A claimed stage and the token that proves the lease.
#[derive(Debug, Clone)]
pub struct Claim {
    pub stage: Stage,
    pub lease_token: String,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Extended: keep going.
    Held,
    /// The build was cancelled: stop the steps and report.
    Cancelled,
    /// Someone else holds the stage now (our lease expired): stop and write nothing.
    Lost,
}

const CLAIM: &str = "UPDATE stages SET status = 'running', lease_owner = $1, lease_token = $2, \
     lease_until = $3, attempts = attempts + 1, started = $4, error = '' \
     WHERE id = (SELECT s.id FROM stages s WHERE (s.status = 'pending' OR (s.status = 'running' \
     AND s.lease_until < $5)) AND s.os = $6 AND s.arch = $7 AND s.labels = $8 AND (s.kind = $9 \
     OR s.kind = $10) AND NOT EXISTS (SELECT 1 FROM repos WHERE repos.id = s.repo_id AND \
     repos.throttle > 0 AND repos.throttle <= (SELECT COUNT(*) FROM stages r WHERE r.repo_id = \
     s.repo_id AND r.status = 'running' AND r.id <> s.id)) AND (s.concurrency = 0 OR \
     s.concurrency > (SELECT COUNT(*) FROM stages c WHERE c.repo_id = s.repo_id AND c.name = \
     s.name AND c.status = 'running' AND c.id <> s.id)) ORDER BY s.id LIMIT 1) AND (status = \
     'pending' OR (status = 'running' AND lease_until < $11)) RETURNING *";

/// The key of the PostgreSQL advisory lock that serializes claims (any constant works; this
/// one spells "skiffQ").
const CLAIM_LOCK: i64 = 0x736b_6966_6651;

impl Store {
    /// Claims the oldest runnable stage for `runner`, or `None` when nothing matches. A stage
    /// claimed again after an expired lease has its steps reset and its old logs removed.
    pub async fn claim(
        &self,
        runner: &RunnerSpec,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let first = runner.kinds.first().cloned().unwrap_or_default();
        let second = runner
            .kinds
            .get(1)
            .cloned()
            .unwrap_or_else(|| first.clone());
        // A lost race on PostgreSQL returns no row though a stage is there: try a few times.
        for _ in 0..5 {
            let now = now_ms();
            let token = new_token();
            let lease_until = now + lease.as_millis() as i64;
            // The same statement and parameters on either pool.
            macro_rules! claim_query {
                () => {
                    sqlx::query_as::<_, Stage>(CLAIM)
                        .bind(&runner.name)
                        .bind(&token)
                        .bind(lease_until)
                        .bind(now)
                        .bind(now)
                        .bind(&runner.os)
                        .bind(&runner.arch)
                        .bind(&runner.labels)
                        .bind(&first)
                        .bind(&second)
                        .bind(now)
                };
            }
            let claimed: Option<Stage> = match &self.pool {
                Pool::Sqlite(p) => claim_query!().fetch_optional(p).await?,
                Pool::Postgres(p) => {
                    let mut tx = p.begin().await?;
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(CLAIM_LOCK)
                        .execute(&mut *tx)
                        .await?;
                    let claimed = claim_query!().fetch_optional(&mut *tx).await?;
                    tx.commit().await?;
                    claimed
                }
            };
            if let Some(stage) = claimed {
                if stage.attempts > 1 {
                    self.reset_stage(stage.id).await?;
                }
                self.mark_build_running(stage.build_id, now).await?;
                return Ok(Some(Claim {
                    stage,
                    lease_token: token,
                }));
            }
            if !self.anything_claimable(runner).await? {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Whether a claim that updated nothing lost a race (something is still claimable) or
    /// found nothing: pending stages held back by a concurrency limit do not count.
    async fn anything_claimable(&self, runner: &RunnerSpec) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM stages s WHERE (s.status = 'pending' OR \
             (s.status = 'running' AND s.lease_until < $1)) AND s.os = $2 AND s.arch = $3 AND \
             s.labels = $4 AND NOT EXISTS (SELECT 1 FROM repos WHERE repos.id = s.repo_id AND \
             repos.throttle > 0 AND repos.throttle <= (SELECT COUNT(*) FROM stages r WHERE \
             r.repo_id = s.repo_id AND r.status = 'running' AND r.id <> s.id)) AND \
             (s.concurrency = 0 OR s.concurrency > (SELECT COUNT(*) FROM stages c WHERE \
             c.repo_id = s.repo_id AND c.name = s.name AND c.status = 'running' AND c.id <> s.id))";
        let n: i64 = with_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(now_ms())
            .bind(&runner.os)
            .bind(&runner.arch)
            .bind(&runner.labels)
            .fetch_one(p)
            .await)?;
        Ok(n > 0)
    }

    /// Forgets what an earlier attempt of a stage did.
    async fn reset_stage(&self, stage_id: i64) -> Result<(), StoreError> {
        const LOGS: &str =
            "DELETE FROM logs WHERE step_id IN (SELECT id FROM steps WHERE stage_id = $1)";
        const STEPS: &str = "UPDATE steps SET status = 'pending', exit_code = 0, error = '', \
             started = 0, finished = 0 WHERE stage_id = $1";
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(LOGS).bind(stage_id).execute(&mut *tx).await?;
            sqlx::query(STEPS).bind(stage_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })
    }

    async fn mark_build_running(&self, build_id: i64, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE builds SET status = 'running', started = $1 WHERE id = $2 AND status = 'pending'";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(now)
            .bind(build_id)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Extends the lease of a running stage.
    pub async fn heartbeat(
        &self,
        stage_id: i64,
        lease_token: &str,
        lease: Duration,
    ) -> Result<LeaseState, StoreError> {
        const EXTEND: &str = "UPDATE stages SET lease_until = $1 WHERE id = $2 AND \
             lease_token = $3 AND status = 'running'";
        let until = now_ms() + lease.as_millis() as i64;
        let n = with_pool!(self, |p| sqlx::query(EXTEND)
            .bind(until)
            .bind(stage_id)
            .bind(lease_token)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if n > 0 {
            return Ok(LeaseState::Held);
        }
        match self.stage(stage_id).await? {
            Some(stage) if stage.lease_token == lease_token && stage.status == status::KILLED => {
                Ok(LeaseState::Cancelled)
            }
            _ => Ok(LeaseState::Lost),
        }
    }

    /// Gives a claimed stage back to the queue at once (a runner shutting down cleanly), so the
    /// next claim takes it without waiting for the lease to expire. Its steps and lines are
    /// forgotten at once (live step status had shown them running), as a new claim would.
    pub async fn release_stage(
        &self,
        stage_id: i64,
        lease_token: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE stages SET status = 'pending', lease_until = 0 WHERE id = $1 \
             AND lease_token = $2 AND status = 'running'";
        const LOGS: &str =
            "DELETE FROM logs WHERE step_id IN (SELECT id FROM steps WHERE stage_id = $1)";
        const STEPS: &str = "UPDATE steps SET status = 'pending', exit_code = 0, error = '', \
             started = 0, finished = 0 WHERE stage_id = $1";
        // One transaction: a claim of the released stage waits for it, so it never loses the
        // steps it starts to this reset.
        let n = with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL)
                .bind(stage_id)
                .bind(lease_token)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                sqlx::query(LOGS).bind(stage_id).execute(&mut *tx).await?;
                sqlx::query(STEPS).bind(stage_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<u64, StoreError>(n)
        })?;
        Ok(n > 0)
    }

    /// Records the end of a stage (only for the current lease holder), then moves the build on:
    /// waiting stages whose dependencies are done become pending or skipped, and a build whose
    /// stages are all done gets its final status. Returns false when the lease was lost.
    pub async fn finish_stage(
        &self,
        stage_id: i64,
        lease_token: &str,
        outcome: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE stages SET status = $1, error = $2, finished = $3, \
             lease_until = 0 WHERE id = $4 AND lease_token = $5 AND status IN ('running', 'killed') \
             RETURNING build_id";
        let build_id: Option<i64> = with_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(outcome)
            .bind(error)
            .bind(now_ms())
            .bind(stage_id)
            .bind(lease_token)
            .fetch_optional(p)
            .await)?;
        let Some(build_id) = build_id else {
            return Ok(false);
        };
        self.advance_build(build_id).await?;
        Ok(true)
    }

    /// Releases waiting stages whose dependencies are done, and finishes the build when every
    /// stage is done. Idempotent: each update only applies to rows still in the old state.
    pub async fn advance_build(&self, build_id: i64) -> Result<(), StoreError> {
        const RELEASE: &str = "UPDATE stages SET status = $1, finished = $2 WHERE id = $3 AND \
             status = 'waiting'";
        loop {
            let stages = self.stages(build_id).await?;
            let mut changed = false;
            for stage in stages.iter().filter(|s| s.status == status::WAITING) {
                let deps = stage.dependencies();
                let dep_rows: Vec<&Stage> =
                    stages.iter().filter(|s| deps.contains(&s.name)).collect();
                if dep_rows.iter().any(|d| !status::is_done(&d.status)) {
                    continue;
                }
                let failed = dep_rows.iter().any(|d| {
                    matches!(
                        d.status.as_str(),
                        status::FAILURE | status::ERROR | status::KILLED
                    )
                });
                let run = if failed {
                    stage.on_failure
                } else {
                    stage.on_success
                };
                let (next, finished) = if run {
                    (status::PENDING, 0)
                } else {
                    (status::SKIPPED, now_ms())
                };
                with_pool!(self, |p| sqlx::query(RELEASE)
                    .bind(next)
                    .bind(finished)
                    .bind(stage.id)
                    .execute(p)
                    .await
                    .map(|_| ()))?;
                changed = true;
            }
            if changed {
                continue;
            }
            if stages.iter().all(|s| status::is_done(&s.status)) {
                let outcome = build_outcome(&stages);
                self.finish_build(build_id, outcome, "").await?;
            }
            return Ok(());
        }
    }

    /// Sets a build's final status once.
    pub async fn finish_build(
        &self,
        build_id: i64,
        outcome: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE builds SET status = $1, error = $2, finished = $3 WHERE id = $4 \
             AND finished = 0";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(outcome)
            .bind(error)
            .bind(now_ms())
            .bind(build_id)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Cancels a build: stages not started (or blocked) are skipped, running ones marked killed (their
    /// runner sees it at its next heartbeat and stops), and the build ends `killed`.
    pub async fn cancel_build(&self, build: &Build) -> Result<(), StoreError> {
        const SKIP: &str = "UPDATE stages SET status = 'skipped', finished = $1 WHERE build_id = $2 \
             AND status IN ('pending', 'waiting', 'blocked')";
        const KILL: &str =
            "UPDATE stages SET status = 'killed' WHERE build_id = $1 AND status = 'running'";
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(SKIP)
                .bind(now_ms())
                .bind(build.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(KILL).bind(build.id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.finish_build(build.id, status::KILLED, "cancelled")
            .await
    }

    /// `(status, count)` of builds and of stages, for metrics.
    pub async fn status_counts(
        &self,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>), StoreError> {
        const BUILDS: &str = "SELECT status, COUNT(*) FROM builds GROUP BY status ORDER BY status";
        const STAGES: &str = "SELECT status, COUNT(*) FROM stages GROUP BY status ORDER BY status";
        let builds: Vec<(String, i64)> =
            with_pool!(self, |p| sqlx::query_as(BUILDS).fetch_all(p).await)?;
        let stages: Vec<(String, i64)> =
            with_pool!(self, |p| sqlx::query_as(STAGES).fetch_all(p).await)?;
        Ok((builds, stages))
    }

    /// Counts stages by status (metrics, tests).
    pub async fn count_stages(&self, state: &str) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM stages WHERE status = $1";
        Ok(with_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(state)
            .fetch_one(p)
            .await)?)
    }
}

/// A build fails if any stage failed or errored; it is killed if a stage was killed.
fn build_outcome(stages: &[Stage]) -> &'static str {
    if stages.iter().any(|s| s.status == status::KILLED) {
        status::KILLED
    } else if stages
        .iter()
        .any(|s| s.status == status::FAILURE || s.status == status::ERROR)
    {
        status::FAILURE
    } else {
        status::SUCCESS
    }
}

/// A lease token: unique per claim.
fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}{:08x}", h.finish(), std::process::id())
}
