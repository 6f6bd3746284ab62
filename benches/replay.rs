//! Replay of 1M alert events end to end over a 10k-CI topology: `sift replay`'s core
//! (dedup → CI mapping → correlation → resolution, event time only, one thread) over the
//! huge synthetic estate of seed 10 (10,212 CIs, 17,636 relations) and its alert stream
//! repeated day after day up to 1M events (`sift_eval::replay_workload`). The target is
//! under 5 s.
//!
//!     CARGO_TARGET_DIR=… cargo bench --bench replay
//!
//! Ten samples of one replay each (criterion's minimum); each sample gets its own copy of
//! the stream, built outside the timed part. `sift-eval --replay-bench 1000000
//! --first-seed 10` times one replay of the same workload.

// The allocator the sift binaries use, so the figures are theirs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sift::cmdb::{CiMapper, Topology};

const SEED: u64 = 10;
const EVENTS: usize = 1_000_000;

fn bench_replay(c: &mut Criterion) {
    let w = sift_eval::replay_workload(SEED, EVENTS).expect("replay workload");
    let topo = Topology::from_file(&w.cmdb);
    let mapper = CiMapper::default();
    let incidents = sift::replay::run(
        &topo,
        &mapper,
        Default::default(),
        Vec::new(),
        w.alerts.clone(),
    )
    .incidents
    .len();
    let mut g = c.benchmark_group("replay");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(40))
        .throughput(Throughput::Elements(EVENTS as u64));
    g.bench_function(format!("1m_events_{}_cis", topo.len()), |bch| {
        bch.iter_batched(
            || w.alerts.clone(),
            |alerts| {
                let out = sift::replay::run(&topo, &mapper, Default::default(), Vec::new(), alerts);
                // Every run groups the same stream the same way.
                assert_eq!(out.incidents.len(), incidents);
                black_box(out)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
