//! Rule hold-backs learned from history: how long after the trouble around it each alert
//! rule (alert type) typically starts firing.
//!
//! What it is for: a Prometheus rule with `for: 15m` fires 15 minutes after the fault it
//! reports began, so its alert starts long after the alerts of faster rules on the same
//! fault. Correlation judges timing on onsets (an alert's start less its rule's hold, see
//! `correlate::policy`); these are the holds it subtracts when no `[correlate.rule_hold]`
//! names them. What it must not do: I/O, the wall clock, or guess from too little: a type
//! with fewer than `MIN_SAMPLES` occurrences, or whose typical lag is under a minute, gets
//! no hold.
//!
//! # The rule
//!
//! For each occurrence `a` (type `k`, CI `c`, start `t`), its *lag* is `t - t'` for the
//! earliest occurrence of another alert that started in `[t - horizon, t]` on `c` or on a
//! CI `c` depends on (up to `UP_HOPS` relations up, at most `MAX_NEIGHBOURS` CIs: a
//! monitoring gap may hide the CI between). Only upstream: among a hub's hundreds of
//! dependents some unrelated alert always started shortly before. An occurrence with
//! nothing before it gives no lag: its cause may not have alerted at all.
//!
//! A type's hold is the lower quartile of its lags in whole minutes (the unit `for:`
//! clauses are written in) when it has at least `MIN_SAMPLES` lags and they show a hold:
//! the quartile is at least `MIN_HOLD_S` (less is ordinary propagation, which the window
//! absorbs), the lags bunch (lower quartile at least `spread` times the upper: a `for:`
//! delays every alert alike, coincidences spread from zero to the horizon), and the upper
//! quartile is within half the horizon (lags piled at the horizon only say that something
//! else always alerted before). Else 0. The lower quartile, because the earliest alert
//! before is sometimes a slower cause or an unrelated alert, which only lengthens a lag;
//! a hold learned short only under-corrects.
//!
//! Work: one pass over the occurrences, per occurrence at most `MAX_NEIGHBOURS + 1` CIs
//! and `SCAN` occurrences on each; memory: the occurrences and one lag per occurrence.

use serde::{Deserialize, Serialize};

use super::History;

/// Fewest occurrences of a type for a hold to be learned.
pub const MIN_SAMPLES: usize = 5;
/// A hold shorter than this is ordinary propagation, which the window absorbs: none.
pub const MIN_HOLD_S: i64 = 120;
/// The default least ratio of a type's lag quartiles (p25 / p75) for a hold.
pub const SPREAD: f64 = 0.6;
/// How far back the lags look: holds up to half of it can be learned (see `hold_of`).
pub const HORIZON_S: i64 = 2400;
/// Most occurrences looked at per CI for one lag (bounds the work in an alert storm).
pub const SCAN: usize = 64;
/// How many relations up from an alert's CI its lag looks.
pub const UP_HOPS: usize = 3;
/// Most CIs one lag looks at.
pub const MAX_NEIGHBOURS: usize = 64;

/// A learned hold: what `type` waits, and the lags it was learned from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hold {
    /// The alert type (its alert name with the default `type_labels`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The hold, in seconds (whole minutes).
    pub hold_seconds: i64,
    /// Occurrences the lags came from.
    pub samples: usize,
    /// Lags' quartiles and 90th percentile, in seconds.
    pub lag_p25: i64,
    pub lag_median: i64,
    pub lag_p75: i64,
    pub lag_p90: i64,
}

/// Learns a hold for every type of `h` seen at least `MIN_SAMPLES` times, looking back
/// `horizon_s` seconds for the earliest alert around each occurrence (see the module
/// doc). Types whose hold is 0 are listed too (with their lags): `sift tune` shows them.
pub fn learn_holds(h: &History, horizon_s: i64, spread: f64) -> Vec<Hold> {
    let mut occ = h.occ.clone();
    occ.sort_unstable_by_key(|&(k, c, t)| (c, t, k));
    occ.dedup();
    let start = super::ci_offsets(&occ, h.cis.len());
    let of_ci = |c: u32| &occ[start[c as usize]..start[c as usize + 1]];
    // Per CI with occurrences (they are sorted by CI): itself and what it depends on
    // within `UP_HOPS` relations, at most `MAX_NEIGHBOURS` of them (a monitoring gap may
    // hide the CI between).
    let upstream_of = |c: u32| {
        let mut seen = vec![c];
        let mut frontier = vec![c];
        for _ in 0..UP_HOPS {
            let mut next = Vec::new();
            for &x in &frontier {
                for &p in &h.upstream[x as usize] {
                    if !seen.contains(&p) && seen.len() <= MAX_NEIGHBOURS {
                        seen.push(p);
                        next.push(p);
                    }
                }
            }
            frontier = next;
        }
        seen
    };
    let mut lags: Vec<Vec<i64>> = vec![Vec::new(); h.types.len()];
    let mut up: (Option<u32>, Vec<u32>) = (None, Vec::new());
    for &(k, c, t) in &occ {
        if up.0 != Some(c) {
            up = (Some(c), upstream_of(c));
        }
        let mut earliest: Option<i64> = None;
        for &x in &up.1 {
            let list = of_ci(x);
            // The earliest other occurrence on `x` in [t - horizon, t]; a storm of the
            // alert itself is skipped over at most `SCAN` entries deep.
            let i = list.partition_point(|o| o.2 < t - horizon_s);
            if let Some(o) = list[i..]
                .iter()
                .take(SCAN)
                .take_while(|o| o.2 <= t)
                .find(|o| !(o.0 == k && o.1 == c))
                && earliest.is_none_or(|e| o.2 < e)
            {
                earliest = Some(o.2);
            }
        }
        // An alert with nothing before it says nothing of its rule's hold: its cause may
        // not have alerted at all.
        if let Some(e) = earliest {
            lags[k as usize].push(t - e);
        }
    }
    let hold: Vec<i64> = lags
        .iter_mut()
        .map(|l| {
            l.sort_unstable();
            if l.len() >= MIN_SAMPLES {
                hold_of(l, spread, horizon_s)
            } else {
                0
            }
        })
        .collect();
    let mut out: Vec<Hold> = lags
        .into_iter()
        .enumerate()
        .filter(|(_, l)| l.len() >= MIN_SAMPLES)
        .map(|(k, l)| Hold {
            kind: h.types[k].clone(),
            hold_seconds: hold[k],
            samples: l.len(),
            lag_p25: quantile(&l, 0.25),
            lag_median: quantile(&l, 0.5),
            lag_p75: quantile(&l, 0.75),
            lag_p90: quantile(&l, 0.9),
        })
        .collect();
    out.sort_by(|a, b| a.kind.cmp(&b.kind));
    out
}

/// `q`-quantile of sorted, non-empty `l`.
fn quantile(l: &[i64], q: f64) -> i64 {
    l[((l.len() - 1) as f64 * q).round() as usize]
}

/// The hold sorted lags `l` show: their lower quartile in whole minutes, when it is at
/// least `MIN_HOLD_S` and at least `spread` times the upper quartile (lags bunched
/// around one delay, as a rule's `for:` makes them; lags spread from zero to the horizon
/// are coincidences); else 0.
fn hold_of(l: &[i64], spread: f64, horizon_s: i64) -> i64 {
    let (p25, p75) = (quantile(l, 0.25), quantile(l, 0.75));
    if p25 >= MIN_HOLD_S && p25 as f64 >= spread * p75 as f64 && p75 <= horizon_s / 2 {
        p25 / 60 * 60
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdb::{CmdbFile, Topology};

    fn topo() -> Topology {
        let cmdb: CmdbFile = serde_json::from_value(serde_json::json!({
            "cis": [
                {"id": "db", "type": "database"},
                {"id": "app1", "type": "application"},
                {"id": "app2", "type": "application"},
                {"id": "lonely", "type": "application"}
            ],
            "relations": [
                {"source": "app1", "target": "db"},
                {"source": "app2", "target": "db"}
            ]
        }))
        .unwrap();
        Topology::from_file(&cmdb)
    }

    #[test]
    fn a_slow_rule_gets_its_for_a_fast_one_none() {
        let mut h = History::new().with_topology(&topo());
        for i in 0..20 {
            let t = i * 7200;
            h.push("DbDown", "db", t);
            // A latency rule with `for: 10m` fires 10-11 minutes after the database fails.
            h.push("LatencyHigh", "app1", t + 600 + i % 2 * 60);
            h.push("ErrorsHigh", "app2", t + 30);
        }
        // Unrelated, alone: its own burst each time.
        for i in 0..10 {
            h.push("LatencyHigh", "lonely", i * 7200 + 3600);
        }
        let holds = learn_holds(&h, 1800, SPREAD);
        let of = |k: &str| holds.iter().find(|x| x.kind == k).map(|x| x.hold_seconds);
        // Nothing alerts before the database: no lag, nothing learned of its rule.
        assert_eq!(of("DbDown"), None);
        assert_eq!(of("ErrorsHigh"), Some(0));
        // On app1, every LatencyHigh came 10-11 minutes after the database; on the
        // lonely app nothing came before it, which says nothing.
        assert_eq!(of("LatencyHigh"), Some(600));
        let l = holds.iter().find(|x| x.kind == "LatencyHigh").unwrap();
        assert_eq!(l.samples, 20);
    }

    #[test]
    fn lags_spread_by_chance_or_piled_at_the_horizon_are_no_hold() {
        let mut h = History::new().with_topology(&topo());
        for i in 0..40 {
            let t = i * 7200;
            h.push("DbSlow", "db", t);
            // Unrelated to the database: starts anywhere in the half hour after it.
            h.push("Flaky", "app1", t + 120 + (i * 397) % 1600);
            // Always about 28 minutes after: something always alerted before, no `for:`.
            h.push("Late", "app2", t + 1680 + i % 3 * 20);
        }
        let holds = learn_holds(&h, 1800, SPREAD);
        for k in ["Flaky", "Late"] {
            let x = holds.iter().find(|x| x.kind == k).unwrap();
            assert_eq!(x.hold_seconds, 0, "{x:?}");
        }
    }

    #[test]
    fn too_few_samples_no_hold_and_nothing_from_nothing() {
        let mut h = History::new().with_topology(&topo());
        for i in 0..4 {
            h.push("DbDown", "db", i * 7200);
            h.push("LatencyHigh", "app1", i * 7200 + 900);
        }
        assert!(learn_holds(&h, 1800, SPREAD).is_empty());
        assert!(learn_holds(&History::new(), 1800, SPREAD).is_empty());
    }
}
