//! Change records over HTTP: a maintenance window suppresses alerts on its CI and on what
//! depends on it; bad change records are refused with a reason. SQLite and PostgreSQL.

mod common;

use chrono::{SecondsFormat, Utc};
use common::{Backend, Db, Sift};
use serde_json::{Value, json};

const CMDB: &str = r#"
cis:
  - {id: checkout, type: business_service}
  - {id: orders-api, type: application}
  - {id: db-01, type: database, aliases: ["10.0.4.12"]}
  - {id: cache-01, type: cache}
relations:
  - {source: checkout, target: orders-api}
  - {source: orders-api, target: db-01}
"#;

fn ts(offset_secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(offset_secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn firing(name: &str, ci: &str, start: &str) -> Value {
    json!({"status": "firing", "labels": {"alertname": name, "ci": ci}, "startsAt": start})
}

async fn maintenance_suppresses(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let s = Sift::start(&db, &[]);
    let change = json!({"id": "CHG0001234", "ci_id": "db-01", "summary": "minor version upgrade",
                        "start": ts(-600), "end": ts(3600), "maintenance": true});
    let r = s.post("/api/v1/changes", &change).await;
    s.expect(&r, 200, "post one change");
    let listed = s.get_ok("/api/v1/changes?ci=db-01").await;
    assert_eq!(listed["changes"][0]["id"], "CHG0001234");
    let active = s
        .get_ok(&format!("/api/v1/changes?active_at={}", ts(0)))
        .await;
    assert_eq!(active["changes"].as_array().map(Vec::len), Some(1));

    let body = json!({"version": "4", "alerts": [
        firing("PostgresDown", "db-01", &ts(-60)),
        firing("HighErrorRate", "orders-api", &ts(-30)),
        firing("RedisDown", "cache-01", &ts(-20)),
    ]});
    let r = s.post("/api/v1/alerts/alertmanager", &body).await;
    s.expect(&r, 200, "post alerts");
    let alerts = s.alerts().await;
    let by = |name: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .cloned()
            .expect(name)
    };
    for name in ["PostgresDown", "HighErrorRate"] {
        let a = by(name);
        assert_eq!(a["suppressed"], true, "{a:#}");
        assert_eq!(a["suppressed_by"], "CHG0001234");
        assert!(a["incident_id"].is_null());
    }
    assert_eq!(by("RedisDown")["suppressed"], false);
    let incidents = s.incidents().await;
    assert_eq!(incidents.len(), 1, "only the cache, which no change covers");
    assert_eq!(incidents[0]["root_cause_ci"], "cache-01");
}

async fn bad_changes_are_refused(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let s = Sift::start(&db, &[]);
    let cases = [
        (
            json!({"id": "C1", "ci_id": "nope", "start": ts(0), "end": ts(60)}),
            422,
            "nope",
        ),
        (
            json!({"id": "C2", "ci_id": "db-01", "start": ts(60), "end": ts(0)}),
            422,
            "not after",
        ),
        (
            json!({"id": "C3", "ci_id": "db-01", "start": "soon", "end": ts(0)}),
            400,
            "start",
        ),
        (
            json!([{"id": "C4", "ci_id": "db-01", "start": ts(0), "end": ts(60)},
                {"id": "C4", "ci_id": "db-01", "start": ts(0), "end": ts(60)}]),
            422,
            "more than once",
        ),
    ];
    for (body, status, needle) in cases {
        let r = s.post("/api/v1/changes", &body).await;
        s.expect(&r, status, needle);
        let text = r.body.to_string();
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    let listed = s.get_ok("/api/v1/changes").await;
    assert_eq!(
        listed["changes"],
        json!([]),
        "nothing stored from rejected requests"
    );
}

mod sqlite {
    #[tokio::test]
    async fn maintenance_suppresses() {
        super::maintenance_suppresses(super::Backend::Sqlite).await
    }
    #[tokio::test]
    async fn bad_changes_are_refused() {
        super::bad_changes_are_refused(super::Backend::Sqlite).await
    }
}

mod postgres {
    #[tokio::test]
    async fn maintenance_suppresses() {
        super::maintenance_suppresses(super::Backend::Postgres).await
    }
    #[tokio::test]
    async fn bad_changes_are_refused() {
        super::bad_changes_are_refused(super::Backend::Postgres).await
    }
}
