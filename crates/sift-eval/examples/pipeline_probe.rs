//! The pure pipeline of `benches/core.rs` (`pipeline_10k_cis`), once, with fixed work: an
//! alert storm on a 10k-CI estate (the switch's alert, then 4,999 on the 100 hosts under
//! it, in API v2 bodies of 100), first as new alerts, then as re-sends, as many rounds as
//! the argument says (default 4).
//! Prints wall time and allocations per alert. Fixed work makes it the thing to count
//! instructions on (callgrind counts the same for the same binary, whatever else the
//! machine does; criterion's figures swing with the VM):
//!
//!     cargo build --release --example pipeline_probe
//!     valgrind --tool=callgrind --toggle-collect='pipeline_probe::run' \
//!         $CARGO_TARGET_DIR/release/examples/pipeline_probe
//!
//! and divide the total by the alert count it prints (argument 0: new alerts only).
//! A second argument repeats the new-alert run that many times, each into a fresh engine
//! (for a profiler, or a steadier figure: the median is printed).
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sift::cmdb::{Ci, CiMapper, CmdbFile, Relation, Topology};
use sift::correlate::{CorrelateConfig, Engine};
use sift::sources::Normalize;
use sift::sources::alertmanager::parse_alert_list;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, n) }
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;

const ALERTS: usize = 5_000;

/// benches/core.rs's `body`: alerts `first .. first + n` on `host(i)`.
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

fn estate(hosts: usize) -> Topology {
    let switches = hosts / 100;
    let ci = |id: String| Ci {
        id,
        name: None,
        ci_type: None,
        criticality: Default::default(),
        owner_group: None,
        aliases: Vec::new(),
        attributes: Default::default(),
    };
    let mut doc = CmdbFile::default();
    doc.cis
        .extend((0..switches).map(|j| ci(format!("switch-{j}"))));
    doc.cis.extend((0..hosts).map(|i| ci(format!("host-{i}"))));
    doc.relations.extend((0..hosts).map(|i| Relation {
        source: format!("host-{i}"),
        target: format!("switch-{}", i % switches),
        rel_type: "depends_on".into(),
    }));
    Topology::from_file(&doc)
}

/// Every body through normalize → dedup → map → correlate, the change log taken per
/// body as the writer does.
#[inline(never)]
fn run(
    engine: &mut Engine,
    (topo, mapper): (&Topology, &CiMapper),
    bodies: &[Vec<u8>],
    n: &Normalize,
) -> usize {
    let mut seen = 0;
    for b in bodies {
        for a in parse_alert_list(black_box(b), n).expect("the probe's bodies parse") {
            black_box(engine.ingest(topo, mapper, a));
            seen += 1;
        }
        black_box(engine.take_changes());
    }
    seen
}

fn main() {
    let topo = estate(10_000);
    let mut bodies = vec![body(0, 1, |_| "switch-0".into())];
    bodies.extend((0..ALERTS / 100).map(|b| {
        let n = if b == 0 { 99 } else { 100 };
        body(b * 100, n, |i| format!("host-{}", (i % 100) * 100))
    }));
    let n = Normalize {
        received_at: Some("2026-01-01T12:00:00Z".parse().expect("a timestamp")),
        ..Normalize::default()
    };
    let rounds: usize = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .expect("the argument is a number of re-send rounds"),
        None => 4,
    };
    let mapper = CiMapper::default();
    let fresh: usize = match std::env::args().nth(2) {
        Some(a) => a
            .parse()
            .expect("the second argument is a number of new-alert runs"),
        None => 1,
    };
    if fresh > 1 {
        let mut rates = Vec::with_capacity(fresh);
        let mut engines = Vec::with_capacity(fresh);
        for _ in 0..fresh {
            let mut engine = Engine::new(CorrelateConfig::default());
            let t0 = Instant::now();
            let seen = run(&mut engine, (&topo, &mapper), &bodies, &n);
            rates.push(seen as f64 / t0.elapsed().as_secs_f64());
            // Torn down after the run, outside the timing (a daemon never does it).
            engines.push(engine);
            if engines.len() > 16 {
                engines.clear();
            }
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "new, {fresh} runs into fresh engines: median {:.0} alerts/s (min {:.0}, max {:.0})",
            rates[fresh / 2],
            rates[0],
            rates[fresh - 1]
        );
    }
    let mut engine = Engine::new(CorrelateConfig::default());
    for round in 0..=rounds {
        let (a0, t0) = (ALLOCS.load(Ordering::Relaxed), Instant::now());
        let seen = run(&mut engine, (&topo, &mapper), &bodies, &n);
        let (dt, allocs) = (t0.elapsed(), ALLOCS.load(Ordering::Relaxed) - a0);
        println!(
            "{}: {seen} alerts, {:.0} alerts/s, {:.1} allocations/alert",
            if round == 0 { "new" } else { "re-sends" },
            seen as f64 / dt.as_secs_f64(),
            allocs as f64 / seen as f64
        );
    }
}
