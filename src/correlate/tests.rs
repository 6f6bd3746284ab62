//! Unit tests of the core on small hand-drawn estates.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::alert::{Alert, AlertStatus, Fingerprint, Labels, Source};
use crate::cmdb::{Change, Ci, CmdbFile, Relation};
use crate::cmdb::{CiMapper, Topology};
use crate::incident::{CorrelationKey, Incident, IncidentStatus, TimelineKind};

pub(super) fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap() + Duration::minutes(min)
}

fn ci(id: &str, ty: &str) -> Ci {
    Ci {
        id: id.into(),
        name: None,
        ci_type: Some(ty.into()),
        criticality: Default::default(),
        owner_group: Some(format!("{id}-team")),
        aliases: vec![format!("{id}.prod")],
        attributes: Default::default(),
    }
}

pub(super) fn estate() -> Topology {
    Topology::from_file(&CmdbFile {
        cis: vec![
            ci("db-01", "database"),
            ci("orders-api", "application"),
            ci("checkout", "business_service"),
        ],
        relations: vec![
            Relation {
                source: "orders-api".into(),
                target: "db-01".into(),
                rel_type: "depends_on".into(),
            },
            Relation {
                source: "checkout".into(),
                target: "orders-api".into(),
                rel_type: "depends_on".into(),
            },
        ],
    })
}

pub(super) fn alert(
    name: &str,
    instance: &str,
    status: AlertStatus,
    start: i64,
    end: Option<i64>,
) -> Alert {
    let mut labels = Labels::new();
    labels.insert("alertname".into(), name.into());
    labels.insert("instance".into(), instance.into());
    Alert {
        fingerprint: Fingerprint::of_labels(&labels),
        status,
        labels,
        annotations: Labels::new(),
        starts_at: t(start),
        ends_at: end.map(t),
        generator_url: None,
        source: Source::Alertmanager,
    }
}

#[test]
fn duplicate_counts_and_resolve_closes_incident() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let a = alert(
        "PostgresDown",
        "db-01.prod:9187",
        AlertStatus::Firing,
        0,
        None,
    );
    assert_eq!(e.ingest(&topo, &m, a.clone()), Outcome::New);
    assert_eq!(e.ingest(&topo, &m, a.clone()), Outcome::Duplicate);
    let rec = e.alert(&a.fingerprint).unwrap();
    assert_eq!(rec.count, 2);
    assert_eq!(rec.ci_id.as_deref(), Some("db-01"));
    let inc = e.incident(rec.incident_id.as_deref().unwrap()).unwrap();
    assert_eq!(inc.status, IncidentStatus::Open);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("db-01"));
    assert_eq!(inc.impacted_services, vec!["checkout".to_string()]);
    assert_eq!(inc.assignment_group.as_deref(), Some("db-01-team"));
    let id = inc.id.clone();
    let mut r = a.clone();
    r.status = AlertStatus::Resolved;
    r.ends_at = Some(t(5));
    assert_eq!(e.ingest(&topo, &m, r), Outcome::Resolved);
    let inc = e.incident(&id).unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.resolved_at, Some(t(5)));
}

#[test]
fn one_incident_per_ci_and_fallback_groups() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    e.ingest(
        &topo,
        &m,
        alert(
            "PostgresDown",
            "db-01.prod:9187",
            AlertStatus::Firing,
            0,
            None,
        ),
    );
    e.ingest(
        &topo,
        &m,
        alert("DiskFull", "db-01.prod:9100", AlertStatus::Firing, 1, None),
    );
    // two pods of an unknown service: one fallback group
    e.ingest(
        &topo,
        &m,
        alert("CrashLoop", "pod-a", AlertStatus::Firing, 1, None),
    );
    e.ingest(
        &topo,
        &m,
        alert("CrashLoop", "pod-b", AlertStatus::Firing, 2, None),
    );
    let mut incs: Vec<_> = e
        .incidents()
        .map(|i| (i.correlation_key.to_string(), i.alert_count))
        .collect();
    incs.sort();
    assert_eq!(incs.len(), 2, "{incs:?}");
    assert_eq!(incs[0], ("ci:db-01".to_string(), 2));
    assert_eq!(incs[1].1, 2);
}

#[test]
fn expiry_by_ends_at_resolves_on_tick() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig {
        resolve_hold_off: Duration::minutes(5),
        ..Default::default()
    });
    let a = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, Some(4));
    e.ingest(&topo, &m, a.clone());
    e.tick(&topo, t(3));
    assert_eq!(e.alert(&a.fingerprint).unwrap().status, AlertStatus::Firing);
    e.tick(&topo, t(4));
    assert_eq!(
        e.alert(&a.fingerprint).unwrap().status,
        AlertStatus::Resolved
    );
    let id = e
        .alert(&a.fingerprint)
        .unwrap()
        .incident_id
        .clone()
        .unwrap();
    assert_eq!(
        e.incident(&id).unwrap().status,
        IncidentStatus::Open,
        "hold-off not over"
    );
    e.tick(&topo, t(9));
    assert_eq!(e.incident(&id).unwrap().status, IncidentStatus::Resolved);
    assert_eq!(e.incident(&id).unwrap().resolved_at, Some(t(9)));
}

#[test]
fn stale_events_change_nothing_and_refire_reopens_within_the_window() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let a = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, None);
    e.ingest(&topo, &m, a.clone());
    let mut r = a.clone();
    r.status = AlertStatus::Resolved;
    r.ends_at = Some(t(5));
    e.ingest(&topo, &m, r);
    // the old occurrence re-sent late
    assert_eq!(e.ingest(&topo, &m, a.clone()), Outcome::Duplicate);
    assert_eq!(
        e.alert(&a.fingerprint).unwrap().status,
        AlertStatus::Resolved
    );
    let first = e.alert(&a.fingerprint).unwrap().incident_id.clone();
    // within the reopen window (30m): the same incident reopens
    let again = alert("PostgresDown", "db-01", AlertStatus::Firing, 10, None);
    assert_eq!(e.ingest(&topo, &m, again.clone()), Outcome::New);
    let second = e.alert(&a.fingerprint).unwrap().incident_id.clone();
    assert_eq!(first, second);
    let inc = e.incident(first.as_deref().unwrap()).unwrap();
    assert_eq!((inc.status, inc.resolved_at), (IncidentStatus::Open, None));
    // resolved again, and firing long after: a new incident
    let mut r2 = again.clone();
    r2.status = AlertStatus::Resolved;
    r2.ends_at = Some(t(12));
    e.ingest(&topo, &m, r2);
    let late = alert("PostgresDown", "db-01", AlertStatus::Firing, 120, None);
    assert_eq!(e.ingest(&topo, &m, late), Outcome::New);
    let third = e.alert(&a.fingerprint).unwrap().incident_id.clone();
    assert_ne!(first, third);
    assert_eq!(e.alert(&a.fingerprint).unwrap().count, 6);
}

#[test]
fn patch_follows_lifecycle() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let a = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, None);
    e.ingest(&topo, &m, a.clone());
    let id = e
        .alert(&a.fingerprint)
        .unwrap()
        .incident_id
        .clone()
        .unwrap();
    let ack = IncidentPatch {
        status: Some(IncidentStatus::Acknowledged),
        ..Default::default()
    };
    e.patch_incident(&id, &ack, "operator", t(1)).unwrap();
    let close = IncidentPatch {
        status: Some(IncidentStatus::Closed),
        ..Default::default()
    };
    assert!(matches!(
        e.patch_incident(&id, &close, "operator", t(2)),
        Err(PatchError::IllegalTransition { .. })
    ));
    let res = IncidentPatch {
        status: Some(IncidentStatus::Resolved),
        comment: Some("fixed".into()),
        ..Default::default()
    };
    e.patch_incident(&id, &res, "operator", t(3)).unwrap();
    // the still-firing alert's re-send does not open a new incident
    assert_eq!(e.ingest(&topo, &m, a.clone()), Outcome::Duplicate);
    assert_eq!(e.incidents().count(), 1);
    e.patch_incident(&id, &close, "operator", t(4)).unwrap();
    assert!(e.patch_incident(&id, &ack, "operator", t(5)).is_err());
    assert_eq!(
        e.patch_incident("INC9", &ack, "x", t(5)),
        Err(PatchError::NotFound("INC9".into()))
    );
    let kinds: Vec<String> = e
        .take_changes()
        .timeline
        .into_iter()
        .map(|t| t.kind.to_string())
        .collect();
    assert!(
        kinds.contains(&"comment".to_string()) && kinds.contains(&"closed".to_string()),
        "{kinds:?}"
    );
}

/// checkout → orders-api → db-01 → host-db → sw-core ← host-cache ← cache-01 ← cart-api
fn wide_estate() -> Topology {
    let rel = |s: &str, t: &str| Relation {
        source: s.into(),
        target: t.into(),
        rel_type: "depends_on".into(),
    };
    Topology::from_file(&CmdbFile {
        cis: vec![
            ci("checkout", "business_service"),
            ci("orders-api", "application"),
            ci("cart-api", "application"),
            ci("db-01", "database"),
            ci("cache-01", "cache"),
            ci("host-db", "host"),
            ci("host-cache", "host"),
            ci("sw-core", "network"),
        ],
        relations: vec![
            rel("checkout", "orders-api"),
            rel("checkout", "cart-api"),
            rel("orders-api", "db-01"),
            rel("cart-api", "cache-01"),
            rel("db-01", "host-db"),
            rel("cache-01", "host-cache"),
            rel("host-db", "sw-core"),
            rel("host-cache", "sw-core"),
        ],
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
        starts_at: t(0) + Duration::seconds(start_s),
        ends_at: None,
        generator_url: None,
        source: Source::Alertmanager,
    }
}

pub(super) fn incident_of<'a>(e: &'a Engine, a: &Alert) -> &'a Incident {
    let id = e
        .alert(&a.fingerprint)
        .and_then(|r| r.incident_id.clone())
        .expect("alert has an incident");
    e.incident(&id).expect("incident in memory")
}

fn active(e: &Engine) -> Vec<&Incident> {
    e.incidents()
        .filter(|i| !i.enrichment.contains_key("merged_into"))
        .collect()
}

#[test]
fn a_database_fault_is_one_incident_rooted_at_the_database() {
    let topo = wide_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let db = on("db-01", "PostgresDown", 0);
    e.ingest(&topo, &m, db.clone());
    e.ingest(&topo, &m, on("orders-api", "HighErrorRate", 60));
    e.ingest(&topo, &m, on("checkout", "CheckoutSLOBurn", 150));
    assert_eq!(active(&e).len(), 1);
    let inc = incident_of(&e, &db);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("db-01"));
    assert_eq!(inc.alert_count, 3);
    assert_eq!(inc.impacted_services, vec!["checkout".to_string()]);
    assert_eq!(
        inc.enrichment["evidence"]["checkout"],
        serde_json::json!(["checkout", "orders-api", "db-01"])
    );
    assert!(
        inc.title.starts_with("db-01: PostgresDown (+2"),
        "{}",
        inc.title
    );
}

#[test]
fn two_faults_under_a_silent_switch_stay_apart_until_it_alerts() {
    let topo = wide_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let db = on("db-01", "PostgresDown", 0);
    let cache = on("cache-01", "RedisDown", 10);
    e.ingest(&topo, &m, db.clone());
    e.ingest(&topo, &m, cache.clone());
    e.ingest(&topo, &m, on("orders-api", "HighErrorRate", 60));
    e.ingest(&topo, &m, on("cart-api", "HighLatency", 70));
    assert_eq!(active(&e).len(), 2);
    assert_eq!(incident_of(&e, &db).root_cause_ci.as_deref(), Some("db-01"));
    assert_eq!(
        incident_of(&e, &cache).root_cause_ci.as_deref(),
        Some("cache-01")
    );
    // The switch alerting while the hosts in between show nothing explains neither: all
    // seven other CIs of this estate depend on it, so a link through silent CIs to it
    // counts for little.
    let sw = on("sw-core", "SwitchDown", 90);
    e.ingest(&topo, &m, sw.clone());
    assert_eq!(active(&e).len(), 3);
    // Once the hosts alert too, the path is visible end to end: one fault, rooted at
    // the switch.
    e.ingest(&topo, &m, on("host-db", "HostUnreachable", 100));
    e.ingest(&topo, &m, on("host-cache", "HostUnreachable", 105));
    assert_eq!(
        active(&e).len(),
        1,
        "{:?}",
        active(&e).iter().map(|i| &i.title).collect::<Vec<_>>()
    );
    let inc = incident_of(&e, &sw);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("sw-core"));
    assert_eq!(inc.alert_count, 7);
    assert_eq!(incident_of(&e, &db).id, inc.id);
    assert_eq!(
        inc.enrichment["evidence"]["orders-api"],
        serde_json::json!(["orders-api", "db-01", "host-db", "sw-core"])
    );
}

/// rack-a, rack-b (ToR switches) → core-sw → core-rtr; host-a → rack-a.
fn network_estate() -> Topology {
    let rel = |s: &str, t: &str| Relation {
        source: s.into(),
        target: t.into(),
        rel_type: "connects_to".into(),
    };
    Topology::from_file(&CmdbFile {
        cis: vec![
            ci("core-rtr", "network"),
            ci("core-sw", "network"),
            ci("rack-a", "network"),
            ci("rack-b", "network"),
            ci("host-a", "host"),
        ],
        relations: vec![
            rel("core-sw", "core-rtr"),
            rel("rack-a", "core-sw"),
            rel("rack-b", "core-sw"),
            rel("host-a", "rack-a"),
        ],
    })
}

#[test]
fn a_core_switch_alerting_minutes_later_does_not_adopt_a_rack_outage() {
    let topo = network_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    // A rack switch fails on its own and its host notices.
    let rack_a = on("rack-a", "SwitchDown", 0);
    e.ingest(&topo, &m, rack_a.clone());
    e.ingest(&topo, &m, on("host-a", "HostUnreachable", 40));
    // Seven minutes later the core switch fails: far outside the propagation window of
    // the rack's first alert, so it is a fault of its own, not the rack's late root.
    let sw = on("core-sw", "SwitchDown", 7 * 60);
    e.ingest(&topo, &m, sw.clone());
    let rack_b = on("rack-b", "SwitchUplinkDown", 7 * 60 + 50);
    e.ingest(&topo, &m, rack_b.clone());
    let core_inc = incident_of(&e, &sw).clone();
    assert_eq!(core_inc.root_cause_ci.as_deref(), Some("core-sw"));
    assert_eq!(incident_of(&e, &rack_b).id, core_inc.id);
    let rack_inc = incident_of(&e, &rack_a);
    assert_ne!(rack_inc.id, core_inc.id);
    assert_eq!(rack_inc.root_cause_ci.as_deref(), Some("rack-a"));
    assert_eq!(rack_inc.alert_count, 2);
    assert_eq!(active(&e).len(), 2);
}

#[test]
fn a_rack_alerting_while_the_core_switch_alert_flaps_joins_the_core_incident() {
    let topo = network_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let sw = on("core-sw", "HighPacketLoss", 0);
    e.ingest(&topo, &m, sw.clone());
    let rack_b = on("rack-b", "SwitchUplinkDown", 40);
    e.ingest(&topo, &m, rack_b.clone());
    // The core switch's alert clears for a moment (it flaps); the fault goes on.
    let mut clear = sw.clone();
    clear.status = AlertStatus::Resolved;
    clear.ends_at = Some(t(1));
    e.ingest(&topo, &m, clear);
    let core_inc = incident_of(&e, &sw).id.clone();
    assert!(e.incident(&core_inc).is_some_and(|i| i.status.is_active()));
    // A rack that starts alerting now is still explained by the core switch.
    let rack_a = on("rack-a", "SwitchUplinkDown", 90);
    e.ingest(&topo, &m, rack_a.clone());
    assert_eq!(incident_of(&e, &rack_a).id, core_inc);
    assert_eq!(
        incident_of(&e, &rack_a).enrichment["evidence"]["rack-a"],
        serde_json::json!(["rack-a", "core-sw"])
    );
    assert_eq!(active(&e).len(), 1);
}

#[test]
fn a_new_alert_on_a_service_follows_the_newer_fault_beneath_it() {
    let topo = wide_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    // The cart API fails and the checkout service notices.
    let cart = on("cart-api", "PodCrashLooping", 0);
    e.ingest(&topo, &m, cart.clone());
    let slo = on("checkout", "CheckoutSLOBurn", 60);
    e.ingest(&topo, &m, slo.clone());
    // Two minutes later the orders database fails; the orders API, then checkout again.
    let db = on("db-01", "PostgresDown", 120);
    e.ingest(&topo, &m, db.clone());
    e.ingest(&topo, &m, on("orders-api", "HighErrorRate", 160));
    let probe = on("checkout", "ProbeFailed", 200);
    e.ingest(&topo, &m, probe.clone());
    // Checkout's first alert stays with the cart fault; its new alert follows the orders
    // API, which began alerting after checkout's first alert did.
    assert_eq!(incident_of(&e, &slo).id, incident_of(&e, &cart).id);
    let db_inc = incident_of(&e, &db);
    assert_eq!(incident_of(&e, &probe).id, db_inc.id);
    assert_eq!(db_inc.root_cause_ci.as_deref(), Some("db-01"));
    assert_eq!(
        db_inc.enrichment["evidence"]["checkout"],
        serde_json::json!(["checkout", "orders-api", "db-01"])
    );
    // Another alert on the cart side a moment later still goes with the cart fault.
    let latency = on("cart-api", "HighLatency", 230);
    e.ingest(&topo, &m, latency.clone());
    assert_eq!(incident_of(&e, &latency).id, incident_of(&e, &cart).id);
    assert_eq!(active(&e).len(), 2);
}

#[test]
fn an_upstream_ci_alerting_shortly_after_becomes_the_root() {
    let topo = wide_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let app = on("orders-api", "HighErrorRate", 0);
    e.ingest(&topo, &m, app.clone());
    assert_eq!(
        incident_of(&e, &app).root_cause_ci.as_deref(),
        Some("orders-api")
    );
    e.ingest(&topo, &m, on("db-01", "PostgresDown", 45));
    let inc = incident_of(&e, &app).clone();
    assert_eq!(inc.root_cause_ci.as_deref(), Some("db-01"));
    assert_eq!(
        inc.enrichment["evidence"]["orders-api"],
        serde_json::json!(["orders-api", "db-01"])
    );
    assert!(
        e.take_changes()
            .timeline
            .iter()
            .any(|t| t.kind == TimelineKind::RootChanged)
    );
    // long after the window, an unrelated dependent alert is its own incident
    let late = on("orders-api", "SlowQueries", 3 * 3600);
    e.ingest(&topo, &m, late.clone());
    assert_ne!(incident_of(&e, &late).id, inc.id);
}

#[test]
fn unknown_cis_fall_back_and_cycles_do_not_hang() {
    let rel = |s: &str, t: &str| Relation {
        source: s.into(),
        target: t.into(),
        rel_type: "depends_on".into(),
    };
    let topo = Topology::from_file(&CmdbFile {
        cis: vec![
            ci("a", "application"),
            ci("b", "application"),
            ci("c", "database"),
        ],
        relations: vec![rel("a", "b"), rel("b", "a"), rel("b", "c"), rel("c", "a")],
    });
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    e.ingest(&topo, &m, on("a", "Down", 0));
    e.ingest(&topo, &m, on("b", "Down", 10));
    e.ingest(&topo, &m, on("c", "Down", 20));
    assert_eq!(active(&e).len(), 1);
    let x = on("not-in-cmdb", "Down", 30);
    e.ingest(&topo, &m, x.clone());
    let inc = incident_of(&e, &x);
    assert_eq!(inc.root_cause_ci, None);
    assert!(matches!(inc.correlation_key, CorrelationKey::Group(_)));
    assert!(inc.correlation_key.to_string().starts_with("group:"));
}

#[test]
fn maintenance_suppresses_and_what_still_fires_after_it_opens() {
    let topo = wide_estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    e.upsert_change(Change {
        id: "CHG1".into(),
        ci_id: "db-01".into(),
        summary: "minor version upgrade".into(),
        start: t(0),
        end: t(30),
        maintenance: true,
    });
    let db = on("db-01", "PostgresDown", 60);
    let app = on("orders-api", "HighErrorRate", 120);
    let cache = on("cache-01", "RedisDown", 130);
    e.ingest(&topo, &m, db.clone());
    e.ingest(&topo, &m, app.clone());
    e.ingest(&topo, &m, cache.clone());
    for a in [&db, &app] {
        let r = e.alert(&a.fingerprint).unwrap();
        assert!(r.suppressed && r.incident_id.is_none(), "{r:?}");
        assert_eq!(r.suppressed_by.as_deref(), Some("CHG1"));
    }
    assert!(
        e.alert(&cache.fingerprint).unwrap().incident_id.is_some(),
        "not under maintenance"
    );
    // the app alert clears during the window; the database is still down after it
    let mut app_ok = app.clone();
    app_ok.status = AlertStatus::Resolved;
    app_ok.ends_at = Some(t(20));
    e.ingest(&topo, &m, app_ok);
    e.tick(&topo, t(31));
    let r = e.alert(&db.fingerprint).unwrap();
    assert!(!r.suppressed);
    let inc = incident_of(&e, &db);
    assert_eq!(inc.opened_at, t(30));
    assert_eq!(inc.alert_count, 1);
    assert!(e.alert(&app.fingerprint).unwrap().incident_id.is_none());
}

#[test]
fn a_flapping_alert_holds_its_incident_open_until_steady() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let a = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, None);
    e.ingest(&topo, &m, a.clone());
    let id = e
        .alert(&a.fingerprint)
        .unwrap()
        .incident_id
        .clone()
        .unwrap();
    // firing/resolved every two minutes: 5 state changes in 10 minutes
    for k in 0..3 {
        let mut r = a.clone();
        r.status = AlertStatus::Resolved;
        r.ends_at = Some(t(2 + 4 * k));
        e.ingest(&topo, &m, r);
        let f = alert(
            "PostgresDown",
            "db-01",
            AlertStatus::Firing,
            4 + 4 * k,
            None,
        );
        e.ingest(&topo, &m, f);
    }
    let rec = e.alert(&a.fingerprint).unwrap();
    assert!(rec.flapping, "{rec:?}");
    assert_eq!(
        rec.incident_id.as_deref(),
        Some(id.as_str()),
        "flips stay in one incident"
    );
    assert_eq!(e.incidents().count(), 1);
    let mut r = a.clone();
    r.status = AlertStatus::Resolved;
    r.ends_at = Some(t(14));
    e.ingest(&topo, &m, r);
    assert!(
        e.incident(&id).unwrap().status.is_active(),
        "held open while flapping"
    );
    e.tick(&topo, t(30));
    assert!(
        e.incident(&id).unwrap().status.is_active(),
        "not steady for 30m yet"
    );
    e.tick(&topo, t(45));
    let inc = e.incident(&id).unwrap();
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.resolved_at, Some(t(44)));
    assert!(!e.alert(&a.fingerprint).unwrap().flapping);
    let kinds: Vec<String> = e
        .take_changes()
        .timeline
        .into_iter()
        .map(|t| t.kind.to_string())
        .collect();
    assert!(
        kinds.contains(&"flapping_started".into()) && kinds.contains(&"flapping_stopped".into())
    );
}

#[test]
fn enrichment_lists_recent_changes_upstream_and_runbooks() {
    let mut cis = vec![
        ci("db-01", "database"),
        ci("orders-api", "application"),
        ci("checkout", "business_service"),
    ];
    cis[0]
        .attributes
        .insert("runbook".into(), serde_json::json!("https://wiki/db-01"));
    let topo = Topology::from_file(&CmdbFile {
        cis,
        relations: vec![Relation {
            source: "orders-api".into(),
            target: "db-01".into(),
            rel_type: "depends_on".into(),
        }],
    });
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let change = |id: &str, ci: &str, start: i64, end: i64| Change {
        id: id.into(),
        ci_id: ci.into(),
        summary: format!("{id} on {ci}"),
        start: t(start),
        end: t(end),
        maintenance: false,
    };
    e.upsert_change(change("CHG-OLD", "db-01", -600, -500)); // before the lookback
    e.upsert_change(change("CHG-UP", "db-01", -10, 10)); // upstream, overlaps the start
    e.upsert_change(change("CHG-APP", "orders-api", -120, -60)); // on the root, ended
    e.upsert_change(change("CHG-LATER", "orders-api", 5, 20)); // after the start
    let mut a = alert("HighErrorRate", "orders-api", AlertStatus::Firing, 0, None);
    a.annotations
        .insert("runbook_url".into(), "https://wiki/orders".into());
    e.ingest(&topo, &m, a.clone());
    let inc = incident_of(&e, &a);
    let ids: Vec<&str> = inc.enrichment["recent_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["CHG-UP", "CHG-APP"],
        "latest first, within the lookback"
    );
    assert_eq!(inc.enrichment["probably_change_related"], true);
    assert_eq!(
        inc.enrichment["runbooks"],
        serde_json::json!(["https://wiki/orders"]),
        "the root's own runbook; db-01 is upstream but not in the incident"
    );

    // Without an overlapping change the flag is false.
    let mut e = Engine::new(CorrelateConfig::default());
    e.upsert_change(change("CHG-APP", "orders-api", -120, -60));
    e.ingest(&topo, &m, a.clone());
    assert_eq!(
        incident_of(&e, &a).enrichment["probably_change_related"],
        false
    );
}

#[test]
fn runbooks_and_changes_follow_joining_alerts() {
    let mut cis = vec![
        ci("db-01", "database"),
        ci("orders-api", "application"),
        ci("payments-api", "application"),
    ];
    cis[0]
        .attributes
        .insert("runbook".into(), serde_json::json!("https://wiki/db-01"));
    let rel = |s: &str| Relation {
        source: s.into(),
        target: "db-01".into(),
        rel_type: "depends_on".into(),
    };
    let mut topo = Topology::from_file(&CmdbFile {
        cis,
        relations: vec![rel("orders-api"), rel("payments-api")],
    });
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let with_runbook = |name: &str, ci: &str, at: i64, url: &str| {
        let mut a = alert(name, ci, AlertStatus::Firing, at, None);
        a.annotations.insert("runbook_url".into(), url.into());
        a
    };
    let db = with_runbook("PostgresDown", "db-01", 0, "https://wiki/db-down");
    e.ingest(&topo, &m, db.clone());
    e.ingest(
        &topo,
        &m,
        with_runbook("HighErrorRate", "orders-api", 1, "https://wiki/orders"),
    );
    // A change recorded after the incident opened, overlapping its start.
    e.upsert_change(Change {
        id: "CHG-7".into(),
        ci_id: "db-01".into(),
        summary: "minor version upgrade".into(),
        start: t(-5),
        end: t(5),
        maintenance: false,
    });
    e.ingest(
        &topo,
        &m,
        with_runbook("HighErrorRate", "payments-api", 2, "https://wiki/db-down"),
    );
    let inc = incident_of(&e, &db).clone();
    assert_eq!(inc.alert_count, 3);
    assert_eq!(
        inc.enrichment["runbooks"],
        serde_json::json!([
            "https://wiki/db-01",
            "https://wiki/db-down",
            "https://wiki/orders"
        ]),
        "the root CI's first, then each alert's in join order, no repeats"
    );
    assert_eq!(inc.enrichment["recent_changes"][0]["id"], "CHG-7");
    assert_eq!(inc.enrichment["probably_change_related"], true);
    // What was built alert by alert equals a computation from scratch.
    e.enrich(&topo, &inc.id);
    assert_eq!(incident_of(&e, &db).enrichment, inc.enrichment);

    // A runbook added to a CI in the CMDB shows at the next alert that joins.
    let mut payments = ci("payments-api", "application");
    payments
        .attributes
        .insert("runbook".into(), serde_json::json!("https://wiki/payments"));
    topo.upsert_ci(payments);
    e.ingest(
        &topo,
        &m,
        alert("LatencyHigh", "payments-api", AlertStatus::Firing, 3, None),
    );
    let runbooks = incident_of(&e, &db).enrichment["runbooks"].clone();
    assert_eq!(
        runbooks,
        serde_json::json!([
            "https://wiki/db-01",
            "https://wiki/db-down",
            "https://wiki/orders",
            "https://wiki/payments"
        ]),
        "payments-api's alert joined after orders-api's"
    );
}

fn sla_engine() -> Engine {
    let mut cfg = CorrelateConfig::default();
    for p in 1..=5u8 {
        cfg.sla.insert(
            p,
            SlaTarget {
                respond: Duration::minutes(15),
                resolve: Duration::minutes(60),
            },
        );
    }
    Engine::new(cfg)
}

fn kinds_of(ch: &Changes, id: &str) -> Vec<String> {
    ch.timeline
        .iter()
        .filter(|e| e.incident_id == id)
        .map(|e| e.kind.to_string())
        .collect()
}

#[test]
fn sla_breaches_follow_event_time_and_late_acknowledgements() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = sla_engine();
    let a = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, None);
    e.ingest(&topo, &m, a.clone());
    let id = incident_of(&e, &a).id.clone();
    let sla = incident_of(&e, &a).sla.clone().expect("an SLA");
    assert_eq!((sla.respond_by, sla.resolve_by), (t(15), t(60)));
    e.take_changes();

    e.tick(&topo, t(14));
    assert!(
        !e.incident(&id)
            .unwrap()
            .sla
            .as_ref()
            .unwrap()
            .respond_breached
    );
    assert!(kinds_of(&e.take_changes(), &id).is_empty());

    e.tick(&topo, t(16));
    let s = e.incident(&id).unwrap().sla.clone().unwrap();
    assert!(s.respond_breached && !s.resolve_breached, "{s:?}");
    assert_eq!(kinds_of(&e.take_changes(), &id), ["sla_respond_breached"]);

    // Acknowledged late and still not resolved at the resolve deadline.
    e.patch_incident(
        &id,
        &IncidentPatch {
            status: Some(IncidentStatus::Acknowledged),
            ..Default::default()
        },
        "op",
        t(20),
    )
    .unwrap();
    e.tick(&topo, t(61));
    let s = e.incident(&id).unwrap().sla.clone().unwrap();
    assert!(s.resolve_breached);
    let k = kinds_of(&e.take_changes(), &id);
    assert_eq!(
        k.iter().filter(|k| k.starts_with("sla_")).count(),
        1,
        "{k:?}"
    );

    // Acknowledged in time: no respond breach, ever.
    let b = alert("RedisDown", "orders-api", AlertStatus::Firing, 100, None);
    e.ingest(&topo, &m, b.clone());
    let id_b = incident_of(&e, &b).id.clone();
    e.patch_incident(
        &id_b,
        &IncidentPatch {
            status: Some(IncidentStatus::Acknowledged),
            ..Default::default()
        },
        "op",
        t(105),
    )
    .unwrap();
    e.tick(&topo, t(130));
    let s = e.incident(&id_b).unwrap().sla.clone().unwrap();
    assert!(!s.respond_breached && !s.resolve_breached, "{s:?}");
}

#[test]
fn no_sla_configured_means_no_sla() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let a = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, None);
    e.ingest(&topo, &m, a.clone());
    e.tick(&topo, t(1000));
    assert!(incident_of(&e, &a).sla.is_none());
}

#[test]
fn impact_rises_with_the_business_services_hurt() {
    let m = CiMapper::default();
    let with_checkout = |crit: crate::cmdb::Criticality| {
        let mut cis = vec![
            ci("db-01", "database"),
            ci("orders-api", "application"),
            ci("checkout", "business_service"),
        ];
        cis[2].criticality = crit;
        Topology::from_file(&CmdbFile {
            cis,
            relations: vec![
                Relation {
                    source: "orders-api".into(),
                    target: "db-01".into(),
                    rel_type: "depends_on".into(),
                },
                Relation {
                    source: "checkout".into(),
                    target: "orders-api".into(),
                    rel_type: "depends_on".into(),
                },
            ],
        })
    };
    let a = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, None);
    for (crit, impact) in [
        (crate::cmdb::Criticality::Critical, 1),
        (crate::cmdb::Criticality::Medium, 2),
        (crate::cmdb::Criticality::Low, 2), // never lower than the root's own
    ] {
        let topo = with_checkout(crit);
        let mut e = Engine::new(CorrelateConfig::default());
        e.ingest(&topo, &m, a.clone());
        let inc = incident_of(&e, &a);
        assert_eq!(inc.impacted_services, ["checkout"]);
        assert_eq!(inc.impact, impact, "checkout {crit:?}");
    }
}

#[test]
fn a_new_incident_shows_how_similar_ones_were_fixed() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let first = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, None);
    e.ingest(&topo, &m, first.clone());
    let id1 = e
        .alert(&first.fingerprint)
        .unwrap()
        .incident_id
        .clone()
        .unwrap();
    let note = IncidentPatch {
        resolution_note: Some("restarted the primary".into()),
        ..Default::default()
    };
    e.patch_incident(&id1, &note, "operator", t(1)).unwrap();
    let mut r = first.clone();
    r.status = AlertStatus::Resolved;
    r.ends_at = Some(t(5));
    e.ingest(&topo, &m, r);
    assert_eq!(e.incident(&id1).unwrap().status, IncidentStatus::Resolved);
    // a different alert on the same CI a day later, then the same signature again
    let other = alert(
        "PostgresSlowQueries",
        "db-01",
        AlertStatus::Firing,
        24 * 60,
        None,
    );
    e.ingest(&topo, &m, other.clone());
    let id2 = e
        .alert(&other.fingerprint)
        .unwrap()
        .incident_id
        .clone()
        .unwrap();
    let mut r2 = other.clone();
    r2.status = AlertStatus::Resolved;
    r2.ends_at = Some(t(24 * 60 + 5));
    e.ingest(&topo, &m, r2);
    let again = alert(
        "PostgresDown",
        "db-01",
        AlertStatus::Firing,
        2 * 24 * 60,
        None,
    );
    e.ingest(&topo, &m, again.clone());
    let id3 = e
        .alert(&again.fingerprint)
        .unwrap()
        .incident_id
        .clone()
        .unwrap();
    assert_ne!(id3, id1);
    let similar = &e.incident(&id3).unwrap().enrichment["similar_incidents"];
    assert_eq!(
        similar[0]["id"],
        serde_json::json!(id1),
        "same signature first: {similar:#}"
    );
    assert_eq!(similar[0]["same_signature"], true);
    assert_eq!(similar[0]["resolution_note"], "restarted the primary");
    assert_eq!(similar[1]["id"], serde_json::json!(id2));
    assert_eq!(similar[1]["same_signature"], false);
}

#[test]
fn assignment_falls_back_to_label_rules() {
    let topo = Topology::new();
    let m = CiMapper::default();
    let cfg = CorrelateConfig {
        assignment_rules: vec![
            AssignmentRule {
                label: "job".into(),
                value: Some("postgres".into()),
                group: Some("dba-team".into()),
            },
            AssignmentRule {
                label: "team".into(),
                value: None,
                group: None,
            },
        ],
        ..Default::default()
    };
    let mut e = Engine::new(cfg);
    let mut a = alert("PostgresDown", "unknown-1", AlertStatus::Firing, 0, None);
    a.labels.insert("job".into(), "postgres".into());
    a.fingerprint = Fingerprint::of_labels(&a.labels);
    e.ingest(&topo, &m, a.clone());
    let mut b = alert("DiskFull", "unknown-2", AlertStatus::Firing, 1, None);
    b.labels.insert("team".into(), "storage".into());
    b.fingerprint = Fingerprint::of_labels(&b.labels);
    e.ingest(&topo, &m, b.clone());
    assert_eq!(
        incident_of(&e, &a).assignment_group.as_deref(),
        Some("dba-team")
    );
    assert_eq!(
        incident_of(&e, &b).assignment_group.as_deref(),
        Some("storage")
    );
}

#[test]
fn a_resend_with_nothing_new_but_count_and_end_is_only_touched() {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let a = alert("PostgresDown", "db-01", AlertStatus::Firing, 0, Some(4));
    e.ingest(&topo, &m, a.clone());
    let first = e.take_changes();
    assert!(first.alerts.contains(&a.fingerprint) && first.touched.is_empty());

    // Re-sent with a later endsAt (Prometheus extends it each evaluation): a touch.
    let mut again = a.clone();
    again.ends_at = Some(t(8));
    assert_eq!(e.ingest(&topo, &m, again.clone()), Outcome::Duplicate);
    let c = e.take_changes();
    assert!(c.alerts.is_empty(), "{c:?}");
    assert!(c.touched.contains(&a.fingerprint));
    let rec = e.alert(&a.fingerprint).unwrap();
    assert_eq!((rec.count, rec.ends_at), (2, Some(t(8))));

    // An older occurrence re-sent late changes only the count: a touch too.
    let mut old = a.clone();
    old.starts_at = t(-30);
    e.ingest(&topo, &m, old);
    let c = e.take_changes();
    assert!(c.alerts.is_empty() && c.touched.contains(&a.fingerprint));

    // New annotations must reach the row: a full write.
    let mut annotated = again.clone();
    annotated
        .annotations
        .insert("summary".into(), "replica lag 40s".into());
    e.ingest(&topo, &m, annotated);
    let c = e.take_changes();
    assert!(c.alerts.contains(&a.fingerprint), "{c:?}");

    // A re-send restored from the journal sets count and end, and moves expiry (which
    // entries apply is the writer's journal's rule: `pipeline::journal`).
    let rec = e.alert(&a.fingerprint).unwrap();
    assert_eq!((rec.count, rec.ends_at), (4, Some(t(8))));
    e.restore_resend(&a.fingerprint, 7, Some(t(20)));
    let rec = e.alert(&a.fingerprint).unwrap();
    assert_eq!((rec.count, rec.ends_at), (7, Some(t(20))));
    e.tick(&topo, t(10));
    assert_eq!(
        e.alert(&a.fingerprint).unwrap().status,
        AlertStatus::Firing,
        "expiry follows the journaled end, not the old one"
    );
    e.tick(&topo, t(21));
    assert_eq!(
        e.alert(&a.fingerprint).unwrap().status,
        AlertStatus::Resolved
    );
}

#[test]
fn related_count_is_rewritten_in_place() {
    let mut t = String::from("db-1: PostgresDown");
    set_related_count(&mut t, 1);
    assert_eq!(t, "db-1: PostgresDown (+1 related alerts)");
    set_related_count(&mut t, 1234);
    assert_eq!(t, "db-1: PostgresDown (+1234 related alerts)");
    set_related_count(&mut t, 0);
    assert_eq!(t, "db-1: PostgresDown");
    // An alert name that itself holds " (+" is kept whole.
    let mut t = String::from("x: Disk (+backup) full");
    set_related_count(&mut t, 2);
    set_related_count(&mut t, 30);
    assert_eq!(t, "x: Disk (+backup) full (+30 related alerts)");
}
