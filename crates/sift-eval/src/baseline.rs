//! Naive groupings an operator gets without sift, scored on the same alerts.
//!
//! Each baseline sees every distinct alert once, at its first firing event in arrival
//! order, and judges windows on the alert's `startsAt` (event time, as sift does). Alerts
//! never seen firing are left out (the scorer makes them singletons). A group's root is
//! the CI of its first alert, mapped exactly as sift maps it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use sift::alert::{Alert, AlertStatus, Fingerprint};
use sift::cmdb::topology::Node;
use sift::cmdb::{CiMapper, Topology};

/// Alerts grouped into incidents, with the root CI each names.
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    pub incidents: Vec<Vec<Fingerprint>>,
    pub roots: Vec<Option<String>>,
}

impl Grouping {
    fn open(&mut self, topo: &Topology, mapper: &CiMapper, a: &Alert) -> usize {
        self.incidents.push(vec![a.fingerprint.clone()]);
        self.roots
            .push(mapper.map(topo, &a.labels).map(|n| topo.ci(n).id.clone()));
        self.incidents.len() - 1
    }
}

fn first_firings(alerts: &[Alert]) -> impl Iterator<Item = &Alert> {
    let mut seen = HashSet::new();
    alerts
        .iter()
        .filter(move |a| a.status == AlertStatus::Firing && seen.insert(&a.fingerprint))
}

/// Alertmanager `group_by: [keys]` with `group_interval`: alerts with equal values of
/// `keys` (a missing label is the empty value) share an aggregation group. A group is
/// one notification thread: it stays open while new alerts for its key keep starting
/// within one `group_interval` of the previous one (sliding); a longer gap starts a new
/// group. (Alertmanager keeps a group while any of its alerts fires; the sliding gap is
/// the usual way operators read separate notification threads, and errs towards fewer,
/// bigger groups only as much as the alert rate does.)
pub fn group_by_labels(
    alerts: &[Alert],
    topo: &Topology,
    mapper: &CiMapper,
    keys: &[&str],
    group_interval: Duration,
) -> Grouping {
    let mut g = Grouping::default();
    let mut open: HashMap<Vec<&str>, (usize, DateTime<Utc>)> = HashMap::new();
    for a in first_firings(alerts) {
        let key: Vec<&str> = keys.iter().map(|k| a.labels.get(k).unwrap_or("")).collect();
        match open.get_mut(&key) {
            Some((idx, last)) if a.starts_at - *last <= group_interval => {
                g.incidents[*idx].push(a.fingerprint.clone());
                *last = (*last).max(a.starts_at);
            }
            _ => {
                let idx = g.open(topo, mapper, a);
                open.insert(key, (idx, a.starts_at));
            }
        }
    }
    g
}

/// A plain time window anchored at a group's first alert (tumbling, not sliding): an
/// alert joins the current group when it starts within `window` of that group's first
/// alert, else it starts a new group.
pub fn time_window(
    alerts: &[Alert],
    topo: &Topology,
    mapper: &CiMapper,
    window: Duration,
) -> Grouping {
    let mut g = Grouping::default();
    let mut current: Option<(usize, DateTime<Utc>)> = None;
    for a in first_firings(alerts) {
        match current {
            Some((idx, first)) if a.starts_at - first <= window => {
                g.incidents[idx].push(a.fingerprint.clone());
            }
            _ => {
                let idx = g.open(topo, mapper, a);
                current = Some((idx, a.starts_at));
            }
        }
    }
    g
}

/// "Join if a dependency alerted in the last 10 minutes", the correlator a team writes in
/// an afternoon: an alert whose CI, or a CI its CI directly depends on, had an alert start
/// within `window` of its own start joins the group of the most recent such alert;
/// otherwise (and when its labels name no CI) it opens a group.
pub fn recent_dependency(
    alerts: &[Alert],
    topo: &Topology,
    mapper: &CiMapper,
    window: Duration,
) -> Grouping {
    let mut g = Grouping::default();
    // CI → (group, start of its latest alert).
    let mut last: HashMap<Node, (usize, DateTime<Utc>)> = HashMap::new();
    for a in first_firings(alerts) {
        let Some(ci) = mapper.map(topo, &a.labels) else {
            g.open(topo, mapper, a);
            continue;
        };
        let near = std::iter::once(ci)
            .chain(topo.depends_on(ci).iter().copied())
            .filter_map(|n| last.get(&n).copied())
            .filter(|&(_, t)| (a.starts_at - t).abs() <= window)
            .max_by_key(|&(_, t)| t);
        let idx = match near {
            Some((idx, _)) => {
                g.incidents[idx].push(a.fingerprint.clone());
                idx
            }
            None => g.open(topo, mapper, a),
        };
        last.insert(ci, (idx, a.starts_at));
    }
    g
}
