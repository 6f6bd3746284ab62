//! Storage: what sift keeps, behind one small trait per aggregate, with a SQLite and a
//! PostgreSQL implementation on sqlx that pass the same tests.
//!
//! All writes go through a `WriteTx` that first locks the single `sift_state` row: that is
//! what lets several daemons share one PostgreSQL (or one SQLite file) without corrupting
//! correlation state. Each write transaction bumps `sift_state.seq` and stamps the rows it
//! writes with it, so a daemon that finds the sequence moved re-reads only what changed.
//!
//! Layout: each aggregate's file holds its small traits (reads on the store, writes in a
//! `WriteTx`), its query types, its stored-document types and its SQL, written once for
//! both databases as plain functions generic over `backend::Backend`: `cmdb`, `alerts`
//! (and the re-send journal's rows, `JournalTx`), `incidents` (members, timeline,
//! feedback), `outbox` (and subscriptions), `problems` (and imported history),
//! `causality`. `Store` and `WriteTx` are their unions, so a caller holds one object.
//! `backend` says what the shared SQL needs of a database and imports no domain module;
//! `sqlite` and `postgres` are the thin backends (opening, locking, the few constants where
//! they differ); `migrations` the schema; `journal` the re-send journal's row format and
//! `IndexedColumns`, the one list of the columns `alerts` is indexed by; `settings` the
//! `[store]` section.
//!
//! A stored document is written from a type of its own where the domain type is also
//! something else (`alerts::AlertDoc`, `incidents::IncidentDoc`: built by destructuring, so
//! a new field of the domain type must be decided on here), and read back into the domain
//! type. `commit` moves the shared counters by what the transaction wrote; callers pass
//! none. Nothing here decides anything about alerts or incidents: the store keeps what it
//! is given and reads it back.

mod alerts;
mod backend;
mod causality;
mod cmdb;
mod incidents;
pub mod journal;
mod migrations;
mod outbox;
mod postgres;
mod problems;
mod settings;
mod sqlite;

use async_trait::async_trait;

pub use alerts::{AlertPage, AlertQuery, AlertStore, AlertTx, JournalTx};
pub use causality::{CausalityStore, OccurrenceHistory};
pub use cmdb::{ChangeQuery, CmdbStore, CmdbTx};
pub use incidents::{FeedbackQuery, IncidentQuery, IncidentStore, IncidentTx};
pub use journal::{JournalEntry, JournalRow};
pub use outbox::{OutboxStore, OutboxTx, RetryOutcome, SubscriptionStore};
pub use postgres::PostgresStore;
pub use problems::{ProblemStore, ProblemTx};
pub use settings::{SqliteSync, StoreConfig};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored record {what} is corrupt: {err}")]
    Corrupt { what: String, err: String },
    #[error("unsupported store url {0:?}: use sqlite://PATH or postgres://user@host/db")]
    BadUrl(String),
    #[error("migration {version} failed: {err}")]
    Migration { version: i64, err: String },
}

/// The shared counters every write transaction reads under lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateRow {
    pub seq: i64,
    pub cmdb_version: i64,
    pub next_incident: i64,
}

/// The whole store: every aggregate's reads, and write transactions.
#[async_trait]
pub trait Store:
    CmdbStore
    + AlertStore
    + IncidentStore
    + SubscriptionStore
    + OutboxStore
    + ProblemStore
    + CausalityStore
    + Send
    + Sync
{
    fn backend(&self) -> &'static str;
    /// Applies the embedded migrations that are not applied yet.
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);
    /// Starts a write transaction holding the `sift_state` row lock.
    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError>;
}

/// One write transaction: every aggregate's writes (and the reads a writer makes under
/// the lock), then `commit`.
#[async_trait]
pub trait WriteTx: CmdbTx + AlertTx + JournalTx + IncidentTx + OutboxTx + ProblemTx + Send {
    fn state(&self) -> StateRow;
    /// Commits, with the shared counters moved by what was written: `seq` always,
    /// `cmdb_version` when CIs or relations were upserted, `next_incident` past the
    /// highest incident number upserted. Returns them.
    async fn commit(self: Box<Self>) -> Result<StateRow, StoreError>;
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`).
pub async fn open(cfg: &StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    let url = cfg.url.as_str();
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::connect(cfg).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Box::new(PostgresStore::connect(cfg).await?))
    } else {
        Err(StoreError::BadUrl(url.to_string()))
    }
}
