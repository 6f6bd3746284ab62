//! Unit tests of operator merges and splits (`manual.rs`) on the small estate of `tests`:
//! checkout → orders-api → db-01.

use super::tests::{alert, estate, incident_of, t};
use super::*;
use crate::alert::{Alert, AlertStatus};
use crate::cmdb::{CiMapper, Topology};
use crate::incident::{IncidentStatus, TimelineKind};

fn firing(name: &str, host: &str, start: i64) -> Alert {
    alert(name, host, AlertStatus::Firing, start, None)
}

/// A database fault with its effect upstream (one incident), and an alert on an unknown
/// host (another).
fn two_incidents() -> (Engine, Topology, [Alert; 3]) {
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let db = firing("PostgresDown", "db-01.prod:9187", 0);
    let api = firing("OrdersErrors", "orders-api.prod:8080", 1);
    let web = firing("DiskFull", "web-9:9100", 2);
    for a in [&db, &api, &web] {
        e.ingest(&topo, &m, a.clone());
    }
    assert_eq!(incident_of(&e, &db).id, incident_of(&e, &api).id);
    assert_ne!(incident_of(&e, &db).id, incident_of(&e, &web).id);
    e.take_changes();
    (e, topo, [db, api, web])
}

#[test]
fn a_merge_moves_every_alert_and_closes_the_source_with_merged_into() {
    let (mut e, topo, [db, api, web]) = two_incidents();
    let into = incident_of(&e, &db).id.clone();
    let from = incident_of(&e, &web).id.clone();
    e.merge_incident(&topo, &from, &into, "alice", t(10))
        .unwrap();

    let target = e.incident(&into).unwrap();
    assert_eq!(target.alert_count, 3);
    for a in [&db, &api, &web] {
        assert_eq!(incident_of(&e, a).id, into, "{a:?}");
    }
    assert_eq!(target.root_cause_ci.as_deref(), Some("db-01"));
    let source = e.incident(&from).unwrap();
    assert_eq!(source.status, IncidentStatus::Closed);
    assert_eq!(source.enrichment["merged_into"], into.as_str());

    let ch = e.take_changes();
    for id in [&from, &into] {
        assert!(
            ch.timeline.iter().any(|x| x.incident_id == id.as_str()
                && x.kind == TimelineKind::Merged
                && x.actor == "alice"),
            "{id}: {:?}",
            ch.timeline
        );
    }
    // The web alert belongs with both database-fault alerts.
    assert_eq!(ch.feedback.len(), 2);
    assert!(ch.feedback.iter().all(|p| p.label == Label::Together
        && p.a == web.fingerprint
        && p.action == EditKind::Merge
        && p.actor == "alice"));
}

#[test]
fn a_merge_under_the_other_root_makes_it_the_root() {
    // The upstream alert opened its own incident; merging the database's into it makes
    // the database (which orders-api depends on) the root.
    let topo = estate();
    let m = CiMapper::default();
    let mut e = Engine::new(CorrelateConfig::default());
    let api = firing("OrdersErrors", "orders-api.prod:8080", 0);
    let db = firing("PostgresDown", "db-01.prod:9187", 30);
    e.ingest(&topo, &m, api.clone());
    e.ingest(&topo, &m, db.clone());
    let (a, d) = (
        incident_of(&e, &api).id.clone(),
        incident_of(&e, &db).id.clone(),
    );
    assert_ne!(a, d, "30 minutes apart: two incidents");
    e.merge_incident(&topo, &d, &a, "bob", t(40)).unwrap();
    let inc = e.incident(&a).unwrap();
    assert_eq!(inc.root_cause_ci.as_deref(), Some("db-01"));
    assert_eq!(
        inc.enrichment["evidence"]["orders-api"],
        serde_json::json!(["orders-api", "db-01"])
    );
    assert_eq!(inc.root_cause.as_ref().map(|r| r.confidence), Some(1.0));
}

#[test]
fn a_merge_into_an_incident_without_a_ci_takes_the_sources_root() {
    let (mut e, topo, [db, _, web]) = two_incidents();
    let from = incident_of(&e, &db).id.clone();
    let into = incident_of(&e, &web).id.clone();
    assert_eq!(e.incident(&into).unwrap().root_cause_ci, None);
    e.merge_incident(&topo, &from, &into, "alice", t(10))
        .unwrap();
    let inc = e.incident(&into).unwrap();
    assert_eq!(inc.root_cause_ci.as_deref(), Some("db-01"));
    assert_eq!(inc.impacted_services, ["checkout"]);
    assert_eq!(inc.alert_count, 3);
}

#[test]
fn a_split_gives_the_new_incident_its_own_root_and_later_alerts_follow() {
    let (mut e, topo, [db, api, _]) = two_incidents();
    let m = CiMapper::default();
    let old = incident_of(&e, &db).id.clone();
    let new = e
        .split_incident(
            &topo,
            &old,
            std::slice::from_ref(&api.fingerprint),
            "alice",
            t(10),
        )
        .unwrap();
    assert_ne!(new, old);
    let n = e.incident(&new).unwrap();
    assert_eq!(n.root_cause_ci.as_deref(), Some("orders-api"));
    assert_eq!(n.alert_count, 1);
    assert_eq!(n.status, IncidentStatus::Open);
    let o = e.incident(&old).unwrap();
    assert_eq!(o.alert_count, 1);
    assert_eq!(o.ci_ids.iter().collect::<Vec<_>>(), ["db-01"]);
    assert_eq!(o.root_cause_ci.as_deref(), Some("db-01"));
    let ch = e.take_changes();
    assert!(ch.rewrite_members.contains(&old));
    assert_eq!(ch.feedback.len(), 1);
    assert_eq!(ch.feedback[0].label, Label::Apart);
    assert_eq!(ch.feedback[0].a_ci.as_deref(), Some("orders-api"));
    assert_eq!(ch.feedback[0].b_ci.as_deref(), Some("db-01"));

    // A re-send stays, a new alert on its CI goes to the new incident, and after it
    // resolves, its next firing reopens the new incident, not the old one.
    e.ingest(&topo, &m, firing("OrdersErrors", "orders-api.prod:8080", 1));
    assert_eq!(incident_of(&e, &api).id, new);
    let other = firing("OrdersLatency", "orders-api.prod:8080", 11);
    e.ingest(&topo, &m, other.clone());
    assert_eq!(incident_of(&e, &other).id, new);
    for a in [&api, &other] {
        let mut r = a.clone();
        r.status = AlertStatus::Resolved;
        r.ends_at = Some(t(12));
        e.ingest(&topo, &m, r);
    }
    assert_eq!(e.incident(&new).unwrap().status, IncidentStatus::Resolved);
    e.ingest(
        &topo,
        &m,
        firing("OrdersErrors", "orders-api.prod:8080", 14),
    );
    assert_eq!(incident_of(&e, &api).id, new);
    assert_eq!(e.incident(&new).unwrap().status, IncidentStatus::Open);
    assert_eq!(e.incident(&old).unwrap().alert_count, 1);
}

#[test]
fn edits_that_make_no_sense_are_refused() {
    let (mut e, topo, [db, api, web]) = two_incidents();
    let one = incident_of(&e, &db).id.clone();
    let two = incident_of(&e, &web).id.clone();
    assert_eq!(
        e.merge_incident(&topo, &one, &one, "a", t(10)),
        Err(EditError::IntoItself(one.clone()))
    );
    assert_eq!(
        e.merge_incident(&topo, &one, "INC0009999", "a", t(10)),
        Err(EditError::NotFound("INC0009999".into()))
    );
    assert_eq!(
        e.split_incident(
            &topo,
            &one,
            &[db.fingerprint.clone(), api.fingerprint.clone()],
            "a",
            t(10)
        ),
        Err(EditError::Everything(one.clone()))
    );
    assert!(matches!(
        e.split_incident(
            &topo,
            &one,
            std::slice::from_ref(&web.fingerprint),
            "a",
            t(10)
        ),
        Err(EditError::NotMember { .. })
    ));
    e.merge_incident(&topo, &two, &one, "a", t(10)).unwrap();
    assert_eq!(
        e.merge_incident(&topo, &one, &two, "a", t(11)),
        Err(EditError::Closed(two.clone()))
    );
    assert_eq!(
        e.split_incident(
            &topo,
            &two,
            std::slice::from_ref(&web.fingerprint),
            "a",
            t(11)
        ),
        Err(EditError::Closed(two))
    );
    // Nothing refused left a trace.
    let ch = e.take_changes();
    assert!(ch.timeline.iter().all(|x| x.at == t(10)));
}

#[test]
fn the_rules_never_fold_a_split_back() {
    let (mut e, topo, [db, api, _]) = two_incidents();
    let m = CiMapper::default();
    let old = incident_of(&e, &db).id.clone();
    let new = e
        .split_incident(
            &topo,
            &old,
            std::slice::from_ref(&api.fingerprint),
            "alice",
            t(3),
        )
        .unwrap();
    // A new database alert joins the database's incident; the late-root rule would also
    // merge the orders-api incident (its root depends on db-01, opened a minute ago) into
    // it, but the operator split those two apart.
    let more = firing("PostgresConnections", "db-01.prod:9187", 4);
    e.ingest(&topo, &m, more.clone());
    assert_eq!(incident_of(&e, &more).id, old);
    let n = e.incident(&new).unwrap();
    assert_eq!(n.status, IncidentStatus::Open);
    assert_eq!(n.alert_count, 1);
    assert_eq!(incident_of(&e, &api).id, new);
    assert_eq!(n.enrichment["kept_apart"], serde_json::json!([old]));
}

#[test]
fn a_firing_alert_merged_into_a_resolved_incident_reopens_it() {
    let (mut e, topo, [db, api, web]) = two_incidents();
    let m = CiMapper::default();
    let into = incident_of(&e, &db).id.clone();
    for a in [&db, &api] {
        let mut r = a.clone();
        r.status = AlertStatus::Resolved;
        r.ends_at = Some(t(5));
        e.ingest(&topo, &m, r);
    }
    assert_eq!(e.incident(&into).unwrap().status, IncidentStatus::Resolved);
    let from = incident_of(&e, &web).id.clone();
    e.merge_incident(&topo, &from, &into, "alice", t(10))
        .unwrap();
    let inc = e.incident(&into).unwrap();
    assert_eq!(inc.status, IncidentStatus::Open);
    assert_eq!(inc.resolved_at, None);
    assert_eq!(inc.alert_count, 3);
    // Once that alert resolves too, the merged incident resolves.
    let mut r = web.clone();
    r.status = AlertStatus::Resolved;
    r.ends_at = Some(t(12));
    e.ingest(&topo, &m, r);
    assert_eq!(e.incident(&into).unwrap().status, IncidentStatus::Resolved);
}
