//! The generalization grid: the same scorers over worlds that differ from the default in
//! one knob at a time and in combination (see [`Knobs`]), so a grouping policy is judged
//! by its mean and its worst cell, never by the one world it was tuned on.
//!
//! Cells: the full factorial of the three knobs the real world is hardest on (monitoring
//! coverage, propagation timing, CMDB error; three levels each), each remaining knob
//! (overlap, noise, label convention) on its own, two cells where every knob is set at
//! once (moderate, harsh), and silent roots and the heavy-tailed lag each alone. Each cell
//! runs the same seeds, so cells differ only by their knobs.

use serde::Serialize;

use super::{
    EstateSize, EvalError, Evaluation, Knobs, LabelStyle, Lag, Scores, evaluate, generate_with,
};

/// One cell of the grid: a name for each knob's level, and the knobs.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub coverage: &'static str,
    pub timing: &'static str,
    pub cmdb: &'static str,
    pub other: &'static str,
    pub knobs: Knobs,
}

impl Cell {
    pub fn name(&self) -> String {
        format!(
            "cov={} lag={} cmdb={} {}",
            self.coverage, self.timing, self.cmdb, self.other
        )
    }
}

/// Monitoring coverage levels: (name, coverage at depth ≥ 3, share of silent roots).
const COVERAGE: [(&str, f64, f64); 3] =
    [("full", 1.0, 0.0), ("0.6", 0.6, 0.1), ("0.25", 0.25, 0.25)];
/// Timing levels: (name, per-hop lag, longest `for:` in minutes).
const TIMING: [(&str, Lag, u32); 3] = [
    ("default", Lag::Default, 0),
    ("heavy+for5", Lag::HeavyTail, 5),
    ("heavy+for15", Lag::HeavyTail, 15),
];
/// CMDB error levels: (name, relations missing, spurious relations, CIs absent).
const CMDB: [(&str, f64, f64, f64); 3] = [
    ("exact", 0.0, 0.0, 0.0),
    ("5%", 0.05, 0.05, 0.02),
    ("20%", 0.2, 0.1, 0.05),
];

/// The grid's cells, the default world first.
pub fn cells() -> Vec<Cell> {
    let mut out = Vec::new();
    let make = |c: usize, t: usize, m: usize, other: &'static str, knobs: Knobs| {
        let mut k = knobs;
        (k.coverage, k.silent_roots) = (COVERAGE[c].1, COVERAGE[c].2);
        (k.lag, k.for_max_min) = (TIMING[t].1, TIMING[t].2);
        (k.cmdb_missing, k.cmdb_spurious, k.cmdb_absent) = (CMDB[m].1, CMDB[m].2, CMDB[m].3);
        Cell {
            coverage: COVERAGE[c].0,
            timing: TIMING[t].0,
            cmdb: CMDB[m].0,
            other,
            knobs: k,
        }
    };
    for c in 0..3 {
        for t in 0..3 {
            for m in 0..3 {
                out.push(make(c, t, m, "", Knobs::default()));
            }
        }
    }
    let d = Knobs::default;
    out.push(make(
        0,
        0,
        0,
        "overlap=0.5",
        Knobs {
            overlap: 0.5,
            ..d()
        },
    ));
    out.push(make(0, 0, 0, "noise=4/fault", Knobs { noise: 4.0, ..d() }));
    out.push(make(
        0,
        0,
        0,
        "labels=ip:port",
        Knobs {
            labels: LabelStyle::IpPort,
            ..d()
        },
    ));
    out.push(make(
        0,
        0,
        0,
        "labels=host",
        Knobs {
            labels: LabelStyle::Host,
            ..d()
        },
    ));
    out.push(make(
        1,
        1,
        1,
        "overlap=0.35 noise=3 labels=ip:port",
        Knobs {
            overlap: 0.35,
            noise: 3.0,
            labels: LabelStyle::IpPort,
            ..d()
        },
    ));
    out.push(make(
        2,
        2,
        2,
        "overlap=0.5 noise=4 labels=host",
        Knobs {
            overlap: 0.5,
            noise: 4.0,
            labels: LabelStyle::Host,
            ..d()
        },
    ));
    // Silent roots and the heavy-tailed lag, each without the rest of its axis level.
    let mut silent = make(0, 0, 0, "silent roots=0.25", d());
    silent.knobs.silent_roots = 0.25;
    out.push(silent);
    let mut lag = make(0, 0, 0, "", d());
    (lag.timing, lag.knobs.lag) = ("heavy+for0", Lag::HeavyTail);
    out.push(lag);
    out
}

/// The estate size the grid uses for a seed: `sift-eval`'s cycle (medium, small, large,
/// huge), so any four consecutive seeds of a cell cover ~50 to ~10,000 CIs.
pub fn size_for_seed(seed: u64) -> EstateSize {
    EstateSize::for_seed(seed)
}

/// A scorer's figures in one cell, over its seeds: F1 and B-cubed F1 averaged over
/// seeds, root top-1 pooled over the cell's faults (alerted and silent roots apart).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CellScores {
    pub f1: f64,
    pub bcubed_f1: f64,
    pub root_top1: f64,
    pub root_alerted: (usize, usize),
    pub root_silent: (usize, usize),
    pub group_ratio: f64,
}

impl CellScores {
    pub(crate) fn of(scores: &[&Scores]) -> Self {
        let n = scores.len().max(1) as f64;
        let mean = |f: fn(&Scores) -> f64| scores.iter().map(|s| f(s)).sum::<f64>() / n;
        let sum = |f: fn(&Scores) -> usize| scores.iter().map(|s| f(s)).sum::<usize>();
        let alerted = (
            sum(|s| s.root_alerted_correct),
            sum(|s| s.root_alerted_eligible),
        );
        let silent = (
            sum(|s| s.root_silent_correct),
            sum(|s| s.root_silent_eligible),
        );
        let (k, e) = (alerted.0 + silent.0, alerted.1 + silent.1);
        Self {
            f1: mean(|s| s.f1),
            bcubed_f1: mean(|s| s.bcubed_f1),
            root_top1: if e == 0 { 1.0 } else { k as f64 / e as f64 },
            root_alerted: alerted,
            root_silent: silent,
            group_ratio: mean(|s| s.group_ratio),
        }
    }
}

/// One evaluated cell: per scorer (in `ROW_NAMES` order), its figures.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    pub cell: Cell,
    pub seeds: Vec<u64>,
    pub scorers: Vec<CellScores>,
}

/// Evaluates `cell` on `seeds` (sizes from [`size_for_seed`]).
pub fn run_cell(cell: &Cell, seeds: &[u64]) -> Result<CellResult, EvalError> {
    let evals: Vec<Evaluation> = seeds
        .iter()
        .map(|&s| evaluate(&generate_with(s, size_for_seed(s), &cell.knobs)))
        .collect::<Result<_, _>>()?;
    let rows = evals.first().map_or(0, |e| e.rows().len());
    let scorers = (0..rows)
        .map(|r| CellScores::of(&evals.iter().map(|e| e.rows()[r]).collect::<Vec<_>>()))
        .collect();
    Ok(CellResult {
        cell: cell.clone(),
        seeds: seeds.to_vec(),
        scorers,
    })
}

/// Mean over cells and the worst cell, for one scorer and one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mean: f64,
    pub worst: f64,
    /// Index of the worst cell.
    pub worst_cell: usize,
}

/// Summarises figure `f` of scorer `row` over `results` (lower is worse).
pub fn summarize(results: &[CellResult], row: usize, f: fn(&CellScores) -> f64) -> Summary {
    let vals: Vec<f64> = results.iter().map(|r| f(&r.scorers[row])).collect();
    let (worst_cell, worst) = vals
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, f64::NAN));
    Summary {
        mean: vals.iter().sum::<f64>() / vals.len().max(1) as f64,
        worst,
        worst_cell,
    }
}
