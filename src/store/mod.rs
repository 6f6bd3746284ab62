//! Storage behind one trait, with a SQLite and a PostgreSQL implementation on sqlx that
//! pass the same tests.
//!
//! All writes go through a `WriteTx` that first locks the single `sift_state` row: that is
//! what lets several daemons share one PostgreSQL (or one SQLite file) without corrupting
//! correlation state. Each write transaction bumps `sift_state.seq` and stamps the rows it
//! writes with it, so a daemon that finds the sequence moved re-reads only what changed.

pub mod journal;
mod sql;

use std::collections::HashSet;

use async_trait::async_trait;

use crate::alert::Fingerprint;
use crate::cmdb::{Change, Ci, CmdbFile, Relation};
use crate::correlate::{AlertRecord, FeedbackPair, Label};
use crate::incident::{Incident, IncidentStatus, TimelineEntry};
use crate::outbox::{Event, OutboxEntry, Outcome, Subscription};
use crate::problem::{HistoryRecord, ProblemCandidate, ProblemStatus};

pub use journal::{JournalEntry, JournalRow};
pub use sql::{PostgresStore, SqliteStore};

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

#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    pub status: Option<IncidentStatus>,
    pub priority: Option<u8>,
    pub ci: Option<String>,
    /// Only incidents numbered below this (the cursor of the previous page).
    pub before_number: Option<u64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub status: Option<crate::alert::AlertStatus>,
    pub ci: Option<String>,
    pub incident: Option<String>,
    /// Only alerts strictly after this `(starts_at ms, arrival order)` in newest-first
    /// order (the order is `AlertPage::last_order` of the page before).
    pub before: Option<(i64, i64)>,
    pub limit: u32,
}

/// A page of `list_alerts`: newest first, ties of `starts_at` newest arrival first.
#[derive(Debug, Clone, Default)]
pub struct AlertPage {
    pub alerts: Vec<AlertRecord>,
    /// The arrival order of the page's last alert (its row's insertion order, kept by
    /// updates): with its `starts_at`, where the next page begins.
    pub last_order: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    pub ci: Option<String>,
    /// Only changes whose window contains this instant.
    pub active_at: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: u32,
}

/// Stored alert occurrences since a time (`Store::alert_occurrences`): the input of the
/// daemon's causality learning.
#[derive(Debug, Clone, Default)]
pub struct OccurrenceHistory {
    /// Each distinct alert the occurrences are of: its labels and the CI it was mapped to
    /// when it was stored (`None`: none).
    pub alerts: Vec<(crate::labels::Labels, Option<String>)>,
    /// (index into `alerts`, start in ms since the epoch), in no particular order.
    pub occurrences: Vec<(u32, i64)>,
    /// Occurrences since the time asked that the limit left out (the oldest ones).
    pub left_out: u64,
    /// Occurrences whose alert row is gone or unreadable (left out too).
    pub orphaned: u64,
}

/// Which feedback pairs to read (`GET /api/v1/feedback`), oldest first.
#[derive(Debug, Clone, Default)]
pub struct FeedbackQuery {
    /// Only pairs stored after this row id (the cursor of the previous page).
    pub after_id: Option<i64>,
    pub label: Option<Label>,
    /// Only pairs of edits on or into this incident.
    pub incident: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait Store: Send + Sync {
    fn backend(&self) -> &'static str;
    /// Applies the embedded migrations that are not applied yet.
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// `sift_state.cmdb_version`, read without the write lock: a cheap look at whether the
    /// CMDB changed since a daemon last loaded it (every CMDB write bumps it).
    async fn cmdb_version(&self) -> Result<i64, StoreError>;
    async fn close(&self);
    /// Starts a write transaction holding the `sift_state` row lock.
    async fn begin(&self) -> Result<Box<dyn WriteTx>, StoreError>;

    async fn load_cmdb(&self) -> Result<CmdbFile, StoreError>;

    async fn list_incidents(&self, q: &IncidentQuery) -> Result<Vec<Incident>, StoreError>;
    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError>;
    async fn timeline(&self, id: &str) -> Result<Vec<TimelineEntry>, StoreError>;
    async fn list_alerts(&self, q: &AlertQuery) -> Result<AlertPage, StoreError>;
    async fn list_changes(&self, q: &ChangeQuery) -> Result<Vec<Change>, StoreError>;
    /// Operator feedback on grouping (merges and splits as labelled pairs), oldest first.
    async fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<FeedbackPair>, StoreError>;

    /// Imported history records opened at or after `since`, oldest first.
    async fn history_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<HistoryRecord>, StoreError>;
    /// sift's own resolved and closed incidents, the newest `limit` (problem clustering
    /// input; similar past incidents), without their member lists.
    async fn finished_incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError>;
    /// Problems, highest score first, optionally of one status.
    async fn list_problems(
        &self,
        status: Option<ProblemStatus>,
    ) -> Result<Vec<ProblemCandidate>, StoreError>;
    async fn get_problem(&self, id: &str) -> Result<Option<ProblemCandidate>, StoreError>;

    /// Occurrences of alerts that started at or after `since`, the newest `limit` (see
    /// `OccurrenceHistory`). Read from the incident timelines' `alert_joined` entries (one
    /// per occurrence placed in an incident, appended, never pruned or rewritten) with the
    /// alert rows for labels and CI: the alerts table alone keeps only each alert's latest
    /// occurrence (a re-fire overwrites its row), and the re-send journal is deleted once
    /// folded. Alerts held back by a maintenance window join late or never; those
    /// occurrences are not read (planned work is not the estate's own behaviour).
    async fn alert_occurrences(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<OccurrenceHistory, StoreError>;
    /// The last learning run, `None` before the first.
    async fn load_causality(
        &self,
    ) -> Result<Option<crate::causality::overrides::LearnedGraph>, StoreError>;
    /// Replaces the stored learning run.
    async fn save_causality(
        &self,
        g: &crate::causality::overrides::LearnedGraph,
    ) -> Result<(), StoreError>;
    /// Every operator override (pins and vetoes), by (cause, effect).
    async fn causality_overrides(
        &self,
    ) -> Result<Vec<crate::causality::overrides::Override>, StoreError>;
    /// In one transaction: stores `put` (replacing any override of the same pair) and
    /// deletes the overrides of the pairs in `remove`; returns how many were deleted.
    async fn change_causality_overrides(
        &self,
        put: &[crate::causality::overrides::Override],
        remove: &[(String, String)],
    ) -> Result<u64, StoreError>;

    /// Every webhook subscription with its origin (`config` or `api`).
    async fn list_subscriptions(&self) -> Result<Vec<(Subscription, String)>, StoreError>;
    /// Creates or replaces a subscription by name.
    async fn put_subscription(&self, sub: &Subscription, origin: &str) -> Result<(), StoreError>;
    /// Removes a subscription and its undelivered events; its origin, `None` when unknown.
    async fn delete_subscription(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Makes the `config` subscriptions exactly `subs` (API-made ones stay).
    async fn sync_config_subscriptions(&self, subs: &[Subscription]) -> Result<(), StoreError>;
    /// Due pending rows, at most one per (subscription, incident) queue (its oldest),
    /// leased until `lease_until`.
    async fn claim_outbox(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        lease_until: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    async fn finish_outbox(&self, id: i64, outcome: &Outcome) -> Result<(), StoreError>;
    /// Outbox rows, newest first, optionally of one status.
    async fn list_outbox(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    async fn outbox_pending(&self) -> Result<i64, StoreError>;
    /// Moves the pending rows of `subscription` due before `until` to `until` (its
    /// receiver is failing: its events wait together instead of each retrying alone).
    async fn postpone_outbox(
        &self,
        subscription: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError>;
    /// Deletes rows delivered before `delivered_before` (pending and dead rows stay);
    /// how many went.
    async fn purge_outbox(
        &self,
        delivered_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, StoreError>;
    /// Puts a dead row back in its queue, due `now`, with a fresh attempt budget.
    async fn retry_outbox(
        &self,
        id: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<RetryOutcome, StoreError>;
}

/// What `retry_outbox` did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// Back in its queue.
    Queued,
    NotFound,
    /// Only dead rows are retried; this is its status.
    NotDead(String),
    /// A later event of the same incident was delivered to that subscription (its id):
    /// sending this one now would roll the receiver back to an older state.
    Stale(String),
}

#[async_trait]
pub trait WriteTx: Send {
    fn state(&self) -> StateRow;
    /// What the core needs at start: firing alerts, alerts of active incidents, and
    /// active incidents.
    async fn load_active(&mut self) -> Result<(Vec<AlertRecord>, Vec<Incident>), StoreError>;
    /// Changes written after `seq` (all of them when `seq` < 0) that end after `ending_after`.
    async fn changes_since(
        &mut self,
        seq: i64,
        ending_after: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Change>, StoreError>;
    async fn upsert_changes(&mut self, changes: &[Change]) -> Result<(), StoreError>;
    async fn alerts_since(&mut self, seq: i64) -> Result<Vec<AlertRecord>, StoreError>;
    async fn incidents_since(&mut self, seq: i64) -> Result<Vec<Incident>, StoreError>;
    async fn load_alerts(&mut self, fps: &[Fingerprint]) -> Result<Vec<AlertRecord>, StoreError>;
    async fn load_incident(&mut self, id: &str) -> Result<Option<Incident>, StoreError>;
    async fn load_cmdb(&mut self) -> Result<CmdbFile, StoreError>;
    async fn existing_cis(&mut self, ids: &[String]) -> Result<HashSet<String>, StoreError>;
    async fn upsert_alerts(&mut self, recs: &[&AlertRecord]) -> Result<(), StoreError>;
    /// Rewrites only the document (and `seq`) of alerts whose indexed columns (status, CI,
    /// incident, start) are unchanged in the store: a re-send touches one index, not five.
    async fn refresh_alerts(&mut self, recs: &[&AlertRecord]) -> Result<(), StoreError>;
    /// Appends this commit's re-send journal row (see `journal`); nothing when empty.
    async fn append_journal(&mut self, entries: &[JournalEntry]) -> Result<(), StoreError>;
    /// Journal rows of commits after `seq` (all when `seq` < 0), oldest first.
    async fn journal_since(&mut self, seq: i64) -> Result<Vec<JournalRow>, StoreError>;
    /// The seq of the oldest journal row (`None`: the journal is empty), and the oldest
    /// rows (at most `max_rows`) as long as each was written at or before `written_before`
    /// or is stamped after `future_after` (a clock that stepped back must not hold the
    /// journal up); oldest first.
    async fn oldest_journal(
        &mut self,
        written_before: chrono::DateTime<chrono::Utc>,
        future_after: chrono::DateTime<chrono::Utc>,
        max_rows: i64,
    ) -> Result<(Option<i64>, Vec<JournalRow>), StoreError>;
    async fn delete_journal_through(&mut self, seq: i64) -> Result<(), StoreError>;
    async fn upsert_incidents(&mut self, incs: &[&Incident]) -> Result<(), StoreError>;
    /// New incident memberships: (incident id, alert fingerprint, place in join order).
    async fn add_members(
        &mut self,
        members: &[(compact_str::CompactString, Fingerprint, u64)],
    ) -> Result<(), StoreError>;
    /// Makes `fps` the incident's member rows, in this order (after a split took some
    /// away), and drops its CI rows (`upsert_incidents` writes those again).
    async fn rewrite_members(&mut self, id: &str, fps: &[Fingerprint]) -> Result<(), StoreError>;
    async fn append_feedback(&mut self, pairs: &[FeedbackPair]) -> Result<(), StoreError>;
    async fn append_timeline(&mut self, entries: &[TimelineEntry]) -> Result<(), StoreError>;
    /// One outbox row per event and subscription that wants it (fan-out under the lock).
    async fn enqueue_outbox(
        &mut self,
        subs: &[Subscription],
        events: &[Event],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError>;
    /// The webhook subscriptions, read under the write lock (events fan out to these).
    async fn subscriptions(&mut self) -> Result<Vec<Subscription>, StoreError>;
    async fn upsert_cis(&mut self, cis: &[Ci]) -> Result<(), StoreError>;
    async fn upsert_relations(&mut self, rels: &[Relation]) -> Result<(), StoreError>;
    /// Inserts or replaces history records by id; returns how many were new.
    async fn upsert_history(&mut self, recs: &[HistoryRecord]) -> Result<u64, StoreError>;
    async fn load_problems(&mut self) -> Result<Vec<ProblemCandidate>, StoreError>;
    /// Replaces every stored problem with `problems` (a reconciled clustering run).
    async fn replace_problems(&mut self, problems: &[ProblemCandidate]) -> Result<(), StoreError>;
    /// Sets a problem's status; `None` when there is no such problem.
    async fn set_problem_status(
        &mut self,
        id: &str,
        status: ProblemStatus,
    ) -> Result<Option<ProblemCandidate>, StoreError>;
    /// Commits, with the shared counters moved by what was written: `seq` always,
    /// `cmdb_version` when CIs or relations were upserted, `next_incident` past the
    /// highest incident number upserted. Returns them.
    async fn commit(self: Box<Self>) -> Result<StateRow, StoreError>;
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`).
pub async fn open(cfg: &crate::config::StoreConfig) -> Result<Box<dyn Store>, StoreError> {
    let url = cfg.url.as_str();
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::connect(cfg).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Box::new(PostgresStore::connect(cfg).await?))
    } else {
        Err(StoreError::BadUrl(url.to_string()))
    }
}
