//! The problem-clustering evaluation harness: a seeded generator of six-month incident
//! histories with known recurring problems (see `generate`), a scorer, and the baseline a
//! problem manager gets from a spreadsheet: group by (CI, alertname), three or more.
//!
//! Scores: pairwise precision / recall / F1 over incidents (two incidents are a true pair
//! when they belong to the same problem; one-offs belong to none, so any pair with a
//! one-off is a false pair), root-CI top-1 per true problem (the candidate holding most of
//! its incidents names its root), and the number of candidates whose incidents are mostly
//! one-offs. `sift-problem-eval` prints them.
//!
//! What it must not do: encode sift's clustering rules in the generator, read files or the
//! clock, or add dependencies (its PRNG is the correlation harness's splitmix64).

mod generate;

pub use generate::{Knobs, generate, generate_with, generate_with_prefix};

use std::collections::HashMap;

use serde::Serialize;

use sift::cmdb::{CmdbFile, Topology};
use sift::problem::{HistoryRecord, ProblemCandidate, ProblemConfig, cluster};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrueProblem {
    pub root: String,
    pub signature: String,
    pub incidents: usize,
}

/// A generated history and its truth.
#[derive(Debug, Clone)]
pub struct History {
    pub seed: u64,
    pub cmdb: CmdbFile,
    /// In time order.
    pub records: Vec<HistoryRecord>,
    /// Per record: the index of its true problem, `None` for a one-off.
    pub truth: Vec<Option<usize>>,
    pub problems: Vec<TrueProblem>,
}

/// Histories of consecutive seeds side by side (CI ids prefixed `e<k>-`, one estate per
/// seed, incidents renumbered in time order) until there are at least `incidents`: the
/// scale test.
pub fn combined(first_seed: u64, incidents: usize) -> History {
    let mut all = History {
        seed: first_seed,
        cmdb: CmdbFile {
            cis: Vec::new(),
            relations: Vec::new(),
        },
        records: Vec::new(),
        truth: Vec::new(),
        problems: Vec::new(),
    };
    let mut k = 0u64;
    while all.records.len() < incidents {
        let h = generate_with_prefix(first_seed + k, &format!("e{k}-"));
        let offset = all.problems.len();
        all.cmdb.cis.extend(h.cmdb.cis);
        all.cmdb.relations.extend(h.cmdb.relations);
        all.problems.extend(h.problems);
        all.records.extend(h.records);
        all.truth
            .extend(h.truth.into_iter().map(|t| t.map(|p| p + offset)));
        k += 1;
    }
    let mut order: Vec<usize> = (0..all.records.len()).collect();
    order.sort_by_key(|&i| all.records[i].opened_at);
    let (records, truth): (Vec<_>, Vec<_>) = order
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let mut r = all.records[i].clone();
            r.id = format!("INC{:07}", n + 1);
            (r, all.truth[i])
        })
        .unzip();
    all.records = records;
    all.truth = truth;
    all
}

/// One seed of a grid cell as the probe examples (`prob_diag`, `prob_miss`) look at it:
/// the history, its topology and the candidates the default clustering finds.
pub struct ProbeRun {
    pub seed: u64,
    pub history: History,
    pub topo: Topology,
    pub candidates: Vec<ProblemCandidate>,
}

/// The probe examples' runs, from the command line's `[CELL] [FIRST_SEED] [SEEDS]`
/// (defaults `all-hard 0 5`; cells as `grid` names them).
pub fn probe_runs() -> impl Iterator<Item = ProbeRun> {
    let args: Vec<String> = std::env::args().collect();
    let cell = args.get(1).cloned().unwrap_or("all-hard".into());
    let first: u64 = args.get(2).map_or(0, |s| s.parse().expect("FIRST_SEED"));
    let n: u64 = args.get(3).map_or(5, |s| s.parse().expect("SEEDS"));
    let knobs = grid()
        .into_iter()
        .find(|g| g.0 == cell)
        .unwrap_or_else(|| panic!("no grid cell {cell:?}"))
        .1;
    (first..first + n).map(move |seed| {
        let history = generate_with(seed, "", &knobs);
        let topo = Topology::from_file(&history.cmdb);
        let candidates = cluster(&history.records, Some(&topo), &ProblemConfig::default())
            .expect("clustering a generated history");
        ProbeRun {
            seed,
            history,
            topo,
            candidates,
        }
    })
}

/// The evaluation grid: each knob alone at a moderate and a hard level, then all of
/// them together. The first cell is the base generator.
pub fn grid() -> Vec<(&'static str, Knobs)> {
    let d = Knobs::default();
    vec![
        ("base", d),
        ("busy=3", Knobs { busy_cis: 3, ..d }),
        ("busy=8", Knobs { busy_cis: 8, ..d }),
        (
            "generic=0.3",
            Knobs {
                generic_share: 0.3,
                ..d
            },
        ),
        (
            "generic=0.6",
            Knobs {
                generic_share: 0.6,
                ..d
            },
        ),
        (
            "alertvar=0.5",
            Knobs {
                alert_variation: 0.5,
                ..d
            },
        ),
        (
            "alertvar=0.9",
            Knobs {
                alert_variation: 0.9,
                ..d
            },
        ),
        (
            "no-ci=0.3",
            Knobs {
                no_ci_share: 0.3,
                ..d
            },
        ),
        (
            "no-title=0.3",
            Knobs {
                no_title_share: 0.3,
                ..d
            },
        ),
        (
            "all-moderate",
            Knobs {
                busy_cis: 3,
                generic_share: 0.3,
                alert_variation: 0.5,
                no_ci_share: 0.15,
                no_title_share: 0.15,
            },
        ),
        (
            "all-hard",
            Knobs {
                busy_cis: 8,
                generic_share: 0.5,
                alert_variation: 0.9,
                no_ci_share: 0.3,
                no_title_share: 0.3,
            },
        ),
    ]
}

/// A grouping to score: groups of record indices with a suggested root CI each.
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    pub groups: Vec<(Vec<usize>, Option<String>)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub root_top1: f64,
    pub candidates: usize,
    /// Candidates more than half of whose incidents are one-offs.
    pub mostly_one_off: usize,
}

fn pairs(n: usize) -> f64 {
    (n as f64) * (n as f64 - 1.0) / 2.0
}

pub fn score(h: &History, g: &Grouping) -> Scores {
    let mut tp = 0.0;
    let mut predicted = 0.0;
    let mut mostly_one_off = 0;
    // problem → (candidate index, incidents of it there)
    let mut best: HashMap<usize, (usize, usize)> = HashMap::new();
    for (ci, (members, _)) in g.groups.iter().enumerate() {
        predicted += pairs(members.len());
        let mut per: HashMap<usize, usize> = HashMap::new();
        let mut one_offs = 0;
        for &i in members {
            match h.truth.get(i).copied().flatten() {
                Some(p) => *per.entry(p).or_default() += 1,
                None => one_offs += 1,
            }
        }
        if one_offs * 2 > members.len() {
            mostly_one_off += 1;
        }
        for (p, n) in per {
            tp += pairs(n);
            let e = best.entry(p).or_insert((ci, 0));
            if n > e.1 || (n == e.1 && ci < e.0) {
                *e = (ci, n);
            }
        }
    }
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for p in h.truth.iter().flatten() {
        *sizes.entry(*p).or_default() += 1;
    }
    let truth_pairs: f64 = sizes.values().map(|&n| pairs(n)).sum();
    let precision = if predicted > 0.0 { tp / predicted } else { 0.0 };
    let recall = if truth_pairs > 0.0 {
        tp / truth_pairs
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let hits = h
        .problems
        .iter()
        .enumerate()
        .filter(|(p, tp)| {
            best.get(p)
                .and_then(|(ci, _)| g.groups[*ci].1.as_deref())
                .is_some_and(|r| r == tp.root)
        })
        .count();
    Scores {
        precision,
        recall,
        f1,
        root_top1: if h.problems.is_empty() {
            1.0
        } else {
            hits as f64 / h.problems.len() as f64
        },
        candidates: g.groups.len(),
        mostly_one_off,
    }
}

/// The spreadsheet baseline: group by (CI, first alertname), keep groups of three or more;
/// the root is the CI.
pub fn baseline(h: &History) -> Grouping {
    let mut by: HashMap<(Option<&str>, Option<&str>), Vec<usize>> = HashMap::new();
    for (i, r) in h.records.iter().enumerate() {
        by.entry((r.ci.as_deref(), r.alertnames.first().map(String::as_str)))
            .or_default()
            .push(i);
    }
    let mut groups: Vec<_> = by
        .into_iter()
        .filter(|(_, v)| v.len() >= 3)
        .map(|((ci, _), v)| (v, ci.map(str::to_string)))
        .collect();
    groups.sort();
    Grouping { groups }
}

/// sift's candidates as a grouping over `h.records`.
pub fn as_grouping(h: &History, cands: &[ProblemCandidate]) -> Grouping {
    let index: HashMap<&str, usize> = h
        .records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    Grouping {
        groups: cands
            .iter()
            .map(|c| {
                (
                    c.incident_ids
                        .iter()
                        .filter_map(|id| index.get(id.as_str()).copied())
                        .collect(),
                    c.suggested_root_cause.ci_id.clone(),
                )
            })
            .collect(),
    }
}

/// Clusters a history with sift and scores it beside the baseline: (sift, baseline).
pub fn evaluate(
    h: &History,
    cfg: &ProblemConfig,
) -> Result<(Scores, Scores), sift::problem::ClusterError> {
    let topo = Topology::from_file(&h.cmdb);
    let cands = cluster(&h.records, Some(&topo), cfg)?;
    Ok((score(h, &as_grouping(h, &cands)), score(h, &baseline(h))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_has_problems_among_one_offs() {
        let a = generate(3);
        let b = generate(3);
        assert_eq!(a.records, b.records);
        assert!(a.problems.len() >= 8);
        let one_offs = a.truth.iter().filter(|t| t.is_none()).count();
        assert!(one_offs > a.records.len() / 2);
        assert!(
            a.records
                .windows(2)
                .all(|w| w[0].opened_at <= w[1].opened_at)
        );
    }

    #[test]
    fn perfect_grouping_scores_one() {
        let h = generate(1);
        let mut groups: Vec<(Vec<usize>, Option<String>)> = h
            .problems
            .iter()
            .map(|p| (vec![], Some(p.root.clone())))
            .collect();
        for (i, t) in h.truth.iter().enumerate() {
            if let Some(p) = t {
                groups[*p].0.push(i);
            }
        }
        let s = score(&h, &Grouping { groups });
        assert_eq!(
            (s.precision, s.recall, s.root_top1, s.mostly_one_off),
            (1.0, 1.0, 1.0, 0)
        );
    }

    #[test]
    fn sift_beats_the_baseline_on_a_held_out_seed() {
        let h = generate(1001);
        let (sift, base) = evaluate(&h, &ProblemConfig::default()).unwrap();
        assert!(sift.f1 > base.f1, "sift {sift:?} baseline {base:?}");
        assert_eq!(sift.mostly_one_off, 0);
    }
}
