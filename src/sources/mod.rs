//! Input formats and the transports that carry them. A format turns a sender's bytes into
//! `Alert`s, or says precisely what is wrong with them (the JSON path and the reason): one
//! file per format (`alertmanager`, `pagerduty`, `cloudevents`), each listed once in
//! `registry`, the table every transport reads. Transports: HTTP (one generic handler in
//! `api::intake`), `kafka` (the consumer and its config) and `forward` (HTTP intake
//! produced to Kafka). A transport names no format; a format knows no transport.
//!
//! The edge may read the clock (arrival time decides what "endsAt in the past" means for
//! senders that give no status); nothing past this module does.

pub mod alertmanager;
pub mod cloudevents;
mod fast_read;
pub mod forward;
pub mod kafka;
pub mod pagerduty;
pub mod registry;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::alert::{Fingerprint, Labels, Source};

/// A rejected input: which part of it, and why. Becomes a 400 naming both.
#[derive(Debug, Clone, thiserror::Error, Serialize, PartialEq)]
#[error("{path}: {message}")]
pub struct SourceError {
    pub path: String,
    pub message: String,
}

impl SourceError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    fn from_json(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let path = if path == "." {
            "body".to_string()
        } else {
            path
        };
        SourceError::new(path, inner.to_string())
    }
}

/// What normalization needs besides the bytes.
#[derive(Debug, Clone)]
pub struct Normalize {
    /// Arrival time; `None` in replay, where only the alerts' own times count.
    pub received_at: Option<DateTime<Utc>>,
    /// A firing alert sent without `endsAt` expires this long after arrival unless
    /// re-sent (Alertmanager's `resolve_timeout`).
    pub resolve_timeout: Duration,
    /// Timestamps further than this ahead of arrival are taken as the arrival time: a
    /// sender's wrong clock must not move sift's event time into the future.
    pub max_future_skew: Duration,
    /// Per-source dedup label sets: when set for a source, the fingerprint is the hash of
    /// only these labels, whatever the sender says.
    pub dedup_labels: Vec<(Source, Vec<String>)>,
}

impl Default for Normalize {
    fn default() -> Self {
        Self {
            received_at: None,
            resolve_timeout: Duration::minutes(5),
            max_future_skew: Duration::minutes(5),
            dedup_labels: Vec::new(),
        }
    }
}

impl Normalize {
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.received_at = Some(now);
        self
    }

    /// The dedup key: the configured label set for this source, else the sender's
    /// fingerprint, else the hash of all labels.
    pub fn fingerprint(&self, source: Source, labels: &Labels, given: Option<&str>) -> Fingerprint {
        if let Some((_, keep)) = self.dedup_labels.iter().find(|(s, _)| *s == source) {
            return Fingerprint::of_selected(labels, |k| keep.iter().any(|x| x == k));
        }
        match given.map(str::trim).filter(|g| !g.is_empty()) {
            Some(g) => Fingerprint::from(g),
            None => Fingerprint::of_labels(labels),
        }
    }

    /// A start time too far ahead of arrival is the sender's clock being wrong.
    fn clamp(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self.received_at {
            Some(now) if t > now + self.max_future_skew => now,
            _ => t,
        }
    }

    /// A resolved alert cannot have ended after it arrived.
    fn clamp_past(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        match self.received_at {
            Some(now) if t > now => now,
            _ => t,
        }
    }
}
