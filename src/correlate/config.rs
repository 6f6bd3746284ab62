//! The core's settings: `CorrelateConfig` (windows, weights and limits of the grouping
//! rules, the incident lifecycle's timers, SLA targets) and the fallback assignment rules.
//!
//! Plain data with its defaults. It holds no state and decides nothing: `policy` reads
//! these values, and nothing here may change with what the engine has seen.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use super::SlaTarget;
use crate::alert::Labels;
use crate::incident::PriorityMatrix;

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
    /// Whether an orphan (a CI with no dependency in the CMDB while most CIs of its type
    /// have one: a relation the CMDB lost) may join an incident whose root has CIs of its
    /// type alerting under it.
    pub orphan_links: bool,
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
    /// `window = "auto"`: the propagation windows learned from history (`causality::lags`,
    /// through `fill_windows`) replace `window` and `late_root_window` (the estate-wide
    /// one) and, per relation type, the base window of a link whose last hop into the
    /// explaining CI is of that type. Until something is learned, `window` holds.
    pub auto_window: bool,
    /// The learned base window per relation type (only with `auto_window`).
    pub relation_window: std::collections::BTreeMap<String, Duration>,
}

impl CorrelateConfig {
    /// How long the rule raising `alertname` holds its alerts back (zero when unknown).
    pub fn hold(&self, alertname: &str) -> Duration {
        if self.rule_hold.is_empty() {
            return Duration::zero();
        }
        self.rule_hold.get(alertname).copied().unwrap_or_default()
    }

    /// Adds the learned `holds` (non-zero ones) for the alert names `rule_hold` does not
    /// list, when `learn_holds`; returns what it added.
    pub fn fill_holds(
        &mut self,
        holds: &[crate::causality::holds::Hold],
    ) -> Vec<(String, Duration)> {
        let mut added = Vec::new();
        if !self.learn_holds {
            return added;
        }
        for h in holds.iter().filter(|h| h.hold_seconds > 0) {
            if !self.rule_hold.contains_key(&h.kind) {
                let d = Duration::seconds(h.hold_seconds);
                self.rule_hold.insert(h.kind.clone(), d);
                added.push((h.kind.clone(), d));
            }
        }
        added
    }
}

impl CorrelateConfig {
    /// With `auto_window`: the learned `windows` (those with a window) replace `window`
    /// and `late_root_window` (the estate-wide one, `lags::ALL`) and fill
    /// `relation_window`, each at most `max_window`; returns what it set. Without it,
    /// nothing changes. Call on the configured settings (the engine keeps them).
    pub fn fill_windows(
        &mut self,
        windows: &[crate::causality::lags::RelationWindow],
    ) -> Vec<(String, Duration)> {
        let mut set = Vec::new();
        if !self.auto_window {
            return set;
        }
        self.relation_window.clear();
        let cap = self.max_window.max(self.window);
        for w in windows {
            let Some(s) = w.window_s else { continue };
            let d = Duration::seconds(s).min(cap);
            if w.relation == crate::causality::lags::ALL {
                self.window = d;
                self.late_root_window = d;
            } else {
                self.relation_window.insert(w.relation.clone(), d);
            }
            set.push((w.relation.clone(), d));
        }
        set
    }
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
            orphan_links: true,
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
            auto_window: true,
            relation_window: std::collections::BTreeMap::new(),
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
    pub(super) fn apply(&self, labels: &Labels) -> Option<String> {
        let v = labels.get(&self.label)?;
        if self.value.as_ref().is_some_and(|want| want != v) {
            return None;
        }
        Some(self.group.clone().unwrap_or_else(|| v.to_string()))
    }
}
