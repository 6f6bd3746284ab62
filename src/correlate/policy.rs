//! Where a new firing alert goes: the one place that decides grouping.
//!
//! `place` is a pure function of a read-only [`View`] of the engine's state, the topology,
//! the alert and its event time: it returns a [`Placement`] (what to do, and the typed
//! [`Reason`]: rule, score, path, lag, silent CIs passed) and changes nothing. The engine
//! applies it (join / reroot / merge / suspect / open). The only thing `place` writes is
//! a memo of topology facts (upstream walks, fan-outs), which never changes an answer.
//!
//! Topology policy, on event time:
//! - **Same CI**: an alert on a CI that already has an active incident joins it, unless
//!   one of its dependencies began alerting, in another incident, after the CI's own first
//!   alert there: a new alert follows the newer trouble upstream. An alert on the
//!   *suspected* root of an active incident joins it and confirms that root.
//! - **Cause precedes effect**: an alert on CI `c` joins the active incident holding a CI
//!   that `c` depends on (transitively, within `max_hops`), when `c`'s alert starts within
//!   the propagation window of that CI's first alert there: `window + hop_window * s` for
//!   `s` CIs on the path that are not alerting, at most `max_window` (an alerting CI in
//!   between restarts the clock: it is the nearer cause; with `window = "auto"`, `window`
//!   is the one learned for the relation type of the link's last hop into that CI, else
//!   the estate's, see `View::link_window`). Such silent CIs (monitoring
//!   gaps) weaken the link: each multiplies its score by `silent_weight * fan(x)`, and the
//!   CI linked to by `fan`, where `fan(x) = (1 - share(x)^2) / (1 + dependents(x) /
//!   fanout_scale)` falls with how many CIs depend on `x` and what share of the estate
//!   they are; the link needs `min_link_score`, at most `max_silent_hops` silent CIs, and
//!   the cause alerting first. Links with fewer silent CIs win, then nearer ones, then
//!   earlier ones, so where every CI on the path alerts, the all-alerting rule is
//!   unchanged.
//! - **Learned edges** (only with a learned causality graph set; none changes nothing):
//!   for a link on `c` itself or one relation up with no silent CI, a learned edge from
//!   a type that started lately on the linked CI to the alert's type (scope matching)
//!   wins ties and is quoted in the reason; at lift >= `Uses::extend_lift` it also lets
//!   the alert join when it starts within the edge's lag (p90, at most
//!   `Uses::median_factor` times the median, within `window` ..= `max_window`) of that
//!   cause and of the linked CI's first alert in the incident. Through silent CIs, a
//!   linked CI whose recent types are all independent of the alert's type (see
//!   `CausalIndex::independent`) gets the plain `window`.
//! - A re-fired alert returns to its incident while that is active and what explained it
//!   still alerts (the root; for a suspected root, the rest of the incident) or the alert
//!   was quiet less than `window` (a flap); it reopens its incident when that resolved
//!   less than `reopen_window` ago. Either way, an active incident whose CI it is or
//!   depends on, and that began alerting after the alert's previous occurrence ended and
//!   within the propagation window, takes it instead (the newer cause). Otherwise it is
//!   placed like a new alert: a long-lived incident does not keep collecting the later,
//!   unrelated occurrences of every alert it once held.
//! - **Late root**: when `c` is something an active incident's root depends on (a link
//!   from that root to `c` scoring as above), and `c` alerts within `late_root_window`
//!   (grown per silent CI like the window) of that incident opening, `c` becomes its new
//!   root; if `c` explains several such incidents they merge into the oldest.
//! - **Silent root**: when nothing explains `c`, but incidents opened within `window`
//!   before it have roots that share with `c` a dependency `s` that is not alerting (the
//!   nearest such), `s` is the suspected root of them all (they merge) when its support
//!   `1 - prod(1 - f_i)` over `c` and those roots (one symptom per incident) reaches
//!   `min_root_support`, with `f_i = fan(s) * root_gap_weight^(silent CIs between)`, and
//!   the symptoms are at least `min_root_share` of `s`'s direct dependents (and two): a
//!   hub half the estate depends on needs many symptoms, and two independent faults under
//!   it stay apart. Only CIs in the CMDB can be suspected.
//! - **Orphan**: when nothing explains `c` and the CMDB most likely lost its uplink (it
//!   depends on nothing, at least half of the five or more CIs of its type depend on
//!   something, and no CI of its type depends on it), it joins the active incident that
//!   began within `window` before it whose root, or a CI of it directly under the root,
//!   has the most CIs of `c`'s type alerting in it directly under it or one CI further
//!   down (two at least): one more host alerting while a switch's hosts do. An orphan
//!   that alerted before its peers opened an incident of its own: the alert that makes
//!   its case (a peer joining that incident) merges it in. `orphan_links = false` turns
//!   it off.
//! - Alerts without a CI join the incident of other alerts on the same unknown host
//!   (`instance` without port, `host`, `hostname`, `node`) within `window`; else they group
//!   by their label set minus instance-like labels while that group's incident is active
//!   and saw an alert within `window`.
//!
//! - **Operators' splits hold**: two incidents an operator split apart (one was split out
//!   of the other; `enrichment.kept_apart` lists them) are never merged by the late-root
//!   or silent-root rules; an alert still joins either as the rules above say.
//!
//! Bounded work per alert: a link walk scans at most `WALK_BUDGET` dependency edges
//! (20,000), within `max_hops` hops and `max_silent_hops` silent CIs; the late-root rule
//! walks from at most `RECENT_LIMIT` (64) recently opened incidents' roots, and the
//! silent-root rule compares at most as many; a fan-out count visits at most
//! `FANOUT_LIMIT` CIs once per CI and topology version; the orphan rule scans at most
//! `ORPHAN_SCAN` (4,096) dependents of each of those roots and about `WALK_BUDGET` of their
//! CIs' in all (its per-type table is built once per topology version). Cycles (links listed both ways)
//! cannot hang a walk: a node is revisited only on a strictly better link.

type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::cell::RefCell;
use std::sync::Arc;

use compact_str::CompactString;
use smallvec::SmallVec;

use chrono::{DateTime, Duration, Utc};

use crate::alert::Fingerprint;
use crate::cmdb::Topology;
use crate::cmdb::topology::{Node, Reached};
use crate::incident::{CorrelationKey, Incident, Reason, Rule};

use super::causal::{CausalIndex, LearnedLink};
use super::{AlertRecord, CorrelateConfig, ci_index::CiState};
use crate::causality::Scope;

/// Learned types that started on one CI, with the latest start of each.
pub(super) type TypesSeen = SmallVec<[(u32, DateTime<Utc>); 2]>;

/// The decision for one new firing alert, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub action: Action,
    pub reason: Reason,
}

/// What to do with the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Join incident `id`. `path` runs from the alert's CI to the CI of the incident that
    /// explains it (empty when the alert's CI is already in it). With `reroot`, the alert's
    /// CI becomes the root; `merge` lists incidents it also explains, folded into `id`.
    // Incident ids are compact strings: held inline, no allocation per placed alert.
    Join {
        id: CompactString,
        path: Vec<String>,
        reroot: bool,
        merge: Vec<String>,
        /// Incidents opened by orphans (see `View::orphan`) that the alert's CI joining
        /// `id` now places there, each with the CI of `id` its peers alert under.
        orphans: Vec<(String, Node)>,
    },
    /// Join incident `id` whose root becomes `root`, a CI that is not alerting and that
    /// the alert's CI (by `path`) and the roots of `id` and of `merge` all depend on.
    Suspect {
        id: CompactString,
        root: Node,
        path: Vec<String>,
        merge: Vec<String>,
    },
    /// Join incident `id`, whose suspected root is the alert's CI: the root is confirmed.
    Confirm {
        id: CompactString,
    },
    Open {
        key: CorrelationKey,
    },
    /// Reopen incident `id` (resolved within the reopen window) and join it.
    Reopen {
        id: CompactString,
    },
}

/// Most dependency edges one walk scans.
pub(super) const WALK_BUDGET: usize = 20_000;
/// Most CIs a fan-out count visits (a CI with more dependents counts as this many).
pub(super) const FANOUT_LIMIT: usize = 20_000;
/// Most recently opened incidents the late-root and silent-root rules look at per alert.
pub(super) const RECENT_LIMIT: usize = 64;
/// A CI is an orphan when it depends on nothing while this share of its type's CIs
/// depend on something ...
const ORPHAN_PEER_SHARE: f64 = 0.5;
/// ... and its type has at least this many CIs.
const ORPHAN_MIN_PEERS: u32 = 5;
/// Least number of CIs of an orphan's type, directly under an incident's root and
/// alerting in it, for the orphan to join that incident.
const ORPHAN_MIN_SIBLINGS: usize = 2;
/// Most direct dependents of a root the orphan rule scans.
const ORPHAN_SCAN: usize = 4_096;

/// Facts of one topology version, computed on first use: upstream walks and fan-outs.
#[derive(Debug, Default)]
pub(super) struct Memo {
    version: u64,
    walks: HashMap<Node, Arc<Vec<Reached>>>,
    fanout: HashMap<Node, u32>,
    /// Per CI type: how many CIs of it the CMDB has, and how many of those depend on
    /// something (built on first use).
    uplinked: Option<HashMap<String, (u32, u32)>>,
}

impl Memo {
    fn fresh(&mut self, topo: &Topology) {
        if self.version != topo.version() {
            self.walks.clear();
            self.fanout.clear();
            self.uplinked = None;
            self.version = topo.version();
        }
        if self.walks.len() > 100_000 {
            self.walks.clear();
        }
        if self.fanout.len() > 1_000_000 {
            self.fanout.clear();
        }
    }
}

/// Everything `node` depends on, nearest first (memoized).
pub(super) fn ancestors(
    memo: &RefCell<Memo>,
    topo: &Topology,
    node: Node,
    max_hops: u32,
) -> Arc<Vec<Reached>> {
    let mut m = memo.borrow_mut();
    m.fresh(topo);
    m.walks
        .entry(node)
        .or_insert_with(|| Arc::new(topo.upstream(node, max_hops, WALK_BUDGET)))
        .clone()
}

/// What the policy reads of the engine: nothing here is written by `place`.
pub(super) struct View<'a> {
    pub cfg: &'a CorrelateConfig,
    pub incidents: &'a HashMap<String, Incident>,
    pub open_by_key: &'a HashMap<CorrelationKey, String>,
    pub ci_state: &'a HashMap<CompactString, CiState>,
    /// While placing a re-fired alert: the incident its previous occurrence was in, and
    /// when that occurrence ended.
    pub refire_of: Option<(&'a str, DateTime<Utc>)>,
    pub memo: &'a RefCell<Memo>,
    /// The learned causality graph, when one is set (with at least one edge).
    pub causal: Option<&'a CausalIndex>,
    /// Per CI id: the learned types that started on it lately (empty with no graph).
    pub ci_types: &'a HashMap<CompactString, TypesSeen>,
}

impl<'a> View<'a> {
    /// Active incidents that `ci` alerted in (or is the suspected root of), with when it
    /// first did, newest first.
    pub fn active_on_ci(&self, ci: &str) -> SmallVec<[(&'a str, DateTime<Utc>); 2]> {
        let mut v: SmallVec<[(&'a str, DateTime<Utc>); 2]> = SmallVec::new();
        let Some(state) = self.ci_state.get(ci) else {
            return v;
        };
        for (id, first) in state.incidents.iter() {
            if self.incidents.get(id).is_some_and(|i| i.status.is_active()) {
                v.push((id, first));
            }
        }
        if v.len() > 1 {
            v.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        }
        v
    }

    /// Whether an operator split incidents `a` and `b` apart: the rules never merge them.
    pub fn kept_apart(&self, a: &str, b: &str) -> bool {
        let lists = |x: &str, y: &str| {
            self.incidents
                .get(x)
                .is_some_and(|i| super::enrichment::is_kept_apart(&i.enrichment, y))
        };
        lists(a, b) || lists(b, a)
    }

    /// How long the rule that raised `rec` holds an alert back before it fires (its
    /// `for:`), as configured or learned (`[correlate.rule_hold]`, `sift tune`): zero
    /// when unknown.
    pub fn hold(&self, rec: &AlertRecord) -> Duration {
        self.cfg.hold(rec.alertname())
    }

    /// When incident `i`'s trouble began: the onset its root CI was filed under (see
    /// `Engine::index_ci`), else when it opened.
    fn incident_onset(&self, i: &Incident) -> DateTime<Utc> {
        i.root_cause_ci
            .as_deref()
            .and_then(|r| self.ci_state.get(r))
            .and_then(|s| s.incidents.iter().find(|(id, _)| *id == i.id.as_str()))
            .map_or(i.opened_at, |(_, t)| t.min(i.opened_at))
    }

    /// Alerts firing on CI `ci` now.
    pub fn firing_on(&self, ci: &str) -> u32 {
        self.ci_state.get(ci).map_or(0, |c| c.firing)
    }

    fn silent(&self, topo: &Topology, n: Node) -> bool {
        self.firing_on(topo.ci(n).id.as_str()) == 0
    }

    /// How many CIs depend on `n`, transitively within `max_hops` (memoized, capped).
    pub fn fanout(&self, topo: &Topology, n: Node) -> u32 {
        let mut m = self.memo.borrow_mut();
        m.fresh(topo);
        *m.fanout.entry(n).or_insert_with(|| {
            if topo.dependents(n).is_empty() {
                return 0;
            }
            topo.impact(n, self.cfg.max_hops, FANOUT_LIMIT).len() as u32
        })
    }

    /// Whether the CMDB most likely lost `n`'s uplink: `n` depends on nothing, while at
    /// least `ORPHAN_PEER_SHARE` of the (at least `ORPHAN_MIN_PEERS`) CIs of its type
    /// depend on something. A type whose CIs are tops (routers, say) has no orphans.
    fn orphan(&self, topo: &Topology, n: Node) -> bool {
        if !topo.depends_on(n).is_empty() {
            return false;
        }
        let Some(ty) = topo.ci(n).ci_type.as_deref() else {
            return false;
        };
        // A CI its own type depends on (a router under which core switches sit) is the
        // top of that type's hierarchy, not a CI whose uplink was lost.
        if topo
            .dependents(n)
            .iter()
            .take(ORPHAN_SCAN)
            .any(|&d| topo.ci(d).ci_type.as_deref() == Some(ty))
        {
            return false;
        }
        self.uplinked(topo, ty).is_some_and(|(all, up)| {
            all >= ORPHAN_MIN_PEERS && f64::from(up) >= ORPHAN_PEER_SHARE * f64::from(all)
        })
    }

    /// Whether CIs of type `ty` can be orphans at all: enough of them, most with an
    /// uplink and at least one without. Where the CMDB is whole no type can, and the
    /// late-orphan search (run for every alert that joins an incident) costs nothing.
    fn orphans_possible(&self, topo: &Topology, ty: &str) -> bool {
        self.uplinked(topo, ty).is_some_and(|(all, up)| {
            up < all
                && all >= ORPHAN_MIN_PEERS
                && f64::from(up) >= ORPHAN_PEER_SHARE * f64::from(all)
        })
    }

    /// How many CIs of type `ty` there are, and how many depend on something (a table
    /// built once per topology version).
    fn uplinked(&self, topo: &Topology, ty: &str) -> Option<(u32, u32)> {
        let mut m = self.memo.borrow_mut();
        m.fresh(topo);
        let table = m.uplinked.get_or_insert_with(|| {
            let mut t: HashMap<String, (u32, u32)> = HashMap::default();
            for ci in topo.all_cis() {
                let (Some(ty), Some(node)) = (ci.ci_type.as_deref(), topo.node(&ci.id)) else {
                    continue;
                };
                let e = t.entry(ty.to_string()).or_default();
                e.0 += 1;
                e.1 += u32::from(!topo.depends_on(node).is_empty());
            }
            t
        });
        table.get(ty).copied()
    }

    /// `fan(n)`: 1 for a CI nothing depends on, falling as more CIs do, and with the
    /// share of the estate that does (in a small estate a hub is still a hub).
    fn fan(&self, topo: &Topology, n: Node) -> f64 {
        let scale = f64::from(self.cfg.fanout_scale.max(1));
        let deps = f64::from(self.fanout(topo, n));
        let share = deps / (topo.len().max(1) as f64);
        (1.0 - share * share).max(0.0) / (1.0 + deps / scale)
    }

    /// What passing the silent CI `n` on a dependency path multiplies a link's score by.
    fn silent_factor(&self, topo: &Topology, n: Node) -> f64 {
        self.cfg.silent_weight * self.fan(topo, n)
    }

    /// The learned edge that best links an alert of type `effect` on a CI to the CI `x`
    /// it depends on, `hops` away (0: the same CI) with no silent CI between: a type that
    /// started on `x` at most `max_window` before `at`, with an edge to `effect` learned
    /// in the matching scope (same CI, or one relation apart). The best-supported wins.
    /// `None` without a graph, further away, or through a monitoring gap: the learner
    /// only looks one relation away.
    fn learned_edge(
        &self,
        topo: &Topology,
        x: Node,
        hops: u32,
        silent: u32,
        effect: Option<u32>,
        at: DateTime<Utc>,
    ) -> Option<EdgeUse<'a>> {
        let (g, effect) = (self.causal?, effect?);
        let scope = match (hops, silent) {
            (0, _) if g.uses.same_ci => Scope::SameCi,
            (1, 0) => Scope::Neighbour,
            _ => return None,
        };
        let cap = self.cfg.max_window.max(self.cfg.window);
        let seen = self.ci_types.get(topo.ci(x).id.as_str())?;
        let mut best: Option<EdgeUse<'a>> = None;
        for &(cause, started) in seen.iter() {
            if started > at || at - started > cap {
                continue;
            }
            let Some(link) = g.edge(cause, effect, scope) else {
                continue;
            };
            if best
                .as_ref()
                .is_none_or(|b| (link.support, started) > (b.link.support, b.cause_started))
            {
                best = Some(EdgeUse {
                    link,
                    cause_started: started,
                    window: stretch(link, g, self.cfg.window, cap),
                    extend: g.uses.extend
                        && link.support >= g.uses.extend_support
                        && link.lift >= g.uses.extend_lift,
                    prefer: g.uses.prefer,
                });
            }
        }
        best
    }

    /// Whether history shows an alert of type `effect` unrelated to everything that
    /// started on `x` lately (every such type well known, none linked to it by an edge).
    fn independent_of(
        &self,
        topo: &Topology,
        x: Node,
        effect: Option<u32>,
        at: DateTime<Utc>,
    ) -> bool {
        let (Some(g), Some(effect)) = (self.causal, effect) else {
            return false;
        };
        if !g.uses.weaken {
            return false;
        }
        let cap = self.cfg.max_window.max(self.cfg.window);
        let Some(seen) = self.ci_types.get(topo.ci(x).id.as_str()) else {
            return false;
        };
        let mut recent = seen
            .iter()
            .filter(|(_, s)| *s <= at && at - *s <= cap)
            .peekable();
        recent.peek().is_some() && recent.all(|&(cause, _)| g.independent(cause, effect))
    }

    /// The propagation window for a link passing `silent` CIs that are not alerting (an
    /// alerting CI in between restarts the clock: it is itself the nearer cause).
    pub fn window(&self, silent: u32) -> Duration {
        self.grown(self.cfg.window, silent)
    }

    /// The propagation window of the link `step` reaches its CI by: `window`, or with
    /// `window = "auto"` the window learned for the relation type of the link's last hop
    /// (into the explaining CI, where the fault starts spreading), grown as `window`.
    pub fn link_window(&self, topo: &Topology, step: &Step) -> Duration {
        let cfg = self.cfg;
        let base = if cfg.relation_window.is_empty() {
            cfg.window
        } else {
            topo.relation_type(step.via, step.node)
                .and_then(|r| cfg.relation_window.get(r))
                .copied()
                .unwrap_or(cfg.window)
        };
        self.grown(base, step.silent)
    }

    /// `base` grown by `hop_window` per silent CI, at most `max_window`.
    fn grown(&self, base: Duration, silent: u32) -> Duration {
        let cfg = self.cfg;
        let extra = cfg.hop_window * (silent.min(64) as i32);
        (base + extra).min(cfg.max_window.max(base))
    }
}

/// A CI reached by a link walk: how far, from which CI, and how good the link is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Step {
    pub node: Node,
    pub hops: u32,
    pub via: Node,
    pub score: f64,
    /// CIs on the path, strictly between the start and `node`, that are not alerting.
    pub silent: u32,
}

impl Step {
    /// Fewer silent CIs first, then a higher score.
    fn beats(&self, silent: u32, score: f64) -> bool {
        (self.silent, -self.score) < (silent, -score)
    }
}

/// What `start` depends on, nearest first, with the best link to each: a link through
/// CIs that are not alerting loses score at each (their fan-out lowers it most) and ends
/// below `min_link_score` or past `max_silent_hops` of them. At most `WALK_BUDGET` edges.
pub(super) fn link_walk(view: &View, topo: &Topology, start: Node) -> Vec<Step> {
    let cfg = view.cfg;
    let mut seen = Seen::default();
    let mut out: Vec<Step> = Vec::new();
    let mut frontier: SmallVec<[(Node, f64, u32); 8]> = SmallVec::from_elem((start, 1.0, 0), 1);
    let mut hops = 0;
    let mut work = 0usize;
    while !frontier.is_empty() && hops < cfg.max_hops && work < WALK_BUDGET {
        hops += 1;
        let mut next = SmallVec::new();
        for (n, score, silent) in frontier {
            // Passing `n` on the way up: a CI showing no sign of the fault weakens the link.
            let (score, silent) = if n != start && view.silent(topo, n) {
                (score * view.silent_factor(topo, n), silent + 1)
            } else {
                (score, silent)
            };
            if silent > cfg.max_silent_hops || score < cfg.min_link_score {
                continue;
            }
            for &p in topo.depends_on(n) {
                work += 1;
                if p == start || work > WALK_BUDGET {
                    continue;
                }
                let step = Step {
                    node: p,
                    hops,
                    via: n,
                    score,
                    silent,
                };
                match seen.get(&p) {
                    Some(&i) => {
                        let old = &mut out[i as usize];
                        if !step.beats(old.silent, old.score) {
                            continue;
                        }
                        *old = step;
                    }
                    None => {
                        seen.insert(p, out.len() as u32);
                        out.push(step);
                    }
                }
                next.push((p, score, silent));
            }
        }
        frontier = next;
    }
    out
}

/// Nodes a walk reached, with a number each (an index). Most walks reach a handful of
/// CIs (a host, its switch, their uplinks): those are scanned on the stack; a large walk
/// moves to a hash map.
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

    #[cfg(test)]
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
    let via: HashMap<Node, Node> = walk.iter().map(|r| (r.node, r.via)).collect();
    path_by(topo, &via, walk.len(), from, to)
}

fn path_by(
    topo: &Topology,
    via: &HashMap<Node, Node>,
    len: usize,
    from: Node,
    to: Node,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![topo.ci(from).id.clone()]);
    }
    let mut out = vec![topo.ci(to).id.clone()];
    let mut cur = to;
    while cur != from {
        cur = *via.get(&cur)?;
        out.push(topo.ci(cur).id.clone());
        if out.len() > len + 1 {
            return None;
        }
    }
    out.reverse();
    Some(out)
}

/// The path of a link walk from `from` to `to`, and the CIs on it that are not alerting.
fn link_path(
    view: &View,
    topo: &Topology,
    walk: &[Step],
    from: Node,
    to: Node,
) -> (Vec<String>, Vec<String>) {
    let via: HashMap<Node, Node> = walk.iter().map(|r| (r.node, r.via)).collect();
    let path = path_by(topo, &via, walk.len(), from, to).unwrap_or_default();
    let n = path.len();
    let silent = path
        .iter()
        .enumerate()
        .filter(|(i, id)| *i > 0 && *i + 1 < n && view.firing_on(id) == 0)
        .map(|(_, id)| id.clone())
        .collect();
    (path, silent)
}

/// How long after its cause an effect may start by `link`: its lag p90, at most
/// `median_factor` times its median, never less than `window` nor more than `cap`.
fn stretch(link: &LearnedLink, g: &CausalIndex, window: Duration, cap: Duration) -> Duration {
    let s = link
        .p90_s
        .min(g.uses.median_factor * link.median_s)
        .max(1.0);
    Duration::seconds(s.ceil().min(1e9) as i64)
        .max(window)
        .min(cap)
}

/// A learned edge backing a link: the edge, when its cause type started on the
/// explaining CI, and how long after that the effect may start (the edge's lag p90,
/// within the propagation window and `max_window`).
#[derive(Clone, Copy, Debug)]
pub(super) struct EdgeUse<'a> {
    link: &'a LearnedLink,
    cause_started: DateTime<Utc>,
    window: Duration,
    /// Whether edges stretch windows (`Uses::extend`).
    extend: bool,
    /// Whether an edge makes its candidate win ties (`Uses::prefer`).
    prefer: bool,
}

impl EdgeUse<'_> {
    /// Whether an alert starting at `at` may link, by this edge, to a CI whose first
    /// alert in the incident was at `first`: both that first alert and the cause type's
    /// start are within the edge's lag before it (an incident that began long before is
    /// not stretched to, however recently the cause type fired again in it).
    fn allows_from(&self, first: DateTime<Utc>, at: DateTime<Utc>, window: Duration) -> bool {
        self.extend
            && self.cause_started <= at
            && at - self.cause_started <= self.window
            && at - self.window <= first
            && first <= at + window
    }
}

/// A candidate link to an incident.
#[derive(Clone, Copy)]
struct Cand<'a> {
    silent: u32,
    hops: u32,
    first: DateTime<Utc>,
    id: &'a str,
    via: Node,
    score: f64,
    /// The learned edge backing it, if any (never without a graph).
    learned: Option<EdgeUse<'a>>,
}

impl Cand<'_> {
    /// Fewer silent CIs, then nearer, then one a learned edge backs, then earlier.
    fn before(&self, other: &Option<Cand>) -> bool {
        other.as_ref().is_none_or(|o| {
            let backed = |c: &Cand| c.learned.is_some_and(|e| e.prefer);
            (self.silent, self.hops, !backed(self), self.first)
                < (o.silent, o.hops, !backed(o), o.first)
        })
    }
}

/// Whether an active incident other than `prev` holds a CI that `c` is or depends on
/// (a link scoring as in `place`) and that first alerted there after `ended` and within
/// the propagation window before `at`: a cause newer than the alert's last occurrence.
fn newer_cause(
    view: &View,
    topo: &Topology,
    c: Node,
    prev: &str,
    ended: DateTime<Utc>,
    at: DateTime<Utc>,
) -> bool {
    let cfg = view.cfg;
    let walk = link_walk(view, topo, c);
    let own = Step {
        node: c,
        hops: 0,
        via: c,
        silent: 0,
        score: 1.0,
    };
    std::iter::once(&own).chain(walk.iter()).any(|r| {
        let score = if r.silent > 0 {
            r.score * view.fan(topo, r.node)
        } else {
            r.score
        };
        score >= cfg.min_link_score
            && view
                .active_on_ci(&topo.ci(r.node).id)
                .iter()
                .any(|&(id, first)| {
                    id != prev
                        && first >= ended
                        && first <= at
                        && at - view.link_window(topo, r) <= first
                })
    })
}

/// Decides where a new firing alert goes. Pure: the same view, topology, alert and time
/// give the same placement.
pub(super) fn place(
    view: &View,
    topo: &Topology,
    node: Option<Node>,
    rec: &AlertRecord,
    at: DateTime<Utc>,
) -> Placement {
    let cfg = view.cfg;
    // A re-fired alert goes back to its incident while that is active, and reopens it
    // when it resolved within the reopen window, unless trouble that began since it
    // ended explains it: like a new alert on an alerting CI, it follows the newer cause.
    let mut not_back: Option<String> = None;
    if let Some((prev, ended)) = view.refire_of
        && let Some(inc) = view.incidents.get(prev)
    {
        // Back into an active incident while what explained it still alerts (its root,
        // or for a suspected root the rest of it), or after a short gap (a flap).
        let cause_alerts = || match &inc.root_cause {
            Some(rc) if !rc.alerting => true,
            _ => inc
                .root_cause_ci
                .as_deref()
                .is_none_or(|r| view.firing_on(r) > 0),
        };
        let back = inc.status.is_active() && (at - ended <= cfg.window || cause_alerts());
        let reopen = inc.status == crate::incident::IncidentStatus::Resolved
            && inc.resolved_at.is_some_and(|r| at <= r + cfg.reopen_window);
        let onset = at - view.hold(rec);
        // Walked only when the alert would go back: the newer cause takes it instead, and
        // an incident that just opened on what depends on it makes it that incident's
        // late root (the fresh fault started with it).
        if back || reopen {
            let newer = node.is_some_and(|c| newer_cause(view, topo, c, prev, ended, at));
            let below = match node {
                // Not when the link goes both ways (a mesh): then neither is below.
                Some(c) if !newer => {
                    let mine = ancestors(view.memo, topo, c, cfg.max_hops);
                    late_roots(view, topo, c, onset, Some(prev))
                        .into_iter()
                        .find(|(_, id, _)| {
                            let root = view
                                .incidents
                                .get(id.as_str())
                                .and_then(|i| topo.node(i.root_cause_ci.as_deref()?));
                            root.is_some_and(|r| !mine.iter().any(|x| x.node == r))
                        })
                        .map(|(_, id, _)| id)
                }
                _ => None,
            };
            if let Some(fresh) = below {
                not_back = Some(format!(
                    "not back to {prev}: {fresh} opened just before on what depends on it"
                ));
            } else if !newer {
                if back {
                    return join(prev.into(), Vec::new(), Reason::rule(Rule::Refire));
                }
                return Placement {
                    action: Action::Reopen { id: prev.into() },
                    reason: Reason::rule(Rule::Refire),
                };
            }
        }
    }
    let mut p = place_new(view, topo, node, rec, at);
    p.reason.not_back = not_back;
    p
}

/// Where a firing alert goes when it does not go back to a previous incident (see
/// `place`).
fn place_new(
    view: &View,
    topo: &Topology,
    node: Option<Node>,
    rec: &AlertRecord,
    at: DateTime<Utc>,
) -> Placement {
    let cfg = view.cfg;
    let window = cfg.window;
    // Timing is judged on onsets: when the trouble behind an alert began, its start less
    // its rule's hold-back (`for:`). A rule that waits 15 minutes before firing does not
    // make its alert a fault of its own. With no holds known, the onset is the start.
    let onset = at - view.hold(rec);
    // Effects follow their cause within a propagation window, measured from when the
    // explaining CI first alerted in that incident, longer for a cause more hops away.
    let in_window =
        |first: DateTime<Utc>, reach: Duration| onset - reach <= first && first <= onset + window;
    let Some(c) = node else {
        return place_unknown(view, rec, at, onset);
    };
    let cid = topo.ci(c).id.as_str();

    // The suspected root of an active incident alerts: it is the confirmed root.
    for (id, _) in view.active_on_ci(cid) {
        if let Some(rc) = view.incidents.get(id).and_then(|i| i.root_cause.as_ref())
            && !rc.alerting
            && rc.ci_id == cid
        {
            return Placement {
                action: Action::Confirm { id: id.into() },
                reason: Reason::rule(Rule::ConfirmedRoot),
            };
        }
    }

    // The alert's learned type (`None` without a graph: every learned-edge test below
    // is then false, and placement is exactly as without this feature).
    let my_type = view.causal.and_then(|g| g.type_of(&rec.labels));
    // Cause precedes effect: the best alerting CI that `c` depends on (hop 0: itself).
    // A learned edge from a type on `c` to this alert's type stretches the window to the
    // edge's lag.
    let own_edge = view.learned_edge(topo, c, 0, 0, my_type, at);
    let own = view
        .active_on_ci(cid)
        .into_iter()
        .find(|(_, f)| {
            in_window(*f, view.window(0)) || own_edge.is_some_and(|e| e.allows_from(*f, at, window))
        })
        .map(|(id, first)| Cand {
            silent: 0,
            hops: 0,
            first,
            id,
            via: c,
            score: 1.0,
            learned: own_edge,
        });
    let walk = link_walk(view, topo, c);
    // A CI already alerting stays in its incident, unless something it depends on began
    // alerting, in another incident, after it did: a new alert on it is then the effect
    // of that newer trouble upstream, which its earlier alerts cannot have come from.
    let mut up: Option<Cand> = None;
    let mut newer: Option<Cand> = None;
    for r in walk.iter() {
        // The explaining CI need not fire at this instant: an alert that flaps or
        // clears for a minute while its incident goes on does not end the fault.
        // Its first alert there must still be within the window.
        let anchors = view.active_on_ci(&topo.ci(r.node).id);
        if anchors.is_empty() {
            continue;
        }
        // Through a monitoring gap, the CI linked to counts less the more of the estate
        // depends on it: under a hub, an unrelated alert in the same minutes is likely.
        let score = if r.silent > 0 {
            r.score * view.fan(topo, r.node)
        } else {
            r.score
        };
        if score < cfg.min_link_score {
            continue;
        }
        // Learned edges: one from a type on the linked CI to this alert's type extends
        // the window to the edge's lag; through a monitoring gap, a type pair history
        // shows unrelated gets no growth of the window per silent CI.
        let edge = view.learned_edge(topo, r.node, r.hops, r.silent, my_type, at);
        let unrelated = r.silent > 0 && view.independent_of(topo, r.node, my_type, at);
        let reach = view.link_window(topo, r);
        for (id, first) in anchors {
            // With no alert on the path to show the fault passing, the cause must also
            // have come first.
            let timely = in_window(first, reach)
                && !(r.silent > 0 && first > onset)
                && !(unrelated && first < onset - window);
            let learned_timely = edge.is_some_and(|e| e.allows_from(first, at, window));
            if !timely && !learned_timely {
                continue;
            }
            let cand = Cand {
                silent: r.silent,
                hops: r.hops,
                first,
                id,
                via: r.node,
                score,
                learned: edge,
            };
            if let Some(o) = &own
                && id != o.id
                && first > o.first
                && cand.before(&newer)
            {
                newer = Some(cand);
            }
            if cand.before(&up) {
                up = Some(cand);
            }
        }
    }
    let up = match own {
        Some(o) => newer.or(Some(o)),
        None => up,
    };

    // Late root: active incidents whose root depends on `c` and opened shortly before.
    let down = late_roots(view, topo, c, onset, up.as_ref().map(|u| u.id));

    match up {
        Some(u) => {
            let (path, silent) = if u.via == c {
                (Vec::new(), Vec::new())
            } else {
                link_path(view, topo, &walk, c, u.via)
            };
            let reason = Reason {
                rule: if u.hops == 0 {
                    Rule::SameCi
                } else {
                    Rule::Upstream
                },
                score: u.score,
                path: path.clone(),
                lag_seconds: Some((onset - u.first).num_seconds()),
                silent,
                learned: u.learned.map(|e| e.link.text.clone()),
                not_back: None,
            };
            Placement {
                action: Action::Join {
                    id: u.id.into(),
                    path,
                    reroot: false,
                    merge: down
                        .into_iter()
                        .map(|(_, id, _)| id)
                        .filter(|m| !view.kept_apart(u.id, m))
                        .collect(),
                    orphans: late_orphans(view, topo, c, onset, u.id)
                        .into_iter()
                        .filter(|(m, _)| !view.kept_apart(u.id, m))
                        .collect(),
                },
                reason,
            }
        }
        None if !down.is_empty() => {
            let mut ids = down.into_iter();
            let (first, reason) = match ids.next() {
                Some((_, id, reason)) => (id, reason),
                None => (String::new(), Reason::rule(Rule::LateRoot)),
            };
            let merge = ids
                .map(|(_, id, _)| id)
                .filter(|m| !view.kept_apart(&first, m))
                .collect();
            Placement {
                action: Action::Join {
                    id: first.into(),
                    path: Vec::new(),
                    reroot: true,
                    merge,
                    orphans: Vec::new(),
                },
                reason,
            }
        }
        None => match silent_root(view, topo, c, onset).or_else(|| orphan(view, topo, c, onset)) {
            Some(p) => p,
            None => Placement {
                action: Action::Open {
                    key: CorrelationKey::Ci(cid.to_string()),
                },
                reason: Reason::rule(Rule::Opened),
            },
        },
    }
}

/// Late root: the active incidents (other than `skip`) whose root depends on `c` (a link
/// scored as in `place`, from the root) and that opened within `late_root_window`
/// (grown by `hop_window` per silent CI) before `onset`, oldest first, with the reason
/// `c` would become their root.
fn late_roots(
    view: &View,
    topo: &Topology,
    c: Node,
    onset: DateTime<Utc>,
    skip: Option<&str>,
) -> Vec<(DateTime<Utc>, String, Reason)> {
    let cfg = view.cfg;
    let window = cfg.window;
    let cid = topo.ci(c).id.as_str();
    let mut down: Vec<(DateTime<Utc>, String, Reason)> = Vec::new();
    if topo.dependents(c).is_empty() {
        return down;
    }
    let late = cfg.late_root_window;
    let slack = cfg.max_window.max(window) - window;
    let mut roots: Vec<(DateTime<Utc>, &str, Node)> = view
        .open_by_key
        .values()
        .filter_map(|id| view.incidents.get(id))
        .filter(|i| onset <= i.opened_at + late + slack && i.root_cause_ci.as_deref() != Some(cid))
        .filter(|i| skip.is_none_or(|u| u != i.id))
        .filter_map(|i| {
            Some((
                view.incident_onset(i),
                i.id.as_str(),
                topo.node(i.root_cause_ci.as_deref()?)?,
            ))
        })
        .collect();
    if roots.len() > RECENT_LIMIT {
        roots.sort_by(|a, b| b.cmp(a));
        roots.truncate(RECENT_LIMIT);
    }
    for (opened, id, root) in roots {
        let from_root = link_walk(view, topo, root);
        if let Some(s) = from_root.iter().find(|s| s.node == c)
            && onset <= opened + late + (view.link_window(topo, s) - window)
            && (s.silent == 0 || s.score * view.fan(topo, c) >= cfg.min_link_score)
        {
            let (path, silent) = link_path(view, topo, &from_root, root, c);
            down.push((
                opened,
                id.to_string(),
                Reason {
                    rule: Rule::LateRoot,
                    score: if s.silent == 0 {
                        s.score
                    } else {
                        s.score * view.fan(topo, c)
                    },
                    path,
                    lag_seconds: Some((onset - opened).num_seconds()),
                    silent,
                    learned: None,
                    not_back: None,
                },
            ));
        }
    }
    down.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    down
}

/// An alert on no CI: alerts on the same unknown host belong together (the host stands
/// in for the CI it would be); else the same alert on many instances is one incident.
fn place_unknown(
    view: &View,
    rec: &AlertRecord,
    at: DateTime<Utc>,
    onset: DateTime<Utc>,
) -> Placement {
    let window = view.cfg.window;
    let (earliest, latest) = (onset - window, onset + window);
    if let Some(key) = crate::cmdb::topology::unmapped_key(&rec.labels)
        && let Some((id, first)) = view
            .active_on_ci(&key)
            .into_iter()
            .find(|(_, f)| earliest <= *f && *f <= latest)
    {
        let mut reason = Reason::rule(Rule::UnknownHost);
        reason.lag_seconds = Some((onset - first).num_seconds());
        return join(id.into(), Vec::new(), reason);
    }
    let ignore = &view.cfg.fallback_ignore_labels;
    let fp = Fingerprint::of_selected(&rec.labels, |k| !ignore.iter().any(|i| i == k));
    let key = CorrelationKey::Group(fp);
    // The group's incident is joined while it saw an alert within the window.
    let recent = |id: &String| {
        view.incidents
            .get(id)
            .is_some_and(|i| at <= i.updated_at + window)
    };
    match view.open_by_key.get(&key).filter(|id| recent(id)) {
        Some(id) => join(
            id.as_str().into(),
            Vec::new(),
            Reason::rule(Rule::SameAlert),
        ),
        None => Placement {
            action: Action::Open { key },
            reason: Reason::rule(Rule::Opened),
        },
    }
}

/// Incidents whose roots share a silent dependency, with when each opened.
type Siblings<'a> = Vec<(DateTime<Utc>, &'a Incident)>;

/// Silent-root inference for an alert on `c` that nothing alerting explains: incidents
/// opened within the propagation window whose roots share with `c` a dependency that is
/// not alerting. The nearest such CI of each is a candidate; the best-supported candidate
/// (see the module docs) becomes the suspected root of them all. `at` is the alert's onset.
fn silent_root(view: &View, topo: &Topology, c: Node, at: DateTime<Utc>) -> Option<Placement> {
    let cfg = view.cfg;
    if !cfg.silent_roots {
        return None;
    }
    let mine = ancestors(view.memo, topo, c, cfg.max_hops);
    if mine.is_empty() {
        return None;
    }
    let horizon = at - cfg.window;
    let mut recent: Vec<(DateTime<Utc>, &Incident, Node)> = view
        .open_by_key
        .values()
        .filter_map(|id| view.incidents.get(id))
        .filter(|i| horizon <= i.opened_at)
        .map(|i| (view.incident_onset(i), i))
        .filter(|(o, _)| horizon <= *o && *o <= at)
        .filter_map(|(o, i)| Some((o, i, topo.node(i.root_cause_ci.as_deref()?)?)))
        .filter(|(_, _, r)| *r != c)
        .collect();
    let hops_from_c: HashMap<Node, u32> = mine.iter().map(|r| (r.node, r.hops)).collect();
    // A root that `c` depends on, or that depends on `c`, was not linked to it for its
    // timing or score: a fault of its own, not a sibling symptom.
    recent.retain(|(_, _, r)| {
        !hops_from_c.contains_key(r)
            && !ancestors(view.memo, topo, *r, cfg.max_hops)
                .iter()
                .any(|x| x.node == c)
    });
    if recent.is_empty() {
        return None;
    }
    if recent.len() > RECENT_LIMIT {
        recent.sort_by(|a, b| (b.0, &b.1.id).cmp(&(a.0, &a.1.id)));
        recent.truncate(RECENT_LIMIT);
    }
    let silent = |n: Node| view.silent(topo, n) && view.active_on_ci(&topo.ci(n).id).is_empty();
    // Per candidate root: how likely none of its symptoms came from it (the product of
    // `1 - f` over them), and the incidents.
    let mut cands: Vec<(Node, f64, Siblings)> = Vec::new();
    for (opened, inc, r) in recent {
        let theirs = ancestors(view.memo, topo, r, cfg.max_hops);
        // The nearest common dependency that is not alerting; ties: the smaller fan-out.
        let mut best: Option<(u32, u32, Node, u32, u32)> = None;
        for rr in theirs.iter() {
            let Some(&hc) = hops_from_c.get(&rr.node) else {
                continue;
            };
            if !silent(rr.node) {
                continue;
            }
            let key = (
                hc + rr.hops,
                view.fanout(topo, rr.node),
                rr.node,
                hc,
                rr.hops,
            );
            if best.is_none_or(|b| (key.0, key.1, key.2) < (b.0, b.1, b.2)) {
                best = Some(key);
            }
        }
        let Some((_, _, s, hc, hr)) = best else {
            continue;
        };
        // Symptoms of one cause start close together: within `window` of each other.
        if opened < at - cfg.window {
            continue;
        }
        // Each CI between a symptom and `s` shows nothing either: strong evidence
        // against, as the CIs nearest a fault are the likeliest to show it.
        let f = view.fan(topo, s) * cfg.root_gap_weight.powi((hc + hr).saturating_sub(2) as i32);
        // One symptom per incident: its other CIs are explained by its root.
        let miss = 1.0 - f;
        match cands.iter_mut().find(|x| x.0 == s) {
            Some(x) => {
                x.1 *= miss;
                x.2.push((opened, inc));
            }
            None => cands.push((s, miss, vec![(opened, inc)])),
        }
    }
    let mut best: Option<(f64, Node, Siblings)> = None;
    for (s, miss, incs) in cands {
        let support = 1.0 - miss;
        if support < cfg.min_root_support {
            continue;
        }
        // A fault on `s` reaches most of what depends on it directly: a few symptoms
        // under a CI with many direct dependents are more likely independent faults.
        let direct = topo.dependents(s).len() as f64;
        let need = (cfg.min_root_share * direct).ceil().max(2.0);
        if ((incs.len() + 1) as f64) < need {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|b| support > b.0 || (support == b.0 && s < b.1))
        {
            best = Some((support, s, incs));
        }
    }
    let (score, s, mut incs) = best?;
    incs.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    let first = incs.first()?.0;
    let mut ids = incs.into_iter().map(|(_, i)| i.id.clone());
    let id = ids.next()?;
    let merge = ids.filter(|m| !view.kept_apart(&id, m)).collect();
    let path = path_in(topo, &mine, c, s).unwrap_or_default();
    let silent_on_path = path
        .iter()
        .skip(1)
        .filter(|id| view.firing_on(id) == 0)
        .cloned()
        .collect();
    Some(Placement {
        action: Action::Suspect {
            id: id.into(),
            root: s,
            path: path.clone(),
            merge,
        },
        reason: Reason {
            rule: Rule::SilentRoot,
            score,
            path,
            lag_seconds: Some((at - first).num_seconds()),
            silent: silent_on_path,
            learned: None,
            not_back: None,
        },
    })
}

/// An orphan (a CI whose uplink the CMDB most likely lost, see `View::orphan`) that
/// nothing explains: it joins the active incident that began within `window` before its
/// onset and whose root, or a CI of it directly under the root, has the most CIs of the
/// orphan's type directly under it alerting in it (at least `ORPHAN_MIN_SIBLINGS`): a
/// switch whose hosts all alert is the likeliest cause of one more host alerting in the
/// same minutes, the one whose link is missing. Ties: the later incident. `at` is the
/// alert's onset. Bounded: `RECENT_LIMIT` incidents, `ORPHAN_SCAN` dependents of a root,
/// about `WALK_BUDGET` dependents of its CIs.
fn orphan(view: &View, topo: &Topology, c: Node, at: DateTime<Utc>) -> Option<Placement> {
    orphan_home(view, topo, c, at, None)
}

/// The orphan rule's search for `c` alerting at `at`, counting `joining` (an incident
/// and a CI about to join it) as alerting there already.
fn orphan_home(
    view: &View,
    topo: &Topology,
    c: Node,
    at: DateTime<Utc>,
    joining: Option<(&str, Node)>,
) -> Option<Placement> {
    let cfg = view.cfg;
    if !cfg.orphan_links || !view.orphan(topo, c) {
        return None;
    }
    let ty = topo.ci(c).ci_type.as_deref()?;
    let horizon = at - cfg.window;
    let mut recent: Vec<(DateTime<Utc>, &Incident, Node)> = view
        .open_by_key
        .values()
        .filter_map(|id| view.incidents.get(id))
        .filter(|i| i.status.is_active() && horizon <= i.opened_at)
        .map(|i| (view.incident_onset(i), i))
        .filter(|(o, _)| horizon <= *o && *o <= at)
        .filter_map(|(o, i)| Some((o, i, topo.node(i.root_cause_ci.as_deref()?)?)))
        .filter(|(_, _, r)| *r != c)
        .collect();
    if recent.len() > RECENT_LIMIT {
        recent.sort_by(|a, b| (b.0, &b.1.id).cmp(&(a.0, &a.1.id)));
        recent.truncate(RECENT_LIMIT);
    }
    let mut best: Option<(usize, DateTime<Utc>, &Incident, Node, Node)> = None;
    let mut work = 0usize;
    for (onset, inc, r) in recent {
        if work > WALK_BUDGET {
            break;
        }
        let in_inc = |n: Node| {
            joining.is_some_and(|(id, j)| j == n && id == inc.id.as_str())
                || view
                    .active_on_ci(&topo.ci(n).id)
                    .iter()
                    .any(|(id, _)| *id == inc.id.as_str())
        };
        // The CI under which the orphan's peers alert: the root, or a CI of the incident
        // directly under it (a core switch's ToRs under the router that failed).
        let mut parents: SmallVec<[Node; 8]> = SmallVec::from_elem(r, 1);
        for &d in topo.dependents(r).iter().take(ORPHAN_SCAN) {
            if d != c && in_inc(d) {
                parents.push(d);
            }
        }
        for p in parents {
            // Peers directly under `p`, or one CI further down through a CI alerting in
            // the incident: a database whose host link was lost has its peers each on a
            // host of their own under the failed switch.
            let mut siblings = 0;
            for &d in topo.dependents(p).iter().take(ORPHAN_SCAN) {
                work += 1;
                if d == c || !in_inc(d) {
                    continue;
                }
                if topo.ci(d).ci_type.as_deref() == Some(ty) {
                    siblings += 1;
                    continue;
                }
                for &e in topo.dependents(d).iter().take(ORPHAN_SCAN) {
                    work += 1;
                    if e != c && topo.ci(e).ci_type.as_deref() == Some(ty) && in_inc(e) {
                        siblings += 1;
                    }
                }
            }
            if siblings >= ORPHAN_MIN_SIBLINGS
                && best
                    .as_ref()
                    .is_none_or(|b| (siblings, onset, &inc.id, p) > (b.0, b.1, &b.2.id, b.3))
            {
                best = Some((siblings, onset, inc, p, r));
            }
            if work > WALK_BUDGET {
                break;
            }
        }
    }
    let (siblings, onset, inc, p, r) = best?;
    let mut path = vec![topo.ci(c).id.clone(), topo.ci(p).id.clone()];
    if p != r {
        path.push(topo.ci(r).id.clone());
    }
    Some(Placement {
        action: Action::Join {
            id: inc.id.as_str().into(),
            path: path.clone(),
            reroot: false,
            merge: Vec::new(),
            orphans: Vec::new(),
        },
        reason: Reason {
            rule: Rule::Orphan,
            // Siblings seen against one more: two give 2/3, ten 10/11.
            score: siblings as f64 / (siblings as f64 + 1.0),
            path,
            lag_seconds: Some((at - onset).num_seconds()),
            silent: Vec::new(),
            learned: None,
            not_back: None,
        },
    })
}

/// Orphans that alerted before their peers: the incidents an orphan of `c`'s type opened
/// within `window` before `onset` (nothing explained it then, and fewer than
/// `ORPHAN_MIN_SIBLINGS` of its peers were alerting yet) that the orphan rule sends to
/// `target` once `c` joins it. A host whose uplink the CMDB lost often alerts a few
/// seconds before its rack mates: it should not stay a ticket of its own once they have.
/// Bounded like the orphan rule, over at most `RECENT_LIMIT` incidents.
fn late_orphans(
    view: &View,
    topo: &Topology,
    c: Node,
    onset: DateTime<Utc>,
    target: &str,
) -> Vec<(String, Node)> {
    let cfg = view.cfg;
    let Some(ty) = topo
        .ci(c)
        .ci_type
        .as_deref()
        .filter(|ty| cfg.orphan_links && view.orphans_possible(topo, ty))
    else {
        return Vec::new();
    };
    let horizon = onset - cfg.window;
    let mut found: Vec<(DateTime<Utc>, &str, Node)> = view
        .open_by_key
        .values()
        .filter_map(|id| view.incidents.get(id))
        .filter(|i| i.status.is_active() && i.id != target)
        .filter(|i| horizon <= i.opened_at && i.opened_at <= onset)
        .filter_map(|i| Some((i, topo.node(i.root_cause_ci.as_deref()?)?)))
        .filter(|(_, r)| *r != c && topo.ci(*r).ci_type.as_deref() == Some(ty))
        .map(|(i, r)| (view.incident_onset(i), i.id.as_str(), r))
        .collect();
    if found.len() > RECENT_LIMIT {
        found.sort_by(|a, b| b.cmp(a));
        found.truncate(RECENT_LIMIT);
    }
    found.sort();
    found
        .into_iter()
        .filter_map(|(at, id, r)| {
            let p = orphan_home(view, topo, r, at, Some((target, c)))?;
            match p.action {
                Action::Join { id: home, .. } if home.as_str() == target => {
                    Some((id.to_string(), topo.node(p.reason.path.get(1)?)?))
                }
                _ => None,
            }
        })
        .collect()
}

fn join(id: CompactString, path: Vec<String>, reason: Reason) -> Placement {
    Placement {
        action: Action::Join {
            id,
            path,
            reroot: false,
            merge: Vec::new(),
            orphans: Vec::new(),
        },
        reason,
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
            // Lowered later, as a walk does when it finds a better path.
            seen.insert(n, n);
            assert!(matches!(seen, Seen::Few(_)) == (n < 16), "at {n}");
        }
        for n in 0..40u32 {
            assert_eq!(seen.get(&n), Some(&n));
        }
        assert!(!seen.contains_key(&40));
    }
}
