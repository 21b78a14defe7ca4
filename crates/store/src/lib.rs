//! Skiff's database: the schema, migrations and every query of the CI control plane, on SQLite
//! (the embedded default) and PostgreSQL (for several replicas), with one typed pool per backend
//! rather than sqlx's `Any` driver (see `../shared/research/rust-stack.md` §4).
//!
//! Each backend has its own migration history (`migrations/sqlite`, `migrations/postgres`); the
//! SQL of the queries is shared, so it sticks to what both understand: `$N` parameters used in
//! order, `RETURNING`, `ON CONFLICT`, integer unix-millisecond timestamps, booleans only as bound
//! parameters. The same test suite (`tests/store_*.rs`) runs on both.
//!
//! The build queue ([`queue`]) lives here too: stages wait as rows and runners claim them under a
//! lease, so a killed server or runner neither loses nor duplicates a build.

mod error;
mod forge;
mod gates;
mod model;
mod people;
mod queries;
pub mod queue;

pub use error::StoreError;
pub use forge::{ForgeSettings, report_rank};
pub use gates::RepoSettings;
pub use model::*;
pub use people::*;
pub use queue::{Claim, LeaseState, RunnerSpec};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same expression on whichever pool the store has; `$p` is the typed pool.
macro_rules! with_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::Pool::Sqlite($p) => $body,
            $crate::Pool::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_pool;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool: Pool::Sqlite(pool),
        })
    }

    /// Connects to `url` (`postgres://…` or `sqlite://PATH`) and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            return Self::open_sqlite(Path::new(path)).await;
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|_| StoreError::BadUrl { url: redact(url) })?;
            return Self::connect_postgres(options).await;
        }
        Err(StoreError::BadUrl { url: redact(url) })
    }

    async fn connect_postgres(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool: Pool::Postgres(pool),
        })
    }

    /// Creates a new, empty PostgreSQL database on the server `url` names and returns its URL:
    /// each test gets its own database on a shared server (and can reconnect to it).
    pub async fn create_postgres_database(url: &str) -> Result<String, StoreError> {
        let bad = || StoreError::BadUrl { url: redact(url) };
        let base = PgConnectOptions::from_str(url).map_err(|_| bad())?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(base)
            .await?;
        let name = format!("skiff_test_{}", random_suffix());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        admin.close().await;
        // postgres://user@host:port/db?query -> the same with the new database.
        let scheme_end = url.find("://").ok_or_else(bad)? + 3;
        let (head, query) = match url.find('?') {
            Some(q) => (&url[..q], &url[q..]),
            None => (url, ""),
        };
        let authority_end = head[scheme_end..]
            .find('/')
            .map(|i| i + scheme_end)
            .unwrap_or(head.len());
        Ok(format!("{}/{name}{query}", &head[..authority_end]))
    }

    /// [`Store::create_postgres_database`] and connect to it.
    pub async fn fresh_postgres(url: &str) -> Result<Self, StoreError> {
        Self::connect(&Self::create_postgres_database(url).await?).await
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Checks the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        with_pool!(self, |p| p.close().await)
    }
}

/// The current time in unix milliseconds, the unit of every timestamp in the schema.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A database URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i64(now_ms());
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}
