//! Learned causality: from a history of alerts and the CMDB, which alert types follow which
//! along the topology more often than chance, and with what lag.
//!
//! What it is for: turning years of "X on a host is followed by Y on its app within a
//! minute" into edges an operator can read and check (`sift causality learn`), and that
//! correlation can later use as evidence. What it must not do: I/O, the wall clock (only
//! event time), or take a score threshold from outside: which pairs are causal is decided
//! by the significance rule below, whose only settings are the lag window and the
//! false-discovery rate.
//!
//! # The rule
//!
//! An *occurrence* is an alert type (the alert name by default) starting on a CI at a
//! time (re-sends of one alert, same type, CI and start, count once). For an ordered pair
//! of types `a → b`, each occurrence of `a` on CI `d` is looked at once per CI `c` in its
//! scope (`d` itself, and every CI one relation away in either direction): it is a *hit*
//! when `b` starts on `c` within `(t, t + window]`. Strictly after: a cause precedes its
//! effect, and two types raised in the same second give no direction.
//!
//! The null model is independent Poisson processes per type and CI, each at its average
//! rate over the history (`λ_b(c) = n_b(c) / span`, the span counting only the days
//! with occurrences: gaps and clock jumps add nothing): under it a look at `(d, c)` is a hit
//! with probability `1 - exp(-λ_b(c) · window)`, and the expected hits of `a → b` are the
//! sum of those over all of `a`'s looks. The hits are compared with that expectation by
//! the Poisson upper tail (conservative for a sum of Bernoulli trials, whose variance is
//! smaller), and Benjamini–Hochberg controls the false-discovery rate over every pair
//! that could have been seen (every ordered pair of types that meet in some scope).
//!
//! Orientation: when both `a → b` and `b → a` pass, the one with the larger lift
//! (`(hits + 1) / (expected + 1)`: how much more often than chance the effect follows)
//! is kept. A cause that reliably brings its effect lifts it far above the effect's own
//! rate; the reverse direction mostly inherits that excess diluted by the effect's other
//! causes. The lag asymmetry alone (is `b` more often after `a` than before it?) pointed
//! the wrong way on one of the two real data sets and is not used.
//!
//! # Bounds
//!
//! Memory is the occurrences (16 bytes each) plus one accumulator per ordered type pair
//! that meets in some scope (about 40 bytes, and a lag histogram of `LAG_BINS` counters
//! once the pair has a hit). The pairs are bounded by keeping only the `max_types` most
//! frequent types (ties by name): with 10^5 distinct alert names and the default 500,
//! at most 250,000 pairs (under 80 MB in the worst case where every pair meets); the
//! occurrences of the other types are dropped and counted in the summary
//! (`dropped_types`, `dropped_occurrences`). A type with fewer than `MIN_OCCURRENCES`
//! can never pass and is not kept either.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertStatus};
use crate::cmdb::{CiMapper, Topology};
use crate::problem::significance::{bh, poisson_sf};

pub mod holds;
pub mod lags;
pub mod overrides;

/// Counters of the lag histogram per pair (linear over the window).
pub const LAG_BINS: usize = 64;
/// The unit of covered time (see `learn`).
const DAY: i64 = 86_400;
/// A type seen fewer times than this cannot make a significant pair and is not kept.
pub const MIN_OCCURRENCES: usize = 3;

/// `[causality]`: how history is read and judged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LearnConfig {
    /// Longest lag from a cause to its effect, in seconds.
    pub window_s: i64,
    /// False-discovery rate over all type pairs tested.
    pub fdr: f64,
    /// Only the most frequent types are learned (bounds memory; see the module doc).
    pub max_types: usize,
    /// Labels whose values, joined with `/`, make an alert's type.
    pub type_labels: Vec<String>,
}

impl Default for LearnConfig {
    fn default() -> Self {
        Self {
            window_s: 600,
            fdr: 0.01,
            max_types: 500,
            type_labels: vec!["alertname".into()],
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LearnError {
    #[error("window_s must be at least 1 second, got {0}")]
    Window(i64),
    #[error("fdr must be in (0, 1), got {0}")]
    Fdr(f64),
    #[error("max_types must be at least 2, got {0}")]
    MaxTypes(usize),
    #[error("type_labels must name at least one label")]
    TypeLabels,
}

impl LearnConfig {
    pub fn validate(&self) -> Result<(), LearnError> {
        if self.window_s < 1 {
            return Err(LearnError::Window(self.window_s));
        }
        if !(self.fdr > 0.0 && self.fdr < 1.0) {
            return Err(LearnError::Fdr(self.fdr));
        }
        if self.max_types < 2 {
            return Err(LearnError::MaxTypes(self.max_types));
        }
        if self.type_labels.is_empty() {
            return Err(LearnError::TypeLabels);
        }
        Ok(())
    }
}

/// Where an edge was seen: on one CI, or across a relation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    SameCi,
    Neighbour,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Lag {
    pub median: f64,
    pub p90: f64,
}

/// A learned edge: `effect` follows `cause` more often than chance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Edge {
    pub cause: String,
    pub effect: String,
    /// Lift: hits over the hits expected by chance (1 = chance).
    pub score: f64,
    /// Hits: occurrences of the cause followed by the effect in scope within the window.
    pub support: u64,
    pub expected: f64,
    /// Benjamini–Hochberg adjusted p-value.
    pub q_value: f64,
    pub lag_seconds: Lag,
    /// Where most hits were.
    pub scope: Scope,
}

/// What the learner saw and did, for the operator (and for "learns nothing, because").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub occurrences: usize,
    pub types: usize,
    pub cis: usize,
    pub span_seconds: i64,
    pub pairs_tested: usize,
    pub dropped_types: usize,
    pub dropped_occurrences: usize,
    /// Alerts with none of the type labels, or whose CI no label names.
    pub unusable_alerts: usize,
    /// Why nothing could be learned, when so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Learned {
    pub edges: Vec<Edge>,
    pub summary: Summary,
    /// Rule hold-backs (`holds`), learned when alert types are alert names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<holds::Hold>,
    /// Propagation windows per relation type (`lags`), learned with the topology at hand
    /// (the daemon's learning run); what `window = "auto"` uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<lags::RelationWindow>,
}

/// A history of occurrences over interned types and CIs, with each CI's neighbours.
#[derive(Debug, Default)]
pub struct History {
    types: Vec<String>,
    type_ix: HashMap<String, u32>,
    cis: Vec<String>,
    ci_ix: HashMap<String, u32>,
    neighbours: Vec<Vec<u32>>,
    /// What each CI depends on directly (one relation up).
    upstream: Vec<Vec<u32>>,
    /// (type, ci, start in seconds)
    occ: Vec<(u32, u32, i64)>,
    unusable: usize,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    fn ci(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.ci_ix.get(id) {
            return i;
        }
        let i = self.cis.len() as u32;
        self.cis.push(id.to_string());
        self.ci_ix.insert(id.to_string(), i);
        self.neighbours.push(Vec::new());
        self.upstream.push(Vec::new());
        i
    }

    /// Every relation of `topo`, in both directions (one relation apart either way).
    pub fn with_topology(mut self, topo: &Topology) -> Self {
        let ids: Vec<String> = topo.all_cis().map(|c| c.id.clone()).collect();
        for id in &ids {
            let Some(n) = topo.node(id) else { continue };
            let a = self.ci(id);
            for &m in topo.depends_on(n) {
                let b = self.ci(&topo.ci(m).id);
                if a != b {
                    self.neighbours[a as usize].push(b);
                    self.neighbours[b as usize].push(a);
                    self.upstream[a as usize].push(b);
                }
            }
        }
        for n in self.neighbours.iter_mut().chain(self.upstream.iter_mut()) {
            n.sort_unstable();
            n.dedup();
        }
        self
    }

    /// One occurrence of `kind` starting on CI `ci` at `at` (seconds, event time).
    pub fn push(&mut self, kind: &str, ci: &str, at: i64) {
        let k = match self.type_ix.get(kind) {
            Some(&k) => k,
            None => {
                let k = self.types.len() as u32;
                self.types.push(kind.to_string());
                self.type_ix.insert(kind.to_string(), k);
                k
            }
        };
        let c = self.ci(ci);
        self.occ.push((k, c, at));
    }

    /// A firing alert as an occurrence: its type from `cfg.type_labels`, its CI the CMDB
    /// CI its labels map to, else the host it names (a CI the CMDB does not know, with no
    /// neighbours). Resolved alerts are skipped; alerts missing every type label, or
    /// mapping to no CI and naming no host, are counted as unusable.
    pub fn push_alert(&mut self, topo: &Topology, mapper: &CiMapper, cfg: &LearnConfig, a: &Alert) {
        if a.status != AlertStatus::Firing {
            return;
        }
        let ci = mapper.map(topo, &a.labels).map(|n| topo.ci(n).id.as_str());
        self.push_labels(cfg, &a.labels, ci, a.starts_at.timestamp());
    }

    /// An occurrence of an alert with `labels` on the CMDB CI `ci` (as mapped when it
    /// arrived; `None`: no CI, then the host its labels name) starting at `at` (seconds):
    /// what the daemon reads back from its store. Counted as unusable when it has none of
    /// the type labels, or neither a CI nor a host.
    pub fn push_labels(
        &mut self,
        cfg: &LearnConfig,
        labels: &crate::labels::Labels,
        ci: Option<&str>,
        at: i64,
    ) {
        let parts: Vec<&str> = cfg
            .type_labels
            .iter()
            .filter_map(|l| labels.get(l.as_str()))
            .collect();
        // A host the CMDB does not know is still one machine; a bare `job` or `service`
        // label is not one place, so it makes no CI here.
        let ci = ci.or_else(|| crate::cmdb::topology::host_of(labels));
        match ci {
            Some(ci) if !parts.is_empty() => self.push(&parts.join("/"), ci, at),
            _ => self.unusable += 1,
        }
    }

    pub fn len(&self) -> usize {
        self.occ.len()
    }

    pub fn is_empty(&self) -> bool {
        self.occ.is_empty()
    }
}

#[derive(Default)]
struct Pair {
    hits_same: u64,
    hits_nb: u64,
    expected: f64,
    lags: Option<Box<[u32; LAG_BINS]>>,
}

/// Judges every type pair of `h` (see the module doc), and learns the rules' holds
/// (`holds`) when alert types are alert names, the key `[correlate.rule_hold]` uses.
pub fn learn(h: &History, cfg: &LearnConfig) -> Result<Learned, LearnError> {
    let mut learned = learn_edges(h, cfg)?;
    if cfg.type_labels == ["alertname"] {
        learned.holds = holds::learn_holds(h, holds::HORIZON_S, holds::SPREAD);
    }
    Ok(learned)
}

fn learn_edges(h: &History, cfg: &LearnConfig) -> Result<Learned, LearnError> {
    cfg.validate()?;
    let w = cfg.window_s;
    let mut summary = Summary {
        unusable_alerts: h.unusable,
        ..Default::default()
    };

    // Keep the most frequent types (re-sends counted once).
    let mut occ = h.occ.clone();
    occ.sort_unstable_by_key(|&(k, c, t)| (c, t, k));
    occ.dedup();
    let mut count = vec![0usize; h.types.len()];
    for &(k, _, _) in &occ {
        count[k as usize] += 1;
    }
    let mut by_freq: Vec<u32> = (0..h.types.len() as u32)
        .filter(|&k| count[k as usize] > 0)
        .collect();
    by_freq.sort_by(|&a, &b| {
        count[b as usize]
            .cmp(&count[a as usize])
            .then_with(|| h.types[a as usize].cmp(&h.types[b as usize]))
    });
    let mut keep = vec![false; h.types.len()];
    for (rank, &k) in by_freq.iter().enumerate() {
        if rank < cfg.max_types && count[k as usize] >= MIN_OCCURRENCES {
            keep[k as usize] = true;
        } else {
            summary.dropped_types += 1;
            summary.dropped_occurrences += count[k as usize];
        }
    }
    occ.retain(|&(k, _, _)| keep[k as usize]);
    summary.occurrences = occ.len();
    summary.types = keep.iter().filter(|&&k| k).count();

    let (Some(first), Some(last)) = (occ.iter().map(|o| o.2).min(), occ.iter().map(|o| o.2).max())
    else {
        summary.note = Some("no usable occurrences: nothing learned".into());
        return Ok(Learned {
            edges: Vec::new(),
            summary,
            holds: Vec::new(),
            windows: Vec::new(),
        });
    };
    summary.span_seconds = last - first;
    if summary.types < 2 {
        summary.note = Some(format!(
            "{} alert type(s) seen at least {MIN_OCCURRENCES} times: no pair to learn",
            summary.types
        ));
        return Ok(Learned {
            edges: Vec::new(),
            summary,
            holds: Vec::new(),
            windows: Vec::new(),
        });
    }
    // The time the history covers: days with at least one occurrence. A gap (sift was
    // down, a source was silent) or a sender whose clock is years off would otherwise
    // stretch the span, shrink every rate and make chance co-occurrences look causal.
    // Never shorter than the window, which would make every look certain to hit.
    let mut days: Vec<i64> = occ.iter().map(|o| o.2.div_euclid(DAY)).collect();
    days.sort_unstable();
    days.dedup();
    let span = ((last - first + 1).min(days.len() as i64 * DAY)).max(w) as f64;

    // Occurrences of each CI, in time order.
    let ncis = h.cis.len();
    let start = ci_offsets(&occ, ncis);
    summary.cis = (0..ncis).filter(|&c| start[c + 1] > start[c]).count();
    let of_ci = |c: u32| &occ[start[c as usize]..start[c as usize + 1]];
    // (type, count) per CI.
    let counts: Vec<Vec<(u32, usize)>> = (0..ncis as u32)
        .map(|c| {
            let mut m: HashMap<u32, usize> = HashMap::new();
            for o in of_ci(c) {
                *m.entry(o.0).or_default() += 1;
            }
            let mut v: Vec<(u32, usize)> = m.into_iter().collect();
            v.sort_unstable();
            v
        })
        .collect();
    let scope = |d: u32| {
        std::iter::once((d, Scope::SameCi)).chain(
            h.neighbours[d as usize]
                .iter()
                .map(|&c| (c, Scope::Neighbour)),
        )
    };

    // Expected hits under independence, for every pair that meets in some scope.
    let mut pairs: HashMap<(u32, u32), Pair> = HashMap::new();
    for d in 0..ncis as u32 {
        if counts[d as usize].is_empty() {
            continue;
        }
        for (c, _) in scope(d) {
            for &(b, nb) in &counts[c as usize] {
                let p_hit = 1.0 - (-(nb as f64) / span * w as f64).exp();
                for &(a, na) in &counts[d as usize] {
                    if a != b {
                        pairs.entry((a, b)).or_default().expected += na as f64 * p_hit;
                    }
                }
            }
        }
    }

    // Hits: each look at (occurrence, CI in scope) counts each effect type once, with
    // the lag to its first start.
    let mut stamp: Vec<usize> = vec![usize::MAX; h.types.len()];
    let bin_w = (w as f64 / LAG_BINS as f64).max(1.0);
    let mut look = 0usize;
    for d in 0..ncis as u32 {
        for &(a, _, t) in of_ci(d) {
            for (c, sc) in scope(d) {
                look += 1;
                let evs = of_ci(c);
                let from = evs.partition_point(|o| o.2 <= t);
                for &(b, _, tb) in &evs[from..] {
                    if tb - t > w {
                        break;
                    }
                    if b == a || stamp[b as usize] == look {
                        continue;
                    }
                    stamp[b as usize] = look;
                    let Some(p) = pairs.get_mut(&(a, b)) else {
                        continue;
                    };
                    match sc {
                        Scope::SameCi => p.hits_same += 1,
                        Scope::Neighbour => p.hits_nb += 1,
                    }
                    let bin = (((tb - t - 1) as f64 / bin_w) as usize).min(LAG_BINS - 1);
                    p.lags.get_or_insert_with(|| Box::new([0; LAG_BINS]))[bin] += 1;
                }
            }
        }
    }

    // Significance over every pair that could have been seen.
    let mut keys: Vec<(u32, u32)> = pairs.keys().copied().collect();
    keys.sort_unstable();
    summary.pairs_tested = keys.len();
    let p: Vec<f64> = keys
        .iter()
        .map(|k| {
            let s = &pairs[k];
            poisson_sf((s.hits_same + s.hits_nb) as usize, s.expected)
        })
        .collect();
    let q = bh(&p);
    let passed: HashMap<(u32, u32), f64> = keys
        .iter()
        .zip(&q)
        .filter(|(_, q)| **q <= cfg.fdr)
        .map(|(k, q)| (*k, *q))
        .collect();
    let lift = |k: &(u32, u32)| {
        let s = &pairs[k];
        ((s.hits_same + s.hits_nb) as f64 + 1.0) / (s.expected + 1.0)
    };
    let mut edges = Vec::new();
    for k in &keys {
        let Some(&qv) = passed.get(k) else { continue };
        let rev = (k.1, k.0);
        if passed.contains_key(&rev) && lift(&rev) >= lift(k) && (lift(&rev) > lift(k) || rev < *k)
        {
            continue;
        }
        let s = &pairs[k];
        edges.push(Edge {
            cause: h.types[k.0 as usize].clone(),
            effect: h.types[k.1 as usize].clone(),
            score: round2(lift(k)),
            support: s.hits_same + s.hits_nb,
            expected: round2(s.expected),
            q_value: qv,
            lag_seconds: lag_quantiles(s.lags.as_deref(), bin_w),
            scope: if s.hits_same >= s.hits_nb {
                Scope::SameCi
            } else {
                Scope::Neighbour
            },
        });
    }
    edges.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| (&a.cause, &a.effect).cmp(&(&b.cause, &b.effect)))
    });
    if edges.is_empty() && summary.note.is_none() {
        summary.note = Some(format!(
            "no pair of types follows one another more often than chance (of {} pairs tested over {} occurrences)",
            summary.pairs_tested, summary.occurrences
        ));
    }
    Ok(Learned {
        edges,
        summary,
        holds: Vec::new(),
        windows: Vec::new(),
    })
}

/// Where each CI's occurrences begin in `occ` (sorted by CI): CI `c`'s are
/// `occ[start[c]..start[c + 1]]`.
fn ci_offsets(occ: &[(u32, u32, i64)], ncis: usize) -> Vec<usize> {
    let mut start = vec![0usize; ncis + 1];
    for &(_, c, _) in occ {
        start[c as usize + 1] += 1;
    }
    for i in 0..ncis {
        start[i + 1] += start[i];
    }
    start
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Median and 90th percentile of the lags, each the upper edge of its histogram bin.
fn lag_quantiles(h: Option<&[u32; LAG_BINS]>, bin_w: f64) -> Lag {
    let Some(h) = h else {
        return Lag {
            median: 0.0,
            p90: 0.0,
        };
    };
    let n: u64 = h.iter().map(|&c| u64::from(c)).sum();
    let at = |share: f64| {
        let want = ((n as f64 * share).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in h.iter().enumerate() {
            seen += u64::from(c);
            if seen >= want {
                return ((i + 1) as f64 * bin_w).round();
            }
        }
        (LAG_BINS as f64 * bin_w).round()
    };
    Lag {
        median: at(0.5),
        p90: at(0.9),
    }
}

#[cfg(test)]
mod tests;
