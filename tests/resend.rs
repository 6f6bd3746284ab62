//! Re-sends take the writer's cheap path (only the alert's document is rewritten, not its
//! indexed columns); what they change must still be stored, and a change of state must
//! still reach the indexed columns the API filters on. On SQLite and on PostgreSQL.

mod common;

use common::{Backend, Db, Sift};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_resends_are_stored() {
    resends_are_stored(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_resends_are_stored() {
    resends_are_stored(Backend::Postgres).await
}

fn body(status: &str, summary: &str, ends_at: &str) -> Value {
    let starts = "2026-11-24T10:00:00Z";
    json!({
        "version": "4", "groupKey": "{}", "truncatedAlerts": 0, "status": status,
        "receiver": "sift", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "QueueBacklog", "instance": "10.7.7.7:9100", "severity": "warning"},
            "annotations": {"summary": summary}, "startsAt": starts, "endsAt": ends_at,
            "fingerprint": "fp-resend",
        }],
    })
}

async fn resends_are_stored(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let mut s = Sift::start(&db, &[]);
    const NONE: &str = "0001-01-01T00:00:00Z";
    for summary in ["backlog 10k", "backlog 20k", "backlog 30k"] {
        let r = s
            .post(
                "/api/v1/alerts/alertmanager",
                &body("firing", summary, NONE),
            )
            .await;
        s.expect(&r, 200, "POST alert");
    }
    s.restart();
    let a = s.alerts().await;
    assert_eq!(a.len(), 1, "{a:#?}");
    assert_eq!(
        a[0]["count"], 3,
        "every re-send counted in the store: {a:#?}"
    );
    assert_eq!(a[0]["annotations"]["summary"], "backlog 30k");
    assert_eq!(a[0]["status"], "firing");

    let r = s
        .post(
            "/api/v1/alerts/alertmanager",
            &body("resolved", "backlog gone", "2026-11-24T10:30:00Z"),
        )
        .await;
    s.expect(&r, 200, "POST resolved");
    s.restart();
    let firing = s.get_ok("/api/v1/alerts?status=firing").await;
    assert_eq!(
        firing["alerts"],
        json!([]),
        "the status column moved too: {firing:#?}"
    );
    let resolved = s.get_ok("/api/v1/alerts?status=resolved").await;
    assert_eq!(resolved["alerts"][0]["count"], 4, "{resolved:#?}");
}
