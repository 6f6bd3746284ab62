//! The core's data beside incidents: the record of one deduplicated alert
//! (`AlertRecord`), what an ingested event did (`Outcome`), the change log a caller
//! persists (`Changes`), and an operator's change to an incident (`IncidentPatch`).
//!
//! Data only: the engine changes these (`dedup`, `apply`, `lifecycle`); nothing here
//! reads the engine's state or decides anything.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::FeedbackPair;
use crate::alert::{Alert, AlertStatus, Fingerprint, FingerprintSet, Labels, Severity, Source};
use crate::incident::{IncidentStatus, TimelineEntry};

/// What the core knows of one deduplicated alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertRecord {
    pub fingerprint: Fingerprint,
    pub status: AlertStatus,
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    // Rare and never edited: boxed text (16 bytes, not 24) keeps the record at 256 bytes,
    // an allocator size class below 272 (which costs 320).
    #[schema(value_type = Option<String>)]
    pub generator_url: Option<Box<str>>,
    pub source: Source,
    // Compact: CI and incident ids are short, held inline (no allocation per alert).
    #[schema(value_type = Option<String>)]
    pub ci_id: Option<CompactString>,
    #[schema(value_type = Option<String>)]
    pub incident_id: Option<CompactString>,
    /// Events received for this alert (firing re-sends and resolves included).
    pub count: u64,
    pub flapping: bool,
    pub suppressed: bool,
    /// The maintenance change that suppresses this alert, while it does.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub suppressed_by: Option<Box<str>>,
    /// When it last changed state (firing ↔ resolved), within the flap window.
    #[serde(default)]
    pub flips: Vec<DateTime<Utc>>,
    /// Event time of the last change to this alert.
    pub last_event_at: DateTime<Utc>,
    /// What the store's indexed columns hold for it, as last written or read.
    #[serde(skip)]
    pub persisted: Persisted,
}

/// What the store's row for an alert holds, as last written or read. Bookkeeping, not
/// part of the alert: any two compare equal.
///
/// `index` is a digest of the columns the store indexes an alert by (status, CI, incident,
/// start); 0 when unknown. When the alert's current digest equals it, the writer updates
/// only its document, not every index. `seq` is the commit that wrote the row (0 when
/// unknown): re-send journal entries of later commits are newer than the row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Persisted {
    pub index: u64,
    pub seq: i64,
}

impl PartialEq for Persisted {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The values of the columns the store indexes an alert by: the one place that lists
/// them. The store writes its indexed columns from this (`upsert_alerts`, which
/// destructures it, so a field added here does not compile there until it is stored), and
/// `index_key` digests it, so a re-send never leaves an indexed column stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexedColumns<'a> {
    pub status: &'static str,
    pub ci_id: Option<&'a str>,
    pub incident_id: Option<&'a str>,
    /// `starts_at` in ms since the epoch.
    pub starts_at: i64,
}

impl AlertRecord {
    /// What the store's indexed columns should hold for this record.
    pub fn indexed(&self) -> IndexedColumns<'_> {
        IndexedColumns {
            status: self.status.as_str(),
            ci_id: self.ci_id.as_deref(),
            incident_id: self.incident_id.as_deref(),
            starts_at: self.starts_at.timestamp_millis(),
        }
    }

    /// The digest `Persisted` holds, for the current values (never 0).
    pub fn index_key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.indexed().hash(&mut h);
        h.finish() | 1
    }

    /// Whether the store's indexed columns already hold what this record says.
    pub fn index_unchanged(&self) -> bool {
        self.persisted.index == self.index_key()
    }
}

impl AlertRecord {
    pub(super) fn new(alert: Alert, at: DateTime<Utc>) -> Self {
        AlertRecord {
            fingerprint: alert.fingerprint,
            status: alert.status,
            labels: alert.labels,
            annotations: alert.annotations,
            starts_at: alert.starts_at,
            ends_at: alert.ends_at,
            generator_url: alert.generator_url.map(String::into_boxed_str),
            source: alert.source,
            ci_id: None,
            incident_id: None,
            count: 1,
            flapping: false,
            suppressed: false,
            suppressed_by: None,
            flips: Vec::new(),
            last_event_at: at,
            persisted: Persisted::default(),
        }
    }
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }
    pub fn severity(&self) -> Severity {
        Severity::from_label(self.labels.get("severity"))
    }
}

/// What an ingested event did to its alert; counted per source in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new alert, or a new occurrence of one that had resolved.
    New,
    /// A re-send of what sift already knew (including stale, out-of-order events).
    Duplicate,
    /// The alert resolved.
    Resolved,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::New => "new",
            Outcome::Duplicate => "duplicate",
            Outcome::Resolved => "resolved",
        }
    }
}

/// Everything the core changed since the last `take_changes`: the caller persists these.
#[derive(Debug, Default)]
pub struct Changes {
    /// Alerts whose record changed (unordered: sort before writing in a stable order).
    pub alerts: FingerprintSet,
    /// Alerts re-sent with nothing new but their count and `ends_at`: the writer journals
    /// those two values instead of rewriting the row. An alert also in `alerts` is written
    /// in full.
    pub touched: FingerprintSet,
    pub incidents: BTreeSet<String>,
    pub timeline: Vec<TimelineEntry>,
    /// Alerts that became members of an incident: (incident id, fingerprint).
    pub members: Vec<(CompactString, Fingerprint, u64)>,
    /// Incidents that lost members (a split): their member rows are rewritten from
    /// `alert_fingerprints`, in order.
    pub rewrite_members: BTreeSet<String>,
    /// Operator feedback on grouping (merges and splits), for correlation tuning.
    pub feedback: Vec<FeedbackPair>,
    pub opened: u64,
    pub resolved: u64,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
            && self.touched.is_empty()
            && self.incidents.is_empty()
            && self.timeline.is_empty()
    }
}

/// A change an operator asks for on an incident.
#[derive(Debug, Clone, Default)]
pub struct IncidentPatch {
    pub status: Option<IncidentStatus>,
    /// `Some(None)` clears the assignee.
    pub assignee: Option<Option<String>>,
    pub comment: Option<String>,
    /// How it was fixed; kept with the incident and shown on similar ones later.
    pub resolution_note: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    #[error("incident {0} not found")]
    NotFound(String),
    #[error("incident {id} cannot go from {from} to {to}")]
    IllegalTransition {
        id: String,
        from: &'static str,
        to: &'static str,
    },
}
