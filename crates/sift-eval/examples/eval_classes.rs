//! Where the pairs go wrong, by error class, over a range of seeds:
//! `cargo run --release --example eval_classes -- FIRST N [size]` (`V=1` lists each case;
//! `CMDB=missing,spurious,absent`, e.g. `CMDB=0.2,0.1,0.05`, corrupts the CMDB sift is
//! given as the grid does, and each class then says how the roots relate in the true one).
//! Prints, per class, the false-positive / false-negative alert pairs and the F1 points
//! the class costs (averaged over seeds the way `sift-eval` averages). A false-positive
//! class names how the intruding fault's root relates to the incident's root (`a->b(1)`:
//! it depends on it directly); a false-negative class how a stray piece's root relates
//! to the fault's true root.
use std::collections::{BTreeMap, HashMap, HashSet};

use sift::cmdb::{CiMapper, Topology};
use sift::correlate::CorrelateConfig;
use sift_eval::{EstateSize, Knobs, generate, generate_with, parse_alerts};

fn rel(topo: &Topology, a: &str, b: &str) -> &'static str {
    // how CI `a` relates to CI `b`
    let (Some(na), Some(nb)) = (topo.node(a), topo.node(b)) else {
        return "nocmdb";
    };
    if na == nb {
        return "same";
    }
    if let Some(r) = topo.upstream(na, 8, 20_000).iter().find(|r| r.node == nb) {
        return if r.hops == 1 { "a->b(1)" } else { "a->b(n)" };
    }
    if let Some(r) = topo.upstream(nb, 8, 20_000).iter().find(|r| r.node == na) {
        return if r.hops == 1 { "b->a(1)" } else { "b->a(n)" };
    }
    let ua: HashSet<_> = topo
        .upstream(na, 8, 20_000)
        .iter()
        .map(|r| r.node)
        .collect();
    if topo
        .upstream(nb, 8, 20_000)
        .iter()
        .any(|r| ua.contains(&r.node))
    {
        return "share-anc";
    }
    "unrelated"
}

/// How `a` relates to `b` in the CMDB sift was given, and in the true one when that differs.
fn both(given: &Topology, truth: &Topology, a: &str, b: &str) -> String {
    let (g, t) = (rel(given, a, b), rel(truth, a, b));
    if g == t {
        g.to_string()
    } else {
        format!("{g} (true {t})")
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let first: u64 = a.first().and_then(|s| s.parse().ok()).unwrap_or(0);
    let n: u64 = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let fixed = a.get(2).and_then(|s| EstateSize::parse(s));
    let verbose = std::env::var("V").is_ok();
    let knobs = sift_eval::cmdb_knobs_from_env(Knobs::default());
    // class -> (fp pairs, fn pairs, f1 points)
    let mut classes: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
    let mut f1sum = 0.0;
    for seed in first..first + n {
        let size = fixed.unwrap_or(EstateSize::for_seed(seed));
        let scn = generate_with(seed, size, &knobs);
        let topo = Topology::from_file(&scn.cmdb);
        let true_topo = Topology::from_file(&generate(seed, size).cmdb);
        let alerts = parse_alerts(&scn.alerts).expect("alerts");
        let out = sift::replay::run(
            &topo,
            &CiMapper::default(),
            CorrelateConfig::default(),
            Vec::new(),
            alerts,
        );
        let recs: HashMap<_, _> = out.alerts.iter().map(|r| (&r.fingerprint, r)).collect();
        let truth = &scn.truth;
        let mut pred: HashMap<_, usize> = HashMap::new();
        for (i, inc) in out.incidents.iter().enumerate() {
            for fp in &inc.alert_fingerprints {
                if truth.alerts.contains_key(fp) {
                    pred.entry(fp).or_insert(i);
                }
            }
        }
        // cells: incident -> group -> alerts
        let mut cells: BTreeMap<usize, BTreeMap<usize, Vec<_>>> = BTreeMap::new();
        let mut single = out.incidents.len();
        for (fp, &g) in &truth.alerts {
            let p = pred.get(fp).copied().unwrap_or_else(|| {
                single += 1;
                single
            });
            cells.entry(p).or_default().entry(g).or_default().push(fp);
        }
        let pairs = |n: u64| n * n.saturating_sub(1) / 2;
        let mut tp = 0u64;
        let mut pred_pos = 0u64;
        let mut true_pos = 0u64;
        let mut gsize: HashMap<usize, u64> = HashMap::new();
        for gs in cells.values() {
            let tot: u64 = gs.values().map(|v| v.len() as u64).sum();
            pred_pos += pairs(tot);
            for (g, v) in gs {
                tp += pairs(v.len() as u64);
                *gsize.entry(*g).or_default() += v.len() as u64;
            }
        }
        for s in gsize.values() {
            true_pos += pairs(*s);
        }
        let f1 = |tp: u64, pp: u64, tpos: u64| {
            let p = if pp == 0 { 1.0 } else { tp as f64 / pp as f64 };
            let r = if tpos == 0 {
                1.0
            } else {
                tp as f64 / tpos as f64
            };
            if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            }
        };
        let base = f1(tp, pred_pos, true_pos);
        f1sum += base;
        let mut seed_cls: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        // false positives: pairs of groups in one incident
        for (&p, gs) in &cells {
            if gs.len() < 2 {
                continue;
            }
            let inc = out.incidents.get(p);
            let root = inc.and_then(|i| i.root_cause_ci.clone());
            // main group: the one whose truth root is the incident root, else the largest
            let main = gs
                .keys()
                .copied()
                .find(|g| truth.root_of(*g).is_some() && truth.root_of(*g) == root.as_deref())
                .or_else(|| gs.iter().max_by_key(|(_, v)| v.len()).map(|(g, _)| *g))
                .unwrap_or(0);
            let gl: Vec<_> = gs.iter().collect();
            for i in 0..gl.len() {
                for j in i + 1..gl.len() {
                    let (ga, va) = gl[i];
                    let (gb, vb) = gl[j];
                    let (intr, _other) = if *ga == main { (gb, ga) } else { (ga, gb) };
                    let iv = if intr == ga { va } else { vb };
                    let kind = truth.groups[*intr].kind;
                    let has_ci = iv
                        .iter()
                        .any(|f| recs.get(f).is_some_and(|r| r.ci_id.is_some()));
                    let iroot = truth.root_of(*intr);
                    let cls = if !has_ci {
                        let fallback = root.is_none();
                        format!(
                            "FP {:?} noCI {}",
                            kind,
                            if fallback {
                                "in-fallback-inc"
                            } else {
                                "in-ci-inc"
                            }
                        )
                    } else {
                        let r = match (iroot, root.as_deref()) {
                            (Some(ir), Some(rr)) => both(&topo, &true_topo, ir, rr),
                            _ => "none".to_string(),
                        };
                        let ik = iroot
                            .and_then(|x| topo.get(x))
                            .and_then(|c| c.ci_type.clone())
                            .unwrap_or_default();
                        let rk = root
                            .as_deref()
                            .and_then(|x| topo.get(x))
                            .and_then(|c| c.ci_type.clone())
                            .unwrap_or_default();
                        format!("FP {kind:?} intruder-root {r} ({ik} in {rk} inc)")
                    };
                    let e = seed_cls.entry(cls.clone()).or_default();
                    e.0 += va.len() as u64 * vb.len() as u64;
                    if verbose {
                        println!(
                            "seed {seed} {cls} inc {:?} root {:?} intruder g{intr} root {:?}",
                            inc.map(|i| &i.id),
                            root,
                            iroot
                        );
                    }
                }
            }
        }
        // false negatives: pieces of one group in several incidents
        let mut pieces: BTreeMap<usize, Vec<(usize, u64, bool)>> = BTreeMap::new();
        for (&p, gs) in &cells {
            for (g, v) in gs {
                let has_ci = v
                    .iter()
                    .any(|f| recs.get(f).is_some_and(|r| r.ci_id.is_some()));
                pieces
                    .entry(*g)
                    .or_default()
                    .push((p, v.len() as u64, has_ci));
            }
        }
        for (g, ps) in &pieces {
            if ps.len() < 2 {
                continue;
            }
            let main = ps.iter().max_by_key(|p| p.1).map(|p| p.0).unwrap_or(0);
            for i in 0..ps.len() {
                for j in i + 1..ps.len() {
                    let (a, b) = (ps[i], ps[j]);
                    let minor = if a.0 == main { b } else { a };
                    let minc = out.incidents.get(minor.0);
                    let mroot = minc.and_then(|i| i.root_cause_ci.clone());
                    let troot = truth.root_of(*g);
                    let cls = if !minor.2 {
                        format!("FN {:?} noCI piece", truth.groups[*g].kind)
                    } else {
                        let r = match (mroot.as_deref(), troot) {
                            (Some(m), Some(t)) => both(&topo, &true_topo, m, t),
                            _ => "none".to_string(),
                        };
                        format!("FN piece-root vs true-root {r}")
                    };
                    let e = seed_cls.entry(cls.clone()).or_default();
                    e.1 += a.1 * b.1;
                    if verbose {
                        println!(
                            "seed {seed} {cls} g{g} true {:?} piece inc {:?} root {:?} n={}",
                            troot,
                            minc.map(|i| &i.id),
                            mroot,
                            minor.1
                        );
                    }
                }
            }
        }
        for (c, (fp, fneg)) in seed_cls {
            let fixed = f1(tp + fneg, pred_pos - fp, true_pos);
            let e = classes.entry(c).or_default();
            e.0 += fp;
            e.1 += fneg;
            e.2 += fixed - base;
        }
    }
    println!("mean F1 {:.4} over {n} seeds", f1sum / n as f64);
    let mut v: Vec<_> = classes.into_iter().collect();
    v.sort_by(|a, b| b.1.2.total_cmp(&a.1.2));
    for (c, (fp, fneg, pts)) in v {
        println!("{:>8.4}  fp {fp:>6} fn {fneg:>6}  {c}", pts / n as f64);
    }
}
