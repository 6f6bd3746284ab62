//! Propagation lags learned from history, per relation type, and the windows they give.
//!
//! What it is for: a fault reaches what depends on its CI within some lag, and that lag is
//! the estate's, not sift's: seconds where every rule fires at once, many minutes where
//! rules wait (`for:`), scrape slowly or burn an SLO budget. With `window = "auto"` the
//! correlation windows are the ones learned here (`CorrelateConfig::fill_windows`); `sift
//! tune` prints them. What it must not do: I/O, the clock, or guess from too little: a
//! relation type with fewer than `MIN_SAMPLES` lags that stand out from coincidence gets
//! no window (the configured one holds).
//!
//! # The rule
//!
//! A *lag* is `t - t'` for an alert onset `t` on CI `c` (its start less its rule's hold)
//! and the earliest onset `t'` in `[t - horizon, t]` on a CI `c` depends on directly, by
//! the relation's type, counting only an onset that begins `c`'s trouble (none on `c` in
//! the horizon before: later alerts on a CI join its incident whatever their lag, and a
//! re-fire long after its cause would read as slow propagation). Lags of real propagation bunch near zero; coincidences (the CI
//! depended on alerted for a reason of its own, earlier) spread over the whole horizon.
//! Their density is taken from the lags in the horizon's second half, where propagation
//! is rare, and subtracted: the propagation lags are what stands above it. The window is
//! `MARGIN` times the least lag covering `COVER` of them, at most `MEDIAN_CAP` times their
//! median, at least `FLOOR_S` (scrapes and evaluation intervals alone take that long), and
//! at most what the configuration caps windows at (`max_window`, applied by
//! `CorrelateConfig::fill_windows`). One window over all relation types together is
//! learned the same way, for the types with too few lags of their own and for what is
//! not a relation (how long an incident keeps taking alerts with no CI).
//!
//! Work: one pass over the onsets, per onset the CIs its CI depends on directly and a
//! binary search in each one's onsets; memory: the onsets and one lag per related pair.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::cmdb::topology::{Node, Topology};

/// How far back a lag looks (as the holds' lags do).
pub const HORIZON_S: i64 = super::holds::HORIZON_S;
/// Fewest propagation lags (above coincidence) for the estate's window ...
pub const MIN_SAMPLES: usize = 20;
/// ... and for one relation type's own (a quantile of a few dozen lags moves a lot;
/// the estate's window is the better guess until a relation has this many).
pub const MIN_RELATION_SAMPLES: usize = 100;
/// The share of propagation lags the lag a window is made from covers ...
pub const COVER: f64 = 0.9;
/// ... and what that lag is multiplied by: the slowest tenth of a relation's lags is a
/// long tail (heavy-tailed propagation, rules whose hold was not learned), which a window
/// cut at a high quantile of too few samples misses.
pub const MARGIN: f64 = 2.0;
/// A learned window is at most this many times the median propagation lag: a clump of
/// slower lags that is not propagation (a fault of their own on dependents, some minutes
/// after their CI's, more often than chance) must not stretch it to the cap.
pub const MEDIAN_CAP: f64 = 10.0;
/// The shortest learned window.
pub const FLOOR_S: i64 = 60;
/// The name of the window learned over every relation type together.
pub const ALL: &str = "*";

/// What the lags across one relation type (or all, `ALL`) say.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RelationWindow {
    pub relation: String,
    /// Lags measured (onsets with an onset on the CI depended on within the horizon).
    pub samples: usize,
    /// How many of them stand above coincidence (propagation).
    pub propagation: usize,
    pub lag_median_s: i64,
    pub lag_p90_s: i64,
    /// The window learned, when there are enough propagation lags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_s: Option<i64>,
}

/// Per relation type (the type `topo` gives the relation; `depends_on` when none): the
/// lags of `onsets` (CI, onset in seconds; any order) after the earliest onset within
/// `horizon_s` before on a CI depended on directly by that relation.
pub fn relation_lags(
    topo: &Topology,
    onsets: &[(Node, i64)],
    horizon_s: i64,
) -> BTreeMap<String, Vec<i64>> {
    let mut by_node: HashMap<Node, Vec<i64>> = HashMap::new();
    for &(n, t) in onsets {
        by_node.entry(n).or_default().push(t);
    }
    for v in by_node.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    let mut lags: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (&n, times) in &by_node {
        for &p in topo.depends_on(n) {
            let Some(list) = by_node.get(&p).filter(|_| p != n) else {
                continue;
            };
            let rel = topo.relation_type(n, p).unwrap_or("depends_on");
            // Only an onset that begins a CI's trouble (none on it within the horizon
            // before): a CI's later alerts join its incident whatever their lag, and
            // re-fires long after the cause would read as slow propagation.
            let firsts = times
                .iter()
                .enumerate()
                .filter(|&(i, &t)| i == 0 || times[i - 1] < t - horizon_s)
                .map(|(_, &t)| t);
            for t in firsts {
                let i = list.partition_point(|&x| x < t - horizon_s);
                if let Some(&first) = list.get(i).filter(|&&x| x <= t) {
                    lags.entry(rel.to_string()).or_default().push(t - first);
                }
            }
        }
    }
    lags
}

/// The windows `onsets` (CI, onset in seconds) over `topo` give (`relation_lags`, then
/// `windows`, over `HORIZON_S`).
pub fn learn(topo: &Topology, onsets: &[(Node, i64)]) -> Vec<RelationWindow> {
    windows(&relation_lags(topo, onsets, HORIZON_S), HORIZON_S)
}

/// The window each relation type's lags give, and (first, named `ALL`) the one all of
/// them give together (see the module doc).
pub fn windows(lags: &BTreeMap<String, Vec<i64>>, horizon_s: i64) -> Vec<RelationWindow> {
    let all: Vec<i64> = lags.values().flatten().copied().collect();
    std::iter::once((ALL, all))
        .chain(lags.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .filter(|(_, l)| !l.is_empty())
        .map(|(rel, mut l)| {
            l.sort_unstable();
            let least = if rel == ALL {
                MIN_SAMPLES
            } else {
                MIN_RELATION_SAMPLES
            };
            let (propagation, window_s) = window_of(&l, horizon_s, least);
            let q = |p: f64| l[((l.len() - 1) as f64 * p).round() as usize];
            RelationWindow {
                relation: rel.to_string(),
                samples: l.len(),
                propagation,
                lag_median_s: q(0.5),
                lag_p90_s: q(0.9),
                window_s,
            }
        })
        .collect()
}

/// Propagation lags among sorted `lags` (within `[0, horizon_s]`), and their window.
fn window_of(lags: &[i64], horizon_s: i64, least: usize) -> (usize, Option<i64>) {
    let half = horizon_s / 2;
    let late = lags.len() - lags.partition_point(|&x| x <= half);
    // Coincidences per second, from the second half, where propagation is rare.
    let density = late as f64 / (horizon_s - half).max(1) as f64;
    let signal = lags.len() as f64 - density * horizon_s as f64;
    let propagation = signal.max(0.0).round() as usize;
    if propagation < least {
        return (propagation, None);
    }
    // The least lag with `want` propagation lags at or below it.
    let quantile = |want: f64| {
        lags.iter()
            .enumerate()
            .find(|&(i, &x)| (i + 1) as f64 - density * x as f64 >= want)
            .map_or(half, |(_, &x)| x)
    };
    let window =
        (quantile(COVER * signal) as f64 * MARGIN).min(quantile(0.5 * signal) as f64 * MEDIAN_CAP);
    (propagation, Some((window as i64).max(FLOOR_S)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lags(v: Vec<i64>) -> BTreeMap<String, Vec<i64>> {
        BTreeMap::from([("runs_on".to_string(), v)])
    }

    #[test]
    fn the_window_covers_propagation_and_not_the_coincidences_around_it() {
        // 200 propagation lags of 30..=129 s, and 40 coincidences spread over the horizon.
        let mut v: Vec<i64> = (0..200).map(|i| 30 + i / 2).collect();
        v.extend((0..40).map(|i| i * HORIZON_S / 40 + 7));
        let w = windows(&lags(v), HORIZON_S);
        assert_eq!(w[0].relation, ALL);
        let r = &w[1];
        assert_eq!(r.relation, "runs_on");
        assert!((195..=210).contains(&r.propagation), "{r:?}");
        // 90% of 30..=129 s is covered by about 120 s; twice that.
        let s = r.window_s.unwrap();
        assert!((225..=250).contains(&s), "{r:?}");
    }

    #[test]
    fn too_few_lags_or_only_coincidences_learn_no_window() {
        let few = windows(&lags((0..10).map(|i| 40 + i).collect()), HORIZON_S);
        assert_eq!(few[0].window_s, None);
        assert_eq!(few[1].window_s, None);
        // Enough for the estate's window, not yet for the relation's own.
        let some = windows(&lags((0..50).map(|i| 40 + i).collect()), HORIZON_S);
        assert!(some[0].window_s.is_some());
        assert_eq!(some[1].window_s, None);
        let flat: Vec<i64> = (0..200).map(|i| i * HORIZON_S / 200).collect();
        let w = windows(&lags(flat), HORIZON_S);
        assert_eq!(w[1].window_s, None, "{w:?}");
        assert!(windows(&BTreeMap::new(), HORIZON_S).is_empty());
    }

    #[test]
    fn a_clump_of_slow_lags_does_not_stretch_the_window_to_the_cap() {
        // 90 propagation lags of 30..=59 s; 12 of a fault of their own 10 minutes on.
        let mut v: Vec<i64> = (0..90).map(|i| 30 + i / 3).collect();
        v.extend((0..12).map(|i| 600 + i * 5));
        let w = windows(&lags(v), HORIZON_S);
        // Ten times the median (about 45 s), not twice the clump.
        let s = w[0].window_s.unwrap();
        assert!((420..=480).contains(&s), "{w:?}");
    }

    #[test]
    fn a_fast_estate_gets_the_floor() {
        let w = windows(&lags((0..150).map(|i| i % 5).collect()), HORIZON_S);
        assert_eq!(w[0].window_s, Some(FLOOR_S));
        assert_eq!(w[1].window_s, Some(FLOOR_S));
    }
}
