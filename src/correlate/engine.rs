//! The correlation state machine's state (`Engine`): what it holds, the read-only
//! `policy::View` the grouping policy decides on, accessors, adopting stored state
//! (`load_*`, `restore_resend`), the change log (`take_changes`, timeline entries) and
//! pruning.
//!
//! What happens to that state lives beside it: events in (`dedup`), placements applied
//! (`apply`, `roots`), the lifecycle (`lifecycle`). Nothing here decides grouping: that
//! is `policy::place`, which only reads.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use compact_str::CompactString;

use super::{
    AlertRecord, CausalIndex, Changes, CorrelateConfig, HashMap, Persisted, alert_map, ci_index,
    policy, schedule, similar,
};
use crate::alert::{AlertStatus, Fingerprint, FingerprintSet};
use crate::cmdb::Change;
use crate::incident::{
    CorrelationKey, Detail, Incident, PriorityMatrix, TimelineEntry, TimelineKind,
};

/// The ITIL priority for `impact` and `urgency`: from the engine's table, else the matrix.
pub(super) fn priority_of(
    table: &[[u8; 10]; 10],
    matrix: &PriorityMatrix,
    impact: u8,
    urgency: u8,
) -> u8 {
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
    pub(super) cfg: CorrelateConfig,
    /// `[correlate.rule_hold]` as configured: what learned holds are added to.
    pub(super) configured_holds: std::collections::BTreeMap<String, Duration>,
    /// `window` and `late_root_window` as configured: what `window = "auto"` replaces.
    pub(super) configured_windows: (Duration, Duration),
    pub(super) alerts: alert_map::AlertMap,
    pub(super) incidents: HashMap<String, Incident>,
    /// Active incident per correlation key.
    pub(super) open_by_key: HashMap<CorrelationKey, String>,
    /// Firing alerts that expire at their `ends_at` unless refreshed.
    pub(super) expiry: schedule::Schedule,
    /// Incidents whose alerts have all resolved, and since when.
    pub(super) pending_resolve: HashMap<String, DateTime<Utc>>,
    pub(super) watermark: Option<DateTime<Utc>>,
    pub(super) next_number: u64,
    pub(super) changes: Changes,
    /// CI id (or host) → its firing alerts and the incidents it alerted in.
    pub(super) ci_state: HashMap<CompactString, ci_index::CiState>,
    /// Event time of the last sweep of `ci_state`'s incident lists in `prune` (readers
    /// filter dead entries, so the sweep only bounds memory and runs at most once per
    /// `CI_INDEX_SWEEP` of event time: it hashes every entry's incident id).
    pub(super) ci_incidents_swept: Option<DateTime<Utc>>,
    /// Upstream walks and fan-outs per CI, valid for one topology version (a memo the
    /// read-only policy fills: it never changes an answer).
    pub(super) memo: std::cell::RefCell<policy::Memo>,
    /// While placing a re-fired alert: its previous occurrence's incident and end.
    pub(super) refire_of: Option<(String, DateTime<Utc>)>,
    /// Change records per CI id.
    pub(super) change_records: HashMap<String, Vec<Change>>,
    /// Bumped whenever `change_records` changes (enrichment recomputes its change list).
    pub(super) change_version: u64,
    /// Per incident: the root, change version and topology version its enrichment was
    /// last fully computed for; while all hold, a joining alert only adds its own runbooks.
    pub(super) enriched: HashMap<String, (Option<String>, u64, u64)>,
    /// Firing alerts held back by maintenance, and until when.
    pub(super) held: BTreeSet<(DateTime<Utc>, Fingerprint)>,
    /// Alerts flapping now.
    pub(super) flapping: BTreeSet<Fingerprint>,
    /// Recently finished incidents per root CI, newest last (for `similar_incidents`).
    pub(super) history: HashMap<String, std::collections::VecDeque<similar::PastIncident>>,
    /// SLA deadlines to check as event time passes them (stale entries are harmless).
    pub(super) sla_due: BTreeSet<(DateTime<Utc>, String)>,
    /// Whether to keep the change log (`take_changes`); replay, which persists nothing,
    /// turns it off.
    pub(super) record: bool,
    /// `cfg.priority_matrix` for impact and urgency 0..=9, looked up on every join.
    pub(super) priorities: [[u8; 10]; 10],
    /// The learned causality graph placement consults (`None`: none, or no edges).
    pub(super) causal: Option<std::sync::Arc<CausalIndex>>,
    /// While a graph is set: per CI id, the learned types that started on it and when
    /// (the latest start of each). Entries older than `max_window` are dropped as the CI
    /// alerts again; at most one per CI and type of the graph.
    pub(super) ci_types: HashMap<CompactString, policy::TypesSeen>,
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
            configured_windows: (cfg.window, cfg.late_root_window),
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
    /// learner's `[causality] type_labels`), its rule holds for the alert names the
    /// configured `rule_hold` does not list (with `learn_holds`; `None` leaves only the
    /// configured ones), and its propagation windows (with `window = "auto"`; `None`:
    /// the configured windows).
    pub fn set_learned(
        &mut self,
        learned: Option<&crate::causality::Learned>,
        type_labels: &[String],
    ) {
        self.cfg.rule_hold = self.configured_holds.clone();
        self.cfg.fill_holds(learned.map_or(&[], |l| &l.holds));
        (self.cfg.window, self.cfg.late_root_window) = self.configured_windows;
        self.cfg.relation_window.clear();
        self.cfg.fill_windows(learned.map_or(&[], |l| &l.windows));
        self.set_causality(learned.map(|l| std::sync::Arc::new(CausalIndex::new(l, type_labels))));
    }

    /// The learned graph placement consults, if any.
    pub fn causality(&self) -> Option<&std::sync::Arc<CausalIndex>> {
        self.causal.as_ref()
    }

    pub(super) fn priority(&self, impact: u8, urgency: u8) -> u8 {
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
    pub(super) fn view(&self) -> policy::View<'_> {
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

    pub(super) fn index_ci(&mut self, ci: &str, incident: &str, at: DateTime<Utc>) {
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

    pub(super) fn count_firing(&mut self, ci: Option<&str>, delta: i32) {
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

    /// Sets the writer's mark on these alerts (see `Persisted`): the core keeps it with
    /// the record and never reads it.
    pub fn mark_persisted<'a>(
        &mut self,
        fps: impl IntoIterator<Item = &'a Fingerprint>,
        mark: impl Fn(&AlertRecord) -> Persisted,
    ) {
        for fp in fps {
            if let Some(r) = self.alerts.get_mut(fp) {
                r.persisted = mark(r);
            }
        }
    }

    /// Sets a held alert's count and `ends_at` to what a later re-send recorded (the
    /// writer's re-send journal decides which entries apply), moving its expiry with it.
    pub fn restore_resend(&mut self, fp: &Fingerprint, count: u64, ends_at: Option<DateTime<Utc>>) {
        let Some(rec) = self.alerts.get_mut(fp) else {
            return;
        };
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

    /// Adopts an alert as stored (at start, or written by another daemon). Replaces what
    /// the core had for it.
    pub fn load_alert(&mut self, rec: AlertRecord) {
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

    pub(super) fn mark_alert(&mut self, fp: &Fingerprint) {
        if self.record {
            self.changes.alerts.insert(fp.clone());
        }
    }

    pub(super) fn touch_alert(&mut self, fp: Fingerprint) {
        if self.record {
            self.changes.touched.insert(fp);
        }
    }

    pub(super) fn mark_incident(&mut self, id: &str) {
        // Checked first: most calls are for an incident already marked (a storm's joins).
        if self.record && !self.changes.incidents.contains(id) {
            self.changes.incidents.insert(id.to_string());
        }
    }

    pub(super) fn timeline(
        &mut self,
        id: &str,
        at: DateTime<Utc>,
        actor: &str,
        kind: TimelineKind,
        detail: impl Into<Detail>,
    ) {
        if !self.record {
            return;
        }
        self.changes.timeline.push(TimelineEntry {
            incident_id: id.into(),
            at,
            actor: actor.into(),
            kind,
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
