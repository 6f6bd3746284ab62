//! Why a true problem was not found at all: per seed of a grid cell, every problem none of whose
//! incidents is in a candidate, with each incident's CI, the CI its title names, whether it
//! reaches the root through the CMDB, its codes and signature; then the time scan of
//! `bursts` re-run with only the candidates' incidents taken, and the groups holding the
//! problem's incidents with their p and q (`MIX=1` multiplies p by the signature mix):
//! `cargo run --release -p sift-eval --example prob_miss [CELL] [FIRST_SEED] [SEEDS]`.
use sift::problem::features::{self, Features};
use sift::problem::{ProblemConfig, bursts};
use sift_eval::problem::{ProbeRun, probe_runs};
use std::collections::{HashMap, HashSet};

fn main() {
    let cfg = ProblemConfig::default();
    for ProbeRun {
        seed,
        history: h,
        topo,
        candidates: cands,
    } in probe_runs()
    {
        let feats: Vec<Features> = h
            .records
            .iter()
            .map(|r| features::extract(r, Some(&topo), cfg.hops))
            .collect();
        let idx: HashMap<&str, usize> = h
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let inc: HashSet<usize> = cands
            .iter()
            .flat_map(|c| c.incident_ids.iter().map(|id| idx[id.as_str()]))
            .collect();
        let taken: Vec<bool> = (0..h.records.len()).map(|i| inc.contains(&i)).collect();
        let (found, others) = bursts::find(&h.records, &feats, &taken, cfg.min_pts);
        let mixes: Vec<f64> = found
            .iter()
            .map(|b| {
                let mut sc: HashMap<String, usize> = HashMap::new();
                for &i in &b.members {
                    *sc.entry(features::normalise_alertname(&feats[i].signature))
                        .or_default() += 1;
                }
                sift::problem::significance::effective_number(
                    &sc.values().copied().collect::<Vec<_>>(),
                )
            })
            .collect();
        let mut ps: Vec<f64> = found
            .iter()
            .zip(&mixes)
            .map(|(b, m)| {
                if std::env::var("MIX").is_ok() {
                    (b.p * m).min(1.0)
                } else {
                    b.p
                }
            })
            .collect();
        ps.extend(others.iter().copied());
        let qs = sift::problem::significance::bh(&ps);
        println!(
            "--- {seed}: bursts found {} others {} significant {}",
            found.len(),
            others.len(),
            qs.iter().take(found.len()).filter(|q| **q <= 0.05).count()
        );
        for (p, tp) in h.problems.iter().enumerate() {
            let mem: Vec<usize> = (0..h.records.len())
                .filter(|&i| h.truth[i] == Some(p))
                .collect();
            if mem.iter().any(|i| inc.contains(i)) {
                continue;
            }
            println!(
                "=== {seed} P{p} root {} {} n={}",
                tp.root,
                tp.signature,
                mem.len()
            );
            for &i in &mem {
                let f = &feats[i];
                let reach = f
                    .neighbourhood
                    .iter()
                    .find(|(c, _)| c == &tp.root)
                    .map(|x| x.1);
                println!(
                    "   {} {} ci={:?} named={:?} reach_root={:?} codes={:?} sig={}",
                    h.records[i].id,
                    h.records[i].opened_at.format("%m-%d %a %H:%M"),
                    f.ci,
                    f.named,
                    reach,
                    bursts::codes(f),
                    f.signature
                );
            }
            for (bi, b) in found.iter().enumerate() {
                let k = b.members.iter().filter(|i| mem.contains(i)).count();
                if k > 0 {
                    println!(
                        "   burst ci={} n={} of-problem={} p={:.2e} q={:.2e} exp={:.2} mix={:.2}",
                        b.ci,
                        b.members.len(),
                        k,
                        b.p,
                        qs[bi],
                        b.expected,
                        mixes[bi]
                    );
                }
            }
        }
    }
}
