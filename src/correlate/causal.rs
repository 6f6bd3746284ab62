//! The learned causality graph as correlation reads it: alert type pairs → edge, compiled
//! once from a [`Learned`] graph so that placing an alert costs a few hash lookups.
//!
//! What it is for: letting the grouping policy (`policy.rs`) ask "did history show that
//! this alert's type follows a type that is firing on the CI it would link to, and with
//! what lag?" and "did history show these two types to be unrelated?". What it must not
//! do: learn, read files or the clock, or decide placements itself; with no graph (none,
//! or one with no edges) the engine holds no index and correlation is exactly as without
//! this feature.
//!
//! An alert's type is computed as the learner computes it (`[causality] type_labels`:
//! the values of those labels the alert has, joined with `/`); a type that is in no
//! learned edge is not interned (it can neither strengthen nor weaken a link).

use std::collections::HashMap;

use crate::alert::Labels;
use crate::causality::{Learned, Scope};

/// Least support (hits summed over its edges) for a type to be "well known": a pair of
/// well-known types with no edge either way is judged independent. Below it, history is
/// too thin to say that a missing edge means anything.
pub const JUDGE_SUPPORT: u64 = 20;

/// One learned edge, as placement uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedLink {
    pub scope: Scope,
    /// The edge's lift.
    pub lift: f64,
    pub support: u64,
    pub median_s: f64,
    pub p90_s: f64,
    /// The sentence a placement's reason quotes.
    pub text: String,
}

/// Which uses of the graph placement makes, and how far an edge may stretch a window.
/// The defaults were chosen on the learned-causality harness (`sift-eval
/// --learn-causality`: the grid, Nezha, telecom-24v) as the least restrictive that did
/// no harm on any of them; the harness can turn each use off (`LC_OFF`, see
/// docs/correlation-eval.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uses {
    /// An edge stretches a link's window to its lag.
    pub extend: bool,
    /// Same-CI edges are used too (not only across a relation).
    pub same_ci: bool,
    /// A candidate an edge backs wins over one at the same distance no edge backs.
    pub prefer: bool,
    /// Unrelated pairs get no window growth through silent CIs.
    pub weaken: bool,
    /// Least support of an edge that stretches a window (its lag percentiles are
    /// estimated from that many lags; a thinner edge is still quoted).
    pub extend_support: u64,
    /// An edge stretches the window to its lag p90, but to no more than this many times
    /// its median lag (a long tail of few late hits is not a lag).
    pub median_factor: f64,
    /// Least lift (the edge's score: hits over the hits chance would give) of an edge
    /// that stretches a window: at a low lift most hits are coincidence, and a late
    /// alert joined by it would be too.
    pub extend_lift: f64,
}

impl Default for Uses {
    fn default() -> Self {
        Uses {
            extend: true,
            same_ci: true,
            prefer: true,
            weaken: true,
            extend_support: 0,
            median_factor: 3.0,
            extend_lift: 4.0,
        }
    }
}

/// A learned graph compiled for correlation (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct CausalIndex {
    pub uses: Uses,
    type_labels: Vec<String>,
    types: HashMap<String, u32>,
    /// (cause, effect) → edge.
    edges: HashMap<(u32, u32), LearnedLink>,
    /// Per type: total support over the edges it is in.
    support: Vec<u64>,
}

impl CausalIndex {
    /// Compiles `learned`'s edges; alert types are made from `type_labels` (the learner's
    /// `[causality] type_labels`, by default `["alertname"]`).
    pub fn new(learned: &Learned, type_labels: &[String]) -> Self {
        let mut ix = CausalIndex {
            type_labels: type_labels.to_vec(),
            ..Default::default()
        };
        for e in &learned.edges {
            let a = ix.intern(&e.cause);
            let b = ix.intern(&e.effect);
            ix.support[a as usize] += e.support;
            if a != b {
                ix.support[b as usize] += e.support;
            }
            let link = LearnedLink {
                scope: e.scope,
                lift: e.score,
                support: e.support,
                median_s: e.lag_seconds.median,
                p90_s: e.lag_seconds.p90,
                text: format!(
                    "learned: {} → {}, seen {} times, median lag {:.0} s",
                    e.cause, e.effect, e.support, e.lag_seconds.median
                ),
            };
            // One edge per ordered pair: the learner gives at most one; keep the
            // better-supported if a hand-made graph repeats a pair.
            match ix.edges.get(&(a, b)) {
                Some(old) if old.support >= link.support => {}
                _ => {
                    ix.edges.insert((a, b), link);
                }
            }
        }
        ix
    }

    fn intern(&mut self, t: &str) -> u32 {
        if let Some(&i) = self.types.get(t) {
            return i;
        }
        let i = self.support.len() as u32;
        self.types.insert(t.to_string(), i);
        self.support.push(0);
        i
    }

    /// Whether the graph has no edge (such a graph changes nothing).
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    /// The type of an alert with `labels`, when it is a type of some learned edge.
    pub fn type_of(&self, labels: &Labels) -> Option<u32> {
        let mut parts = self
            .type_labels
            .iter()
            .filter_map(|l| labels.get(l.as_str()));
        let first = parts.next()?;
        match parts.next() {
            None => self.types.get(first).copied(),
            Some(second) => {
                let mut s = String::with_capacity(first.len() + second.len() + 16);
                s.push_str(first);
                s.push('/');
                s.push_str(second);
                for p in parts {
                    s.push('/');
                    s.push_str(p);
                }
                self.types.get(&s).copied()
            }
        }
    }

    /// The learned edge `cause → effect` seen in `scope`.
    pub fn edge(&self, cause: u32, effect: u32, scope: Scope) -> Option<&LearnedLink> {
        self.edges
            .get(&(cause, effect))
            .filter(|e| e.scope == scope)
    }

    /// Whether history shows `a` and `b` unrelated: both are well known (in learned
    /// edges with at least `JUDGE_SUPPORT` hits between them), they differ, and no edge
    /// links them either way, in any scope.
    pub fn independent(&self, a: u32, b: u32) -> bool {
        let known = |t: u32| {
            self.support
                .get(t as usize)
                .is_some_and(|&s| s >= JUDGE_SUPPORT)
        };
        a != b
            && known(a)
            && known(b)
            && !self.edges.contains_key(&(a, b))
            && !self.edges.contains_key(&(b, a))
    }
}
