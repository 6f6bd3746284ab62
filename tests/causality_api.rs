//! Learned causality in the daemon, black-box: a history sent through the webhook with a
//! known chain (NodeDown on a host, then PodCrashLooping on its app 30 s later) and an
//! independent pair (two alerts on one database, always 25 minutes apart); relearning
//! finds the chain and not the pair; pins and vetoes hold over relearning and a restart;
//! bad bodies are refused naming the field; roles; with `window = "auto"`, relearning
//! learns the propagation window the history shows and correlation uses it. Each scenario runs on SQLite and on
//! PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use common::{Backend, Db, Resp, Sift};
use reqwest::Method;
use serde_json::{Value, json};

const WEBHOOK: &str = "/api/v1/alerts/alertmanager";
const VIEWER: &str = "viewer-token-causality-tests";
const ADMIN: &str = "admin-token-causality-tests";

const CMDB: &str = r#"
cis:
  - {id: host-0, type: server}
  - {id: host-1, type: server}
  - {id: host-2, type: server}
  - {id: app-0, type: application}
  - {id: app-1, type: application}
  - {id: app-2, type: application}
  - {id: db-1, type: database}
relations:
  - {source: app-0, target: host-0}
  - {source: app-1, target: host-1}
  - {source: app-2, target: host-2}
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
    an_empty_history_learns_nothing_and_says_so,
    a_bounded_read_keeps_the_newest_occurrences_and_says_how_many_were_left_out,
    the_chain_is_learned_and_overrides_survive_relearning_and_a_restart,
    bad_override_bodies_are_refused_naming_the_field,
    window_auto_learns_the_estate_window_and_correlation_uses_it,
);

fn start(db: &Db) -> Sift {
    start_with(db, &[])
}

fn start_with(db: &Db, extra: &[(&str, &str)]) -> Sift {
    let tokens = json!([
        {"token": VIEWER, "role": "viewer"},
        {"token": ADMIN, "role": "admin", "name": "ops-lead"},
    ])
    .to_string();
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let mut env = vec![
        ("SIFT_AUTH__TOKENS", tokens.as_str()),
        // Only on request here: a scheduled run must not race the assertions.
        ("SIFT_CAUSALITY__INTERVAL", "0s"),
    ];
    env.extend_from_slice(extra);
    Sift::start(db, &env)
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn event(name: &str, ci: &str, start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> Value {
    let mut a = json!({"status": if end.is_some() { "resolved" } else { "firing" },
        "labels": {"alertname": name, "ci": ci, "severity": "warning"},
        "startsAt": at(start)});
    if let Some(e) = end {
        a["endsAt"] = json!(at(e));
    }
    a
}

/// 30 rounds an hour apart, three days ago. Each alert re-fires on the same CI (one
/// fingerprint, many occurrences), as real alerts do.
async fn send_history(s: &Sift) {
    let base = Utc::now() - chrono::Duration::days(3);
    let sec = chrono::Duration::seconds;
    for r in 0..30 {
        let t = base + chrono::Duration::hours(r);
        let (host, app) = (format!("host-{}", r % 3), format!("app-{}", r % 3));
        let alerts = vec![
            event("NodeDown", &host, t, None),
            event("PodCrashLooping", &app, t + sec(30), None),
            event("NodeDown", &host, t, Some(t + sec(120))),
            event("PodCrashLooping", &app, t + sec(30), Some(t + sec(150))),
            event("DiskFull", "db-1", t + sec(1000), None),
            event("DiskFull", "db-1", t + sec(1000), Some(t + sec(1100))),
            event("CacheMiss", "db-1", t + sec(2500), None),
            event("CacheMiss", "db-1", t + sec(2500), Some(t + sec(2600))),
        ];
        post(s, alerts).await;
    }
}

async fn relearn(s: &Sift) -> Value {
    let r = s
        .call(Method::POST, "/api/v1/causality/relearn", Some(ADMIN), None)
        .await;
    s.expect(&r, 200, "relearn");
    r.body
}

async fn graph(s: &Sift) -> Value {
    let r = s
        .call(Method::GET, "/api/v1/causality", Some(VIEWER), None)
        .await;
    s.expect(&r, 200, "GET /api/v1/causality");
    r.body
}

async fn put_edges(s: &Sift, body: &Value) -> Resp {
    s.call(
        Method::PUT,
        "/api/v1/causality/edges",
        Some(ADMIN),
        Some(body),
    )
    .await
}

/// The effective edge cause → effect, if any.
fn edge<'a>(g: &'a Value, cause: &str, effect: &str) -> Option<&'a Value> {
    g["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|e| e["cause"] == cause && e["effect"] == effect)
}

fn between(g: &Value, a: &str, b: &str) -> bool {
    edge(g, a, b).is_some() || edge(g, b, a).is_some()
}

async fn an_empty_history_learns_nothing_and_says_so(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = start(&db);
    let g = graph(&s).await;
    assert_eq!(g["learned_at"], Value::Null, "{g}");
    assert_eq!(g["edges"], json!([]), "{g}");
    assert_eq!(g["edges_in_use"], 0, "{g}");

    let r = relearn(&s).await;
    assert_eq!(r["learned_edges"], 0, "{r}");
    assert_eq!(r["occurrences_read"], 0, "{r}");
    let note = r["summary"]["note"].as_str().unwrap_or_default();
    assert!(note.contains("nothing learned"), "{r}");
    let g = graph(&s).await;
    assert!(g["learned_at"].is_string(), "the run is recorded: {g}");
    assert_eq!(g["edges"], json!([]), "{g}");
}

async fn a_bounded_read_keeps_the_newest_occurrences_and_says_how_many_were_left_out(
    backend: Backend,
) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = start_with(&db, &[("SIFT_CAUSALITY__MAX_OCCURRENCES", "100")]);
    send_history(&s).await;
    let r = relearn(&s).await;
    assert_eq!(r["occurrences_read"], 100, "{r}");
    assert_eq!(r["occurrences_left_out"], 20, "{r}");
    let note = r["summary"]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("20 older ones") && note.contains("max_occurrences"),
        "{r}"
    );
    // The newest 25 rounds still show the chain.
    let g = graph(&s).await;
    assert!(edge(&g, "NodeDown", "PodCrashLooping").is_some(), "{g}");
    assert_eq!(g["occurrences_left_out"], 20, "{g}");
}

async fn the_chain_is_learned_and_overrides_survive_relearning_and_a_restart(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let mut s = start(&db);
    send_history(&s).await;

    // Viewers read, only admins relearn or change the graph.
    let r = s
        .call(
            Method::POST,
            "/api/v1/causality/relearn",
            Some(VIEWER),
            None,
        )
        .await;
    s.expect(&r, 403, "viewer relearn");
    let r = s
        .call(
            Method::PUT,
            "/api/v1/causality/edges",
            Some(VIEWER),
            Some(&json!({"veto": [{"cause": "NodeDown", "effect": "PodCrashLooping"}]})),
        )
        .await;
    s.expect(&r, 403, "viewer PUT edges");

    let r = relearn(&s).await;
    // Every re-fire is an occurrence: 30 rounds of four alerts.
    assert_eq!(r["occurrences_read"], 120, "{r}");
    let g = graph(&s).await;
    let chain = edge(&g, "NodeDown", "PodCrashLooping")
        .unwrap_or_else(|| panic!("the chain is learned: {g}"));
    assert_eq!(chain["origin"], "learned", "{chain}");
    assert_eq!(chain["scope"], "neighbour", "{chain}");
    assert_eq!(chain["support"], 30, "{chain}");
    assert!(
        chain["lag_seconds"]["median"].as_f64().unwrap() <= 60.0,
        "{chain}"
    );
    assert!(
        !between(&g, "DiskFull", "CacheMiss"),
        "the independent pair is not an edge: {g}"
    );
    assert_eq!(g["learned_edges"], 1, "{g}");

    // Veto the chain, pin the pair the learner rejects.
    let r = put_edges(
        &s,
        &json!({
            "veto": [{"cause": "NodeDown", "effect": "PodCrashLooping", "note": "maintenance reboots"}],
            "pin": [{"cause": "DiskFull", "effect": "CacheMiss", "scope": "same_ci",
                     "lag_seconds": {"median": 1500, "p90": 1600}}],
        }),
    )
    .await;
    s.expect(&r, 200, "PUT edges");
    let check = |g: &Value, when: &str| {
        assert!(
            edge(g, "NodeDown", "PodCrashLooping").is_none(),
            "{when}: the vetoed edge is out: {g}"
        );
        let pin = edge(g, "DiskFull", "CacheMiss")
            .unwrap_or_else(|| panic!("{when}: the pinned edge is in: {g}"));
        assert_eq!(pin["origin"], "pinned", "{when}: {pin}");
        assert_eq!(pin["learned"], false, "{when}: {pin}");
        assert_eq!(pin["pinned_by"], "ops-lead", "{when}: {pin}");
        assert_eq!(pin["lag_seconds"]["p90"], 1600.0, "{when}: {pin}");
        let vetoes = g["vetoes"].as_array().expect("vetoes");
        assert_eq!(vetoes.len(), 1, "{when}: {g}");
        assert_eq!(vetoes[0]["cause"], "NodeDown", "{when}: {g}");
        assert_eq!(vetoes[0]["by"], "ops-lead", "{when}: {g}");
        assert_eq!(vetoes[0]["note"], "maintenance reboots", "{when}: {g}");
        assert_eq!(vetoes[0]["suppresses_learned"], true, "{when}: {g}");
        // The pipeline holds this graph (the pin; the vetoed edge out).
        assert_eq!(g["edges_in_use"], 1, "{when}: {g}");
    };
    check(&r.body, "PUT answer");
    check(&graph(&s).await, "after PUT");

    relearn(&s).await;
    check(&graph(&s).await, "after relearning");

    s.restart();
    check(&graph(&s).await, "after a restart");
    relearn(&s).await;
    check(&graph(&s).await, "after a restart and relearning");

    // Taking the veto away gives the learned edge back.
    let r = put_edges(
        &s,
        &json!({"remove": [{"cause": "NodeDown", "effect": "PodCrashLooping"},
                           {"cause": "Nothing", "effect": "Here"}]}),
    )
    .await;
    s.expect(&r, 200, "remove veto");
    assert_eq!(r.body["removed"], 1, "{}", r.text);
    assert_eq!(r.body["not_found"], 1, "{}", r.text);
    let g = graph(&s).await;
    let chain =
        edge(&g, "NodeDown", "PodCrashLooping").unwrap_or_else(|| panic!("the chain is back: {g}"));
    assert_eq!(chain["origin"], "learned", "{chain}");
    assert_eq!(g["vetoes"], json!([]), "{g}");
    assert_eq!(g["pinned_edges"], 1, "{g}");
    assert_eq!(g["edges_in_use"], 2, "{g}");

    // Correlation uses what the pipeline holds: a new crash loop after its node went down
    // joins the node's incident, and the evidence quotes the learned edge.
    let t = Utc::now() - chrono::Duration::minutes(2);
    let alerts = vec![
        event("NodeDown", "host-0", t, None),
        event(
            "PodCrashLooping",
            "app-0",
            t + chrono::Duration::seconds(30),
            None,
        ),
    ];
    post(&s, alerts).await;
    let list = s
        .call(
            Method::GET,
            "/api/v1/incidents?status=open&limit=1000",
            Some(VIEWER),
            None,
        )
        .await;
    s.expect(&list, 200, "incidents");
    let mut quoted = Vec::new();
    for inc in list.body["incidents"].as_array().into_iter().flatten() {
        let id = inc["id"].as_str().unwrap_or_default();
        let d = s
            .call(
                Method::GET,
                &format!("/api/v1/incidents/{id}"),
                Some(VIEWER),
                None,
            )
            .await;
        s.expect(&d, 200, "incident");
        for e in d.body["timeline"].as_array().into_iter().flatten() {
            if let Some(l) = e["detail"]["reason"]["learned"].as_str() {
                quoted.push((id.to_string(), l.to_string()));
            }
        }
    }
    assert!(
        quoted
            .iter()
            .any(|(_, l)| l.contains("NodeDown → PodCrashLooping") && l.contains("seen 30 times")),
        "no placement quotes the learned edge: {quoted:?}\n{}",
        list.text
    );
}

async fn bad_override_bodies_are_refused_naming_the_field(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = start(&db);
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "body"),
        (
            json!({"pin": [{"cause": "", "effect": "B"}]}),
            "pin[0].cause",
        ),
        (
            json!({"veto": [{"cause": "A", "effect": "  "}]}),
            "veto[0].effect",
        ),
        (
            json!({"pin": [{"cause": "A", "effect": "A"}]}),
            "pin[0].effect",
        ),
        (
            json!({"pin": [{"cause": "A", "effect": "B", "scope": "same_rack"}]}),
            "pin[0].scope",
        ),
        (
            json!({"pin": [{"cause": "A", "effect": "B", "lag_seconds": {"median": -5, "p90": 10}}]}),
            "pin[0].lag_seconds.median",
        ),
        (
            json!({"pin": [{"cause": "A", "effect": "B", "lag_seconds": {"median": 50, "p90": 10}}]}),
            "pin[0].lag_seconds.p90",
        ),
        (
            json!({"pin": [{"cause": "A", "effect": "B"}], "veto": [{"cause": "A", "effect": "B"}]}),
            "veto[0]",
        ),
        (
            json!({"pin": [{"cause": "A", "effect": "B", "weight": 3}]}),
            "pin[0]",
        ),
        (json!({"pins": []}), "pins"),
        (json!({"remove": [{"cause": "A"}]}), "remove[0]"),
    ];
    for (body, path) in cases {
        let r = put_edges(&s, &body).await;
        s.expect(&r, 400, &format!("PUT {body}"));
        let named = r.body["detail"]["path"].as_str().unwrap_or_default();
        assert!(
            named.starts_with(path) || r.text.contains(path),
            "PUT {body}: the answer names {path}: {}",
            r.text
        );
    }
    // Nothing was stored by any of them.
    let g = graph(&s).await;
    assert_eq!(g["edges"], json!([]), "{g}");
    assert_eq!(g["vetoes"], json!([]), "{g}");
}

/// The daemon's relearn on a large store (SQLite): `n` stored occurrences (default
/// 1,000,000; `CAUSALITY_BENCH_N`) of 21,000 distinct alerts over 29 days on 1,000 CIs,
/// with a planted chain (NodeDown on a host → PodCrashLooping on its app, 20–50 s later)
/// among 20 noise types; `CAUSALITY_BENCH_MAX` sets `causality.max_occurrences`. The timeline rows are written straight into the store (sending
/// a million alerts through HTTP would measure intake, not learning); the alert rows are
/// copies of one the daemon stored itself. Prints the relearn time and the daemon's peak
/// memory. `cargo test --release --test causality_api -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: minutes; run by hand"]
async fn bench_relearn_from_a_large_store() {
    use sqlx::Connection;
    let n: usize = std::env::var("CAUSALITY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let mut cmdb = String::from("cis:\n");
    for i in 0..500 {
        cmdb += &format!(
            "  - {{id: host-{i}, type: server}}\n  - {{id: app-{i}, type: application}}\n"
        );
    }
    cmdb += "relations:\n";
    for i in 0..500 {
        cmdb += &format!("  - {{source: app-{i}, target: host-{i}}}\n");
    }
    db.cmdb_import(&db.write("cmdb.yaml", &cmdb));
    let tokens =
        json!([{"token": ADMIN, "role": "admin"}, {"token": VIEWER, "role": "viewer"}]).to_string();
    let max = std::env::var("CAUSALITY_BENCH_MAX").unwrap_or_else(|_| "1000000".into());
    let env = [
        ("SIFT_AUTH__TOKENS", tokens.as_str()),
        ("SIFT_CAUSALITY__INTERVAL", "0s"),
        ("SIFT_SERVER__REQUEST_TIMEOUT", "30m"),
        ("SIFT_CAUSALITY__MAX_OCCURRENCES", max.as_str()),
    ];
    let mut s = Sift::start(&db, &env);
    let t0 = Utc::now() - chrono::Duration::days(29);
    let r = s
        .call(
            Method::POST,
            WEBHOOK,
            Some(ADMIN),
            Some(&json!({"version": "4", "alerts": [event("Template", "host-0", t0, Some(t0 + chrono::Duration::seconds(1)))]})),
        )
        .await;
    s.expect(&r, 200, "template alert");
    s.stop();

    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let (doc,): (String,) = sqlx::query_as("SELECT doc FROM alerts LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let template: Value = serde_json::from_str(&doc).unwrap();
    // (type, ci) → fingerprint; every alert row a copy of the template with its labels.
    let mut kinds: Vec<(String, String)> = Vec::new();
    for i in 0..500 {
        kinds.push(("NodeDown".into(), format!("host-{i}")));
        kinds.push(("PodCrashLooping".into(), format!("app-{i}")));
    }
    for t in 0..20 {
        for i in 0..500 {
            kinds.push((format!("Noise{t}"), format!("host-{i}")));
            kinds.push((format!("Noise{t}"), format!("app-{i}")));
        }
    }
    let mut tx = conn.begin().await.unwrap();
    for (k, (name, ci)) in kinds.iter().enumerate() {
        let mut d = template.clone();
        d["fingerprint"] = json!(format!("bench-{k}"));
        d["labels"] = json!({"alertname": name, "ci": ci, "severity": "warning"});
        d["ci_id"] = json!(ci);
        d["incident_id"] = Value::Null;
        sqlx::query(
            "INSERT INTO alerts (fingerprint, status, ci_id, incident_id, starts_at, seq, doc) \
             VALUES ($1, 'resolved', $2, NULL, $3, 1, $4)",
        )
        .bind(format!("bench-{k}"))
        .bind(ci)
        .bind(t0.timestamp_millis())
        .bind(d.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    // The occurrences: a chain round on a random host every few seconds (a tenth of the
    // occurrences are NodeDown, each followed by its app's PodCrashLooping), the rest noise.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let span_ms = 29 * 86_400_000i64 - 3_600_000;
    let mut rows = Vec::with_capacity(n);
    while rows.len() < n {
        let at = t0.timestamp_millis() + rnd(span_ms as u64) as i64;
        if rnd(10) == 0 {
            let h = rnd(500) as usize;
            rows.push((at, 2 * h));
            rows.push((at + 20_000 + rnd(30_000) as i64, 2 * h + 1));
        } else {
            rows.push((at, 1000 + rnd(20_000) as usize));
        }
    }
    rows.truncate(n);
    for chunk in rows.chunks(500) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO timeline (incident_id, at, actor, kind, detail) ",
        );
        qb.push_values(chunk, |mut b, (at, k)| {
            b.push_bind("INC-bench")
                .push_bind(*at)
                .push_bind("sift")
                .push_bind("alert_joined")
                .push_bind(
                    json!({"alertname": kinds[*k].0, "fingerprint": format!("bench-{k}")})
                        .to_string(),
                );
        });
        qb.build().execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    conn.close().await.unwrap();

    s.restart();
    let rss_before = s.peak_rss().unwrap_or(0);
    let t = std::time::Instant::now();
    let r = s
        .send(
            s.request(Method::POST, "/api/v1/causality/relearn")
                .bearer_auth(ADMIN)
                .timeout(std::time::Duration::from_secs(1800)),
        )
        .await;
    s.expect(&r, 200, "relearn");
    let r = r.body;
    let wall = t.elapsed().as_secs_f64();
    let peak = s.peak_rss().unwrap_or(0);
    let g = graph(&s).await;
    eprintln!(
        "BENCH relearn of {n} stored occurrences: {wall:.2} s wall ({:.2} s in the daemon), \
         peak RSS {} MiB (before {} MiB), {} edges learned, read {}, left out {}, chain found: {}",
        r["duration_seconds"].as_f64().unwrap_or(0.0),
        peak >> 20,
        rss_before >> 20,
        r["learned_edges"],
        r["occurrences_read"],
        r["occurrences_left_out"],
        edge(&g, "NodeDown", "PodCrashLooping").is_some()
    );
    for l in s
        .log()
        .lines()
        .filter(|l| l.contains("causality learning done"))
    {
        eprintln!("BENCH log: {l}");
    }
    assert!(edge(&g, "NodeDown", "PodCrashLooping").is_some(), "{r}");
}

/// The open incidents holding an alert on `ci` (viewer's list; the history's are resolved).
async fn incidents_on(s: &Sift, ci: &str) -> Vec<Value> {
    let r = s
        .call(
            Method::GET,
            "/api/v1/incidents?limit=1000",
            Some(VIEWER),
            None,
        )
        .await;
    s.expect(&r, 200, "GET /api/v1/incidents");
    r.body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] != "resolved" && i["status"] != "closed")
        .filter(|i| i["ci_ids"].as_array().unwrap().iter().any(|c| c == ci))
        .cloned()
        .collect()
}

/// Posts `alerts` through the Alertmanager webhook (as the admin).
async fn post(s: &Sift, alerts: Vec<Value>) {
    let r = s
        .call(
            Method::POST,
            WEBHOOK,
            Some(ADMIN),
            Some(&json!({"version": "4", "alerts": alerts})),
        )
        .await;
    s.expect(&r, 200, "post alerts");
}

async fn window_auto_learns_the_estate_window_and_correlation_uses_it(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = start_with(&db, &[("SIFT_CORRELATE__WINDOW", "auto")]);
    send_history(&s).await;
    let now = Utc::now() - chrono::Duration::hours(1);
    let sec = chrono::Duration::seconds;
    // Before anything is learned: the default 5 minutes, so an application alerting 150 s
    // after its host is that host's fault.
    post(
        &s,
        vec![
            event("NodeDown", "host-0", now, None),
            event("PodCrashLooping", "app-0", now + sec(150), None),
        ],
    )
    .await;
    let inc = s
        .eventually(Duration::from_secs(10), "app-0's incident", || async {
            let v = incidents_on(&s, "app-0").await;
            (v.len() == 1).then(|| v[0].clone())
        })
        .await;
    assert_eq!(inc["root_cause_ci"], "host-0", "{inc}");

    // The history: every application alerts 30 s after its host (30 times).
    relearn(&s).await;
    let g = graph(&s).await;
    let all = g["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["relation"] == "*")
        .cloned()
        .unwrap_or_else(|| panic!("the estate's window: {g}"));
    assert_eq!(all["window_s"], 60, "{g}");

    // Learned: 150 s after its host, an application alert is a fault of its own; 20 s
    // after, it is the host's.
    let later = now + chrono::Duration::minutes(30);
    post(
        &s,
        vec![
            event("NodeDown", "host-1", later, None),
            event("PodCrashLooping", "app-1", later + sec(150), None),
            event("NodeDown", "host-2", later, None),
            event("PodCrashLooping", "app-2", later + sec(20), None),
        ],
    )
    .await;
    let split = s
        .eventually(Duration::from_secs(10), "app-1's incident", || async {
            let v = incidents_on(&s, "app-1").await;
            let open: Vec<Value> = v
                .into_iter()
                .filter(|i| i["status"] != "resolved")
                .collect();
            (open.len() == 1).then(|| open[0].clone())
        })
        .await;
    assert_ne!(split["root_cause_ci"], "host-1", "{split}");
    let joined = incidents_on(&s, "app-2").await;
    let joined: Vec<&Value> = joined
        .iter()
        .filter(|i| i["status"] != "resolved")
        .collect();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["root_cause_ci"], "host-2", "{}", joined[0]);
}
