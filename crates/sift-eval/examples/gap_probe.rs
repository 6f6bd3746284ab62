//! Where faults fragment: for each fault whose alerts landed in more than one incident,
//! the incident holding most of them and every alert elsewhere, with the rule that placed
//! it and its CI's dependencies in the CMDB sift was given and in the true one:
//! `CMDB=missing,spurious,absent cargo run --release --example gap_probe -- FIRST N`
//! (the CMDB knobs as in `eval_classes`; `ci -` is an alert on no CI).
use std::collections::HashMap;

use sift::cmdb::{CiMapper, Topology};
use sift::correlate::CorrelateConfig;
use sift_eval::{EstateSize, Knobs, generate, generate_with, parse_alerts};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let first: u64 = a.first().and_then(|s| s.parse().ok()).unwrap_or(0);
    let n: u64 = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(4);
    let knobs = sift_eval::cmdb_knobs_from_env(Knobs::default());
    for seed in first..first + n {
        let size = EstateSize::for_seed(seed);
        let scn = generate_with(seed, size, &knobs);
        let topo = Topology::from_file(&scn.cmdb);
        let truth_topo = Topology::from_file(&generate(seed, size).cmdb);
        let alerts = parse_alerts(&scn.alerts).expect("alerts");
        let mapper = CiMapper::default();
        let mut engine = sift::correlate::Engine::new(CorrelateConfig::default());
        let mut placed: HashMap<String, (String, String, String, chrono::DateTime<chrono::Utc>)> =
            HashMap::new();
        for al in alerts {
            let fp = al.fingerprint.clone();
            let firing = al.status == sift::alert::AlertStatus::Firing;
            engine.ingest(&topo, &mapper, al);
            let ch = engine.take_changes();
            if !firing || placed.contains_key(fp.as_str()) {
                continue;
            }
            let Some(rec) = engine.alert(&fp) else {
                continue;
            };
            let inc = rec.incident_id.as_deref().unwrap_or("").to_string();
            let why = sift_eval::why_placed(&ch, &fp);
            placed.insert(
                fp.as_str().to_string(),
                (
                    inc,
                    rec.ci_id.as_deref().unwrap_or("-").to_string(),
                    why,
                    rec.starts_at,
                ),
            );
        }
        let final_of = |id: &str| sift_eval::final_incident(&engine, id);
        let mut by_group: HashMap<usize, Vec<&str>> = HashMap::new();
        for (fp, g) in &scn.truth.alerts {
            by_group.entry(*g).or_default().push(fp.as_str());
        }
        let mut gs: Vec<_> = by_group.into_iter().collect();
        gs.sort();
        for (g, fps) in gs {
            let grp = &scn.truth.groups[g];
            if !matches!(grp.kind, sift_eval::GroupKind::Fault) {
                continue;
            }
            let mut count: HashMap<String, usize> = HashMap::new();
            for fp in &fps {
                if let Some(p) = placed.get(*fp) {
                    *count.entry(final_of(&p.0)).or_default() += 1;
                }
            }
            let Some((main, _)) = count.iter().max_by_key(|(k, v)| (**v, (*k).clone())) else {
                continue;
            };
            if count.len() < 2 {
                continue;
            }
            let mi = engine.incident(main).unwrap();
            println!(
                "seed {seed} g{g} root {:?} alerted {} main {main} root {:?} opened {} n={}",
                grp.root,
                grp.root_alerted,
                mi.root_cause_ci,
                mi.opened_at.format("%H:%M:%S"),
                count[main]
            );
            for fp in &fps {
                let Some(p) = placed.get(*fp) else { continue };
                if &final_of(&p.0) == main {
                    continue;
                }
                let node = topo.node(&p.1);
                let deps: Vec<String> = node
                    .map(|n| {
                        topo.depends_on(n)
                            .iter()
                            .map(|&d| topo.ci(d).id.to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                let tdeps: Vec<String> = truth_topo
                    .node(&p.1)
                    .map(|n| {
                        truth_topo
                            .depends_on(n)
                            .iter()
                            .map(|&d| truth_topo.ci(d).id.to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "   {} ci {} +{}s -> {} | {} | deps {:?} true {:?}",
                    fp.get(..8).unwrap_or(fp),
                    p.1,
                    (p.3 - mi.opened_at).num_seconds(),
                    final_of(&p.0),
                    p.2,
                    deps,
                    tdeps
                );
            }
        }
    }
}
