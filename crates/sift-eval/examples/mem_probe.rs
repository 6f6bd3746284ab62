//! Memory per active alert in the correlation core, without HTTP or a store: ingests the
//! load harness's 200k alerts (benches/wrk-alerts.lua's shape, with endsAt) into an
//! `Engine` and prints resident growth, live heap bytes and the largest allocation sizes.
//!
//!     cargo run --release --example mem_probe
use sift::cmdb::{CiMapper, Topology};
use sift::correlate::{CorrelateConfig, Engine};
use sift::sources::Normalize;
use sift::sources::alertmanager::parse_alert_list;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering};
struct Counting;
static LIVE: AtomicI64 = AtomicI64::new(0);
static COUNT: AtomicI64 = AtomicI64::new(0);
static BY: [AtomicI64; 1025] = [const { AtomicI64::new(0) }; 1025];
fn b(n: usize) -> usize {
    n.min(1024)
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Ordering::Relaxed);
        BY[b(l.size())].fetch_add(1, Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Ordering::Relaxed);
        BY[b(l.size())].fetch_sub(1, Ordering::Relaxed);
        COUNT.fetch_sub(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as i64 - l.size() as i64, Ordering::Relaxed);
        BY[b(l.size())].fetch_sub(1, Ordering::Relaxed);
        BY[b(n)].fetch_add(1, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, n) }
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096 / 1024
}

fn main() {
    let n = Normalize {
        received_at: Some("2026-01-01T12:00:00Z".parse().unwrap()),
        ..Normalize::default()
    };
    let topo = Topology::new();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let r0 = rss();
    for b in 0..2000 {
        let parts: Vec<String> = (b * 100..b * 100 + 100).map(|id| format!(
            r#"{{"labels":{{"alertname":"LoadTest{}","instance":"host-{}:9100","job":"node","severity":"warning"}},"annotations":{{"summary":"load test"}},"startsAt":"2026-01-01T11:59:00Z","endsAt":"2026-01-01T13:00:00Z"}}"#,
            id % 50, id)).collect();
        let body = format!("[{}]", parts.join(","));
        for a in parse_alert_list(body.as_bytes(), &n).unwrap() {
            e.ingest(&topo, &m, a);
        }
        let c = e.take_changes();
        if b % 500 == 499 {
            eprintln!(
                "{} alerts: +{} KiB ({} B/alert), changes {}",
                (b + 1) * 100,
                rss() - r0,
                (rss() - r0) * 1024 / ((b as u64 + 1) * 100),
                c.alerts.len()
            );
        }
    }
    let r1 = rss();
    eprintln!(
        "live bytes {} = {} B/alert in {} allocations ({} per alert)",
        LIVE.load(Ordering::Relaxed),
        LIVE.load(Ordering::Relaxed) / 200_000,
        COUNT.load(Ordering::Relaxed),
        COUNT.load(Ordering::Relaxed) as f64 / 200_000.0
    );
    let mut v: Vec<(i64, usize, i64)> = (0..1025)
        .map(|i| {
            let c = BY[i].load(Ordering::Relaxed);
            (c * i as i64, i, c)
        })
        .collect();
    v.sort();
    v.reverse();
    for (bytes, size, c) in v.iter().take(12) {
        eprintln!("size {size}: {c} allocations, {} MB", bytes / 1_000_000);
    }
    eprintln!(
        "engine: {} KiB for 200k alerts = {} B/alert; incidents {}",
        r1 - r0,
        (r1 - r0) * 1024 / 200_000,
        e.active_incident_count()
    );
}
