//! The correlation evaluation harness: a seeded generator of synthetic estates and alert
//! streams with known ground truth, a scorer that compares a grouping of alerts into
//! incidents against that truth, and naive baselines scored on the same alerts.
//!
//! What it is for: measuring, on event time and without a daemon, how well a grouping
//! policy turns alert noise into incidents (pairwise precision / recall / F1 over
//! distinct alerts, root-cause top-1, incidents per true fault), and comparing it with
//! what an operator gets from Alertmanager grouping or a plain time window. `sift-eval`
//! drives it; the scenarios it writes can be fed to `sift replay`. [`grid`] sweeps the
//! generator's [`Knobs`] (worlds sift was not tuned on) and reports the mean and the
//! worst cell; [`nezha`] and [`telecom`] turn two public real data sets into alerts and a
//! CMDB and score sift on them (docs/correlation-eval.md).
//!
//! What it must not do: encode any knowledge of sift's grouping policy. The generator
//! models how faults propagate through a real estate (impact flows from a failed CI to
//! what depends on it, with delays that grow with distance) and how monitoring reports
//! them (re-sends, flapping, aliases, unknown CIs, noise); the scorer only reads the
//! incidents' alert lists and root CIs. It is test and tooling code: deterministic for a
//! seed, no I/O, no clock reads, no new dependencies (its PRNG is a splitmix64).

mod baseline;
pub mod causality;
mod generate;
pub mod grid;
pub mod learned;
pub mod nezha;
pub mod problem;
mod score;
pub mod telecom;

pub use baseline::{Grouping, group_by_labels, recent_dependency, time_window};
pub use generate::{Knobs, LabelStyle, Lag, generate, generate_with};
pub use score::{Scores, score};

use std::collections::BTreeMap;

use chrono::Duration;
use serde::Serialize;

use sift::alert::{Alert, Fingerprint};
use sift::cmdb::{CiMapper, CmdbFile, Topology};
use sift::correlate::CorrelateConfig;
use sift::sources::alertmanager::parse_line;
use sift::sources::{Normalize, SourceError};

/// How big a synthetic estate is (number of CIs, roughly; the seed varies it ±15%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EstateSize {
    /// ~50 CIs, a handful of faults.
    Small,
    /// ~500 CIs.
    Medium,
    /// ~2,500 CIs.
    Large,
    /// ~10,000 CIs.
    Huge,
}

impl EstateSize {
    /// The size `sift-eval` uses for a seed: cycles through all four so that any four
    /// consecutive seeds cover small to huge.
    pub fn for_seed(seed: u64) -> Self {
        match seed % 4 {
            0 => Self::Medium,
            1 => Self::Small,
            2 => Self::Large,
            _ => Self::Huge,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "small" => Self::Small,
            "medium" => Self::Medium,
            "large" => Self::Large,
            "huge" => Self::Huge,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
            Self::Huge => "huge",
        }
    }
}

/// One true group: a fault (its root CI and everything it made alert) or one noise alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrueGroup {
    pub id: usize,
    pub kind: GroupKind,
    /// The CI the fault started on; `None` when that CI is not in the CMDB.
    pub root: Option<String>,
    /// Whether the root raised an alert; `false` when only what depends on it did (an
    /// unmonitored root, see `Knobs::silent_roots`).
    pub root_alerted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupKind {
    Fault,
    Noise,
}

/// The ground truth of a scenario: every distinct alert's true group, and each group's
/// root CI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Truth {
    /// Dedup fingerprint (as sift computes it) → index into `groups`.
    pub alerts: BTreeMap<Fingerprint, usize>,
    pub groups: Vec<TrueGroup>,
}

impl Truth {
    pub fn root_of(&self, group: usize) -> Option<&str> {
        self.groups.get(group).and_then(|g| g.root.as_deref())
    }
}

/// A synthetic estate, the alert stream it produced, and the truth behind the stream.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub size: EstateSize,
    /// The world it was generated in.
    pub knobs: Knobs,
    pub cmdb: CmdbFile,
    /// JSON lines in arrival order, one Alertmanager alert object per line (the format
    /// `sift replay --alerts` reads).
    pub alerts: Vec<String>,
    pub truth: Truth,
}

/// The scores of sift and of each baseline on one scenario.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub cis: usize,
    /// Alert events (lines), re-sends and resolves included.
    pub events: usize,
    /// Distinct alerts (fingerprints).
    pub alerts: usize,
    pub true_groups: usize,
    pub sift: Scores,
    pub am_alertname: Scores,
    pub am_job: Scores,
    pub window: Scores,
    pub dependency: Scores,
}

/// The names of the rows `Evaluation::rows` yields, in order.
pub const ROW_NAMES: [&str; 5] = [
    "sift",
    "am group_by alertname",
    "am group_by job",
    "time window 5m",
    "dependency alerted 10m",
];

impl Evaluation {
    pub fn rows(&self) -> [&Scores; 5] {
        [
            &self.sift,
            &self.am_alertname,
            &self.am_job,
            &self.window,
            &self.dependency,
        ]
    }
}

/// The root CI an incident names: the confirmed root, or the suspected (silent) one the
/// policy names when only dependents alert. The one place the harness reads it.
pub fn incident_root(i: &sift::incident::Incident) -> Option<String> {
    i.root_cause_ci.clone()
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("alert line {line}: {error}")]
    Parse { line: usize, error: SourceError },
    #[error("the scenario of seed {seed} has no alerts")]
    NoAlerts { seed: u64 },
}

/// Parses a scenario's lines exactly as `sift replay` does.
pub fn parse_alerts(lines: &[String]) -> Result<Vec<Alert>, EvalError> {
    let n = Normalize::default();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| parse_line(l, &n).map_err(|error| EvalError::Parse { line: i + 1, error }))
        .collect()
}

/// `EVAL_FIXED_WINDOW=1` (env): the harnesses run with the fixed `window` instead of the
/// default `window = "auto"` (the windows the history's lags give, as `sift replay`
/// learns them): a before/after in one build.
pub fn auto_window_from_env(cfg: &mut CorrelateConfig) {
    cfg.auto_window &= std::env::var_os("EVAL_FIXED_WINDOW").is_none();
}

/// `EVAL_AUTO_DEBUG=1` (env): prints the windows `learnt` set, after `what`.
pub fn debug_windows(what: &str, learnt: &sift::replay::Learnt) {
    if std::env::var_os("EVAL_AUTO_DEBUG").is_some() {
        eprintln!("{what}: windows set {:?}", learnt.windows);
    }
}

/// The replay benchmark's input: the huge estate of one seed and its alert stream repeated
/// day after day (each repeat shifted past the end of the previous one) up to `events`
/// alert events. `sift-eval --replay-bench` and `benches/replay.rs` time `replay::run`
/// over it.
#[derive(Debug, Clone)]
pub struct ReplayWorkload {
    pub cmdb: CmdbFile,
    pub alerts: Vec<Alert>,
    /// How many times the seed's stream was laid end to end (the last one cut short).
    pub repeats: usize,
}

/// Builds the replay workload of `seed` with `events` alert events (see [`ReplayWorkload`]).
pub fn replay_workload(seed: u64, events: usize) -> Result<ReplayWorkload, EvalError> {
    let scn = generate::generate(seed, EstateSize::Huge);
    let base = parse_alerts(&scn.alerts)?;
    let (Some(first), Some(last)) = (
        base.iter().map(|a| a.starts_at).min(),
        base.iter()
            .map(|a| a.ends_at.unwrap_or(a.starts_at).max(a.starts_at))
            .max(),
    ) else {
        return Err(EvalError::NoAlerts { seed });
    };
    let period = (last - first) + Duration::hours(1);
    let mut alerts = Vec::with_capacity(events);
    let mut repeats = 0;
    while alerts.len() < events {
        let shift = period * repeats as i32;
        for a in base.iter().take(events - alerts.len()) {
            let mut a = a.clone();
            a.starts_at += shift;
            a.ends_at = a.ends_at.map(|e| e + shift);
            alerts.push(a);
        }
        repeats += 1;
    }
    Ok(ReplayWorkload {
        cmdb: scn.cmdb,
        alerts,
        repeats,
    })
}

/// Replays a scenario through sift (default config and mapper) and through the baselines,
/// and scores each against the scenario's truth.
pub fn evaluate(scn: &Scenario) -> Result<Evaluation, EvalError> {
    let alerts = parse_alerts(&scn.alerts)?;
    let topo = Topology::from_file(&scn.cmdb);
    let mapper = CiMapper::default();
    let events = alerts.len();
    let am_alertname = group_by_labels(
        &alerts,
        &topo,
        &mapper,
        &["alertname"],
        Duration::minutes(5),
    );
    let am_job = group_by_labels(&alerts, &topo, &mapper, &["job"], Duration::minutes(5));
    let window = time_window(&alerts, &topo, &mapper, Duration::minutes(5));
    let dependency = recent_dependency(&alerts, &topo, &mapper, Duration::minutes(10));
    let mut cfg = CorrelateConfig::default();
    // Experiments: EVAL_WINDOW_S / EVAL_LATE_S override the windows (seconds; the first
    // fixes the window, as `EVAL_FIXED_WINDOW=1` does),
    // EVAL_SILENT the silent-hop limit.
    if let Some(n) = std::env::var("EVAL_SILENT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.max_silent_hops = n;
    }
    if let Some(s) = std::env::var("EVAL_WINDOW_S")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.window = chrono::Duration::seconds(s);
        cfg.auto_window = false;
    }
    if let Some(s) = std::env::var("EVAL_LATE_S")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.late_root_window = chrono::Duration::seconds(s);
    }
    // `EVAL_HOLD_ORACLE=1`: the generator's own `for:` per rule instead (what learning
    // holds could reach at best).
    if std::env::var_os("EVAL_HOLD_ORACLE").is_some() {
        cfg.learn_holds = false;
        for a in &alerts {
            let name = a.labels.get("alertname").unwrap_or_default();
            let hold = scn.knobs.for_clause(scn.seed, name);
            if hold > chrono::Duration::zero() {
                cfg.rule_hold.insert(name.to_string(), hold);
            }
        }
    }
    // As `sift replay` runs: with the rules' holds learned from the history itself
    // (`EVAL_NO_HOLDS=1`: none; `EVAL_HOLD_DEBUG=1` prints each against the generator's).
    cfg.learn_holds &= std::env::var_os("EVAL_NO_HOLDS").is_none();
    // `EVAL_NO_ORPHANS=1`: without the orphan rule (a before/after in one run).
    cfg.orphan_links &= std::env::var_os("EVAL_NO_ORPHANS").is_none();
    if std::env::var_os("EVAL_HOLD_DEBUG").is_some() {
        for x in sift::replay::learn_holds(&topo, &mapper, &alerts) {
            let truth = scn.knobs.for_clause(scn.seed, &x.kind).num_seconds();
            eprintln!(
                "{} {} learned {} true {truth} n={} p25={} p75={}",
                scn.seed, x.kind, x.hold_seconds, x.samples, x.lag_p25, x.lag_p75
            );
        }
    }
    auto_window_from_env(&mut cfg);
    let learnt = sift::replay::with_learned(cfg, &topo, &mapper, &alerts);
    debug_windows(&scn.seed.to_string(), &learnt);
    let cfg = learnt.cfg;
    let out = sift::replay::run(&topo, &mapper, cfg, Vec::new(), alerts);
    let incidents: Vec<Vec<Fingerprint>> = out
        .incidents
        .iter()
        .map(|i| i.alert_fingerprints.iter().cloned().collect())
        .collect();
    let roots: Vec<Option<String>> = out.incidents.iter().map(incident_root).collect();
    let t = &scn.truth;
    Ok(Evaluation {
        cis: scn.cmdb.cis.len(),
        events,
        alerts: t.alerts.len(),
        true_groups: t.groups.len(),
        sift: score(t, &incidents, &roots),
        am_alertname: score(t, &am_alertname.incidents, &am_alertname.roots),
        am_job: score(t, &am_job.incidents, &am_job.roots),
        window: score(t, &window.incidents, &window.roots),
        dependency: score(t, &dependency.incidents, &dependency.roots),
    })
}

/// Incidents of a replay, and the incident each firing event's alert sat in.
#[derive(Debug)]
pub struct TrackedReplay {
    /// Incidents by number, merged ones left out (as `sift replay` lists them).
    pub incidents: Vec<sift::incident::Incident>,
    /// Per input alert: for a firing event, the id of the incident its alert was in right
    /// after the event (followed through later merges); `None` for resolves and alerts
    /// that joined no incident.
    pub incident_of: Vec<Option<String>>,
}

/// The CMDB knobs of the probes (`eval_classes`, `gap_probe`) from `CMDB=missing,spurious,absent`
/// (e.g. `CMDB=0.2,0.1,0.05`, as the grid's 20% cell), on top of `knobs`.
pub fn cmdb_knobs_from_env(mut knobs: Knobs) -> Knobs {
    if let Ok(v) = std::env::var("CMDB") {
        let f: Vec<f64> = v.split(',').filter_map(|x| x.parse().ok()).collect();
        knobs.cmdb_missing = f.first().copied().unwrap_or(0.0);
        knobs.cmdb_spurious = f.get(1).copied().unwrap_or(0.0);
        knobs.cmdb_absent = f.get(2).copied().unwrap_or(0.0);
    }
    knobs
}

/// Why the engine placed alert `fp`, from the timeline entries of `changes` that name it:
/// kind, rule, path, lag and silent CIs of each (for the probes that print timelines).
pub fn why_placed(changes: &sift::correlate::Changes, fp: &Fingerprint) -> String {
    changes
        .timeline
        .iter()
        .filter(|t| t.detail.to_json().to_string().contains(fp.as_str()))
        .map(|t| {
            let v = t.detail.to_json();
            let r = &v["reason"];
            format!(
                "{:?} {} path {} lag {} silent {}",
                t.kind, r["rule"], r["path"], r["lag_seconds"], r["silent"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The incident that absorbed incident `id` through merges (itself when none did).
/// Bounded: merges form chains towards older incidents, never loops, but a bad chain
/// must not hang a harness.
pub fn final_incident(engine: &sift::correlate::Engine, id: &str) -> String {
    let mut cur = id.to_string();
    for _ in 0..64 {
        match engine
            .incident(&cur)
            .and_then(|i| i.enrichment.get("merged_into"))
            .and_then(|v| v.as_str())
        {
            Some(next) if next != cur => cur = next.to_string(),
            _ => break,
        }
    }
    cur
}

/// Replays `alerts` in order through a fresh engine exactly as `sift replay` does
/// (`replay::run`: no changes, no ticks), recording where each firing event landed.
/// Real monitoring re-fires the same alert (same labels, same fingerprint) many times a
/// day; this tells which incident each firing episode went to, which the final
/// incidents' alert lists cannot.
pub fn replay_tracked(
    topo: &Topology,
    mapper: &CiMapper,
    cfg: CorrelateConfig,
    alerts: Vec<Alert>,
) -> TrackedReplay {
    replay_tracked_with(topo, mapper, cfg, None, alerts)
}

/// `replay_tracked` with a learned causality graph set on the engine (`None`: exactly
/// `replay_tracked`).
pub fn replay_tracked_with(
    topo: &Topology,
    mapper: &CiMapper,
    cfg: CorrelateConfig,
    causal: Option<std::sync::Arc<sift::correlate::CausalIndex>>,
    alerts: Vec<Alert>,
) -> TrackedReplay {
    let mut engine = sift::correlate::Engine::new(cfg).without_change_log();
    engine.set_causality(causal);
    let mut incident_of = Vec::with_capacity(alerts.len());
    for a in alerts {
        let fp = a.fingerprint.clone();
        let firing = a.status == sift::alert::AlertStatus::Firing;
        engine.ingest(topo, mapper, a);
        incident_of.push(if firing {
            engine
                .alert(&fp)
                .and_then(|r| r.incident_id.as_deref().map(String::from))
        } else {
            None
        });
    }
    let mut final_id: std::collections::HashMap<String, String> = Default::default();
    for id in incident_of.iter_mut().flatten() {
        if let Some(f) = final_id.get(id.as_str()) {
            *id = f.clone();
            continue;
        }
        let cur = final_incident(&engine, id);
        final_id.insert(id.clone(), cur.clone());
        *id = cur;
    }
    let mut incidents: Vec<sift::incident::Incident> = engine
        .incidents()
        .filter(|i| !i.enrichment.contains_key("merged_into"))
        .cloned()
        .collect();
    incidents.sort_by_key(sift::incident::Incident::number);
    TrackedReplay {
        incidents,
        incident_of,
    }
}

/// splitmix64: tiny, fast, and good enough to drive a generator; a seed fully
/// determines the sequence on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EED_5EED_D1CE_F00D)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift (no modulo bias worth
    /// mentioning at these ranges).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests;
