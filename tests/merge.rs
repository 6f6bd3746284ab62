//! Operators merging and splitting incidents, black-box: the edits, their timelines,
//! outbound events and feedback pairs; later alerts of a split-out alert following it,
//! across a restart; and every refusal. Each scenario runs on SQLite and on PostgreSQL
//! (`TEST_DATABASE_URL`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{SecondsFormat, Utc};
use common::{Backend, Db, Resp, Sift};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const WEBHOOK: &str = "/api/v1/alerts/alertmanager";
const VIEWER: &str = "viewer-token-merge-tests";
const OPERATOR: &str = "operator-token-merge-tests";

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
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

scenarios!(
    a_merge_moves_every_alert_and_closes_the_source,
    a_split_out_alert_keeps_its_new_incident_across_resends_and_a_restart,
    edits_that_make_no_sense_are_refused,
);

// ---- a webhook receiver: the outbound events -------------------------------------------

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Value>>>);

impl Receiver {
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/hook")
    }

    /// The first event `kind` about `incident`, once it has arrived.
    async fn event(&self, s: &Sift, kind: &str, incident: &str) -> Value {
        s.eventually(WAIT, &format!("{kind} of {incident}"), || async {
            self.0
                .lock()
                .unwrap()
                .iter()
                .find(|b| b["event"] == kind && b["incident"]["id"] == incident)
                .cloned()
        })
        .await
    }
}

async fn receive(State(r): State<Receiver>, raw: Bytes) -> StatusCode {
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    r.0.lock().unwrap().push(body);
    StatusCode::OK
}

// ---- helpers ----------------------------------------------------------------------------

fn start(db: &Db, hook: &str) -> Sift {
    let tokens = json!([
        {"token": VIEWER, "role": "viewer"},
        {"token": OPERATOR, "role": "operator", "name": "alice-oncall"},
    ])
    .to_string();
    let hooks =
        json!([{"name": "itsm", "url": hook, "timeout": "2s", "max_attempts": 100}]).to_string();
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    Sift::start(
        db,
        &[
            ("SIFT_AUTH__TOKENS", tokens.as_str()),
            ("SIFT_NOTIFY__ALLOW_NETWORKS", r#"["127.0.0.0/8"]"#),
            ("SIFT_NOTIFY__WEBHOOKS", hooks.as_str()),
            ("SIFT_NOTIFY__POLL_INTERVAL", "50ms"),
            ("SIFT_NOTIFY__BACKOFF_BASE", "50ms"),
            ("SIFT_NOTIFY__BACKOFF_MAX", "200ms"),
            ("SIFT_INCIDENT__RESOLVE_HOLD_OFF", "0s"),
        ],
    )
}

fn ts(offset_secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(offset_secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn fp(name: &str, ci: &str) -> String {
    format!("fp-{name}-{ci}")
}

/// A firing alert, or with `end` a resolved one.
fn alert(name: &str, ci: &str, sev: &str, start: &str, end: Option<&str>) -> Value {
    let status = if end.is_some() { "resolved" } else { "firing" };
    let mut a = json!({"status": status, "labels": {"alertname": name, "ci": ci, "severity": sev},
                       "startsAt": start, "fingerprint": fp(name, ci)});
    if let Some(e) = end {
        a["endsAt"] = json!(e);
    }
    a
}

async fn send(s: &Sift, alerts: Vec<Value>) {
    let r = s
        .call(
            Method::POST,
            WEBHOOK,
            Some(OPERATOR),
            Some(&json!({"version": "4", "alerts": alerts})),
        )
        .await;
    s.expect(&r, 200, "post alerts");
}

async fn as_operator(s: &Sift, path: &str, body: &Value) -> Resp {
    s.call(Method::POST, path, Some(OPERATOR), Some(body)).await
}

async fn read(s: &Sift, path: &str) -> Value {
    let r = s.call(Method::GET, path, Some(VIEWER), None).await;
    s.expect(&r, 200, &format!("GET {path}"));
    r.body
}

/// The incident an alert is in now.
async fn incident_of_alert(s: &Sift, fingerprint: &str) -> String {
    let alerts = read(s, "/api/v1/alerts?limit=1000").await;
    alerts["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["fingerprint"] == fingerprint)
        .and_then(|a| a["incident_id"].as_str())
        .unwrap_or_else(|| panic!("alert {fingerprint} has no incident: {alerts}"))
        .to_string()
}

/// The fingerprints of an incident's alerts, sorted.
fn alerts_of(incident: &Value) -> Vec<String> {
    let mut v: Vec<String> = incident["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["fingerprint"].as_str().map(String::from))
        .collect();
    v.sort();
    v
}

/// The timeline entries of `kind` of an incident.
fn entries<'a>(incident: &'a Value, kind: &str) -> Vec<&'a Value> {
    incident["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// The two incidents of a split and their alerts.
struct Ids {
    old: String,
    new: String,
    db_fp: String,
    api_fp: String,
}

/// The database alert in the old incident, the split-out one in the new, each alone.
async fn check(s: &Sift, ids: &Ids, what: &str) -> (Value, Value) {
    let o = read(s, &format!("/api/v1/incidents/{}", ids.old)).await;
    let n = read(s, &format!("/api/v1/incidents/{}", ids.new)).await;
    assert_eq!(alerts_of(&o), [ids.db_fp.as_str()], "{what}: {o:#}");
    assert_eq!(alerts_of(&n), [ids.api_fp.as_str()], "{what}: {n:#}");
    assert_eq!(o["alert_count"], 1, "{what}");
    assert_eq!(n["alert_count"], 1, "{what}");
    assert_eq!(o["ci_ids"], json!(["db-01"]), "{what}");
    assert_eq!(incident_of_alert(s, &ids.api_fp).await, ids.new, "{what}");
    (o, n)
}

// ---- scenarios --------------------------------------------------------------------------

async fn a_merge_moves_every_alert_and_closes_the_source(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let receiver = Receiver::default();
    let s = start(&db, &receiver.serve().await);
    // Unrelated in the CMDB: two incidents, which the operator knows are one.
    send(
        &s,
        vec![
            alert("PostgresSlow", "db-01", "warning", &ts(-120), None),
            alert("RedisDown", "cache-01", "critical", &ts(-60), None),
        ],
    )
    .await;
    let db_inc = incident_of_alert(&s, &fp("PostgresSlow", "db-01")).await;
    let cache_inc = incident_of_alert(&s, &fp("RedisDown", "cache-01")).await;
    assert_ne!(db_inc, cache_inc);

    let r = as_operator(
        &s,
        &format!("/api/v1/incidents/{cache_inc}/merge"),
        &json!({"into": db_inc}),
    )
    .await;
    s.expect(&r, 200, "merge");
    assert_eq!(r.body["merged"]["status"], "closed");
    assert_eq!(
        r.body["merged"]["enrichment"]["merged_into"],
        db_inc.as_str()
    );

    // The target holds both alerts; its root stays the database, its impact the higher
    // (db-01 is critical) and its urgency the more urgent alert's (RedisDown, critical).
    let target = read(&s, &format!("/api/v1/incidents/{db_inc}")).await;
    assert_eq!(
        alerts_of(&target),
        [fp("PostgresSlow", "db-01"), fp("RedisDown", "cache-01")]
    );
    assert_eq!(target["alert_count"], 2);
    assert_eq!(target["root_cause_ci"], "db-01");
    assert_eq!(
        (target["impact"].as_u64(), target["urgency"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(target["priority"], 1);
    let merged = entries(&target, "merged");
    assert_eq!(merged.len(), 1, "{target:#}");
    assert_eq!(merged[0]["actor"], "alice-oncall");
    assert_eq!(merged[0]["detail"]["from"], cache_inc.as_str());

    let source = read(&s, &format!("/api/v1/incidents/{cache_inc}")).await;
    assert_eq!(source["status"], "closed");
    assert_eq!(source["enrichment"]["merged_into"], db_inc.as_str());
    assert_eq!(entries(&source, "merged")[0]["actor"], "alice-oncall");
    assert_eq!(
        incident_of_alert(&s, &fp("RedisDown", "cache-01")).await,
        db_inc
    );

    // Announced: the source closed (with merged_into), the target updated.
    let closed = receiver.event(&s, "incident.closed", &cache_inc).await;
    assert_eq!(closed["merged_into"], db_inc.as_str());
    let updated = s
        .eventually(
            WAIT,
            "incident.updated of the target with both alerts",
            || async {
                receiver
                    .0
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|b| {
                        b["event"] == "incident.updated"
                            && b["incident"]["id"] == db_inc.as_str()
                            && b["incident"]["alert_count"] == 2
                    })
                    .cloned()
            },
        )
        .await;
    assert_eq!(updated["incident"]["status"], "open");

    // Remembered as feedback: the cache alert belongs with the database alert.
    let fb = read(&s, "/api/v1/feedback").await;
    let pairs = fb["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 1, "{fb:#}");
    let p = &pairs[0];
    assert_eq!(
        (
            &p["label"],
            &p["action"],
            &p["actor"],
            &p["a_ci"],
            &p["b_ci"]
        ),
        (
            &json!("together"),
            &json!("merge"),
            &json!("alice-oncall"),
            &json!("cache-01"),
            &json!("db-01")
        )
    );
    assert_eq!(p["incident_id"], cache_inc.as_str());
    assert_eq!(p["other_incident_id"], db_inc.as_str());
    let apart = read(&s, "/api/v1/feedback?label=apart").await;
    assert_eq!(apart["pairs"], json!([]));
}

async fn a_split_out_alert_keeps_its_new_incident_across_resends_and_a_restart(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let receiver = Receiver::default();
    let mut s = start(&db, &receiver.serve().await);
    let (db_start, api_start) = (ts(-120), ts(-60));
    let db_alert = alert("PostgresSlow", "db-01", "warning", &db_start, None);
    let api_alert = alert("OrdersErrors", "orders-api", "critical", &api_start, None);
    send(&s, vec![db_alert.clone(), api_alert.clone()]).await;
    let (db_fp, api_fp) = (
        fp("PostgresSlow", "db-01"),
        fp("OrdersErrors", "orders-api"),
    );
    let old = incident_of_alert(&s, &db_fp).await;
    assert_eq!(
        incident_of_alert(&s, &api_fp).await,
        old,
        "one fault, one incident"
    );

    let r = as_operator(
        &s,
        &format!("/api/v1/incidents/{old}/split"),
        &json!({"alerts": [api_fp]}),
    )
    .await;
    s.expect(&r, 200, "split");
    let new = r.body["split"]["id"].as_str().expect("new id").to_string();
    assert_ne!(new, old);
    // Each side has its own root and priority: orders-api (medium impact, critical
    // alert) and db-01 (critical CI, warning alert).
    assert_eq!(r.body["split"]["root_cause_ci"], "orders-api");
    assert_eq!(r.body["split"]["alert_count"], 1);
    assert_eq!(r.body["incident"]["root_cause_ci"], "db-01");
    assert_eq!(r.body["incident"]["alert_count"], 1);
    assert_eq!(r.body["incident"]["urgency"], 2);

    let ids = Ids {
        old: old.clone(),
        new: new.clone(),
        db_fp: db_fp.clone(),
        api_fp: api_fp.clone(),
    };
    let (o, n) = check(&s, &ids, "after the split").await;
    for inc in [&o, &n] {
        let split = entries(inc, "split");
        assert_eq!(split.len(), 1, "{inc:#}");
        assert_eq!(split[0]["actor"], "alice-oncall");
        assert_eq!(split[0]["detail"]["alerts"], json!([api_fp]));
    }
    receiver.event(&s, "incident.opened", &new).await;
    let updated = receiver.event(&s, "incident.updated", &old).await;
    assert_eq!(updated["incident"]["alert_count"], 1, "{updated:#}");

    // A re-send follows the alert, not the CMDB link to the database.
    send(&s, vec![api_alert.clone()]).await;
    check(&s, &ids, "after a re-send").await;

    s.restart();
    check(&s, &ids, "after a restart").await;
    send(&s, vec![api_alert.clone(), db_alert.clone()]).await;
    check(&s, &ids, "after a re-send after the restart").await;

    // It resolves (its incident with it), then fires anew: it reopens its new incident.
    send(
        &s,
        vec![alert(
            "OrdersErrors",
            "orders-api",
            "critical",
            &api_start,
            Some(&ts(-5)),
        )],
    )
    .await;
    let n = read(&s, &format!("/api/v1/incidents/{new}")).await;
    assert_eq!(n["status"], "resolved");
    send(
        &s,
        vec![alert(
            "OrdersErrors",
            "orders-api",
            "critical",
            &ts(0),
            None,
        )],
    )
    .await;
    let (_, n) = check(&s, &ids, "after it fired again").await;
    assert_eq!(n["status"], "open");

    let fb = read(&s, &format!("/api/v1/feedback?incident={new}")).await;
    let pairs = fb["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 1, "{fb:#}");
    assert_eq!(pairs[0]["label"], "apart");
    assert_eq!(pairs[0]["action"], "split");
    assert_eq!(
        (&pairs[0]["a"], &pairs[0]["b"]),
        (&json!(api_fp), &json!(db_fp))
    );

    // The old incident's stored member list was rewritten without the split-out alert:
    // a new alert joining it is kept in order, across a restart.
    send(
        &s,
        vec![alert(
            "PostgresConnections",
            "db-01",
            "warning",
            &ts(0),
            None,
        )],
    )
    .await;
    s.restart();
    let o = read(&s, &format!("/api/v1/incidents/{old}")).await;
    assert_eq!(
        o["alert_fingerprints"],
        json!([db_fp, fp("PostgresConnections", "db-01")]),
        "{o:#}"
    );
    assert_eq!(o["alert_count"], 2);
    assert!(!s.log().contains("member rows not written"), "{}", s.log());
}

async fn edits_that_make_no_sense_are_refused(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let receiver = Receiver::default();
    let s = start(&db, &receiver.serve().await);
    send(
        &s,
        vec![
            alert("PostgresSlow", "db-01", "warning", &ts(-120), None),
            alert("OrdersErrors", "orders-api", "critical", &ts(-60), None),
            alert("RedisDown", "cache-01", "critical", &ts(-60), None),
        ],
    )
    .await;
    let one = incident_of_alert(&s, &fp("PostgresSlow", "db-01")).await;
    let two = incident_of_alert(&s, &fp("RedisDown", "cache-01")).await;
    let merge = |id: &str| format!("/api/v1/incidents/{id}/merge");
    let split = |id: &str| format!("/api/v1/incidents/{id}/split");

    let refused: Vec<(String, Value, u16, &str)> = vec![
        (
            merge("INC0009999"),
            json!({"into": one}),
            404,
            "unknown source",
        ),
        (
            merge(&one),
            json!({"into": "INC0009999"}),
            404,
            "unknown target",
        ),
        (
            merge("nonsense"),
            json!({"into": one}),
            404,
            "not an incident id",
        ),
        (merge(&one), json!({"into": one}), 409, "into itself"),
        (
            merge(&one),
            json!({"into": "nonsense"}),
            400,
            "into: not an id",
        ),
        (merge(&one), json!({}), 400, "no into"),
        (merge(&one), json!({"into": 7}), 400, "into: not a string"),
        (
            merge(&one),
            json!({"into": two, "why": "x"}),
            400,
            "unknown field",
        ),
        (merge(&one), json!([two]), 400, "not an object"),
        (
            split("INC0009999"),
            json!({"alerts": ["x"]}),
            404,
            "unknown incident",
        ),
        (split(&one), json!({"alerts": []}), 400, "no alerts"),
        (
            split(&one),
            json!({"alerts": [""]}),
            400,
            "an empty fingerprint",
        ),
        (
            split(&one),
            json!({"alerts": "fp"}),
            400,
            "alerts: not a list",
        ),
        (split(&one), json!({}), 400, "no alerts field"),
        (
            split(&one),
            json!({"alerts": [fp("RedisDown", "cache-01")]}),
            409,
            "an alert of another incident",
        ),
        (
            split(&one),
            json!({"alerts": [fp("PostgresSlow", "db-01"), fp("OrdersErrors", "orders-api")]}),
            409,
            "every alert",
        ),
    ];
    for (path, body, status, what) in &refused {
        let r = as_operator(&s, path, body).await;
        s.expect(&r, *status, what);
        assert!(r.body["error"].is_string(), "{what}: {}", r.text);
    }
    let r = as_operator(
        &s,
        &split(&one),
        &json!({"alerts": [fp("RedisDown", "cache-01")]}),
    )
    .await;
    assert_eq!(
        r.body["detail"]["alerts"],
        json!([fp("RedisDown", "cache-01")])
    );
    let r = s
        .call(Method::POST, &merge(&one), Some(OPERATOR), None)
        .await;
    s.expect(&r, 400, "no body");
    let r = s
        .request(Method::POST, &merge(&one))
        .bearer_auth(OPERATOR)
        .header("content-type", "application/json")
        .body("{\"into\": ");
    let r = s.send(r).await;
    s.expect(&r, 400, "broken JSON");

    // A viewer may read but not edit.
    for path in [merge(&two), split(&one)] {
        let body = json!({"into": one, "alerts": [fp("OrdersErrors", "orders-api")]});
        let r = s.call(Method::POST, &path, Some(VIEWER), Some(&body)).await;
        s.expect(&r, 403, &format!("viewer POST {path}"));
    }

    // Nothing refused changed anything.
    let inc = read(&s, &format!("/api/v1/incidents/{one}")).await;
    assert_eq!(inc["alert_count"], 2);
    assert!(entries(&inc, "split").is_empty() && entries(&inc, "merged").is_empty());
    assert_eq!(read(&s, "/api/v1/feedback").await["pairs"], json!([]));

    // Closed incidents can be neither merged (either way) nor split.
    let r = as_operator(&s, &merge(&two), &json!({"into": one})).await;
    s.expect(&r, 200, "merge");
    for (path, body, what) in [
        (merge(&two), json!({"into": one}), "merge a closed incident"),
        (
            merge(&one),
            json!({"into": two}),
            "merge into a closed incident",
        ),
        (
            split(&two),
            json!({"alerts": [fp("RedisDown", "cache-01")]}),
            "split a closed incident",
        ),
    ] {
        let r = as_operator(&s, &path, &body).await;
        s.expect(&r, 409, what);
        assert!(
            r.body["error"]
                .as_str()
                .is_some_and(|e| e.contains("closed")),
            "{what}: {}",
            r.text
        );
    }
}
