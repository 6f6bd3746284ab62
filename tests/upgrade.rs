//! Upgrading a store written by an earlier sift: incidents of schema v4 kept their member
//! alerts inside the document; v5 moves them to `incident_alerts` rows, v7 keys those rows
//! by position (renumbering them) and lists alerts in arrival order. The incidents an
//! operator already has must come through whole, on SQLite and on PostgreSQL.

mod common;

use common::{Backend, Db, Sift};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_members_survive_the_v5_upgrade() {
    members_survive_the_v5_upgrade(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_members_survive_the_v5_upgrade() {
    members_survive_the_v5_upgrade(Backend::Postgres).await
}

fn alert(instance: &str, fp: &str) -> Value {
    // One startsAt for every alert of the test (the list's ties are then in arrival order).
    static STARTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let starts = STARTS.get_or_init(|| {
        (chrono::Utc::now() - chrono::Duration::seconds(30))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    });
    json!({
        "version": "4", "groupKey": "{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "sift", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am:9093",
        "alerts": [{
            "status": "firing",
            // A NUL in a label: stored escaped (`\u0000`), which PostgreSQL's JSON parser
            // refuses, so the upgrade must not lean on it.
            "labels": {"alertname": "Disk\u{0}Full", "instance": instance, "severity": "warning"},
            "annotations": {}, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": fp,
        }],
    })
}

/// Puts the store back into its v4 shape: the member list inside each incident's
/// document, no `incident_alerts` table, the v4 alert-list index, migrations 5 and 7 not
/// applied. The second member is listed twice (a list that v5 moves out with a gap in the
/// positions, which v7 must close: else the next member would take a position in use).
async fn downgrade_to_v4(db: &Db) {
    macro_rules! downgrade {
        ($pool:expr, $undo_ord:expr) => {{
            let pool = $pool;
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT incident_id, fingerprint FROM incident_alerts ORDER BY incident_id, pos",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let docs: Vec<(String, String)> = sqlx::query_as("SELECT id, doc FROM incidents")
                .fetch_all(&pool)
                .await
                .unwrap();
            for (id, doc) in docs {
                let mut doc: Value = serde_json::from_str(&doc).unwrap();
                assert!(
                    doc.get("alert_fingerprints").is_none(),
                    "v5 keeps members out of the doc"
                );
                let mut fps: Vec<&String> = rows
                    .iter()
                    .filter(|(i, _)| *i == id)
                    .map(|(_, f)| f)
                    .collect();
                if fps.len() > 1 {
                    fps.insert(1, fps[1]);
                }
                doc["alert_fingerprints"] = json!(fps);
                sqlx::query("UPDATE incidents SET doc = $1 WHERE id = $2")
                    .bind(doc.to_string())
                    .bind(&id)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            sqlx::query("DROP TABLE incident_alerts")
                .execute(&pool)
                .await
                .unwrap();
            let mut conn = pool.acquire().await.unwrap();
            for sql in [
                "DROP INDEX alerts_order",
                "CREATE INDEX alerts_order ON alerts (starts_at, fingerprint)",
                $undo_ord,
                "DELETE FROM sift_migrations WHERE version IN (5, 7)",
            ] {
                // On one connection: another one's cached schema may not have seen the drop.
                sqlx::query(sql).execute(&mut *conn).await.unwrap();
            }
            drop(conn);
            pool.close().await;
        }};
    }
    match db.backend {
        Backend::Sqlite => downgrade!(
            sqlx::SqlitePool::connect(&db.url).await.unwrap(),
            "SELECT 1"
        ),
        Backend::Postgres => downgrade!(
            sqlx::PgPool::connect(&db.url).await.unwrap(),
            "ALTER TABLE alerts DROP COLUMN ord"
        ),
    }
}

async fn members_survive_the_v5_upgrade(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let mut s = Sift::start(&db, &[]);
    for (i, fp) in ["fp-1", "fp-2", "fp-3"].iter().enumerate() {
        let r = s
            .post(
                "/api/v1/alerts/alertmanager",
                &alert(&format!("10.9.9.{i}:9100"), fp),
            )
            .await;
        s.expect(&r, 200, "POST alert");
    }
    let before = s.incidents().await;
    assert_eq!(before.len(), 1, "{before:#?}");
    assert_eq!(
        before[0]["alert_fingerprints"],
        json!(["fp-1", "fp-2", "fp-3"])
    );
    s.stop();

    downgrade_to_v4(&db).await;
    s.restart();

    let after = s.incidents().await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0]["alert_fingerprints"],
        json!(["fp-1", "fp-2", "fp-3"])
    );
    assert_eq!(after[0]["alert_count"], 3);
    // The upgraded incident goes on growing in order.
    let r = s
        .post(
            "/api/v1/alerts/alertmanager",
            &alert("10.9.9.9:9100", "fp-4"),
        )
        .await;
    s.expect(&r, 200, "POST alert after upgrade");
    let id = after[0]["id"].as_str().unwrap().to_string();
    let one = s.get_ok(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        one["alert_fingerprints"],
        json!(["fp-1", "fp-2", "fp-3", "fp-4"]),
        "{one:#?}"
    );
    // Alerts of one startsAt, newest arrival first, through pages of one.
    let mut fps = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let page = s
            .get_ok(&format!("/api/v1/alerts?limit=1&cursor={cursor}"))
            .await;
        fps.extend(
            page["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["fingerprint"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(json!(fps), json!(["fp-4", "fp-3", "fp-2", "fp-1"]));
    s.stop();

    // A store a newer sift has migrated is refused, not damaged.
    macro_rules! stamp_newer {
        ($pool:expr) => {{
            let pool = $pool;
            sqlx::query(
                "INSERT INTO sift_migrations (version, name, applied_at) VALUES (999, 'future', 0)",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }};
    }
    match db.backend {
        Backend::Sqlite => stamp_newer!(sqlx::SqlitePool::connect(&db.url).await.unwrap()),
        Backend::Postgres => stamp_newer!(sqlx::PgPool::connect(&db.url).await.unwrap()),
    }
    let (ok, out) = db.run(&["migrate"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("schema version 999") && out.contains("newer sift"),
        "{out}"
    );
}
