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

use chrono::Duration;

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
    pub support: u64,
    pub median_s: f64,
    pub p90_s: f64,
    /// How long after the cause an effect may start and still be linked by this edge:
    /// the edge's lag p90, at least 1 s (the engine bounds it by the propagation window
    /// and `max_window`).
    pub window: Duration,
    /// The sentence a placement's reason quotes.
    pub text: String,
}

/// A learned graph compiled for correlation (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct CausalIndex {
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
            let p90 = e.lag_seconds.p90.max(1.0);
            let link = LearnedLink {
                scope: e.scope,
                support: e.support,
                median_s: e.lag_seconds.median,
                p90_s: e.lag_seconds.p90,
                window: Duration::seconds(p90.ceil().min(1e9) as i64),
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
        self.edges.get(&(cause, effect)).filter(|e| e.scope == scope)
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
