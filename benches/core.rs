//! Criterion benches of sift's hot path, per alert: normalize + fingerprint (an API v2
//! body of 100 alerts → `Alert`s), dedup (the engine taking a re-send), CI mapping (10k and
//! 1M CIs), the correlation core on a 10k-CI topology under storm and quiet traffic, and
//! the pure pipeline end to end (request bodies → normalize → dedup → map → correlate).
//!
//!     CARGO_TARGET_DIR=… cargo bench --bench core
//!
//! Topology load (1M CIs / 5M relations) is `benches/topology_load.rs`; replay of 1M
//! events end to end is `benches/replay.rs` (README, Performance).

// The allocator the sift binaries use, so the figures are theirs.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use sift::alert::Alert;
use sift::cmdb::{Ci, CiMapper, CmdbFile, Relation, Topology};
use sift::correlate::{CorrelateConfig, Engine};
use sift::sources::Normalize;
use sift::sources::alertmanager::parse_alert_list;

fn now() -> DateTime<Utc> {
    "2026-01-01T12:00:00Z".parse().unwrap()
}

fn normalize() -> Normalize {
    Normalize {
        received_at: Some(now()),
        ..Normalize::default()
    }
}

/// One API v2 body: alerts `first .. first + n`, the shape `benches/wrk-alerts.lua` sends
/// (plus a `slot` label, so that alerts on the same host are distinct too).
fn body(first: usize, n: usize, host: impl Fn(usize) -> String) -> Vec<u8> {
    let parts: Vec<String> = (first..first + n)
        .map(|id| {
            format!(
                r#"{{"labels":{{"alertname":"LoadTest{}","instance":"{}:9100","job":"node","severity":"warning","slot":"{}"}},"annotations":{{"summary":"load test"}},"startsAt":"2026-01-01T11:59:00Z","endsAt":"2026-01-01T13:00:00Z"}}"#,
                id % 50,
                host(id),
                id
            )
        })
        .collect();
    format!("[{}]", parts.join(",")).into_bytes()
}

fn alerts(first: usize, n: usize, host: impl Fn(usize) -> String) -> Vec<Alert> {
    parse_alert_list(&body(first, n, host), &normalize()).unwrap()
}

fn ci(id: String) -> Ci {
    Ci {
        id,
        name: None,
        ci_type: None,
        criticality: Default::default(),
        owner_group: None,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

fn rel(source: String, target: String) -> Relation {
    Relation {
        source,
        target,
        rel_type: "depends_on".into(),
    }
}

/// `hosts` hosts `host-i`, each depending on one of `hosts / 100` switches `switch-j`
/// (host i on switch i % switches).
fn estate(hosts: usize) -> Topology {
    let switches = (hosts / 100).max(1);
    let mut doc = CmdbFile::default();
    doc.cis
        .extend((0..switches).map(|j| ci(format!("switch-{j}"))));
    doc.cis.extend((0..hosts).map(|i| ci(format!("host-{i}"))));
    doc.relations
        .extend((0..hosts).map(|i| rel(format!("host-{i}"), format!("switch-{}", i % switches))));
    Topology::from_file(&doc)
}

fn bench_normalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize");
    g.measurement_time(Duration::from_secs(5)).sample_size(20);
    let b = body(0, 100, |i| format!("host-{i}"));
    let n = normalize();
    g.throughput(Throughput::Elements(100));
    g.bench_function("api_v2_body_100_alerts", |bch| {
        bch.iter(|| parse_alert_list(black_box(&b), &n).unwrap())
    });
    g.finish();
}

fn bench_dedup(c: &mut Criterion) {
    let mut g = c.benchmark_group("dedup");
    g.measurement_time(Duration::from_secs(5)).sample_size(20);
    let topo = estate(10_000);
    let mapper = CiMapper::default();
    let batch = alerts(0, 1000, |i| format!("host-{}", i * 7 % 10_000));
    let mut engine = Engine::new(CorrelateConfig::default()).without_change_log();
    for a in batch.clone() {
        engine.ingest(&topo, &mapper, a);
    }
    engine.take_changes();
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("resend_1000_known_alerts", |bch| {
        bch.iter_batched(
            || batch.clone(),
            |batch| {
                for a in batch {
                    black_box(engine.ingest(&topo, &mapper, a));
                }
                engine.take_changes();
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn bench_map(c: &mut Criterion) {
    let mut g = c.benchmark_group("ci_map");
    g.measurement_time(Duration::from_secs(5)).sample_size(20);
    let mapper = CiMapper::default();
    for cis in [10_000usize, 1_000_000] {
        let topo = estate(cis);
        let batch = alerts(0, 1000, |i| format!("host-{}", i * 7919 % cis));
        g.throughput(Throughput::Elements(batch.len() as u64));
        g.bench_function(format!("{cis}_cis"), |bch| {
            bch.iter(|| {
                for a in &batch {
                    black_box(mapper.map(&topo, &a.labels));
                }
            })
        });
    }
    g.finish();
}

fn bench_correlate(c: &mut Criterion) {
    let mut g = c.benchmark_group("correlate_10k_cis");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    let topo = estate(10_000);
    let mapper = CiMapper::default();
    const N: usize = 5_000;
    // Storm: 5,000 new alerts on the 100 hosts under switch-0, 50 alert names each,
    // plus the switch's own alert first.
    let mut storm = alerts(0, 1, |_| "switch-0".into());
    storm.extend(alerts(0, N - 1, |i| format!("host-{}", (i % 100) * 100)));
    // Quiet: 5,000 new alerts scattered over all hosts.
    let quiet = alerts(0, N, |i| format!("host-{}", i * 7919 % 10_000));
    for (name, stream) in [("storm", storm), ("quiet", quiet)] {
        g.throughput(Throughput::Elements(stream.len() as u64));
        g.bench_function(format!("{name}_5000_new_alerts"), |bch| {
            bch.iter_batched(
                || {
                    (
                        Engine::new(CorrelateConfig::default()).without_change_log(),
                        stream.clone(),
                    )
                },
                |(mut engine, stream)| {
                    for a in stream {
                        black_box(engine.ingest(&topo, &mapper, a));
                    }
                    // Returned, so tearing the engine down (which a daemon never does)
                    // happens outside the timed part.
                    engine
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// The pure pipeline on one core, as the writer runs it: API v2 bodies of 100 alerts
/// parsed and normalized, then each alert through the engine (dedup, CI mapping,
/// correlation). A storm: the switch's alert, then 4,999 on the 100 hosts under it, in 50
/// bodies; first as new alerts into an empty engine, then as the re-sends that follow
/// (Prometheus sends every firing alert again each evaluation), which are most of a storm.
/// The engine keeps its change log, as in the daemon (the writer takes it per batch).
fn bench_pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline_10k_cis");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    let topo = estate(10_000);
    let mapper = CiMapper::default();
    const N: usize = 5_000;
    let mut bodies = vec![body(0, 1, |_| "switch-0".into())];
    bodies.extend((0..N / 100).map(|b| {
        let n = if b == 0 { 99 } else { 100 };
        body(b * 100, n, |i| format!("host-{}", (i % 100) * 100))
    }));
    let n = normalize();
    let run = |engine: &mut Engine| {
        for b in &bodies {
            for a in parse_alert_list(black_box(b), &n).unwrap() {
                black_box(engine.ingest(&topo, &mapper, a));
            }
            black_box(engine.take_changes());
        }
    };
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("storm_5000_new_alerts", |bch| {
        bch.iter_batched(
            || Engine::new(CorrelateConfig::default()),
            |mut engine| {
                run(&mut engine);
                engine
            },
            BatchSize::LargeInput,
        )
    });
    let mut engine = Engine::new(CorrelateConfig::default());
    run(&mut engine);
    g.bench_function("storm_5000_resends", |bch| bch.iter(|| run(&mut engine)));
    g.finish();
}

criterion_group!(
    benches,
    bench_normalize,
    bench_dedup,
    bench_map,
    bench_correlate,
    bench_pipeline
);
criterion_main!(benches);
