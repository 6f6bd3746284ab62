//! The SQLite backend: one database file in WAL mode, one writer connection, and the
//! checkpoints that copy the WAL back beside it.
//!
//! What differs from PostgreSQL is here and only here: how connections are opened, how
//! the write lock is taken (`BEGIN IMMEDIATE`: SQLite has one writer at a time), and the
//! few `Backend` constants. The SQL is the aggregates' (`backend` says how).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Row, Sqlite};

use super::StoreError;
use super::backend::{Backend, SqlStore, reusable};
use super::settings::{SqliteSync, StoreConfig};

pub type SqliteStore = SqlStore<Sqlite>;

impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";
    const POSTGRES: bool = false;
    const BEGIN_LOCKED: Option<&'static str> = Some("BEGIN IMMEDIATE");
    const LOCK_SUFFIX: &'static str = "";
    // A read transaction in WAL mode sees one snapshot from its first read.
    const BEGIN_SNAPSHOT: Option<&'static str> = None;
    // `BEGIN IMMEDIATE` already serialises migrating daemons.
    const MIGRATION_LOCK: Option<&'static str> = None;
    const ARRIVAL: &'static str = "rowid";
    // One writer at a time: a claim never meets another's locked rows.
    const SKIP_LOCKED: &'static str = "";
    const REFRESH_IN_PLACE: bool = true;

    fn rows_affected(r: &Self::QueryResult) -> u64 {
        r.rows_affected()
    }
}

impl SqlStore<Sqlite> {
    pub async fn connect(cfg: &StoreConfig) -> Result<Self, StoreError> {
        let sync = match cfg.sqlite_synchronous {
            SqliteSync::Normal => SqliteSynchronous::Normal,
            SqliteSync::Full => SqliteSynchronous::Full,
        };
        let opts = SqliteConnectOptions::from_str(&cfg.url)
            .map_err(|_| StoreError::BadUrl(cfg.url.clone()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            // Statement journals (multi-row upserts) in memory, not in a temp file.
            .pragma("temp_store", "memory")
            // 2 MiB of page cache on a reading connection (the OS caches the file too).
            .pragma("cache_size", "-2048")
            // Checkpoints run beside the writer (below), not inside its commits.
            .pragma("wal_autocheckpoint", "0");
        let in_memory = cfg.url.contains(":memory:") || cfg.url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(cfg.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .after_release(reusable::<Sqlite>)
            .connect_with(opts.clone())
            .await?;
        // An in-memory database is private to its connection's pool: one pool then.
        let writer = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                // Writers queue here (the writer task, outbox delivery, API edits) rather
                // than on SQLite's busy timeout.
                .acquire_timeout(Duration::from_secs(30))
                // Kept for the daemon's life, and with it the cache (replaced only when a
                // failed write left it unusable: `reusable`).
                .idle_timeout(None)
                .max_lifetime(None)
                .after_release(reusable::<Sqlite>)
                // 8 MiB of page cache for the writer: the default 2 MiB re-reads index
                // pages of a large alerts table on every batch, and 8 MiB already holds
                // the pages a storm's batches touch, so more would only cost memory.
                .connect_with(opts.pragma("cache_size", "-8192"))
                .await?
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(checkpoints(pool.clone()));
        }
        Ok(SqlStore { pool, writer })
    }
}

/// Copies the WAL back into the database file every second on a connection of its own
/// (sqlx runs each SQLite connection on its own thread, so this uses the other core while
/// the writer goes on). PASSIVE never waits for the writer; when the WAL has grown past
/// 64 MiB anyway, a RESTART waits (at most 100 ms) for a gap so it can start over.
async fn checkpoints(pool: Pool<Sqlite>) {
    const BIG_WAL_PAGES: i64 = 64 * 1024 * 1024 / 4096;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok(row) => {
                let wal_pages: i64 = row.try_get(1).unwrap_or(0);
                if wal_pages > BIG_WAL_PAGES {
                    // RESTART holds new writers back while it waits for readers to leave
                    // the WAL: give up after 100 ms rather than stall ingest (the next
                    // second tries again).
                    if let Ok(mut conn) = pool.acquire().await {
                        let _ = sqlx::query("PRAGMA busy_timeout = 100")
                            .execute(&mut *conn)
                            .await;
                        let _ = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                            .execute(&mut *conn)
                            .await;
                        let _ = sqlx::query("PRAGMA busy_timeout = 30000")
                            .execute(&mut *conn)
                            .await;
                    }
                }
            }
            Err(e) if pool.is_closed() => {
                tracing::debug!(error = %e, "store closed; checkpoints stop");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdb::Ci;
    use crate::store::{CmdbStore, Store};
    use sqlx::AssertSqlSafe;

    fn ci(id: &str, name: &str) -> Ci {
        serde_json::from_value(serde_json::json!({"id": id, "name": name})).unwrap()
    }

    async fn sqlite(dir: &tempfile::TempDir) -> SqliteStore {
        let cfg = StoreConfig {
            url: format!("sqlite://{}", dir.path().join("sift.db").display()),
            ..StoreConfig::default()
        };
        let s = SqliteStore::connect(&cfg).await.unwrap();
        s.migrate().await.unwrap();
        s
    }

    /// A disk that fills mid-write (SQLITE_FULL, here through a page cap on the writer's
    /// connection) fails that write; the next one succeeds once there is room again,
    /// without a restart.
    #[tokio::test]
    async fn a_full_disk_fails_one_write_and_the_writer_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let s = sqlite(&dir).await;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&s.writer)
            .await
            .unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "PRAGMA max_page_count = {}",
            pages + 2
        )))
        .execute(&s.writer)
        .await
        .unwrap();
        let mut failed = false;
        let mut tx = s.begin().await.unwrap();
        for i in 0..200 {
            let ci = ci(&format!("ci-{i}"), &"x".repeat(4000));
            if tx.upsert_cis(&[ci]).await.is_err() {
                failed = true;
                break;
            }
        }
        let commit = tx.commit().await;
        assert!(failed || commit.is_err(), "the page cap never bit");
        // Room again (a new connection has no cap; the old one may keep it).
        sqlx::query("PRAGMA max_page_count = 1073741823")
            .execute(&s.writer)
            .await
            .ok();
        let mut tx = s
            .begin()
            .await
            .expect("a write after a full disk must begin");
        tx.upsert_cis(&[ci("after", "after")]).await.unwrap();
        tx.commit().await.expect("and commit");
        assert!(
            s.load_cmdb()
                .await
                .unwrap()
                .cis
                .iter()
                .any(|c| c.id == "after")
        );
    }
}
