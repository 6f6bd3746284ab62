//! `sift tune`: what a history says about the correlation settings.
//!
//! What it is for: an SRE hands sift a CMDB and a history of alerts (and, if they have
//! it, how operators grouped those alerts into incidents) and gets back the lags sift
//! measured (per alert rule: its hold-back, the `for:` that makes it fire late; per
//! relation type: how long after the CI it depends on a CI starts alerting), the
//! settings it recommends, and a backtest of each recommendation against the current
//! configuration. What it must not do: recommend from too little (a rule needs
//! `holds::MIN_SAMPLES` occurrences with an alert before them; an empty or tiny history
//! recommends nothing and says so), or change anything: it prints, the operator decides.
//!
//! Pure: no I/O, no clock; the CLI reads the files and prints the report.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::alert::{Alert, AlertStatus, Fingerprint};
use crate::causality::holds::{self, Hold};
use crate::causality::lags::{self, RelationWindow};
use crate::cmdb::{CiMapper, Topology};
use crate::correlate::CorrelateConfig;

/// One replay of the history.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Backtest {
    pub name: String,
    pub incidents: usize,
    pub alerts_per_incident: f64,
    pub largest_incident: usize,
    /// Against the operators' incidents, when given: pair F1 and B-cubed F1.
    pub pair_f1: Option<f64>,
    pub bcubed_f1: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TuneReport {
    pub alerts: usize,
    pub firing_starts: usize,
    pub holds: Vec<Hold>,
    /// Lags per relation type (and all together, `lags::ALL`), on onsets with the
    /// configured and recommended holds, and the windows `window = "auto"` would learn.
    pub relations: Vec<RelationWindow>,
    /// `[correlate.rule_hold]` entries recommended (holds learned and not configured).
    pub recommended_holds: BTreeMap<String, i64>,
    /// The `[correlate] window` recommended, when a change is: `auto` when windows were
    /// learned and replaying with them beats the fixed window against the operators'
    /// incidents (or, without those, the estate's window is a quarter or more away from
    /// the configured one); the configured duration when `auto` is set and the fixed
    /// window does better against the operators' incidents.
    pub recommended_window: Option<String>,
    pub backtests: Vec<Backtest>,
    /// Why nothing is recommended, when so.
    pub note: Option<String>,
}

/// Tunes on `alerts` (in arrival order) over `topo`, against `cfg`; `truth`, when given,
/// is the operators' grouping: each inner list one incident's alert fingerprints.
pub fn tune(
    topo: &Topology,
    mapper: &CiMapper,
    cfg: &CorrelateConfig,
    alerts: &[Alert],
    truth: Option<&[Vec<Fingerprint>]>,
) -> TuneReport {
    let found = crate::replay::learn_holds(topo, mapper, alerts);
    let mut with_holds = CorrelateConfig {
        learn_holds: true,
        ..cfg.clone()
    };
    let recommended: BTreeMap<String, i64> = with_holds
        .fill_holds(&found)
        .into_iter()
        .map(|(k, d)| (k, d.num_seconds()))
        .collect();
    let relations = crate::replay::learn_windows(topo, mapper, &with_holds, alerts);
    let firing_starts = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .map(|a| (&a.fingerprint, a.starts_at))
        .collect::<std::collections::HashSet<_>>()
        .len();
    let note = if found.is_empty() {
        Some(format!(
            "{firing_starts} firing alert starts: no alert rule has {} occurrences with an \
             alert before them on its CI or what it depends on; nothing recommended",
            holds::MIN_SAMPLES
        ))
    } else if recommended.is_empty() {
        Some("no rule holds its alerts back long enough to matter: nothing to change".into())
    } else {
        None
    };
    // Nothing learned: the configured holds, the fixed window.
    let plain = CorrelateConfig {
        auto_window: false,
        ..cfg.clone()
    };
    let mut backtests = vec![backtest(
        "configured, nothing learned",
        topo,
        mapper,
        &plain,
        alerts,
        truth,
    )];
    if !recommended.is_empty() {
        let fixed = CorrelateConfig {
            auto_window: false,
            ..with_holds.clone()
        };
        backtests.push(backtest(
            "with the learned holds",
            topo,
            mapper,
            &fixed,
            alerts,
            truth,
        ));
    }
    let mut with_windows = CorrelateConfig {
        auto_window: true,
        ..with_holds
    };
    let learnt = with_windows.fill_windows(&relations);
    let estate = learnt.iter().find(|(r, _)| r == lags::ALL).map(|(_, d)| *d);
    let mut recommended_window = None;
    if let Some(w) = estate {
        let b = backtest(
            "with the learned holds and windows",
            topo,
            mapper,
            &with_windows,
            alerts,
            truth,
        );
        let base = backtests.last().expect("the first backtest");
        // Against the operators' incidents the replay decides; without them, a learned
        // window a quarter or more away from the configured one is worth trying, and
        // nothing says a configured `auto` is wrong.
        recommended_window = match (b.pair_f1, b.bcubed_f1, base.pair_f1, base.bcubed_f1) {
            (Some(p), Some(c), Some(p0), Some(c0)) => match (cfg.auto_window, p + c > p0 + c0) {
                (false, true) => Some("auto".to_string()),
                (true, false) => Some(crate::duration::Dur(cfg.window).to_string()),
                _ => None,
            },
            _ => {
                let (w, now) = (w.num_seconds() as f64, cfg.window.num_seconds() as f64);
                (!cfg.auto_window && (w - now).abs() >= now / 4.0).then(|| "auto".to_string())
            }
        };
        backtests.push(b);
    }
    TuneReport {
        alerts: alerts.len(),
        firing_starts,
        holds: found,
        relations,
        recommended_holds: recommended,
        recommended_window,
        backtests,
        note,
    }
}

fn backtest(
    name: &str,
    topo: &Topology,
    mapper: &CiMapper,
    cfg: &CorrelateConfig,
    alerts: &[Alert],
    truth: Option<&[Vec<Fingerprint>]>,
) -> Backtest {
    let out = crate::replay::run(topo, mapper, cfg.clone(), Vec::new(), alerts.to_vec());
    let sizes: Vec<usize> = out
        .incidents
        .iter()
        .map(|i| i.alert_fingerprints.len())
        .collect();
    let total: usize = sizes.iter().sum();
    let (pair_f1, bcubed_f1) = match truth {
        Some(t) => {
            let groups: Vec<Vec<Fingerprint>> = out
                .incidents
                .iter()
                .map(|i| i.alert_fingerprints.iter().cloned().collect())
                .collect();
            let (p, b) = agreement(t, &groups);
            (Some(p), Some(b))
        }
        None => (None, None),
    };
    Backtest {
        name: name.into(),
        incidents: sizes.len(),
        alerts_per_incident: if sizes.is_empty() {
            0.0
        } else {
            total as f64 / sizes.len() as f64
        },
        largest_incident: sizes.iter().copied().max().unwrap_or(0),
        pair_f1,
        bcubed_f1,
    }
}

/// Pair F1 and B-cubed F1 of `predicted` against `truth`, over the alerts `truth` lists
/// (an alert in no predicted group is a group of its own; in several, the first).
pub fn agreement(truth: &[Vec<Fingerprint>], predicted: &[Vec<Fingerprint>]) -> (f64, f64) {
    let mut true_of: HashMap<&Fingerprint, usize> = HashMap::new();
    for (g, fps) in truth.iter().enumerate() {
        for fp in fps {
            true_of.entry(fp).or_insert(g);
        }
    }
    let mut pred_of: HashMap<&Fingerprint, usize> = HashMap::new();
    for (g, fps) in predicted.iter().enumerate() {
        for fp in fps.iter().filter(|f| true_of.contains_key(f)) {
            pred_of.entry(fp).or_insert(g);
        }
    }
    let mut next = predicted.len();
    let mut cells: HashMap<(usize, usize), u64> = HashMap::new();
    for (&fp, &t) in &true_of {
        let p = *pred_of.entry(fp).or_insert_with(|| {
            next += 1;
            next
        });
        *cells.entry((t, p)).or_default() += 1;
    }
    let mut t_size: HashMap<usize, u64> = HashMap::new();
    let mut p_size: HashMap<usize, u64> = HashMap::new();
    for (&(t, p), &n) in &cells {
        *t_size.entry(t).or_default() += n;
        *p_size.entry(p).or_default() += n;
    }
    let pairs = |n: u64| (n * n.saturating_sub(1) / 2) as f64;
    let both: f64 = cells.values().map(|&n| pairs(n)).sum();
    let tp: f64 = t_size.values().map(|&n| pairs(n)).sum();
    let pp: f64 = p_size.values().map(|&n| pairs(n)).sum();
    let f1 = |p: f64, r: f64| {
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    };
    let precision = if pp > 0.0 { both / pp } else { 1.0 };
    let recall = if tp > 0.0 { both / tp } else { 1.0 };
    let total = true_of.len().max(1) as f64;
    let (mut bp, mut br) = (0.0, 0.0);
    for (&(t, p), &n) in &cells {
        bp += n as f64 * n as f64 / p_size[&p] as f64;
        br += n as f64 * n as f64 / t_size[&t] as f64;
    }
    (f1(precision, recall), f1(bp / total, br / total))
}

/// The report as text: lags, recommendations (as TOML to paste), backtests.
pub fn render(r: &TuneReport) -> String {
    let mut s = format!(
        "{} alert events, {} firing alert starts\n\nalert rules (hold = the lower quartile of \
         the lags, when they bunch; lags are from the earliest alert before on the CI or what \
         it depends on):\n",
        r.alerts, r.firing_starts
    );
    s.push_str(&format!(
        "  {:<40} {:>7} {:>6} {:>6} {:>6} {:>6}\n",
        "rule", "samples", "p25", "p50", "p75", "hold"
    ));
    for h in &r.holds {
        s.push_str(&format!(
            "  {:<40} {:>7} {:>5}s {:>5}s {:>5}s {:>5}s\n",
            h.kind, h.samples, h.lag_p25, h.lag_median, h.lag_p75, h.hold_seconds
        ));
    }
    s.push_str(
        "\nrelation types (lag of the onset that starts a CI's trouble after the first onset \
         on the CI it depends on; propagation: the lags above coincidence; window: what \
         window = \"auto\" learns, \"*\" for the estate):\n",
    );
    for l in &r.relations {
        let w = l
            .window_s
            .map_or_else(|| "too few".to_string(), |w| format!("{w}s"));
        s.push_str(&format!(
            "  {:<20} {:>7} samples {:>7} propagation  median {:>5}s  p90 {:>5}s  window {w}\n",
            l.relation, l.samples, l.propagation, l.lag_median_s, l.lag_p90_s
        ));
    }
    if let Some(n) = &r.note {
        s.push_str(&format!("\n{n}\n"));
    }
    if !r.recommended_holds.is_empty() {
        s.push_str("\nrecommended (config file):\n[correlate.rule_hold]\n");
        for (k, v) in &r.recommended_holds {
            s.push_str(&format!("{} = \"{}m\"\n", toml_key(k), v / 60));
        }
    }
    if let Some(w) = &r.recommended_window {
        s.push_str(&format!(
            "\nrecommended (config file; auto: the learned windows, relearned as the history \
             grows):\n[correlate]\nwindow = \"{w}\"\n"
        ));
    }
    s.push_str("\nbacktest (replaying this history):\n");
    for b in &r.backtests {
        s.push_str(&format!(
            "  {:<36} {:>6} incidents  {:>6.2} alerts each  largest {:>5}",
            b.name, b.incidents, b.alerts_per_incident, b.largest_incident
        ));
        if let (Some(p), Some(c)) = (b.pair_f1, b.bcubed_f1) {
            s.push_str(&format!("  pair F1 {p:.3}  B-cubed F1 {c:.3}"));
        }
        s.push('\n');
    }
    s
}

/// A TOML key: bare when it can be, else quoted.
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(s: &str) -> Fingerprint {
        Fingerprint::from(s)
    }

    #[test]
    fn agreement_is_one_for_the_same_grouping_and_falls_when_split() {
        let t = vec![vec![fp("a"), fp("b")], vec![fp("c")]];
        assert_eq!(agreement(&t, &t), (1.0, 1.0));
        let split = vec![vec![fp("a")], vec![fp("b")], vec![fp("c")]];
        let (p, b) = agreement(&t, &split);
        assert_eq!(p, 0.0);
        assert!(b > 0.5 && b < 1.0, "{b}");
    }

    #[test]
    fn a_fast_estate_gets_a_shorter_learned_window_recommended() {
        use serde_json::json;
        // host-i ← app-i (runs_on), for 40 hosts.
        let n = 40;
        let cis: Vec<_> = (0..n)
            .flat_map(|i| {
                [
                    json!({"id": format!("host-{i}")}),
                    json!({"id": format!("app-{i}")}),
                ]
            })
            .collect();
        let relations: Vec<_> = (0..n)
            .map(|i| json!({"source": format!("app-{i}"), "target": format!("host-{i}"), "type": "runs_on"}))
            .collect();
        let file = serde_json::from_value(json!({"cis": cis, "relations": relations})).unwrap();
        let topo = Topology::from_file(&file);
        let t0 = chrono::Utc::now();
        let alert = |ci: String, name: &str, at: i64| {
            let mut labels = crate::alert::Labels::new();
            labels.insert("alertname".into(), name.into());
            labels.insert("ci".into(), ci);
            Alert {
                fingerprint: Fingerprint::of_labels(&labels),
                status: AlertStatus::Firing,
                labels,
                annotations: Default::default(),
                starts_at: t0 + chrono::Duration::seconds(at),
                ends_at: None,
                generator_url: None,
                source: crate::alert::Source::Alertmanager,
            }
        };
        // Host i fails at i hours; its application alerts 20 to 79 s later.
        let mut alerts = Vec::new();
        for i in 0..n {
            let at = i * 3600;
            alerts.push(alert(format!("host-{i}"), "HostDown", at));
            alerts.push(alert(
                format!("app-{i}"),
                "ProbeFailed",
                at + 20 + (i * 7) % 60,
            ));
        }
        let r = tune(
            &topo,
            &CiMapper::default(),
            &CorrelateConfig::default(),
            &alerts,
            None,
        );
        let all = r
            .relations
            .iter()
            .find(|w| w.relation == lags::ALL)
            .unwrap();
        assert_eq!(all.propagation, n as usize);
        let w = all.window_s.unwrap();
        assert!((120..=170).contains(&w), "{all:?}");
        // Too few lags for a window of runs_on's own.
        let own = r
            .relations
            .iter()
            .find(|w| w.relation == "runs_on")
            .unwrap();
        assert_eq!(own.window_s, None);
        // The default is `auto` already: nothing to change.
        assert_eq!(r.recommended_window, None);
        let fixed = CorrelateConfig {
            auto_window: false,
            ..Default::default()
        };
        let r = tune(&topo, &CiMapper::default(), &fixed, &alerts, None);
        assert_eq!(r.recommended_window.as_deref(), Some("auto"));
        let text = render(&r);
        assert!(text.contains("window = \"auto\""), "{text}");
        assert_eq!(r.backtests.len(), 2, "{:?}", r.backtests);
    }

    #[test]
    fn an_empty_history_recommends_nothing_and_says_why() {
        let topo = Topology::default();
        let r = tune(
            &topo,
            &CiMapper::default(),
            &CorrelateConfig::default(),
            &[],
            None,
        );
        assert!(r.recommended_holds.is_empty());
        assert_eq!(r.recommended_window, None);
        assert!(r.relations.is_empty());
        assert!(r.note.as_deref().unwrap().contains("nothing recommended"));
        assert_eq!(r.backtests.len(), 1);
        assert!(render(&r).contains("nothing recommended"));
    }
}
