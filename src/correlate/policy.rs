//! Where a new firing alert goes: the one place that decides grouping.
//!
//! Current policy: one active incident per CI; alerts without a CI group by their label
//! set minus instance-like labels (same alertname on many pods is one incident) while that
//! group has an active incident.

use crate::alert::Fingerprint;
use crate::cmdb::Topology;
use crate::cmdb::topology::Node;

use super::{AlertRecord, Engine};

/// The decision for one new firing alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Join(String),
    Open { key: String },
}

pub(super) fn place(
    engine: &Engine,
    topo: &Topology,
    node: Option<Node>,
    rec: &AlertRecord,
) -> Placement {
    let key = match node {
        Some(n) => format!("ci:{}", topo.ci(n).id),
        None => {
            let ignore = &engine.cfg.fallback_ignore_labels;
            let fp = Fingerprint::of_selected(&rec.labels, |k| !ignore.iter().any(|i| i == k));
            format!("group:{fp}")
        }
    };
    match engine.open_by_key.get(&key) {
        Some(id) => Placement::Join(id.clone()),
        None => Placement::Open { key },
    }
}
