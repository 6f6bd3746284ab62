//! The pure correlation core: alert events in (in event-time order, or close to it),
//! decisions out. It owns the dedup state machine, the alert → incident placement and the
//! incident lifecycle driven by alerts.
//!
//! No I/O and no clock reads: time is the alerts' own timestamps plus the ticks a caller
//! sends. The daemon and `sift replay` drive this same code, which is what makes a replay
//! equal to living through the same alerts. The grouping policy lives in `policy.rs`, the
//! one place that decides which incident an alert joins.

mod alert_map;
pub mod causal;
mod ci_index;
mod enrich;
mod manual;
mod policy;
mod schedule;
mod similar;
mod sla;

use std::collections::BTreeSet;

/// The core's hash maps: foldhash (seeded per process), several times faster than
/// SipHash on the short string keys the core hashes per alert.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

use chrono::{DateTime, Duration, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertStatus, Fingerprint, FingerprintSet, Labels, Severity, Source};
use crate::cmdb::topology::Node;
use crate::cmdb::{Change, CiMapper, Topology};
use crate::incident::{
    Detail, Incident, IncidentStatus, PriorityMatrix, RootCause, TimelineEntry, impact_of,
    incident_id, urgency_of,
};

pub use causal::{CausalIndex, LearnedLink};
pub use manual::{EditError, EditKind, FeedbackPair, Label};
pub use policy::{Action, Placement};
pub use sla::SlaTarget;

/// Settings of the core. Durations are event-time durations.
#[derive(Debug, Clone)]
pub struct CorrelateConfig {
    /// Wait between the last alert of an incident resolving and the incident resolving.
    pub resolve_hold_off: Duration,
    /// How long a resolved alert stays in memory (for dedup of late re-sends) once its
    /// incident is no longer active.
    pub alert_retention: Duration,
    /// Labels dropped from the fallback group key of alerts without a CI.
    pub fallback_ignore_labels: Vec<String>,
    pub priority_matrix: PriorityMatrix,
    /// Hop limit of dependency walks (correlation and impacted services).
    pub max_hops: u32,
    /// An alert joins the incident of a firing CI it depends on when it starts within this
    /// long of that CI's first alert in the incident (faults propagate within minutes).
    pub window: Duration,
    /// A CI that an incident's root depends on and that alerts within this long of the
    /// incident opening becomes its new root. By default the propagation `window`: a
    /// cause's first alert and its effects' lie within one window of each other, whichever
    /// comes first.
    pub late_root_window: Duration,
    /// Most CIs that are not alerting on a dependency path between two correlated
    /// alerting CIs (a bound on the walk; `min_link_score` decides).
    pub max_silent_hops: u32,
    /// The propagation window grows by this much per hop beyond the first between an
    /// alert's CI and the CI that explains it (slow, deep propagation: `for:` clauses add
    /// up hop by hop) ...
    pub hop_window: Duration,
    /// ... up to this.
    pub max_window: Duration,
    /// What each CI that is not alerting on a link's path multiplies its score by, before
    /// its fan-out lowers it further.
    pub silent_weight: f64,
    /// Fan-out scale: a CI that `fanout_scale` CIs depend on counts half as much as a CI
    /// nothing depends on, as a silent link or a suspected root.
    pub fanout_scale: u32,
    /// Least score of a link through silent CIs.
    pub min_link_score: f64,
    /// Least support of a suspected root: `1 - prod (1 - f)` over the alerting CIs under
    /// it, `f` its fan factor times `silent_weight` per silent CI between them and it.
    pub min_root_support: f64,
    /// What each silent CI between a symptom and a suspected root multiplies `f` by.
    pub root_gap_weight: f64,
    /// Least share of a suspected root's direct dependents among its symptoms (at least
    /// two symptoms always).
    pub min_root_share: f64,
    /// Whether a shared dependency that is not alerting may be named as suspected root.
    pub silent_roots: bool,
    /// An alert that fires again within this long of its incident resolving reopens it.
    pub reopen_window: Duration,
    /// An alert changing state more than this many times within `flap_window` is flapping.
    pub flap_threshold: usize,
    pub flap_window: Duration,
    /// Changes that ended no longer than this before an incident opened are enrichment.
    pub change_lookback: Duration,
    /// Who gets an incident whose root CI has no owner group (or that has no CI): the
    /// first rule that matches the opening alert's labels.
    pub assignment_rules: Vec<AssignmentRule>,
    /// Response and resolution targets by priority (1..5); a priority without one has no SLA.
    pub sla: std::collections::BTreeMap<u8, SlaTarget>,
    /// How long each alert rule (by alert name) holds an alert back before it fires, its
    /// `for:`: timing is judged from an alert's start less this (its onset). Empty: every
    /// hold-back taken as zero.
    pub rule_hold: std::collections::BTreeMap<String, Duration>,
    /// Whether holds learned from history (`Engine::set_learned`) fill in the alert names
    /// `rule_hold` does not list.
    pub learn_holds: bool,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            resolve_hold_off: Duration::zero(),
            alert_retention: Duration::hours(1),
            fallback_ignore_labels: [
                "instance",
                "pod",
                "host",
                "hostname",
                "node",
                "container",
                "ip",
                "address",
                "endpoint",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            priority_matrix: PriorityMatrix::default(),
            max_hops: 8,
            window: Duration::minutes(5),
            late_root_window: Duration::minutes(5),
            max_silent_hops: 3,
            hop_window: Duration::minutes(3),
            max_window: Duration::minutes(15),
            silent_weight: 0.8,
            fanout_scale: 100,
            min_link_score: 0.4,
            min_root_support: 0.7,
            root_gap_weight: 0.5,
            min_root_share: 0.2,
            silent_roots: true,
            reopen_window: Duration::minutes(30),
            flap_threshold: 4,
            flap_window: Duration::minutes(30),
            change_lookback: Duration::hours(6),
            assignment_rules: vec![AssignmentRule {
                label: "team".into(),
                value: None,
                group: None,
            }],
            sla: std::collections::BTreeMap::new(),
            rule_hold: std::collections::BTreeMap::new(),
            learn_holds: true,
        }
    }
}

/// A fallback assignment rule: when label `label` is present (and equals `value`, if
/// given), the incident goes to `group`, or to the label's own value when `group` is unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRule {
    pub label: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

impl AssignmentRule {
    fn apply(&self, labels: &Labels) -> Option<String> {
        let v = labels.get(&self.label)?;
        if self.value.as_ref().is_some_and(|want| want != v) {
            return None;
        }
        Some(self.group.clone().unwrap_or_else(|| v.to_string()))
    }
}

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

impl AlertRecord {
    /// The digest `Persisted` holds, for the current values (never 0).
    pub fn index_key(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.status.as_str().hash(&mut h);
        self.ci_id.hash(&mut h);
        self.incident_id.hash(&mut h);
        self.starts_at.timestamp_millis().hash(&mut h);
        h.finish() | 1
    }

    /// Whether the store's indexed columns already hold what this record says.
    pub fn index_unchanged(&self) -> bool {
        self.persisted.index == self.index_key()
    }
}

impl AlertRecord {
    fn new(alert: Alert, at: DateTime<Utc>) -> Self {
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

/// Ends `title` with " (+N related alerts)" (none for 0), replacing the count it had.
/// Rewritten in place, with no formatting machinery: this runs for every joining alert.
fn set_related_count(title: &mut String, n: u64) {
    const SUFFIX: &str = " related alerts)";
    if let Some(head) = title.strip_suffix(SUFFIX)
        && let Some(open) = head.rfind('(')
        && head[..open].ends_with(' ')
        && let Some(count) = head[open + 1..].strip_prefix('+')
        && count.bytes().all(|b| b.is_ascii_digit())
    {
        title.truncate(open - 1);
    }
    if n == 0 {
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    title.push_str(" (+");
    title.extend(digits[i..].iter().map(|&d| char::from(d)));
    title.push_str(SUFFIX);
}

/// The ITIL priority for `impact` and `urgency`: from the engine's table, else the matrix.
fn priority_of(table: &[[u8; 10]; 10], matrix: &PriorityMatrix, impact: u8, urgency: u8) -> u8 {
    match table
        .get(usize::from(impact))
        .and_then(|r| r.get(usize::from(urgency)))
    {
        Some(p) => *p,
        None => matrix.priority(impact, urgency),
    }
}

/// How often (in event time) `prune` sweeps dead entries out of the CI → incidents index.
const CI_INDEX_SWEEP: Duration = Duration::minutes(1);

/// The correlation state machine.
#[derive(Debug)]
pub struct Engine {
    /// The settings; `cfg.rule_hold` is the configured holds plus the learned ones.
    cfg: CorrelateConfig,
    /// `[correlate.rule_hold]` as configured: what learned holds are added to.
    configured_holds: std::collections::BTreeMap<String, Duration>,
    alerts: alert_map::AlertMap,
    incidents: HashMap<String, Incident>,
    /// Active incident per correlation key.
    open_by_key: HashMap<String, String>,
    /// Firing alerts that expire at their `ends_at` unless refreshed.
    expiry: schedule::Schedule,
    /// Incidents whose alerts have all resolved, and since when.
    pending_resolve: HashMap<String, DateTime<Utc>>,
    watermark: Option<DateTime<Utc>>,
    next_number: u64,
    changes: Changes,
    /// CI id (or host) → its firing alerts and the incidents it alerted in.
    ci_state: HashMap<CompactString, ci_index::CiState>,
    /// Event time of the last sweep of `ci_state`'s incident lists in `prune` (readers
    /// filter dead entries, so the sweep only bounds memory and runs at most once per
    /// `CI_INDEX_SWEEP` of event time: it hashes every entry's incident id).
    ci_incidents_swept: Option<DateTime<Utc>>,
    /// Upstream walks and fan-outs per CI, valid for one topology version (a memo the
    /// read-only policy fills: it never changes an answer).
    memo: std::cell::RefCell<policy::Memo>,
    /// While placing a re-fired alert: the incident its previous occurrence was in.
    /// While placing a re-fired alert: its previous occurrence's incident and end.
    refire_of: Option<(String, DateTime<Utc>)>,
    /// Change records per CI id.
    change_records: HashMap<String, Vec<Change>>,
    /// Bumped whenever `change_records` changes (enrichment recomputes its change list).
    change_version: u64,
    /// Per incident: the root, change version and topology version its enrichment was
    /// last fully computed for; while all hold, a joining alert only adds its own runbooks.
    enriched: HashMap<String, (Option<String>, u64, u64)>,
    /// Firing alerts held back by maintenance, and until when.
    held: BTreeSet<(DateTime<Utc>, Fingerprint)>,
    /// Alerts flapping now.
    flapping: BTreeSet<Fingerprint>,
    /// Recently finished incidents per root CI, newest last (for `similar_incidents`).
    history: HashMap<String, std::collections::VecDeque<similar::PastIncident>>,
    /// SLA deadlines to check as event time passes them (stale entries are harmless).
    sla_due: BTreeSet<(DateTime<Utc>, String)>,
    /// Whether to keep the change log (`take_changes`); replay, which persists nothing,
    /// turns it off.
    record: bool,
    /// `cfg.priority_matrix` for impact and urgency 0..=9, looked up on every join.
    priorities: [[u8; 10]; 10],
    /// The learned causality graph placement consults (`None`: none, or no edges).
    causal: Option<std::sync::Arc<CausalIndex>>,
    /// While a graph is set: per CI id, the learned types that started on it and when
    /// (the latest start of each). Entries older than `max_window` are dropped as the CI
    /// alerts again; at most one per CI and type of the graph.
    ci_types: HashMap<CompactString, policy::TypesSeen>,
}

impl Engine {
    pub fn new(cfg: CorrelateConfig) -> Self {
        let mut priorities = [[0; 10]; 10];
        for (impact, row) in (0u8..).zip(priorities.iter_mut()) {
            for (urgency, p) in (0u8..).zip(row.iter_mut()) {
                *p = cfg.priority_matrix.priority(impact, urgency);
            }
        }
        Engine {
            priorities,
            configured_holds: cfg.rule_hold.clone(),
            cfg,
            alerts: Default::default(),
            incidents: HashMap::default(),
            open_by_key: HashMap::default(),
            expiry: Default::default(),
            pending_resolve: HashMap::default(),
            watermark: None,
            next_number: 1,
            changes: Changes::default(),
            ci_state: HashMap::default(),
            ci_incidents_swept: None,
            memo: Default::default(),
            refire_of: None,
            change_records: HashMap::default(),
            change_version: 0,
            enriched: HashMap::default(),
            held: BTreeSet::new(),
            flapping: BTreeSet::new(),
            sla_due: BTreeSet::new(),
            history: HashMap::default(),
            record: true,
            causal: None,
            ci_types: HashMap::default(),
        }
    }

    /// Sets the learned causality graph placement consults (see `policy.rs`, "Learned
    /// edges"); `None` or a graph with no edges turns it off, and correlation is then
    /// exactly as without it. Affects alerts placed from now on.
    pub fn set_causality(&mut self, graph: Option<std::sync::Arc<CausalIndex>>) {
        self.causal = graph.filter(|g| !g.is_empty());
        self.ci_types.clear();
    }

    /// `set_causality` from a learned graph, alert types made from `type_labels` (the
    /// learner's `[causality] type_labels`), and its rule holds for the alert names the
    /// configured `rule_hold` does not list (with `learn_holds`; `None` leaves only the
    /// configured ones).
    pub fn set_learned(
        &mut self,
        learned: Option<&crate::causality::Learned>,
        type_labels: &[String],
    ) {
        let mut holds = self.configured_holds.clone();
        if self.cfg.learn_holds {
            for h in learned.iter().flat_map(|l| l.holds.iter()) {
                if h.hold_seconds > 0 {
                    holds
                        .entry(h.kind.clone())
                        .or_insert(Duration::seconds(h.hold_seconds));
                }
            }
        }
        self.cfg.rule_hold = holds;
        self.set_causality(learned.map(|l| std::sync::Arc::new(CausalIndex::new(l, type_labels))));
    }

    /// The learned graph placement consults, if any.
    pub fn causality(&self) -> Option<&std::sync::Arc<CausalIndex>> {
        self.causal.as_ref()
    }

    fn priority(&self, impact: u8, urgency: u8) -> u8 {
        priority_of(&self.priorities, &self.cfg.priority_matrix, impact, urgency)
    }

    /// An engine that keeps no change log: for replay, which persists nothing.
    pub fn without_change_log(mut self) -> Self {
        self.record = false;
        self
    }

    /// Every alert the engine holds in memory.
    pub fn alerts(&self) -> impl Iterator<Item = &AlertRecord> {
        self.alerts.values()
    }

    /// The read-only state the grouping policy decides on.
    fn view(&self) -> policy::View<'_> {
        policy::View {
            cfg: &self.cfg,
            incidents: &self.incidents,
            open_by_key: &self.open_by_key,
            ci_state: &self.ci_state,
            refire_of: self.refire_of.as_ref().map(|(id, end)| (id.as_str(), *end)),
            memo: &self.memo,
            causal: self.causal.as_deref(),
            ci_types: &self.ci_types,
        }
    }

    fn index_ci(&mut self, ci: &str, incident: &str, at: DateTime<Utc>) {
        let incidents = &self.incidents;
        // Looked up first: the entry is there for every alert after a CI's first.
        let list = match self.ci_state.get_mut(ci) {
            Some(c) => &mut c.incidents,
            None => {
                &mut self
                    .ci_state
                    .entry(CompactString::from(ci))
                    .or_default()
                    .incidents
            }
        };
        // Only active incidents matter; dropping the rest here keeps the list short even
        // where nothing prunes (replay).
        list.retain(|id| id == incident || incidents.get(id).is_some_and(|i| i.status.is_active()));
        list.note(incident, at);
    }

    fn count_firing(&mut self, ci: Option<&str>, delta: i32) {
        let Some(ci) = ci else { return };
        let c = match self.ci_state.get_mut(ci) {
            Some(c) => c,
            None => self.ci_state.entry(CompactString::from(ci)).or_default(),
        };
        c.firing = c.firing.saturating_add_signed(delta);
        if c.is_empty() {
            self.ci_state.remove(ci);
        }
    }

    pub fn config(&self) -> &CorrelateConfig {
        &self.cfg
    }

    /// The event-time clock: the latest alert time or tick seen.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.watermark
    }

    pub fn next_number(&self) -> u64 {
        self.next_number
    }

    /// Incident numbers below `n` are taken (by this or another daemon).
    pub fn reserve_numbers_below(&mut self, n: u64) {
        self.next_number = self.next_number.max(n);
    }

    pub fn alert(&self, fp: &Fingerprint) -> Option<&AlertRecord> {
        self.alerts.get(fp)
    }

    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.incidents.get(id)
    }

    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    pub fn active_incident_count(&self) -> usize {
        self.incidents
            .values()
            .filter(|i| i.status.is_active())
            .count()
    }

    pub fn take_changes(&mut self) -> Changes {
        // The next batch is usually about as large as this one: its sets and lists start
        // at this one's size (bounded) instead of growing, and rehashing, from empty.
        let size = |n: usize| n.min(1 << 16);
        let next = Changes {
            alerts: FingerprintSet::with_capacity_and_hasher(
                size(self.changes.alerts.len()),
                Default::default(),
            ),
            touched: FingerprintSet::with_capacity_and_hasher(
                size(self.changes.touched.len()),
                Default::default(),
            ),
            timeline: Vec::with_capacity(size(self.changes.timeline.len())),
            members: Vec::with_capacity(size(self.changes.members.len())),
            ..Changes::default()
        };
        std::mem::replace(&mut self.changes, next)
    }

    /// Adopts an alert as stored (at start, or written by another daemon). Replaces what
    /// the core had for it.
    /// The store now holds what these alerts say: their rows were written by commit `seq`.
    pub fn mark_persisted<'a>(&mut self, fps: impl IntoIterator<Item = &'a Fingerprint>, seq: i64) {
        for fp in fps {
            if let Some(r) = self.alerts.get_mut(fp) {
                r.persisted = Persisted {
                    index: r.index_key(),
                    seq,
                };
            }
        }
    }

    /// Applies a re-send journal entry of commit `seq` (written by this daemon before a
    /// restart, or by another daemon): the count and `ends_at` it recorded, unless the
    /// alert's row is newer. Alerts the core does not hold are left to the store.
    pub fn apply_journal(
        &mut self,
        seq: i64,
        fp: &Fingerprint,
        count: u64,
        ends_at: Option<DateTime<Utc>>,
    ) {
        let Some(rec) = self.alerts.get_mut(fp) else {
            return;
        };
        // Only firing alerts are journaled; a resolved one was written in full since.
        if seq <= rec.persisted.seq || rec.status != AlertStatus::Firing {
            return;
        }
        rec.count = count;
        if rec.ends_at != ends_at {
            if let Some(old) = rec.ends_at {
                self.expiry.remove(old, fp);
            }
            if let Some(end) = ends_at {
                self.expiry.insert(end, fp.clone());
            }
        }
        rec.ends_at = ends_at;
    }

    pub fn load_alert(&mut self, mut rec: AlertRecord) {
        rec.persisted.index = rec.index_key();
        if let Some(old) = self.alerts.get(&rec.fingerprint) {
            let (ci, firing, end) = (
                old.ci_id.clone(),
                old.status == AlertStatus::Firing,
                old.ends_at,
            );
            if let Some(end) = end {
                self.expiry.remove(end, &rec.fingerprint);
            }
            if firing {
                self.count_firing(ci.as_deref(), -1);
            }
        }
        if rec.status == AlertStatus::Firing {
            self.count_firing(rec.ci_id.as_deref(), 1);
        }
        if rec.flapping {
            self.flapping.insert(rec.fingerprint.clone());
        } else {
            self.flapping.remove(&rec.fingerprint);
        }
        if rec.status == AlertStatus::Firing
            && let Some(end) = rec.ends_at
        {
            self.expiry.insert(end, rec.fingerprint.clone());
        }
        self.alerts.insert(Box::new(rec));
    }

    /// Adopts an incident as stored. Replaces what the core had for it.
    pub fn load_incident(&mut self, inc: Incident) {
        self.reserve_numbers_below(inc.number() + 1);
        if let Some(old) = self.incidents.get(&inc.id) {
            if self.open_by_key.get(&old.correlation_key) == Some(&old.id) {
                self.open_by_key.remove(&old.correlation_key);
            }
            // CIs it no longer has (another daemon split alerts out of it) stop leading
            // new alerts to it.
            for ci in old.ci_ids.iter().filter(|c| !inc.ci_ids.contains(*c)) {
                if let Some(c) = self.ci_state.get_mut(ci.as_str()) {
                    c.incidents.retain(|x| x != inc.id);
                }
            }
        }
        if inc.status.is_active() {
            self.open_by_key
                .insert(inc.correlation_key.clone(), inc.id.clone());
            for ci in &inc.ci_ids {
                self.index_ci(ci, &inc.id, inc.opened_at);
            }
            if let Some(rc) = inc.root_cause.as_ref().filter(|r| !r.alerting) {
                self.index_ci(&rc.ci_id, &inc.id, inc.opened_at);
            }
        } else {
            self.pending_resolve.remove(&inc.id);
            self.remember(&inc);
        }
        let id = inc.id.clone();
        self.incidents.insert(inc.id.clone(), inc);
        self.arm_sla(&id);
    }

    /// Moves event time forward to `now` (a tick from the daemon's clock): alerts past
    /// their `endsAt` resolve, incidents past their hold-off resolve.
    pub fn tick(&mut self, topo: &Topology, now: DateTime<Utc>) {
        self.advance(topo, now);
    }

    /// Adds or replaces a change record (by id).
    pub fn upsert_change(&mut self, c: Change) {
        self.change_version += 1;
        for list in self.change_records.values_mut() {
            list.retain(|x| x.id != c.id);
        }
        self.change_records
            .entry(c.ci_id.clone())
            .or_default()
            .push(c);
    }

    /// Changes recorded on a CI.
    pub fn changes_on(&self, ci: &str) -> &[Change] {
        self.change_records
            .get(ci)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The maintenance change covering `node` or something it depends on at `at`, and when
    /// the last such window ends.
    fn maintenance_at(
        &mut self,
        topo: &Topology,
        node: Node,
        at: DateTime<Utc>,
    ) -> Option<(String, DateTime<Utc>)> {
        if self.change_records.is_empty() {
            return None;
        }
        let walk = policy::ancestors(&self.memo, topo, node, self.cfg.max_hops);
        let mut found: Option<(String, DateTime<Utc>)> = None;
        for n in std::iter::once(node).chain(walk.iter().map(|r| r.node)) {
            for c in self.changes_on(&topo.ci(n).id) {
                if c.maintenance
                    && c.start <= at
                    && at <= c.end
                    && found.as_ref().is_none_or(|(_, e)| c.end > *e)
                {
                    found = Some((c.id.clone(), c.end));
                }
            }
        }
        found
    }

    fn advance(&mut self, topo: &Topology, t: DateTime<Utc>) {
        if self.watermark.is_some_and(|w| w >= t) {
            return;
        }
        self.watermark = Some(t);
        while let Some((end, fps)) = self.expiry.pop_due(t) {
            for fp in fps {
                self.resolve_alert(&fp, end);
            }
        }
        let due: Vec<(String, DateTime<Utc>)> = self
            .pending_resolve
            .iter()
            .filter(|(_, since)| **since + self.cfg.resolve_hold_off <= t)
            .map(|(id, since)| (id.clone(), *since))
            .collect();
        for (id, since) in due {
            self.pending_resolve.remove(id.as_str());
            self.auto_resolve(&id, since + self.cfg.resolve_hold_off);
        }
        if !self.flapping.is_empty() {
            self.settle_flapping(t);
        }
        self.check_sla_due(t);
        // Maintenance over and the alert still fires: now it is a real problem.
        while let Some((until, fp)) = self.held.first().cloned() {
            if until >= t {
                break;
            }
            self.held.pop_first();
            let Some(rec) = self.alerts.get_mut(&fp) else {
                continue;
            };
            if rec.status != AlertStatus::Firing || !rec.suppressed {
                continue;
            }
            let node = rec.ci_id.as_deref().and_then(|c| topo.node(c));
            // Another window may go on past this one's end: hold on until that one ends
            // (always later, so this loop ends).
            let next =
                node.and_then(|n| self.maintenance_at(topo, n, until + Duration::milliseconds(1)));
            if let Some((change, later)) = next {
                if let Some(rec) = self.alerts.get_mut(&fp) {
                    rec.suppressed_by = Some(change.into_boxed_str());
                }
                self.held.insert((later, fp));
                continue;
            }
            if let Some(rec) = self.alerts.get_mut(&fp) {
                rec.suppressed = false;
                rec.suppressed_by = None;
            }
            self.mark_alert(&fp);
            self.place(topo, node, &fp, until);
        }
    }

    /// Ingests one alert event. `ci` is the alert's CI as mapped by the caller's
    /// `CiMapper` (see `ingest`); kept apart so replay and daemon map the same way.
    pub fn ingest(&mut self, topo: &Topology, mapper: &CiMapper, alert: Alert) -> Outcome {
        let at = alert.event_time();
        self.advance(topo, at);
        let fp = alert.fingerprint.clone();
        if !self.alerts.contains_key(&fp) {
            return self.first_sight(topo, mapper, alert, at);
        }
        let Some(rec) = self.alerts.get_mut(&fp) else {
            return Outcome::Duplicate;
        };
        rec.count += 1;
        let last_event_at = rec.last_event_at;
        rec.last_event_at = rec.last_event_at.max(at);
        if !(rec.status == AlertStatus::Firing && alert.status == AlertStatus::Firing) {
            self.mark_alert(&fp);
        }
        let Some(rec) = self.alerts.get_mut(&fp) else {
            return Outcome::Duplicate;
        };
        match (rec.status, alert.status) {
            (AlertStatus::Firing, AlertStatus::Firing) => {
                // A re-send refreshes expiry and annotations; a firing event older than
                // the current occurrence changes nothing else. When only the count and
                // `ends_at` moved, the writer journals them instead of rewriting the row.
                let mut only_count_and_end = rec.last_event_at == last_event_at;
                if alert.starts_at >= rec.starts_at {
                    if let Some(old) = rec.ends_at {
                        self.expiry.remove(old, &fp);
                    }
                    rec.ends_at = alert.ends_at;
                    if rec.annotations != alert.annotations {
                        rec.annotations = alert.annotations;
                        only_count_and_end = false;
                    }
                    if let Some(end) = rec.ends_at {
                        if self.watermark.is_some_and(|w| end <= w) {
                            self.mark_alert(&fp);
                            self.resolve_alert(&fp, end);
                            return Outcome::Resolved;
                        }
                        self.expiry.insert(end, fp.clone());
                    }
                }
                if only_count_and_end {
                    self.touch_alert(fp);
                } else {
                    self.mark_alert(&fp);
                }
                Outcome::Duplicate
            }
            (AlertStatus::Firing, AlertStatus::Resolved) => {
                let end = alert.ends_at.unwrap_or(at);
                if end < rec.starts_at {
                    return Outcome::Duplicate; // the end of an earlier occurrence
                }
                if let Some(old) = rec.ends_at {
                    self.expiry.remove(old, &fp);
                }
                self.resolve_alert(&fp, end);
                Outcome::Resolved
            }
            (AlertStatus::Resolved, AlertStatus::Resolved) => Outcome::Duplicate,
            (AlertStatus::Resolved, AlertStatus::Firing) => {
                let ended = rec.ends_at.unwrap_or(rec.starts_at);
                if alert.starts_at < ended {
                    return Outcome::Duplicate; // a late re-send of the occurrence that ended
                }
                let (count, flips, flapping) =
                    (rec.count, std::mem::take(&mut rec.flips), rec.flapping);
                self.refire_of = rec.incident_id.as_deref().map(|id| (id.to_string(), ended));
                let fresh = self.first_sight(topo, mapper, alert, at);
                self.refire_of = None;
                if let Some(r) = self.alerts.get_mut(&fp) {
                    r.count = count;
                    r.flips = flips;
                    r.flapping = flapping;
                }
                self.note_flip(&fp, at);
                fresh
            }
        }
    }

    fn first_sight(
        &mut self,
        topo: &Topology,
        mapper: &CiMapper,
        alert: Alert,
        at: DateTime<Utc>,
    ) -> Outcome {
        let fp = alert.fingerprint.clone();
        let node = mapper.map(topo, &alert.labels);
        let mut rec = AlertRecord::new(alert, at);
        rec.ci_id = node.map(|n| topo.ci(n).id.as_str().into());
        self.mark_alert(&fp);
        if rec.status == AlertStatus::Resolved {
            // Resolved before sift ever saw it firing: recorded, opens nothing.
            self.alerts.insert(Box::new(rec));
            return Outcome::Resolved;
        }
        let expired = rec
            .ends_at
            .is_some_and(|end| self.watermark.is_some_and(|w| end <= w));
        self.count_firing(rec.ci_id.as_deref(), 1);
        let ends_at = rec.ends_at;
        self.place_firing(topo, node, Box::new(rec), at);
        match ends_at {
            Some(end) if expired => {
                self.resolve_alert(&fp, end);
                return Outcome::Resolved;
            }
            Some(end) => {
                self.expiry.insert(end, fp);
            }
            None => {}
        }
        Outcome::New
    }

    /// Puts a new firing alert (not yet in `alerts`) into an incident, or holds it back
    /// while a maintenance window covers its CI or something its CI depends on.
    fn place_firing(
        &mut self,
        topo: &Topology,
        node: Option<Node>,
        mut rec: Box<AlertRecord>,
        at: DateTime<Utc>,
    ) {
        if let Some(n) = node
            && let Some((change, until)) = self.maintenance_at(topo, n, at)
        {
            rec.suppressed = true;
            rec.suppressed_by = Some(change.into_boxed_str());
            let fp = rec.fingerprint.clone();
            self.alerts.insert(rec);
            self.changes_out_alert(&fp);
            self.held.insert((until, fp));
            return;
        }
        self.place_record(topo, node, rec, at);
    }

    /// Puts a firing alert already in `alerts` into an incident as the grouping policy
    /// decides.
    fn place(&mut self, topo: &Topology, node: Option<Node>, fp: &Fingerprint, at: DateTime<Utc>) {
        if let Some(rec) = self.alerts.remove(fp) {
            self.place_record(topo, node, rec, at);
        }
    }

    /// Puts a firing alert into an incident as the grouping policy decides. The record is
    /// outside the map while the policy and a new incident look at it (no clone on the
    /// per-alert path), and goes in, with its incident set, before it joins.
    fn place_record(
        &mut self,
        topo: &Topology,
        node: Option<Node>,
        mut rec: Box<AlertRecord>,
        at: DateTime<Utc>,
    ) {
        let ci = rec.ci_id.clone();
        let fp = rec.fingerprint.clone();
        let fp = &fp;
        let Placement { action, reason } = policy::place(&self.view(), topo, node, &rec, at);
        if let (Some(g), Some(n)) = (&self.causal, node)
            && let Some(t) = g.type_of(&rec.labels)
        {
            let horizon = at - self.cfg.max_window.max(self.cfg.window);
            let seen = self
                .ci_types
                .entry(CompactString::from(topo.ci(n).id.as_str()))
                .or_default();
            seen.retain(|(_, s)| *s >= horizon);
            match seen.iter_mut().find(|(k, _)| *k == t) {
                Some((_, s)) => *s = (*s).max(at),
                None => seen.push((t, at)),
            }
        }
        let opened = match &action {
            Action::Open { key } => Some(self.open_incident(topo, node, key.clone(), &rec, at)),
            _ => None,
        };
        let id = match (&action, &opened) {
            (Action::Open { .. }, Some(id)) => Some(id.as_str()),
            (
                Action::Reopen { id }
                | Action::Join { id, .. }
                | Action::Suspect { id, .. }
                | Action::Confirm { id },
                _,
            ) => Some(id.as_str()),
            (Action::Open { .. }, None) => None,
        };
        if let Some(id) = id {
            rec.incident_id = Some(id.into());
        }
        self.alerts.insert(rec);
        let score = reason.score;
        let reason = self.record.then(|| Box::new(reason));
        match action {
            Action::Open { .. } => {
                let Some(id) = opened else { return };
                self.join(topo, &id, fp, at, reason);
            }
            Action::Reopen { id } => {
                self.reopen(&id, at);
                self.join(topo, &id, fp, at, reason);
            }
            Action::Join {
                id,
                path,
                reroot,
                merge,
            } => {
                self.join(topo, &id, fp, at, reason);
                if let (Some(ci), false) = (ci.as_deref(), path.is_empty()) {
                    self.record_path(&id, ci, path);
                }
                if reroot && let Some(n) = node {
                    self.reroot(topo, &id, n, fp, at);
                }
                for m in merge {
                    if let Some(n) = node {
                        self.merge(topo, &m, &id, n, at);
                    }
                }
            }
            Action::Suspect {
                id,
                root,
                path,
                merge,
            } => {
                self.join(topo, &id, fp, at, reason);
                self.suspect(topo, &id, root, fp, score, at);
                for m in merge {
                    self.merge(topo, &m, &id, root, at);
                }
                if let (Some(ci), false) = (ci.as_deref(), path.is_empty()) {
                    self.record_path(&id, ci, path);
                }
            }
            Action::Confirm { id } => {
                self.join(topo, &id, fp, at, reason);
                if let Some(n) = node {
                    self.confirm(topo, &id, n, fp, at);
                }
            }
        }
    }

    /// An alert of a recently resolved incident fires again: the incident reopens.
    fn reopen(&mut self, id: &str, at: DateTime<Utc>) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let was = inc.resolved_at;
        inc.status = IncidentStatus::Open;
        inc.resolved_at = None;
        inc.updated_at = inc.updated_at.max(at);
        let key = inc.correlation_key.clone();
        self.open_by_key
            .entry(key)
            .or_insert_with(|| id.to_string());
        self.mark_incident(id);
        self.timeline(
            id,
            at,
            "sift",
            "reopened",
            serde_json::json!({"resolved_at": was}),
        );
    }

    fn changes_out_alert(&mut self, fp: &Fingerprint) {
        self.mark_alert(fp);
    }

    fn open_incident(
        &mut self,
        topo: &Topology,
        node: Option<Node>,
        key: String,
        rec: &AlertRecord,
        at: DateTime<Utc>,
    ) -> String {
        let id = incident_id(self.next_number);
        self.next_number += 1;
        let urgency = urgency_of(rec.severity());
        let inc = Incident {
            id: id.clone(),
            title: rec.alertname().to_string(),
            status: IncidentStatus::Open,
            priority: self.priority(impact_of(None), urgency),
            impact: impact_of(None),
            urgency,
            root_cause_ci: None,
            root_cause: None,
            ci_ids: Default::default(),
            impacted_services: Vec::new(),
            assignment_group: self
                .cfg
                .assignment_rules
                .iter()
                .find_map(|r| r.apply(&rec.labels)),
            assignee: None,
            alert_fingerprints: Default::default(),
            alert_count: 0,
            opened_at: at,
            updated_at: at,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            correlation_key: key.clone(),
            enrichment: serde_json::Map::new(),
            sla: None,
            resolution_note: None,
        };
        self.open_by_key.insert(key.clone(), id.clone());
        self.incidents.insert(id.clone(), inc);
        self.changes.opened += 1;
        self.timeline(&id, at, "sift", "opened", serde_json::json!({"key": key}));
        if let Some(n) = node {
            self.assess_root(topo, &id, n, rec.alertname(), true);
            let cid = topo.ci(n).id.clone();
            self.record_path(&id, &cid, vec![cid.clone()]);
        }
        id
    }

    /// Sets what follows from an incident's root CI: its id, owner group, impacted
    /// business services, ITIL impact and priority, title, and root details.
    fn assess_root(
        &mut self,
        topo: &Topology,
        id: &str,
        root: Node,
        alertname: &str,
        alerting: bool,
    ) {
        let ci = topo.ci(root);
        let mut services: Vec<String> = std::iter::once(root)
            .chain(
                topo.impact(root, self.cfg.max_hops, 100_000)
                    .into_iter()
                    .map(|r| r.node),
            )
            .map(|m| topo.ci(m))
            .filter(|c| c.is_business_service())
            .map(|c| c.id.clone())
            .collect();
        services.sort();
        let service_crit: Vec<crate::cmdb::Criticality> = services
            .iter()
            .filter_map(|s| topo.get(s))
            .map(|c| c.criticality)
            .collect();
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        inc.root_cause_ci = Some(ci.id.clone());
        inc.root_cause = Some(RootCause {
            ci_id: ci.id.clone(),
            alerting,
            confidence: 0.0,
            reason: String::new(),
        });
        inc.impacted_services = services;
        if let Some(g) = &ci.owner_group {
            inc.assignment_group = Some(g.clone());
        }
        // Impact: the root's own criticality, raised by the business services it hurts
        // (the most critical one; three or more make it at least medium).
        let service_impact = service_crit
            .iter()
            .map(|c| impact_of(Some(*c)))
            .min()
            .unwrap_or(3)
            .min(if service_crit.len() >= 3 { 2 } else { 3 });
        inc.impact = impact_of(Some(ci.criticality)).min(service_impact);
        inc.priority = priority_of(
            &self.priorities,
            &self.cfg.priority_matrix,
            inc.impact,
            inc.urgency,
        );
        let base = if alerting {
            format!("{}: {alertname}", ci.display_name())
        } else {
            format!("{} (suspected root): {alertname}", ci.display_name())
        };
        inc.title = match inc.alert_count {
            0 | 1 => base,
            n => format!("{base} (+{} related alerts)", n - 1),
        };
        inc.enrichment.insert(
            "root_ci".into(),
            serde_json::to_value(ci).unwrap_or(serde_json::Value::Null),
        );
        self.mark_incident(id);
        self.enrich(topo, id);
        self.similar(id);
        self.apply_sla(id);
    }

    /// Records the dependency path from `ci` to the incident's root (evidence): `path`
    /// runs from `ci` to a CI already in the incident, whose own path completes it.
    fn record_path(&mut self, id: &str, ci: &str, mut path: Vec<String>) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let ev = inc
            .enrichment
            .entry("evidence")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        let Some(ev) = ev.as_object_mut() else { return };
        if let Some(last) = path.last().cloned()
            && last != ci
            && let Some(rest) = ev.get(&last).and_then(|v| v.as_array())
        {
            path.extend(
                rest.iter()
                    .skip(1)
                    .filter_map(|v| v.as_str().map(String::from)),
            );
        }
        ev.insert(ci.to_string(), serde_json::json!(path));
        let explained = ev.len();
        let total = inc.ci_ids.len().max(1);
        let share = explained.min(total) as f64 / total as f64;
        let Some(root) = inc.root_cause.as_mut() else {
            return;
        };
        if root.alerting {
            root.confidence = share;
            root.reason =
                "the alerting CI that every other alerting CI of this incident depends on".into();
        } else {
            // Inferred, not seen: at most half as sure, scaled by the inference's support.
            root.confidence = share * 0.5 * inc_support(&inc.enrichment);
            root.reason = "suspected: not alerting itself, but every alerting CI of this incident depends on it and they started within the propagation window".into();
        }
        let json = serde_json::to_value(&*root).unwrap_or_default();
        inc.enrichment.insert("root_cause".into(), json);
    }

    /// `s`, a CI that is not alerting, is the suspected root of incident `id`: every
    /// evidence path is extended from the old root up to `s`, and `s` is filed as a CI of
    /// the incident so that alerts below it link to it and an alert on it confirms it.
    fn suspect(
        &mut self,
        topo: &Topology,
        id: &str,
        s: Node,
        fp: &Fingerprint,
        support: f64,
        at: DateTime<Utc>,
    ) {
        let old = self.incidents.get(id).and_then(|i| i.root_cause_ci.clone());
        let ext = old
            .as_deref()
            .and_then(|o| topo.node(o))
            .and_then(|o| {
                let walk = policy::ancestors(&self.memo, topo, o, self.cfg.max_hops);
                policy::path_in(topo, &walk, o, s)
            })
            .unwrap_or_default();
        let name = self
            .alerts
            .get(fp)
            .map(|a| a.alertname().to_string())
            .unwrap_or_default();
        if let Some(inc) = self.incidents.get_mut(id) {
            inc.enrichment
                .insert("root_support".into(), serde_json::json!(support));
            extend_evidence(inc, &ext);
        }
        self.assess_root(topo, id, s, &name, false);
        let sid = topo.ci(s).id.clone();
        let onset = at - self.cfg.rule_hold.get(&name).copied().unwrap_or_default();
        self.index_ci(&sid, id, onset);
        if let Some(ci) = old.clone() {
            // Re-records the old root's own path (now ending at `s`) with the confidence.
            let p = self
                .incidents
                .get(id)
                .and_then(|i| i.enrichment.get("evidence"))
                .and_then(|e| e.get(&ci))
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect::<Vec<_>>()
                });
            if let Some(p) = p {
                self.record_path(id, &ci, p);
            }
        }
        self.timeline(
            id,
            at,
            "sift",
            "root_suspected",
            serde_json::json!({"from": old, "to": sid, "support": support}),
        );
    }

    /// The suspected root `c` of incident `id` alerts: it is the confirmed root.
    fn confirm(&mut self, topo: &Topology, id: &str, c: Node, fp: &Fingerprint, at: DateTime<Utc>) {
        let name = self
            .alerts
            .get(fp)
            .map(|a| a.alertname().to_string())
            .unwrap_or_default();
        self.assess_root(topo, id, c, &name, true);
        let cid = topo.ci(c).id.clone();
        self.record_path(id, &cid, vec![cid.clone()]);
        self.timeline(
            id,
            at,
            "sift",
            "root_confirmed",
            serde_json::json!({"ci_id": cid}),
        );
    }

    /// The alert's CI `c` explains the incident's root: `c` becomes the root and every
    /// evidence path is extended from the old root up to `c`.
    fn reroot(&mut self, topo: &Topology, id: &str, c: Node, fp: &Fingerprint, at: DateTime<Utc>) {
        let Some(old) = self.incidents.get(id).and_then(|i| i.root_cause_ci.clone()) else {
            return;
        };
        let Some(old_node) = topo.node(&old) else {
            return;
        };
        let walk = policy::ancestors(&self.memo, topo, old_node, self.cfg.max_hops);
        let ext = policy::path_in(topo, &walk, old_node, c).unwrap_or_default();
        let name = self
            .alerts
            .get(fp)
            .map(|a| a.alertname().to_string())
            .unwrap_or_default();
        if let Some(inc) = self.incidents.get_mut(id) {
            extend_evidence(inc, &ext);
        }
        self.assess_root(topo, id, c, &name, true);
        let cid = topo.ci(c).id.clone();
        self.record_path(id, &cid, vec![cid.clone()]);
        self.timeline(
            id,
            at,
            "sift",
            "root_changed",
            serde_json::json!({"from": old, "to": cid}),
        );
    }

    /// Folds incident `from` into `into`: `c` (now in `into`) explains `from`'s root.
    fn merge(&mut self, topo: &Topology, from: &str, into: &str, c: Node, at: DateTime<Utc>) {
        let Some(src) = self.incidents.get(from).cloned() else {
            return;
        };
        if !src.status.is_active() || from == into {
            return;
        }
        let ext = src
            .root_cause_ci
            .as_deref()
            .and_then(|r| topo.node(r))
            .and_then(|r| {
                let walk = policy::ancestors(&self.memo, topo, r, self.cfg.max_hops);
                policy::path_in(topo, &walk, r, c)
            })
            .unwrap_or_default();
        let cid = topo.ci(c).id.clone();
        for fp in &src.alert_fingerprints {
            if let Some(a) = self.alerts.get_mut(fp) {
                a.incident_id = Some(into.into());
                self.mark_alert(fp);
            }
            self.join(topo, into, fp, at, None);
        }
        if let Some(ev) = src.enrichment.get("evidence").and_then(|v| v.as_object()) {
            for (ci, path) in ev {
                let mut p: Vec<String> = path
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect();
                p.extend(ext.iter().skip(1).cloned());
                if p.last() != Some(&cid) {
                    p.push(cid.clone());
                }
                self.record_path(into, ci, p);
            }
        }
        let all_resolved = self
            .incidents
            .get(into)
            .map(|i| {
                i.alert_fingerprints.iter().all(|f| {
                    self.alerts
                        .get(f)
                        .is_none_or(|a| a.status == AlertStatus::Resolved)
                })
            })
            .unwrap_or(true);
        if !all_resolved {
            self.pending_resolve.remove(into);
        }
        self.pending_resolve.remove(from);
        if let Some(f) = self.incidents.get_mut(from) {
            f.status = IncidentStatus::Closed;
            f.closed_at = Some(at);
            f.updated_at = f.updated_at.max(at);
            f.enrichment
                .insert("merged_into".into(), serde_json::json!(into));
            if self.open_by_key.get(&f.correlation_key).map(String::as_str) == Some(from) {
                self.open_by_key.remove(&f.correlation_key);
            }
        }
        self.mark_incident(from);
        self.timeline(
            from,
            at,
            "sift",
            "merged",
            serde_json::json!({"into": into, "explained_by": cid}),
        );
        self.timeline(
            into,
            at,
            "sift",
            "merged",
            serde_json::json!({"from": from, "explained_by": cid}),
        );
    }

    /// Adds a firing alert to an incident and refreshes what depends on its members.
    fn join(
        &mut self,
        topo: &Topology,
        id: &str,
        fp: &Fingerprint,
        at: DateTime<Utc>,
        reason: Option<Box<crate::incident::Reason>>,
    ) {
        // The record is borrowed beside the incident (two fields of the engine), so its
        // CI id and name are copied only where they are kept.
        let Some(rec) = self.alerts.get(fp) else {
            return;
        };
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let (sev, name) = (rec.severity(), CompactString::from(rec.alertname()));
        // A CI is filed under when its trouble began: the alert's onset (see `policy`).
        let onset = at - self.cfg.rule_hold.get(rec.alertname()).copied().unwrap_or_default();
        let mut runbooks = Vec::new();
        enrich::runbooks_of_alert(topo, rec, &mut runbooks);
        // What `index_ci` files the incident under: the CI, or the unknown host.
        let index_key: Option<CompactString> = match &rec.ci_id {
            Some(ci) => {
                if !inc.ci_ids.contains(ci.as_str()) {
                    inc.ci_ids.insert(ci.to_string());
                }
                Some(ci.as_str().into())
            }
            None => crate::cmdb::topology::unmapped_key(&rec.labels),
        };
        if !self.pending_resolve.is_empty() {
            self.pending_resolve.remove(id);
        }
        if inc.alert_fingerprints.insert(fp.clone()) {
            inc.alert_count = inc.alert_fingerprints.len() as u64;
            if self.record {
                self.changes
                    .members
                    .push((id.into(), fp.clone(), inc.alert_count - 1));
            }
        }
        inc.updated_at = inc.updated_at.max(at);
        let urgency = inc.urgency.min(urgency_of(sev));
        let priority = priority_of(
            &self.priorities,
            &self.cfg.priority_matrix,
            inc.impact,
            urgency,
        );
        let old_priority = inc.priority;
        inc.urgency = urgency;
        inc.priority = priority;
        if inc.title.is_empty() {
            let root = inc
                .root_cause_ci
                .as_deref()
                .and_then(|c| topo.get(c))
                .map(|c| c.display_name().to_string());
            inc.title = match root {
                Some(r) => format!("{r}: {name}"),
                None => name.to_string(),
            };
        }
        set_related_count(&mut inc.title, inc.alert_count.saturating_sub(1));
        self.mark_incident(id);
        if let Some(key) = &index_key {
            self.index_ci(key, id, onset);
        }
        let joined = Detail::AlertJoined {
            alertname: name,
            fingerprint: fp.clone(),
            reason,
        };
        self.timeline(id, at, "sift", "alert_joined", joined);
        if priority != old_priority {
            self.timeline(
                id,
                at,
                "sift",
                "priority_changed",
                serde_json::json!({"from": old_priority, "to": priority}),
            );
        }
        self.enrich_joined(topo, id, runbooks);
        self.apply_sla(id);
    }

    fn resolve_alert(&mut self, fp: &Fingerprint, end: DateTime<Utc>) {
        let Some(rec) = self.alerts.get_mut(fp) else {
            return;
        };
        if rec.status == AlertStatus::Resolved {
            return;
        }
        rec.status = AlertStatus::Resolved;
        rec.ends_at = Some(end);
        rec.last_event_at = rec.last_event_at.max(end);
        let ci = rec.ci_id.clone();
        let incident = rec.incident_id.clone();
        self.mark_alert(fp);
        self.count_firing(ci.as_deref(), -1);
        let Some(id) = incident else {
            return;
        };
        let fp_s = fp.0.clone();
        self.timeline(
            &id,
            end,
            "sift",
            "alert_resolved",
            serde_json::json!({"fingerprint": fp_s}),
        );
        let Some(inc) = self.incidents.get(id.as_str()) else {
            return;
        };
        if !inc.status.is_active() {
            return;
        }
        self.note_flip(fp, end);
        self.maybe_resolve(&id, end);
    }

    /// Resolves (or schedules the resolution of) an incident whose alerts have all
    /// resolved and none of which is flapping.
    fn maybe_resolve(&mut self, id: &str, at: DateTime<Utc>) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        if !inc.status.is_active() {
            return;
        }
        let all_resolved = inc.alert_fingerprints.iter().all(|m| {
            self.alerts
                .get(m)
                .is_none_or(|r| r.status == AlertStatus::Resolved && !r.flapping)
        });
        if all_resolved {
            if self.cfg.resolve_hold_off <= Duration::zero() {
                self.auto_resolve(id, at);
            } else {
                self.pending_resolve.insert(id.to_string(), at);
            }
        }
    }

    /// Records a state change of an alert; past the threshold it is flapping, and its
    /// incident is held open until it has been steady for the flap window.
    fn note_flip(&mut self, fp: &Fingerprint, at: DateTime<Utc>) {
        let (window, threshold) = (self.cfg.flap_window, self.cfg.flap_threshold);
        let Some(rec) = self.alerts.get_mut(fp) else {
            return;
        };
        rec.flips.retain(|t| *t > at - window);
        rec.flips.push(at);
        rec.flips.sort();
        if rec.flips.len() > threshold + 1 {
            rec.flips.remove(0);
        }
        if rec.flapping || rec.flips.len() <= threshold {
            return;
        }
        rec.flapping = true;
        let incident = rec.incident_id.clone();
        self.flapping.insert(fp.clone());
        self.mark_alert(fp);
        if let Some(id) = incident {
            self.pending_resolve.remove(id.as_str());
            let detail = serde_json::json!({"fingerprint": fp.0, "changes": threshold + 1});
            self.timeline(&id, at, "sift", "flapping_started", detail);
        }
    }

    /// Alerts steady for the flap window stop flapping; their incident may resolve now.
    fn settle_flapping(&mut self, t: DateTime<Utc>) {
        let window = self.cfg.flap_window;
        let settled: Vec<Fingerprint> = self
            .flapping
            .iter()
            .filter(|fp| {
                self.alerts
                    .get(fp)
                    .is_none_or(|r| r.flips.last().is_none_or(|last| *last + window <= t))
            })
            .cloned()
            .collect();
        for fp in settled {
            self.flapping.remove(&fp);
            let Some(rec) = self.alerts.get_mut(&fp) else {
                continue;
            };
            rec.flapping = false;
            let since = rec.flips.last().map(|l| *l + window).unwrap_or(t);
            let (incident, resolved) =
                (rec.incident_id.clone(), rec.status == AlertStatus::Resolved);
            self.mark_alert(&fp);
            if let Some(id) = incident {
                self.timeline(
                    &id,
                    since,
                    "sift",
                    "flapping_stopped",
                    serde_json::json!({"fingerprint": fp.0}),
                );
                if resolved {
                    self.maybe_resolve(&id, since);
                }
            }
        }
    }

    fn auto_resolve(&mut self, id: &str, at: DateTime<Utc>) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        if !inc.status.is_active() {
            return;
        }
        inc.status = IncidentStatus::Resolved;
        inc.resolved_at = Some(at);
        inc.updated_at = inc.updated_at.max(at);
        if self
            .open_by_key
            .get(&inc.correlation_key)
            .map(String::as_str)
            == Some(id)
        {
            self.open_by_key.remove(&inc.correlation_key);
        }
        self.mark_incident(id);
        self.changes.resolved += 1;
        self.timeline(
            id,
            at,
            "sift",
            "resolved",
            serde_json::json!({"reason": "all alerts resolved"}),
        );
        self.remember_finished(id);
    }

    /// Applies an operator's change. `at` is the wall-clock time of the request (the API
    /// edge reads the clock, not the core).
    pub fn patch_incident(
        &mut self,
        id: &str,
        patch: &IncidentPatch,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PatchError> {
        let inc = self
            .incidents
            .get(id)
            .ok_or_else(|| PatchError::NotFound(id.to_string()))?;
        if let Some(to) = patch.status
            && to != inc.status
            && !inc.status.can_move_to(to)
        {
            return Err(PatchError::IllegalTransition {
                id: id.to_string(),
                from: inc.status.as_str(),
                to: to.as_str(),
            });
        }
        let key = inc.correlation_key.clone();
        let mut notes = Vec::new();
        let inc = self
            .incidents
            .get_mut(id)
            .ok_or_else(|| PatchError::NotFound(id.into()))?;
        if let Some(to) = patch.status
            && to != inc.status
        {
            let from = inc.status;
            inc.status = to;
            match to {
                IncidentStatus::Acknowledged => inc.acknowledged_at = Some(at),
                IncidentStatus::Resolved => inc.resolved_at = Some(at),
                IncidentStatus::Closed => inc.closed_at = Some(at),
                IncidentStatus::Open => inc.resolved_at = None,
            }
            notes.push((
                to.as_str().to_string(),
                serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
            ));
        }
        if let Some(assignee) = &patch.assignee
            && *assignee != inc.assignee
        {
            inc.assignee = assignee.clone();
            notes.push(("assigned".into(), serde_json::json!({"assignee": assignee})));
        }
        if let Some(c) = &patch.comment {
            notes.push(("comment".into(), serde_json::json!({"text": c})));
        }
        if let Some(n) = &patch.resolution_note {
            inc.resolution_note = Some(n.clone());
            notes.push(("resolution_note".into(), serde_json::json!({"text": n})));
        }
        inc.updated_at = inc.updated_at.max(at);
        let active = inc.status.is_active();
        if active {
            self.open_by_key
                .entry(key)
                .or_insert_with(|| id.to_string());
        } else {
            self.pending_resolve.remove(id);
            if self.open_by_key.get(&key).map(String::as_str) == Some(id) {
                self.open_by_key.remove(&key);
            }
        }
        self.mark_incident(id);
        for (kind, detail) in notes {
            self.timeline(id, at, actor, &kind, detail);
        }
        self.evaluate_sla(id, at);
        if self
            .incidents
            .get(id)
            .is_some_and(|i| !i.status.is_active())
        {
            self.remember_finished(id);
        }
        Ok(())
    }

    fn mark_alert(&mut self, fp: &Fingerprint) {
        if self.record {
            self.changes.alerts.insert(fp.clone());
        }
    }

    fn touch_alert(&mut self, fp: Fingerprint) {
        if self.record {
            self.changes.touched.insert(fp);
        }
    }

    fn mark_incident(&mut self, id: &str) {
        // Checked first: most calls are for an incident already marked (a storm's joins).
        if self.record && !self.changes.incidents.contains(id) {
            self.changes.incidents.insert(id.to_string());
        }
    }

    fn timeline(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
        actor: &str,
        kind: &str,
        detail: impl Into<Detail>,
    ) {
        if !self.record {
            return;
        }
        self.changes.timeline.push(TimelineEntry {
            incident_id: id.into(),
            at,
            actor: actor.into(),
            kind: kind.into(),
            detail: detail.into(),
        });
    }

    /// Forgets what no longer matters in memory (it stays in the store): resolved alerts
    /// past retention whose incident is over, and incidents over with no live alerts.
    /// Call it after the changes are taken and persisted.
    pub fn prune(&mut self) {
        let Some(now) = self.watermark else { return };
        let horizon = now - self.cfg.alert_retention;
        let incidents = &self.incidents;
        self.alerts.retain(|r| {
            r.status == AlertStatus::Firing
                || r.last_event_at > horizon
                || r.incident_id
                    .as_ref()
                    .and_then(|i| incidents.get(i.as_str()))
                    .is_some_and(|i| i.status.is_active())
        });
        let keep_changes = now - Duration::days(7);
        let before: usize = self.change_records.values().map(Vec::len).sum();
        self.change_records.retain(|_, v| {
            v.retain(|c| c.end > keep_changes);
            !v.is_empty()
        });
        if self.change_records.values().map(Vec::len).sum::<usize>() != before {
            self.change_version += 1;
        }
        let alerts = &self.alerts;
        let incidents_now = &self.incidents;
        if self
            .ci_incidents_swept
            .is_none_or(|t| now - t >= CI_INDEX_SWEEP || now < t)
        {
            self.ci_incidents_swept = Some(now);
            self.ci_state.retain(|_, c| {
                c.incidents
                    .retain(|id| incidents_now.get(id).is_some_and(|i| i.status.is_active()));
                !c.is_empty()
            });
            // Learned types seen longer ago than any edge's window can reach are no use.
            let seen_horizon = now - self.cfg.max_window.max(self.cfg.window);
            self.ci_types.retain(|_, v| {
                v.retain(|(_, s)| *s >= seen_horizon);
                !v.is_empty()
            });
        }
        self.incidents.retain(|_, i| {
            i.status.is_active()
                || i.updated_at > horizon
                || i.alert_fingerprints.iter().any(|f| alerts.contains_key(f))
        });
        let incidents = &self.incidents;
        self.enriched.retain(|id, _| incidents.contains_key(id));
    }
}

/// Extends every evidence path of `inc` past its old root along `ext` (the path from the
/// old root to the new one; its first entry, the old root, ends each path already).
fn extend_evidence(inc: &mut Incident, ext: &[String]) {
    if let Some(ev) = inc
        .enrichment
        .get_mut("evidence")
        .and_then(|v| v.as_object_mut())
    {
        for path in ev.values_mut() {
            if let Some(p) = path.as_array_mut() {
                p.extend(ext.iter().skip(1).map(|x| serde_json::json!(x)));
            }
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_causality;
#[cfg(test)]
mod tests_gaps;
#[cfg(test)]
mod tests_manual;

/// The support of an incident's suspected root, as inferred (1 when not recorded).
fn inc_support(enrichment: &serde_json::Map<String, serde_json::Value>) -> f64 {
    enrichment
        .get("root_support")
        .and_then(|v| v.as_f64())
        .unwrap_or(1.0)
}
