//! Re-sends take the writer's cheap path (only the alert's document is rewritten, not its
//! indexed columns); what they change must still be stored, and a change of state must
//! still reach the indexed columns the API filters on. Re-sends that change only the count
//! and endsAt go to the re-send journal; they must be just as durable (a crash right after
//! the 2xx loses nothing) and just as visible. On SQLite and on PostgreSQL.

mod common;

use common::{Backend, Db, Sift};
use serde_json::{Value, json};

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

scenarios!(
    resends_are_stored,
    journal_is_folded_into_rows_while_running,
    journaled_resends_survive_a_crash,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_fingerprint_too_long_for_the_journal_is_written_in_full() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let s = Sift::start(&db, &[("SIFT_INGEST__RESEND_FLUSH", "1h")]);
    // 70 KB, with a multi-byte character where a 64 KiB cut would land.
    let fp = format!("{}é{}", "x".repeat(65_534), "y".repeat(5_000));
    let mut b = body("firing", "backlog", &later(1));
    b["alerts"][0]["fingerprint"] = json!(fp);
    for _ in 0..3 {
        post(&s, b.clone()).await;
    }
    assert_eq!(journal_rows(&db).await, 0, "not journaled");
    let a = s.alerts().await;
    assert_eq!(a[0]["count"], 3, "written in full each time");
    assert_eq!(a[0]["fingerprint"].as_str().map(str::len), Some(fp.len()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_full_journal_is_folded_in_whatever_its_age() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let s = Sift::start(
        &db,
        &[
            ("SIFT_INGEST__RESEND_FLUSH", "1h"),
            ("SIFT_INGEST__RESEND_JOURNAL_MAX", "2"),
            ("SIFT_INGEST__TICK_INTERVAL", "100ms"),
        ],
    );
    for end in [later(1), later(2)] {
        post(&s, body("firing", "backlog", &end)).await;
    }
    // One entry: under the bound, it stays (the flush age is an hour). Stays through what:
    // at least three writer batches (ticks, every 100 ms) after the posts, counted by the
    // writer's own metric, not a guess at how long that takes.
    let seen = batches(&s).await;
    s.eventually(
        std::time::Duration::from_secs(10),
        "three more writer batches",
        || async { (batches(&s).await >= seen + 3).then_some(()) },
    )
    .await;
    assert_eq!(journal_rows(&db).await, 1);
    for end in [later(3), later(4)] {
        post(&s, body("firing", "backlog", &end)).await;
    }
    s.eventually(
        std::time::Duration::from_secs(10),
        "a journal over its bound folded in",
        || async { (journal_rows(&db).await == 0).then_some(()) },
    )
    .await;
    let a = s.alerts().await;
    assert_eq!(a[0]["count"], 4, "{a:#?}");
}

/// How many batches the writer has run (`sift_store_duration_seconds{op="batch"}`): each
/// tick is one, so it counts ticks that have really happened.
async fn batches(s: &Sift) -> u64 {
    let r = s.get("/metrics").await;
    r.text
        .lines()
        .find(|l| l.starts_with("sift_store_duration_seconds_count{op=\"batch\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Two daemons on one PostgreSQL: rows one daemon read and another folded and deleted
/// must not count toward the first one's size bound for ever (it would then fold every
/// re-send at once, writing each twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_another_daemon_folded_leave_the_size_bound() {
    let Some(db) = Db::new(Backend::Postgres).await else {
        return;
    };
    let common = [
        ("SIFT_INGEST__RESEND_FLUSH", "1h"),
        ("SIFT_INGEST__RESEND_JOURNAL_MAX", "3"),
    ];
    let a = Sift::start(
        &db,
        &[common[0], common[1], ("SIFT_INGEST__TICK_INTERVAL", "1h")],
    );
    let b = Sift::start(
        &db,
        &[
            common[0],
            common[1],
            ("SIFT_INGEST__TICK_INTERVAL", "100ms"),
        ],
    );
    let alert = |fp: &str, hours: i64| {
        let mut v = body("firing", "backlog", &later(hours));
        v["alerts"][0]["fingerprint"] = json!(fp);
        v
    };
    for h in 1..=4 {
        post(&b, alert("fp-on-b", h)).await; // one new alert, three re-sends: 3 entries
    }
    assert_eq!(journal_rows(&db).await, 3);
    post(&a, alert("fp-on-a", 1)).await; // a catches up: it reads b's three rows
    post(&b, alert("fp-on-b", 5)).await; // b is over the bound: its next tick folds all
    b.eventually(
        std::time::Duration::from_secs(10),
        "b folded the journal",
        || async { (journal_rows(&db).await == 0).then_some(()) },
    )
    .await;
    post(&a, alert("fp-on-a", 2)).await;
    post(&a, alert("fp-on-a", 3)).await;
    assert_eq!(
        journal_rows(&db).await,
        2,
        "a journals its two re-sends instead of folding them at once"
    );
    for s in [&a, &b] {
        let alerts = s.alerts().await;
        let on_a = alerts
            .iter()
            .find(|x| x["fingerprint"] == "fp-on-a")
            .unwrap();
        assert_eq!(on_a["count"], 3, "{alerts:#?}");
        let on_b = alerts
            .iter()
            .find(|x| x["fingerprint"] == "fp-on-b")
            .unwrap();
        assert_eq!(on_b["count"], 5, "{alerts:#?}");
    }
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
        post(&s, body("firing", summary, NONE)).await;
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

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// `ends_at` `hours` from now, as a sender writes it and as sift shows it.
fn later(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn same_time(shown: &Value, sent: &str) -> bool {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    shown.as_str().and_then(parse).is_some() && shown.as_str().and_then(parse) == parse(sent)
}

async fn journal_rows(db: &Db) -> i64 {
    let q = "SELECT COUNT(*) FROM alert_journal";
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(q).fetch_one(&pool).await.unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_scalar(q).fetch_one(&pool).await.unwrap()
        }
    }
}

async fn post(s: &Sift, v: Value) {
    let r = s.post("/api/v1/alerts/alertmanager", &v).await;
    s.expect(&r, 200, "POST alert");
}

async fn journaled_resends_survive_a_crash(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    // Rows are folded in only after an hour: everything below comes from the journal.
    let mut s = Sift::start(&db, &[("SIFT_INGEST__RESEND_FLUSH", "1h")]);
    let ends = [later(1), later(2), later(3)];
    for end in &ends {
        post(&s, body("firing", "backlog", end)).await;
    }
    let m = s.get("/metrics").await;
    assert_eq!(
        metric(&m.text, "sift_resend_journal_entries_total"),
        2.0,
        "the two re-sends were journaled, not rewritten"
    );
    assert_eq!(journal_rows(&db).await, 2);
    let a = s.alerts().await;
    assert_eq!(
        a[0]["count"], 3,
        "the API reads through the journal: {a:#?}"
    );
    assert!(same_time(&a[0]["ends_at"], &ends[2]), "{a:#?}");

    // Killed right after the 2xx: nothing was folded into the row, nothing is lost.
    s.crash_restart();
    let a = s.alerts().await;
    assert_eq!(a[0]["count"], 3, "{a:#?}");
    assert!(same_time(&a[0]["ends_at"], &ends[2]), "{a:#?}");
    // The daemon took the journal in too: counting goes on from 3.
    let end = later(4);
    post(&s, body("firing", "backlog", &end)).await;
    // A clean stop folds the journal into the rows: the store reads right without it.
    s.stop();
    assert_eq!(journal_rows(&db).await, 0, "{}", s.log());
    s.restart();
    let a = s.alerts().await;
    assert_eq!(a[0]["count"], 4, "{a:#?}");
    assert!(same_time(&a[0]["ends_at"], &end), "{a:#?}");
    assert_eq!(a[0]["status"], "firing");
}

async fn journal_is_folded_into_rows_while_running(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::start(
        &db,
        &[
            ("SIFT_INGEST__RESEND_FLUSH", "300ms"),
            ("SIFT_INGEST__TICK_INTERVAL", "100ms"),
        ],
    );
    for end in [later(1), later(2), later(3)] {
        post(&s, body("firing", "backlog", &end)).await;
    }
    s.eventually(
        std::time::Duration::from_secs(10),
        "the journal folded into the alert row",
        || async {
            let m = s.get("/metrics").await;
            (journal_rows(&db).await == 0
                && metric(&m.text, "sift_resend_journal_flushed_total") >= 1.0)
                .then_some(())
        },
    )
    .await;
    let a = s.alerts().await;
    assert_eq!(a[0]["count"], 3, "{a:#?}");
}
