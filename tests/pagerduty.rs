//! PagerDuty Events API v2 intake, black-box over HTTP against the daemon started in
//! process (`Sift::spawn_app`; SQLite, and PostgreSQL when `TEST_DATABASE_URL` is set):
//! what a PagerDuty sender sees, and the alerts and incidents it leads to.

mod common;

use std::time::Duration;

use common::{Backend, Db, Method, Sift};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const PD: &str = "/api/v1/alerts/pagerduty";
const OPERATOR: &str = "operator-token-0001";
const VIEWER: &str = "viewer-token-0001";

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
    trigger_retrigger_acknowledge_resolve,
    generated_dedup_key_is_returned_and_resolves,
    invalid_events_get_pagerduty_errors,
    basic_auth_and_roles,
);

fn trigger(dedup_key: Option<&str>) -> Value {
    let mut ev = json!({
        "routing_key": "R0123456789ABCDEF0123456789ABCDE",
        "event_action": "trigger",
        "payload": {
            "summary": "orders-db replication lag high",
            "source": "db-01.prod.example",
            "severity": "critical",
            "component": "orders-db",
            "group": "prod-datastores",
            "class": "ReplicationLag",
            "custom_details": {"lag_seconds": 42},
        },
        "client": "Zabbix", "client_url": "https://zabbix.example/trigger/1",
    });
    if let Some(k) = dedup_key {
        ev["dedup_key"] = json!(k);
    }
    ev
}

fn action(action: &str, dedup_key: &str) -> Value {
    json!({"routing_key": "R0123456789ABCDEF0123456789ABCDE", "event_action": action, "dedup_key": dedup_key})
}

async fn accepted(s: &Sift, ev: &Value) -> String {
    let r = s.post(PD, ev).await;
    s.expect(&r, 202, "PagerDuty event");
    assert_eq!(r.body["status"], "success", "{}", r.text);
    assert_eq!(r.body["message"], "Event processed", "{}", r.text);
    r.body["dedup_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no dedup_key in {}", r.text))
        .to_string()
}

async fn incident_becomes(s: &Sift, id: &str, status: &str) -> Value {
    let path = format!("/api/v1/incidents/{id}");
    s.eventually(WAIT, &format!("incident {id} to be {status}"), || {
        let path = path.clone();
        async move {
            let inc = s.get_ok(&path).await;
            (inc["status"] == status).then_some(inc)
        }
    })
    .await
}

async fn trigger_retrigger_acknowledge_resolve(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::spawn_app(&db, &[]);

    assert_eq!(accepted(&s, &trigger(Some("pd-lag-1"))).await, "pd-lag-1");
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["fingerprint"], "pd-lag-1");
    assert_eq!(a["status"], "firing");
    assert_eq!(a["source"], "pagerduty");
    assert_eq!(a["labels"]["alertname"], "ReplicationLag");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["host"], "db-01.prod.example");
    assert_eq!(a["labels"]["service"], "orders-db");
    assert_eq!(
        a["annotations"]["summary"],
        "orders-db replication lag high"
    );
    assert_eq!(a["annotations"]["custom_details"], r#"{"lag_seconds":42}"#);
    let inc = a["incident_id"].as_str().expect("an incident").to_string();
    let incs = s.incidents().await;
    assert_eq!(incs.len(), 1, "{incs:#?}");
    assert_eq!(incs[0]["status"], "open");

    // Re-trigger: deduplicated into the same alert and incident.
    accepted(&s, &trigger(Some("pd-lag-1"))).await;
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["count"], 2);
    assert_eq!(alerts[0]["incident_id"], inc.as_str());

    // Acknowledge: counted, resolves nothing.
    accepted(&s, &action("acknowledge", "pd-lag-1")).await;
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["count"], 3);
    assert_eq!(
        s.get_ok(&format!("/api/v1/incidents/{inc}")).await["status"],
        "open"
    );

    // Resolve: the alert and its incident resolve.
    accepted(&s, &action("resolve", "pd-lag-1")).await;
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["status"], "resolved");
    incident_becomes(&s, &inc, "resolved").await;
    assert_eq!(s.incidents().await.len(), 1);
}

async fn generated_dedup_key_is_returned_and_resolves(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::spawn_app(&db, &[]);
    let k1 = accepted(&s, &trigger(None)).await;
    let k2 = accepted(&s, &trigger(None)).await;
    assert_eq!(k1.len(), 32, "{k1}");
    assert_ne!(
        k1, k2,
        "each keyless trigger is a new alert, as in PagerDuty"
    );
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    accepted(&s, &action("resolve", &k1)).await;
    let alerts = s.alerts().await;
    let st = |k: &str| {
        alerts
            .iter()
            .find(|a| a["fingerprint"] == k)
            .map(|a| a["status"].clone())
    };
    assert_eq!(st(&k1), Some(json!("resolved")));
    assert_eq!(st(&k2), Some(json!("firing")));
}

async fn invalid_events_get_pagerduty_errors(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::spawn_app(&db, &[]);
    let bad = |mutate: fn(&mut Value)| {
        let mut ev = trigger(Some("k"));
        mutate(&mut ev);
        ev
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            bad(|e| {
                e.as_object_mut().map(|o| o.remove("routing_key"));
            }),
            "routing_key",
        ),
        (
            bad(|e| {
                e["payload"].as_object_mut().map(|o| o.remove("summary"));
            }),
            "payload.summary",
        ),
        (
            bad(|e| {
                e["payload"].as_object_mut().map(|o| o.remove("severity"));
            }),
            "payload.severity",
        ),
        (
            bad(|e| e["payload"]["severity"] = json!("disaster")),
            "payload.severity",
        ),
        (bad(|e| e["event_action"] = json!("page")), "event_action"),
        (
            json!({"routing_key": "r", "event_action": "resolve"}),
            "dedup_key",
        ),
    ];
    for (ev, field) in cases {
        let r = s.post(PD, &ev).await;
        s.expect(&r, 400, &format!("event without a valid {field}"));
        assert_eq!(r.body["status"], "invalid event", "{}", r.text);
        assert!(r.body["message"].is_string(), "{}", r.text);
        let errors = r.body["errors"].as_array().cloned().unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e.as_str().is_some_and(|e| e.contains(field))),
            "the errors name {field}: {}",
            r.text
        );
    }
    for raw in ["", "not json", "[1,2]", "{\"routing_key\": 5}"] {
        let r = s.raw(Method::POST, PD, raw).await;
        s.expect(&r, 400, &format!("body {raw:?}"));
        assert_eq!(r.body["status"], "invalid event", "{}", r.text);
    }
    assert!(s.alerts().await.is_empty(), "nothing was stored");
    assert!(s.incidents().await.is_empty());
}

async fn basic_auth_and_roles(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let tokens = json!([
        {"token": OPERATOR, "role": "operator"},
        {"token": VIEWER, "role": "viewer"},
    ])
    .to_string();
    let s = Sift::spawn_app(&db, &[("SIFT_AUTH__TOKENS", tokens.as_str())]);
    let ev = trigger(Some("pd-auth"));
    let r = s.post(PD, &ev).await;
    s.expect(&r, 401, "no credentials");
    let r = s.call(Method::POST, PD, Some(VIEWER), Some(&ev)).await;
    s.expect(&r, 403, "viewer may not post alerts");
    let r = s
        .send(
            s.request(Method::POST, PD)
                .basic_auth("pagerduty", Some(OPERATOR))
                .json(&ev),
        )
        .await;
    s.expect(&r, 202, "basic auth with the operator token");
    let r = s.call(Method::POST, PD, Some(OPERATOR), Some(&ev)).await;
    s.expect(&r, 202, "bearer operator token");
    let r = s
        .call(Method::GET, "/api/v1/alerts", Some(VIEWER), None)
        .await;
    s.expect(&r, 200, "viewer reads");
    assert_eq!(r.body["alerts"][0]["count"], 2, "{}", r.text);
}
