//! Learned causality against the experts' graph of the telecom alarm sets
//! (`telecom-24v/`, `telecom-18v/`): the alarms become alerts through the telecom
//! conversion (`super::telecom`), the device links (24V only) a CMDB, and the learner's
//! edges are scored against `DAG_edges.csv` (directed: `a → b` is right only when the
//! experts drew `a → b`). What it must not do: show the expert graph to the learner.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::telecom::{self, Alarm, TelecomError};
use sift::alert::AlertStatus;
use sift::causality::{History, LearnConfig, Learned, learn};
use sift::cmdb::{CiMapper, Topology};

#[derive(Debug, Clone, Serialize)]
pub struct CausalityScore {
    pub alarms: usize,
    pub types: usize,
    pub truth_edges: usize,
    pub learned_edges: usize,
    pub correct: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Learning alone (history built, pairs judged), not reading the files.
    pub learn_time: Duration,
}

/// The alarm type of a learned type name (`alarm_7` → 7).
fn kind(name: &str) -> Option<u32> {
    name.strip_prefix("alarm_")?.parse().ok()
}

/// Learns from `alarms` over `links` with `cfg` and scores the edges against `dag`.
pub fn run(
    alarms: &[Alarm],
    links: &[(u32, u32)],
    dag: &[(u32, u32)],
    cfg: &LearnConfig,
) -> (Learned, CausalityScore) {
    let topo = Topology::from_file(&telecom::cmdb(links, alarms));
    // Every alarm an alert of its own: an alarm raised again while the last one of its
    // type on its device is still active is an onset too (folding them, as the
    // correlation harness does, hides the repeats that carry the lag signal).
    let eps: Vec<telecom::Episode> = alarms
        .iter()
        .enumerate()
        .map(|(i, a)| telecom::Episode {
            kind: a.kind,
            device: a.device,
            start: a.start,
            end: a.end,
            alarms: vec![i],
        })
        .collect();
    let events = telecom::alert_events(alarms, &eps, 1_609_459_200);
    let began = Instant::now();
    let mut h = History::new().with_topology(&topo);
    let mapper = CiMapper::default();
    for (_, a) in events.iter().filter(|e| e.1.status == AlertStatus::Firing) {
        h.push_alert(&topo, &mapper, cfg, a);
    }
    let learned = learn(&h, cfg).expect("the harness passes a valid configuration");
    let learn_time = began.elapsed();
    let truth: HashSet<(u32, u32)> = dag.iter().copied().collect();
    let got: HashSet<(u32, u32)> = learned
        .edges
        .iter()
        .filter_map(|e| Some((kind(&e.cause)?, kind(&e.effect)?)))
        .collect();
    let correct = got.intersection(&truth).count();
    let precision = if got.is_empty() {
        0.0
    } else {
        correct as f64 / got.len() as f64
    };
    let recall = if truth.is_empty() {
        0.0
    } else {
        correct as f64 / truth.len() as f64
    };
    let f1 = if correct == 0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    let types: HashSet<u32> = alarms.iter().map(|a| a.kind).collect();
    let score = CausalityScore {
        alarms: alarms.len(),
        types: types.len(),
        truth_edges: truth.len(),
        learned_edges: got.len(),
        correct,
        precision,
        recall,
        f1,
        learn_time,
    };
    (learned, score)
}

fn read(path: &Path) -> Result<String, TelecomError> {
    std::fs::read_to_string(path).map_err(|source| TelecomError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `Alarm.csv`, `DAG_edges.csv` and, when present, `Topology_edges.csv` from `dir`.
pub fn run_dir(dir: &Path, cfg: &LearnConfig) -> Result<(Learned, CausalityScore), TelecomError> {
    let alarms = telecom::parse_alarms(&read(&dir.join("Alarm.csv"))?)?;
    let topo_path = dir.join("Topology_edges.csv");
    let links = if topo_path.exists() {
        telecom::parse_edges("Topology_edges.csv", &read(&topo_path)?)?
    } else {
        Vec::new()
    };
    let dag = telecom::parse_edges("DAG_edges.csv", &read(&dir.join("DAG_edges.csv"))?)?;
    Ok(run(&alarms, &links, &dag, cfg))
}
