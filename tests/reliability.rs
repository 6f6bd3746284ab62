//! What a sender and an operator see when the store refuses writes (a full disk, a
//! database that errors), and that sift recovers by itself when the cause goes away.

mod common;

use std::time::Duration;

use common::{Backend, Db, Sift, metric, parse_prometheus};
use serde_json::json;

/// Makes every write transaction fail at its last statement, as a full disk does: on
/// SQLite the trigger rolls the whole transaction back (as SQLite does on SQLITE_FULL),
/// on PostgreSQL it raises the error a full disk gives.
async fn fail_writes(db: &Db, on: bool) {
    match db.backend {
        Backend::Sqlite => {
            let path = db.url.trim_start_matches("sqlite://");
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .busy_timeout(Duration::from_secs(30));
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            let sql = if on {
                "CREATE TRIGGER disk_full BEFORE UPDATE ON sift_state \
                 BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END"
            } else {
                "DROP TRIGGER disk_full"
            };
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let sql = if on {
                "CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$; \
                 CREATE TRIGGER disk_full BEFORE UPDATE ON sift_state \
                 FOR EACH ROW EXECUTE FUNCTION disk_full()"
            } else {
                "DROP TRIGGER disk_full ON sift_state; DROP FUNCTION disk_full()"
            };
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

fn alert(name: &str) -> serde_json::Value {
    json!({"version": "4", "alerts": [{
        "status": "firing",
        "labels": {"alertname": name, "instance": "web-1:9100"},
        "startsAt": "2026-11-23T10:00:00Z"
    }]})
}

async fn writes_fail_then_recover(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::start(&db, &[("SIFT_INGEST__TICK_INTERVAL", "200ms")]);
    let r = s
        .post("/api/v1/alerts/alertmanager", &alert("Before"))
        .await;
    s.expect(&r, 200, "an alert before the disk fills");

    fail_writes(&db, true).await;
    let r = s
        .post("/api/v1/alerts/alertmanager", &alert("DuringFull"))
        .await;
    assert_eq!(r.status, 503, "a failed write is a 503: {}", r.text);
    let error = r.body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("nothing was stored") && !error.contains("shutting down"),
        "the 503 says what happened: {}",
        r.text
    );
    assert!(
        r.text.contains("disk is full") || r.text.contains("No space left"),
        "and names the store's error: {}",
        r.text
    );
    let ready = s.get("/readyz").await;
    assert_eq!(
        ready.status, 503,
        "not ready while writes fail: {}",
        ready.text
    );
    assert!(
        ready.text.contains("store writes are failing"),
        "{}",
        ready.text
    );
    let m = parse_prometheus(&s.get("/metrics").await.text).unwrap();
    assert!(metric(&m, "sift_store_write_errors_total", &[]) >= 1.0);

    // Room again: the writer finds out by itself, without a restart.
    fail_writes(&db, false).await;
    s.eventually(Duration::from_secs(20), "ready again", || async {
        (s.get("/readyz").await.status == 200).then_some(())
    })
    .await;
    let r = s.post("/api/v1/alerts/alertmanager", &alert("After")).await;
    s.expect(&r, 200, "an alert after the disk has room again");

    let names: Vec<String> = s
        .alerts()
        .await
        .iter()
        .map(|a| {
            a["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"Before".to_string()), "{names:?}");
    assert!(names.contains(&"After".to_string()), "{names:?}");
    assert!(
        !names.contains(&"DuringFull".to_string()) && !names.contains(&"AlsoFull".to_string()),
        "the refused alerts were not stored: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_failed_write_is_reported_and_the_writer_recovers() {
    writes_fail_then_recover(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_failed_write_is_reported_and_the_writer_recovers() {
    writes_fail_then_recover(Backend::Postgres).await;
}

/// Holds the store's write lock from outside, as a long transaction of another writer
/// would, until the returned guard's `release`.
enum WriteLock {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl WriteLock {
    async fn take(db: &Db) -> WriteLock {
        match db.backend {
            Backend::Sqlite => {
                let path = db.url.trim_start_matches("sqlite://");
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(Duration::from_secs(30));
                let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                WriteLock::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await.unwrap())
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("SELECT seq FROM sift_state WHERE id = 1 FOR UPDATE")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                WriteLock::Postgres(tx)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteLock::Sqlite(tx) => tx.rollback().await.unwrap(),
            WriteLock::Postgres(tx) => tx.rollback().await.unwrap(),
        }
    }
}

/// A request the writer cannot reach before the deadline is withdrawn: its 503 says
/// nothing was stored, and nothing of it is written once the writer gets going again.
async fn a_request_that_waits_too_long_is_withdrawn(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = Sift::start(&db, &[("SIFT_SERVER__REQUEST_TIMEOUT", "3s")]);
    let r = s
        .post("/api/v1/alerts/alertmanager", &alert("Before"))
        .await;
    s.expect(&r, 200, "an alert before the store is locked");

    let lock = WriteLock::take(&db).await;
    let r = s
        .post("/api/v1/alerts/alertmanager", &alert("Withdrawn"))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        r.text.contains("nothing from it was stored"),
        "a withdrawn request says so: {}",
        r.text
    );
    lock.release().await;

    s.eventually(Duration::from_secs(30), "writes again", || async {
        let r = s.post("/api/v1/alerts/alertmanager", &alert("After")).await;
        (r.status == 200).then_some(())
    })
    .await;
    let names: Vec<String> = s
        .alerts()
        .await
        .iter()
        .map(|a| {
            a["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"After".to_string()), "{names:?}");
    assert!(
        !names.contains(&"Withdrawn".to_string()),
        "the withdrawn alert was not written later: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_request_that_waits_too_long_is_withdrawn() {
    a_request_that_waits_too_long_is_withdrawn(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_request_that_waits_too_long_is_withdrawn() {
    a_request_that_waits_too_long_is_withdrawn(Backend::Postgres).await;
}

/// A history import of a million bad records is refused with the first reasons and a
/// count, not a reason per record: the answer and the daemon's memory stay small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_bad_import_is_refused_in_bounded_memory() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let s = Sift::start(&db, &[]);
    let n = 1_000_000;
    let mut body = String::with_capacity(2 * n + 2);
    body.push('[');
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push('1');
    }
    body.push(']');
    let r = s
        .send(
            s.request(common::Method::POST, "/api/v1/incidents/import")
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
    assert_eq!(r.status, 422, "{}", &r.text[..r.text.len().min(300)]);
    assert!(r.text.len() < 64 * 1024, "answer of {} bytes", r.text.len());
    assert_eq!(r.body["detail"]["rejected_total"], n);
    assert_eq!(
        r.body["detail"]["rejected"].as_array().map(Vec::len),
        Some(100)
    );
    assert!(
        r.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("1000000")
    );
    let peak = s.peak_rss().expect("VmHWM");
    assert!(peak < 300 << 20, "peak RSS {} MiB", peak >> 20);
}

/// SIGTERM while the writer cannot get at the store (another writer holds its lock):
/// the daemon still exits within `shutdown_grace`, cleanly, and what it acknowledged
/// before is there after a restart.
async fn exit_is_bounded_by_the_grace_period(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let mut s = Sift::start(&db, &[("SIFT_SERVER__SHUTDOWN_GRACE", "2s")]);
    let r = s.post("/api/v1/alerts/alertmanager", &alert("Acked")).await;
    s.expect(&r, 200, "an alert before the store is locked");
    let lock = WriteLock::take(&db).await;
    // A request the writer is stuck on.
    let pending = {
        let rb = s
            .request(common::Method::POST, "/api/v1/alerts/alertmanager")
            .json(&alert("Stuck"));
        tokio::spawn(rb.send())
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // `stop` fails the test unless the process exits cleanly within 15 s.
    s.stop();
    let _ = pending.await;
    lock.release().await;
    s.restart();
    let names: Vec<String> = s
        .alerts()
        .await
        .iter()
        .map(|a| {
            a["labels"]["alertname"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"Acked".to_string()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_exit_is_bounded_by_the_grace_period() {
    exit_is_bounded_by_the_grace_period(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_exit_is_bounded_by_the_grace_period() {
    exit_is_bounded_by_the_grace_period(Backend::Postgres).await;
}

/// A TCP proxy to PostgreSQL that the test can cut (every connection and the listener
/// go) and restore on the same port: PostgreSQL going down and coming back.
struct Cut {
    port: u16,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cut {
    async fn up(port: u16) -> Cut {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_reuseaddr(true).unwrap();
        sock.bind(format!("127.0.0.1:{port}").parse().unwrap())
            .unwrap();
        let listener = sock.listen(64).unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let c2 = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                c2.lock().unwrap().push(h);
            }
        });
        Cut {
            port,
            tasks: vec![accept],
            conns,
        }
    }

    fn down(self) -> u16 {
        for t in self.tasks {
            t.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
        self.port
    }
}

/// PostgreSQL going away: writes fail (the first after its own attempt, the next at
/// once), `/readyz` says so within a few seconds, and both recover by themselves when
/// it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_fails_fast_and_recovers() {
    let Some(db) = Db::new(Backend::Postgres).await else {
        return;
    };
    let cut = Cut::up(0).await;
    let via = db
        .url
        .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", cut.port), 1);
    assert_ne!(via, db.url, "TEST_DATABASE_URL names 127.0.0.1:5432");
    let s = Sift::start_with_store(&db, &via, &[("SIFT_INGEST__TICK_INTERVAL", "200ms")]);
    let r = s
        .post("/api/v1/alerts/alertmanager", &alert("Before"))
        .await;
    s.expect(&r, 200, "through the proxy");

    let port = cut.down();
    let r = s.post("/api/v1/alerts/alertmanager", &alert("Down1")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    let t = std::time::Instant::now();
    let r = s.post("/api/v1/alerts/alertmanager", &alert("Down2")).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("store writes are failing"), "{}", r.text);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "failed fast: {:?}",
        t.elapsed()
    );
    let t = std::time::Instant::now();
    let ready = s.get("/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "readyz bounded: {:?}",
        t.elapsed()
    );

    let _cut = Cut::up(port).await;
    s.eventually(Duration::from_secs(40), "ready again", || async {
        (s.get("/readyz").await.status == 200).then_some(())
    })
    .await;
    let r = s.post("/api/v1/alerts/alertmanager", &alert("After")).await;
    s.expect(&r, 200, "after PostgreSQL is back");
}

/// A request larger than `ingest.max_batch_alerts` is written in several bounded
/// transactions, and answered once, for all of its alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_is_written_in_bounded_batches() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let s = Sift::start(&db, &[("SIFT_INGEST__MAX_BATCH_ALERTS", "10")]);
    let alerts: Vec<serde_json::Value> = (0..35)
        .map(|i| {
            json!({"status": "firing", "labels": {"alertname": format!("Big{i}"), "instance": "web-1:9100"},
                   "startsAt": "2026-11-23T10:00:00Z"})
        })
        .collect();
    let r = s
        .post(
            "/api/v1/alerts/alertmanager",
            &json!({"version": "4", "alerts": alerts}),
        )
        .await;
    s.expect(&r, 200, "a request of 35 alerts");
    assert_eq!(r.body["accepted"], 35);
    assert_eq!(r.body["new"], 35);
    assert_eq!(s.alerts().await.len(), 35);
    let m = parse_prometheus(&s.get("/metrics").await.text).unwrap();
    let batches = metric(&m, "sift_store_batch_alerts_count", &[]);
    assert!(
        batches >= 4.0,
        "35 alerts in batches of at most 10: {batches} batches"
    );
    let over_10 = metric(&m, "sift_store_batch_alerts_count", &[])
        - metric(&m, "sift_store_batch_alerts_bucket", &[("le", "10")]);
    assert_eq!(over_10, 0.0, "no batch over 10 alerts");
}
