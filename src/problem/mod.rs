//! Problem management: recurring incidents clustered into problem candidates that a
//! problem manager can act on (suggested root CI and signature with a confidence, the
//! incidents, the recurrence pattern, a score).
//!
//! Input is a list of [`HistoryRecord`]s: incidents imported from the ITSM suite and
//! sift's own incidents converted with [`HistoryRecord::from_incident`]. The pipeline is
//! `features` (topology anchor, signature, tokens, time of week) → `cluster` (blocking by
//! suggested root, DBSCAN inside each block; `bursts` for what words cannot join) →
//! `recurrence` (weekly / daily / burst / irregular) → candidates with stable ids;
//! `reconcile` merges a new run with the accepted and rejected candidates a problem
//! manager already decided on. Its evaluation harness (synthetic histories with known
//! problems, scorer, baseline) is `sift_eval::problem` (crates/sift-eval).
//!
//! What it must not do: I/O of any kind or clock reads (the caller passes the history,
//! the topology and "now"), or panic on anything a history record can contain. The store
//! persists records and candidates; the API and the CLI drive this module.

pub mod bursts;
pub mod cluster;
pub mod downstream;
pub mod features;
#[cfg(test)]
mod fixtures;
pub mod import;
pub mod reconcile;
pub mod recurrence;
pub mod significance;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::incident::Incident;

pub use cluster::{ClusterError, ClusterReport, cluster, cluster_report};
pub use reconcile::reconcile;

/// Clustering settings (`[problems]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProblemConfig {
    /// DBSCAN neighbourhood radius, Euclidean on unit-length text vectors: two incidents
    /// are neighbours when the cosine similarity of their word bags is at least
    /// `1 - eps²/2`: the default 1.0 asks for cosine ≥ 0.5, half of the weighted words
    /// in common.
    pub eps: f64,
    /// DBSCAN core size and the smallest problem: ITIL's usual "three or more incidents".
    pub min_pts: usize,
    /// How far upstream (in dependency hops) an incident may point for its root CI.
    pub hops: u32,
    /// False-discovery rate over all clusters tested against their base rate: a cluster is
    /// a candidate when its Benjamini–Hochberg q-value is at most this.
    pub fdr: f64,
    /// No candidate holds more than this share of the history (at least `min_pts`).
    pub max_share: f64,
}

impl Default for ProblemConfig {
    fn default() -> Self {
        Self {
            eps: 1.0,
            min_pts: 3,
            hops: 2,
            fdr: 0.05,
            max_share: 0.02,
        }
    }
}

/// One incident of the history, as imported (`POST /api/v1/incidents/import`, or one line
/// of `sift problems cluster --incidents`). Only `id` and `opened_at` are required; a
/// record needs a non-empty `title` or at least one alertname to say what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryRecord {
    pub id: String,
    pub opened_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// The CI the incident was raised on (id, name or alias of a CMDB CI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alertnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcategory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment_group: Option<String>,
    /// 1 (critical) .. 5 (planning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_note: Option<String>,
    /// Where it happened (site, office, region): a coded feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The business service or service component affected: a coded feature, and the
    /// base-rate scope of an incident without a CI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The CI's class / type / subtype as the ITSM suite names it: a coded feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_class: Option<String>,
    /// How it was closed (`Software`, `Hardware`, `User error`...): a coded feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure_code: Option<String>,
    /// The known error, problem or knowledge article the ITSM suite already linked it to.
    /// Kept for the problem manager and the evaluation; never used to cluster (it is
    /// what clustering is meant to find).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_error: Option<String>,
}

/// Why a history record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a history record: {0}")]
    Parse(String),
    #[error("empty id")]
    EmptyId,
    #[error("empty title")]
    EmptyTitle,
    #[error(
        "no title, alertname or coded field (category, subcategory, symptom, closure_code, \
         service, location, ci_class): nothing says what happened"
    )]
    NoSignature,
    #[error("resolved_at is before opened_at")]
    ResolvedBeforeOpened,
    #[error("priority must be 1..5, not {0}")]
    Priority(u8),
    #[error("duplicate id {id:?} (first at record {first})")]
    Duplicate { id: String, first: usize },
}

/// A refused record: its 1-based position (line of a JSON-lines file, or element of a
/// JSON list) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BadRecord {
    pub record: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: String,
}

impl HistoryRecord {
    /// Checks what serde cannot: non-empty id and title, something that names the
    /// failure, resolved after opened, priority in range. Trims the text fields.
    pub fn validate(mut self) -> Result<Self, RecordError> {
        self.id = self.id.trim().to_string();
        if self.id.is_empty() {
            return Err(RecordError::EmptyId);
        }
        if let Some(t) = &self.title {
            if t.trim().is_empty() {
                return Err(RecordError::EmptyTitle);
            }
            self.title = Some(t.trim().to_string());
        }
        self.alertnames = self
            .alertnames
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        for f in [
            &mut self.category,
            &mut self.subcategory,
            &mut self.symptom,
            &mut self.assignment_group,
            &mut self.location,
            &mut self.service,
            &mut self.ci_class,
            &mut self.closure_code,
            &mut self.known_error,
            &mut self.resolution_note,
        ] {
            *f = f
                .take()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
        }
        let coded = [
            &self.category,
            &self.subcategory,
            &self.symptom,
            &self.closure_code,
            &self.service,
            &self.location,
            &self.ci_class,
        ]
        .iter()
        .any(|f| f.is_some());
        if self.title.is_none() && self.alertnames.is_empty() && !coded {
            return Err(RecordError::NoSignature);
        }
        if let Some(r) = self.resolved_at
            && r < self.opened_at
        {
            return Err(RecordError::ResolvedBeforeOpened);
        }
        if let Some(p) = self.priority
            && !(1..=5).contains(&p)
        {
            return Err(RecordError::Priority(p));
        }
        self.ci = self
            .ci
            .take()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        Ok(self)
    }

    /// One of sift's own incidents as a history record: its root-cause CI (else its first
    /// CI), its title, and the alertnames of its alerts when the caller has them (else
    /// none: the title carries the signature, as sift titles are `CI: Alertname (...)`).
    pub fn from_incident(inc: &Incident, alertnames: &[String]) -> Self {
        let mut names: Vec<String> = alertnames.to_vec();
        names.sort();
        names.dedup();
        if names.is_empty()
            && let Some((_, rest)) = inc.title.split_once(": ")
        {
            let first = rest.split(" (").next().unwrap_or(rest).trim();
            if !first.is_empty() && !first.contains(' ') {
                names.push(first.to_string());
            }
        }
        HistoryRecord {
            id: inc.id.clone(),
            opened_at: inc.opened_at,
            resolved_at: inc.resolved_at,
            ci: inc
                .root_cause_ci
                .clone()
                .or_else(|| inc.ci_ids.first().cloned()),
            title: Some(inc.title.clone()).filter(|t| !t.trim().is_empty()),
            alertnames: names,
            category: None,
            subcategory: None,
            symptom: None,
            assignment_group: inc.assignment_group.clone(),
            priority: Some(inc.priority),
            resolution_note: None,
            location: None,
            service: inc.impacted_services.first().cloned(),
            ci_class: None,
            closure_code: None,
            known_error: None,
        }
    }
}

/// Parses one JSON object into a validated record.
pub fn parse_record(json: &str) -> Result<HistoryRecord, RecordError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let rec: HistoryRecord = serde_path_to_error::deserialize(&mut de).map_err(parse_error)?;
    de.end().map_err(|e| RecordError::Parse(e.to_string()))?;
    rec.validate()
}

/// The records of a batch that passed, and the ones refused (with the rule applied:
/// the first record with an id wins, later duplicates are refused). Only the first
/// `MAX_BAD_REPORTED` refusals are kept with their reasons; `bad_total` counts them all,
/// so a large bad batch cannot grow the answer (or memory) with it.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    pub records: Vec<HistoryRecord>,
    pub bad: Vec<BadRecord>,
    pub bad_total: usize,
}

/// Refusals reported with their reason per batch.
pub const MAX_BAD_REPORTED: usize = 100;

impl ParsedBatch {
    pub fn refuse(&mut self, bad: BadRecord) {
        self.bad_total += 1;
        if self.bad.len() < MAX_BAD_REPORTED {
            self.bad.push(bad);
        }
    }

    fn take(
        &mut self,
        pos: usize,
        parsed: Result<HistoryRecord, RecordError>,
        id: Option<String>,
        seen: &mut HashMap<String, usize>,
    ) {
        match parsed {
            Ok(r) => {
                if let Some(&first) = seen.get(&r.id) {
                    self.refuse(BadRecord {
                        record: pos,
                        id: Some(r.id.clone()),
                        reason: RecordError::Duplicate { id: r.id, first }.to_string(),
                    });
                } else {
                    seen.insert(r.id.clone(), pos);
                    self.records.push(r);
                }
            }
            Err(e) => self.refuse(BadRecord {
                record: pos,
                id,
                reason: e.to_string(),
            }),
        }
    }
}

/// Parses one JSON value (an element of a list) into a validated record.
fn record_from_value(v: serde_json::Value) -> Result<HistoryRecord, RecordError> {
    let rec: HistoryRecord = serde_path_to_error::deserialize(v).map_err(parse_error)?;
    rec.validate()
}

/// A record that does not deserialize, with the path of the bad field.
fn parse_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> RecordError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if path == "." {
        RecordError::Parse(inner.to_string())
    } else {
        RecordError::Parse(format!("{path}: {inner}"))
    }
}

/// Parses JSON lines (blank lines ignored) or, when the text starts with `[`, a JSON list
/// of records. Every bad record is counted with its position; none stops the others. A
/// list is read element by element, never held whole as JSON values.
pub fn parse_batch(text: &str) -> ParsedBatch {
    let trimmed = text.trim_start();
    let mut out = ParsedBatch::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    if trimmed.starts_with('[') {
        struct Elements<'a> {
            out: &'a mut ParsedBatch,
            seen: &'a mut HashMap<String, usize>,
        }
        impl<'de> serde::de::Visitor<'de> for Elements<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON list of records")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                let mut pos = 0;
                while let Some(v) = seq.next_element::<serde_json::Value>()? {
                    pos += 1;
                    let id = v.get("id").and_then(|i| i.as_str()).map(str::to_string);
                    self.out.take(pos, record_from_value(v), id, self.seen);
                }
                Ok(())
            }
        }
        let mut de = serde_json::Deserializer::from_str(trimmed);
        let read = serde::Deserializer::deserialize_seq(
            &mut de,
            Elements {
                out: &mut out,
                seen: &mut seen,
            },
        )
        .and_then(|()| de.end());
        if let Err(e) = read {
            return ParsedBatch {
                records: Vec::new(),
                bad: vec![BadRecord {
                    record: 0,
                    id: None,
                    reason: format!("not a JSON list of records: {e}"),
                }],
                bad_total: 1,
            };
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = parse_record(line);
            let id = match &parsed {
                Ok(_) => None,
                Err(_) => serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string)),
            };
            out.take(i + 1, parsed, id, &mut seen);
        }
    }
    out
}

/// Review state of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProblemStatus {
    Candidate,
    Accepted,
    Rejected,
}

impl ProblemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Candidate => "candidate",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "candidate" => Self::Candidate,
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuggestedRootCause {
    pub ci_id: Option<String>,
    pub signature: String,
    /// 0..1: how much of the cluster points at this CI, and how directly.
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recurrence {
    pub count: usize,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// `weekly at Monday 08:00-09:00 UTC`, `daily at 08:00-09:00 UTC`, `burst`, `irregular`.
    pub pattern: String,
    /// weekly | daily | burst | irregular
    pub kind: recurrence::PatternKind,
    /// Incidents per weekday, Monday first (UTC).
    #[schema(value_type = Vec<u32>, min_items = 7, max_items = 7)]
    pub weekdays: [u32; 7],
    /// Incidents per hour of day (UTC).
    #[schema(value_type = Vec<u32>, min_items = 24, max_items = 24)]
    pub hours: [u32; 24],
    /// Median time between incidents, in hours.
    pub median_interval_hours: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CiCount {
    pub ci_id: String,
    pub incidents: usize,
}

/// A problem candidate, in the JSON shape of CONTRACT.md (plus evidence fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProblemCandidate {
    pub id: String,
    pub status: ProblemStatus,
    pub title: String,
    pub incident_ids: Vec<String>,
    pub suggested_root_cause: SuggestedRootCause,
    pub recurrence: Recurrence,
    /// 0..1, from incident count, priority and time lost.
    pub score: f64,
    /// The CIs the incidents were raised on, most first.
    #[serde(default)]
    pub cis: Vec<CiCount>,
    /// Total hours from opened to resolved over the incidents that have both.
    #[serde(default)]
    pub hours_lost: f64,
    /// Incidents in the candidate.
    #[serde(default)]
    pub observed: usize,
    /// How many incidents this alike the scope's ordinary volume brings by chance.
    #[serde(default)]
    pub expected: f64,
    /// Poisson tail of `observed` given `expected` (see `significance`).
    #[serde(default = "one")]
    pub p_value: f64,
    /// Benjamini–Hochberg q-value over every cluster of the run: candidates are ranked by it.
    #[serde(default = "one")]
    pub q_value: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

fn one() -> f64 {
    1.0
}

/// Why a candidate is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Explanation {
    /// Where the base rate was taken: `ci:<id>`, `svc:<service>`, `loc:<location>`,
    /// `sig:<signature>`.
    pub scope: String,
    /// Incidents in that scope over the history.
    pub scope_incidents: usize,
    /// Words and coded values at least half of its incidents share, most specific first.
    pub shared_signature: Vec<String>,
    /// Effective number of signatures among its incidents (1: all the same).
    pub signatures_mixed: f64,
    /// Incidents less alike the others than `eps` asks (joined through a neighbour).
    pub weak_incidents: Vec<String>,
    /// A problem manager rejected this root and signature (or these incidents) before:
    /// it had to be `REJECTED_PENALTY` times as significant.
    pub rejected_before: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::IncidentStatus;

    #[test]
    fn a_sift_incident_becomes_a_history_record() {
        let at: DateTime<Utc> = "2026-06-01T08:00:00Z".parse().unwrap();
        let inc = Incident {
            id: "INC0000042".into(),
            title: "orders-db primary: PostgresDown (+7 related alerts)".into(),
            status: IncidentStatus::Resolved,
            priority: 1,
            impact: 1,
            urgency: 1,
            root_cause_ci: Some("db-01".into()),
            root_cause: None,
            ci_ids: ["orders-api".into(), "db-01".into()].into_iter().collect(),
            impacted_services: vec![],
            assignment_group: Some("dba-team".into()),
            assignee: None,
            alert_fingerprints: Default::default(),
            alert_count: 8,
            opened_at: at,
            updated_at: at,
            acknowledged_at: None,
            resolved_at: Some(at + chrono::Duration::hours(2)),
            closed_at: None,
            correlation_key: "ci:db-01".into(),
            enrichment: Default::default(),
            sla: None,
            resolution_note: None,
        };
        let r = HistoryRecord::from_incident(&inc, &[]);
        assert_eq!(r.ci.as_deref(), Some("db-01"));
        assert_eq!(r.alertnames, ["PostgresDown"]);
        assert_eq!(r.priority, Some(1));
        let r = HistoryRecord::from_incident(&inc, &["B".into(), "A".into(), "B".into()]);
        assert_eq!(r.alertnames, ["A", "B"]);
    }

    #[test]
    fn every_bad_record_is_named_and_the_good_ones_kept() {
        let text = r#"{"id": "A", "opened_at": "2026-06-01T08:00:00Z", "alertnames": ["X"]}

{"id": "B", "opened_at": "2026-06-01T08:00:00Z", "resolved_at": "2026-05-01T08:00:00Z", "title": "t"}
{"id": "C", "opened_at": "2026-06-01T08:00:00Z"}
{"id": "D", "opened_at": "2026-06-01T08:00:00Z", "title": "t", "priority": 9}
{"id": "E", "opened_at": "2026-06-01T08:00:00Z", "title": "t", "colour": "red"}
{"id": "A", "opened_at": "2026-06-01T08:00:00Z", "title": "again"}"#;
        let b = parse_batch(text);
        assert_eq!(b.records.len(), 1);
        let bad: Vec<(usize, &str)> = b
            .bad
            .iter()
            .map(|x| (x.record, x.reason.as_str()))
            .collect();
        assert_eq!(bad.len(), 5);
        assert_eq!(bad[0], (3, "resolved_at is before opened_at"));
        assert!(bad[1].1.starts_with("no title, alertname or coded field"));
        assert_eq!(bad[2], (5, "priority must be 1..5, not 9"));
        assert!(bad[3].1.contains("colour"), "{}", bad[3].1);
        assert_eq!(bad[4], (7, "duplicate id \"A\" (first at record 1)"));
        // A JSON list works the same, positions are list elements.
        let b = parse_batch(
            r#"[{"id": "A", "opened_at": "2026-06-01T08:00:00Z", "title": "t"}, {"id": ""}]"#,
        );
        assert_eq!((b.records.len(), b.bad[0].record), (1, 2));
    }
}
