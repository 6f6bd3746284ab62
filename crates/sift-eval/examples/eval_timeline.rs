//! Prints one incident's timeline from a generated scenario:
//! `cargo run --release --example eval_timeline -- SEED SIZE INC_ID`.
use sift::cmdb::{CiMapper, Topology};
use sift::correlate::{CorrelateConfig, Engine};
use sift_eval::{EstateSize, generate, parse_alerts};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let seed: u64 = a.first().and_then(|s| s.parse().ok()).unwrap_or(2);
    let size = EstateSize::parse(a.get(1).map(String::as_str).unwrap_or("large"))
        .unwrap_or(EstateSize::Large);
    let want = a.get(2).cloned().unwrap_or_default();
    let scn = generate(seed, size);
    let topo = Topology::from_file(&scn.cmdb);
    let mut e = Engine::new(CorrelateConfig::default());
    let m = CiMapper::default();
    for al in parse_alerts(&scn.alerts).expect("alerts") {
        let (name, ci, t) = (
            al.alertname().to_string(),
            al.labels.get("ci").map(str::to_string),
            al.event_time(),
        );
        e.ingest(&topo, &m, al);
        for tl in e.take_changes().timeline {
            if tl.incident_id == want && tl.kind != "alert_joined" {
                println!(
                    "{} {} {} (event {name} {ci:?} @ {t})",
                    tl.at,
                    tl.kind,
                    tl.detail.to_json()
                );
            }
        }
    }
}
