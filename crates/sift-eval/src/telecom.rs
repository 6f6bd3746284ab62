//! The telecom alarm storm (Huawei PCIC 2021, `telecom-24v/`, MIT) as sift would see it:
//! alarms on microwave devices become alerts on CIs, the device links a CMDB, and the
//! experts' causal graph of alarm types a yardstick for what got grouped.
//!
//! What it is for: noise reduction and storm behaviour on a real network whose links go
//! both ways (every relation is part of a cycle). There is no per-alarm truth, so it
//! reports how many alarms an incident holds, the largest incident, and the share of
//! grouped alarm pairs of different types whose types the expert graph links (either
//! direction), beside the same figures for a plain time window and for "any two alarms"
//! (the share if grouping were blind to type). What it must not do: read the expert
//! graph when making alerts or the CMDB.
//!
//! Conversion: device `d` is CI `device-d`; a link `a,b` is "a connects to b" (both
//! directions are listed, so both relations exist). Alarm type `t` on device `d` is the
//! alert `{alertname="alarm_t", ci="device-d", job="nms"}`. Alarms are point events (end =
//! start), so an alarm is taken to stay active for `hold` after it (the NMS clear time
//! is not in the data); alarms of one type on one device closer than that are one
//! firing episode (the later ones are re-sends), which resolves `hold` after its last
//! alarm.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::DateTime;
use serde::Serialize;

use super::{incident_root, replay_tracked_with};
use sift::alert::{Alert, AlertStatus, Fingerprint, Labels, Source};
use sift::cmdb::{Ci, CiMapper, CmdbFile, Relation, Topology};
use sift::correlate::CorrelateConfig;

#[derive(Debug, thiserror::Error)]
pub enum TelecomError {
    #[error("reading {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{what}, line {line}: {msg}")]
    Csv {
        what: String,
        line: usize,
        msg: String,
    },
}

/// One alarm row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    pub kind: u32,
    pub device: u32,
    pub start: i64,
    pub end: i64,
}

/// Reads a headed CSV of unsigned integers (seconds may be written `12.0`), checking the
/// header names `cols` in order.
fn int_rows(what: &str, text: &str, cols: &[&str]) -> Result<Vec<Vec<i64>>, TelecomError> {
    let err = |line: usize, msg: String| TelecomError::Csv {
        what: what.to_string(),
        line,
        msg,
    };
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = lines
        .next()
        .map(|l| {
            l.1.trim_start_matches('\u{feff}')
                .split(',')
                .map(|h| h.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    if header.len() < cols.len() || header.iter().zip(cols).any(|(h, c)| h != c) {
        return Err(err(1, format!("expected the columns {}", cols.join(","))));
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() < cols.len() {
            return Err(err(
                i + 1,
                format!("{} fields, expected {}", cells.len(), cols.len()),
            ));
        }
        let row = cells[..cols.len()]
            .iter()
            .zip(cols)
            .map(|(c, name)| {
                c.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .map(|v| v as i64)
                    .ok_or_else(|| err(i + 1, format!("{name} {c:?} is not a non-negative number")))
            })
            .collect::<Result<Vec<i64>, _>>()?;
        out.push(row);
    }
    Ok(out)
}

pub fn parse_alarms(text: &str) -> Result<Vec<Alarm>, TelecomError> {
    let rows = int_rows(
        "Alarm.csv",
        text,
        &["alarm_id", "device_id", "start_timestamp", "end_timestamp"],
    )?;
    let mut out: Vec<Alarm> = rows
        .into_iter()
        .map(|r| Alarm {
            kind: r[0] as u32,
            device: r[1] as u32,
            start: r[2],
            end: r[3].max(r[2]),
        })
        .collect();
    out.sort_by_key(|a| (a.start, a.device, a.kind));
    Ok(out)
}

/// Pairs of a `src,dst` CSV (`what` names it in errors).
pub fn parse_edges(what: &str, text: &str) -> Result<Vec<(u32, u32)>, TelecomError> {
    Ok(int_rows(what, text, &["src", "dst"])?
        .into_iter()
        .map(|r| (r[0] as u32, r[1] as u32))
        .collect())
}

fn device_id(d: u32) -> String {
    format!("device-{d}")
}

/// One CI per device named by a link or an alarm; a relation per listed link.
pub fn cmdb(links: &[(u32, u32)], alarms: &[Alarm]) -> CmdbFile {
    let mut devices: Vec<u32> = links
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .chain(alarms.iter().map(|a| a.device))
        .collect();
    devices.sort_unstable();
    devices.dedup();
    let mut seen = HashSet::new();
    let relations = links
        .iter()
        .filter(|&&(a, b)| a != b && seen.insert((a, b)))
        .map(|&(a, b)| Relation {
            source: device_id(a),
            target: device_id(b),
            rel_type: "connects_to".into(),
        })
        .collect();
    let cis = devices
        .into_iter()
        .map(|d| Ci {
            id: device_id(d),
            name: None,
            ci_type: Some("network".into()),
            criticality: Default::default(),
            owner_group: None,
            aliases: Vec::new(),
            attributes: Default::default(),
        })
        .collect();
    CmdbFile { cis, relations }
}

/// Alarms of one type on one device, close enough to be one firing alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub kind: u32,
    pub device: u32,
    pub start: i64,
    /// Last alarm's end plus the hold.
    pub end: i64,
    /// Indices into the alarms.
    pub alarms: Vec<usize>,
}

/// Folds alarms into episodes (see the module doc), in start order.
pub fn episodes(alarms: &[Alarm], hold: i64) -> Vec<Episode> {
    let mut open: HashMap<(u32, u32), usize> = HashMap::new();
    let mut out: Vec<Episode> = Vec::new();
    for (i, a) in alarms.iter().enumerate() {
        let key = (a.device, a.kind);
        match open.get(&key) {
            Some(&e) if a.start <= out[e].end => {
                out[e].end = out[e].end.max(a.end + hold);
                out[e].alarms.push(i);
            }
            _ => {
                open.insert(key, out.len());
                out.push(Episode {
                    kind: a.kind,
                    device: a.device,
                    start: a.start,
                    end: a.end + hold,
                    alarms: vec![i],
                });
            }
        }
    }
    out
}

/// The alert events of `eps` in time order, each with its episode: a firing event at each
/// alarm (the first starts the episode, the others are re-sends) and a resolve at the end.
/// Times are seconds from `t0`.
pub fn alert_events(alarms: &[Alarm], eps: &[Episode], t0: i64) -> Vec<(usize, Alert)> {
    let at = |s: i64| DateTime::from_timestamp(t0 + s, 0).unwrap_or_default();
    let mut ev: Vec<(i64, u8, usize, Alert)> = Vec::new();
    for (k, e) in eps.iter().enumerate() {
        let mut labels = Labels::new();
        labels.insert("alertname".into(), format!("alarm_{}", e.kind));
        labels.insert("ci".into(), device_id(e.device));
        labels.insert("job".into(), "nms".into());
        labels.insert("severity".into(), "warning".into());
        let firing = Alert {
            fingerprint: Fingerprint::of_labels(&labels),
            status: AlertStatus::Firing,
            labels,
            annotations: Labels::new(),
            starts_at: at(e.start),
            ends_at: None,
            generator_url: None,
            source: Source::Replay,
        };
        for &i in &e.alarms {
            ev.push((alarms[i].start, 1, k, firing.clone()));
        }
        let mut r = firing;
        r.status = AlertStatus::Resolved;
        r.ends_at = Some(at(e.end));
        ev.push((e.end, 0, k, r));
    }
    ev.sort_by_key(|e| (e.0, e.1, e.2));
    ev.into_iter().map(|e| (e.2, e.3)).collect()
}

/// What a grouping of the storm looks like.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormStats {
    pub alarms: usize,
    pub episodes: usize,
    pub incidents: usize,
    /// Alarms over incidents (each alarm counted in its episode's incident).
    pub alarms_per_incident: f64,
    pub largest_alarms: usize,
    pub largest_episodes: usize,
    /// Grouped pairs of episodes of different types, and those the expert graph links.
    pub pairs: u64,
    pub linked_pairs: u64,
    /// Pairs of episodes of the same type put together.
    pub same_type_pairs: u64,
}

impl StormStats {
    pub fn linked_share(&self) -> f64 {
        if self.pairs == 0 {
            0.0
        } else {
            self.linked_pairs as f64 / self.pairs as f64
        }
    }
}

/// Figures of `groups` (lists of episode indices).
pub fn stats(groups: &[Vec<usize>], eps: &[Episode], linked: &HashSet<(u32, u32)>) -> StormStats {
    let mut s = StormStats {
        alarms: eps.iter().map(|e| e.alarms.len()).sum(),
        episodes: eps.len(),
        ..Default::default()
    };
    for g in groups.iter().filter(|g| !g.is_empty()) {
        s.incidents += 1;
        let alarms: usize = g.iter().map(|&e| eps[e].alarms.len()).sum();
        s.largest_alarms = s.largest_alarms.max(alarms);
        s.largest_episodes = s.largest_episodes.max(g.len());
        let mut by_type: BTreeMap<u32, u64> = BTreeMap::new();
        for &e in g {
            *by_type.entry(eps[e].kind).or_default() += 1;
        }
        let n: u64 = g.len() as u64;
        let same: u64 = by_type.values().map(|c| c * c.saturating_sub(1) / 2).sum();
        s.same_type_pairs += same;
        s.pairs += n * n.saturating_sub(1) / 2 - same;
        let types: Vec<(&u32, &u64)> = by_type.iter().collect();
        for (i, (a, ca)) in types.iter().enumerate() {
            for (b, cb) in &types[i + 1..] {
                if linked.contains(&(**a, **b)) || linked.contains(&(**b, **a)) {
                    s.linked_pairs += **ca * **cb;
                }
            }
        }
    }
    s.alarms_per_incident = if s.incidents == 0 {
        0.0
    } else {
        s.alarms as f64 / s.incidents as f64
    };
    s
}

/// A plain tumbling time window over episodes: an episode joins the current group when
/// it starts within `window` of the group's first episode.
pub fn time_window(eps: &[Episode], window: i64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..eps.len()).collect();
    order.sort_by_key(|&e| (eps[e].start, e));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut first = i64::MIN;
    for e in order {
        if out.is_empty() || eps[e].start - first > window {
            first = eps[e].start;
            out.push(Vec::new());
        }
        if let Some(g) = out.last_mut() {
            g.push(e);
        }
    }
    out
}

/// The storm, converted, replayed and measured.
#[derive(Debug, Clone, Serialize)]
pub struct TelecomResult {
    pub devices: usize,
    pub relations: usize,
    pub sift: StormStats,
    pub window: StormStats,
    /// Every episode in one group: the linked share if grouping ignored type.
    pub any_two: StormStats,
    /// Incidents sift names a root for.
    pub rooted: usize,
}

/// Runs the storm of `alarms` over `links` with `hold` seconds of activity per alarm.
pub fn run(
    alarms: &[Alarm],
    links: &[(u32, u32)],
    dag: &[(u32, u32)],
    hold: i64,
    cfg: &CorrelateConfig,
) -> TelecomResult {
    run_with(alarms, links, dag, hold, cfg, None)
}

/// `run` with a learned causality graph set on the engine.
pub fn run_with(
    alarms: &[Alarm],
    links: &[(u32, u32)],
    dag: &[(u32, u32)],
    hold: i64,
    cfg: &CorrelateConfig,
    causal: Option<std::sync::Arc<sift::correlate::CausalIndex>>,
) -> TelecomResult {
    let cmdb = cmdb(links, alarms);
    let topo = Topology::from_file(&cmdb);
    let eps = episodes(alarms, hold);
    // The log counts seconds from its start; put it on a calendar (any fixed day).
    let t0 = 1_609_459_200;
    let events = alert_events(alarms, &eps, t0);
    let ep_of: Vec<usize> = events.iter().map(|e| e.0).collect();
    let alerts: Vec<sift::alert::Alert> = events.into_iter().map(|e| e.1).collect();
    // As `sift replay` runs: with the rules' holds this history shows.
    let mut cfg = cfg.clone();
    crate::auto_window_from_env(&mut cfg);
    let learnt = sift::replay::with_learned(cfg, &topo, &CiMapper::default(), &alerts);
    crate::debug_windows("telecom", &learnt);
    let cfg = learnt.cfg;
    let out = replay_tracked_with(&topo, &CiMapper::default(), cfg, causal, alerts);
    let mut inc_of_ep: Vec<Option<&str>> = vec![None; eps.len()];
    for (k, inc) in out.incident_of.iter().enumerate() {
        if let Some(inc) = inc
            && inc_of_ep[ep_of[k]].is_none()
        {
            inc_of_ep[ep_of[k]] = Some(inc.as_str());
        }
    }
    let mut by_inc: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut loose = Vec::new();
    for (e, inc) in inc_of_ep.iter().enumerate() {
        match inc {
            Some(id) => by_inc.entry(id).or_default().push(e),
            None => loose.push(vec![e]),
        }
    }
    let groups: Vec<Vec<usize>> = by_inc.into_values().chain(loose).collect();
    let linked: HashSet<(u32, u32)> = dag.iter().copied().collect();
    TelecomResult {
        devices: cmdb.cis.len(),
        relations: cmdb.relations.len(),
        sift: stats(&groups, &eps, &linked),
        window: stats(&time_window(&eps, 300), &eps, &linked),
        any_two: stats(&[(0..eps.len()).collect()], &eps, &linked),
        rooted: out
            .incidents
            .iter()
            .filter(|i| incident_root(i).is_some())
            .count(),
    }
}

fn read(path: &Path) -> Result<String, TelecomError> {
    std::fs::read_to_string(path).map_err(|source| TelecomError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `Alarm.csv`, `Topology_edges.csv` and `DAG_edges.csv` from `dir` and runs them.
pub fn run_dir(
    dir: &Path,
    hold: i64,
    cfg: &CorrelateConfig,
) -> Result<TelecomResult, TelecomError> {
    let alarms = parse_alarms(&read(&dir.join("Alarm.csv"))?)?;
    let links = parse_edges(
        "Topology_edges.csv",
        &read(&dir.join("Topology_edges.csv"))?,
    )?;
    let dag = parse_edges("DAG_edges.csv", &read(&dir.join("DAG_edges.csv"))?)?;
    Ok(run(&alarms, &links, &dag, hold, cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALARMS: &str = "alarm_id,device_id,start_timestamp,end_timestamp
0,1,0,0
1,2,30,30
0,1,100,100
2,3,5000,5000
1,9,5010,5010
0,1,9000,9000
";
    const LINKS: &str = "src,dst\n1,2\n2,1\n2,3\n3,2\n";

    #[test]
    fn repeated_alarms_within_the_hold_are_one_episode() {
        let alarms = parse_alarms(ALARMS).unwrap();
        let eps = episodes(&alarms, 300);
        let summary: Vec<(u32, u32, i64, i64, usize)> = eps
            .iter()
            .map(|e| (e.device, e.kind, e.start, e.end, e.alarms.len()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, 0, 0, 400, 2),
                (2, 1, 30, 330, 1),
                (3, 2, 5000, 5300, 1),
                (9, 1, 5010, 5310, 1),
                (1, 0, 9000, 9300, 1),
            ]
        );
        let ev = alert_events(&alarms, &eps, 0);
        // A firing event per alarm (re-sends keep the episode's start), a resolve per
        // episode, each after the episode's firings.
        let firing = ev
            .iter()
            .filter(|e| e.1.status == AlertStatus::Firing)
            .count();
        assert_eq!((firing, ev.len() - firing), (6, 5));
        let resends: Vec<i64> = ev
            .iter()
            .filter(|e| e.0 == 0 && e.1.status == AlertStatus::Firing)
            .map(|e| e.1.starts_at.timestamp())
            .collect();
        assert_eq!(resends, [0, 0]);
        let last_firing = ev
            .iter()
            .rposition(|e| e.0 == 0 && e.1.status == AlertStatus::Firing);
        let resolve = ev
            .iter()
            .position(|e| e.0 == 0 && e.1.status == AlertStatus::Resolved);
        assert!(last_firing < resolve);
    }

    #[test]
    fn links_both_ways_make_a_valid_cmdb_with_cycles_and_replay_ends() {
        let alarms = parse_alarms(ALARMS).unwrap();
        let links = parse_edges("t", LINKS).unwrap();
        let c = cmdb(&links, &alarms);
        assert_eq!(c.cis.len(), 4); // devices 1, 2, 3 and 9 (alarming, unlinked)
        assert_eq!(c.relations.len(), 4);
        assert!(c.validate(|_| false).is_ok());
        let r = run(&alarms, &links, &[(0, 1)], 300, &CorrelateConfig::default());
        assert_eq!(r.sift.alarms, 6);
        assert_eq!(r.sift.episodes, 5);
        assert!(r.sift.incidents >= 1 && r.sift.incidents <= 5);
        // The window puts (1,0)+(2,1) together, (3,2)+(9,1), and the last alone.
        assert_eq!(r.window.incidents, 3);
        assert_eq!((r.window.pairs, r.window.linked_pairs), (2, 1));
        assert_eq!(r.any_two.incidents, 1);
    }

    #[test]
    fn linked_pairs_count_either_direction_and_skip_same_type() {
        let eps: Vec<Episode> = [(0, 1), (1, 2), (0, 3), (5, 4)]
            .iter()
            .map(|&(kind, device)| Episode {
                kind,
                device,
                start: 0,
                end: 1,
                alarms: vec![0],
            })
            .collect();
        let linked = HashSet::from([(1, 0)]);
        let s = stats(&[vec![0, 1, 2, 3]], &eps, &linked);
        // Types 0,1,0,5: 6 pairs, one same-type (0,0); linked 0-1 twice.
        assert_eq!((s.pairs, s.same_type_pairs, s.linked_pairs), (5, 1, 2));
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let e = parse_alarms("alarm_id,device_id,start_timestamp,end_timestamp\n1,2,x,3\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Alarm.csv, line 2") && e.contains("start_timestamp"),
            "{e}"
        );
        let e = parse_edges("Topology_edges.csv", "a,b\n1,2\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("src,dst"), "{e}");
    }
}
