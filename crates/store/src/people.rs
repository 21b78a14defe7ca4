//! People and permissions: user management, API tokens by id, browser sessions, repository
//! owners and members, organisation secrets and per-runner tokens (migration 0004). Kept apart
//! from `queries.rs` so the queries of other areas stay where they were.

use crate::{Store, StoreError, User, now_ms, with_pool};
use serde::{Deserialize, Serialize};

/// An API token as its owner sees it: never the value, which only its creator saw once.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub created: i64,
}

/// A member of a repository with a role (`read`, `write`, `admin`).
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct Member {
    pub login: String,
    pub role: String,
    pub created: i64,
}

/// A browser session found by its cookie.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user: User,
    pub csrf_token: String,
    pub expires: i64,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    user_id: i64,
    csrf_token: String,
    expires: i64,
}

/// An organisation secret as stored: the value sealed by the server's key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgSecretRow {
    pub id: i64,
    pub org: String,
    pub name: String,
    pub sealed: Vec<u8>,
    pub pull_request: bool,
    pub created: i64,
}

/// A remote runner allowed to claim stages with its own token.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, Deserialize)]
pub struct RunnerRow {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created: i64,
    /// Unix ms of its last `/rpc/v1` call (0: never).
    pub last_seen: i64,
}

/// The changes `update_user` makes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub password_hash: Option<String>,
    pub admin: Option<bool>,
    pub active: Option<bool>,
}

/// Orders roles: `read` < `write` < `admin`; anything else ranks below `read`.
pub fn role_rank(role: &str) -> u8 {
    match role {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

impl Store {
    // ---- users ----

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        const SQL: &str = "SELECT * FROM users ORDER BY login";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, User>(SQL)
            .fetch_all(p)
            .await)?)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        const SQL: &str = "SELECT * FROM users WHERE id = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, User>(SQL)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    /// Applies `changes` to user `login`; `None` if there is no such user.
    pub async fn update_user(
        &self,
        login: &str,
        changes: &UserChanges,
    ) -> Result<Option<User>, StoreError> {
        const SQL: &str = "UPDATE users SET password_hash = COALESCE($1, password_hash), \
             admin = COALESCE($2, admin), active = COALESCE($3, active) WHERE login = $4 \
             RETURNING *";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, User>(SQL)
            .bind(&changes.password_hash)
            .bind(changes.admin)
            .bind(changes.active)
            .bind(login)
            .fetch_optional(p)
            .await)?)
    }

    /// Deletes a user with their tokens, sessions and memberships; repositories they added
    /// lose their owner.
    pub async fn delete_user(&self, login: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM users WHERE login = $1";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(login)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Active site admins other than `except_id`: a server must keep at least one.
    pub async fn count_other_active_admins(&self, except_id: i64) -> Result<i64, StoreError> {
        const SQL: &str =
            "SELECT COUNT(*) FROM users WHERE admin = $1 AND active = $2 AND id <> $3";
        let n: i64 = with_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(true)
            .bind(true)
            .bind(except_id)
            .fetch_one(p)
            .await)?;
        Ok(n)
    }

    // ---- API tokens ----

    /// Records a named API token by the hash of its value and returns what its owner may see.
    pub async fn add_token(
        &self,
        user_id: i64,
        token_hash: &str,
        name: &str,
    ) -> Result<TokenInfo, StoreError> {
        const SQL: &str = "INSERT INTO tokens (user_id, token_hash, name, created) \
             VALUES ($1, $2, $3, $4) RETURNING id, name, created";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, TokenInfo>(SQL)
            .bind(user_id)
            .bind(token_hash)
            .bind(name)
            .bind(now_ms())
            .fetch_one(p)
            .await)?)
    }

    pub async fn tokens_of(&self, user_id: i64) -> Result<Vec<TokenInfo>, StoreError> {
        const SQL: &str = "SELECT id, name, created FROM tokens WHERE user_id = $1 ORDER BY id";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, TokenInfo>(SQL)
            .bind(user_id)
            .fetch_all(p)
            .await)?)
    }

    /// Revokes one of `user_id`'s tokens; false if they have no token `id`.
    pub async fn delete_token(&self, user_id: i64, id: i64) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM tokens WHERE user_id = $1 AND id = $2";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(user_id)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Revokes a token by the hash of its value (`logout` with a bearer token).
    pub async fn delete_token_by_hash(&self, token_hash: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM tokens WHERE token_hash = $1";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(token_hash)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    // ---- browser sessions ----

    pub async fn create_session(
        &self,
        user_id: i64,
        session_hash: &str,
        csrf_token: &str,
        expires: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO sessions (user_id, session_hash, csrf_token, created, \
             expires) VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(user_id)
            .bind(session_hash)
            .bind(csrf_token)
            .bind(now_ms())
            .bind(expires)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The session whose cookie hashes to `session_hash`, if it has not expired by `now`.
    pub async fn session(
        &self,
        session_hash: &str,
        now: i64,
    ) -> Result<Option<SessionInfo>, StoreError> {
        const SQL: &str = "SELECT user_id, csrf_token, expires FROM sessions \
             WHERE session_hash = $1 AND expires > $2";
        let row: Option<SessionRow> = with_pool!(self, |p| sqlx::query_as::<_, SessionRow>(SQL)
            .bind(session_hash)
            .bind(now)
            .fetch_optional(p)
            .await)?;
        let Some(row) = row else { return Ok(None) };
        Ok(self.user_by_id(row.user_id).await?.map(|user| SessionInfo {
            user,
            csrf_token: row.csrf_token,
            expires: row.expires,
        }))
    }

    pub async fn delete_session(&self, session_hash: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE session_hash = $1";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(session_hash)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Forgets sessions that expired before `now`.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE expires <= $1";
        Ok(with_pool!(self, |p| sqlx::query(SQL)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }

    // ---- repository owners and members ----

    /// Records who added a repository (they administer it).
    pub async fn set_repo_owner(&self, repo_id: i64, user_id: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE repos SET owner_user_id = $1 WHERE id = $2";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(user_id)
            .bind(repo_id)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The user who added the repository, if they still exist.
    pub async fn repo_owner(&self, repo_id: i64) -> Result<Option<User>, StoreError> {
        const SQL: &str = "SELECT users.* FROM users JOIN repos ON repos.owner_user_id = users.id WHERE repos.id = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, User>(SQL)
            .bind(repo_id)
            .fetch_optional(p)
            .await)?)
    }

    /// `user_id`'s role on a repository: `admin` for its owner, else their member role.
    pub async fn repo_role(
        &self,
        repo_id: i64,
        user_id: i64,
    ) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT 'admin' FROM repos WHERE id = $1 AND owner_user_id = $2 \
             UNION ALL SELECT role FROM repo_members WHERE repo_id = $3 AND user_id = $4";
        let roles: Vec<String> = with_pool!(self, |p| sqlx::query_scalar(SQL)
            .bind(repo_id)
            .bind(user_id)
            .bind(repo_id)
            .bind(user_id)
            .fetch_all(p)
            .await)?;
        // The owner's `admin` outranks any member row.
        Ok(roles.into_iter().max_by_key(|r| role_rank(r)))
    }

    /// Every repository `user_id` owns or is a member of, with the role (owners: `admin`).
    pub async fn repo_roles_of(&self, user_id: i64) -> Result<Vec<(i64, String)>, StoreError> {
        const SQL: &str = "SELECT id, 'admin' FROM repos WHERE owner_user_id = $1 \
             UNION ALL SELECT repo_id, role FROM repo_members WHERE user_id = $2";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, (i64, String)>(
            SQL
        )
        .bind(user_id)
        .bind(user_id)
        .fetch_all(p)
        .await)?)
    }

    pub async fn members(&self, repo_id: i64) -> Result<Vec<Member>, StoreError> {
        const SQL: &str = "SELECT users.login, repo_members.role, repo_members.created \
             FROM repo_members JOIN users ON users.id = repo_members.user_id \
             WHERE repo_members.repo_id = $1 ORDER BY users.login";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, Member>(SQL)
            .bind(repo_id)
            .fetch_all(p)
            .await)?)
    }

    /// Adds a member or changes their role.
    pub async fn put_member(
        &self,
        repo_id: i64,
        user_id: i64,
        role: &str,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO repo_members (repo_id, user_id, role, created) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (repo_id, user_id) DO UPDATE SET role = excluded.role";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(repo_id)
            .bind(user_id)
            .bind(role)
            .bind(now_ms())
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn delete_member(&self, repo_id: i64, user_id: i64) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM repo_members WHERE repo_id = $1 AND user_id = $2";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(repo_id)
            .bind(user_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    // ---- organisation secrets ----

    /// Creates or replaces an organisation secret (already sealed by the caller).
    pub async fn put_org_secret(
        &self,
        org: &str,
        name: &str,
        sealed: &[u8],
        pull_request: bool,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO org_secrets (org, name, sealed, pull_request, created) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, name) DO UPDATE SET \
             sealed = excluded.sealed, pull_request = excluded.pull_request";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(org)
            .bind(name)
            .bind(sealed)
            .bind(pull_request)
            .bind(now_ms())
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn org_secrets(&self, org: &str) -> Result<Vec<OrgSecretRow>, StoreError> {
        const SQL: &str = "SELECT * FROM org_secrets WHERE org = $1 ORDER BY name";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, OrgSecretRow>(
            SQL
        )
        .bind(org)
        .fetch_all(p)
        .await)?)
    }

    pub async fn delete_org_secret(&self, org: &str, name: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM org_secrets WHERE org = $1 AND name = $2";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(org)
            .bind(name)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    // ---- runner tokens ----

    pub async fn create_runner(
        &self,
        name: &str,
        token_hash: &str,
    ) -> Result<RunnerRow, StoreError> {
        const SQL: &str =
            "INSERT INTO runners (name, token_hash, created) VALUES ($1, $2, $3) RETURNING *";
        with_pool!(self, |p| sqlx::query_as::<_, RunnerRow>(SQL)
            .bind(name)
            .bind(token_hash)
            .bind(now_ms())
            .fetch_one(p)
            .await)
        .map_err(|e| StoreError::conflict_on_unique(e, format!("runner `{name}`")))
    }

    pub async fn runners(&self) -> Result<Vec<RunnerRow>, StoreError> {
        const SQL: &str = "SELECT * FROM runners ORDER BY name";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, RunnerRow>(SQL)
            .fetch_all(p)
            .await)?)
    }

    pub async fn runner_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<RunnerRow>, StoreError> {
        const SQL: &str = "SELECT * FROM runners WHERE token_hash = $1";
        Ok(with_pool!(self, |p| sqlx::query_as::<_, RunnerRow>(SQL)
            .bind(token_hash)
            .fetch_optional(p)
            .await)?)
    }

    /// Revokes a runner's token.
    pub async fn delete_runner(&self, name: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM runners WHERE name = $1";
        let n = with_pool!(self, |p| sqlx::query(SQL)
            .bind(name)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Records that a runner called in at `now`; skips the write when it did so less than
    /// `granularity_ms` ago, so log uploads do not each write the row.
    pub async fn touch_runner(
        &self,
        id: i64,
        now: i64,
        granularity_ms: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE runners SET last_seen = $1 WHERE id = $2 AND last_seen < $3";
        with_pool!(self, |p| sqlx::query(SQL)
            .bind(now)
            .bind(id)
            .bind(now - granularity_ms)
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
