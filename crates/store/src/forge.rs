//! Forge settings of a repository (kind, API URL, sealed token) and the record of which build
//! state was last claimed for a commit status report, so the server reports each state of a
//! build once, in order, even with several replicas.

use crate::model::status;
use crate::{Build, Store, StoreError, now_ms, with_pool};
use serde::Serialize;

/// Where a repository lives and how to reach its API. The token is sealed by the server key;
/// an empty `sealed_token` means statuses are not reported (the kind came from a webhook).
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct ForgeSettings {
    pub repo_id: i64,
    /// `gitea`, `github` or `gitlab`.
    pub kind: String,
    /// The API base (`https://api.github.com`, a Gitea or GitLab server's URL).
    pub api_url: String,
    #[serde(skip)]
    pub sealed_token: Vec<u8>,
    /// Builds created from this time (unix ms) on are reported.
    pub since: i64,
    pub updated: i64,
}

impl ForgeSettings {
    pub fn has_token(&self) -> bool {
        !self.sealed_token.is_empty()
    }
}

/// How far a build state is along, for reports that must never go backwards.
pub fn report_rank(state: &str) -> i64 {
    match state {
        status::PENDING | status::WAITING => 0,
        status::RUNNING => 1,
        _ => 2,
    }
}

impl Store {
    /// Sets a repository's forge. `sealed_token: None` keeps the stored token (when the kind
    /// and URL stay the same; otherwise the token is dropped, it belongs to the old forge).
    pub async fn put_forge(
        &self,
        repo_id: i64,
        kind: &str,
        api_url: &str,
        sealed_token: Option<&[u8]>,
    ) -> Result<ForgeSettings, StoreError> {
        let old = self.forge(repo_id).await?;
        let token: Vec<u8> = match (sealed_token, &old) {
            (Some(token), _) => token.to_vec(),
            (None, Some(old)) if old.kind == kind && old.api_url == api_url => {
                old.sealed_token.clone()
            }
            _ => Vec::new(),
        };
        const SQL: &str = "INSERT INTO repo_forges (repo_id, kind, api_url, sealed_token, since, \
             updated) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (repo_id) DO UPDATE SET \
             kind = excluded.kind, api_url = excluded.api_url, sealed_token = excluded.sealed_token, \
             since = excluded.since, updated = excluded.updated RETURNING *";
        let now = now_ms();
        Ok(with_pool!(self, |p| sqlx::query_as::<_, ForgeSettings>(
            SQL
        )
        .bind(repo_id)
        .bind(kind)
        .bind(api_url)
        .bind(&token)
        .bind(now)
        .bind(now)
        .fetch_one(p)
        .await)?)
    }

    /// Records the forge a webhook came from, unless the repository has one set already.
    pub async fn note_forge_kind(
        &self,
        repo_id: i64,
        kind: &str,
        api_url: &str,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO repo_forges (repo_id, kind, api_url, sealed_token, since, \
             updated) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (repo_id) DO NOTHING";
        let now = now_ms();
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(repo_id)
            .bind(kind)
            .bind(api_url)
            .bind(Vec::<u8>::new())
            .bind(now)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    pub async fn forge(&self, repo_id: i64) -> Result<Option<ForgeSettings>, StoreError> {
        const SQL: &str = "SELECT * FROM repo_forges WHERE repo_id = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, ForgeSettings>(
            SQL
        )
        .bind(repo_id)
        .fetch_optional(p)
        .await)?)
    }

    pub async fn delete_forge(&self, repo_id: i64) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM repo_forges WHERE repo_id = $1";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(repo_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Claims the report of `state` for a build: true for exactly one caller per state, and
    /// only while the state is further along than the last one claimed.
    pub async fn claim_forge_report(&self, build_id: i64, state: &str) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO forge_reports (build_id, state, rank, updated) VALUES \
             ($1, $2, $3, $4) ON CONFLICT (build_id) DO UPDATE SET state = excluded.state, \
             rank = excluded.rank, updated = excluded.updated WHERE forge_reports.rank < \
             excluded.rank RETURNING build_id";
        let claimed: Option<i64> = with_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(build_id)
            .bind(state)
            .bind(report_rank(state))
            .bind(now_ms())
            .fetch_optional(p)
            .await)?;
        Ok(claimed.is_some())
    }

    /// The state last claimed for a build's report, if any.
    pub async fn forge_report(&self, build_id: i64) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT state FROM forge_reports WHERE build_id = $1";
        Ok(with_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(build_id)
            .fetch_optional(p)
            .await)?)
    }

    /// Builds created before `created_before` (unix ms) in repositories with a forge token,
    /// whose current state was not claimed for a report yet (the sweep that catches
    /// transitions nobody noticed), oldest first.
    pub async fn unreported_builds(
        &self,
        created_before: i64,
        limit: i64,
    ) -> Result<Vec<Build>, StoreError> {
        const SQL: &str = "SELECT builds.* FROM builds JOIN repo_forges ON repo_forges.repo_id = \
             builds.repo_id LEFT JOIN forge_reports ON forge_reports.build_id = builds.id \
             WHERE builds.created >= repo_forges.since AND repo_forges.sealed_token <> $1 AND \
             (forge_reports.state IS NULL OR (forge_reports.state <> builds.status AND \
             forge_reports.rank < 2)) AND builds.created < $2 ORDER BY builds.id LIMIT $3";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Build>(SQL)
            .bind(Vec::<u8>::new())
            .bind(created_before)
            .bind(limit)
            .fetch_all(p)
            .await)?)
    }
}
