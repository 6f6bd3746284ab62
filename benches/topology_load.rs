//! Topology load: builds a CMDB document of 1M CIs and 5M relations (hosts on switches,
//! services on hosts, a layered estate), then times `Topology::from_file` and reports the
//! process's resident memory before and after (VmRSS, VmHWM from /proc/self/status).
//! A plain `main` (no criterion): one load of this size is the measurement.
//!
//!     CARGO_TARGET_DIR=… cargo bench --bench topology_load

// The allocator the sift binaries use, so the figures are theirs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use sift::cmdb::{Ci, CmdbFile, Relation, Topology};

fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run small then.
    let full = std::env::args().any(|a| a == "--bench");
    let (cis, rels_per_ci) = if full {
        (1_000_000u32, 5u32)
    } else {
        (1_000, 5)
    };
    let t = Instant::now();
    let cis_doc: Vec<Ci> = (0..cis)
        .map(|i| Ci {
            id: format!("ci-{i}"),
            name: Some(format!("host-{i}.example.net")),
            ci_type: Some("server".into()),
            criticality: Default::default(),
            owner_group: None,
            aliases: Vec::new(),
            attributes: Default::default(),
        })
        .collect();
    // Each CI depends on 5 CIs with lower index (a DAG, fan-in spread by a multiplicative hash).
    let relations: Vec<Relation> = (1..cis)
        .flat_map(|i| {
            (0..rels_per_ci).map(move |k| {
                let t =
                    ((u64::from(i) * 2_654_435_761 + u64::from(k) * 40_503) % u64::from(i)) as u32;
                Relation {
                    source: format!("ci-{i}"),
                    target: format!("ci-{t}"),
                    rel_type: "depends_on".into(),
                }
            })
        })
        .collect();
    let doc = CmdbFile {
        cis: cis_doc,
        relations,
    };
    println!(
        "generated {} CIs / {} relations in {:.2} s; VmRSS {}",
        doc.cis.len(),
        doc.relations.len(),
        t.elapsed().as_secs_f64(),
        status("VmRSS:")
    );
    let rss_before = status("VmRSS:");
    let t = Instant::now();
    let topo = Topology::from_file(&doc);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "Topology::from_file: {} CIs / {} distinct relations in {secs:.2} s; VmRSS {rss_before} -> {}",
        topo.len(),
        topo.relation_count(),
        status("VmRSS:")
    );
    drop(doc);
    println!(
        "after dropping the document: VmRSS {} (topology alone), VmHWM {}",
        status("VmRSS:"),
        status("VmHWM:")
    );
    std::hint::black_box(&topo);
}
