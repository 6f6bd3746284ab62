//! Six months of incident history with known recurring problems.
//!
//! Estate: business services depend on applications; applications run on hosts and
//! depend on databases, caches and queues (and on older applications); databases,
//! caches and queues are hosted on hosts; hosts connect to switches.
//!
//! Problems: a root CI and a failure mode (an alertname of the root's kind with the ways
//! people describe it), recurring weekly (a weekday and hour, most weeks of a stretch),
//! daily (an hour, some days), as a burst (a few days) or irregularly. Each occurrence is
//! one incident, raised on the root or on a CI that depends on it within two hops (an
//! application's team reporting errors calling its database), worded differently each
//! time, and for a share of them under another alertname (a symptom alert of the
//! dependent, or a sibling alert of the root). Among them: many one-off incidents on random
//! CIs, drawn from the same vocabulary, at random times; a few carry no CI.
//! Deterministic for a seed; no I/O.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{History, TrueProblem};
use crate::Rng;
use sift::cmdb::{Ci, CmdbFile, Criticality, Relation, Topology};
use sift::problem::HistoryRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Service,
    App,
    Host,
    Db,
    Cache,
    Queue,
    Switch,
}

/// (alertname, category, subcategory, ways people describe it).
type Mode = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const DB: &[Mode] = &[
    (
        "PostgresTooManyConnections",
        "database",
        "connections",
        &[
            "too many connections",
            "connection limit reached",
            "max_connections exhausted",
            "connection slots used up",
        ],
    ),
    (
        "PostgresReplicationLag",
        "database",
        "replication",
        &[
            "replication lag high",
            "replica falling behind",
            "standby lagging behind primary",
            "wal replay delayed",
        ],
    ),
    (
        "PostgresDeadlocks",
        "database",
        "locking",
        &[
            "deadlocks detected",
            "lock contention and deadlocks",
            "transactions deadlocked",
            "deadlock errors",
        ],
    ),
    (
        "PostgresSlowQueries",
        "database",
        "performance",
        &[
            "slow queries",
            "query latency high",
            "long running queries",
            "queries timing out",
        ],
    ),
    (
        "PostgresVacuumStuck",
        "database",
        "maintenance",
        &[
            "autovacuum stuck",
            "table bloat growing",
            "vacuum not progressing",
            "transaction id wraparound risk",
        ],
    ),
];
const HOST: &[Mode] = &[
    (
        "HostHighCpu",
        "infrastructure",
        "cpu",
        &[
            "cpu saturated",
            "high cpu load",
            "cpu usage above threshold",
            "load average very high",
        ],
    ),
    (
        "HostOutOfMemory",
        "infrastructure",
        "memory",
        &[
            "out of memory",
            "oom killer invoked",
            "memory exhausted",
            "swap thrashing",
        ],
    ),
    (
        "HostDiskFull",
        "infrastructure",
        "storage",
        &[
            "disk full",
            "filesystem almost full",
            "no space left on device",
            "disk usage critical",
        ],
    ),
    (
        "HostClockSkew",
        "infrastructure",
        "time",
        &[
            "clock skew",
            "ntp out of sync",
            "time drift detected",
            "clock offset too large",
        ],
    ),
];
const APP: &[Mode] = &[
    (
        "HighErrorRate",
        "application",
        "errors",
        &[
            "high error rate",
            "5xx responses spiking",
            "requests failing",
            "error ratio above slo",
        ],
    ),
    (
        "HighLatency",
        "application",
        "performance",
        &[
            "high latency",
            "slow responses",
            "p99 latency breached",
            "response times degraded",
        ],
    ),
    (
        "PodCrashLooping",
        "application",
        "availability",
        &[
            "pods crash looping",
            "container restarts",
            "crashloopbackoff",
            "service restarting repeatedly",
        ],
    ),
    (
        "JvmHeapExhausted",
        "application",
        "memory",
        &[
            "jvm heap exhausted",
            "java heap space errors",
            "garbage collection storms",
            "heap usage critical",
        ],
    ),
    (
        "CertificateExpiring",
        "application",
        "security",
        &[
            "certificate expiring",
            "tls cert about to expire",
            "ssl certificate renewal needed",
            "expired certificate",
        ],
    ),
];
const CACHE: &[Mode] = &[
    (
        "RedisMemoryHigh",
        "cache",
        "memory",
        &[
            "redis memory high",
            "cache memory near maxmemory",
            "redis used memory critical",
            "cache full",
        ],
    ),
    (
        "RedisEvictions",
        "cache",
        "evictions",
        &[
            "redis evicting keys",
            "cache eviction storm",
            "keys evicted",
            "cache hit ratio dropped",
        ],
    ),
];
const QUEUE: &[Mode] = &[
    (
        "KafkaConsumerLag",
        "messaging",
        "lag",
        &[
            "consumer lag growing",
            "kafka consumers behind",
            "messages piling up",
            "topic lag high",
        ],
    ),
    (
        "KafkaUnderReplicated",
        "messaging",
        "replication",
        &[
            "under replicated partitions",
            "isr shrinking",
            "partition replicas out of sync",
            "broker replication degraded",
        ],
    ),
];
const SWITCH: &[Mode] = &[
    (
        "SwitchPortFlapping",
        "network",
        "link",
        &[
            "port flapping",
            "link up down events",
            "interface flapping",
            "unstable uplink",
        ],
    ),
    (
        "InterfaceErrors",
        "network",
        "errors",
        &[
            "interface errors",
            "crc errors on port",
            "packet drops",
            "input errors rising",
        ],
    ),
];
/// Symptoms a dependent reports when something it depends on fails.
const SYMPTOM: &[Mode] = &[
    (
        "HighErrorRate",
        "application",
        "errors",
        &[
            "errors calling dependency",
            "requests failing",
            "5xx responses",
        ],
    ),
    (
        "HighLatency",
        "application",
        "performance",
        &["slow responses", "timeouts to backend", "latency high"],
    ),
];
const FILLER: &[&str] = &[
    "again",
    "reported by monitoring",
    "customer impact",
    "investigating",
    "since morning",
    "users complaining",
    "paged on-call",
    "night shift",
    "intermittent",
    "urgent",
];

fn modes(k: Kind) -> &'static [Mode] {
    match k {
        Kind::Db => DB,
        Kind::Host => HOST,
        Kind::App | Kind::Service => APP,
        Kind::Cache => CACHE,
        Kind::Queue => QUEUE,
        Kind::Switch => SWITCH,
    }
}

struct Estate {
    cis: Vec<(String, Kind)>,
    relations: Vec<Relation>,
}

fn estate(rng: &mut Rng, prefix: &str) -> Estate {
    let scale = 2.0 + rng.unit() * 2.0;
    let n = |base: f64, rng: &mut Rng| ((base * scale) as usize + rng.index(3)).max(1);
    let mut cis: Vec<(String, Kind)> = Vec::new();
    let mut relations = Vec::new();
    let rel = |s: &str, t: &str, ty: &str| Relation {
        source: s.to_string(),
        target: t.to_string(),
        rel_type: ty.to_string(),
    };
    let switches: Vec<String> = (0..n(3.0, rng))
        .map(|i| format!("{prefix}sw-{i:02}"))
        .collect();
    let hosts: Vec<String> = (0..n(24.0, rng))
        .map(|i| format!("{prefix}host-{i:03}"))
        .collect();
    let dbs: Vec<String> = (0..n(6.0, rng))
        .map(|i| format!("{prefix}db-{i:02}"))
        .collect();
    let caches: Vec<String> = (0..n(3.0, rng))
        .map(|i| format!("{prefix}redis-{i:02}"))
        .collect();
    let queues: Vec<String> = (0..n(2.0, rng))
        .map(|i| format!("{prefix}kafka-{i:02}"))
        .collect();
    const APPS: &[&str] = &[
        "orders", "payments", "checkout", "catalog", "search", "cart", "users", "auth", "billing",
        "invoices", "shipping", "stock", "pricing", "reviews", "mailer", "reports", "gateway",
        "ledger", "loyalty", "returns",
    ];
    let apps: Vec<String> = (0..n(14.0, rng))
        .map(|i| {
            format!(
                "{prefix}{}-api{}",
                APPS[i % APPS.len()],
                if i >= APPS.len() {
                    format!("-{}", i / APPS.len())
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let services: Vec<String> = (0..n(4.0, rng))
        .map(|i| format!("{prefix}svc-{}", APPS[i % APPS.len()]))
        .collect();
    for h in &hosts {
        let sw = rng.pick(&switches).clone();
        relations.push(rel(h, &sw, "connects_to"));
    }
    for x in dbs.iter().chain(&caches).chain(&queues) {
        let h = rng.pick(&hosts).clone();
        relations.push(rel(x, &h, "hosted_on"));
    }
    for (i, a) in apps.iter().enumerate() {
        let h = rng.pick(&hosts).clone();
        relations.push(rel(a, &h, "runs_on"));
        let d = rng.pick(&dbs).clone();
        relations.push(rel(a, &d, "depends_on"));
        if rng.chance(0.4) {
            let c = rng.pick(&caches).clone();
            relations.push(rel(a, &c, "depends_on"));
        }
        if rng.chance(0.3) {
            let q = rng.pick(&queues).clone();
            relations.push(rel(a, &q, "depends_on"));
        }
        if i > 0 && rng.chance(0.3) {
            let o = apps[rng.index(i)].clone();
            relations.push(rel(a, &o, "depends_on"));
        }
    }
    for s in &services {
        for _ in 0..1 + rng.index(3) {
            let a = rng.pick(&apps).clone();
            relations.push(rel(s, &a, "depends_on"));
        }
    }
    relations.sort();
    relations.dedup();
    for (list, k) in [
        (&switches, Kind::Switch),
        (&hosts, Kind::Host),
        (&dbs, Kind::Db),
        (&caches, Kind::Cache),
        (&queues, Kind::Queue),
        (&apps, Kind::App),
        (&services, Kind::Service),
    ] {
        cis.extend(list.iter().map(|c| (c.clone(), k)));
    }
    Estate { cis, relations }
}

fn owner(k: Kind) -> &'static str {
    match k {
        Kind::Db => "dba-team",
        Kind::Host => "unix-team",
        Kind::App | Kind::Service => "app-support",
        Kind::Cache | Kind::Queue => "middleware-team",
        Kind::Switch => "network-team",
    }
}

fn title(rng: &mut Rng, ci: &str, phrase: &str) -> String {
    match rng.index(4) {
        0 => format!("{ci}: {phrase}"),
        1 => format!("{phrase} on {ci}"),
        2 => format!("{ci} - {phrase}, {}", rng.pick(FILLER)),
        _ => format!("[{ci}] {} {phrase}", rng.pick(FILLER)),
    }
}

/// Generates one history: CMDB, records in time order, and the truth behind them.
pub fn generate(seed: u64) -> History {
    generate_with(seed, "", &Knobs::default())
}

/// `generate` with every CI id prefixed (to put several estates side by side).
pub fn generate_with_prefix(seed: u64, prefix: &str) -> History {
    generate_with(seed, prefix, &Knobs::default())
}

/// What makes a history harder than the base one. Every knob at its default leaves the
/// base generator's history exactly as it was (knob-driven draws come from a second
/// random stream), so figures stay comparable across versions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knobs {
    /// CIs that also carry 15-20 unrelated one-off incidents each, worded with generic
    /// words ("slow", "high", "users report", "intermittent") and varied alertnames.
    pub busy_cis: usize,
    /// Share of incidents whose title is only generic words about the CI.
    pub generic_share: f64,
    /// Share of incidents whose alertname is a variant of its usual name (a severity
    /// suffix, a renamed rule, another monitoring tool's spelling).
    pub alert_variation: f64,
    /// Share of incidents without a CI.
    pub no_ci_share: f64,
    /// Share of incidents with neither title nor alertname (coded fields only).
    pub no_title_share: f64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            busy_cis: 0,
            generic_share: 0.0,
            alert_variation: 0.0,
            no_ci_share: 0.0,
            no_title_share: 0.0,
        }
    }
}

const GENERIC: &[&str] = &[
    "slow",
    "high",
    "users report",
    "intermittent",
    "degraded",
    "not working properly",
    "errors reported",
    "users report slow",
    "high response time",
    "intermittent errors",
    "performance issue",
    "users report problems",
];
/// Unrelated one-off failures of a busy CI: (alertname, category, subcategory, detail).
const BUSY: &[(&str, &str, &str, &str)] = &[
    ("LoginPageSlow", "application", "performance", "login page"),
    ("ExportJobFailed", "application", "batch", "nightly export"),
    ("PdfRenderError", "application", "errors", "pdf invoices"),
    (
        "SearchIndexStale",
        "application",
        "data",
        "search results outdated",
    ),
    ("SmtpRelayRejected", "application", "mail", "mail relay"),
    ("LdapBindFailed", "security", "authentication", "ldap bind"),
    (
        "ConfigDriftDetected",
        "infrastructure",
        "configuration",
        "config drift",
    ),
    ("BackupJobLate", "infrastructure", "backup", "backup window"),
    ("CronJobMissed", "infrastructure", "scheduling", "cron job"),
    ("DnsLookupFailures", "network", "dns", "dns lookups"),
    (
        "ProxyAuthErrors",
        "network",
        "proxy",
        "proxy authentication",
    ),
    (
        "LicenseServerUnreachable",
        "application",
        "licensing",
        "license server",
    ),
    (
        "ReportQueueStuck",
        "application",
        "reporting",
        "report queue",
    ),
    (
        "FileShareUnavailable",
        "infrastructure",
        "storage",
        "file share",
    ),
    (
        "ApiQuotaExceeded",
        "application",
        "integration",
        "partner api quota",
    ),
    (
        "SessionStoreErrors",
        "application",
        "sessions",
        "session store",
    ),
    (
        "TranslationMissing",
        "application",
        "content",
        "missing translations",
    ),
    (
        "PrinterQueueBlocked",
        "workplace",
        "printing",
        "printer queue",
    ),
    (
        "ScheduledReportEmpty",
        "application",
        "reporting",
        "empty scheduled report",
    ),
    (
        "WebhookDeliveryFailed",
        "application",
        "integration",
        "webhook delivery",
    ),
    (
        "CacheWarmupSlow",
        "application",
        "performance",
        "cache warmup",
    ),
    ("AuditLogGap", "security", "audit", "audit log gap"),
    (
        "TimezoneMismatch",
        "application",
        "data",
        "timezone mismatch",
    ),
    (
        "UploadSizeRejected",
        "application",
        "errors",
        "file uploads",
    ),
    (
        "ThirdPartyTimeout",
        "application",
        "integration",
        "payment provider",
    ),
    (
        "SsoRedirectLoop",
        "security",
        "authentication",
        "sso redirect",
    ),
];

/// `generate_with_prefix` under `knobs`.
pub fn generate_with(seed: u64, prefix: &str, knobs: &Knobs) -> History {
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(6));
    let est = estate(&mut rng, prefix);
    let kinds: HashMap<&str, Kind> = est.cis.iter().map(|(c, k)| (c.as_str(), *k)).collect();
    let cmdb = CmdbFile {
        cis: est
            .cis
            .iter()
            .map(|(id, k)| Ci {
                id: id.clone(),
                name: None,
                ci_type: None,
                criticality: Criticality::Medium,
                owner_group: Some(owner(*k).to_string()),
                aliases: Vec::new(),
                attributes: Default::default(),
            })
            .collect(),
        relations: est.relations.clone(),
    };
    let topo = Topology::from_file(&cmdb);
    let start: DateTime<Utc> = "2026-05-04T00:00:00Z".parse().unwrap_or_default();
    let days = 182;
    let mut drafts: Vec<(DateTime<Utc>, Option<usize>, HistoryRecord)> = Vec::new();
    let mut problems: Vec<TrueProblem> = Vec::new();
    let root_kinds = [
        Kind::Db,
        Kind::Db,
        Kind::Host,
        Kind::Cache,
        Kind::Queue,
        Kind::App,
        Kind::Switch,
    ];
    let n_problems = 8 + rng.index(10);
    let mut used: Vec<(String, &str)> = Vec::new();
    while problems.len() < n_problems {
        let k = *rng.pick(&root_kinds);
        let pool: Vec<&(String, Kind)> = est.cis.iter().filter(|(_, kk)| *kk == k).collect();
        if pool.is_empty() {
            continue;
        }
        let root = pool[rng.index(pool.len())].0.clone();
        let mode = *rng.pick(modes(k));
        if used.iter().any(|(r, m)| *r == root && *m == mode.0) {
            continue;
        }
        used.push((root.clone(), mode.0));
        let p = problems.len();
        let node = topo.node(&root);
        let deps: Vec<String> = node
            .map(|n| {
                topo.impact(n, 2, 50)
                    .iter()
                    .map(|r| topo.ci(r.node).id.clone())
                    .collect()
            })
            .unwrap_or_default();
        // When it happens.
        let mut times: Vec<DateTime<Utc>> = Vec::new();
        let pattern = rng.index(100);
        let hour = rng.range(0, 23);
        if pattern < 40 {
            let weekday = rng.range(0, 6);
            let first_week = rng.range(0, 12);
            let weeks = rng.range(6, 26 - first_week);
            for w in first_week..first_week + weeks {
                if rng.chance(0.75) {
                    times.push(
                        start
                            + Duration::days(w * 7 + weekday)
                            + Duration::hours(hour)
                            + Duration::minutes(rng.range(0, 55)),
                    );
                }
            }
        } else if pattern < 65 {
            let first = rng.range(0, 120);
            let span = rng.range(20, days - first);
            for d in first..first + span {
                if rng.chance(0.25) {
                    times.push(
                        start
                            + Duration::days(d)
                            + Duration::hours(hour)
                            + Duration::minutes(rng.range(0, 55)),
                    );
                }
            }
        } else if pattern < 80 {
            let at = start + Duration::minutes(rng.range(0, (days - 3) * 1440));
            for _ in 0..4 + rng.index(6) {
                times.push(at + Duration::minutes(rng.range(0, 2 * 1440)));
            }
        } else {
            for _ in 0..4 + rng.index(8) {
                times.push(start + Duration::minutes(rng.range(0, days * 1440)));
            }
        }
        if times.len() < 3 {
            used.pop();
            continue;
        }
        let prio = rng.range(1, 4) as u8;
        problems.push(TrueProblem {
            root: root.clone(),
            signature: mode.0.to_string(),
            incidents: 0,
        });
        for t in times {
            let on_root = deps.is_empty() || rng.chance(0.55);
            let ci = if on_root {
                root.clone()
            } else {
                rng.pick(&deps).clone()
            };
            let ck = kinds.get(ci.as_str()).copied().unwrap_or(Kind::App);
            let phrase = *rng.pick(mode.3);
            let (alertname, text) = if on_root {
                if rng.chance(0.8) {
                    (mode.0, title(&mut rng, &ci, phrase))
                } else {
                    let other = *rng.pick(modes(k));
                    (other.0, title(&mut rng, &ci, phrase))
                }
            } else {
                let s = *rng.pick(SYMPTOM);
                let sp = *rng.pick(s.3);
                let an = if rng.chance(0.4) { mode.0 } else { s.0 };
                let text = if rng.chance(0.7) {
                    title(&mut rng, &ci, &format!("{sp} ({phrase} on {root})"))
                } else {
                    title(&mut rng, &ci, &format!("{sp}, {phrase}"))
                };
                (an, text)
            };
            let (cat, sub) = if rng.chance(0.85) {
                (mode.1, mode.2)
            } else {
                let m = *rng.pick(modes(ck));
                (m.1, m.2)
            };
            drafts.push((
                t,
                Some(p),
                record(
                    &mut rng,
                    t,
                    Some(ci.clone()),
                    text,
                    alertname,
                    cat,
                    sub,
                    owner(ck),
                    prio,
                ),
            ));
        }
    }
    // One-offs: failures that do not recur, so each (CI, failure mode) at most once, and
    // never a problem's own (root, mode).
    let mut combos: Vec<(usize, usize)> = Vec::new();
    for (ci_i, (ci, k)) in est.cis.iter().enumerate() {
        for (m_i, m) in modes(*k).iter().enumerate() {
            if !used.iter().any(|(r, a)| r == ci && *a == m.0) {
                combos.push((ci_i, m_i));
            }
        }
    }
    rng.shuffle(&mut combos);
    let n_oneoffs = (drafts.len() * 2 + rng.index(100)).min(combos.len() * 7 / 10);
    for &(ci_i, m_i) in combos.iter().take(n_oneoffs) {
        let (ci, k) = est.cis[ci_i].clone();
        let mode = modes(k)[m_i];
        let t = start + Duration::minutes(rng.range(0, days * 1440));
        let phrase = *rng.pick(mode.3);
        let text = title(&mut rng, &ci, phrase);
        let ci = if rng.chance(0.03) { None } else { Some(ci) };
        let prio = rng.range(2, 5) as u8;
        drafts.push((
            t,
            None,
            record(
                &mut rng,
                t,
                ci,
                text,
                mode.0,
                mode.1,
                mode.2,
                owner(k),
                prio,
            ),
        ));
    }
    apply_knobs(seed, &est, &mut drafts, knobs, start, days);
    drafts.sort_by_key(|d| d.0);
    let mut records = Vec::with_capacity(drafts.len());
    let mut truth = Vec::with_capacity(drafts.len());
    for (i, (_, p, mut r)) in drafts.into_iter().enumerate() {
        r.id = format!("INC{:07}", i + 1);
        if let Some(p) = p {
            problems[p].incidents += 1;
        }
        records.push(r);
        truth.push(p);
    }
    History {
        seed,
        cmdb,
        records,
        truth,
        problems,
    }
}

type Draft = (DateTime<Utc>, Option<usize>, HistoryRecord);

fn apply_knobs(
    seed: u64,
    est: &Estate,
    drafts: &mut Vec<Draft>,
    knobs: &Knobs,
    start: DateTime<Utc>,
    days: i64,
) {
    if *knobs == Knobs::default() {
        return;
    }
    let mut rng = Rng::new(seed.wrapping_mul(0xA24B_AED4_963E_E407).wrapping_add(0x51));
    let busy_pool: Vec<&(String, Kind)> = est
        .cis
        .iter()
        .filter(|(_, k)| matches!(k, Kind::App | Kind::Host | Kind::Db | Kind::Service))
        .collect();
    let mut picks: Vec<usize> = (0..busy_pool.len()).collect();
    rng.shuffle(&mut picks);
    for &b in picks.iter().take(knobs.busy_cis) {
        let (ci, k) = busy_pool[b];
        let mut kinds: Vec<usize> = (0..BUSY.len()).collect();
        rng.shuffle(&mut kinds);
        let n = 15 + rng.index(6);
        for &m in kinds.iter().take(n) {
            let (alert, cat, sub, detail) = BUSY[m];
            let t = start + Duration::minutes(rng.range(0, days * 1440));
            let g = *rng.pick(GENERIC);
            let text = match rng.index(3) {
                0 => format!("{ci}: {g}, {detail}"),
                1 => format!("{detail} {g} on {ci}"),
                _ => format!("[{ci}] {g} - {detail} {}", rng.pick(GENERIC)),
            };
            let prio = rng.range(2, 5) as u8;
            let mut r = record(
                &mut rng,
                t,
                Some(ci.clone()),
                text,
                alert,
                cat,
                sub,
                owner(*k),
                prio,
            );
            r.id = String::new();
            drafts.push((t, None, r));
        }
    }
    for (_, _, r) in drafts.iter_mut() {
        if rng.chance(knobs.generic_share) {
            let g1 = *rng.pick(GENERIC);
            let g2 = *rng.pick(GENERIC);
            r.title = Some(match &r.ci {
                Some(ci) => format!("{ci}: {g1}, {g2}"),
                None => format!("{g1}, {g2}"),
            });
        }
        if rng.chance(knobs.alert_variation) {
            r.alertnames = r
                .alertnames
                .iter()
                .map(|a| match rng.index(4) {
                    0 => format!("{a}Critical"),
                    1 => format!("{a}Warning"),
                    2 => {
                        let mut out = String::new();
                        for (i, ch) in a.chars().enumerate() {
                            if ch.is_uppercase() && i > 0 {
                                out.push('_');
                            }
                            out.extend(ch.to_lowercase());
                        }
                        out
                    }
                    _ => format!("Zbx{a}"),
                })
                .collect();
        }
        if rng.chance(knobs.no_ci_share) {
            r.ci = None;
        }
        if rng.chance(knobs.no_title_share) {
            r.title = None;
            r.alertnames.clear();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    rng: &mut Rng,
    t: DateTime<Utc>,
    ci: Option<String>,
    title: String,
    alertname: &str,
    category: &str,
    subcategory: &str,
    group: &str,
    priority: u8,
) -> HistoryRecord {
    HistoryRecord {
        id: String::new(),
        opened_at: t,
        resolved_at: Some(t + Duration::minutes(rng.range(15, 360))),
        ci,
        title: Some(title),
        alertnames: vec![alertname.to_string()],
        category: Some(category.to_string()),
        subcategory: Some(subcategory.to_string()),
        symptom: None,
        assignment_group: Some(group.to_string()),
        priority: Some(priority),
        resolution_note: None,
        location: None,
        service: None,
        ci_class: None,
        closure_code: None,
        known_error: None,
    }
}
