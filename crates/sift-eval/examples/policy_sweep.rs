//! Scores sift's grouping on the generator's seeds under `[correlate]` overrides, to
//! sweep the policy's knobs: `cargo run --release --example policy_sweep -- FIRST N
//! [key=value ...]` (keys: window_s, late_s, hop_window_s, max_window_s, max_silent_hops,
//! silent_weight, fanout_scale, min_link_score, min_root_support, silent_roots=0|1).
//! Prints F1, root top-1 and incidents per true group averaged over the seeds.
//! `GRID=1` (env) runs the evaluation grid's cells instead (N seeds each from FIRST) and
//! prints mean and worst pair F1, B-cubed F1, root top-1 and incidents per group.
//! `GAP=1` (env) first thins each fault's alerts the way monitoring gaps would: a CI `d`
//! hops from its fault's root keeps its alerts with probability max(0.25, 1 - 0.25 d),
//! the root with 0.7 (silent roots), and every hop adds 0-120 s more lag (`for:` rules).
//! A rough stand-in for the evaluation grid, not a replacement.
use sift::cmdb::{CiMapper, Topology};
use sift::correlate::CorrelateConfig;
use sift_eval::{EstateSize, generate, parse_alerts, score};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let first: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut cfg = CorrelateConfig::default();
    for kv in args.iter().skip(2) {
        let Some((k, v)) = kv.split_once('=') else {
            anyhow::bail!("{kv:?}: expected key=value");
        };
        let f: f64 = v.parse()?;
        let secs = chrono::Duration::seconds(f as i64);
        match k {
            "window_s" => cfg.window = secs,
            "late_s" => cfg.late_root_window = secs,
            "hop_window_s" => cfg.hop_window = secs,
            "max_window_s" => cfg.max_window = secs,
            "max_silent_hops" => cfg.max_silent_hops = f as u32,
            "silent_weight" => cfg.silent_weight = f,
            "fanout_scale" => cfg.fanout_scale = f as u32,
            "min_link_score" => cfg.min_link_score = f,
            "min_root_support" => cfg.min_root_support = f,
            "root_gap_weight" => cfg.root_gap_weight = f,
            "min_root_share" => cfg.min_root_share = f,
            "silent_roots" => cfg.silent_roots = f != 0.0,
            _ => anyhow::bail!("unknown key {k:?}"),
        }
    }
    if std::env::var_os("GRID").is_some() {
        return grid(first, n, &cfg);
    }
    let (mut f1, mut root, mut ratio) = (0.0, 0.0, 0.0);
    for seed in first..first + n {
        let mut scn = generate(seed, EstateSize::for_seed(seed));
        let mut alerts = parse_alerts(&scn.alerts)?;
        let topo = Topology::from_file(&scn.cmdb);
        if std::env::var_os("GAP").is_some() {
            alerts = thin(&topo, &scn.truth, alerts, seed);
            let kept: std::collections::HashSet<_> =
                alerts.iter().map(|a| a.fingerprint.clone()).collect();
            scn.truth.alerts.retain(|f, _| kept.contains(f));
        }
        let out = sift::replay::run(&topo, &CiMapper::default(), cfg.clone(), Vec::new(), alerts);
        let incidents: Vec<Vec<_>> = out
            .incidents
            .iter()
            .map(|i| i.alert_fingerprints.iter().cloned().collect())
            .collect();
        let roots: Vec<Option<String>> = out
            .incidents
            .iter()
            .map(|i| i.root_cause_ci.clone())
            .collect();
        let s = score(&scn.truth, &incidents, &roots);
        if std::env::var_os("SPLIT").is_some() {
            use std::collections::BTreeMap;
            let mut inc_of = std::collections::HashMap::new();
            for i in &out.incidents {
                for f in &i.alert_fingerprints {
                    inc_of.insert(f.clone(), (i.id.clone(), i.root_cause_ci.clone()));
                }
            }
            let mut by_group: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for (f, g) in &scn.truth.alerts {
                if let Some((id, root)) = inc_of.get(f) {
                    let ci = out_alert_ci(&out, f);
                    by_group
                        .entry(*g)
                        .or_default()
                        .push(format!("{id}[{}]:{ci}", root.clone().unwrap_or_default()));
                }
            }
            for (g, mut v) in by_group {
                v.sort();
                v.dedup();
                let incs: std::collections::BTreeSet<_> = v
                    .iter()
                    .map(|x| x.split('[').next().unwrap_or("").to_string())
                    .collect();
                if incs.len() > 1 {
                    println!(
                        "seed {seed} group {g} root {:?}: {v:?}",
                        scn.truth.root_of(g)
                    );
                }
            }
        }
        if std::env::var_os("MERGED").is_some() {
            for i in &out.incidents {
                let mut v: Vec<(usize, String)> = i
                    .alert_fingerprints
                    .iter()
                    .filter_map(|f| Some((*scn.truth.alerts.get(f)?, out_alert_ci(&out, f))))
                    .collect();
                v.sort();
                v.dedup();
                let mut gs: Vec<usize> = v.iter().map(|x| x.0).collect();
                gs.dedup();
                if gs.len() > 1 {
                    let roots: Vec<_> = gs.iter().map(|g| scn.truth.root_of(*g)).collect();
                    println!(
                        "seed {seed} {} root {:?} groups {gs:?} roots {roots:?}: {v:?}",
                        i.id, i.root_cause_ci
                    );
                }
            }
        }
        if std::env::var_os("D").is_some() {
            for i in &out.incidents {
                let Some(rc) = i.root_cause.as_ref().filter(|r| !r.alerting) else {
                    continue;
                };
                let mut groups: Vec<usize> = i
                    .alert_fingerprints
                    .iter()
                    .filter_map(|f| scn.truth.alerts.get(f).copied())
                    .collect();
                groups.sort();
                groups.dedup();
                let roots: Vec<_> = groups.iter().map(|g| scn.truth.root_of(*g)).collect();
                let fan = topo
                    .node(&rc.ci_id)
                    .map(|n| topo.impact(n, 8, 20_000).len())
                    .unwrap_or(0);
                println!(
                    "seed {seed} {}: suspected {} (fanout {fan}), {} CIs {:?}, true roots {:?}",
                    i.id,
                    rc.ci_id,
                    i.ci_ids.len(),
                    i.ci_ids,
                    roots
                );
            }
        }
        if std::env::var_os("V").is_some() {
            println!("seed {seed}: F1 {:.3} root {:.3}", s.f1, s.root_top1);
        }
        f1 += s.f1;
        root += s.root_top1;
        ratio += s.group_ratio;
    }
    let k = n as f64;
    println!(
        "seeds {first}..{}: F1 {:.3}  root top-1 {:.3}  incidents/groups {:.2}",
        first + n,
        f1 / k,
        root / k,
        ratio / k
    );
    Ok(())
}

/// Monitoring gaps on a generated stream (see the module docs).
fn thin(
    topo: &Topology,
    truth: &sift_eval::Truth,
    alerts: Vec<sift::alert::Alert>,
    seed: u64,
) -> Vec<sift::alert::Alert> {
    use std::collections::HashMap;
    let mapper = CiMapper::default();
    let mut rng = sift_eval::Rng::new(seed ^ 0xA11);
    // Per (group, CI): keep?, extra lag.
    let mut fate: HashMap<(usize, String), (bool, i64)> = HashMap::new();
    let mut out = Vec::new();
    for mut a in alerts {
        let Some(&g) = truth.alerts.get(&a.fingerprint) else {
            out.push(a);
            continue;
        };
        let (Some(root), Some(n)) = (
            truth.root_of(g).and_then(|r| topo.node(r)),
            mapper.map(topo, &a.labels),
        ) else {
            out.push(a);
            continue;
        };
        let ci = topo.ci(n).id.clone();
        let (keep, lag) = *fate.entry((g, ci)).or_insert_with(|| {
            let d = if n == root {
                0
            } else {
                topo.upstream(n, 8, 20_000)
                    .iter()
                    .find(|r| r.node == root)
                    .map_or(1, |r| r.hops)
            };
            let p = if d == 0 {
                0.7
            } else {
                (1.0 - 0.25 * f64::from(d)).max(0.25)
            };
            let lag: i64 = (0..d).map(|_| rng.range(0, 120)).sum();
            (rng.chance(p), lag)
        });
        if !keep {
            continue;
        }
        let shift = chrono::Duration::seconds(lag);
        a.starts_at += shift;
        a.ends_at = a.ends_at.map(|e| e + shift);
        out.push(a);
    }
    // Arrival order: by the time each event happened.
    out.sort_by_key(|a| match a.status {
        sift::alert::AlertStatus::Resolved => a.ends_at.unwrap_or(a.starts_at),
        _ => a.starts_at,
    });
    out
}

fn out_alert_ci(out: &sift::replay::ReplayOutput, f: &sift::alert::Fingerprint) -> String {
    out.alerts
        .iter()
        .find(|a| a.fingerprint == *f)
        .and_then(|a| {
            a.ci_id
                .as_ref()
                .map(|c| format!("{c}@{}", a.starts_at.format("%H:%M:%S")))
        })
        .unwrap_or_default()
}

fn grid(first: u64, n: u64, cfg: &CorrelateConfig) -> anyhow::Result<()> {
    use sift_eval::{generate_with, grid::cells};
    let (mut f1s, mut b3s, mut roots, mut ratios) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (ci, cell) in cells().iter().enumerate() {
        let (mut f1, mut b3, mut rc, mut re, mut ratio) = (0.0, 0.0, 0usize, 0usize, 0.0);
        for seed in first..first + n {
            let scn = generate_with(seed, EstateSize::for_seed(seed), &cell.knobs);
            let alerts = parse_alerts(&scn.alerts)?;
            let topo = Topology::from_file(&scn.cmdb);
            let out =
                sift::replay::run(&topo, &CiMapper::default(), cfg.clone(), Vec::new(), alerts);
            let incidents: Vec<Vec<_>> = out
                .incidents
                .iter()
                .map(|i| i.alert_fingerprints.iter().cloned().collect())
                .collect();
            let r: Vec<Option<String>> = out
                .incidents
                .iter()
                .map(|i| i.root_cause_ci.clone())
                .collect();
            let s = score(&scn.truth, &incidents, &r);
            f1 += s.f1;
            b3 += s.bcubed_f1;
            rc += s.root_correct;
            re += s.root_eligible;
            ratio += s.group_ratio;
        }
        let k = n as f64;
        let root = rc as f64 / re.max(1) as f64;
        if std::env::var_os("V").is_some() {
            println!(
                "{ci:>3} {:<60} F1 {:.3} B3 {:.3} root {:.3} inc/g {:.2}",
                cell.name(),
                f1 / k,
                b3 / k,
                root,
                ratio / k
            );
        }
        f1s.push(f1 / k);
        b3s.push(b3 / k);
        roots.push(root);
        ratios.push(ratio / k);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "grid {} cells x {n} seeds: F1 {:.3} / worst {:.3}  B3 {:.3} / {:.3}  root {:.3} / {:.3}  inc/g {:.2} / {:.2}",
        f1s.len(),
        mean(&f1s),
        min(&f1s),
        mean(&b3s),
        min(&b3s),
        mean(&roots),
        min(&roots),
        mean(&ratios),
        max(&ratios)
    );
    Ok(())
}
