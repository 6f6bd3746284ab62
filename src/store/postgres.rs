//! The PostgreSQL backend: a pool of connections, the write lock a `SELECT … FOR UPDATE`
//! of the `sift_state` row.
//!
//! What differs from SQLite is here and only here: how connections are opened, the
//! statements that take locks, and the few `Backend` constants. The SQL is the
//! aggregates' (`backend` says how).

use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::StoreError;
use super::backend::{Backend, SqlStore, reusable};
use super::settings::StoreConfig;

pub type PostgresStore = SqlStore<Postgres>;

impl Backend for Postgres {
    const NAME: &'static str = "postgres";
    const POSTGRES: bool = true;
    const BEGIN_LOCKED: Option<&'static str> = None;
    const LOCK_SUFFIX: &'static str = " FOR UPDATE";
    const BEGIN_SNAPSHOT: Option<&'static str> =
        Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    // Several daemons starting at once: one migrates, the others wait.
    const MIGRATION_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(7461626)");
    // Schema v7's `ord` (PostgreSQL has no rowid).
    const ARRIVAL: &'static str = "ord";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    // The in-place update is the same work as the upsert here: `seq` changes and is
    // indexed (catch-up reads by it), so no update of an alert row is HOT; every rewrite
    // is a new tuple with entries in all six indexes. A join-update only adds planning.
    const REFRESH_IN_PLACE: bool = false;

    fn rows_affected(r: &Self::QueryResult) -> u64 {
        r.rows_affected()
    }
}

impl SqlStore<Postgres> {
    pub async fn connect(cfg: &StoreConfig) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(&cfg.url)
            .map_err(|_| StoreError::BadUrl(cfg.url.clone()))?;
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .after_release(reusable::<Postgres>)
            .connect_with(opts)
            .await?;
        Ok(SqlStore {
            writer: pool.clone(),
            pool,
        })
    }
}
