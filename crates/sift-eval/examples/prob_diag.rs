//! Where the problem clustering loses a grid cell: per seed, every true problem it splits
//! or names the wrong root for (with its incidents and the candidate each landed in), and
//! every candidate holding one-offs (with its incidents when they are most of it):
//! `cargo run --release -p sift-eval --example prob_diag [CELL] [FIRST_SEED] [SEEDS]`
//! (defaults `all-hard 0 5`; cells as `sift-problem-eval --grid` names them).
use sift_eval::problem::{ProbeRun, probe_runs};
use std::collections::HashMap;

fn main() {
    for ProbeRun {
        seed,
        history: h,
        candidates: cands,
        ..
    } in probe_runs()
    {
        let idx: HashMap<&str, usize> = h
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut cand_of: HashMap<usize, usize> = HashMap::new();
        for (k, c) in cands.iter().enumerate() {
            for id in &c.incident_ids {
                cand_of.insert(idx[id.as_str()], k);
            }
        }
        println!(
            "=== seed {seed}: {} records, {} problems, {} candidates",
            h.records.len(),
            h.problems.len(),
            cands.len()
        );
        for (p, tp) in h.problems.iter().enumerate() {
            let mem: Vec<usize> = (0..h.records.len())
                .filter(|&i| h.truth[i] == Some(p))
                .collect();
            let mut per: HashMap<Option<usize>, usize> = HashMap::new();
            for &i in &mem {
                *per.entry(cand_of.get(&i).copied()).or_default() += 1;
            }
            let best = per
                .iter()
                .filter(|(k, _)| k.is_some())
                .max_by_key(|(k, n)| (**n, std::cmp::Reverse(k.unwrap())))
                .map(|(k, n)| (k.unwrap(), *n));
            let ok_root = best
                .map(|(k, _)| {
                    cands[k].suggested_root_cause.ci_id.as_deref() == Some(tp.root.as_str())
                })
                .unwrap_or(false);
            let lost = mem.len() - best.map(|b| b.1).unwrap_or(0);
            if lost == 0 && ok_root {
                continue;
            }
            println!(
                "-- P{p} root {} {} n={} best={:?} root_ok={} split={:?}",
                tp.root,
                tp.signature,
                mem.len(),
                best.map(|(k, n)| (
                    k,
                    n,
                    cands[k].suggested_root_cause.ci_id.clone(),
                    cands[k].incident_ids.len()
                )),
                ok_root,
                per.iter().map(|(k, n)| (*k, *n)).collect::<Vec<_>>()
            );
            for &i in &mem {
                let r = &h.records[i];
                println!(
                    "   {} c={:?} {} ci={:?} t={:?} a={:?} {:?}/{:?}",
                    r.id,
                    cand_of.get(&i),
                    r.opened_at.format("%m-%d %a %H:%M"),
                    r.ci,
                    r.title,
                    r.alertnames,
                    r.category,
                    r.subcategory
                );
            }
        }
        for (k, c) in cands.iter().enumerate() {
            let one = c
                .incident_ids
                .iter()
                .filter(|id| h.truth[idx[id.as_str()]].is_none())
                .count();
            let mut ps: HashMap<Option<usize>, usize> = HashMap::new();
            for id in &c.incident_ids {
                *ps.entry(h.truth[idx[id.as_str()]]).or_default() += 1;
            }
            if one > 0 || ps.len() > 1 {
                println!(
                    "   cand {k} root {:?} sig {} n={} one-offs={} mix={:?} q={:.2e} exp={:.2}",
                    c.suggested_root_cause.ci_id,
                    c.suggested_root_cause.signature,
                    c.incident_ids.len(),
                    one,
                    ps,
                    c.q_value,
                    c.expected
                );
                if one * 2 > c.incident_ids.len() && std::env::var("DIAG_EXPLAIN").is_ok() {
                    println!(
                        "      p={:.2e} rec={:?} expl={:?}",
                        c.p_value, c.recurrence.kind, c.explanation
                    );
                }
                if one * 2 > c.incident_ids.len() {
                    for id in &c.incident_ids {
                        let r = &h.records[idx[id.as_str()]];
                        println!(
                            "      {} {} ci={:?} t={:?} a={:?} {:?}/{:?}",
                            r.id,
                            r.opened_at.format("%m-%d %a %H:%M"),
                            r.ci,
                            r.title,
                            r.alertnames,
                            r.category,
                            r.subcategory
                        );
                    }
                }
            }
        }
    }
}
