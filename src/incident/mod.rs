//! Incidents: the record operators work on, its lifecycle rules and its ITIL priority.
//!
//! Pure data and rules: the correlation core decides when incidents open, join and
//! resolve; this module says what an incident is and which transitions are legal. No I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use indexmap::IndexSet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::alert::{Fingerprint, Severity};
use crate::cmdb::Criticality;

/// An incident's CI ids or members: ordered, and hashed with foldhash (SipHash, the
/// default, was a tenth of the cost of an alert joining).
pub type Members<T> = IndexSet<T, foldhash::fast::RandomState>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Resolved,
    Closed,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "acknowledged" => Self::Acknowledged,
            "resolved" => Self::Resolved,
            "closed" => Self::Closed,
            _ => return None,
        })
    }
    /// Open or acknowledged: alerts may still join it.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Open | Self::Acknowledged)
    }

    /// The lifecycle: open → acknowledged → resolved → closed, with resolve allowed from
    /// open, reopen from resolved, and nothing out of closed.
    pub fn can_move_to(self, to: Self) -> bool {
        use IncidentStatus::*;
        matches!(
            (self, to),
            (Open, Acknowledged)
                | (Open, Resolved)
                | (Acknowledged, Resolved)
                | (Acknowledged, Open)
                | (Resolved, Closed)
                | (Resolved, Open)
        )
    }
}

/// `INC0000042` from 42.
pub fn incident_id(number: u64) -> String {
    format!("INC{number:07}")
}

/// 42 from `INC0000042`.
pub fn incident_number(id: &str) -> Option<u64> {
    id.strip_prefix("INC")?.parse().ok()
}

/// One incident: the core's working record. Read back from the store's document
/// (`Deserialize`); shown to users as `view::IncidentView`, never serialized itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub status: IncidentStatus,
    pub priority: u8,
    pub impact: u8,
    pub urgency: u8,
    pub root_cause_ci: Option<String>,
    /// The root cause in full: `root_cause_ci`, whether that CI is alerting (false: a
    /// suspected root), confidence and reason.
    #[serde(default)]
    pub root_cause: Option<RootCause>,
    /// CIs its alerts are on, in the order they joined (a set: checked on every join).
    pub ci_ids: Members<String>,
    pub impacted_services: Vec<String>,
    pub assignment_group: Option<String>,
    pub assignee: Option<String>,
    /// Member alerts in the order they joined (a set: joining twice is a no-op). The
    /// store keeps them as rows of `incident_alerts`, not in its document.
    #[serde(default)]
    pub alert_fingerprints: Members<Fingerprint>,
    pub alert_count: u64,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The grouping key that brought these alerts together (`ci:<id>` or `group:<hash>`).
    pub correlation_key: CorrelationKey,
    pub enrichment: serde_json::Map<String, serde_json::Value>,
    /// Response and resolution deadlines of its priority, and whether they were missed.
    #[serde(default)]
    pub sla: Option<Sla>,
    /// How it was fixed, as the resolver wrote it (`PATCH … {"resolution_note": …}`);
    /// shown to whoever meets a similar incident later.
    #[serde(default)]
    pub resolution_note: Option<String>,
}

/// The key an incident is filed under while active: what brought its alerts together.
/// Written (the incident document, API, webhooks) as `ci:<id>`, `group:<fingerprint>` or
/// `split:<id>`, exactly the strings sift always wrote; a key of another form (older
/// versions wrote `alertname:<name>`) is read as `Other`, kept and written back as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CorrelationKey {
    /// `ci:<id>`: opened by an alert on CI `id`.
    Ci(String),
    /// `group:<fingerprint>`: alerts on no CI, by their labels minus instance-like ones.
    Group(Fingerprint),
    /// `split:<id>`: incident `id`, split out of another by an operator.
    Split(String),
    /// A key of a form this version does not write, as it was written. Made by `parse`
    /// only, so a key of a known form is never held here.
    Other(String),
}

impl CorrelationKey {
    /// The key a written string stands for; never fails (unknown forms are `Other`).
    pub fn parse(s: &str) -> Self {
        if let Some(id) = s.strip_prefix("ci:") {
            Self::Ci(id.into())
        } else if let Some(fp) = s.strip_prefix("group:") {
            Self::Group(Fingerprint(fp.into()))
        } else if let Some(id) = s.strip_prefix("split:") {
            Self::Split(id.into())
        } else {
            Self::Other(s.into())
        }
    }
}

impl std::fmt::Display for CorrelationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ci(id) => write!(f, "ci:{id}"),
            Self::Group(fp) => write!(f, "group:{}", fp.0),
            Self::Split(id) => write!(f, "split:{id}"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

impl From<&str> for CorrelationKey {
    fn from(s: &str) -> Self {
        Self::parse(s)
    }
}

impl Serialize for CorrelationKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CorrelationKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// An incident's SLA: deadlines from `incident.sla` for its priority, set at open and moved
/// when the priority changes; a breached flag never goes back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sla {
    pub respond_by: DateTime<Utc>,
    pub resolve_by: DateTime<Utc>,
    pub respond_breached: bool,
    pub resolve_breached: bool,
}

impl Incident {
    pub fn number(&self) -> u64 {
        incident_number(&self.id).unwrap_or(0)
    }
}

/// One line of an incident's timeline: who or what did what, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    // Compact strings: ids, actors and kinds are short and held inline, so the entry the
    // core writes for every alert that joins an incident costs no allocation for them.
    #[schema(value_type = String)]
    pub incident_id: CompactString,
    pub at: DateTime<Utc>,
    /// `sift` for the pipeline's own decisions, else the API caller's role/name.
    #[schema(value_type = String)]
    pub actor: CompactString,
    #[schema(value_type = String)]
    pub kind: TimelineKind,
    /// What the entry records beyond its kind (any JSON; an alert joining gives
    /// `alertname`, `fingerprint` and `reason`).
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub detail: Detail,
}

/// What a timeline entry records. Written (store rows, API, webhooks, the outbox's
/// choice of event) as its snake_case name, exactly the strings sift always wrote; a name
/// sift does not know (an entry written by another version) is read as `Other`, kept
/// as written and written back the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimelineKind {
    /// `opened`: the incident opened (detail: its correlation `key`).
    Opened,
    /// `alert_joined`: an alert joined, with why (`Detail::AlertJoined`).
    AlertJoined,
    /// `alert_resolved`: one of its alerts resolved.
    AlertResolved,
    /// `priority_changed`: a joining alert changed its priority.
    PriorityChanged,
    /// `reopened`: an alert of the resolved incident fired again.
    Reopened,
    /// `resolved`: all its alerts resolved, or an operator resolved it.
    Resolved,
    /// `root_changed`: a late root became its root.
    RootChanged,
    /// `root_suspected`: a silent CI became its suspected root.
    RootSuspected,
    /// `root_confirmed`: the suspected root alerted.
    RootConfirmed,
    /// `merged`: folded into another incident, or another folded into it.
    Merged,
    /// `split`: an operator split alerts out of it, or it was split out.
    Split,
    /// `flapping_started`: one of its alerts is flapping.
    FlappingStarted,
    /// `flapping_stopped`: a flapping alert has been steady for the flap window.
    FlappingStopped,
    /// `sla_respond_breached`: the response deadline passed.
    SlaRespondBreached,
    /// `sla_resolve_breached`: the resolution deadline passed.
    SlaResolveBreached,
    /// `open`: an operator set it open again.
    Open,
    /// `acknowledged`: an operator acknowledged it.
    Acknowledged,
    /// `closed`: an operator closed it.
    Closed,
    /// `assigned`: an operator (re)assigned it.
    Assigned,
    /// `comment`: an operator's comment.
    Comment,
    /// `resolution_note`: how it was fixed, as the resolver wrote it.
    ResolutionNote,
    /// A kind this version does not know, as it was written. Made by `parse` only, so a
    /// known name is never held here.
    Other(CompactString),
}

impl TimelineKind {
    /// Every kind this version writes, for `parse` (in no particular order).
    const KNOWN: [TimelineKind; 21] = [
        Self::Opened,
        Self::AlertJoined,
        Self::AlertResolved,
        Self::PriorityChanged,
        Self::Reopened,
        Self::Resolved,
        Self::RootChanged,
        Self::RootSuspected,
        Self::RootConfirmed,
        Self::Merged,
        Self::Split,
        Self::FlappingStarted,
        Self::FlappingStopped,
        Self::SlaRespondBreached,
        Self::SlaResolveBreached,
        Self::Open,
        Self::Acknowledged,
        Self::Closed,
        Self::Assigned,
        Self::Comment,
        Self::ResolutionNote,
    ];

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Opened => "opened",
            Self::AlertJoined => "alert_joined",
            Self::AlertResolved => "alert_resolved",
            Self::PriorityChanged => "priority_changed",
            Self::Reopened => "reopened",
            Self::Resolved => "resolved",
            Self::RootChanged => "root_changed",
            Self::RootSuspected => "root_suspected",
            Self::RootConfirmed => "root_confirmed",
            Self::Merged => "merged",
            Self::Split => "split",
            Self::FlappingStarted => "flapping_started",
            Self::FlappingStopped => "flapping_stopped",
            Self::SlaRespondBreached => "sla_respond_breached",
            Self::SlaResolveBreached => "sla_resolve_breached",
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Closed => "closed",
            Self::Assigned => "assigned",
            Self::Comment => "comment",
            Self::ResolutionNote => "resolution_note",
            Self::Other(s) => s.as_str(),
        }
    }

    /// The kind a wire name stands for; never fails (unknown names are `Other`).
    pub fn parse(s: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|k| k.as_str() == s)
            .cloned()
            .unwrap_or_else(|| Self::Other(s.into()))
    }

    /// The entry an operator's status change writes: the status's own name.
    pub fn of_status(status: IncidentStatus) -> Self {
        match status {
            IncidentStatus::Open => Self::Open,
            IncidentStatus::Acknowledged => Self::Acknowledged,
            IncidentStatus::Resolved => Self::Resolved,
            IncidentStatus::Closed => Self::Closed,
        }
    }
}

/// Compares by wire name (`kind == "alert_joined"`), as code written when kinds were
/// strings does.
impl PartialEq<str> for TimelineKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for TimelineKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for TimelineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TimelineKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TimelineKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Compact: a kind's name is held inline, no allocation.
        let s = CompactString::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// Which grouping rule placed an alert (see `correlate::policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Nothing explained it: it opened an incident of its own.
    Opened,
    /// Its CI already alerted in this incident.
    SameCi,
    /// Something its CI depends on alerted in this incident first (cause precedes effect).
    Upstream,
    /// Its CI is something the incident's root depends on: it became the root.
    LateRoot,
    /// It and the incident's alerts share a silent dependency, now the suspected root.
    SilentRoot,
    /// It fired on the incident's suspected root, which is now the confirmed root.
    ConfirmedRoot,
    /// Its CI depends on nothing in the CMDB, unlike most CIs of its type (the CMDB lost
    /// its uplink), and CIs of its type under the incident's root alerted in it just before.
    Orphan,
    /// A re-fire of an alert of this incident (maybe reopening it).
    Refire,
    /// No CI: another alert named the same unknown host.
    UnknownHost,
    /// No CI: the same alert (labels minus instance-like ones) on many instances.
    SameAlert,
    /// An operator moved it (a merge or a split): the timeline entry beside it says who.
    Operator,
}

/// Why an alert went where it went: the rule, the link's score (1 for a link through
/// alerting CIs only), the dependency path it followed, the lag behind the CI it was
/// linked to, and the CIs on that path that were not alerting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub rule: Rule,
    pub score: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// Seconds from the linked CI's first alert in the incident to this alert's start
    /// (negative: this one started first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silent: Vec<String>,
    /// The learned causality edge that backed the link, as a sentence ("learned: NodeDown
    /// → PodCrashLooping, seen 143 times, median lag 40 s"); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned: Option<String>,
    /// Why a re-fired alert did not go back to the incident its previous occurrence was
    /// in ("not back to INC…: its root … began alerting 1174 s before …"); absent
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_back: Option<String>,
}

impl Reason {
    pub fn rule(rule: Rule) -> Self {
        Reason {
            rule,
            score: 1.0,
            path: Vec::new(),
            lag_seconds: None,
            silent: Vec::new(),
            learned: None,
            not_back: None,
        }
    }
}

/// An incident's root cause: the CI, whether it is alerting itself (false: a suspected
/// root inferred from the alerting CIs that all depend on it), how sure sift is, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RootCause {
    pub ci_id: String,
    pub alerting: bool,
    pub confidence: f64,
    pub reason: String,
}

/// What a timeline entry records beyond its kind: a JSON value. The core's most frequent
/// entry, an alert joining, is kept typed until it is written: a JSON map per alert of a
/// storm cost four allocations and a tree insert per key. Both forms write the same JSON,
/// and compare by it; what is read back is `Json`.
#[derive(Debug, Clone)]
pub enum Detail {
    /// `{"alertname": …, "fingerprint": …}`
    AlertJoined {
        alertname: CompactString,
        fingerprint: Fingerprint,
        /// Why it joined (absent on entries written before sift recorded reasons).
        reason: Option<Box<Reason>>,
    },
    Json(serde_json::Value),
}

impl Detail {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Detail::AlertJoined {
                alertname,
                fingerprint,
                reason,
            } => {
                let mut v = serde_json::json!({"alertname": alertname, "fingerprint": fingerprint});
                if let Some(r) = reason {
                    v["reason"] = serde_json::to_value(r).unwrap_or_default();
                }
                v
            }
            Detail::Json(v) => v.clone(),
        }
    }
}

impl Default for Detail {
    fn default() -> Self {
        Detail::Json(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for Detail {
    fn from(v: serde_json::Value) -> Self {
        Detail::Json(v)
    }
}

impl PartialEq for Detail {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Detail::Json(a), Detail::Json(b)) => a == b,
            _ => self.to_json() == other.to_json(),
        }
    }
}

impl Serialize for Detail {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            // Keys in the order a JSON map sorts them, as `Json` would write them.
            Detail::AlertJoined {
                alertname,
                fingerprint,
                reason,
            } => {
                let mut m = s.serialize_map(Some(2 + usize::from(reason.is_some())))?;
                m.serialize_entry("alertname", alertname)?;
                m.serialize_entry("fingerprint", fingerprint)?;
                if let Some(r) = reason {
                    m.serialize_entry("reason", r)?;
                }
                m.end()
            }
            Detail::Json(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Detail {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(Detail::Json)
    }
}

/// ITIL impact: 1 (high) .. 3 (low), from the root CI's criticality.
pub fn impact_of(criticality: Option<Criticality>) -> u8 {
    match criticality {
        Some(Criticality::Critical) | Some(Criticality::High) => 1,
        Some(Criticality::Medium) | None => 2,
        Some(Criticality::Low) => 3,
    }
}

/// ITIL urgency: 1 (high) .. 3 (low), from the most severe alert.
pub fn urgency_of(severity: Severity) -> u8 {
    match severity {
        Severity::Critical => 1,
        Severity::Error | Severity::Warning => 2,
        Severity::Info => 3,
    }
}

/// `incident.priority_matrix`: the priority (1 critical .. 5 planning) of each impact and
/// urgency (1..=3 each), written `"<impact><urgency>" = priority` for all nine cells, and
/// parsed so at load: a missing cell, a key that is not a cell or a priority outside 1..5
/// is refused there, named. The default is ITIL's: impact + urgency - 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityMatrix([[u8; 3]; 3]);

impl Default for PriorityMatrix {
    fn default() -> Self {
        let mut m = [[0u8; 3]; 3];
        for (i, row) in (1u8..).zip(m.iter_mut()) {
            for (u, cell) in (1u8..).zip(row.iter_mut()) {
                *cell = i + u - 1;
            }
        }
        PriorityMatrix(m)
    }
}

impl PriorityMatrix {
    pub fn priority(&self, impact: u8, urgency: u8) -> u8 {
        match (impact, urgency) {
            (1..=3, 1..=3) => self.0[usize::from(impact - 1)][usize::from(urgency - 1)],
            _ => (impact + urgency).saturating_sub(1).clamp(1, 5),
        }
    }
}

impl Serialize for PriorityMatrix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = BTreeMap::new();
        for (i, row) in (1u8..).zip(self.0) {
            for (u, p) in (1u8..).zip(row) {
                m.insert(format!("{i}{u}"), p);
            }
        }
        m.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PriorityMatrix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let written = BTreeMap::<String, u8>::deserialize(d)?;
        let mut m = [[0u8; 3]; 3];
        for (k, &p) in &written {
            let cell = match k.as_bytes() {
                [i @ b'1'..=b'3', u @ b'1'..=b'3'] => {
                    (usize::from(i - b'1'), usize::from(u - b'1'))
                }
                _ => {
                    return Err(D::Error::custom(format!(
                        "incident.priority_matrix: key {k:?} is not \"<impact><urgency>\" with both 1..3"
                    )));
                }
            };
            if !(1..=5).contains(&p) {
                return Err(D::Error::custom(format!(
                    "incident.priority_matrix.{k} = {p} is not a priority 1..5"
                )));
            }
            m[cell.0][cell.1] = p;
        }
        for (i, row) in (1u8..).zip(m) {
            for (u, p) in (1u8..).zip(row) {
                if p == 0 {
                    return Err(D::Error::custom(format!(
                        "incident.priority_matrix has no entry \"{i}{u}\" (impact {i}, urgency {u})"
                    )));
                }
            }
        }
        Ok(PriorityMatrix(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_rules() {
        use IncidentStatus::*;
        assert!(Open.can_move_to(Acknowledged));
        assert!(Resolved.can_move_to(Closed));
        assert!(!Closed.can_move_to(Acknowledged));
        assert!(!Open.can_move_to(Closed));
        assert_eq!(incident_id(42), "INC0000042");
        assert_eq!(incident_number("INC0000042"), Some(42));
    }

    #[test]
    fn correlation_keys_keep_their_form() {
        let fp = Fingerprint("6f1ed002ab5595ec".into());
        for (key, text) in [
            (CorrelationKey::Ci("db-01".into()), "ci:db-01"),
            (CorrelationKey::Ci("a:b".into()), "ci:a:b"),
            (CorrelationKey::Group(fp), "group:6f1ed002ab5595ec"),
            (
                CorrelationKey::Split("INC0000007".into()),
                "split:INC0000007",
            ),
            (CorrelationKey::Other("alertname:X".into()), "alertname:X"),
            (CorrelationKey::Other(String::new()), ""),
        ] {
            assert_eq!(key.to_string(), text);
            assert_eq!(CorrelationKey::parse(text), key);
            let json = serde_json::to_string(&key).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<CorrelationKey>(&json).unwrap(), key);
        }
    }

    #[test]
    fn timeline_kinds_keep_their_names() {
        for k in TimelineKind::KNOWN {
            assert_eq!(TimelineKind::parse(k.as_str()), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<TimelineKind>(&json).unwrap(), k);
        }
        let old = TimelineKind::parse("escalated");
        assert_eq!(old, TimelineKind::Other("escalated".into()));
        assert_eq!(serde_json::to_string(&old).unwrap(), "\"escalated\"");
        assert_eq!(
            TimelineKind::of_status(IncidentStatus::Open).as_str(),
            "open"
        );
        assert_eq!(
            TimelineKind::of_status(IncidentStatus::Acknowledged).as_str(),
            IncidentStatus::Acknowledged.as_str()
        );
    }

    #[test]
    fn itil_default_matrix() {
        let m = PriorityMatrix::default();
        assert_eq!(m.priority(1, 1), 1);
        assert_eq!(m.priority(2, 2), 3);
        assert_eq!(m.priority(3, 3), 5);
    }

    #[test]
    fn priority_matrix_is_parsed_as_written() {
        let text = r#"{"11":1,"12":1,"13":2,"21":2,"22":3,"23":4,"31":3,"32":4,"33":5}"#;
        let m: PriorityMatrix = serde_json::from_str(text).unwrap();
        assert_eq!(m.priority(1, 2), 1);
        assert_eq!(m.priority(1, 3), 2);
        assert_eq!(m.priority(4, 4), 5, "outside the matrix: ITIL's rule");
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            text,
            "written back the same"
        );
        for (bad, named) in [
            (r#"{"11":1}"#.to_string(), "no entry \"12\""),
            (text.replace(r#""33":5"#, r#""33":6"#), "33 = 6"),
            (text.replace(r#""33":5"#, r#""33":5,"44":5"#), "\"44\""),
        ] {
            let e = serde_json::from_str::<PriorityMatrix>(&bad).unwrap_err();
            assert!(e.to_string().contains(named), "{bad}: {e}");
        }
    }
}
