//! Where a new firing alert goes: the one place that decides grouping.
//!
//! Topology policy, on event time:
//! - **Same CI**: an alert on a CI that already has an active incident joins it, unless
//!   one of its nearest alerting dependencies began alerting, in another incident, after
//!   the CI's own first alert there: a new alert follows the newer trouble upstream.
//! - **Cause precedes effect**: an alert on CI `c` joins the active incident holding the
//!   nearest alerting CI that `c` depends on (transitively, within `max_hops`), when `c`'s
//!   alert starts within `window` of that CI's first alert there. Its root stays. The CIs
//!   in between must be firing; the explaining CI itself need only have alerted in that
//!   still-active incident (its alert may flap or clear for a moment).
//! - A re-fired alert returns to its incident while that is active, and reopens it when it
//!   resolved less than `reopen_window` ago; later, it is placed like a new alert.
//! - **Late root**: when `c` is something an active incident's root depends on, and `c`
//!   alerts within `late_root_window` of that incident opening, `c` becomes its new root;
//!   if `c` explains several such incidents they merge into the oldest.
//! - Two incidents never merge only because they share a dependency that is itself
//!   silent: linking needs a dependency path between *alerting* CIs.
//! - Alerts without a CI join the incident of other alerts on the same unknown host
//!   (`instance` without port, `host`, `hostname`, `node`) within `window`; else they group
//!   by their label set minus instance-like labels while that group's incident is active
//!   and saw an alert within `window`.
//!
//! Walks are breadth first with a hop limit and a node budget, and cached per topology
//! version: cycles and huge fan-ins cannot hang the core.

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use compact_str::CompactString;
use smallvec::SmallVec;

use chrono::{DateTime, Utc};

use crate::alert::Fingerprint;
use crate::cmdb::Topology;
use crate::cmdb::topology::{Node, Reached};

use super::{AlertRecord, Engine};

/// The decision for one new firing alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Join incident `id`. `path` runs from the alert's CI to the CI of the incident that
    /// explains it (empty when the alert's CI is already in it). With `reroot`, the alert's
    /// CI becomes the root; `merge` lists incidents it also explains, folded into `id`.
    // Incident ids are compact strings: held inline, no allocation per placed alert.
    Join {
        id: CompactString,
        path: Vec<String>,
        reroot: bool,
        merge: Vec<String>,
    },
    Open {
        key: String,
    },
    /// Reopen incident `id` (resolved within the reopen window) and join it.
    Reopen {
        id: CompactString,
    },
}

/// Most nodes one walk visits.
const WALK_BUDGET: usize = 20_000;

/// Everything `node` depends on, nearest first (cached).
pub(super) fn ancestors(engine: &mut Engine, topo: &Topology, node: Node) -> Arc<Vec<Reached>> {
    if engine.walk_cache_version != topo.version() {
        engine.walk_cache.clear();
        engine.walk_cache_version = topo.version();
    }
    if engine.walk_cache.len() > 100_000 {
        engine.walk_cache.clear();
    }
    let max_hops = engine.cfg.max_hops;
    engine
        .walk_cache
        .entry(node)
        .or_insert_with(|| Arc::new(topo.upstream(node, max_hops, WALK_BUDGET)))
        .clone()
}

/// What `node` depends on, nearest first, along dependency paths on which at most
/// `max_silent_hops` CIs between two alerting CIs are not alerting themselves: a fault
/// spreads through the CIs in between, so a long silent stretch means no link.
pub(super) fn alerting_walk(engine: &Engine, topo: &Topology, node: Node) -> Vec<Reached> {
    let max_silent = engine.cfg.max_silent_hops;
    let firing = |n: Node| engine.firing_on(topo.ci(n).id.as_str()) > 0;
    let mut best = Seen::default();
    best.insert(node, 0);
    let mut out = Vec::new();
    let mut frontier: SmallVec<[(Node, u32); 8]> = SmallVec::from_elem((node, 0), 1);
    let mut hops = 0;
    while !frontier.is_empty() && hops < engine.cfg.max_hops && out.len() < WALK_BUDGET {
        hops += 1;
        let mut next = SmallVec::new();
        for (n, silent) in frontier {
            for &p in topo.depends_on(n) {
                let s = if firing(p) { silent } else { silent + 1 };
                if best.get(&p).is_some_and(|b| *b <= s.min(max_silent + 1)) {
                    continue;
                }
                if !best.contains_key(&p) {
                    out.push(Reached {
                        node: p,
                        hops,
                        via: n,
                    });
                }
                best.insert(p, s.min(max_silent + 1));
                if s <= max_silent {
                    next.push((p, s));
                }
            }
        }
        frontier = next;
    }
    out
}

/// Nodes a walk reached, and the fewest silent hops it reached each with. Most walks
/// reach a handful of CIs (a host, its switch, their uplinks): those are scanned on the
/// stack; a large walk moves to a hash map.
enum Seen {
    Few(SmallVec<[(Node, u32); 16]>),
    Many(HashMap<Node, u32>),
}

impl Default for Seen {
    fn default() -> Self {
        Seen::Few(SmallVec::new())
    }
}

impl Seen {
    fn get(&self, n: &Node) -> Option<&u32> {
        match self {
            Seen::Few(v) => v.iter().find(|(m, _)| m == n).map(|(_, s)| s),
            Seen::Many(m) => m.get(n),
        }
    }

    fn contains_key(&self, n: &Node) -> bool {
        self.get(n).is_some()
    }

    fn insert(&mut self, n: Node, s: u32) {
        match self {
            Seen::Few(v) => {
                if let Some(i) = v.iter().position(|(m, _)| *m == n) {
                    v[i].1 = s;
                } else if v.len() < 16 {
                    v.push((n, s));
                } else {
                    let mut m: HashMap<Node, u32> = v.drain(..).collect();
                    m.insert(n, s);
                    *self = Seen::Many(m);
                }
            }
            Seen::Many(m) => {
                m.insert(n, s);
            }
        }
    }
}

/// The path `from` → … → `to` along a walk from `from` (ids), when `to` was reached.
pub(super) fn path_in(
    topo: &Topology,
    walk: &[Reached],
    from: Node,
    to: Node,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![topo.ci(from).id.clone()]);
    }
    let via: HashMap<Node, Node> = walk.iter().map(|r| (r.node, r.via)).collect();
    let mut out = vec![topo.ci(to).id.clone()];
    let mut cur = to;
    while cur != from {
        cur = *via.get(&cur)?;
        out.push(topo.ci(cur).id.clone());
        if out.len() > walk.len() + 1 {
            return None;
        }
    }
    out.reverse();
    Some(out)
}

pub(super) fn place(
    engine: &mut Engine,
    topo: &Topology,
    node: Option<Node>,
    rec: &AlertRecord,
    at: DateTime<Utc>,
) -> Placement {
    // A re-fired alert goes back to its incident while that is active, and reopens it
    // when it resolved within the reopen window.
    if let Some(prev) = engine.refire_of.clone()
        && let Some(inc) = engine.incidents.get(&prev)
    {
        if inc.status.is_active() {
            return join(prev.into(), Vec::new());
        }
        let recent = inc
            .resolved_at
            .is_some_and(|r| at <= r + engine.cfg.reopen_window);
        if inc.status == crate::incident::IncidentStatus::Resolved && recent {
            return Placement::Reopen { id: prev.into() };
        }
    }
    let window = engine.cfg.window;
    // Effects follow their cause within a propagation window, measured from when the
    // explaining CI first alerted in that incident.
    // (at <= first + window && first <= at + window, with the sums done once.)
    let (earliest, latest) = (at - window, at + window);
    let in_window = |first: DateTime<Utc>| earliest <= first && first <= latest;
    let Some(c) = node else {
        // No CI: alerts on the same unknown host belong together (the host stands in for
        // the CI it would be); else the same alert on many instances is one incident.
        if let Some(h) = crate::cmdb::topology::host_of(&rec.labels)
            && let Some((id, _)) = engine
                .active_on_ci(&format!("host:{h}"))
                .into_iter()
                .find(|(_, f)| in_window(*f))
        {
            return join(id.into(), Vec::new());
        }
        let ignore = &engine.cfg.fallback_ignore_labels;
        let fp = Fingerprint::of_selected(&rec.labels, |k| !ignore.iter().any(|i| i == k));
        let key = format!("group:{fp}");
        // The group's incident is joined while it saw an alert within the window.
        let recent = |id: &String| {
            engine
                .incidents
                .get(id)
                .is_some_and(|i| at <= i.updated_at + window)
        };
        return match engine.open_by_key.get(&key).filter(|id| recent(id)) {
            Some(id) => join(id.as_str().into(), Vec::new()),
            None => Placement::Open { key },
        };
    };
    let cid = topo.ci(c).id.as_str();

    // Cause precedes effect: the nearest alerting CI that `c` depends on (hop 0: itself).
    let own = engine
        .active_on_ci(cid)
        .into_iter()
        .find(|(_, f)| in_window(*f))
        .map(|(id, first)| (0, first, id, c));
    let walk = alerting_walk(engine, topo, c);
    // A CI already alerting stays in its incident, unless something it depends on began
    // alerting, in another incident, after it did: a new alert on it is then the effect
    // of that newer trouble upstream, which its earlier alerts cannot have come from.
    let mut up: Option<(u32, DateTime<Utc>, &str, Node)> = None;
    let mut newer: Option<(u32, DateTime<Utc>, &str, Node)> = None;
    for r in walk.iter() {
        // Nearest first: only the closest alerting dependencies are candidates.
        if up.as_ref().is_some_and(|(h, ..)| *h < r.hops) {
            break;
        }
        // The explaining CI need not fire at this instant: an alert that flaps or
        // clears for a minute while its incident goes on does not end the fault.
        // Its first alert there must still be within the window.
        let aid = &topo.ci(r.node).id;
        for (id, first) in engine.active_on_ci(aid) {
            if !in_window(first) {
                continue;
            }
            let better = |x: &Option<(u32, DateTime<Utc>, &str, Node)>| {
                x.as_ref()
                    .is_none_or(|(h, f, ..)| (r.hops, first) < (*h, *f))
            };
            if let Some((_, f0, oid, _)) = &own
                && id != *oid
                && first > *f0
                && better(&newer)
            {
                newer = Some((r.hops, first, id, r.node));
            }
            if better(&up) {
                up = Some((r.hops, first, id, r.node));
            }
        }
    }
    let up = match own {
        Some(o) => newer.or(Some(o)),
        None => up,
    };

    // Late root: active incidents whose root depends on `c` and opened shortly before.
    let mut down: Vec<(DateTime<Utc>, String)> = Vec::new();
    if !topo.dependents(c).is_empty() {
        let late = engine.cfg.late_root_window;
        let roots: Vec<(String, Node, DateTime<Utc>)> = engine
            .open_by_key
            .values()
            .filter_map(|id| engine.incidents.get(id))
            .filter(|i| at <= i.opened_at + late && i.root_cause_ci.as_deref() != Some(cid))
            .filter_map(|i| {
                Some((
                    i.id.clone(),
                    topo.node(i.root_cause_ci.as_deref()?)?,
                    i.opened_at,
                ))
            })
            .collect();
        for (id, root, opened) in roots {
            if up.as_ref().is_some_and(|(_, _, uid, _)| *uid == id) {
                continue;
            }
            let from_root = alerting_walk(engine, topo, root);
            if from_root.iter().any(|r| r.node == c) {
                down.push((opened, id));
            }
        }
        down.sort();
    }

    match up {
        Some((_, _, id, via)) => {
            let path = if via == c {
                Vec::new()
            } else {
                path_in(topo, &walk, c, via).unwrap_or_default()
            };
            Placement::Join {
                id: id.into(),
                path,
                reroot: false,
                merge: down.into_iter().map(|(_, id)| id).collect(),
            }
        }
        None if !down.is_empty() => {
            let mut ids = down.into_iter().map(|(_, id)| id);
            let first = ids.next().unwrap_or_default();
            Placement::Join {
                id: first.into(),
                path: Vec::new(),
                reroot: true,
                merge: ids.collect(),
            }
        }
        None => Placement::Open {
            key: format!("ci:{cid}"),
        },
    }
}

fn join(id: CompactString, path: Vec<String>) -> Placement {
    Placement::Join {
        id,
        path,
        reroot: false,
        merge: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_keeps_every_node_small_or_large() {
        let mut seen = Seen::default();
        for n in 0..40u32 {
            seen.insert(n, n + 1);
            // Lowered later, as a walk does when it finds a quieter path.
            seen.insert(n, n);
            assert!(matches!(seen, Seen::Few(_)) == (n < 16), "at {n}");
        }
        for n in 0..40u32 {
            assert_eq!(seen.get(&n), Some(&n));
        }
        assert!(!seen.contains_key(&40));
    }
}
