//! The two sqlx implementations of `Store`. Their SQL is identical (`$N` placeholders,
//! `ON CONFLICT` upserts work on both), so one macro writes both; what differs is how a
//! connection is opened and how the write lock is taken: SQLite `BEGIN IMMEDIATE` (WAL,
//! one writer), PostgreSQL `SELECT … FOR UPDATE` on the `sift_state` row.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use compact_str::CompactString;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Pool, Postgres, QueryBuilder, Row, Sqlite, Transaction};

use super::RetryOutcome;
use super::journal::{self, JournalEntry, JournalRow};
use super::{
    AlertPage, AlertQuery, ChangeQuery, FeedbackQuery, IncidentQuery, OccurrenceHistory, StateRow,
    Store, StoreError, WriteTx,
};
use crate::alert::Fingerprint;
use crate::causality::overrides::{LearnedGraph, Override};
use crate::cmdb::{Change, Ci, CmdbFile, Relation};
use crate::config::{SqliteSync, StoreConfig};
use crate::correlate::{AlertRecord, EditKind, FeedbackPair, Label};
use crate::incident::{Incident, TimelineEntry, TimelineKind};
use crate::outbox::{Event, OutboxEntry, Outcome, Subscription};
use crate::problem::{HistoryRecord, ProblemCandidate, ProblemStatus};

/// Embedded migrations: (version, name, SQLite text, PostgreSQL text).
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "changes",
        include_str!("../../migrations/sqlite/0002_changes.sql"),
        include_str!("../../migrations/postgres/0002_changes.sql"),
    ),
    (
        3,
        "problems",
        include_str!("../../migrations/sqlite/0003_problems.sql"),
        include_str!("../../migrations/postgres/0003_problems.sql"),
    ),
    (
        4,
        "outbox",
        include_str!("../../migrations/sqlite/0004_outbox.sql"),
        include_str!("../../migrations/postgres/0004_outbox.sql"),
    ),
    (
        5,
        "incident_alerts",
        include_str!("../../migrations/sqlite/0005_incident_alerts.sql"),
        include_str!("../../migrations/postgres/0005_incident_alerts.sql"),
    ),
    (
        6,
        "alert_journal",
        include_str!("../../migrations/sqlite/0006_alert_journal.sql"),
        include_str!("../../migrations/postgres/0006_alert_journal.sql"),
    ),
    (
        7,
        "append_keys",
        include_str!("../../migrations/sqlite/0007_append_keys.sql"),
        include_str!("../../migrations/postgres/0007_append_keys.sql"),
    ),
    (
        8,
        "feedback",
        include_str!("../../migrations/sqlite/0008_feedback.sql"),
        include_str!("../../migrations/postgres/0008_feedback.sql"),
    ),
    (
        9,
        "causality",
        include_str!("../../migrations/sqlite/0009_causality.sql"),
        include_str!("../../migrations/postgres/0009_causality.sql"),
    ),
];

/// Rows per multi-row INSERT (well under both databases' bind-parameter limits).
const CHUNK: usize = 500;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, doc: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        err: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(v: &T) -> String {
    // Our own types always serialize.
    serde_json::to_string(v).unwrap_or_default()
}

pub struct SqliteStore {
    /// Reads, checkpoints and the few autocommit statements.
    pool: Pool<Sqlite>,
    /// Write transactions (`BEGIN IMMEDIATE`): one connection, as SQLite takes one writer
    /// at a time anyway. Each SQLite connection has its own page cache; one writer
    /// connection keeps the indexes the writer touches hot in one cache, where a pool
    /// handed each batch to the next connection and grew a cache on each.
    writer: Pool<Sqlite>,
}

pub struct PostgresStore {
    pool: Pool<Postgres>,
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

/// Whether a connection given back to its pool may be used again. A failed write can leave
/// a connection that still counts itself inside a transaction: SQLite rolls a transaction
/// back by itself on some errors (a full disk among them), and the ROLLBACK sent when the
/// transaction is dropped then fails, so every later BEGIN on that connection would fail
/// too. Such a connection is closed and the pool opens a fresh one. The ping first lets a
/// rollback still queued on the connection run, so a healthy one is never closed.
fn reusable<DB: sqlx::Database>(
    conn: &mut DB::Connection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, Result<bool, sqlx::Error>>
where
    DB::Connection: sqlx::Connection,
{
    use sqlx::Connection;
    Box::pin(async move {
        if !conn.is_in_transaction() {
            return Ok(true);
        }
        conn.ping().await?;
        if conn.is_in_transaction() {
            tracing::warn!(
                "a store connection was left inside a failed transaction; opening a new one"
            );
            return Ok(false);
        }
        Ok(true)
    })
}

impl SqliteStore {
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
                // pages of a large alerts table on every batch. Under the load harness
                // (200k alerts) 16 and 64 MiB were no faster, and 16 MiB peaked ~20 MiB
                // higher than 8.
                .connect_with(opts.pragma("cache_size", "-8192"))
                .await?
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(checkpoints(pool.clone()));
        }
        Ok(Self { pool, writer })
    }

    async fn begin_locked(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn close_pools(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Where autocommit writes go: the writer's connection (they queue with the write
    /// transactions there instead of retrying on SQLite's busy timeout).
    fn write_pool(&self) -> &Pool<Sqlite> {
        &self.writer
    }

    /// A read transaction: one WAL snapshot for all its statements.
    async fn begin_snapshot(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    const LOCK_SUFFIX: &'static str = "";
    const PG: bool = false;
}

impl PostgresStore {
    pub async fn connect(cfg: &StoreConfig) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(&cfg.url)
            .map_err(|_| StoreError::BadUrl(cfg.url.clone()))?;
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .after_release(reusable::<Postgres>)
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }

    async fn begin_locked(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    async fn close_pools(&self) {
        self.pool.close().await;
    }

    fn write_pool(&self) -> &Pool<Postgres> {
        &self.pool
    }

    /// A read transaction that sees one snapshot for all its statements.
    async fn begin_snapshot(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }

    const LOCK_SUFFIX: &'static str = " FOR UPDATE";
    const PG: bool = true;
}

/// What a write transaction wrote that the shared counters follow: whether the CMDB
/// changed (every CMDB write bumps `cmdb_version`, which tells other daemons to reload
/// their topology) and the highest incident number written (`next_incident` stays above
/// every stored incident's number, so no daemon hands out a number that is taken).
#[derive(Debug, Default)]
struct Written {
    cmdb: bool,
    next_incident: i64,
}

impl Written {
    fn incidents(&mut self, incs: &[&Incident]) {
        for i in incs {
            self.next_incident = self.next_incident.max(i.number() as i64 + 1);
        }
    }

    /// The counters as this transaction leaves them (`seq` always moves).
    fn state_after(&self, before: StateRow) -> StateRow {
        StateRow {
            seq: before.seq + 1,
            cmdb_version: before.cmdb_version + i64::from(self.cmdb),
            next_incident: self.next_incident.max(before.next_incident),
        }
    }
}

macro_rules! sql_store {
    ($store:ident, $db:ty, $tx:ident) => {
        pub struct $tx {
            tx: Transaction<'static, $db>,
            state: StateRow,
            /// What `commit` writes: see `Written`.
            written: Written,
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                if Self::PG { "postgres" } else { "sqlite" }
            }

            async fn migrate(&self) -> Result<(), StoreError> {
                let mut tx = self.begin_locked().await?;
                if Self::PG {
                    // Several daemons starting at once: one migrates, the others wait.
                    sqlx::query("SELECT pg_advisory_xact_lock(7461626)").execute(&mut *tx).await?;
                }
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS sift_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                )
                .execute(&mut *tx)
                .await?;
                let done: Vec<i64> = sqlx::query("SELECT version FROM sift_migrations")
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<i64, _>(0))
                    .collect::<Result<_, _>>()?;
                let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
                if let Some(newer) = done.iter().copied().filter(|v| *v > known).max() {
                    return Err(StoreError::Migration {
                        version: newer,
                        err: format!(
                            "the store has schema version {newer}, written by a newer sift; this \
                             binary knows up to {known} and would damage it: upgrade this daemon"
                        ),
                    });
                }
                for (version, name, lite, pg) in MIGRATIONS {
                    if done.contains(version) {
                        continue;
                    }
                    let text = if Self::PG { *pg } else { *lite };
                    sqlx::raw_sql(AssertSqlSafe(text))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::Migration { version: *version, err: e.to_string() })?;
                    if *version == 5 {
                        move_members_out_of_docs!($db, &mut *tx)
                            .map_err(|e| StoreError::Migration { version: 5, err: e.to_string() })?;
                    }
                    sqlx::query("INSERT INTO sift_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                        .bind(*version)
                        .bind(*name)
                        .bind(ms(Utc::now()))
                        .execute(&mut *tx)
                        .await?;
                    tracing::info!(version, name, backend = self.backend(), "applied migration");
                }
                tx.commit().await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT seq FROM sift_state WHERE id = 1").fetch_one(&self.pool).await?;
                Ok(())
            }

            async fn cmdb_version(&self) -> Result<i64, StoreError> {
                let row = sqlx::query("SELECT cmdb_version FROM sift_state WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get(0)?)
            }

            async fn close(&self) {
                self.close_pools().await;
            }

            async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError> {
                let mut tx = self.begin_locked().await?;
                let sql = format!(
                    "SELECT seq, cmdb_version, next_incident FROM sift_state WHERE id = 1{}",
                    Self::LOCK_SUFFIX
                );
                let row = sqlx::query(AssertSqlSafe(sql)).fetch_one(&mut *tx).await?;
                let state = StateRow {
                    seq: row.try_get(0)?,
                    cmdb_version: row.try_get(1)?,
                    next_incident: row.try_get(2)?,
                };
                Ok(Box::new($tx { tx, state, written: Written::default() }))
            }

            async fn load_cmdb(&self) -> Result<CmdbFile, StoreError> {
                let mut conn = self.pool.acquire().await?;
                load_cmdb_from!(&mut *conn)
            }

            async fn list_incidents(&self, q: &IncidentQuery) -> Result<Vec<Incident>, StoreError> {
                let mut tx = self.begin_snapshot().await?;
                let rows = sqlx::query(
                    "SELECT doc FROM incidents WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR priority = $2) \
                     AND ($3 IS NULL OR id IN (SELECT incident_id FROM incident_cis WHERE ci_id = $3)) \
                     AND ($4 IS NULL OR number < $4) ORDER BY number DESC LIMIT $5",
                )
                .bind(q.status.map(|s| s.as_str()))
                .bind(q.priority.map(i64::from))
                .bind(q.ci.as_deref())
                .bind(q.before_number.map(|n| n as i64))
                .bind(i64::from(q.limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut incs = decode_docs("incident", rows)?;
                fill_members!($db, &mut *tx, &mut incs);
                tx.commit().await?;
                Ok(incs)
            }

            async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
                let mut tx = self.begin_snapshot().await?;
                let row = sqlx::query("SELECT doc FROM incidents WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let mut incs: Vec<Incident> = row.map(|r| decode("incident", &r.try_get::<String, _>(0)?)).transpose()?.into_iter().collect();
                fill_members!($db, &mut *tx, &mut incs);
                tx.commit().await?;
                Ok(incs.pop())
            }

            async fn timeline(&self, id: &str) -> Result<Vec<TimelineEntry>, StoreError> {
                let rows = sqlx::query(
                    "SELECT at, actor, kind, detail FROM timeline WHERE incident_id = $1 ORDER BY at, id",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(TimelineEntry {
                            incident_id: id.into(),
                            at: from_ms(r.try_get(0)?),
                            actor: r.try_get::<String, _>(1)?.into(),
                            kind: TimelineKind::parse(&r.try_get::<String, _>(2)?),
                            detail: decode("timeline entry", &r.try_get::<String, _>(3)?)?,
                        })
                    })
                    .collect()
            }

            async fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<FeedbackPair>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, at, actor, action, label, incident_id, other_incident_id, a_fingerprint, a_ci, \
                     b_fingerprint, b_ci FROM feedback WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR label = $2) \
                     AND ($3 IS NULL OR incident_id = $3 OR other_incident_id = $3) ORDER BY id LIMIT $4",
                )
                .bind(q.after_id)
                .bind(q.label.map(|l| l.as_str()))
                .bind(q.incident.as_deref())
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        let action: String = r.try_get(3)?;
                        let label: String = r.try_get(4)?;
                        let corrupt = |what: &str, v: &str| StoreError::Corrupt {
                            what: "feedback row".into(),
                            err: format!("unknown {what} {v:?}"),
                        };
                        Ok(FeedbackPair {
                            id: r.try_get(0)?,
                            at: from_ms(r.try_get(1)?),
                            actor: r.try_get(2)?,
                            action: EditKind::parse(&action).ok_or_else(|| corrupt("action", &action))?,
                            label: Label::parse(&label).ok_or_else(|| corrupt("label", &label))?,
                            incident_id: r.try_get(5)?,
                            other_incident_id: r.try_get(6)?,
                            a: Fingerprint(r.try_get::<String, _>(7)?.into()),
                            a_ci: r.try_get(8)?,
                            b: Fingerprint(r.try_get::<String, _>(9)?.into()),
                            b_ci: r.try_get(10)?,
                        })
                    })
                    .collect()
            }

            async fn list_changes(&self, q: &ChangeQuery) -> Result<Vec<Change>, StoreError> {
                let rows = sqlx::query(
                    "SELECT doc FROM changes WHERE ($1 IS NULL OR ci_id = $1) \
                     AND ($2 IS NULL OR (start_at <= $2 AND end_at >= $2)) \
                     ORDER BY start_at DESC, id LIMIT $3",
                )
                .bind(q.ci.as_deref())
                .bind(q.active_at.map(ms))
                .bind(i64::from(q.limit))
                .fetch_all(&self.pool)
                .await?;
                decode_docs("change", rows)
            }

            async fn list_alerts(&self, q: &AlertQuery) -> Result<AlertPage, StoreError> {
                let (before_t, before_ord) = match q.before {
                    Some((t, o)) => (Some(t), Some(o)),
                    None => (None, None),
                };
                // The page and the re-send journal from one snapshot: a flush commits the
                // rewritten row and the journal deletion together.
                let mut tx = self.begin_snapshot().await?;
                // Ties of starts_at in arrival order: SQLite's rowid, PostgreSQL's `ord`
                // (schema v7), both kept by upserts.
                let sql = if Self::PG {
                    "SELECT doc, seq, ord FROM alerts WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR ci_id = $2) \
                     AND ($3 IS NULL OR incident_id = $3) \
                     AND ($4 IS NULL OR starts_at < $4 OR (starts_at = $4 AND ord < $5)) \
                     ORDER BY starts_at DESC, ord DESC LIMIT $6"
                } else {
                    "SELECT doc, seq, rowid FROM alerts WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR ci_id = $2) \
                     AND ($3 IS NULL OR incident_id = $3) \
                     AND ($4 IS NULL OR starts_at < $4 OR (starts_at = $4 AND rowid < $5)) \
                     ORDER BY starts_at DESC, rowid DESC LIMIT $6"
                };
                let rows = sqlx::query(sql)
                .bind(q.status.map(|s| s.as_str()))
                .bind(q.ci.as_deref())
                .bind(q.incident.as_deref())
                .bind(before_t)
                .bind(before_ord)
                .bind(i64::from(q.limit))
                .fetch_all(&mut *tx)
                .await?;
                let last_order = rows.last().map(|r| r.try_get::<i64, _>(2)).transpose()?;
                let mut alerts = decode_alerts(rows)?;
                // Re-sends journaled after a row was written: their count and ends_at.
                if let Some(oldest) = alerts.iter().map(|a| a.persisted.seq).min() {
                    let rows: Vec<(i64, Vec<u8>)> =
                        sqlx::query_as("SELECT seq, body FROM alert_journal WHERE seq > $1 ORDER BY seq")
                            .bind(oldest)
                            .fetch_all(&mut *tx)
                            .await?;
                    if !rows.is_empty() {
                        let mut page: std::collections::HashMap<&str, usize> = alerts
                            .iter()
                            .enumerate()
                            .map(|(i, a)| (a.fingerprint.0.as_str(), i))
                            .collect();
                        type Latest = Option<(i64, u64, Option<DateTime<Utc>>)>;
                        let mut latest: Vec<Latest> = vec![None; alerts.len()];
                        for (seq, body) in rows {
                            journal::scan(seq, &body, |fp, count, end| {
                                if let Some(&i) = page.get(fp) {
                                    latest[i] = Some((seq, count, end));
                                }
                            })?;
                        }
                        page.clear();
                        for (a, l) in alerts.iter_mut().zip(latest) {
                            if let Some((seq, count, end)) = l
                                && seq > a.persisted.seq
                            {
                                a.count = count;
                                a.ends_at = end;
                            }
                        }
                    }
                }
                Ok(AlertPage { alerts, last_order })
            }

            async fn history_since(&self, since: DateTime<Utc>) -> Result<Vec<HistoryRecord>, StoreError> {
                let rows = sqlx::query("SELECT doc FROM history_incidents WHERE opened_at >= $1 ORDER BY opened_at, id")
                    .bind(ms(since))
                    .fetch_all(&self.pool)
                    .await?;
                decode_docs("history record", rows)
            }

            async fn finished_incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError> {
                let rows = sqlx::query("SELECT doc FROM incidents WHERE status IN ('resolved', 'closed') ORDER BY number DESC LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                decode_docs("incident", rows)
            }

            async fn list_problems(&self, status: Option<ProblemStatus>) -> Result<Vec<ProblemCandidate>, StoreError> {
                let rows = sqlx::query("SELECT doc FROM problems WHERE ($1 IS NULL OR status = $1) ORDER BY score DESC, id")
                    .bind(status.map(|s| s.as_str()))
                    .fetch_all(&self.pool)
                    .await?;
                decode_docs("problem", rows)
            }

            async fn get_problem(&self, id: &str) -> Result<Option<ProblemCandidate>, StoreError> {
                let row = sqlx::query("SELECT doc FROM problems WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| decode("problem", &r.try_get::<String, _>(0)?)).transpose()
            }

            async fn alert_occurrences(&self, since: DateTime<Utc>, limit: u32) -> Result<OccurrenceHistory, StoreError> {
                use futures_util::TryStreamExt;
                #[derive(serde::Deserialize)]
                struct Joined {
                    fingerprint: String,
                }
                #[derive(serde::Deserialize)]
                struct Doc {
                    labels: crate::labels::Labels,
                }
                // When the limit bites, the newest are kept: the start of the newest `limit`
                // is found first (a sort of times only), then the rows are streamed in table
                // order, unsorted, so neither database holds a million documents in a sorter
                // and only the parsed occurrences are held here. The detail is parsed here,
                // not with the databases' JSON functions (one that PostgreSQL's parser
                // refuses must not fail the whole read).
                let mut out = OccurrenceHistory::default();
                let limit = u64::from(limit);
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM timeline WHERE kind = 'alert_joined' AND at >= $1",
                )
                .bind(ms(since))
                .fetch_one(&self.pool)
                .await?;
                let total = total.max(0) as u64;
                let from: i64 = if total > limit && limit > 0 {
                    sqlx::query_scalar(
                        "SELECT at FROM timeline WHERE kind = 'alert_joined' AND at >= $1 \
                         ORDER BY at DESC LIMIT 1 OFFSET $2",
                    )
                    .bind(ms(since))
                    .bind((limit - 1) as i64)
                    .fetch_optional(&self.pool)
                    .await?
                    .unwrap_or(ms(since))
                } else {
                    ms(since)
                };
                let mut ix: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
                let mut fps: Vec<String> = Vec::new();
                let mut occ: Vec<(u32, i64)> = Vec::new();
                let mut seen = 0u64;
                {
                    let mut rows = sqlx::query_as::<_, (i64, String)>(
                        "SELECT at, detail FROM timeline WHERE kind = 'alert_joined' AND at >= $1",
                    )
                    .bind(from)
                    .fetch(&self.pool);
                    // Ties at `from` can make more than `limit`: those past it are left out.
                    while seen < limit
                        && let Some((at, detail)) = rows.try_next().await?
                    {
                        seen += 1;
                        let Ok(j) = serde_json::from_str::<Joined>(&detail) else {
                            out.orphaned += 1;
                            continue;
                        };
                        let k = match ix.get(&j.fingerprint) {
                            Some(&k) => k,
                            None => {
                                let k = fps.len() as u32;
                                ix.insert(j.fingerprint.clone(), k);
                                fps.push(j.fingerprint);
                                k
                            }
                        };
                        occ.push((k, at));
                    }
                }
                out.left_out = total.saturating_sub(seen);
                drop(ix);
                // The alert rows of those fingerprints: labels and CI.
                let mut found: Vec<Option<u32>> = vec![None; fps.len()];
                let mut at_of: std::collections::HashMap<&str, u32> =
                    fps.iter().enumerate().map(|(i, f)| (f.as_str(), i as u32)).collect();
                for chunk in fps.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("SELECT fingerprint, ci_id, doc FROM alerts WHERE fingerprint IN (");
                    let mut sep = qb.separated(", ");
                    for f in chunk {
                        sep.push_bind(f.clone());
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(&self.pool).await? {
                        let fp: String = r.try_get(0)?;
                        let ci: Option<String> = r.try_get(1)?;
                        let doc: String = r.try_get(2)?;
                        let (Some(&k), Ok(d)) = (at_of.get(fp.as_str()), serde_json::from_str::<Doc>(&doc)) else {
                            continue;
                        };
                        found[k as usize] = Some(out.alerts.len() as u32);
                        out.alerts.push((d.labels, ci));
                    }
                }
                at_of.clear();
                out.occurrences = occ
                    .into_iter()
                    .filter_map(|(k, at)| match found[k as usize] {
                        Some(a) => Some((a, at)),
                        None => {
                            out.orphaned += 1;
                            None
                        }
                    })
                    .collect();
                Ok(out)
            }

            async fn load_causality(&self) -> Result<Option<LearnedGraph>, StoreError> {
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM causality_graph WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|(doc,)| decode("causality graph", &doc)).transpose()
            }

            async fn save_causality(&self, g: &LearnedGraph) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO causality_graph (id, learned_at, occurrences, doc) VALUES (1, $1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET learned_at = excluded.learned_at, \
                     occurrences = excluded.occurrences, doc = excluded.doc",
                )
                .bind(ms(g.learned_at))
                .bind(g.occurrences_read as i64)
                .bind(encode(g))
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn causality_overrides(&self) -> Result<Vec<Override>, StoreError> {
                let rows = sqlx::query("SELECT doc FROM causality_overrides ORDER BY cause, effect")
                    .fetch_all(&self.pool)
                    .await?;
                decode_docs("causality override", rows)
            }

            async fn change_causality_overrides(&self, put: &[Override], remove: &[(String, String)]) -> Result<u64, StoreError> {
                let mut tx = self.begin_locked().await?;
                let mut removed = 0;
                for (cause, effect) in remove {
                    removed += sqlx::query("DELETE FROM causality_overrides WHERE cause = $1 AND effect = $2")
                        .bind(cause)
                        .bind(effect)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                for chunk in put.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO causality_overrides (cause, effect, kind, actor, at, doc) ");
                    qb.push_values(chunk, |mut b, o| {
                        b.push_bind(o.cause.clone())
                            .push_bind(o.effect.clone())
                            .push_bind(o.kind.as_str())
                            .push_bind(o.by.clone())
                            .push_bind(ms(o.at))
                            .push_bind(encode(o));
                    });
                    qb.push(" ON CONFLICT (cause, effect) DO UPDATE SET kind = excluded.kind, actor = excluded.actor, \
                             at = excluded.at, doc = excluded.doc");
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(removed)
            }

            async fn list_subscriptions(&self) -> Result<Vec<(Subscription, String)>, StoreError> {
                let rows = sqlx::query("SELECT doc, origin FROM subscriptions ORDER BY name")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((decode("subscription", &r.try_get::<String, _>(0)?)?, r.try_get(1)?)))
                    .collect()
            }

            async fn put_subscription(&self, sub: &Subscription, origin: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO subscriptions (name, origin, doc) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET origin = excluded.origin, doc = excluded.doc",
                )
                .bind(&sub.name)
                .bind(origin)
                .bind(encode(sub))
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn delete_subscription(&self, name: &str) -> Result<Option<String>, StoreError> {
                let mut tx = self.begin_locked().await?;
                let origin: Option<String> = sqlx::query("SELECT origin FROM subscriptions WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get(0))
                    .transpose()?;
                sqlx::query("DELETE FROM subscriptions WHERE name = $1").bind(name).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM outbox WHERE subscription = $1 AND status <> 'delivered'")
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(origin)
            }

            async fn sync_config_subscriptions(&self, subs: &[Subscription]) -> Result<(), StoreError> {
                let mut tx = self.begin_locked().await?;
                let old: Vec<String> = sqlx::query("SELECT name FROM subscriptions WHERE origin = 'config'")
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                for name in old.iter().filter(|n| !subs.iter().any(|s| &s.name == *n)) {
                    sqlx::query("DELETE FROM subscriptions WHERE name = $1").bind(name).execute(&mut *tx).await?;
                    sqlx::query("DELETE FROM outbox WHERE subscription = $1 AND status <> 'delivered'")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                for sub in subs {
                    sqlx::query(
                        "INSERT INTO subscriptions (name, origin, doc) VALUES ($1, 'config', $2) \
                         ON CONFLICT (name) DO UPDATE SET origin = excluded.origin, doc = excluded.doc",
                    )
                    .bind(&sub.name)
                    .bind(encode(sub))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn claim_outbox(&self, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
                let mut tx = self.begin_locked().await?;
                let sql = format!(
                    "SELECT {OUTBOX_COLS} FROM outbox o WHERE o.status = 'pending' AND o.next_at <= $1 \
                     AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.subscription = o.subscription \
                     AND p.incident_id = o.incident_id AND p.status = 'pending' AND p.id < o.id) \
                     ORDER BY o.id LIMIT $2{}",
                    if Self::PG { " FOR UPDATE SKIP LOCKED" } else { "" }
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(ms(now))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                let entries = rows.iter().map(outbox_entry).collect::<Result<Vec<_>, _>>()?;
                for e in &entries {
                    sqlx::query("UPDATE outbox SET next_at = $1 WHERE id = $2")
                        .bind(ms(lease_until))
                        .bind(e.id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(entries)
            }

            async fn finish_outbox(&self, id: i64, outcome: &Outcome) -> Result<(), StoreError> {
                let q = match outcome {
                    Outcome::Delivered { at } => sqlx::query(
                        "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $1, last_error = NULL WHERE id = $2",
                    )
                    .bind(ms(*at))
                    .bind(id),
                    Outcome::Retry { attempts, next_at, error } => sqlx::query(
                        "UPDATE outbox SET attempts = $1, next_at = $2, last_error = $3 WHERE id = $4",
                    )
                    .bind(*attempts)
                    .bind(ms(*next_at))
                    .bind(error.clone())
                    .bind(id),
                    Outcome::Dead { attempts, error } => sqlx::query(
                        "UPDATE outbox SET status = 'dead', attempts = $1, last_error = $2 WHERE id = $3",
                    )
                    .bind(*attempts)
                    .bind(error.clone())
                    .bind(id),
                };
                q.execute(self.write_pool()).await?;
                Ok(())
            }

            async fn list_outbox(&self, status: Option<&str>, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
                let sql = format!(
                    "SELECT {OUTBOX_COLS} FROM outbox o WHERE ($1 IS NULL OR o.status = $1) ORDER BY o.id DESC LIMIT $2"
                );
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .bind(status)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(outbox_entry).collect::<Result<Vec<_>, _>>().map_err(Into::into)
            }

            async fn postpone_outbox(&self, subscription: &str, until: DateTime<Utc>) -> Result<u64, StoreError> {
                let r = sqlx::query(
                    "UPDATE outbox SET next_at = $1 WHERE subscription = $2 AND status = 'pending' AND next_at < $1",
                )
                .bind(ms(until))
                .bind(subscription)
                .execute(self.write_pool())
                .await?;
                Ok(r.rows_affected())
            }

            async fn purge_outbox(&self, delivered_before: DateTime<Utc>) -> Result<u64, StoreError> {
                // In pages, so a large backlog never holds the write lock for long.
                let mut total = 0;
                loop {
                    let r = sqlx::query(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status = 'delivered' \
                         AND delivered_at < $1 LIMIT 5000)",
                    )
                    .bind(ms(delivered_before))
                    .execute(self.write_pool())
                    .await?;
                    total += r.rows_affected();
                    if r.rows_affected() < 5000 {
                        return Ok(total);
                    }
                }
            }

            async fn retry_outbox(&self, id: i64, now: DateTime<Utc>) -> Result<RetryOutcome, StoreError> {
                let mut tx = self.begin_locked().await?;
                let row: Option<(String, String, String)> =
                    sqlx::query_as("SELECT status, subscription, incident_id FROM outbox WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((status, subscription, incident)) = row else {
                    return Ok(RetryOutcome::NotFound);
                };
                if status != "dead" {
                    return Ok(RetryOutcome::NotDead(status));
                }
                // A later event of the incident already reached the receiver: this one would
                // arrive after it and roll the receiver's record back to an older state.
                let later: Option<String> = sqlx::query_as::<_, (String,)>(
                    "SELECT event_id FROM outbox WHERE subscription = $1 AND incident_id = $2 \
                     AND id > $3 AND status = 'delivered' ORDER BY id LIMIT 1",
                )
                .bind(&subscription)
                .bind(&incident)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.0);
                if let Some(later) = later {
                    return Ok(RetryOutcome::Stale(later));
                }
                sqlx::query("UPDATE outbox SET status = 'pending', attempts = 0, next_at = $1 WHERE id = $2 AND status = 'dead'")
                    .bind(ms(now))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RetryOutcome::Queued)
            }

            async fn outbox_pending(&self) -> Result<i64, StoreError> {
                let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get::<i64, _>(0)?)
            }
        }

        #[async_trait]
        impl WriteTx for $tx {
            fn state(&self) -> StateRow {
                self.state
            }

            async fn load_active(&mut self) -> Result<(Vec<AlertRecord>, Vec<Incident>), StoreError> {
                let mut incidents = decode_docs(
                    "incident",
                    sqlx::query("SELECT doc FROM incidents WHERE status IN ('open', 'acknowledged')")
                        .fetch_all(&mut *self.tx)
                        .await?,
                )?;
                fill_members!($db, &mut *self.tx, &mut incidents);
                let alerts = decode_alerts(
                    sqlx::query(
                        "SELECT a.doc, a.seq FROM alerts a WHERE a.status = 'firing' OR a.incident_id IN \
                         (SELECT id FROM incidents WHERE status IN ('open', 'acknowledged'))",
                    )
                    .fetch_all(&mut *self.tx)
                    .await?,
                )?;
                Ok((alerts, incidents))
            }

            async fn changes_since(&mut self, seq: i64, ending_after: DateTime<Utc>) -> Result<Vec<Change>, StoreError> {
                let rows = sqlx::query("SELECT doc FROM changes WHERE seq > $1 AND end_at > $2")
                    .bind(seq)
                    .bind(ms(ending_after))
                    .fetch_all(&mut *self.tx)
                    .await?;
                decode_docs("change", rows)
            }

            async fn upsert_changes(&mut self, changes: &[Change]) -> Result<(), StoreError> {
                let seq = self.state.seq + 1;
                for chunk in changes.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO changes (id, ci_id, start_at, end_at, maintenance, seq, doc) ",
                    );
                    qb.push_values(chunk, |mut b, c| {
                        b.push_bind(c.id.clone())
                            .push_bind(c.ci_id.clone())
                            .push_bind(ms(c.start))
                            .push_bind(ms(c.end))
                            .push_bind(i64::from(c.maintenance))
                            .push_bind(seq)
                            .push_bind(encode(c));
                    });
                    qb.push(
                        " ON CONFLICT (id) DO UPDATE SET ci_id = excluded.ci_id, start_at = excluded.start_at, \
                         end_at = excluded.end_at, maintenance = excluded.maintenance, seq = excluded.seq, doc = excluded.doc",
                    );
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn alerts_since(&mut self, seq: i64) -> Result<Vec<AlertRecord>, StoreError> {
                let rows = sqlx::query("SELECT doc, seq FROM alerts WHERE seq > $1")
                    .bind(seq)
                    .fetch_all(&mut *self.tx)
                    .await?;
                decode_alerts(rows)
            }

            async fn incidents_since(&mut self, seq: i64) -> Result<Vec<Incident>, StoreError> {
                let rows = sqlx::query("SELECT doc FROM incidents WHERE seq > $1")
                    .bind(seq)
                    .fetch_all(&mut *self.tx)
                    .await?;
                let mut incs = decode_docs("incident", rows)?;
                fill_members!($db, &mut *self.tx, &mut incs);
                Ok(incs)
            }

            async fn load_alerts(&mut self, fps: &[Fingerprint]) -> Result<Vec<AlertRecord>, StoreError> {
                let mut out = Vec::new();
                for chunk in fps.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("SELECT doc, seq FROM alerts WHERE fingerprint IN (");
                    let mut sep = qb.separated(", ");
                    for fp in chunk {
                        sep.push_bind(fp.0.to_string());
                    }
                    qb.push(")");
                    let rows = qb.build().fetch_all(&mut *self.tx).await?;
                    out.extend(decode_alerts(rows)?);
                }
                Ok(out)
            }

            async fn load_incident(&mut self, id: &str) -> Result<Option<Incident>, StoreError> {
                let row = sqlx::query("SELECT doc FROM incidents WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                let mut incs: Vec<Incident> = row.map(|r| decode("incident", &r.try_get::<String, _>(0)?)).transpose()?.into_iter().collect();
                fill_members!($db, &mut *self.tx, &mut incs);
                Ok(incs.pop())
            }

            async fn load_cmdb(&mut self) -> Result<CmdbFile, StoreError> {
                load_cmdb_from!(&mut *self.tx)
            }

            async fn existing_cis(&mut self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
                let mut out = HashSet::new();
                for chunk in ids.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("SELECT id FROM cis WHERE id IN (");
                    let mut sep = qb.separated(", ");
                    for id in chunk {
                        sep.push_bind(id.clone());
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(&mut *self.tx).await? {
                        out.insert(r.try_get::<String, _>(0)?);
                    }
                }
                Ok(out)
            }

            async fn upsert_alerts(&mut self, recs: &[&AlertRecord]) -> Result<(), StoreError> {
                let seq = self.state.seq + 1;
                for chunk in recs.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO alerts (fingerprint, status, ci_id, incident_id, starts_at, seq, doc) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.fingerprint.0.to_string())
                            .push_bind(r.status.as_str())
                            .push_bind(r.ci_id.as_deref().map(String::from))
                            .push_bind(r.incident_id.as_deref().map(String::from))
                            .push_bind(ms(r.starts_at))
                            .push_bind(seq)
                            .push_bind(encode(r));
                    });
                    qb.push(
                        " ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status, ci_id = excluded.ci_id, \
                         incident_id = excluded.incident_id, starts_at = excluded.starts_at, seq = excluded.seq, doc = excluded.doc",
                    );
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn refresh_alerts(&mut self, recs: &[&AlertRecord]) -> Result<(), StoreError> {
                if $store::PG {
                    // The same work as the upsert either way: `seq` changes and is indexed
                    // (catch-up reads by it), so no update of an alert row is HOT; every
                    // rewrite is a new tuple with entries in all six indexes (200k folds on
                    // 2026-12-05: n_tup_hot_upd 0). A join-update only adds planning.
                    return self.upsert_alerts(recs).await;
                }
                let seq = self.state.seq + 1;
                for chunk in recs.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("WITH v (fp, doc) AS (");
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.fingerprint.0.to_string()).push_bind(encode(r));
                    });
                    qb.push(") UPDATE alerts SET seq = ");
                    qb.push_bind(seq);
                    qb.push(", doc = v.doc FROM v WHERE alerts.fingerprint = v.fp");
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn append_journal(&mut self, entries: &[JournalEntry]) -> Result<(), StoreError> {
                if entries.is_empty() {
                    return Ok(());
                }
                sqlx::query("INSERT INTO alert_journal (seq, written_at, body) VALUES ($1, $2, $3)")
                    .bind(self.state.seq + 1)
                    .bind(ms(Utc::now()))
                    .bind(journal::encode(entries))
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn journal_since(&mut self, seq: i64) -> Result<Vec<JournalRow>, StoreError> {
                let rows: Vec<(i64, Vec<u8>)> =
                    sqlx::query_as("SELECT seq, body FROM alert_journal WHERE seq > $1 ORDER BY seq")
                        .bind(seq)
                        .fetch_all(&mut *self.tx)
                        .await?;
                decode_journal_rows(rows)
            }

            async fn oldest_journal(&mut self, written_before: DateTime<Utc>, future_after: DateTime<Utc>, max_rows: i64) -> Result<(Option<i64>, Vec<JournalRow>), StoreError> {
                // The oldest rows first (by seq, without their bodies); stop at the first
                // one that is too young, then read the bodies of those before it.
                let heads: Vec<(i64, i64)> =
                    sqlx::query_as("SELECT seq, written_at FROM alert_journal ORDER BY seq LIMIT $1")
                        .bind(max_rows)
                        .fetch_all(&mut *self.tx)
                        .await?;
                let Some(last) = heads
                    .iter()
                    .take_while(|(_, at)| *at <= ms(written_before) || *at > ms(future_after))
                    .map(|(seq, _)| *seq)
                    .last()
                else {
                    return Ok((heads.first().map(|(seq, _)| *seq), Vec::new()));
                };
                let rows: Vec<(i64, Vec<u8>)> =
                    sqlx::query_as("SELECT seq, body FROM alert_journal WHERE seq <= $1 ORDER BY seq")
                        .bind(last)
                        .fetch_all(&mut *self.tx)
                        .await?;
                Ok((heads.first().map(|(seq, _)| *seq), decode_journal_rows(rows)?))
            }

            async fn delete_journal_through(&mut self, seq: i64) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM alert_journal WHERE seq <= $1")
                    .bind(seq)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn upsert_incidents(&mut self, incs: &[&Incident]) -> Result<(), StoreError> {
                self.written.incidents(incs);
                let seq = self.state.seq + 1;
                for chunk in incs.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO incidents (id, number, status, priority, seq, doc) ");
                    qb.push_values(chunk, |mut b, i| {
                        b.push_bind(i.id.clone())
                            .push_bind(i.number() as i64)
                            .push_bind(i.status.as_str())
                            .push_bind(i64::from(i.priority))
                            .push_bind(seq)
                            .push_bind(i.store_doc());
                    });
                    qb.push(
                        " ON CONFLICT (id) DO UPDATE SET status = excluded.status, priority = excluded.priority, \
                         seq = excluded.seq, doc = excluded.doc",
                    );
                    qb.build().execute(&mut *self.tx).await?;
                    let pairs: Vec<(&str, &str)> = chunk
                        .iter()
                        .flat_map(|i| i.ci_ids.iter().map(move |c| (i.id.as_str(), c.as_str())))
                        .collect();
                    for pc in pairs.chunks(CHUNK) {
                        let mut qb = QueryBuilder::<$db>::new("INSERT INTO incident_cis (incident_id, ci_id) ");
                        qb.push_values(pc, |mut b, (i, c)| {
                            b.push_bind(i.to_string()).push_bind(c.to_string());
                        });
                        qb.push(" ON CONFLICT DO NOTHING");
                        qb.build().execute(&mut *self.tx).await?;
                    }
                }
                Ok(())
            }

            async fn add_members(&mut self, members: &[(CompactString, Fingerprint, u64)]) -> Result<(), StoreError> {
                for chunk in members.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO incident_alerts (incident_id, fingerprint, pos) ");
                    qb.push_values(chunk, |mut b, (i, f, pos)| {
                        b.push_bind(i.to_string()).push_bind(f.0.to_string()).push_bind(*pos as i64);
                    });
                    // The core hands each (incident, position) out once, from a member set
                    // loaded whole with its incident. A clash would mean the two disagree;
                    // failing the batch would then fail every later one too (the re-read
                    // state is the same), so the row that is there stays, and it is said
                    // loudly: the incident's stored member list then lacks an alert.
                    qb.push(" ON CONFLICT DO NOTHING");
                    let written = qb.build().execute(&mut *self.tx).await?.rows_affected();
                    if written < chunk.len() as u64 {
                        let incidents: std::collections::BTreeSet<&str> =
                            chunk.iter().map(|(i, _, _)| i.as_str()).collect();
                        tracing::error!(
                            lost = chunk.len() as u64 - written,
                            ?incidents,
                            "incident member rows not written: their position was taken \
                             (the core's member list and the store's disagree)"
                        );
                    }
                }
                Ok(())
            }

            async fn rewrite_members(&mut self, id: &str, fps: &[Fingerprint]) -> Result<(), StoreError> {
                for table in ["incident_alerts", "incident_cis"] {
                    sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE incident_id = $1")))
                        .bind(id)
                        .execute(&mut *self.tx)
                        .await?;
                }
                let rows: Vec<(CompactString, Fingerprint, u64)> = fps
                    .iter()
                    .zip(0u64..)
                    .map(|(f, pos)| (CompactString::from(id), f.clone(), pos))
                    .collect();
                self.add_members(&rows).await
            }

            async fn append_feedback(&mut self, pairs: &[FeedbackPair]) -> Result<(), StoreError> {
                for chunk in pairs.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO feedback (at, actor, action, label, incident_id, other_incident_id, \
                         a_fingerprint, a_ci, b_fingerprint, b_ci) ",
                    );
                    qb.push_values(chunk, |mut b, p| {
                        b.push_bind(ms(p.at))
                            .push_bind(p.actor.clone())
                            .push_bind(p.action.as_str())
                            .push_bind(p.label.as_str())
                            .push_bind(p.incident_id.clone())
                            .push_bind(p.other_incident_id.clone())
                            .push_bind(p.a.0.to_string())
                            .push_bind(p.a_ci.clone())
                            .push_bind(p.b.0.to_string())
                            .push_bind(p.b_ci.clone());
                    });
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn append_timeline(&mut self, entries: &[TimelineEntry]) -> Result<(), StoreError> {
                for chunk in entries.chunks(CHUNK) {
                    let mut qb =
                        QueryBuilder::<$db>::new("INSERT INTO timeline (incident_id, at, actor, kind, detail) ");
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(e.incident_id.to_string())
                            .push_bind(ms(e.at))
                            .push_bind(e.actor.to_string())
                            .push_bind(e.kind.to_string())
                            .push_bind(encode(&e.detail));
                    });
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn subscriptions(&mut self) -> Result<Vec<Subscription>, StoreError> {
                decode_docs(
                    "subscription",
                    sqlx::query("SELECT doc FROM subscriptions ORDER BY name").fetch_all(&mut *self.tx).await?,
                )
            }

            async fn enqueue_outbox(&mut self, subs: &[Subscription], events: &[Event], now: DateTime<Utc>) -> Result<(), StoreError> {
                let rows: Vec<(&Subscription, &Event)> = events
                    .iter()
                    .flat_map(|e| subs.iter().filter(|s| s.wants(e.kind)).map(move |s| (s, e)))
                    .collect();
                for chunk in rows.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO outbox (subscription, event_id, event, incident_id, status, attempts, next_at, created_at, body) ",
                    );
                    qb.push_values(chunk, |mut b, (s, e)| {
                        b.push_bind(s.name.clone())
                            .push_bind(e.event_id.clone())
                            .push_bind(e.kind.as_str())
                            .push_bind(e.incident_id.to_string())
                            .push_bind("pending")
                            .push_bind(0i64)
                            .push_bind(ms(now))
                            .push_bind(ms(now))
                            .push_bind(e.body.clone());
                    });
                    qb.push(" ON CONFLICT (subscription, event_id) DO NOTHING");
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn upsert_cis(&mut self, cis: &[Ci]) -> Result<(), StoreError> {
                self.written.cmdb = true;
                let seq = self.state.seq + 1;
                for chunk in cis.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO cis (id, doc, seq) ");
                    qb.push_values(chunk, |mut b, c| {
                        b.push_bind(c.id.clone()).push_bind(encode(c)).push_bind(seq);
                    });
                    qb.push(" ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, seq = excluded.seq");
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn upsert_relations(&mut self, rels: &[Relation]) -> Result<(), StoreError> {
                self.written.cmdb = true;
                for chunk in rels.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO relations (source, target, type) ");
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.source.clone())
                            .push_bind(r.target.clone())
                            .push_bind(r.rel_type.clone());
                    });
                    qb.push(" ON CONFLICT DO NOTHING");
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn upsert_history(&mut self, recs: &[HistoryRecord]) -> Result<u64, StoreError> {
                let mut new = 0u64;
                for chunk in recs.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("SELECT id FROM history_incidents WHERE id IN (");
                    let mut sep = qb.separated(", ");
                    for r in chunk {
                        sep.push_bind(r.id.clone());
                    }
                    qb.push(")");
                    let existing = qb.build().fetch_all(&mut *self.tx).await?.len() as u64;
                    new += chunk.len() as u64 - existing.min(chunk.len() as u64);
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO history_incidents (id, opened_at, doc) ");
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.id.clone()).push_bind(ms(r.opened_at)).push_bind(encode(r));
                    });
                    qb.push(" ON CONFLICT (id) DO UPDATE SET opened_at = excluded.opened_at, doc = excluded.doc");
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(new)
            }

            async fn load_problems(&mut self) -> Result<Vec<ProblemCandidate>, StoreError> {
                let rows = sqlx::query("SELECT doc FROM problems ORDER BY id")
                    .fetch_all(&mut *self.tx)
                    .await?;
                decode_docs("problem", rows)
            }

            async fn replace_problems(&mut self, problems: &[ProblemCandidate]) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM problems").execute(&mut *self.tx).await?;
                let now = ms(Utc::now());
                for chunk in problems.chunks(CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO problems (id, status, score, updated_at, doc) ");
                    qb.push_values(chunk, |mut b, p| {
                        b.push_bind(p.id.clone())
                            .push_bind(p.status.as_str())
                            .push_bind(p.score)
                            .push_bind(now)
                            .push_bind(encode(p));
                    });
                    qb.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn set_problem_status(&mut self, id: &str, status: ProblemStatus) -> Result<Option<ProblemCandidate>, StoreError> {
                let row = sqlx::query("SELECT doc FROM problems WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let mut p: ProblemCandidate = decode("problem", &row.try_get::<String, _>(0)?)?;
                p.status = status;
                sqlx::query("UPDATE problems SET status = $1, updated_at = $2, doc = $3 WHERE id = $4")
                    .bind(status.as_str())
                    .bind(ms(Utc::now()))
                    .bind(encode(&p))
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(Some(p))
            }

            async fn commit(mut self: Box<Self>) -> Result<StateRow, StoreError> {
                let new = self.written.state_after(self.state);
                sqlx::query("UPDATE sift_state SET seq = $1, cmdb_version = $2, next_incident = $3 WHERE id = 1")
                    .bind(new.seq)
                    .bind(new.cmdb_version)
                    .bind(new.next_incident)
                    .execute(&mut *self.tx)
                    .await?;
                self.tx.commit().await?;
                Ok(new)
            }
        }
    };
}

/// Schema v5: incidents stored before it keep their member list in the document; each
/// list becomes `incident_alerts` rows and the document is rewritten without it. Done in
/// Rust with serde (not with the databases' JSON functions), so any document sift wrote
/// can be read back, and in pages so memory stays bounded on a large store.
macro_rules! move_members_out_of_docs {
    ($db:ty, $conn:expr) => {{
        async {
            let mut after: i64 = -1;
            loop {
                let page: Vec<(i64, String, String)> = sqlx::query_as(
                    "SELECT number, id, doc FROM incidents WHERE number > $1 ORDER BY number LIMIT 1000",
                )
                .bind(after)
                .fetch_all(&mut *$conn)
                .await?;
                let Some(last) = page.last() else { break };
                after = last.0;
                for (_, id, doc) in page {
                    let mut v: serde_json::Value = serde_json::from_str(&doc).map_err(|e| {
                        StoreError::Corrupt { what: format!("incident {id}"), err: e.to_string() }
                    })?;
                    let Some(list) = v.as_object_mut().and_then(|m| m.remove("alert_fingerprints")) else {
                        continue;
                    };
                    let fps: Vec<String> = list
                        .as_array()
                        .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
                        .unwrap_or_default();
                    for (pos, chunk) in fps.chunks(CHUNK).enumerate() {
                        let mut qb = QueryBuilder::<$db>::new(
                            "INSERT INTO incident_alerts (incident_id, fingerprint, pos) ",
                        );
                        qb.push_values(chunk.iter().enumerate(), |mut b, (k, f)| {
                            b.push_bind(id.clone())
                                .push_bind(f.clone())
                                .push_bind((pos * CHUNK + k) as i64);
                        });
                        qb.push(" ON CONFLICT DO NOTHING");
                        qb.build().execute(&mut *$conn).await?;
                    }
                    sqlx::query("UPDATE incidents SET doc = $1 WHERE id = $2")
                        .bind(v.to_string())
                        .bind(&id)
                        .execute(&mut *$conn)
                        .await?;
                }
            }
            Ok::<(), StoreError>(())
        }
        .await
    }};
}

/// Fills `alert_fingerprints` of incidents read from `incidents.doc` from their
/// `incident_alerts` rows, in join order.
macro_rules! fill_members {
    ($db:ty, $conn:expr, $incs:expr) => {{
        let incs: &mut Vec<Incident> = $incs;
        let at: std::collections::HashMap<String, usize> = incs
            .iter()
            .enumerate()
            .map(|(k, i)| (i.id.clone(), k))
            .collect();
        let ids: Vec<&String> = incs.iter().map(|i| &i.id).collect();
        let mut rows_of: Vec<Vec<(i64, String)>> = vec![Vec::new(); incs.len()];
        for chunk in ids.chunks(CHUNK) {
            let mut qb = QueryBuilder::<$db>::new(
                "SELECT incident_id, fingerprint, pos FROM incident_alerts WHERE incident_id IN (",
            );
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind((*id).clone());
            }
            qb.push(")");
            for r in qb.build().fetch_all($conn).await? {
                let id: String = r.try_get(0)?;
                if let Some(&k) = at.get(&id) {
                    rows_of[k].push((r.try_get(2)?, r.try_get(1)?));
                }
            }
        }
        for (inc, mut rows) in incs.iter_mut().zip(rows_of) {
            rows.sort_unstable();
            inc.alert_fingerprints.extend(
                rows.into_iter()
                    .map(|(_, f): (_, String)| Fingerprint::from(f)),
            );
        }
    }};
}

macro_rules! load_cmdb_from {
    ($conn:expr) => {{
        let conn = $conn;
        let cis = decode_docs(
            "ci",
            sqlx::query("SELECT doc FROM cis ORDER BY id")
                .fetch_all(&mut *conn)
                .await?,
        )?;
        let relations =
            sqlx::query("SELECT source, target, type FROM relations ORDER BY source, target, type")
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| {
                    Ok(Relation {
                        source: r.try_get(0)?,
                        target: r.try_get(1)?,
                        rel_type: r.try_get(2)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(CmdbFile { cis, relations })
    }};
}

const OUTBOX_COLS: &str = "o.id, o.subscription, o.event_id, o.event, o.incident_id, o.status, o.attempts, \
     o.next_at, o.created_at, o.delivered_at, o.last_error, o.body";

fn outbox_entry<R: Row>(r: &R) -> Result<OutboxEntry, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(OutboxEntry {
        id: r.try_get(0)?,
        subscription: r.try_get(1)?,
        event_id: r.try_get(2)?,
        event: r.try_get(3)?,
        incident_id: r.try_get(4)?,
        status: r.try_get(5)?,
        attempts: r.try_get(6)?,
        next_at: from_ms(r.try_get(7)?),
        created_at: from_ms(r.try_get(8)?),
        delivered_at: r.try_get::<Option<i64>, _>(9)?.map(from_ms),
        last_error: r.try_get(10)?,
        body: r.try_get(11)?,
    })
}

/// Journal rows read as `(seq, body)`.
fn decode_journal_rows(rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<JournalRow>, StoreError> {
    rows.into_iter()
        .map(|(seq, body)| {
            Ok(JournalRow {
                seq,
                entries: journal::decode(seq, &body)?,
            })
        })
        .collect()
}

/// Alert rows read as `(doc, seq)`: the record remembers which commit wrote its row.
fn decode_alerts<R: Row>(rows: Vec<R>) -> Result<Vec<AlertRecord>, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| {
            let mut rec: AlertRecord = decode("alert", &r.try_get::<String, _>(0)?)?;
            rec.persisted.seq = r.try_get::<i64, _>(1)?;
            Ok(rec)
        })
        .collect()
}

fn decode_docs<T: serde::de::DeserializeOwned, R: Row>(
    what: &str,
    rows: Vec<R>,
) -> Result<Vec<T>, StoreError>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| decode(what, &r.try_get::<String, _>(0)?))
        .collect()
}

sql_store!(SqliteStore, Sqlite, SqliteWriteTx);
sql_store!(PostgresStore, Postgres, PostgresWriteTx);

#[cfg(test)]
mod tests {
    use super::*;

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
