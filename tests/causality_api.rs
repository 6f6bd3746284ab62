//! Learned causality in the daemon, black-box: a history sent through the webhook with a
//! known chain (NodeDown on a host, then PodCrashLooping on its app 30 s later) and an
//! independent pair (two alerts on one database, always 25 minutes apart); relearning
//! finds the chain and not the pair; pins and vetoes hold over relearning and a restart;
//! bad bodies are refused naming the field; roles. Each scenario runs on SQLite and on
//! PostgreSQL (`TEST_DATABASE_URL`).

mod common;

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
}

async fn relearn(s: &Sift) -> Value {
    let r = s
        .call(
            Method::POST,
            "/api/v1/causality/relearn",
            Some(ADMIN),
            None,
        )
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
    assert!(chain["lag_seconds"]["median"].as_f64().unwrap() <= 60.0, "{chain}");
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
    let chain = edge(&g, "NodeDown", "PodCrashLooping")
        .unwrap_or_else(|| panic!("the chain is back: {g}"));
    assert_eq!(chain["origin"], "learned", "{chain}");
    assert_eq!(g["vetoes"], json!([]), "{g}");
    assert_eq!(g["pinned_edges"], 1, "{g}");
}

async fn bad_override_bodies_are_refused_naming_the_field(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = start(&db);
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "body"),
        (json!({"pin": [{"cause": "", "effect": "B"}]}), "pin[0].cause"),
        (json!({"veto": [{"cause": "A", "effect": "  "}]}), "veto[0].effect"),
        (json!({"pin": [{"cause": "A", "effect": "A"}]}), "pin[0].effect"),
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
