//! The one `Alert` type every source normalizes into, its dedup fingerprint and severity.
//!
//! Nothing downstream of normalization knows which wire format an alert came in; the
//! `source` field records it for display only. This module does no I/O and reads no clock.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Label or annotation set, sorted by name so hashing and display are stable.
pub use crate::labels::Labels;
use compact_str::CompactString;

/// The dedup key of an alert: the sender's fingerprint when it gives one, else the
/// Prometheus-compatible hash of the sorted label set (so sift's key for an alert equals
/// the one Prometheus and Alertmanager show for it). Held inline (no heap allocation) up
/// to 24 bytes, so sift's 16 hex digits cost nothing beyond the 24-byte value in each of
/// the places an active alert is indexed by it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(
    value_type = String,
    example = "6f1ed002ab5595ec",
    description = "The alert's dedup key: the sender's fingerprint, else the Prometheus hash of its label set (16 hex digits)."
)]
pub struct Fingerprint(pub CompactString);

/// A set of fingerprints, hashed with foldhash: the core writes to these per alert
/// event, where SipHash (the default) costs several times as much.
pub type FingerprintSet = std::collections::HashSet<Fingerprint, foldhash::fast::RandomState>;

impl Fingerprint {
    /// FNV-1a 64 over `name 0xff value 0xff` for each label in name order, printed as 16
    /// hex digits: the algorithm of Prometheus' `LabelSet.Fingerprint`.
    /// Runs for every alert received: straight over the set's packed text.
    pub fn of_labels(labels: &Labels) -> Self {
        let (text, ends) = labels.packed();
        let mut h = FNV_OFFSET;
        let mut start = 0;
        for &end in ends {
            let end = end as usize;
            h = fnv(fnv(h, &text[start..end]), &[0xff]);
            start = end;
        }
        Self::of_hash(h)
    }

    /// The same hash over only the labels `keep` accepts: the configurable dedup key.
    pub fn of_selected(labels: &Labels, keep: impl Fn(&str) -> bool) -> Self {
        let mut h = FNV_OFFSET;
        for (k, v) in labels.iter().filter(|(k, _)| keep(k)) {
            h = fnv(h, k.as_bytes());
            h = fnv(h, &[0xff]);
            h = fnv(h, v.as_bytes());
            h = fnv(h, &[0xff]);
        }
        Self::of_hash(h)
    }

    /// 16 lowercase hex digits, written by hand.
    fn of_hash(h: u64) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, d) in out.iter_mut().enumerate() {
            *d = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        }
        Fingerprint(CompactString::from_utf8(out).unwrap_or_default())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64: `h` continued over `bytes`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(PRIME);
    }
    h
}

impl From<&str> for Fingerprint {
    fn from(s: &str) -> Self {
        Fingerprint(CompactString::from(s))
    }
}

impl From<String> for Fingerprint {
    fn from(s: String) -> Self {
        Fingerprint(CompactString::from(s))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "firing" => Some(Self::Firing),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }
}

/// Where an alert came in. Recorded, shown, never branched on downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Alertmanager,
    Prometheus,
    Pagerduty,
    Kafka,
    Replay,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Prometheus => "prometheus",
            Source::Pagerduty => "pagerduty",
            Source::Kafka => "kafka",
            Source::Replay => "replay",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "alertmanager" => Self::Alertmanager,
            "prometheus" => Self::Prometheus,
            "pagerduty" => Self::Pagerduty,
            "kafka" => Self::Kafka,
            "replay" => Self::Replay,
            _ => return None,
        })
    }
}

/// Alert severity, read from the `severity` label (Prometheus convention) or a source's own
/// field. Drives ITIL urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    /// Lenient reading of the severity words found in the wild; unknown words are warnings,
    /// the Prometheus community default.
    pub fn from_label(s: Option<&str>) -> Self {
        // Lowercased on the stack: this runs for every alert that joins an incident.
        let mut buf = [0u8; 16];
        let lower = s.map(str::trim).and_then(|s| {
            let out = buf.get_mut(..s.len())?;
            out.copy_from_slice(s.as_bytes());
            out.make_ascii_lowercase();
            std::str::from_utf8(out).ok()
        });
        match lower {
            Some("critical" | "crit" | "fatal" | "emergency" | "page" | "p1" | "disaster") => {
                Severity::Critical
            }
            Some("error" | "err" | "major" | "high" | "p2") => Severity::Error,
            Some("info" | "informational" | "low" | "none" | "ok" | "debug" | "p4" | "p5") => {
                Severity::Info
            }
            _ => Severity::Warning,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One alert event after normalization: what a source said about one alert at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub fingerprint: Fingerprint,
    pub status: AlertStatus,
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    /// When the alert ends (resolved) or expires unless refreshed (firing). `None` is
    /// "until a sender says otherwise".
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: Option<String>,
    pub source: Source,
}

impl Alert {
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }

    pub fn severity(&self) -> Severity {
        Severity::from_label(self.labels.get("severity"))
    }

    /// The event time of this alert event: when it started firing, or when it ended.
    /// Every window in sift is judged on this, never on arrival time.
    pub fn event_time(&self) -> DateTime<Utc> {
        match (self.status, self.ends_at) {
            (AlertStatus::Resolved, Some(end)) => end.max(self.starts_at),
            _ => self.starts_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_prometheus() {
        // Prometheus' model.LabelSet{"alertname":"Up","instance":"a"} hashes the same way;
        // the empty set is the FNV offset basis.
        assert_eq!(Fingerprint::of_labels(&Labels::new()).0, "cbf29ce484222325");
        let mut a = Labels::new();
        a.insert("b".into(), "2".into());
        a.insert("a".into(), "1".into());
        let mut b = Labels::new();
        b.insert("a".into(), "1".into());
        b.insert("b".into(), "2".into());
        assert_eq!(Fingerprint::of_labels(&a), Fingerprint::of_labels(&b));
        let mut c = b.clone();
        c.insert("b".into(), "3".into());
        assert_ne!(Fingerprint::of_labels(&a), Fingerprint::of_labels(&c));
    }

    #[test]
    fn severity_words() {
        assert_eq!(Severity::from_label(Some("CRITICAL")), Severity::Critical);
        assert_eq!(Severity::from_label(Some("page")), Severity::Critical);
        assert_eq!(Severity::from_label(None), Severity::Warning);
        assert_eq!(Severity::from_label(Some("info")), Severity::Info);
        assert_eq!(Severity::from_label(Some(" Error ")), Severity::Error);
        assert_eq!(
            Severity::from_label(Some("a-severity-name-longer-than-sixteen")),
            Severity::Warning
        );
    }
}
