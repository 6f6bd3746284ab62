//! "sift runs end to end": black-box scenarios against the real binary, each on SQLite and
//! on PostgreSQL (set `TEST_DATABASE_URL`; without it the PostgreSQL variants skip).

mod common;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::{Backend, Db, Method, Sift, metric, parse_prometheus};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

const VIEWER: &str = "viewer-token-0001";
const OPERATOR: &str = "operator-token-0001";
const ADMIN: &str = "admin-token-0001";

/// Generates `sqlite::<name>` and `postgres::<name>` tests from one scenario function.
macro_rules! scenarios {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {
        mod sqlite {
            $( $(#[$m])* #[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( $(#[$m])* #[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

scenarios!(
    alertmanager_webhook_dedup_and_resolve,
    prometheus_alert_list_dedup_and_resolve,
    cmdb_file_and_api_map_alerts_to_cis,
    auth_roles_and_basic_auth,
    bad_input_is_rejected_and_changes_nothing,
    state_survives_restart,
    metrics_are_prometheus_text_and_count,
    lists_filter_and_paginate,
);

fn ts(offset_secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(offset_secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An Alertmanager webhook (version 4) body.
fn webhook(alerts: Vec<Value>) -> Value {
    let status = if alerts.iter().all(|a| a["status"] == "resolved") {
        "resolved"
    } else {
        "firing"
    };
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0,
        "status": status, "receiver": "sift", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
}

/// One Alertmanager alert object.
fn am_alert(
    status: &str,
    labels: Value,
    fingerprint: &str,
    starts_at: &str,
    ends_at: &str,
) -> Value {
    json!({
        "status": status, "labels": labels, "annotations": {"summary": "test alert"},
        "startsAt": starts_at, "endsAt": ends_at,
        "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint,
    })
}

const WEBHOOK: &str = "/api/v1/alerts/alertmanager";

async fn post_ok(s: &Sift, path: &str, body: &Value) -> Value {
    let r = s.post(path, body).await;
    s.expect(&r, 200, &format!("POST {path}"));
    r.body
}

fn find<'a>(list: &'a [Value], key: &str, value: &str) -> &'a Value {
    list.iter()
        .find(|v| v[key] == value)
        .unwrap_or_else(|| panic!("no item with {key} = {value:?} in {list:#?}"))
}

/// Waits until incident `id` has `status`, returns it.
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

// ---------------------------------------------------------------------------------------
// 1. Alertmanager webhook: stored, deduplicated, one incident, resolved.

async fn alertmanager_webhook_dedup_and_resolve(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::start(&db, &[]);
    let labels = json!({"alertname": "DiskFull", "host": "web-07", "severity": "critical"});
    let start = ts(-60);
    let firing = webhook(vec![am_alert(
        "firing",
        labels.clone(),
        "fp-disk-1",
        &start,
        ZERO_TIME,
    )]);

    let rep = post_ok(&s, WEBHOOK, &firing).await;
    assert_eq!(rep["accepted"], 1, "{rep}");
    assert_eq!(rep["new"], 1, "{rep}");

    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a["fingerprint"], "fp-disk-1");
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"], labels);
    assert_eq!(a["source"], "alertmanager");
    assert_eq!(a["count"], 1);
    assert_eq!(a["ends_at"], Value::Null);
    let inc_id = a["incident_id"]
        .as_str()
        .expect("alert has an incident")
        .to_string();

    let incs = s.incidents().await;
    assert_eq!(incs.len(), 1, "{incs:#?}");
    assert_eq!(incs[0]["id"], inc_id.as_str());
    assert_eq!(incs[0]["status"], "open");
    assert_eq!(incs[0]["resolved_at"], Value::Null);
    assert_eq!(incs[0]["alert_fingerprints"], json!(["fp-disk-1"]));

    // The same alert again: deduplicated.
    let rep = post_ok(&s, WEBHOOK, &firing).await;
    assert_eq!(rep["duplicate"], 1, "{rep}");
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["count"], 2);
    assert_eq!(alerts[0]["incident_id"], inc_id.as_str());
    let incs = s.incidents().await;
    assert_eq!(incs.len(), 1, "{incs:#?}");
    assert_eq!(incs[0]["id"], inc_id.as_str());

    // Resolved.
    let resolved = webhook(vec![am_alert(
        "resolved",
        labels,
        "fp-disk-1",
        &start,
        &ts(0),
    )]);
    post_ok(&s, WEBHOOK, &resolved).await;
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["status"], "resolved");
    assert_ne!(alerts[0]["ends_at"], Value::Null);
    let inc = incident_becomes(&s, &inc_id, "resolved").await;
    assert!(inc["resolved_at"].is_string(), "resolved_at set: {inc:#}");
    assert_eq!(s.incidents().await.len(), 1);
}

// ---------------------------------------------------------------------------------------
// 2. The Prometheus alert list (no status; endsAt decides).

async fn prometheus_alert_list_dedup_and_resolve(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::start(&db, &[]);
    let labels = json!({"alertname": "HighLatency", "job": "checkout", "severity": "warning"});
    let start = ts(-120);
    let firing = json!([{"labels": labels, "annotations": {}, "startsAt": start, "endsAt": ts(300),
                         "generatorURL": "http://prometheus:9090/graph"}]);
    let rep = post_ok(&s, "/api/v2/alerts", &firing).await;
    assert_eq!(rep["new"], 1, "{rep}");

    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"], labels);
    assert_eq!(alerts[0]["count"], 1);
    let inc_id = alerts[0]["incident_id"]
        .as_str()
        .expect("incident")
        .to_string();
    let incs = s.incidents().await;
    assert_eq!(incs.len(), 1, "{incs:#?}");
    assert_eq!(incs[0]["id"], inc_id.as_str());
    assert_eq!(incs[0]["status"], "open");

    // Re-sent while firing (Prometheus does that): a duplicate.
    let again = json!([{"labels": labels, "startsAt": start, "endsAt": ts(300)}]);
    post_ok(&s, "/api/v2/alerts", &again).await;
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["count"], 2);
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(s.incidents().await.len(), 1);

    // endsAt in the past: resolved.
    let resolved = json!([{"labels": labels, "startsAt": start, "endsAt": ts(-1)}]);
    post_ok(&s, "/api/v2/alerts", &resolved).await;
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["status"], "resolved");
    let inc = incident_becomes(&s, &inc_id, "resolved").await;
    assert!(inc["resolved_at"].is_string(), "{inc:#}");
    assert_eq!(s.incidents().await.len(), 1);

    // A firing alert whose endsAt passes without a refresh resolves by itself, and its
    // incident with it (the daemon's event time moves on with the clock).
    let labels = json!({"alertname": "Expiring", "job": "batch"});
    let body = json!([{"labels": labels, "startsAt": ts(-10), "endsAt": ts(2)}]);
    post_ok(&s, "/api/v2/alerts", &body).await;
    let alerts = s.alerts().await;
    let exp = alerts
        .iter()
        .find(|a| a["labels"] == labels)
        .expect("expiring alert stored");
    assert_eq!(exp["status"], "firing", "{exp:#}");
    let exp_inc = exp["incident_id"].as_str().expect("incident").to_string();
    assert_ne!(exp_inc, inc_id);
    s.eventually(
        Duration::from_secs(20),
        "the alert to resolve once endsAt passed",
        || async {
            let alerts = s.alerts().await;
            let a = alerts.iter().find(|a| a["labels"] == labels)?;
            (a["status"] == "resolved").then_some(())
        },
    )
    .await;
    let inc = incident_becomes(&s, &exp_inc, "resolved").await;
    assert!(inc["resolved_at"].is_string(), "{inc:#}");
}

// ---------------------------------------------------------------------------------------
// 3. CMDB by file and by API; alerts map to CIs by alias.

const CMDB_YAML: &str = r#"
cis:
  - id: checkout
    name: Checkout
    type: business_service
    criticality: critical
    owner_group: commerce
  - id: orders-api
    type: application
    criticality: high
    owner_group: orders-team
    aliases: ["orders-api.prod.example"]
  - id: db-01
    name: orders-db primary
    type: database
    criticality: high
    owner_group: dba-team
    aliases: ["10.0.4.12", "db-01.prod.example"]
    attributes: {env: prod}
relations:
  - {source: orders-api, target: db-01, type: depends_on}
  - {source: checkout, target: orders-api, type: depends_on}
"#;

async fn cmdb_file_and_api_map_alerts_to_cis(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let file = db.write("cmdb.yaml", CMDB_YAML);
    let out = db.cmdb_import(&file);
    assert!(out.contains("imported 3 CIs and 2 relations"), "{out}");
    let s = Sift::start(&db, &[]);

    // What the file loaded.
    let ci = s.get_ok("/api/v1/cmdb/cis/db-01").await;
    assert_eq!(ci["id"], "db-01");
    assert_eq!(ci["name"], "orders-db primary");
    assert_eq!(ci["type"], "database");
    assert_eq!(ci["criticality"], "high");
    assert_eq!(ci["owner_group"], "dba-team");
    assert_eq!(ci["aliases"], json!(["10.0.4.12", "db-01.prod.example"]));
    assert_eq!(ci["attributes"], json!({"env": "prod"}));
    assert_eq!(ci["dependents"], json!(["orders-api"]));
    assert_eq!(ci["depends_on"], json!([]));

    let imp = s.get_ok("/api/v1/cmdb/cis/db-01/impact").await;
    assert_eq!(imp["ci"], "db-01");
    let impacted = imp["impacted"].as_array().expect("impacted list").clone();
    assert_eq!(impacted.len(), 2, "{imp:#}");
    let api = find(&impacted, "id", "orders-api");
    assert_eq!(api["hops"], 1);
    assert_eq!(api["path"], json!(["orders-api", "db-01"]));
    let co = find(&impacted, "id", "checkout");
    assert_eq!(co["hops"], 2);
    assert_eq!(co["path"], json!(["checkout", "orders-api", "db-01"]));
    assert_eq!(imp["impacted_services"], json!(["checkout"]));

    // By API: a bare list, then the file's own shape.
    let r = s
        .put(
            "/api/v1/cmdb/cis",
            &json!([{"id": "cache-01", "type": "cache", "owner_group": "cache-team",
                     "aliases": ["redis-a"]}]),
        )
        .await;
    s.expect(&r, 200, "PUT cis (list)");
    assert_eq!(r.body["upserted"], 1);
    let r = s
        .put(
            "/api/v1/cmdb/cis",
            &json!({"cis": [{"id": "web-01", "type": "host", "aliases": ["web-01.prod"]},
                            {"id": "storefront", "type": "business_service"}]}),
        )
        .await;
    s.expect(&r, 200, "PUT cis ({cis})");
    assert_eq!(r.body["upserted"], 2);
    let r = s
        .put(
            "/api/v1/cmdb/relations",
            &json!([{"source": "orders-api", "target": "cache-01", "type": "connects_to"}]),
        )
        .await;
    s.expect(&r, 200, "PUT relations (list)");
    let r = s
        .put(
            "/api/v1/cmdb/relations",
            &json!({"relations": [{"source": "storefront", "target": "web-01", "type": "runs_on"}]}),
        )
        .await;
    s.expect(&r, 200, "PUT relations ({relations})");

    let ci = s.get_ok("/api/v1/cmdb/cis/cache-01").await;
    assert_eq!(ci["owner_group"], "cache-team");
    assert_eq!(ci["aliases"], json!(["redis-a"]));
    assert_eq!(ci["dependents"], json!(["orders-api"]));
    let imp = s.get_ok("/api/v1/cmdb/cis/cache-01/impact").await;
    let impacted = imp["impacted"].as_array().unwrap().clone();
    assert_eq!(impacted.len(), 2, "{imp:#}");
    assert_eq!(find(&impacted, "id", "orders-api")["hops"], 1);
    assert_eq!(
        find(&impacted, "id", "checkout")["path"],
        json!(["checkout", "orders-api", "cache-01"])
    );
    assert_eq!(imp["impacted_services"], json!(["checkout"]));
    let imp = s.get_ok("/api/v1/cmdb/cis/web-01/impact").await;
    assert_eq!(imp["impacted_services"], json!(["storefront"]));
    let orders = s.get_ok("/api/v1/cmdb/cis/orders-api").await;
    let mut deps: Vec<String> = serde_json::from_value(orders["depends_on"].clone()).unwrap();
    deps.sort();
    assert_eq!(deps, ["cache-01", "db-01"]);

    let r = s.get("/api/v1/cmdb/cis/nope").await;
    s.expect(&r, 404, "unknown CI");
    assert!(r.body["error"].is_string(), "{}", r.text);

    // An alert naming its CI by alias in `ci`.
    let start = ts(-30);
    post_ok(
        &s,
        WEBHOOK,
        &webhook(vec![am_alert(
            "firing",
            json!({"alertname": "PostgresDown", "ci": "db-01.prod.example", "severity": "critical"}),
            "fp-pg-down",
            &start,
            ZERO_TIME,
        )]),
    )
    .await;
    let alerts = s.alerts().await;
    let a = find(&alerts, "fingerprint", "fp-pg-down");
    assert_eq!(a["ci_id"], "db-01", "{a:#}");
    let inc_id = a["incident_id"].as_str().expect("incident").to_string();
    let inc = s.get_ok(&format!("/api/v1/incidents/{inc_id}")).await;
    assert_eq!(inc["root_cause_ci"], "db-01", "{inc:#}");
    assert_eq!(inc["assignment_group"], "dba-team", "{inc:#}");
    let services: Vec<String> = serde_json::from_value(inc["impacted_services"].clone()).unwrap();
    assert!(services.contains(&"checkout".to_string()), "{inc:#}");
    assert!(!services.contains(&"storefront".to_string()), "{inc:#}");
    assert!(
        inc["title"].as_str().unwrap_or("").contains("PostgresDown"),
        "{inc:#}"
    );

    // By alias in `host`.
    post_ok(
        &s,
        WEBHOOK,
        &webhook(vec![am_alert(
            "firing",
            json!({"alertname": "RedisDown", "host": "redis-a"}),
            "fp-redis-down",
            &start,
            ZERO_TIME,
        )]),
    )
    .await;
    // By `instance` with a port: the alias 10.0.4.12 matches once the port is dropped.
    post_ok(
        &s,
        WEBHOOK,
        &webhook(vec![am_alert(
            "firing",
            json!({"alertname": "PostgresTooManyConnections", "instance": "10.0.4.12:9187"}),
            "fp-pg-conns",
            &start,
            ZERO_TIME,
        )]),
    )
    .await;
    let alerts = s.alerts().await;
    assert_eq!(
        find(&alerts, "fingerprint", "fp-redis-down")["ci_id"],
        "cache-01"
    );
    let conns = find(&alerts, "fingerprint", "fp-pg-conns");
    assert_eq!(conns["ci_id"], "db-01", "{conns:#}");
    assert_eq!(
        conns["incident_id"],
        inc_id.as_str(),
        "a second alert on the same CI joins its open incident"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Auth: bearer roles, basic auth on the webhook, actor in the timeline.

async fn auth_roles_and_basic_auth(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let tokens = json!([
        {"token": VIEWER, "role": "viewer"},
        {"token": OPERATOR, "role": "operator", "name": "alice-oncall"},
        {"token": ADMIN, "role": "admin"},
    ])
    .to_string();
    let s = Sift::start(&db, &[("SIFT_AUTH__TOKENS", &tokens)]);

    for path in ["/api/v1/incidents", "/api/v1/alerts", "/api/v1/cmdb/cis/x"] {
        let r = s.get(path).await;
        s.expect(&r, 401, &format!("GET {path} without a token"));
        assert!(r.body["error"].is_string(), "{}", r.text);
    }
    let r = s
        .call(Method::GET, "/api/v1/incidents", Some("not-a-token"), None)
        .await;
    s.expect(&r, 401, "unknown bearer token");
    let body = webhook(vec![am_alert(
        "firing",
        json!({"alertname": "DiskFull", "host": "web-07"}),
        "fp-auth-1",
        &ts(-10),
        ZERO_TIME,
    )]);
    let r = s.post(WEBHOOK, &body).await;
    s.expect(&r, 401, "webhook without credentials");
    assert!(
        s.get("/healthz").await.status == 200,
        "health needs no token"
    );

    // Alertmanager's http_config.basic_auth: any user, password = a token.
    let r = s
        .send(
            s.request(Method::POST, WEBHOOK)
                .basic_auth("alertmanager", Some(OPERATOR))
                .json(&body),
        )
        .await;
    s.expect(&r, 200, "webhook with basic auth");
    let r = s
        .send(
            s.request(Method::POST, WEBHOOK)
                .basic_auth("alertmanager", Some("wrong-password"))
                .json(&body),
        )
        .await;
    s.expect(&r, 401, "webhook with a wrong basic password");
    let r = s
        .send(
            s.request(Method::POST, WEBHOOK)
                .basic_auth("alertmanager", Some(VIEWER))
                .json(&body),
        )
        .await;
    s.expect(&r, 403, "webhook with a viewer's token");
    let r = s
        .call(
            Method::POST,
            "/api/v2/alerts",
            Some(OPERATOR),
            Some(&json!([{"labels": {"alertname": "B"}}])),
        )
        .await;
    s.expect(&r, 200, "alert list with an operator bearer token");

    // Viewer reads.
    let r = s
        .call(Method::GET, "/api/v1/alerts", Some(VIEWER), None)
        .await;
    s.expect(&r, 200, "viewer lists alerts");
    let a = find(
        r.body["alerts"].as_array().unwrap(),
        "fingerprint",
        "fp-auth-1",
    )
    .clone();
    assert_eq!(a["count"], 1, "the 401/403 posts stored nothing: {a:#}");
    let inc_id = a["incident_id"].as_str().unwrap().to_string();
    let inc_path = format!("/api/v1/incidents/{inc_id}");
    let r = s.call(Method::GET, &inc_path, Some(VIEWER), None).await;
    s.expect(&r, 200, "viewer reads an incident");

    // Viewer may not PATCH; operator may.
    let r = s
        .call(
            Method::PATCH,
            &inc_path,
            Some(VIEWER),
            Some(&json!({"status": "acknowledged"})),
        )
        .await;
    s.expect(&r, 403, "viewer PATCH");
    assert!(r.body["error"].is_string(), "{}", r.text);
    let r = s
        .call(
            Method::PATCH,
            &inc_path,
            None,
            Some(&json!({"status": "acknowledged"})),
        )
        .await;
    s.expect(&r, 401, "PATCH without a token");
    let r = s
        .call(
            Method::PATCH,
            &inc_path,
            Some(OPERATOR),
            Some(&json!({"status": "acknowledged"})),
        )
        .await;
    s.expect(&r, 200, "operator acknowledges");
    assert_eq!(r.body["status"], "acknowledged");
    let r = s
        .call(
            Method::PATCH,
            &inc_path,
            Some(OPERATOR),
            Some(&json!({"status": "resolved", "comment": "freed 20 GB on /var"})),
        )
        .await;
    s.expect(&r, 200, "operator resolves with a comment");
    assert_eq!(r.body["status"], "resolved");
    assert!(r.body["resolved_at"].is_string(), "{}", r.text);

    let r = s.call(Method::GET, &inc_path, Some(VIEWER), None).await;
    s.expect(&r, 200, "incident with timeline");
    assert_eq!(r.body["status"], "resolved");
    let timeline = r.body["timeline"].as_array().expect("timeline").clone();
    let by_alice: Vec<&Value> = timeline
        .iter()
        .filter(|e| e["actor"] == "alice-oncall")
        .collect();
    assert!(
        by_alice.iter().any(|e| e["kind"] == "acknowledged"),
        "acknowledge by the operator in the timeline: {timeline:#?}"
    );
    assert!(
        by_alice.iter().any(|e| e["kind"] == "resolved"),
        "resolve by the operator in the timeline: {timeline:#?}"
    );
    assert!(
        by_alice
            .iter()
            .any(|e| e["kind"] == "comment" && e["detail"]["text"] == "freed 20 GB on /var"),
        "the comment, by the operator, in the timeline: {timeline:#?}"
    );
    assert!(
        !timeline.iter().any(|e| e["actor"] == "viewer"),
        "the refused PATCH left no trace: {timeline:#?}"
    );

    // CMDB writes need admin.
    let ci = json!([{"id": "web-07", "type": "host"}]);
    for (token, want) in [(VIEWER, 403), (OPERATOR, 403)] {
        let r = s
            .call(Method::PUT, "/api/v1/cmdb/cis", Some(token), Some(&ci))
            .await;
        s.expect(&r, want, "non-admin PUT cis");
    }
    let r = s
        .call(Method::GET, "/api/v1/cmdb/cis/web-07", Some(ADMIN), None)
        .await;
    s.expect(&r, 404, "refused PUT stored nothing");
    let r = s
        .call(Method::PUT, "/api/v1/cmdb/cis", Some(ADMIN), Some(&ci))
        .await;
    s.expect(&r, 200, "admin PUT cis");
    let r = s
        .call(
            Method::PUT,
            "/api/v1/cmdb/relations",
            Some(VIEWER),
            Some(&json!([])),
        )
        .await;
    s.expect(&r, 403, "viewer PUT relations");
    let r = s
        .call(Method::GET, "/api/v1/cmdb/cis/web-07", Some(VIEWER), None)
        .await;
    s.expect(&r, 200, "viewer reads a CI");
    assert_eq!(r.body["type"], "host");
}

// ---------------------------------------------------------------------------------------
// 5. Bad input: a precise 4xx JSON error, and nothing stored.

fn assert_error(s: &Sift, r: &common::Resp, status: u16, what: &str) {
    s.expect(r, status, what);
    assert!(
        r.body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: error body must be JSON with `error`: {}",
        r.text
    );
    assert!(
        r.body.get("detail").is_some(),
        "{what}: error body must have `detail`: {}",
        r.text
    );
}

async fn snapshot(s: &Sift) -> (Value, Value) {
    (
        s.get_ok("/api/v1/alerts?limit=1000").await,
        s.get_ok("/api/v1/incidents?limit=1000").await,
    )
}

async fn bad_input_is_rejected_and_changes_nothing(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::start(&db, &[("SIFT_SERVER__BODY_LIMIT_BYTES", "1000")]);
    let good = |fp: &str| {
        am_alert(
            "firing",
            json!({"alertname": "Good", "host": fp}),
            fp,
            &ts(-5),
            ZERO_TIME,
        )
    };
    post_ok(&s, WEBHOOK, &webhook(vec![good("seed-1")])).await;
    s.put("/api/v1/cmdb/cis", &json!([{"id": "db-01"}])).await;
    let before = snapshot(&s).await;
    assert_eq!(before.0["alerts"].as_array().unwrap().len(), 1);

    // Malformed JSON.
    let r = s
        .raw(
            Method::POST,
            WEBHOOK,
            r#"{"version":"4","alerts":[{"labels":"#,
        )
        .await;
    assert_error(&s, &r, 400, "malformed JSON");
    let r = s
        .raw(Method::POST, "/api/v2/alerts", "not json at all")
        .await;
    assert_error(&s, &r, 400, "not JSON");

    // Wrong types: labels a list.
    let mut bad = good("t-1");
    bad["labels"] = json!(["alertname", "X"]);
    let r = s.post(WEBHOOK, &webhook(vec![bad])).await;
    assert_error(&s, &r, 400, "labels a list");
    assert!(
        r.body["detail"]["path"]
            .as_str()
            .unwrap_or("")
            .contains("alerts[0].labels"),
        "detail names the path: {}",
        r.text
    );

    // Missing required field.
    let mut bad = good("t-2");
    bad.as_object_mut().unwrap().remove("labels");
    let r = s.post(WEBHOOK, &webhook(vec![bad.clone()])).await;
    assert_error(&s, &r, 400, "missing labels");
    assert!(
        r.text.contains("labels"),
        "names the missing field: {}",
        r.text
    );
    let r = s.post("/api/v2/alerts", &json!([bad])).await;
    assert_error(&s, &r, 400, "missing labels (list)");

    // Unparsable timestamp in the second alert; the first and third are fine: whole batch
    // rejected.
    let mut bad = good("t-4");
    bad["startsAt"] = json!("yesterday at noon");
    let r = s
        .post(WEBHOOK, &webhook(vec![good("t-3"), bad, good("t-5")]))
        .await;
    assert_error(&s, &r, 400, "bad timestamp");
    assert!(
        r.body["detail"]["path"]
            .as_str()
            .unwrap_or("")
            .starts_with("alerts[1].startsAt"),
        "detail names alerts[1].startsAt: {}",
        r.text
    );
    let r = s
        .post(
            "/api/v2/alerts",
            &json!([{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}, "endsAt": "13/13/2026"}]),
        )
        .await;
    assert_error(&s, &r, 400, "bad timestamp (list)");
    assert!(
        r.body["detail"]["path"]
            .as_str()
            .unwrap_or("")
            .starts_with("[1].endsAt"),
        "detail names [1].endsAt: {}",
        r.text
    );
    // Empty labels in one alert of a batch.
    let mut bad = good("t-6");
    bad["labels"] = json!({});
    let r = s.post(WEBHOOK, &webhook(vec![good("t-7"), bad])).await;
    assert_error(&s, &r, 400, "empty labels");

    // Empty body.
    for path in [WEBHOOK, "/api/v2/alerts", "/api/v1/cmdb/cis"] {
        let r = s
            .raw(
                if path.contains("cmdb") {
                    Method::PUT
                } else {
                    Method::POST
                },
                path,
                "",
            )
            .await;
        assert_error(&s, &r, 400, &format!("empty body on {path}"));
    }

    // Oversized body (limit 1000 bytes).
    let big: Vec<Value> = (0..40).map(|i| good(&format!("big-{i}"))).collect();
    let r = s.post(WEBHOOK, &webhook(big)).await;
    assert_error(&s, &r, 413, "oversized body");

    assert_eq!(
        snapshot(&s).await,
        before,
        "rejected alerts changed the store"
    );

    // CMDB: a relation naming an unknown CI; a duplicate CI id.
    let r = s
        .put(
            "/api/v1/cmdb/relations",
            &json!([{"source": "ghost-ci", "target": "db-01"}]),
        )
        .await;
    assert_error(&s, &r, 422, "relation to an unknown CI");
    assert!(
        r.text.contains("ghost-ci"),
        "names the unknown CI: {}",
        r.text
    );
    let r = s
        .put(
            "/api/v1/cmdb/cis",
            &json!([{"id": "dup-1"}, {"id": "x-2"}, {"id": "dup-1"}]),
        )
        .await;
    assert_error(&s, &r, 422, "duplicate CI id");
    assert!(r.text.contains("dup-1"), "names the duplicate: {}", r.text);
    for id in ["dup-1", "x-2", "ghost-ci"] {
        let r = s.get(&format!("/api/v1/cmdb/cis/{id}")).await;
        assert_error(&s, &r, 404, &format!("CI {id} must not exist"));
    }
    assert_eq!(
        s.get_ok("/api/v1/cmdb/cis/db-01").await["dependents"],
        json!([])
    );
    let r = s
        .put(
            "/api/v1/cmdb/cis",
            &json!({"cis": [{"id": "a", "colour": "red"}]}),
        )
        .await;
    assert_error(&s, &r, 400, "unknown CI field");
    let r = s.put("/api/v1/cmdb/cis", &json!({"things": []})).await;
    assert_error(&s, &r, 400, "wrong wrapper key");

    // Routes and methods.
    let r = s.get("/api/v1/nothing-here").await;
    assert_error(&s, &r, 404, "unknown route");
    let r = s
        .call(Method::DELETE, "/api/v1/incidents", None, None)
        .await;
    assert_error(&s, &r, 405, "wrong method");
    let r = s.get(WEBHOOK).await;
    assert_error(&s, &r, 405, "GET on the webhook");

    // Bad query parameters.
    for path in [
        "/api/v1/alerts?limit=abc",
        "/api/v1/alerts?status=bogus",
        "/api/v1/incidents?limit=abc",
        "/api/v1/incidents?status=bogus",
        "/api/v1/incidents?limit=0",
        "/api/v1/incidents?priority=9",
        "/api/v1/incidents?cursor=xyz",
        "/api/v1/incidents?colour=red",
    ] {
        let r = s.get(path).await;
        assert_error(&s, &r, 400, &format!("GET {path}"));
    }

    // PATCH: unknown incident; bad bodies.
    let r = s
        .patch(
            "/api/v1/incidents/INC9999999",
            &json!({"status": "acknowledged"}),
        )
        .await;
    assert_error(&s, &r, 404, "PATCH unknown incident");
    let inc_id = before.1["incidents"][0]["id"].as_str().unwrap().to_string();
    let inc_path = format!("/api/v1/incidents/{inc_id}");
    for body in [
        json!({"status": "sleeping"}),
        json!({}),
        json!({"comment": "  "}),
        json!({"owner": "x"}),
    ] {
        let r = s.patch(&inc_path, &body).await;
        assert_error(&s, &r, 400, &format!("PATCH {body}"));
    }
    let r = s.raw(Method::PATCH, &inc_path, "").await;
    assert_error(&s, &r, 400, "PATCH empty body");

    assert_eq!(
        snapshot(&s).await,
        before,
        "rejected requests changed the store"
    );

    // Illegal transitions: open -> closed; closed -> acknowledged.
    let r = s.patch(&inc_path, &json!({"status": "closed"})).await;
    assert_error(&s, &r, 409, "open -> closed");
    assert_eq!(s.get_ok(&inc_path).await["status"], "open");
    let r = s.patch(&inc_path, &json!({"status": "resolved"})).await;
    s.expect(&r, 200, "open -> resolved");
    let r = s.patch(&inc_path, &json!({"status": "closed"})).await;
    s.expect(&r, 200, "resolved -> closed");
    let after_close = snapshot(&s).await;
    let r = s.patch(&inc_path, &json!({"status": "acknowledged"})).await;
    assert_error(&s, &r, 409, "closed -> acknowledged");
    let r = s.patch(&inc_path, &json!({"status": "open"})).await;
    assert_error(&s, &r, 409, "closed -> open");
    assert_eq!(
        snapshot(&s).await,
        after_close,
        "refused transitions changed the store"
    );
}

// ---------------------------------------------------------------------------------------
// 6. Restart on the same store.

async fn state_survives_restart(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let mut s = Sift::start(&db, &[]);
    let r = s
        .put(
            "/api/v1/cmdb/cis",
            &json!([{"id": "db-01", "type": "database", "owner_group": "dba-team", "aliases": ["pg-main"]},
                    {"id": "orders-api", "type": "application"}]),
        )
        .await;
    s.expect(&r, 200, "PUT cis");
    let r = s
        .put(
            "/api/v1/cmdb/relations",
            &json!([{"source": "orders-api", "target": "db-01"}]),
        )
        .await;
    s.expect(&r, 200, "PUT relations");

    let start = ts(-60);
    let a = webhook(vec![am_alert(
        "firing",
        json!({"alertname": "PostgresDown", "ci": "pg-main"}),
        "fp-a",
        &start,
        ZERO_TIME,
    )]);
    let b_labels = json!({"alertname": "Unmapped", "host": "nowhere"});
    post_ok(&s, WEBHOOK, &a).await;
    post_ok(&s, WEBHOOK, &a).await;
    post_ok(
        &s,
        WEBHOOK,
        &webhook(vec![am_alert(
            "firing",
            b_labels.clone(),
            "fp-b",
            &start,
            ZERO_TIME,
        )]),
    )
    .await;
    post_ok(
        &s,
        WEBHOOK,
        &webhook(vec![am_alert("resolved", b_labels, "fp-b", &start, &ts(0))]),
    )
    .await;
    let alerts = s.alerts().await;
    let inc_a = find(&alerts, "fingerprint", "fp-a")["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let inc_b = find(&alerts, "fingerprint", "fp-b")["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(inc_a, inc_b);
    incident_becomes(&s, &inc_b, "resolved").await;

    let before = snapshot(&s).await;
    let ci_before = s.get_ok("/api/v1/cmdb/cis/db-01").await;
    let impact_before = s.get_ok("/api/v1/cmdb/cis/db-01/impact").await;
    let inc_before = s.get_ok(&format!("/api/v1/incidents/{inc_a}")).await;

    s.restart();

    assert_eq!(
        snapshot(&s).await,
        before,
        "alerts and incidents after restart"
    );
    assert_eq!(s.get_ok("/api/v1/cmdb/cis/db-01").await, ci_before);
    assert_eq!(
        s.get_ok("/api/v1/cmdb/cis/db-01/impact").await,
        impact_before
    );
    assert_eq!(
        s.get_ok(&format!("/api/v1/incidents/{inc_a}")).await,
        inc_before
    );
    let alerts = s.alerts().await;
    assert_eq!(find(&alerts, "fingerprint", "fp-a")["count"], 2);
    assert_eq!(find(&alerts, "fingerprint", "fp-b")["status"], "resolved");
    let incs = s.incidents().await;
    assert_eq!(find(&incs, "id", &inc_a)["status"], "open");
    assert_eq!(find(&incs, "id", &inc_b)["status"], "resolved");

    // A duplicate after the restart continues the count and joins the same incident.
    let rep = post_ok(&s, WEBHOOK, &a).await;
    assert_eq!(rep["duplicate"], 1, "{rep}");
    let alerts = s.alerts().await;
    assert_eq!(alerts.len(), 2);
    let fa = find(&alerts, "fingerprint", "fp-a");
    assert_eq!(fa["count"], 3);
    assert_eq!(fa["incident_id"], inc_a.as_str());
    assert_eq!(fa["ci_id"], "db-01");
    let incs = s.incidents().await;
    assert_eq!(incs.len(), 2, "{incs:#?}");
    // The mapping still works after a restart (CMDB reloaded).
    post_ok(
        &s,
        WEBHOOK,
        &webhook(vec![am_alert(
            "firing",
            json!({"alertname": "PgSlow", "instance": "pg-main:5432"}),
            "fp-c",
            &start,
            ZERO_TIME,
        )]),
    )
    .await;
    let alerts = s.alerts().await;
    let fc = find(&alerts, "fingerprint", "fp-c");
    assert_eq!(fc["ci_id"], "db-01");
    assert_eq!(fc["incident_id"], inc_a.as_str());

    // A 2xx means durable: a crash right after the answer loses nothing.
    let before = snapshot(&s).await;
    s.crash_restart();
    assert_eq!(snapshot(&s).await, before, "state after a crash (SIGKILL)");
}

// ---------------------------------------------------------------------------------------
// 7. /metrics.

async fn metrics_are_prometheus_text_and_count(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::start(&db, &[]);
    let scrape = || async {
        let r = s.get("/metrics").await;
        s.expect(&r, 200, "GET /metrics");
        parse_prometheus(&r.text)
            .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{}", r.text))
    };
    let m0 = scrape().await;
    let new = [("source", "alertmanager"), ("outcome", "new")];
    let dup = [("source", "alertmanager"), ("outcome", "duplicate")];
    let rej = [("source", "alertmanager"), ("outcome", "rejected")];
    let route = [("route", WEBHOOK)];
    let body = webhook(vec![am_alert(
        "firing",
        json!({"alertname": "M", "host": "h1"}),
        "fp-m",
        &ts(-5),
        ZERO_TIME,
    )]);
    post_ok(&s, WEBHOOK, &body).await;
    post_ok(&s, WEBHOOK, &body).await;
    let r = s.raw(Method::POST, WEBHOOK, "{").await;
    s.expect(&r, 400, "bad body");
    let m1 = scrape().await;

    let delta =
        |name: &str, with: &[(&str, &str)]| metric(&m1, name, with) - metric(&m0, name, with);
    assert_eq!(delta("sift_alerts_received_total", &new), 1.0);
    assert_eq!(delta("sift_alerts_received_total", &dup), 1.0);
    assert_eq!(delta("sift_alerts_received_total", &rej), 1.0);
    assert_eq!(delta("sift_incidents_opened_total", &[]), 1.0);
    assert!(
        m1.iter().any(|x| x.name == "sift_incidents_opened_total"),
        "sift_incidents_opened_total present"
    );
    assert_eq!(delta("sift_http_requests_total", &route), 3.0);
    assert_eq!(
        delta(
            "sift_http_requests_total",
            &[("route", WEBHOOK), ("status", "400")]
        ),
        1.0
    );
    assert!(
        metric(&m1, "sift_http_requests_total", &[("route", "/metrics")]) >= 1.0,
        "the scrape itself is counted by route"
    );
    // Histogram: buckets with le (ending in +Inf), _sum and _count.
    let h = "sift_ingest_duration_seconds";
    let buckets: Vec<_> = m1
        .iter()
        .filter(|x| x.name == format!("{h}_bucket"))
        .collect();
    assert!(!buckets.is_empty(), "{h}_bucket present");
    assert!(
        buckets.iter().all(|b| b.label("le").is_some()),
        "buckets have le"
    );
    assert!(
        buckets.iter().any(|b| b.label("le") == Some("+Inf")),
        "+Inf bucket"
    );
    assert!(metric(&m1, &format!("{h}_count"), &[("source", "alertmanager")]) >= 2.0);
    assert!(
        m1.iter().any(|x| x.name == format!("{h}_sum")),
        "{h}_sum present"
    );
}

// ---------------------------------------------------------------------------------------
// Listing: filters and cursor pagination.

/// Follows `next_cursor` with `limit` per page; returns every item in order.
async fn all_pages(s: &Sift, path: &str, key: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let page = s.get_ok(&url).await;
        let items = page[key].as_array().expect("list").clone();
        assert!(
            items.len() <= limit as usize,
            "page larger than limit: {page:#}"
        );
        out.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("pagination of {path} does not end");
}

async fn lists_filter_and_paginate(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::start(&db, &[]);
    let r = s
        .put(
            "/api/v1/cmdb/cis",
            &json!([{"id": "db-01", "type": "database"}]),
        )
        .await;
    s.expect(&r, 200, "PUT cis");
    // Five alerts with the same startsAt (ties must not break the cursor), five incidents.
    let start = ts(-30);
    for i in 0..5 {
        let labels = if i == 0 {
            json!({"alertname": "Mapped", "ci": "db-01"})
        } else {
            json!({"alertname": format!("Unmapped{i}"), "host": format!("h{i}")})
        };
        post_ok(
            &s,
            WEBHOOK,
            &webhook(vec![am_alert(
                "firing",
                labels,
                &format!("fp-{i}"),
                &start,
                ZERO_TIME,
            )]),
        )
        .await;
    }
    post_ok(
        &s,
        WEBHOOK,
        &webhook(vec![am_alert(
            "resolved",
            json!({"alertname": "Unmapped4", "host": "h4"}),
            "fp-4",
            &start,
            &ts(0),
        )]),
    )
    .await;
    let all_incs = s.incidents().await;
    assert_eq!(all_incs.len(), 5, "{all_incs:#?}");
    let ids: Vec<&str> = all_incs.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "incidents newest first");

    for limit in [1, 2, 5] {
        let paged = all_pages(&s, "/api/v1/incidents", "incidents", limit).await;
        assert_eq!(paged, all_incs, "incident pages of {limit}");
        let paged = all_pages(&s, "/api/v1/alerts", "alerts", limit).await;
        let fps: Vec<&str> = paged
            .iter()
            .map(|a| a["fingerprint"].as_str().unwrap())
            .collect();
        // Same startsAt: the latest to arrive first (fp-4's later resolve keeps its place).
        assert_eq!(
            fps,
            ["fp-4", "fp-3", "fp-2", "fp-1", "fp-0"],
            "alert pages of {limit}"
        );
    }
    // A cursor of another form (before schema v7 it ended in a fingerprint) is refused.
    let r = s.get("/api/v1/alerts?cursor=1764000000000.fp-3").await;
    assert_error(&s, &r, 400, "GET alerts with a fingerprint cursor");

    let fp4_inc = find(&s.alerts().await, "fingerprint", "fp-4")["incident_id"]
        .as_str()
        .unwrap()
        .to_string();
    let resolved = incident_becomes(&s, &fp4_inc, "resolved").await;
    let list = s.get_ok("/api/v1/incidents?status=resolved").await;
    let list = list["incidents"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["id"], resolved["id"]);
    assert_eq!(list[0]["status"], "resolved");
    let open = s.get_ok("/api/v1/incidents?status=open").await;
    assert_eq!(open["incidents"].as_array().unwrap().len(), 4);
    let on_db = s.get_ok("/api/v1/incidents?ci=db-01").await;
    let on_db = on_db["incidents"].as_array().unwrap().clone();
    assert_eq!(on_db.len(), 1, "{on_db:#?}");
    assert_eq!(on_db[0]["root_cause_ci"], "db-01");
    let alerts = s.get_ok("/api/v1/alerts?status=resolved").await;
    let alerts = alerts["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["fingerprint"], "fp-4");
    let alerts = s.get_ok("/api/v1/alerts?ci=db-01").await;
    let alerts = alerts["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["fingerprint"], "fp-0");
    let r = s.get("/readyz").await;
    s.expect(&r, 200, "readyz");
}

// ---------------------------------------------------------------------------------------
// 8. Two daemons on one PostgreSQL database.

#[tokio::test]
async fn postgres_two_daemons_share_one_database() {
    let Some(db) = Db::new(Backend::Postgres).await else {
        return;
    };
    let a = Sift::start(&db, &[]);
    let b = Sift::start(&db, &[]);
    let start = ts(-60);
    let body = webhook(vec![am_alert(
        "firing",
        json!({"alertname": "Shared", "host": "h"}),
        "fp-shared",
        &start,
        ZERO_TIME,
    )]);
    for i in 0..6 {
        let s = if i % 2 == 0 { &a } else { &b };
        post_ok(s, WEBHOOK, &body).await;
    }
    for s in [&a, &b] {
        let alerts = s.alerts().await;
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0]["count"], 6, "{alerts:#?}");
        let incs = s.incidents().await;
        assert_eq!(incs.len(), 1, "one incident, not one per daemon: {incs:#?}");
        assert_eq!(incs[0]["id"], alerts[0]["incident_id"]);
    }

    // The same alert, both daemons at once: still one alert with the full count.
    let posts = (0..10).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        let body = &body;
        async move { (s.post(WEBHOOK, body).await, s) }
    });
    for (r, s) in futures_join_all(posts).await {
        s.expect(&r, 200, "concurrent duplicate");
    }
    for s in [&a, &b] {
        let alerts = s.alerts().await;
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0]["count"], 16, "{alerts:#?}");
        assert_eq!(s.incidents().await.len(), 1);
    }

    // Different CIs, alternating daemons, concurrently: incident ids stay unique.
    let cis: Vec<Value> = (0..8)
        .map(|i| json!({"id": format!("svc-{i}"), "type": "application"}))
        .collect();
    let r = a.put("/api/v1/cmdb/cis", &json!(cis)).await;
    a.expect(&r, 200, "PUT cis");
    let posts = (0..8).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        let body = webhook(vec![am_alert(
            "firing",
            json!({"alertname": "Down", "ci": format!("svc-{i}")}),
            &format!("fp-svc-{i}"),
            &start,
            ZERO_TIME,
        )]);
        async move { (s.post(WEBHOOK, &body).await, s) }
    });
    for (r, s) in futures_join_all(posts).await {
        s.expect(&r, 200, "concurrent post");
    }
    for s in [&a, &b] {
        let incs = s.incidents().await;
        let mut ids: Vec<&str> = incs.iter().map(|i| i["id"].as_str().unwrap()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate incident ids: {incs:#?}");
        assert_eq!(n, 9, "one incident per CI plus the shared one: {incs:#?}");
        let alerts = s.alerts().await;
        assert_eq!(alerts.len(), 9);
        for i in 0..8 {
            let al = find(&alerts, "fingerprint", &format!("fp-svc-{i}"));
            assert_eq!(al["ci_id"], format!("svc-{i}"), "{al:#}");
            let inc = find(&incs, "id", al["incident_id"].as_str().unwrap());
            assert_eq!(inc["root_cause_ci"], format!("svc-{i}"), "{inc:#}");
        }
    }
}

/// Runs futures concurrently on this task (no `futures` crate needed).
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<Option<_>> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (h, o) in handles.iter_mut().zip(outs.iter_mut()) {
            if let Some(f) = h {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *o = Some(v);
                        *h = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().map(|o| o.expect("completed")).collect()
}
