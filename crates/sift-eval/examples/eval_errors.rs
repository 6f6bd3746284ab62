//! Lists where sift's grouping disagrees with the truth on one generated scenario:
//! `cargo run --release --example eval_errors -- SEED`.
use std::collections::BTreeMap;

use sift::cmdb::{CiMapper, Topology};
use sift::correlate::CorrelateConfig;
use sift_eval::{EstateSize, generate, parse_alerts};

fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let size = match std::env::args().nth(2).as_deref() {
        Some("small") => EstateSize::Small,
        Some("medium") => EstateSize::Medium,
        Some("large") => EstateSize::Large,
        _ => EstateSize::Huge,
    };
    let scn = generate(seed, size);
    let topo = Topology::from_file(&scn.cmdb);
    let alerts = parse_alerts(&scn.alerts).expect("alerts");
    let out = sift::replay::run(
        &topo,
        &CiMapper::default(),
        CorrelateConfig::default(),
        Vec::new(),
        alerts,
    );
    let mut mixed = 0;
    for inc in &out.incidents {
        let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for fp in &inc.alert_fingerprints {
            let g = scn.truth.alerts.get(fp).copied().unwrap_or(usize::MAX);
            let rec = out.alerts.iter().find(|a| &a.fingerprint == fp);
            let label = rec
                .map(|r| {
                    format!(
                        "{}@{}",
                        r.labels.get("alertname").unwrap_or_default(),
                        r.ci_id.clone().unwrap_or("-".into())
                    )
                })
                .unwrap_or_default();
            groups.entry(g).or_default().push(label);
        }
        if groups.len() > 1 {
            mixed += 1;
            println!("MIXED {} root={:?}", inc.id, inc.root_cause_ci);
            for (g, members) in &groups {
                let tg = scn.truth.groups.get(*g);
                println!(
                    "   group {g} {:?} root={:?}: {:?}",
                    tg.map(|t| &t.kind),
                    tg.and_then(|t| t.root.clone()),
                    members
                );
            }
        }
    }
    println!("{mixed} mixed incidents of {}", out.incidents.len());
    // split true groups
    let mut where_: BTreeMap<usize, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for inc in &out.incidents {
        for fp in &inc.alert_fingerprints {
            let g = scn.truth.alerts.get(fp).copied().unwrap_or(usize::MAX);
            let rec = out.alerts.iter().find(|a| &a.fingerprint == fp);
            let label = rec
                .map(|r| {
                    format!(
                        "{}@{}@{}",
                        r.labels.get("alertname").unwrap_or_default(),
                        r.ci_id.clone().unwrap_or("-".into()),
                        r.starts_at.format("%H:%M:%S")
                    )
                })
                .unwrap_or_default();
            where_
                .entry(g)
                .or_default()
                .entry(format!(
                    "{} root={:?} opened={}",
                    inc.id,
                    inc.root_cause_ci,
                    inc.opened_at.format("%H:%M:%S")
                ))
                .or_default()
                .push(label);
        }
    }
    let mut split = 0;
    for (g, incs) in &where_ {
        if incs.len() > 1 {
            split += 1;
            let tg = scn.truth.groups.get(*g);
            println!(
                "SPLIT group {g} {:?} root={:?}",
                tg.map(|t| &t.kind),
                tg.and_then(|t| t.root.clone())
            );
            for (i, m) in incs {
                println!("   {i}: {m:?}");
            }
        }
    }
    println!("{split} split groups");
    // wrong roots: the incident holding most of a fault's alerts names another CI
    for (g, incs) in &where_ {
        let Some(tg) = scn.truth.groups.get(*g) else {
            continue;
        };
        let total: usize = incs.values().map(Vec::len).sum();
        if total < 2 {
            continue;
        }
        let Some((best, _)) = incs.iter().max_by_key(|(_, m)| m.len()) else {
            continue;
        };
        let named = best
            .split("root=")
            .nth(1)
            .and_then(|r| r.split(" opened").next())
            .unwrap_or("");
        let want = format!("{:?}", tg.root);
        if named != want {
            println!(
                "WRONG ROOT group {g} true={want} incident {best} ({} of {total} alerts)",
                incs[best].len()
            );
        }
    }
}

#[allow(dead_code)]
fn unused() {}
