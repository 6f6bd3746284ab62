//! How long the in-memory topology takes to load 1M CIs and 5M relations, and what it
//! holds in memory: `cargo run --release --example topo_load [CIS] [RELATIONS]`.
use sift::cmdb::{Ci, CmdbFile, Relation, Topology};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap_or(0));
    let n = args.next().filter(|n| *n > 0).unwrap_or(1_000_000);
    let r = args.next().filter(|n| *n > 0).unwrap_or(5_000_000);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    let cis: Vec<Ci> = (0..n)
        .map(|i| Ci {
            id: format!("ci-{i}"),
            name: None,
            ci_type: Some(["host", "application", "database", "network"][i % 4].into()),
            criticality: Default::default(),
            owner_group: Some(format!("team-{}", i % 50)),
            aliases: vec![format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)],
            attributes: Default::default(),
        })
        .collect();
    // Each relation points from a CI to one with a lower number: layered, like an estate.
    let relations: Vec<Relation> = (0..r)
        .map(|k| {
            let s = 1 + rnd(n - 1);
            let t = rnd(s);
            let _ = k;
            Relation {
                source: format!("ci-{s}"),
                target: format!("ci-{t}"),
                rel_type: "depends_on".into(),
            }
        })
        .collect();
    let doc = CmdbFile { cis, relations };
    let before = rss_kb();
    let t = std::time::Instant::now();
    let topo = Topology::from_file(&doc);
    let secs = t.elapsed().as_secs_f64();
    let after = rss_kb();
    println!(
        "topology: {} CIs, {} relations loaded in {secs:.2} s; +{} MB resident",
        topo.len(),
        topo.relation_count(),
        (after.saturating_sub(before)) / 1024
    );
}
