//! Each Nezha fault whose root sift misses, with its timeline (`cargo run --release
//! --example nezha_misses -- [DATA_DIR]`): every alert of the fault's window on the root
//! or a caller, its start, the incident it joined and why (the placement reason), and
//! each such incident's root with when that root's current alert began. For reading why
//! a wrong root was named; `ALL=1` lists the faults named right too.
use std::collections::{HashMap, HashSet};

use sift::cmdb::CiMapper;
use sift::cmdb::topology::Topology;
use sift_eval::nezha;

fn main() -> anyhow::Result<()> {
    let data = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/work/shared/data".into());
    let all = std::env::var_os("ALL").is_some();
    let s = nezha::Settings::default();
    for dir in nezha::days(&std::path::Path::new(&data).join("nezha-ob"))? {
        let d = nezha::load_day(&dir, s)?;
        let topo = Topology::from_file(&d.cmdb);
        let mapper = CiMapper::default();
        let events = nezha::alert_events(&d.episodes);
        let alerts: Vec<_> = events.iter().map(|e| e.1.clone()).collect();
        let cfg = sift::correlate::CorrelateConfig::default();
        let learnt = sift::replay::with_learned(cfg, &topo, &mapper, &alerts);
        let (cfg, holds) = (learnt.cfg, learnt.holds);
        println!("{} holds {:?}", d.day, holds);
        let mut engine = sift::correlate::Engine::new(cfg);
        // Per episode: incident at placement, reason, and per incident: roots over time.
        let mut placed: HashMap<usize, (String, String)> = HashMap::new();
        for (ep, a) in events {
            let fp = a.fingerprint.clone();
            let firing = a.status == sift::alert::AlertStatus::Firing;
            engine.ingest(&topo, &mapper, a);
            let ch = engine.take_changes();
            if !firing || placed.contains_key(&ep) {
                continue;
            }
            let inc = engine
                .alert(&fp)
                .and_then(|r| r.incident_id.as_deref().map(String::from))
                .unwrap_or_default();
            let why = sift_eval::why_placed(&ch, &fp);
            let root = engine
                .incident(&inc)
                .and_then(|i| i.root_cause_ci.clone())
                .unwrap_or_default();
            placed.insert(ep, (inc, format!("[root then {root}] {why}")));
        }
        let final_of = |id: &str| sift_eval::final_incident(&engine, id);
        for f in &d.faults {
            let mut members: HashSet<String> = HashSet::from([f.service.clone()]);
            if let Some(n) = topo.node(&f.service) {
                let mut q = vec![n];
                while let Some(x) = q.pop() {
                    for &p in topo.dependents(x) {
                        if members.insert(topo.ci(p).id.clone()) {
                            q.push(p);
                        }
                    }
                }
            }
            let eps: Vec<usize> = (0..d.episodes.len())
                .filter(|&i| {
                    let e = &d.episodes[i];
                    e.start >= f.at && e.start <= f.at + 300 && members.contains(&e.service)
                })
                .collect();
            if eps.is_empty() {
                continue;
            }
            let mut finals: HashMap<String, usize> = HashMap::new();
            for i in &eps {
                if let Some((inc, _)) = placed.get(i) {
                    *finals.entry(final_of(inc)).or_default() += 1;
                }
            }
            let main = finals.iter().max_by_key(|x| x.1).map(|x| x.0.clone());
            let named = main
                .as_ref()
                .and_then(|m| engine.incident(m))
                .and_then(|i| i.root_cause_ci.clone());
            let ok = named.as_deref() == Some(f.service.as_str());
            if ok && !all {
                continue;
            }
            println!(
                "\n== {} {} root {} ({}) named {:?}{}",
                d.day,
                f.at,
                f.service,
                f.kind,
                named,
                if ok { " OK" } else { "" }
            );
            // Context: alerts from 10 min before on root/callers, and any alert active.
            for (i, e) in d.episodes.iter().enumerate() {
                let active = e.start < f.at + 300 && e.end.is_none_or(|x| x > f.at - 60);
                if !active {
                    continue;
                }
                let (inc, why) = placed.get(&i).cloned().unwrap_or_default();
                println!(
                    "  {} {:+6}s..{} {:<22} {:<24} {} -> {} {}",
                    if eps.contains(&i) { "*" } else { " " },
                    e.start - f.at,
                    e.end
                        .map(|x| format!("{:+}", x - f.at))
                        .unwrap_or("open".into()),
                    e.service,
                    e.alertname,
                    inc,
                    final_of(&inc),
                    why
                );
            }
        }
    }
    Ok(())
}
