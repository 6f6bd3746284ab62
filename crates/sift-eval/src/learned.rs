//! Learned causality in use: learn from the first half of a history (alerts before a
//! cut), set the graph on the engine, correlate the second half, and score it with and
//! without the graph, on the synthetic grid, the Nezha days and the telecom storm.
//!
//! What it is for: showing what the learned edges do to grouping, honestly (the half that
//! is scored is never learned from). What it must not do: show the learner the truth, the
//! expert graph or the half it is scored on.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use super::grid::{Cell, CellResult, CellScores, size_for_seed};
use super::telecom::{self, Alarm, StormStats};
use super::{
    EvalError, Scenario, Scores, Truth, generate_with, incident_root, nezha, parse_alerts,
    replay_tracked_with, score,
};
use sift::alert::{Alert, AlertStatus, Fingerprint};
use sift::causality::{History, LearnConfig, Learned, learn};
use sift::cmdb::{CiMapper, Topology};
use sift::correlate::{CausalIndex, CorrelateConfig};

/// A graph learned from `alerts` (firing events only) over `topo`.
pub fn learn_alerts(topo: &Topology, alerts: &[Alert], cfg: &LearnConfig) -> Learned {
    let mapper = CiMapper::default();
    let mut h = History::new().with_topology(topo);
    for a in alerts.iter().filter(|a| a.status == AlertStatus::Firing) {
        h.push_alert(topo, &mapper, cfg, a);
    }
    learn(&h, cfg).unwrap_or_default()
}

/// The compiled graph, or `None` when it has no edge.
pub fn index(learned: &Learned, cfg: &LearnConfig) -> Option<Arc<CausalIndex>> {
    let mut ix = CausalIndex::new(learned, &cfg.type_labels);
    // Experiments: LC_OFF=extend,same_ci,prefer,weaken turns uses off.
    if let Ok(off) = std::env::var("LC_OFF") {
        for w in off.split(',') {
            match w {
                "extend" => ix.uses.extend = false,
                "same_ci" => ix.uses.same_ci = false,
                "prefer" => ix.uses.prefer = false,
                "weaken" => ix.uses.weaken = false,
                _ => {}
            }
        }
    }
    if let Some(n) = std::env::var("LC_SUPPORT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        ix.uses.extend_support = n;
    }
    if let Some(f) = std::env::var("LC_LIFT").ok().and_then(|v| v.parse().ok()) {
        ix.uses.extend_lift = f;
    }
    if let Some(f) = std::env::var("LC_MEDIAN").ok().and_then(|v| v.parse().ok()) {
        ix.uses.median_factor = f;
    }
    (!ix.is_empty()).then(|| Arc::new(ix))
}

/// One synthetic scenario: edges learned from its first half, and the second half
/// scored without and with them.
#[derive(Debug, Clone, Serialize)]
pub struct SplitResult {
    pub edges: usize,
    pub without: Scores,
    pub with: Scores,
}

/// The first event's start at or after which events are in the second half: the median
/// start of the firing events.
fn cut_of(alerts: &[Alert]) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut starts: Vec<_> = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .map(|a| a.starts_at)
        .collect();
    starts.sort();
    starts.get(starts.len() / 2).copied()
}

/// Learns from the alerts of `scn` that start before the median start, then correlates
/// the rest with and without the graph and scores both against the truth of the rest.
pub fn split_scenario(
    scn: &Scenario,
    ccfg: &CorrelateConfig,
    lcfg: &LearnConfig,
) -> Result<SplitResult, EvalError> {
    let alerts = parse_alerts(&scn.alerts)?;
    let topo = Topology::from_file(&scn.cmdb);
    let Some(cut) = cut_of(&alerts) else {
        let s = score(&Truth::default(), &[], &[]);
        return Ok(SplitResult {
            edges: 0,
            without: s.clone(),
            with: s,
        });
    };
    let (first, second): (Vec<Alert>, Vec<Alert>) =
        alerts.into_iter().partition(|a| a.starts_at < cut);
    let learned = learn_alerts(&topo, &first, lcfg);
    let graph = index(&learned, lcfg);
    if std::env::var_os("LC_DEBUG").is_some() {
        for e in &learned.edges {
            eprintln!(
                "seed {} {:?} for{}: {} -> {} support {} lift {:.1} lag {:.0}/{:.0} {:?}",
                scn.seed,
                scn.knobs.lag,
                scn.knobs.for_max_min,
                e.cause,
                e.effect,
                e.support,
                e.score,
                e.lag_seconds.median,
                e.lag_seconds.p90,
                e.scope
            );
        }
    }
    let later: BTreeSet<&Fingerprint> = second.iter().map(|a| &a.fingerprint).collect();
    let truth = Truth {
        alerts: scn
            .truth
            .alerts
            .iter()
            .filter(|(fp, _)| later.contains(fp))
            .map(|(fp, g)| (fp.clone(), *g))
            .collect(),
        groups: scn.truth.groups.clone(),
    };
    let run = |g: Option<Arc<CausalIndex>>| {
        let out = replay_tracked_with(&topo, &CiMapper::default(), ccfg.clone(), g, second.clone());
        let incidents: Vec<Vec<Fingerprint>> = out
            .incidents
            .iter()
            .map(|i| i.alert_fingerprints.iter().cloned().collect())
            .collect();
        let roots: Vec<Option<String>> = out.incidents.iter().map(incident_root).collect();
        score(&truth, &incidents, &roots)
    };
    Ok(SplitResult {
        edges: graph.as_ref().map_or(0, |g| g.edge_count()),
        without: run(None),
        with: run(graph.clone()),
    })
}

/// One grid cell split-scored on `seeds`: scorers `[without, with]`, and the mean
/// number of edges learned.
pub fn run_cell(
    cell: &Cell,
    seeds: &[u64],
    ccfg: &CorrelateConfig,
    lcfg: &LearnConfig,
) -> Result<(CellResult, f64), EvalError> {
    let rs: Vec<SplitResult> = seeds
        .iter()
        .map(|&s| split_scenario(&generate_with(s, size_for_seed(s), &cell.knobs), ccfg, lcfg))
        .collect::<Result<_, _>>()?;
    let without: Vec<&Scores> = rs.iter().map(|r| &r.without).collect();
    let with: Vec<&Scores> = rs.iter().map(|r| &r.with).collect();
    let edges = rs.iter().map(|r| r.edges as f64).sum::<f64>() / rs.len().max(1) as f64;
    Ok((
        CellResult {
            cell: cell.clone(),
            seeds: seeds.to_vec(),
            scorers: vec![CellScores::of(&without), CellScores::of(&with)],
        },
        edges,
    ))
}

/// Nezha: learned from one day, scored on another.
#[derive(Debug, Clone, Serialize)]
pub struct NezhaSplit {
    pub learned_on: String,
    pub scored_on: String,
    pub edges: usize,
    pub without: nezha::DayResult,
    pub with: nezha::DayResult,
}

/// Learns from `learn_day`'s alerts and scores `score_day` without and with the graph.
pub fn nezha_split(
    learn_day: &nezha::Day,
    score_day: &nezha::Day,
    ccfg: &CorrelateConfig,
    lcfg: &LearnConfig,
    s: nezha::Settings,
) -> NezhaSplit {
    let topo = Topology::from_file(&learn_day.cmdb);
    let alerts: Vec<Alert> = nezha::alert_events(&learn_day.episodes)
        .into_iter()
        .map(|e| e.1)
        .collect();
    let learned = learn_alerts(&topo, &alerts, lcfg);
    let graph = index(&learned, lcfg);
    if std::env::var_os("LC_DEBUG").is_some() {
        for e in &learned.edges {
            eprintln!(
                "nezha {}: {} -> {} support {} lift {:.1} lag {:.0}/{:.0} {:?}",
                learn_day.day,
                e.cause,
                e.effect,
                e.support,
                e.score,
                e.lag_seconds.median,
                e.lag_seconds.p90,
                e.scope
            );
        }
    }
    let d = score_day;
    let run = |g| {
        let mut r = nezha::score_day_with(&d.cmdb, &d.episodes, &d.faults, ccfg, s, g);
        r.day = d.day.clone();
        r.pods = d.pods;
        r
    };
    NezhaSplit {
        learned_on: learn_day.day.clone(),
        scored_on: d.day.clone(),
        edges: graph.as_ref().map_or(0, |g| g.edge_count()),
        without: run(None),
        with: run(graph.clone()),
    }
}

/// Telecom: learned from the alarms before the median start, the storm after it run
/// without and with the graph.
#[derive(Debug, Clone, Serialize)]
pub struct TelecomSplit {
    pub learned_alarms: usize,
    pub scored_alarms: usize,
    pub edges: usize,
    /// Of the learned edges, those the experts drew.
    pub edges_in_dag: usize,
    pub without: StormStats,
    pub with: StormStats,
}

pub fn telecom_split(
    alarms: &[Alarm],
    links: &[(u32, u32)],
    dag: &[(u32, u32)],
    hold: i64,
    ccfg: &CorrelateConfig,
    lcfg: &LearnConfig,
) -> TelecomSplit {
    let mut starts: Vec<i64> = alarms.iter().map(|a| a.start).collect();
    starts.sort_unstable();
    let cut = starts.get(starts.len() / 2).copied().unwrap_or(0);
    let (first, second): (Vec<Alarm>, Vec<Alarm>) =
        alarms.iter().cloned().partition(|a| a.start < cut);
    let (learned, _) = super::causality::run(&first, links, dag, lcfg);
    let graph = index(&learned, lcfg);
    let truth: BTreeSet<(u32, u32)> = dag.iter().copied().collect();
    let kind = |n: &str| n.strip_prefix("alarm_")?.parse::<u32>().ok();
    let edges_in_dag = learned
        .edges
        .iter()
        .filter(|e| {
            kind(&e.cause)
                .zip(kind(&e.effect))
                .is_some_and(|p| truth.contains(&p))
        })
        .count();
    let run = |g| telecom::run_with(&second, links, dag, hold, ccfg, g).sift;
    TelecomSplit {
        learned_alarms: first.len(),
        scored_alarms: second.len(),
        edges: graph.as_ref().map_or(0, |g| g.edge_count()),
        edges_in_dag,
        without: run(None),
        with: run(graph.clone()),
    }
}
