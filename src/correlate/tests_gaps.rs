//! Unit tests of the policy on hand-drawn estates with monitoring gaps: links through
//! CIs that are not alerting, suspected (silent) roots, slow deep propagation, the
//! reasons placements record, and the policy as a pure function.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::tests::incident_of;
use super::*;
use crate::alert::{Alert, AlertStatus, Fingerprint, Labels, Source};
use crate::cmdb::{Ci, CmdbFile, Relation};
use crate::cmdb::{CiMapper, Topology};
use crate::incident::{Detail, Incident, Rule, TimelineKind};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

fn ci(id: &str, ty: &str) -> Ci {
    Ci {
        id: id.into(),
        name: None,
        ci_type: Some(ty.into()),
        criticality: Default::default(),
        owner_group: None,
        aliases: Vec::new(),
        attributes: Default::default(),
    }
}

fn rel(s: &str, t: &str) -> Relation {
    Relation {
        source: s.into(),
        target: t.into(),
        rel_type: "depends_on".into(),
    }
}

fn estate(cis: &[(&str, &str)], rels: &[(&str, &str)]) -> Topology {
    Topology::from_file(&CmdbFile {
        cis: cis.iter().map(|(id, ty)| ci(id, ty)).collect(),
        relations: rels.iter().map(|(s, t)| rel(s, t)).collect(),
    })
}

fn on(ci: &str, name: &str, start_s: i64) -> Alert {
    let mut labels = Labels::new();
    labels.insert("alertname".into(), name.into());
    labels.insert("ci".into(), ci.into());
    Alert {
        fingerprint: Fingerprint::of_labels(&labels),
        status: AlertStatus::Firing,
        labels,
        annotations: Labels::new(),
        starts_at: t0() + Duration::seconds(start_s),
        ends_at: None,
        generator_url: None,
        source: Source::Alertmanager,
    }
}

fn live(e: &Engine) -> Vec<&Incident> {
    e.incidents()
        .filter(|i| i.status.is_active() && !i.enrichment.contains_key("merged_into"))
        .collect()
}

/// The reason recorded when alert `a` joined its incident.
fn reason_of(ch: &Changes, a: &Alert) -> crate::incident::Reason {
    ch.timeline
        .iter()
        .find_map(|t| match &t.detail {
            Detail::AlertJoined {
                fingerprint,
                reason: Some(r),
                ..
            } if *fingerprint == a.fingerprint => Some((**r).clone()),
            _ => None,
        })
        .expect("a reason for the alert")
}

/// web-1, web-2, api-1 run on host-7, which nobody monitors; host-7 → tor-3.
fn silent_host_estate() -> Topology {
    estate(
        &[
            ("web-1", "application"),
            ("web-2", "application"),
            ("api-1", "application"),
            ("host-7", "host"),
            ("host-8", "host"),
            ("tor-3", "network"),
            ("batch-9", "application"),
        ],
        &[
            ("web-1", "host-7"),
            ("web-2", "host-7"),
            ("api-1", "host-7"),
            ("host-7", "tor-3"),
            ("host-8", "tor-3"),
            ("batch-9", "host-8"),
        ],
    )
}

#[test]
fn a_silent_host_under_alerting_apps_is_the_suspected_root_and_confirmed_when_it_alerts() {
    let topo = silent_host_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let w1 = on("web-1", "HighLatency", 0);
    let w2 = on("web-2", "HighErrorRate", 20);
    let a1 = on("api-1", "HighLatency", 45);
    for a in [&w1, &w2, &a1] {
        e.ingest(&topo, &m, a.clone());
    }
    let ch = e.take_changes();
    assert_eq!(
        live(&e).len(),
        1,
        "{:?}",
        live(&e).iter().map(|i| &i.title).collect::<Vec<_>>()
    );
    let inc = incident_of(&e, &w1).clone();
    assert_eq!(inc.alert_count, 3);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("host-7"));
    let rc = inc.root_cause.clone().expect("a root cause");
    assert!(!rc.alerting, "{rc:?}");
    assert!(rc.confidence > 0.0 && rc.confidence <= 0.5, "{rc:?}");
    assert!(inc.title.contains("suspected"), "{}", inc.title);
    assert_eq!(
        inc.enrichment["root_cause"]["alerting"],
        serde_json::json!(false)
    );
    // Evidence: a path from each symptom to the suspected root.
    for app in ["web-1", "web-2", "api-1"] {
        assert_eq!(
            inc.enrichment["evidence"][app],
            serde_json::json!([app, "host-7"]),
            "{app}"
        );
    }
    let r = reason_of(&ch, &w2);
    assert_eq!(r.rule, Rule::SilentRoot);
    assert_eq!(r.path, vec!["web-2", "host-7"]);
    assert_eq!(r.silent, vec!["host-7"]);
    assert!(
        ch.timeline
            .iter()
            .any(|t| t.kind == TimelineKind::RootSuspected)
    );
    // The third app links to the suspected root directly (it is filed in the incident).
    assert_eq!(reason_of(&ch, &a1).rule, Rule::Upstream);

    // The host alerts two minutes later: now the confirmed root.
    let h = on("host-7", "NodeFilesystemFull", 160);
    e.ingest(&topo, &m, h.clone());
    let ch = e.take_changes();
    let inc = incident_of(&e, &h).clone();
    assert_eq!(incident_of(&e, &w1).id, inc.id);
    assert_eq!(live(&e).len(), 1);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("host-7"));
    let rc = inc.root_cause.clone().expect("a root cause");
    assert!(rc.alerting, "{rc:?}");
    assert!(!inc.title.contains("suspected"), "{}", inc.title);
    assert_eq!(reason_of(&ch, &h).rule, Rule::ConfirmedRoot);
    assert!(
        ch.timeline
            .iter()
            .any(|t| t.kind == TimelineKind::RootConfirmed)
    );
}

#[test]
fn a_single_alerting_app_is_its_own_root_and_a_ci_missing_from_the_cmdb_is_never_suspected() {
    let topo = silent_host_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let w1 = on("web-1", "HighLatency", 0);
    e.ingest(&topo, &m, w1.clone());
    let inc = incident_of(&e, &w1);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("web-1"));
    assert!(inc.root_cause.as_ref().is_some_and(|r| r.alerting));
    // Two services unknown to the CMDB on one unknown host: grouped by host, no root.
    let mut x = on("x", "Down", 10);
    x.labels.remove("ci");
    x.labels.insert("instance".into(), "ghost-host:8080".into());
    x.labels.insert("job".into(), "a".into());
    x.fingerprint = Fingerprint::of_labels(&x.labels);
    let mut y = x.clone();
    y.labels.insert("job".into(), "b".into());
    y.fingerprint = Fingerprint::of_labels(&y.labels);
    e.ingest(&topo, &m, x.clone());
    e.ingest(&topo, &m, y.clone());
    assert_eq!(incident_of(&e, &x).id, incident_of(&e, &y).id);
    assert_eq!(incident_of(&e, &x).root_cause_ci, None);
    assert_eq!(incident_of(&e, &x).root_cause, None);
}

/// Two data centres, each a core switch 300 hosts hang off; app-N runs on host-N.
fn hub_estate() -> Topology {
    let mut cis: Vec<(String, &str)> = Vec::new();
    let mut rels: Vec<(String, String)> = Vec::new();
    for dc in ["dc1", "dc2"] {
        cis.push((format!("core-{dc}"), "network"));
        for i in 0..300 {
            cis.push((format!("host-{dc}-{i}"), "host"));
            cis.push((format!("app-{dc}-{i}"), "application"));
            rels.push((format!("host-{dc}-{i}"), format!("core-{dc}")));
            rels.push((format!("app-{dc}-{i}"), format!("host-{dc}-{i}")));
        }
    }
    Topology::from_file(&CmdbFile {
        cis: cis.iter().map(|(id, ty)| ci(id, ty)).collect(),
        relations: rels.iter().map(|(s, t)| rel(s, t)).collect(),
    })
}

#[test]
fn two_independent_faults_under_a_silent_core_switch_are_two_incidents() {
    let topo = hub_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    // Two hosts fail within half a minute of each other; their apps notice. Their core
    // switch, which 600 CIs (half the estate) depend on, shows nothing.
    let h1 = on("host-dc1-1", "HostDown", 0);
    let a1 = on("app-dc1-1", "HighErrorRate", 40);
    let h2 = on("host-dc1-2", "NodeDiskFailure", 25);
    let a2 = on("app-dc1-2", "HighLatency", 70);
    for a in [&h1, &h2, &a1, &a2] {
        e.ingest(&topo, &m, a.clone());
    }
    assert_eq!(
        live(&e).len(),
        2,
        "{:?}",
        live(&e).iter().map(|i| &i.title).collect::<Vec<_>>()
    );
    assert_eq!(
        incident_of(&e, &a1).root_cause_ci.as_deref(),
        Some("host-dc1-1")
    );
    assert_eq!(
        incident_of(&e, &a2).root_cause_ci.as_deref(),
        Some("host-dc1-2")
    );
    assert_ne!(incident_of(&e, &a1).id, incident_of(&e, &a2).id);
}

#[test]
fn a_silent_hub_with_many_symptoms_at_once_is_suspected() {
    // The switch of one data centre fails: 100 of its 300 hosts alert within four
    // minutes. Two are no evidence against a hub half the estate depends on; a third of
    // everything on it is.
    let topo = hub_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    for i in 0..100 {
        e.ingest(
            &topo,
            &m,
            on(&format!("host-dc1-{i}"), "HostUnreachable", i * 2),
        );
    }
    let last = incident_of(&e, &on("host-dc1-99", "HostUnreachable", 198));
    assert_eq!(last.root_cause_ci.as_deref(), Some("core-dc1"));
    assert!(last.root_cause.as_ref().is_some_and(|r| !r.alerting));
    assert!(
        live(&e).len() < 70,
        "{} incidents for one switch",
        live(&e).len()
    );
    assert!(
        live(&e)
            .iter()
            .all(|i| i.root_cause_ci.as_deref() != Some("core-dc2"))
    );
}

/// bs → app → db → host → san (a chain: a storage fault surfaces four hops up), beside
/// thirty unrelated applications (the chain is a small part of the estate).
fn chain_estate() -> Topology {
    let others: Vec<String> = (0..30).map(|i| format!("other-{i}")).collect();
    let mut cis = vec![
        ("shop", "business_service"),
        ("app", "application"),
        ("db", "database"),
        ("host", "host"),
        ("san", "storage"),
    ];
    cis.extend(others.iter().map(|o| (o.as_str(), "application")));
    estate(
        &cis,
        &[
            ("shop", "app"),
            ("app", "db"),
            ("db", "host"),
            ("host", "san"),
        ],
    )
}

#[test]
fn a_symptom_twelve_minutes_and_four_hops_after_its_root_joins() {
    let topo = chain_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let san = on("san", "StorageLatencyHigh", 0);
    e.ingest(&topo, &m, san.clone());
    // The business service's SLO burn-rate rule fires twelve minutes later; nothing in
    // between alerts (its `for:` clauses add up hop by hop).
    let slo = on("shop", "SLOBurnRateHigh", 12 * 60);
    e.ingest(&topo, &m, slo.clone());
    let ch = e.take_changes();
    assert_eq!(incident_of(&e, &slo).id, incident_of(&e, &san).id);
    let inc = incident_of(&e, &slo);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("san"));
    assert_eq!(
        inc.enrichment["evidence"]["shop"],
        serde_json::json!(["shop", "app", "db", "host", "san"])
    );
    let r = reason_of(&ch, &slo);
    assert_eq!(r.rule, Rule::Upstream);
    assert_eq!(r.lag_seconds, Some(720));
    assert_eq!(r.silent, vec!["app", "db", "host"]);
    assert!(r.score >= CorrelateConfig::default().min_link_score && r.score < 1.0);
}

#[test]
fn a_direct_dependent_twelve_minutes_later_is_a_fault_of_its_own() {
    let topo = chain_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let host = on("host", "HostDown", 0);
    e.ingest(&topo, &m, host.clone());
    // One hop: the propagation window is `window` (5m), not the 4-hop one.
    let db = on("db", "PostgresDown", 12 * 60);
    e.ingest(&topo, &m, db.clone());
    assert_ne!(incident_of(&e, &db).id, incident_of(&e, &host).id);
}

#[test]
fn a_link_through_a_monitoring_gap_records_its_reason_and_plain_joins_score_one() {
    let topo = chain_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let db = on("db", "PostgresDown", 0);
    let app = on("app", "HighErrorRate", 30);
    let shop = on("shop", "CheckoutErrors", 50);
    for a in [&db, &app, &shop] {
        e.ingest(&topo, &m, a.clone());
    }
    let ch = e.take_changes();
    let r = reason_of(&ch, &app);
    assert_eq!(r.rule, Rule::Upstream);
    assert_eq!(r.score, 1.0);
    assert_eq!(r.path, vec!["app", "db"]);
    assert!(r.silent.is_empty());
    assert_eq!(r.lag_seconds, Some(30));
    assert_eq!(reason_of(&ch, &db).rule, Rule::Opened);
    // The reason is written with the timeline entry, typed, as JSON.
    let entry = ch
        .timeline
        .iter()
        .find(|t| matches!(&t.detail, Detail::AlertJoined { fingerprint, .. } if *fingerprint == shop.fingerprint))
        .expect("shop joined");
    let json = serde_json::to_value(&entry.detail).expect("serializes");
    assert_eq!(json["reason"]["rule"], "upstream");
    assert_eq!(json["reason"]["path"], serde_json::json!(["shop", "app"]));
}

#[test]
fn links_both_ways_everywhere_do_not_hang_and_stay_bounded() {
    // A mesh of 400 radios, each linked both ways to its four neighbours on a torus.
    let n = 20;
    let id = |x: usize, y: usize| format!("r-{}-{}", x % n, y % n);
    let mut cis = Vec::new();
    let mut rels = Vec::new();
    for x in 0..n {
        for y in 0..n {
            cis.push((id(x, y), "network"));
            for (a, b) in [(x + 1, y), (x, y + 1)] {
                rels.push((id(x, y), id(a, b)));
                rels.push((id(a, b), id(x, y)));
            }
        }
    }
    let topo = Topology::from_file(&CmdbFile {
        cis: cis.iter().map(|(i, ty)| ci(i, ty)).collect(),
        relations: rels.iter().map(|(s, t)| rel(s, t)).collect(),
    });
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    // A storm: every tenth radio alerts within three minutes.
    let mut k = 0;
    for x in 0..n {
        for y in (0..n).step_by(10) {
            e.ingest(&topo, &m, on(&id(x, y + x % 10), "LinkDown", k * 4));
            k += 1;
        }
    }
    let walk = {
        let c = topo.node(&id(0, 0)).expect("in topology");
        policy::link_walk(&e.view(), &topo, c)
    };
    assert!(walk.len() < n * n);
    // Every CI is its own silent hub here (each reaches all others): no silent root glues
    // the storm, and each alert went somewhere.
    assert!(
        live(&e)
            .iter()
            .all(|i| i.root_cause.as_ref().is_none_or(|r| r.alerting))
    );
    assert_eq!(
        e.alerts().filter(|a| a.incident_id.is_some()).count(),
        k as usize
    );
}

/// A small random estate (layers; each CI depends on 1-3 CIs of the next layer down),
/// and a random stream of alerts on it.
fn random_world(seed: u64) -> (Topology, Vec<Alert>) {
    let mut below = crate::test_rng(seed);
    let layers = [4usize, 8, 12, 16];
    let mut cis = Vec::new();
    let mut rels = Vec::new();
    for (l, &w) in layers.iter().enumerate() {
        for i in 0..w {
            cis.push((format!("c{l}-{i}"), "application"));
            if l > 0 {
                for _ in 0..1 + below(3) {
                    let j = below(layers[l - 1] as u64);
                    rels.push((format!("c{l}-{i}"), format!("c{}-{j}", l - 1)));
                }
            }
        }
    }
    let topo = Topology::from_file(&CmdbFile {
        cis: cis.iter().map(|(i, ty)| ci(i, ty)).collect(),
        relations: rels.iter().map(|(s, t)| rel(s, t)).collect(),
    });
    let mut alerts = Vec::new();
    let mut at = 0;
    for k in 0..60 {
        at += below(90) as i64;
        let (id, _) = &cis[below(cis.len() as u64) as usize];
        alerts.push(on(id, &format!("A{}", k % 7), at));
    }
    (topo, alerts)
}

#[test]
fn the_same_view_and_alert_give_the_same_placement() {
    for seed in 0..30 {
        let (topo, alerts) = random_world(seed);
        let m = CiMapper::default();
        let mut e = Engine::new(CorrelateConfig::default());
        for a in alerts {
            let node = m.map(&topo, &a.labels);
            let rec = AlertRecord::new(a.clone(), a.starts_at);
            let first = policy::place(&e.view(), &topo, node, &rec, a.starts_at);
            // Again on the same view, and on a view whose memo is cold: deciding changed
            // nothing and the memo changes no answer.
            let again = policy::place(&e.view(), &topo, node, &rec, a.starts_at);
            let cold = std::cell::RefCell::new(policy::Memo::default());
            let view = policy::View {
                memo: &cold,
                ..e.view()
            };
            let cold = policy::place(&view, &topo, node, &rec, a.starts_at);
            assert_eq!(first, again, "seed {seed}");
            assert_eq!(first, cold, "seed {seed}");
            e.ingest(&topo, &m, a);
        }
    }
}

/// `a`'s occurrence ending `at_s` seconds after t0.
fn clear(a: &Alert, at_s: i64) -> Alert {
    let mut r = a.clone();
    r.status = AlertStatus::Resolved;
    r.ends_at = Some(t0() + Duration::seconds(at_s));
    r
}

/// `a` firing again, a new occurrence starting `at_s` seconds after t0.
fn again(a: &Alert, at_s: i64) -> Alert {
    let mut r = a.clone();
    r.starts_at = t0() + Duration::seconds(at_s);
    r
}

/// web-1 and app-2 depend on db-1; web-1 also on cache-1.
fn db_estate() -> Topology {
    estate(
        &[
            ("web-1", "application"),
            ("app-2", "application"),
            ("db-1", "database"),
            ("cache-1", "cache"),
        ],
        &[("web-1", "db-1"), ("app-2", "db-1"), ("web-1", "cache-1")],
    )
}

#[test]
fn a_symptom_flapping_or_recurring_while_its_root_alerts_stays_in_its_incident() {
    let topo = db_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let db = on("db-1", "DbDown", 0);
    let web = on("web-1", "HighLatency", 30);
    e.ingest(&topo, &m, db.clone());
    e.ingest(&topo, &m, web.clone());
    let id = incident_of(&e, &db).id.clone();
    assert_eq!(incident_of(&e, &web).id, id);
    // A flap: two minutes quiet.
    e.ingest(&topo, &m, clear(&web, 300));
    e.ingest(&topo, &m, again(&web, 420));
    assert_eq!(incident_of(&e, &web).id, id);
    // Forty minutes quiet, the database still down: the same fault goes on.
    e.ingest(&topo, &m, clear(&web, 600));
    e.ingest(&topo, &m, again(&web, 3000));
    assert_eq!(incident_of(&e, &web).id, id);
    assert_eq!(live(&e).len(), 1);
}

#[test]
fn a_symptom_recurring_after_its_root_cleared_is_a_new_occurrence() {
    let topo = db_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let db = on("db-1", "DbDown", 0);
    let web = on("web-1", "HighLatency", 30);
    let app = on("app-2", "HighErrorRate", 40);
    for a in [&db, &web, &app] {
        e.ingest(&topo, &m, a.clone());
    }
    let id = incident_of(&e, &db).id.clone();
    // The database recovers; app-2 still fires, so the incident stays open.
    e.ingest(&topo, &m, clear(&web, 300));
    e.ingest(&topo, &m, clear(&db, 600));
    assert!(e.incident(&id).unwrap().status.is_active());
    // Forty minutes later web-1's latency is back: nothing in that incident explains it.
    e.ingest(&topo, &m, again(&web, 3000));
    let now = incident_of(&e, &web);
    assert_ne!(now.id, id, "joined the stale incident");
    assert_eq!(now.root_cause_ci.as_deref(), Some("web-1"));
}

#[test]
fn a_recurring_symptom_follows_a_newer_cause_upstream() {
    let topo = db_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let db = on("db-1", "DbDown", 0);
    let web = on("web-1", "HighLatency", 30);
    e.ingest(&topo, &m, db.clone());
    e.ingest(&topo, &m, web.clone());
    let first = incident_of(&e, &db).id.clone();
    e.ingest(&topo, &m, clear(&web, 300));
    // The database is still down when the cache fails, long after: a fault of its own,
    // and web-1's latency coming back now is the cache's doing.
    let cache = on("cache-1", "CacheDown", 2000);
    e.ingest(&topo, &m, cache.clone());
    let second = incident_of(&e, &cache).id.clone();
    assert_ne!(second, first);
    e.ingest(&topo, &m, again(&web, 2030));
    let ch = e.take_changes();
    assert_eq!(incident_of(&e, &web).id, second);
    assert_eq!(reason_of(&ch, &web).rule, Rule::Upstream);
}

/// db-1 ← app-1 ← web-1: the database fails at 0; app-1's `ErrorRateHigh` rule has
/// `for: 12m`, so its alert starts 12.5 minutes later, after web-1's (fast) one.
fn slow_rule_case(cfg: CorrelateConfig) -> (Engine, Alert, Alert, Alert) {
    let topo = estate(
        &[
            ("db-1", "database"),
            ("app-1", "application"),
            ("web-1", "application"),
        ],
        &[("app-1", "db-1"), ("web-1", "app-1")],
    );
    let m = CiMapper::default();
    let mut e = Engine::new(cfg);
    let db = on("db-1", "MySQLDown", 0);
    let web = on("web-1", "ProbeFailed", 60);
    let app = on("app-1", "ErrorRateHigh", 750);
    for a in [&db, &web, &app] {
        e.ingest(&topo, &m, a.clone());
    }
    (e, db, web, app)
}

#[test]
fn an_alert_from_a_slow_rule_joins_its_cause_when_the_rule_hold_is_known() {
    // Unknown hold: 12.5 minutes after the database's alert is past the window.
    let (e, db, _, app) = slow_rule_case(CorrelateConfig::default());
    assert_ne!(incident_of(&e, &app).id, incident_of(&e, &db).id);

    // Known hold (configured or learned): its onset is 30 s after the database's.
    let mut cfg = CorrelateConfig::default();
    cfg.rule_hold
        .insert("ErrorRateHigh".into(), Duration::minutes(12));
    let (mut e, db, web, app) = slow_rule_case(cfg);
    assert_eq!(live(&e).len(), 1);
    let inc = incident_of(&e, &db);
    assert_eq!(inc.alert_count, 3);
    assert_eq!(incident_of(&e, &web).id, inc.id);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("db-1"));
    // The reason's lag is between onsets.
    let r = reason_of(&e.take_changes(), &app);
    assert_eq!(r.lag_seconds, Some(30), "{r:?}");
}

#[test]
fn learned_holds_fill_in_what_config_does_not_name_and_config_wins() {
    use crate::causality::{Learned, holds::Hold};
    let hold = |k: &str, s: i64| Hold {
        kind: k.into(),
        hold_seconds: s,
        samples: 20,
        lag_p25: s,
        lag_median: s,
        lag_p75: s,
        lag_p90: s,
    };
    let learned = Learned {
        holds: vec![hold("ErrorRateHigh", 720), hold("ProbeFailed", 600)],
        ..Default::default()
    };
    let mut cfg = CorrelateConfig::default();
    cfg.rule_hold.insert("ProbeFailed".into(), Duration::zero());
    let mut e = Engine::new(cfg.clone());
    e.set_learned(Some(&learned), &["alertname".to_string()]);
    assert_eq!(
        e.config().rule_hold.get("ErrorRateHigh"),
        Some(&Duration::minutes(12))
    );
    assert_eq!(
        e.config().rule_hold.get("ProbeFailed"),
        Some(&Duration::zero())
    );
    // A new graph without holds leaves the configured ones only.
    e.set_learned(None, &["alertname".to_string()]);
    assert_eq!(e.config().rule_hold.len(), 1);
    // learn_holds = false: learned ones are ignored.
    cfg.learn_holds = false;
    let mut e = Engine::new(cfg);
    e.set_learned(Some(&learned), &["alertname".to_string()]);
    assert!(!e.config().rule_hold.contains_key("ErrorRateHigh"));
}

/// A learned window for `relation` (`lags::ALL`: the estate's).
fn learned_window(relation: &str, s: i64) -> crate::causality::lags::RelationWindow {
    crate::causality::lags::RelationWindow {
        relation: relation.into(),
        samples: 200,
        propagation: 200,
        lag_median_s: s / 4,
        lag_p90_s: s / 2,
        window_s: Some(s),
    }
}

/// host-1 ← app-1 (runs_on), db-1 ← svc-1 (depends_on); `host-1` and `db-1` fail at 0,
/// `app-1` and `svc-1` alert `lag_s` later.
fn lag_case(e: &mut Engine, lag_s: i64) -> [Alert; 4] {
    let mut topo_file = CmdbFile {
        cis: [
            ("host-1", "host"),
            ("app-1", "application"),
            ("db-1", "database"),
            ("svc-1", "application"),
        ]
        .iter()
        .map(|(id, ty)| ci(id, ty))
        .collect(),
        relations: vec![rel("app-1", "host-1"), rel("svc-1", "db-1")],
    };
    topo_file.relations[0].rel_type = "runs_on".into();
    let topo = Topology::from_file(&topo_file);
    let m = CiMapper::default();
    let alerts = [
        on("host-1", "HostDown", 0),
        on("db-1", "MySQLDown", 0),
        on("app-1", "ProbeFailed", lag_s),
        on("svc-1", "ProbeFailed", lag_s),
    ];
    for a in &alerts {
        e.ingest(&topo, &m, a.clone());
    }
    alerts
}

#[test]
fn window_auto_uses_the_windows_learned_per_relation_type() {
    use crate::causality::Learned;
    let learned = Learned {
        windows: vec![
            learned_window(crate::causality::lags::ALL, 120),
            learned_window("runs_on", 600),
        ],
        ..Default::default()
    };
    let types = ["alertname".to_string()];
    // A fixed 5m: an alert 8 minutes after its cause is a fault of its own, whatever was
    // learned.
    let mut e = Engine::new(CorrelateConfig {
        auto_window: false,
        ..Default::default()
    });
    e.set_learned(Some(&learned), &types);
    let [host, db, app, svc] = lag_case(&mut e, 480);
    assert_ne!(incident_of(&e, &app).id, incident_of(&e, &host).id);
    assert_ne!(incident_of(&e, &svc).id, incident_of(&e, &db).id);

    // `auto` (the default): runs_on learned 10 minutes (the app joins its host 8 minutes
    // on); the estate's 2 minutes for the rest (the service 8 minutes after its database
    // is not its effect).
    let cfg = CorrelateConfig::default();
    assert!(cfg.auto_window);
    let mut e = Engine::new(cfg.clone());
    e.set_learned(Some(&learned), &types);
    assert_eq!(e.config().window, Duration::minutes(2));
    assert_eq!(e.config().late_root_window, Duration::minutes(2));
    let [host, db, app, svc] = lag_case(&mut e, 480);
    assert_eq!(incident_of(&e, &app).id, incident_of(&e, &host).id);
    assert_ne!(incident_of(&e, &svc).id, incident_of(&e, &db).id);
    // ... and 90 seconds later it is.
    let mut e = Engine::new(cfg.clone());
    e.set_learned(Some(&learned), &types);
    let [_, db, _, svc] = lag_case(&mut e, 90);
    assert_eq!(incident_of(&e, &svc).id, incident_of(&e, &db).id);

    // Nothing learned (yet, or any more): the configured windows.
    let mut e = Engine::new(cfg);
    e.set_learned(Some(&learned), &types);
    e.set_learned(None, &types);
    assert_eq!(e.config().window, Duration::minutes(5));
    assert!(e.config().relation_window.is_empty());
    let [_, db, _, svc] = lag_case(&mut e, 240);
    assert_eq!(incident_of(&e, &svc).id, incident_of(&e, &db).id);
}

#[test]
fn learned_windows_are_capped_at_max_window() {
    let mut cfg = CorrelateConfig::default();
    let set = cfg.fill_windows(&[learned_window(crate::causality::lags::ALL, 7200)]);
    assert_eq!(cfg.window, cfg.max_window);
    assert_eq!(set, vec![("*".to_string(), cfg.max_window)]);
}

/// Two racks under a core switch; the CMDB lost the uplink of `host-6` (it depends on
/// nothing, while the other eight hosts each depend on their ToR switch); `app-6` runs
/// on it.
fn lost_uplink_estate() -> Topology {
    let mut cis = vec![
        ("core", "network"),
        ("tor-1", "network"),
        ("tor-2", "network"),
        ("app-6", "application"),
    ];
    let mut rels = vec![("tor-1", "core"), ("tor-2", "core"), ("app-6", "host-6")];
    let hosts = [
        "host-1", "host-2", "host-3", "host-4", "host-5", "host-6", "host-7", "host-8", "host-9",
    ];
    for h in hosts {
        cis.push((h, "host"));
    }
    for h in &hosts[..5] {
        rels.push((h, "tor-1"));
    }
    for h in &hosts[6..] {
        rels.push((h, "tor-2"));
    }
    estate(&cis, &rels)
}

#[test]
fn a_host_whose_uplink_the_cmdb_lost_joins_the_switch_fault_its_rack_mates_are_in() {
    let topo = lost_uplink_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let tor = on("tor-1", "SwitchDown", 0);
    let h1 = on("host-1", "HostUnreachable", 20);
    let h2 = on("host-2", "HostUnreachable", 30);
    let h6 = on("host-6", "HostUnreachable", 60);
    let app = on("app-6", "HighErrorRate", 90);
    for a in [&tor, &h1, &h2, &h6] {
        e.ingest(&topo, &m, a.clone());
    }
    let ch = e.take_changes();
    let r = reason_of(&ch, &h6);
    assert_eq!(r.rule, Rule::Orphan);
    assert_eq!(r.path, vec!["host-6".to_string(), "tor-1".to_string()]);
    assert_eq!(r.lag_seconds, Some(60));
    e.ingest(&topo, &m, app.clone());
    assert_eq!(live(&e).len(), 1);
    let inc = incident_of(&e, &app);
    assert_eq!(inc.id, incident_of(&e, &tor).id);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("tor-1"));
}

#[test]
fn an_orphan_stays_apart_without_rack_mates_alerting_in_time_or_with_the_rule_off() {
    let topo = lost_uplink_estate();
    let m = CiMapper::default();
    // One rack mate alerting is not enough.
    let mut e = Engine::new(CorrelateConfig::default());
    for a in [
        on("tor-1", "SwitchDown", 0),
        on("host-1", "HostUnreachable", 20),
        on("host-6", "HostUnreachable", 60),
    ] {
        e.ingest(&topo, &m, a);
    }
    assert_eq!(live(&e).len(), 2);
    // Rack mates alerting, but the switch's trouble began more than `window` before.
    let mut e = Engine::new(CorrelateConfig::default());
    for a in [
        on("tor-1", "SwitchDown", 0),
        on("host-1", "HostUnreachable", 20),
        on("host-2", "HostUnreachable", 30),
        on("host-6", "HostUnreachable", 6 * 60),
    ] {
        e.ingest(&topo, &m, a);
    }
    assert_eq!(live(&e).len(), 2);
    // The rule turned off.
    let mut e = Engine::new(CorrelateConfig {
        orphan_links: false,
        ..CorrelateConfig::default()
    });
    for a in [
        on("tor-1", "SwitchDown", 0),
        on("host-1", "HostUnreachable", 20),
        on("host-2", "HostUnreachable", 30),
        on("host-6", "HostUnreachable", 60),
    ] {
        e.ingest(&topo, &m, a);
    }
    assert_eq!(live(&e).len(), 2);
}

#[test]
fn an_orphan_that_alerted_before_its_rack_mates_is_merged_into_their_switch_fault() {
    let topo = lost_uplink_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let tor = on("tor-1", "SwitchDown", 0);
    // host-6 (uplink lost) alerts before any rack mate: nothing places it yet, and its
    // application's alert follows it into the incident it opened.
    let h6 = on("host-6", "HostUnreachable", 10);
    let app = on("app-6", "HighErrorRate", 15);
    let h1 = on("host-1", "HostUnreachable", 20);
    for a in [&tor, &h6, &app, &h1] {
        e.ingest(&topo, &m, a.clone());
    }
    assert_eq!(live(&e).len(), 2, "one rack mate alerting is not enough");
    let orphan_inc = incident_of(&e, &h6).id.clone();
    // The second rack mate makes the case: host-6's incident merges into the switch's.
    e.ingest(&topo, &m, on("host-2", "HostUnreachable", 30));
    assert_eq!(live(&e).len(), 1);
    let inc = incident_of(&e, &app);
    assert_eq!(inc.id, incident_of(&e, &tor).id);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("tor-1"));
    assert_eq!(
        inc.enrichment["evidence"]["host-6"],
        serde_json::json!(["host-6", "tor-1"]),
        "the evidence says under which switch the orphan's peers alert"
    );
    let merged = e.incident(&orphan_inc).unwrap();
    assert_eq!(
        merged
            .enrichment
            .get("merged_into")
            .and_then(|v| v.as_str()),
        Some(inc.id.as_str())
    );
}

#[test]
fn a_database_whose_host_link_was_lost_joins_the_switch_fault_its_peers_are_in() {
    // Databases each on a host of their own; db-3's `hosted_on` is gone from the CMDB.
    let mut cis = vec![("tor-1", "network"), ("tor-2", "network")];
    let mut rels = vec![];
    for i in 1..=5 {
        cis.push((["h-1", "h-2", "h-3", "h-4", "h-5"][i - 1], "host"));
        cis.push((["db-1", "db-2", "db-3", "db-4", "db-5"][i - 1], "database"));
    }
    for (h, t) in [("h-1", "tor-1"), ("h-2", "tor-1"), ("h-3", "tor-1")] {
        rels.push((h, t));
    }
    rels.extend([("h-4", "tor-2"), ("h-5", "tor-2")]);
    rels.extend([
        ("db-1", "h-1"),
        ("db-2", "h-2"),
        ("db-4", "h-4"),
        ("db-5", "h-5"),
    ]);
    let topo = estate(&cis, &rels);
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let db3 = on("db-3", "DatabaseDown", 60);
    for a in [
        on("tor-1", "SwitchDown", 0),
        on("h-1", "HostUnreachable", 10),
        on("db-1", "DatabaseDown", 20),
        on("h-2", "HostUnreachable", 25),
        on("db-2", "DatabaseDown", 30),
    ] {
        e.ingest(&topo, &m, a);
    }
    e.take_changes();
    e.ingest(&topo, &m, db3.clone());
    let r = reason_of(&e.take_changes(), &db3);
    assert_eq!(r.rule, Rule::Orphan);
    assert_eq!(r.path, vec!["db-3".to_string(), "tor-1".to_string()]);
    assert_eq!(live(&e).len(), 1);
    assert_eq!(
        incident_of(&e, &db3).root_cause_ci.as_deref(),
        Some("tor-1")
    );
}

#[test]
fn the_top_of_a_type_is_no_orphan() {
    // `core` depends on nothing, like host-6, but network CIs depend on it: it is the top
    // of the network, not a switch whose uplink was lost. Alerting while tor-2's hosts
    // alert under tor-2 (no dependency between them in the CMDB's direction that would
    // make it a late root: here the two switches are unrelated), it stays apart.
    let topo = estate(
        &[
            ("core", "network"),
            ("edge", "network"),
            ("tor-a", "network"),
            ("tor-b", "network"),
            ("tor-c", "network"),
            ("h-1", "host"),
            ("h-2", "host"),
        ],
        &[
            ("tor-a", "edge"),
            ("tor-b", "edge"),
            ("tor-c", "core"),
            ("h-1", "tor-a"),
            ("h-2", "tor-a"),
        ],
    );
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    for a in [
        on("edge", "SwitchDown", 0),
        on("tor-a", "LinkDown", 10),
        on("tor-b", "LinkDown", 15),
        on("core", "SwitchDown", 40),
    ] {
        e.ingest(&topo, &m, a);
    }
    assert_eq!(live(&e).len(), 2);
}

/// A dependency whose alert re-fires just after an incident opened on what depends on
/// it becomes that incident's (late) root, rather than going back to its own old
/// incident: the fresh fault below it started with it.
#[test]
fn a_refire_becomes_the_late_root_of_a_fresh_incident_above_it() {
    let topo = estate(&[("api", "app"), ("web", "app")], &[("web", "api")]);
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let api = on("api", "LatencyHigh", 0);
    e.ingest(&topo, &m, api.clone());
    let old = incident_of(&e, &api).id.clone();
    e.ingest(&topo, &m, clear(&api, 120));
    // 20 minutes later (within the reopen window) web alerts first, api a minute later.
    let web = on("web", "LatencyHigh", 1200);
    e.ingest(&topo, &m, web.clone());
    let fresh = incident_of(&e, &web).id.clone();
    assert_ne!(fresh, old);
    e.take_changes();
    e.ingest(&topo, &m, again(&api, 1260));
    let ch = e.take_changes();
    assert_eq!(
        incident_of(&e, &api).id.clone(),
        fresh,
        "not back to its old incident"
    );
    let inc = e.incident(&fresh).unwrap();
    assert_eq!(inc.root_cause_ci.as_deref(), Some("api"));
    let r = reason_of(&ch, &api);
    assert_eq!(r.rule, Rule::LateRoot);
    assert_eq!(r.lag_seconds, Some(60));
    assert!(
        r.not_back
            .is_some_and(|w| w.contains(&old) && w.contains(&fresh))
    );
    assert_eq!(live(&e).len(), 1);
}
