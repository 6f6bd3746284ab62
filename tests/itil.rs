//! Incidents the ITIL way, black-box over HTTP against the daemon started in process
//! (`Sift::spawn_app`): priority from a configured matrix, the change-related flag, reopen
//! within the window versus a new incident after it. SQLite and PostgreSQL
//! (`TEST_DATABASE_URL`).

mod common;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::{Backend, Db, Sift};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const WEBHOOK: &str = "/api/v1/alerts/alertmanager";

const CMDB: &str = r#"
cis:
  - {id: checkout, type: business_service, criticality: high}
  - {id: orders-api, type: application, owner_group: app-team}
  - {id: db-01, type: database, criticality: critical, owner_group: dba-team}
  - {id: cache-01, type: cache, criticality: low}
relations:
  - {source: checkout, target: orders-api}
  - {source: orders-api, target: db-01}
"#;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

scenarios!(
    priority_follows_the_configured_matrix,
    a_change_in_progress_flags_the_incident,
    reopen_within_the_window_new_incident_after,
    sla_breached_when_not_acknowledged_in_time,
    similar_incidents_show_how_the_last_one_was_fixed,
);

fn ts(offset_secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(offset_secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn alert(status: &str, name: &str, ci: &str, sev: &str, start: &str, end: Option<&str>) -> Value {
    let mut a = json!({"status": status, "labels": {"alertname": name, "ci": ci, "severity": sev},
                       "startsAt": start, "fingerprint": format!("fp-{name}-{ci}")});
    if let Some(e) = end {
        a["endsAt"] = json!(e);
    }
    a
}

async fn send(s: &Sift, alerts: Vec<Value>) {
    let r = s
        .post(WEBHOOK, &json!({"version": "4", "alerts": alerts}))
        .await;
    s.expect(&r, 200, "post alerts");
}

fn incident_of<'a>(incs: &'a [Value], ci: &str) -> &'a Value {
    incs.iter()
        .find(|i| i["root_cause_ci"] == ci)
        .unwrap_or_else(|| panic!("no incident rooted at {ci}: {incs:#?}"))
}

async fn priority_follows_the_configured_matrix(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    // Stricter than the ITIL default in one cell: impact 1 x urgency 2 is P1, not P2.
    let matrix = r#"{"11":1,"12":1,"13":2,"21":2,"22":3,"23":4,"31":3,"32":4,"33":5}"#;
    let s = Sift::spawn_app(&db, &[("SIFT_INCIDENT__PRIORITY_MATRIX", matrix)]);
    send(
        &s,
        vec![
            alert("firing", "PostgresSlow", "db-01", "warning", &ts(-60), None),
            alert(
                "firing",
                "RedisDown",
                "cache-01",
                "critical",
                &ts(-60),
                None,
            ),
        ],
    )
    .await;
    let incs = s.incidents().await;
    let db_inc = incident_of(&incs, "db-01");
    assert_eq!(
        (db_inc["impact"].as_u64(), db_inc["urgency"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        db_inc["priority"], 1,
        "the configured cell, not the ITIL default 2"
    );
    assert_eq!(db_inc["assignment_group"], "dba-team");
    let cache = incident_of(&incs, "cache-01");
    assert_eq!(
        (cache["impact"].as_u64(), cache["urgency"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(cache["priority"], 3);
}

async fn a_change_in_progress_flags_the_incident(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let s = Sift::spawn_app(&db, &[]);
    // A (non-maintenance) change on db-01, which orders-api depends on, in progress now.
    let change = json!({"id": "CHG0000077", "ci_id": "db-01", "summary": "index rebuild",
                        "start": ts(-900), "end": ts(900)});
    let r = s.post("/api/v1/changes", &change).await;
    s.expect(&r, 200, "post change");
    send(
        &s,
        vec![
            alert(
                "firing",
                "HighErrorRate",
                "orders-api",
                "critical",
                &ts(-60),
                None,
            ),
            alert(
                "firing",
                "RedisDown",
                "cache-01",
                "critical",
                &ts(-60),
                None,
            ),
        ],
    )
    .await;
    let incs = s.incidents().await;
    let api = incident_of(&incs, "orders-api");
    assert_eq!(
        api["enrichment"]["probably_change_related"], true,
        "{api:#}"
    );
    assert_eq!(api["enrichment"]["recent_changes"][0]["id"], "CHG0000077");
    let cache = incident_of(&incs, "cache-01");
    assert_eq!(cache["enrichment"]["probably_change_related"], false);
    assert_eq!(cache["enrichment"]["recent_changes"], json!([]));
}

async fn reopen_within_the_window_new_incident_after(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let s = Sift::spawn_app(
        &db,
        &[
            ("SIFT_INCIDENT__REOPEN_WINDOW", "10m"),
            ("SIFT_INCIDENT__RESOLVE_HOLD_OFF", "0s"),
        ],
    );
    let fire = |start: &str| alert("firing", "RedisDown", "cache-01", "critical", start, None);
    let clear = |start: &str, end: &str| {
        alert(
            "resolved",
            "RedisDown",
            "cache-01",
            "critical",
            start,
            Some(end),
        )
    };
    // Event time drives everything: an hour ago it fired, then cleared.
    send(&s, vec![fire(&ts(-3600))]).await;
    send(&s, vec![clear(&ts(-3600), &ts(-3300))]).await;
    let first = s.incidents().await;
    assert_eq!(first.len(), 1);
    let id = first[0]["id"].as_str().unwrap().to_string();
    wait_status(&s, &id, "resolved").await;

    // Fires again 5 minutes after resolving: within the window, the same incident reopens.
    send(&s, vec![fire(&ts(-3000))]).await;
    let inc = wait_status(&s, &id, "open").await;
    let timeline = inc["timeline"].as_array().cloned().unwrap_or_default();
    assert!(timeline.iter().any(|e| e["kind"] == "reopened"), "{inc:#}");
    assert_eq!(s.incidents().await.len(), 1);

    // Clears, then fires 40 minutes later: past the window, a new incident.
    send(&s, vec![clear(&ts(-3000), &ts(-2700))]).await;
    wait_status(&s, &id, "resolved").await;
    send(&s, vec![fire(&ts(-300))]).await;
    let incs = s.incidents().await;
    assert_eq!(incs.len(), 2, "{incs:#?}");
    let new = incs.iter().find(|i| i["id"] != id.as_str()).unwrap();
    assert_eq!(new["status"], "open");
    assert_eq!(
        s.get_ok(&format!("/api/v1/incidents/{id}")).await["status"],
        "resolved"
    );
}

async fn wait_status(s: &Sift, id: &str, status: &str) -> Value {
    let path = format!("/api/v1/incidents/{id}");
    s.eventually(WAIT, &format!("{id} {status}"), || {
        let path = path.clone();
        async move {
            let inc = s.get_ok(&path).await;
            (inc["status"] == status).then_some(inc)
        }
    })
    .await
}

/// SLA targets from config; event time (the alerts' own timestamps) moves past the response
/// deadline of an unacknowledged incident: breached, on the timeline and in the metrics.
/// An incident acknowledged in time is not.
async fn sla_breached_when_not_acknowledged_in_time(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let sla = r#"{"p1": {"respond": "15m", "resolve": "4h"}, "p2": {"respond": "15m", "resolve": "4h"},
                  "p3": {"respond": "15m", "resolve": "4h"}, "p4": {"respond": "15m", "resolve": "4h"},
                  "p5": {"respond": "15m", "resolve": "4h"}}"#;
    let s = Sift::spawn_app(&db, &[("SIFT_INCIDENT__SLA", sla)]);
    // Opened 30 minutes ago (event time) and nobody acknowledged it.
    send(
        &s,
        vec![alert(
            "firing",
            "RedisDown",
            "cache-01",
            "critical",
            &ts(-1800),
            None,
        )],
    )
    .await;
    // A later alert elsewhere moves event time on to now.
    send(
        &s,
        vec![alert(
            "firing",
            "PostgresDown",
            "db-01",
            "critical",
            &ts(-5),
            None,
        )],
    )
    .await;
    let incs = s.incidents().await;
    let late = incident_of(&incs, "cache-01");
    assert_eq!(late["sla"]["respond_breached"], true, "{late:#}");
    assert_eq!(late["sla"]["resolve_breached"], false);
    let id = late["id"].as_str().unwrap();
    let full = s.get_ok(&format!("/api/v1/incidents/{id}")).await;
    assert!(
        full["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "sla_respond_breached"),
        "{full:#}"
    );
    // The fresh one, acknowledged at once, is within its SLA.
    let fresh = incident_of(&incs, "db-01");
    assert_eq!(fresh["sla"]["respond_breached"], false);
    let fid = fresh["id"].as_str().unwrap();
    let r = s
        .patch(
            &format!("/api/v1/incidents/{fid}"),
            &json!({"status": "acknowledged"}),
        )
        .await;
    s.expect(&r, 200, "acknowledge");
    assert_eq!(r.body["sla"]["respond_breached"], false, "{:#}", r.body);
    let m = common::parse_prometheus(&s.get("/metrics").await.text).unwrap();
    assert_eq!(
        common::metric(
            &m,
            "sift_incident_sla_breaches_total",
            &[("target", "respond")]
        ),
        1.0
    );
    assert!(common::metric(&m, "sift_incident_time_to_acknowledge_seconds_count", &[]) >= 1.0);
}

/// A resolution note written on one incident shows on the next one like it, also after a
/// restart (the daemon reloads finished incidents).
async fn similar_incidents_show_how_the_last_one_was_fixed(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let mut s = Sift::spawn_app(&db, &[]);
    send(
        &s,
        vec![alert(
            "firing",
            "PostgresDown",
            "db-01",
            "critical",
            &ts(-7200),
            None,
        )],
    )
    .await;
    let first = incident_of(&s.incidents().await, "db-01")["id"].clone();
    let path = format!("/api/v1/incidents/{}", first.as_str().unwrap_or_default());
    let r = s
        .patch(&path, &json!({"resolution_note": "restarted the primary"}))
        .await;
    s.expect(&r, 200, "resolution note");
    send(
        &s,
        vec![alert(
            "resolved",
            "PostgresDown",
            "db-01",
            "critical",
            &ts(-7200),
            Some(&ts(-6000)),
        )],
    )
    .await;
    s.restart();
    // The same fault again, long after the reopen window: a new incident that points back.
    send(
        &s,
        vec![alert(
            "firing",
            "PostgresDown",
            "db-01",
            "critical",
            &ts(-60),
            None,
        )],
    )
    .await;
    let incs = s.incidents().await;
    let new = incs
        .iter()
        .find(|i| i["root_cause_ci"] == "db-01" && i["id"] != first)
        .unwrap_or_else(|| panic!("a second incident on db-01: {incs:#?}"));
    let similar = &new["enrichment"]["similar_incidents"];
    assert_eq!(similar[0]["id"], first, "{similar:#}");
    assert_eq!(similar[0]["same_signature"], true);
    assert_eq!(similar[0]["resolution_note"], "restarted the primary");
}
