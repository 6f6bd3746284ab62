//! Scoring a grouping of alerts against the truth.
//!
//! The universe is the truth's distinct alerts. An alert listed by no incident (it
//! resolved before it ever fired, say) is a predicted group of its own; an alert listed
//! by several incidents (it flapped and re-fired into a new one) belongs to the first
//! incident that lists it. Fingerprints the truth does not know are ignored.
//!
//! Pair scores weigh a group by the square of its size, so one alarm storm can dominate
//! them; B-cubed scores weigh every alert the same (per alert: the share of its incident
//! that is its true group, and the share of its true group that is in its incident).

use std::collections::HashMap;

use serde::Serialize;

use super::Truth;
use sift::alert::Fingerprint;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Of the alert pairs put in one incident, the share that belong to one true group
    /// (1 when no pair was put together).
    pub precision: f64,
    /// Of the alert pairs that belong to one true group, the share put in one incident
    /// (1 when no true group has two alerts).
    pub recall: f64,
    pub f1: f64,
    /// Mean over alerts of the share of the alert's incident that is its true group.
    pub bcubed_precision: f64,
    /// Mean over alerts of the share of the alert's true group that is in its incident.
    pub bcubed_recall: f64,
    pub bcubed_f1: f64,
    /// Share of true groups with ≥ 2 alerts whose main incident (the one holding most of
    /// their alerts) names their root CI (`None` = `None` counts: no CI was known). A
    /// root that never alerted counts as named when the incident names it as a
    /// (suspected, silent) root.
    pub root_top1: f64,
    pub root_eligible: usize,
    pub root_correct: usize,
    /// The same, over the groups whose root alerted.
    pub root_alerted_eligible: usize,
    pub root_alerted_correct: usize,
    /// The same, over the groups where only dependents of the root alerted.
    pub root_silent_eligible: usize,
    pub root_silent_correct: usize,
    /// Predicted groups over the universe, singletons included.
    pub predicted_groups: usize,
    pub true_groups: usize,
    /// `predicted_groups / true_groups`: 1 is ideal, above 1 is fragmentation.
    pub group_ratio: f64,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Scores `incidents` (each a list of alert fingerprints, with `roots[i]` the root CI
/// incident `i` names) against `truth`. O(alerts): contingency counts, not pairs.
pub fn score(truth: &Truth, incidents: &[Vec<Fingerprint>], roots: &[Option<String>]) -> Scores {
    // Predicted group per universe alert: incident index, or a fresh singleton id.
    let mut pred: HashMap<&Fingerprint, usize> = HashMap::with_capacity(truth.alerts.len());
    for (i, inc) in incidents.iter().enumerate() {
        for fp in inc {
            if truth.alerts.contains_key(fp) {
                pred.entry(fp).or_insert(i);
            }
        }
    }
    let mut next_singleton = incidents.len();
    let mut cells: HashMap<(usize, usize), u64> = HashMap::new();
    let mut true_size: HashMap<usize, u64> = HashMap::new();
    let mut pred_size: HashMap<usize, u64> = HashMap::new();
    for (fp, &g) in &truth.alerts {
        let p = match pred.get(fp) {
            Some(&p) => p,
            None => {
                next_singleton += 1;
                next_singleton - 1
            }
        };
        *cells.entry((g, p)).or_default() += 1;
        *true_size.entry(g).or_default() += 1;
        *pred_size.entry(p).or_default() += 1;
    }
    let tp: u64 = cells.values().map(|&n| pairs(n)).sum();
    let truth_pos: u64 = true_size.values().map(|&n| pairs(n)).sum();
    let pred_pos: u64 = pred_size.values().map(|&n| pairs(n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, pred_pos);
    let recall = ratio(tp, truth_pos);
    let f1 = harmonic(precision, recall);
    let n = truth.alerts.len().max(1) as f64;
    let bcubed_precision = cells
        .iter()
        .map(|(&(_, p), &k)| k as f64 * k as f64 / pred_size[&p] as f64)
        .sum::<f64>()
        / n;
    let bcubed_recall = cells
        .iter()
        .map(|(&(g, _), &k)| k as f64 * k as f64 / true_size[&g] as f64)
        .sum::<f64>()
        / n;

    // Main incident of each true group: most of its alerts, lowest index on ties.
    let mut main: HashMap<usize, (u64, usize)> = HashMap::new();
    for (&(g, p), &n) in &cells {
        let e = main.entry(g).or_insert((n, p));
        if n > e.0 || (n == e.0 && p < e.1) {
            *e = (n, p);
        }
    }
    // (eligible, correct) for groups whose root alerted, and for the others.
    let mut by_root = [(0usize, 0usize); 2];
    for (&g, &size) in &true_size {
        if size < 2 {
            continue;
        }
        let named = main
            .get(&g)
            .and_then(|&(_, p)| roots.get(p))
            .and_then(|r| r.as_deref());
        let alerted = truth.groups.get(g).is_none_or(|tg| tg.root_alerted);
        let slot = &mut by_root[usize::from(!alerted)];
        slot.0 += 1;
        if named == truth.root_of(g) {
            slot.1 += 1;
        }
    }
    let root_eligible = by_root[0].0 + by_root[1].0;
    let root_correct = by_root[0].1 + by_root[1].1;
    let predicted_groups = pred_size.len();
    let true_groups = true_size.len();
    Scores {
        precision,
        recall,
        f1,
        bcubed_precision,
        bcubed_recall,
        bcubed_f1: harmonic(bcubed_precision, bcubed_recall),
        root_top1: if root_eligible == 0 {
            1.0
        } else {
            root_correct as f64 / root_eligible as f64
        },
        root_eligible,
        root_correct,
        root_alerted_eligible: by_root[0].0,
        root_alerted_correct: by_root[0].1,
        root_silent_eligible: by_root[1].0,
        root_silent_correct: by_root[1].1,
        predicted_groups,
        true_groups,
        group_ratio: if true_groups == 0 {
            0.0
        } else {
            predicted_groups as f64 / true_groups as f64
        },
    }
}

fn harmonic(a: f64, b: f64) -> f64 {
    if a + b > 0.0 {
        2.0 * a * b / (a + b)
    } else {
        0.0
    }
}

impl Scores {
    /// Root top-1 over the groups whose root alerted (`None` when there were none).
    pub fn root_alerted_top1(&self) -> Option<f64> {
        share(self.root_alerted_correct, self.root_alerted_eligible)
    }

    /// Root top-1 over the groups where only dependents alerted (`None` when none).
    pub fn root_silent_top1(&self) -> Option<f64> {
        share(self.root_silent_correct, self.root_silent_eligible)
    }
}

fn share(k: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| k as f64 / n as f64)
}
