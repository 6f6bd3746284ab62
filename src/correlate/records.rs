//! The core's data beside incidents: the record of one deduplicated alert
//! (`AlertRecord`), what an ingested event did (`Outcome`), the change log a caller
//! persists (`Changes`), and an operator's change to an incident (`IncidentPatch`).
//!
//! Data only: the engine changes these (`dedup`, `apply`, `lifecycle`); nothing here
//! reads the engine's state or decides anything.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::Deserialize;

use super::FeedbackPair;
use crate::alert::{Alert, AlertStatus, Fingerprint, FingerprintSet, Labels, Severity, Source};
use crate::incident::{IncidentStatus, TimelineEntry};

/// What the core knows of one deduplicated alert. Read back from the store's document
/// (`Deserialize`); shown to users as `view::AlertView`, never serialized itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AlertRecord {
    pub fingerprint: Fingerprint,
    pub status: AlertStatus,
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    // Rare and never edited: boxed text (16 bytes, not 24) keeps the record at 256 bytes,
    // an allocator size class below 272 (which costs 320).
    pub generator_url: Option<Box<str>>,
    pub source: Source,
    // Compact: CI and incident ids are short, held inline (no allocation per alert).
    pub ci_id: Option<CompactString>,
    pub incident_id: Option<CompactString>,
    /// Events received for this alert (firing re-sends and resolves included).
    pub count: u64,
    pub flapping: bool,
    pub suppressed: bool,
    /// The maintenance change that suppresses this alert, while it does.
    #[serde(default)]
    pub suppressed_by: Option<Box<str>>,
    /// When it last changed state (firing ↔ resolved), within the flap window.
    #[serde(default)]
    pub flips: Vec<DateTime<Utc>>,
    /// Event time of the last change to this alert.
    pub last_event_at: DateTime<Utc>,
    /// The writer's mark (see `Persisted`).
    #[serde(skip)]
    pub persisted: Persisted,
}

/// What the store's row for an alert holds, as last written or read: the writer's
/// re-send journal keeps it here (`pipeline::journal`), beside the record, so it costs no
/// lookup of its own. The core copies it with the record and never reads it: no decision
/// of the core may depend on what is stored. Not part of the alert: any two compare equal.
///
/// `index` is a digest of the columns the store indexes an alert by
/// (`store::journal::index_digest`), 0 when unknown; `seq` the commit that wrote the row
/// (0 when unknown).
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
