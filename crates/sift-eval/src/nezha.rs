//! The Nezha Online Boutique fault-injection data (FSE'23, MIT) as sift would see it: the
//! per-pod metrics turned into Prometheus-style alerts, the call graph into a CMDB, and
//! the injected faults as the truth to score against.
//!
//! What it is for: measuring root-cause naming and grouping on real microservices that
//! nobody on the project generated. What it must not do: look at the fault list when
//! making alerts. The rules are set the way an SRE sets them from a pod's own history:
//!
//! - thresholds from the pod's own day of metrics, robustly: the median `m` and the
//!   median absolute deviation (σ̂ = 1.4826·MAD) of every sample of that day, which the
//!   few faulty minutes cannot move; a rule fires above `m + max(k·σ̂, rel·m, abs)` (or,
//!   for the success rate, below `m − max(k·σ̂, abs)`), with `k` = 5 by default;
//! - one alert per rule and pod, firing once the condition has held for the rule's
//!   `for:` (samples are a minute apart: `for: 1m` fires on the second breaching sample),
//!   resolved at the first sample that does not breach; a missing sample breaks a run;
//! - the rules ([`RULES`]): CPU rate (`for: 2m`), memory rate (`for: 2m`), server latency
//!   P90 and P99 and client (upstream) latency P99 (`for: 1m`), success rate (`for: 1m`,
//!   only where the pod reports one: a metric that reads 0 all day is no data).
//!
//! The CMDB: one CI per service named in `dependency.csv` with a call to or from another
//! named service (bare IP endpoints are unnamed, so they and the load generator, which
//! calls only IPs, are left out), plus every service with metrics; `Source` calls
//! `Target` becomes "caller depends on callee". A pod's service is its name minus the
//! last two `-` parts (Kubernetes deployment pods); alerts carry `pod` and `service`.
//!
//! The truth: a fault's group is every alert starting in `[inject_time, inject_time +
//! window]` on its root service or on a service that calls it, directly or not; other
//! alerts are each their own group. A fault counts as "root alerted" when an alert of its
//! group is on the root service, "only callers alerted" when its group has only callers'
//! alerts, and "unseen" when it has none. Root top-1: the incident holding most of the
//! fault's alerts names the root service.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use super::{GroupKind, Scores, TrueGroup, Truth, incident_root, replay_tracked_with, score};
use sift::alert::{Alert, AlertStatus, Fingerprint, Labels, Source};
use sift::cmdb::{Ci, CiMapper, CmdbFile, Relation, Topology};
use sift::correlate::CorrelateConfig;

#[derive(Debug, thiserror::Error)]
pub enum NezhaError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}, line {line}: {msg}")]
    Csv {
        what: String,
        line: usize,
        msg: String,
    },
    #[error("fault list {what}: {msg}")]
    Faults { what: String, msg: String },
    #[error("{0}: no pod metric files (*_metric.csv)")]
    NoMetrics(PathBuf),
}

/// Which way a metric breaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    High,
    Low,
}

/// One alert rule, applied to every pod.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub alertname: &'static str,
    pub severity: &'static str,
    /// Column of the pod metric file.
    pub column: &'static str,
    pub direction: Direction,
    /// The threshold is at least this share of the median away from it.
    pub rel: f64,
    /// ... and at least this far, in the metric's unit.
    pub abs: f64,
    /// `for:` in samples (minutes).
    pub for_min: usize,
}

pub const RULES: &[Rule] = &[
    Rule {
        alertname: "PodCpuHigh",
        severity: "warning",
        column: "CpuUsageRate(%)",
        direction: Direction::High,
        rel: 0.5,
        abs: 10.0,
        for_min: 2,
    },
    Rule {
        alertname: "PodMemoryHigh",
        severity: "warning",
        column: "MemoryUsageRate(%)",
        direction: Direction::High,
        rel: 0.2,
        abs: 5.0,
        for_min: 2,
    },
    Rule {
        alertname: "PodLatencyP90High",
        severity: "warning",
        column: "PodServerLatencyP90(s)",
        direction: Direction::High,
        rel: 1.0,
        abs: 0.01,
        for_min: 1,
    },
    Rule {
        alertname: "PodLatencyP99High",
        severity: "critical",
        column: "PodServerLatencyP99(s)",
        direction: Direction::High,
        rel: 1.0,
        abs: 0.02,
        for_min: 1,
    },
    Rule {
        alertname: "PodUpstreamLatencyHigh",
        severity: "warning",
        column: "PodClientLatencyP99(s)",
        direction: Direction::High,
        rel: 1.0,
        abs: 0.02,
        for_min: 1,
    },
    Rule {
        alertname: "PodSuccessRateLow",
        severity: "critical",
        column: "PodSuccessRate(%)",
        direction: Direction::Low,
        rel: 0.0,
        abs: 5.0,
        for_min: 1,
    },
];

/// A pod's metrics: sample times (Unix s) and, per column, a value per sample (`None`
/// when empty or not a number).
#[derive(Debug, Clone)]
pub struct PodSeries {
    pub pod: String,
    pub times: Vec<i64>,
    pub columns: HashMap<String, Vec<Option<f64>>>,
}

/// A deployment pod's service: its name minus the last two `-` parts
/// (`cartservice-579f59597d-wc2lz` → `cartservice`); `None` when it has fewer parts.
pub fn service_of(pod: &str) -> Option<&str> {
    let (rest, _) = pod.rsplit_once('-')?;
    let (svc, _) = rest.rsplit_once('-')?;
    (!svc.is_empty()).then_some(svc)
}

fn csv_err(what: &str, line: usize, msg: impl Into<String>) -> NezhaError {
    NezhaError::Csv {
        what: what.to_string(),
        line,
        msg: msg.into(),
    }
}

/// Parses one `<pod>_metric.csv` (`what` names it in errors). Rows are sorted by time.
pub fn parse_metrics(what: &str, text: &str) -> Result<PodSeries, NezhaError> {
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(csv_err(what, 1, "empty file"));
    };
    let names: Vec<&str> = header.trim_start_matches('\u{feff}').split(',').collect();
    let col = |n: &str| names.iter().position(|h| h.trim() == n);
    // The wall-clock `Time` string is the sample time; `TimeStamp` is a fallback (one pod
    // of the public data has every TimeStamp 2e8 s off while its Time is right).
    let time_col = col("Time");
    let ts = col("TimeStamp");
    if time_col.is_none() && ts.is_none() {
        return Err(csv_err(what, 1, "no Time or TimeStamp column"));
    }
    let pod_col = col("PodName").ok_or_else(|| csv_err(what, 1, "no PodName column"))?;
    let wanted: Vec<(String, usize)> = RULES
        .iter()
        .filter_map(|r| col(r.column).map(|i| (r.column.to_string(), i)))
        .collect();
    let mut rows: Vec<(i64, Vec<Option<f64>>)> = Vec::new();
    let mut pod = String::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != names.len() {
            return Err(csv_err(
                what,
                i + 1,
                format!("{} fields, the header has {}", cells.len(), names.len()),
            ));
        }
        let t = match (time_col.and_then(|c| wall_clock(cells[c])), ts) {
            (Some(t), _) => t,
            (None, Some(c)) => cells[c].trim().parse::<f64>().map_err(|_| {
                csv_err(
                    what,
                    i + 1,
                    format!("TimeStamp {:?} is not a number", cells[c]),
                )
            })? as i64,
            (None, None) => {
                return Err(csv_err(
                    what,
                    i + 1,
                    format!("Time {:?}", cells[time_col.unwrap_or(0)]),
                ));
            }
        };
        if pod.is_empty() {
            pod = cells[pod_col].trim().to_string();
        }
        let vals = wanted
            .iter()
            .map(|&(_, c)| {
                cells[c]
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
            })
            .collect();
        rows.push((t, vals));
    }
    if pod.is_empty() {
        return Err(csv_err(what, 2, "no rows"));
    }
    rows.sort_by_key(|r| r.0);
    let mut columns: HashMap<String, Vec<Option<f64>>> = HashMap::new();
    for (k, (name, _)) in wanted.iter().enumerate() {
        columns.insert(name.clone(), rows.iter().map(|r| r.1[k]).collect());
    }
    Ok(PodSeries {
        pod,
        times: rows.iter().map(|r| r.0).collect(),
        columns,
    })
}

/// `2022-08-22 03:51:19.607158889 +0000 UTC m=+0.11` → Unix seconds (UTC, rounded).
fn wall_clock(cell: &str) -> Option<i64> {
    let mut parts = cell.split_whitespace();
    let (date, time) = (parts.next()?, parts.next()?);
    if let Some(zone) = parts.next()
        && zone != "+0000"
        && zone != "UTC"
    {
        return None;
    }
    let t =
        NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let t = t.and_utc();
    Some(t.timestamp() + i64::from(t.timestamp_subsec_millis() >= 500))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The threshold of `rule` on `values` (a pod's day), or `None` when the rule does not
/// apply (no samples, or a success rate that reads 0 all day: no data).
pub fn threshold(rule: &Rule, values: &[Option<f64>], k: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    let m = median(&mut v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    let sigma = 1.4826 * median(&mut dev);
    match rule.direction {
        Direction::High => Some(m + (k * sigma).max(rule.rel * m.abs()).max(rule.abs)),
        Direction::Low if v.iter().all(|&x| x == 0.0) => None,
        Direction::Low => Some(m - (k * sigma).max(rule.rel * m.abs()).max(rule.abs)),
    }
}

/// One firing episode of one rule on one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub pod: String,
    pub service: String,
    pub alertname: &'static str,
    pub severity: &'static str,
    /// When it started firing (the sample that completed its `for:`), Unix s.
    pub start: i64,
    /// The first sample that did not breach; `None` when it was still firing at the end.
    pub end: Option<i64>,
}

/// Evaluates every rule on a pod's series, as Prometheus would once a minute.
pub fn episodes(series: &PodSeries, k: f64) -> Vec<Episode> {
    let service = service_of(&series.pod).unwrap_or(&series.pod).to_string();
    let mut out = Vec::new();
    for rule in RULES {
        let Some(values) = series.columns.get(rule.column) else {
            continue;
        };
        let Some(thr) = threshold(rule, values, k) else {
            continue;
        };
        let mut run = 0usize;
        let mut firing: Option<i64> = None;
        for (i, v) in values.iter().enumerate() {
            let t = series.times[i];
            let breach = match (v, rule.direction) {
                (Some(x), Direction::High) => *x > thr,
                (Some(x), Direction::Low) => *x < thr,
                (None, _) => false,
            };
            // A gap of more than two minutes between samples also breaks a run.
            let gap = i > 0 && t - series.times[i - 1] > 150;
            run = if breach {
                if gap { 1 } else { run + 1 }
            } else {
                0
            };
            if let Some(start) = firing
                && (!breach || gap)
            {
                out.push(Episode {
                    pod: series.pod.clone(),
                    service: service.clone(),
                    alertname: rule.alertname,
                    severity: rule.severity,
                    start,
                    end: Some(t),
                });
                firing = None;
            }
            if firing.is_none() && run > rule.for_min {
                firing = Some(t);
            }
        }
        if let Some(start) = firing {
            out.push(Episode {
                pod: series.pod.clone(),
                service: service.clone(),
                alertname: rule.alertname,
                severity: rule.severity,
                start,
                end: None,
            });
        }
    }
    out.sort_by(|a, b| (a.start, a.alertname, &a.pod).cmp(&(b.start, b.alertname, &b.pod)));
    out
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// The CMDB of a `dependency.csv` (`Source,Target[,Weight]`) and the services that have
/// metrics (see the module doc).
pub fn cmdb_from_calls(text: &str, with_metrics: &[String]) -> Result<CmdbFile, NezhaError> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|l| l.1).unwrap_or("");
    let names: Vec<&str> = header.trim_start_matches('\u{feff}').split(',').collect();
    let src = names.iter().position(|h| h.trim() == "Source");
    let dst = names.iter().position(|h| h.trim() == "Target");
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(csv_err(
            "dependency.csv",
            1,
            "expected Source and Target columns",
        ));
    };
    let mut edges: Vec<(String, String)> = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let (Some(a), Some(b)) = (cells.get(src), cells.get(dst)) else {
            return Err(csv_err("dependency.csv", i + 1, "missing Source or Target"));
        };
        if a.is_empty() || b.is_empty() || a == b || is_ip(a) || is_ip(b) {
            continue;
        }
        if !edges.iter().any(|(x, y)| x == a && y == b) {
            edges.push((a.to_string(), b.to_string()));
        }
    }
    let mut ids: Vec<String> = edges
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .chain(with_metrics.iter().cloned())
        .collect();
    ids.sort();
    ids.dedup();
    let cis = ids
        .into_iter()
        .map(|id| Ci {
            id,
            name: None,
            ci_type: Some("application".into()),
            criticality: Default::default(),
            owner_group: None,
            aliases: Vec::new(),
            attributes: Default::default(),
        })
        .collect();
    let relations = edges
        .into_iter()
        .map(|(source, target)| Relation {
            source,
            target,
            rel_type: "depends_on".into(),
        })
        .collect();
    Ok(CmdbFile { cis, relations })
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `inject_time`, read as UTC.
    pub at: i64,
    pub pod: String,
    pub service: String,
    pub kind: String,
}

/// Parses a `*fault_list.json` (hour → list of faults), sorted by time.
pub fn parse_faults(what: &str, text: &str) -> Result<Vec<Fault>, NezhaError> {
    let err = |msg: String| NezhaError::Faults {
        what: what.to_string(),
        msg,
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
    let hours = v
        .as_object()
        .ok_or_else(|| err("expected an object of hours".into()))?;
    let mut out = Vec::new();
    for (hour, list) in hours {
        let list = list
            .as_array()
            .ok_or_else(|| err(format!("hour {hour:?}: expected a list")))?;
        for f in list {
            let field = |k: &str| {
                f.get(k)
                    .and_then(|x| x.as_str())
                    .ok_or_else(|| err(format!("hour {hour:?}: a fault without {k}")))
            };
            let time = field("inject_time")?;
            let at = NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S")
                .map_err(|e| err(format!("inject_time {time:?}: {e}")))?
                .and_utc()
                .timestamp();
            let pod = field("inject_pod")?.to_string();
            out.push(Fault {
                at,
                service: service_of(&pod).unwrap_or(&pod).to_string(),
                pod,
                kind: field("inject_type")?.to_string(),
            });
        }
    }
    out.sort_by_key(|f| f.at);
    Ok(out)
}

fn ts(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// The alert events of `episodes`, in time order: a firing event at each start, a
/// resolve at each end.
pub fn alert_events(episodes: &[Episode]) -> Vec<(usize, Alert)> {
    let mut ev: Vec<(i64, u8, usize, Alert)> = Vec::new();
    for (i, e) in episodes.iter().enumerate() {
        let mut labels = Labels::new();
        labels.insert("alertname".into(), e.alertname.into());
        labels.insert("severity".into(), e.severity.into());
        labels.insert("namespace".into(), "hipster".into());
        labels.insert("pod".into(), e.pod.clone());
        labels.insert("service".into(), e.service.clone());
        let fingerprint = Fingerprint::of_labels(&labels);
        let alert = Alert {
            fingerprint,
            status: AlertStatus::Firing,
            labels,
            annotations: Labels::new(),
            starts_at: ts(e.start),
            ends_at: None,
            generator_url: None,
            source: Source::Replay,
        };
        if let Some(end) = e.end {
            let mut r = alert.clone();
            r.status = AlertStatus::Resolved;
            r.ends_at = Some(ts(end));
            ev.push((end, 0, i, r));
        }
        ev.push((e.start, 1, i, alert));
    }
    // At one instant, resolves before firings (a rule that stops and another that starts).
    ev.sort_by_key(|e| (e.0, e.1, e.2));
    ev.into_iter().map(|e| (e.2, e.3)).collect()
}

/// Where a fault's alerts were.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seen {
    RootAlerted,
    OnlyCallers,
    Unseen,
}

/// One fault, scored.
#[derive(Debug, Clone, Serialize)]
pub struct FaultResult {
    pub day: String,
    pub at: i64,
    pub service: String,
    pub kind: String,
    pub seen: Seen,
    pub alerts: usize,
    /// What the incident holding most of its alerts names as root.
    pub named: Option<String>,
    pub correct: bool,
}

/// One day, converted, replayed and scored.
#[derive(Debug, Clone, Serialize)]
pub struct DayResult {
    pub day: String,
    pub pods: usize,
    pub cis: usize,
    pub relations: usize,
    pub episodes: usize,
    pub incidents: usize,
    pub faults: Vec<FaultResult>,
    /// Grouping over alert episodes (pair and B-cubed).
    pub grouping: Scores,
    /// The time-window and dependency baselines on the same alerts.
    pub baselines: Vec<BaselineResult>,
}

/// Settings of the conversion.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Robust z of the thresholds.
    pub k: f64,
    /// A fault's window, in minutes after `inject_time`.
    pub window_min: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            k: 5.0,
            window_min: 5,
        }
    }
}

fn read(path: &Path) -> Result<String, NezhaError> {
    std::fs::read_to_string(path).map_err(|source| NezhaError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The day directories under `dir` (`nezha-ob/`): those holding a `metric/` folder and a
/// `*fault_list.json`, sorted.
pub fn days(dir: &Path) -> Result<Vec<PathBuf>, NezhaError> {
    let rd = std::fs::read_dir(dir).map_err(|source| NezhaError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("metric").is_dir())
        .collect();
    out.sort();
    Ok(out)
}

/// One day directory converted: its CMDB, alert episodes and injected faults.
#[derive(Debug, Clone)]
pub struct Day {
    pub day: String,
    pub pods: usize,
    pub cmdb: CmdbFile,
    pub episodes: Vec<Episode>,
    pub faults: Vec<Fault>,
}

/// Converts, replays and scores one day directory.
pub fn run_day(dir: &Path, cfg: &CorrelateConfig, s: Settings) -> Result<DayResult, NezhaError> {
    let d = load_day(dir, s)?;
    let mut r = score_day(&d.cmdb, &d.episodes, &d.faults, cfg, s);
    r.day = d.day;
    r.pods = d.pods;
    Ok(r)
}

/// Converts one day directory (metrics → alert episodes, call graph → CMDB, faults).
pub fn load_day(dir: &Path, s: Settings) -> Result<Day, NezhaError> {
    let day = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let metric = dir.join("metric");
    let rd = std::fs::read_dir(&metric).map_err(|source| NezhaError::Io {
        path: metric.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("_metric.csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(NezhaError::NoMetrics(metric));
    }
    let mut eps = Vec::new();
    let mut services = Vec::new();
    for f in &files {
        let series = parse_metrics(&f.display().to_string(), &read(f)?)?;
        services.push(service_of(&series.pod).unwrap_or(&series.pod).to_string());
        eps.extend(episodes(&series, s.k));
    }
    let fault_file = std::fs::read_dir(dir)
        .map_err(|source| NezhaError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("fault_list.json"))
        .ok_or_else(|| NezhaError::Faults {
            what: dir.display().to_string(),
            msg: "no *fault_list.json".into(),
        })?;
    let faults = parse_faults(&fault_file.display().to_string(), &read(&fault_file)?)?;
    let cmdb = cmdb_from_calls(&read(&metric.join("dependency.csv"))?, &services)?;
    Ok(Day {
        day,
        pods: files.len(),
        cmdb,
        episodes: eps,
        faults,
    })
}

/// Services that call `root`, directly or not (its transitive dependents), and `root`.
fn root_and_callers(topo: &Topology, root: &str) -> HashSet<String> {
    let mut out = HashSet::from([root.to_string()]);
    let Some(n) = topo.node(root) else {
        return out;
    };
    let mut queue = VecDeque::from([n]);
    let mut seen = HashSet::from([n]);
    while let Some(x) = queue.pop_front() {
        for &d in topo.dependents(x) {
            if seen.insert(d) {
                out.insert(topo.ci(d).id.clone());
                queue.push_back(d);
            }
        }
    }
    out
}

/// Replays `eps` over `cmdb` and scores them against `faults` (see the module doc).
pub fn score_day(
    cmdb: &CmdbFile,
    eps: &[Episode],
    faults: &[Fault],
    cfg: &CorrelateConfig,
    s: Settings,
) -> DayResult {
    score_day_with(cmdb, eps, faults, cfg, s, None)
}

/// `score_day` with a learned causality graph set on the engine.
pub fn score_day_with(
    cmdb: &CmdbFile,
    eps: &[Episode],
    faults: &[Fault],
    cfg: &CorrelateConfig,
    s: Settings,
    causal: Option<std::sync::Arc<sift::correlate::CausalIndex>>,
) -> DayResult {
    let topo = Topology::from_file(cmdb);
    let mapper = CiMapper::default();
    let events = alert_events(eps);
    let episode_of: Vec<usize> = events.iter().map(|e| e.0).collect();
    let alerts: Vec<Alert> = events.into_iter().map(|e| e.1).collect();
    // As `sift replay` runs: with the rules' holds this history shows.
    let mut cfg = cfg.clone();
    crate::auto_window_from_env(&mut cfg);
    let learnt = sift::replay::with_learned(cfg, &topo, &mapper, &alerts);
    crate::debug_windows("nezha", &learnt);
    let cfg = learnt.cfg;
    let out = replay_tracked_with(&topo, &mapper, cfg, causal, alerts);
    // Each episode's incident: where its firing event landed.
    let mut inc_of_ep: Vec<Option<String>> = vec![None; eps.len()];
    for (k, inc) in out.incident_of.iter().enumerate() {
        if inc.is_some() && inc_of_ep[episode_of[k]].is_none() {
            inc_of_ep[episode_of[k]] = inc.clone();
        }
    }
    let roots: HashMap<&str, Option<String>> = out
        .incidents
        .iter()
        .map(|i| (i.id.as_str(), incident_root(i)))
        .collect();

    // Truth: each fault's group, then every other episode on its own.
    let mut truth = Truth::default();
    let mut group_of_ep: Vec<Option<usize>> = vec![None; eps.len()];
    let window = s.window_min * 60;
    for f in faults {
        let g = truth.groups.len();
        let members = root_and_callers(&topo, &f.service);
        for (i, e) in eps.iter().enumerate() {
            if e.start >= f.at && e.start <= f.at + window && members.contains(&e.service) {
                // A later fault whose window also holds it takes it (the nearer cause).
                group_of_ep[i] = Some(g);
            }
        }
        truth.groups.push(TrueGroup {
            id: g,
            kind: GroupKind::Fault,
            root: Some(f.service.clone()),
            // Set below, once later faults have taken what they hold.
            root_alerted: false,
        });
    }
    let ep_fp = |i: usize| Fingerprint::from(format!("episode-{i}").as_str());
    for (i, e) in eps.iter().enumerate() {
        let g = match group_of_ep[i] {
            Some(g) => g,
            None => {
                let g = truth.groups.len();
                truth.groups.push(TrueGroup {
                    id: g,
                    kind: GroupKind::Noise,
                    root: Some(e.service.clone()),
                    root_alerted: true,
                });
                g
            }
        };
        truth.alerts.insert(ep_fp(i), g);
    }
    for (g, f) in faults.iter().enumerate() {
        truth.groups[g].root_alerted = eps
            .iter()
            .enumerate()
            .any(|(i, e)| group_of_ep[i] == Some(g) && e.service == f.service);
    }
    let mut by_inc: BTreeMap<&str, Vec<Fingerprint>> = BTreeMap::new();
    for (i, inc) in inc_of_ep.iter().enumerate() {
        if let Some(inc) = inc {
            by_inc.entry(inc.as_str()).or_default().push(ep_fp(i));
        }
    }
    let inc_roots: Vec<Option<String>> = by_inc
        .keys()
        .map(|id| roots.get(id).cloned().flatten())
        .collect();
    let incidents: Vec<Vec<Fingerprint>> = by_inc.into_values().collect();
    let grouping = score(&truth, &incidents, &inc_roots);
    let results = fault_results(eps, faults, &truth, &group_of_ep, &incidents, &inc_roots);

    // The baselines on the same alerts: each episode's firing event, keyed by episode.
    let firsts: Vec<Alert> = alert_events(eps)
        .into_iter()
        .filter(|(_, a)| a.status == AlertStatus::Firing)
        .map(|(i, mut a)| {
            a.fingerprint = ep_fp(i);
            a
        })
        .collect();
    let minutes = chrono::Duration::minutes;
    let baselines = [
        (
            "time window 5m",
            super::time_window(&firsts, &topo, &mapper, minutes(5)),
        ),
        (
            "dependency alerted 10m",
            super::recent_dependency(&firsts, &topo, &mapper, minutes(10)),
        ),
    ]
    .into_iter()
    .map(|(name, g)| BaselineResult {
        name,
        grouping: score(&truth, &g.incidents, &g.roots),
        faults: fault_results(eps, faults, &truth, &group_of_ep, &g.incidents, &g.roots),
    })
    .collect();
    DayResult {
        day: String::new(),
        pods: 0,
        cis: cmdb.cis.len(),
        relations: cmdb.relations.len(),
        episodes: eps.len(),
        incidents: out.incidents.len(),
        faults: results,
        grouping,
        baselines,
    }
}

/// Each fault scored on a grouping of episodes (`incidents` of episode keys, `roots`
/// per incident): where it showed, and whether the incident holding most of its alerts
/// (the earliest on ties) names its root.
fn fault_results(
    eps: &[Episode],
    faults: &[Fault],
    truth: &Truth,
    group_of_ep: &[Option<usize>],
    incidents: &[Vec<Fingerprint>],
    roots: &[Option<String>],
) -> Vec<FaultResult> {
    let mut inc_of: HashMap<&Fingerprint, usize> = HashMap::new();
    for (k, inc) in incidents.iter().enumerate() {
        for fp in inc {
            inc_of.entry(fp).or_insert(k);
        }
    }
    let mut results = Vec::new();
    for (g, f) in faults.iter().enumerate() {
        let members: Vec<usize> = (0..eps.len())
            .filter(|&i| group_of_ep[i] == Some(g))
            .collect();
        let seen = if members.is_empty() {
            Seen::Unseen
        } else if truth.groups[g].root_alerted {
            Seen::RootAlerted
        } else {
            Seen::OnlyCallers
        };
        let mut count: BTreeMap<usize, (usize, i64)> = BTreeMap::new();
        for &i in &members {
            let key = Fingerprint::from(format!("episode-{i}").as_str());
            if let Some(&k) = inc_of.get(&key) {
                let c = count.entry(k).or_insert((0, eps[i].start));
                c.0 += 1;
                c.1 = c.1.min(eps[i].start);
            }
        }
        let main = count
            .iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
            .map(|(k, _)| *k);
        let named = main.and_then(|k| roots.get(k).cloned().flatten());
        results.push(FaultResult {
            day: String::new(),
            at: f.at,
            service: f.service.clone(),
            kind: f.kind.clone(),
            seen,
            alerts: members.len(),
            correct: seen != Seen::Unseen && named.as_deref() == Some(f.service.as_str()),
            named,
        });
    }
    results
}

/// A naive grouping on the same day, scored the same way.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineResult {
    pub name: &'static str,
    pub grouping: Scores,
    pub faults: Vec<FaultResult>,
}

/// Per fault type (and "all"): faults, unseen, and (named, of) for "root alerted" and
/// "only callers alerted".
#[derive(Debug, Clone, Default, Serialize)]
pub struct TypeRow {
    pub kind: String,
    pub faults: usize,
    pub unseen: usize,
    pub root_alerted: (usize, usize),
    pub only_callers: (usize, usize),
}

/// The per-type table of `faults`, types sorted, "all" last.
pub fn by_type(faults: &[FaultResult]) -> Vec<TypeRow> {
    let mut rows: BTreeMap<String, TypeRow> = BTreeMap::new();
    for f in faults {
        for key in [f.kind.as_str(), "all"] {
            let r = rows.entry(key.to_string()).or_insert_with(|| TypeRow {
                kind: key.to_string(),
                ..Default::default()
            });
            r.faults += 1;
            let slot = match f.seen {
                Seen::Unseen => {
                    r.unseen += 1;
                    continue;
                }
                Seen::RootAlerted => &mut r.root_alerted,
                Seen::OnlyCallers => &mut r.only_callers,
            };
            slot.1 += 1;
            slot.0 += usize::from(f.correct);
        }
    }
    let all = rows.remove("all");
    rows.into_values().chain(all).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
Time,TimeStamp,PodName,CpuUsageRate(%),PodServerLatencyP99(s),PodSuccessRate(%)
t,0,cartservice-579f59597d-wc2lz,10,0.010,0
t,60,cartservice-579f59597d-wc2lz,11,0.011,0
t,120,cartservice-579f59597d-wc2lz,10,0.010,0
t,180,cartservice-579f59597d-wc2lz,12,0.500,0
t,240,cartservice-579f59597d-wc2lz,90,0.600,0
t,300,cartservice-579f59597d-wc2lz,95,0.700,0
t,360,cartservice-579f59597d-wc2lz,92,0.010,0
t,420,cartservice-579f59597d-wc2lz,10,0.010,0
t,480,cartservice-579f59597d-wc2lz,11,,0
t,540,cartservice-579f59597d-wc2lz,10,0.012,0
t,600,cartservice-579f59597d-wc2lz,11,0.011,0
";

    #[test]
    fn pod_names_map_to_services() {
        assert_eq!(
            service_of("cartservice-579f59597d-wc2lz"),
            Some("cartservice")
        );
        assert_eq!(service_of("redis-cart-5b9c7-abcde"), Some("redis-cart"));
        assert_eq!(service_of("frontend"), None);
        assert_eq!(service_of("a-b"), None);
    }

    #[test]
    fn rules_fire_after_their_for_clause_and_resolve_on_the_first_good_sample() {
        let s = parse_metrics("t", METRICS).unwrap();
        assert_eq!(s.pod, "cartservice-579f59597d-wc2lz");
        let eps = episodes(&s, 5.0);
        let got: Vec<(&str, i64, Option<i64>)> =
            eps.iter().map(|e| (e.alertname, e.start, e.end)).collect();
        // CPU breaches at 240, 300, 360: `for: 2m` fires on the third sample, resolves at
        // 420. Latency breaches at 180, 240, 300: `for: 1m` fires at 240, resolves at 360.
        // A success rate of 0 all day is no data: no rule.
        assert_eq!(
            got,
            [
                ("PodLatencyP99High", 240, Some(360)),
                ("PodCpuHigh", 360, Some(420))
            ]
        );
        assert!(eps.iter().all(|e| e.service == "cartservice"));
    }

    #[test]
    fn sample_time_is_the_wall_clock_string_when_there_is_one() {
        let text = "Time,TimeStamp,PodName,CpuUsageRate(%)\n\
            2022-08-22 03:51:19.607158889 +0000 UTC m=+0.1,1861140279,ad-1-a,3\n\
            2022-08-22 03:52:19.2 +0000 UTC m=+60.1,1861140339,ad-1-a,3\n";
        let s = parse_metrics("t", text).unwrap();
        assert_eq!(s.times, [1_661_140_280, 1_661_140_339]);
        let e = parse_metrics("f", "Time,PodName\nyesterday,a-b-c\n").unwrap_err();
        assert!(e.to_string().contains("f, line 2"), "{e}");
    }

    #[test]
    fn a_missing_sample_breaks_a_run() {
        let text = "\
TimeStamp,PodName,PodServerLatencyP99(s)
0,a-b-c,0.01
60,a-b-c,0.01
120,a-b-c,0.01
180,a-b-c,0.9
240,a-b-c,
300,a-b-c,0.9
360,a-b-c,0.01
420,a-b-c,0.01
";
        let s = parse_metrics("t", text).unwrap();
        assert!(episodes(&s, 5.0).is_empty());
    }

    #[test]
    fn bad_metric_rows_name_the_line() {
        let text = "TimeStamp,PodName,PodServerLatencyP99(s)\n0,a-b-c,0.1\nxx,a-b-c,0.2\n";
        let e = parse_metrics("f.csv", text).unwrap_err().to_string();
        assert!(
            e.contains("f.csv, line 3") && e.contains("TimeStamp \"xx\""),
            "{e}"
        );
        let e = parse_metrics("f.csv", "TimeStamp,PodName\n0,a,1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn call_graph_becomes_caller_depends_on_callee_without_ips() {
        let text = "Source,Target,Weight\n\
            frontend,cartservice,1\n\
            checkoutservice,cartservice,1\n\
            frontend,checkoutservice,1\n\
            cartservice,10.0.0.7,1\n\
            loadgenerator,10.0.0.9,1\n";
        let cmdb = cmdb_from_calls(text, &["emailservice".into()]).unwrap();
        let ids: Vec<&str> = cmdb.cis.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["cartservice", "checkoutservice", "emailservice", "frontend"]
        );
        assert_eq!(cmdb.relations.len(), 3);
        assert!(cmdb.validate(|_| false).is_ok());
        let topo = Topology::from_file(&cmdb);
        let callers = root_and_callers(&topo, "cartservice");
        assert_eq!(callers.len(), 3);
        assert!(!root_and_callers(&topo, "frontend").contains("cartservice"));
    }

    #[test]
    fn fault_list_reads_inject_time_as_utc() {
        let text = r#"{"03": [{"inject_time": "2022-08-22 03:53:54", "inject_timestamp": "1",
            "inject_pod": "frontend-579b9bff58-t2dbm", "inject_type": "cpu_contention"}]}"#;
        let f = parse_faults("x", text).unwrap();
        assert_eq!(f[0].at, 1_661_140_434);
        assert_eq!(
            (f[0].service.as_str(), f[0].kind.as_str()),
            ("frontend", "cpu_contention")
        );
        let e = parse_faults("x", r#"{"03": [{"inject_pod": "p"}]}"#).unwrap_err();
        assert!(e.to_string().contains("inject_time"), "{e}");
    }

    fn ep(service: &str, name: &'static str, start: i64) -> Episode {
        Episode {
            pod: format!("{service}-1-a"),
            service: service.into(),
            alertname: name,
            severity: "warning",
            start,
            end: Some(start + 300),
        }
    }

    #[test]
    fn faults_are_classed_by_who_alerted_and_scored_on_the_incident() {
        let cmdb = cmdb_from_calls(
            "Source,Target\nfrontend,cartservice\nfrontend,adservice\n",
            &[],
        )
        .unwrap();
        let t0 = 1_661_140_000;
        let eps = vec![
            // Fault 1 on cartservice: it and its caller alert.
            ep("cartservice", "PodCpuHigh", t0 + 60),
            ep("frontend", "PodLatencyP99High", t0 + 90),
            // Fault 2 on adservice, an hour later: only its caller alerts.
            ep("frontend", "PodUpstreamLatencyHigh", t0 + 3600 + 120),
            // Noise, outside any window.
            ep("adservice", "PodMemoryHigh", t0 + 7200),
        ];
        let fault = |at: i64, svc: &str| Fault {
            at,
            pod: format!("{svc}-1-a"),
            service: svc.into(),
            kind: "cpu_contention".into(),
        };
        let faults = vec![
            fault(t0, "cartservice"),
            fault(t0 + 3600, "adservice"),
            fault(t0 + 5000, "cartservice"),
        ];
        let r = score_day(
            &cmdb,
            &eps,
            &faults,
            &CorrelateConfig::default(),
            Settings::default(),
        );
        let seen: Vec<Seen> = r.faults.iter().map(|f| f.seen).collect();
        assert_eq!(seen, [Seen::RootAlerted, Seen::OnlyCallers, Seen::Unseen]);
        assert_eq!(r.faults[0].alerts, 2);
        // The root alerted and its caller followed: one incident, rooted on cartservice.
        assert!(r.faults[0].correct, "{:?}", r.faults[0]);
        assert!(!r.faults[2].correct);
        let rows = by_type(&r.faults);
        let all = rows.last().unwrap();
        assert_eq!((all.kind.as_str(), all.faults, all.unseen), ("all", 3, 1));
        assert_eq!(all.root_alerted, (1, 1));
        assert_eq!(all.only_callers.1, 1);
        assert_eq!(r.grouping.true_groups, 3);
        // The baselines see the same four alerts and the same faults.
        for b in &r.baselines {
            assert_eq!(b.grouping.true_groups, 3, "{}", b.name);
            let seen: Vec<Seen> = b.faults.iter().map(|f| f.seen).collect();
            assert_eq!(seen, [Seen::RootAlerted, Seen::OnlyCallers, Seen::Unseen]);
        }
        // The window names its first alert's CI: cartservice for fault 1.
        assert!(r.baselines[0].faults[0].correct);
    }
}
