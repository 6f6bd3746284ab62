//! `sift replay`: the whole pipeline offline, in memory, on event time. It drives the same
//! `Engine` the daemon drives, with no ticks and no waiting, so its incidents are what the
//! daemon would have opened for the same alerts in the same order.

use crate::alert::Alert;
use crate::cmdb::{Change, CiMapper, Topology};
use crate::correlate::{AlertRecord, CorrelateConfig, Engine};
use crate::incident::Incident;

/// The result of a replay: incidents by number, and the deduplicated alerts.
#[derive(Debug)]
pub struct ReplayOutput {
    pub incidents: Vec<Incident>,
    pub alerts: Vec<AlertRecord>,
}

/// Runs `alerts` in the given order (the order they arrived in) through a fresh engine
/// that knows `changes` (maintenance windows) from the start.
pub fn run(
    topo: &Topology,
    mapper: &CiMapper,
    cfg: CorrelateConfig,
    changes: impl IntoIterator<Item = Change>,
    alerts: impl IntoIterator<Item = Alert>,
) -> ReplayOutput {
    let mut engine = Engine::new(cfg).without_change_log();
    for c in changes {
        engine.upsert_change(c);
    }
    for a in alerts {
        engine.ingest(topo, mapper, a);
    }
    // Incidents folded into another (merged) hold no alerts of their own any more.
    let mut incidents: Vec<Incident> = engine
        .incidents()
        .filter(|i| !i.enrichment.contains_key("merged_into"))
        .cloned()
        .collect();
    incidents.sort_by_key(Incident::number);
    let mut alerts: Vec<AlertRecord> = engine.alerts().cloned().collect();
    alerts.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    ReplayOutput { incidents, alerts }
}

/// The rule holds (`causality::holds`) `alerts` show over `topo`, as the daemon's learner
/// would find them in its stored history.
pub fn learn_holds(
    topo: &Topology,
    mapper: &CiMapper,
    alerts: &[Alert],
) -> Vec<crate::causality::holds::Hold> {
    use crate::causality::{History, LearnConfig, holds};
    let lc = LearnConfig::default();
    let mut h = History::new().with_topology(topo);
    for a in alerts {
        h.push_alert(topo, mapper, &lc, a);
    }
    holds::learn_holds(&h, holds::HORIZON_S, holds::SPREAD)
}

/// The propagation windows (`causality::lags`) `alerts` show over `topo`, their onsets
/// taken with `cfg`'s holds (configured and filled in).
pub fn learn_windows(
    topo: &Topology,
    mapper: &CiMapper,
    cfg: &CorrelateConfig,
    alerts: &[Alert],
) -> Vec<crate::causality::lags::RelationWindow> {
    let onsets: Vec<_> = alerts
        .iter()
        .filter(|a| a.status == crate::alert::AlertStatus::Firing)
        .filter_map(|a| {
            let n = mapper.map(topo, &a.labels)?;
            let name = a.labels.get("alertname").unwrap_or_default();
            Some((n, (a.starts_at - cfg.hold(name)).timestamp()))
        })
        .collect();
    crate::causality::lags::learn(topo, &onsets)
}

/// What a daemon that had seen this history would have learned, and `sift replay` runs
/// with: `cfg` with the holds `alerts` show (`learn_holds`) added for the alert names its
/// `rule_hold` does not list, when `cfg.learn_holds`, and with `window = "auto"`
/// (`cfg.auto_window`) the windows they show (`learn_windows`). Returns the holds added
/// and the windows set.
pub fn with_learned(
    mut cfg: CorrelateConfig,
    topo: &Topology,
    mapper: &CiMapper,
    alerts: &[Alert],
) -> Learnt {
    let holds = if cfg.learn_holds {
        cfg.fill_holds(&learn_holds(topo, mapper, alerts))
    } else {
        Vec::new()
    };
    let windows = if cfg.auto_window {
        let w = learn_windows(topo, mapper, &cfg, alerts);
        cfg.fill_windows(&w)
    } else {
        Vec::new()
    };
    Learnt {
        cfg,
        holds,
        windows,
    }
}

/// `with_learned`'s answer.
#[derive(Debug, Clone)]
pub struct Learnt {
    pub cfg: CorrelateConfig,
    /// Holds added: alert name, hold.
    pub holds: Vec<(String, chrono::Duration)>,
    /// Windows set: relation type (`lags::ALL`: the estate's), window.
    pub windows: Vec<(String, chrono::Duration)>,
}
