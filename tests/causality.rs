//! `sift causality learn` as an operator runs it: a history of alerts and a CMDB in,
//! the learned edges out; a bad line named by file and line.

mod common;

use common::{Backend, Db};
use serde_json::{Value, json};

fn cmdb(hosts: usize) -> String {
    let mut cis = Vec::new();
    let mut rels = Vec::new();
    for i in 0..hosts {
        cis.push(json!({"id": format!("host-{i}"), "type": "server"}));
        cis.push(json!({"id": format!("app-{i}"), "type": "application"}));
        rels.push(
            json!({"source": format!("app-{i}"), "target": format!("host-{i}"), "type": "runs_on"}),
        );
    }
    json!({"cis": cis, "relations": rels}).to_string()
}

fn line(name: &str, ci: &str, at: i64) -> String {
    let t = chrono::DateTime::from_timestamp(1_780_000_000 + at, 0).expect("time");
    json!({"labels": {"alertname": name, "ci": ci}, "startsAt": t.to_rfc3339()}).to_string()
}

/// On each of 20 hosts, `NodeDown` is followed 30 s later by `PodCrashLooping` on its
/// app, 12 times over 20 days; `DiskFull` on hosts comes at unrelated times.
fn history() -> String {
    let mut lines = Vec::new();
    for i in 0..20i64 {
        for k in 0..12i64 {
            let t = k * 140_000 + i * 3_100 + (k * k * 977) % 50_000;
            lines.push(line("NodeDown", &format!("host-{i}"), t));
            lines.push(line("PodCrashLooping", &format!("app-{i}"), t + 30));
            lines.push(line("DiskFull", &format!("host-{i}"), t + 40_000 + i * 61));
        }
    }
    lines.join("\n") + "\n"
}

fn learn(db: &Db, alerts: &str) -> (bool, String, Option<Value>) {
    let cmdb = db.write("cmdb.json", &cmdb(20));
    let alerts = db.write("alerts.jsonl", alerts);
    let out = db.path("edges.json");
    let _ = std::fs::remove_file(&out);
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["causality", "learn", "--cmdb"])
        .arg(&cmdb)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--output")
        .arg(&out)
        .env_remove("RUST_LOG")
        .current_dir(db.path(""))
        .output()
        .expect("run sift causality learn");
    let json = std::fs::read_to_string(&out)
        .ok()
        .map(|t| serde_json::from_str(&t).expect("output is JSON"));
    (
        run.status.success(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
        json,
    )
}

#[tokio::test]
async fn learn_writes_the_chain_with_its_lag_and_scope() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let (ok, err, out) = learn(&db, &history());
    assert!(ok, "learn failed: {err}");
    let out = out.expect("output written");
    let edges = out["edges"].as_array().expect("edges");
    let e = edges
        .iter()
        .find(|e| e["cause"] == "NodeDown" && e["effect"] == "PodCrashLooping")
        .unwrap_or_else(|| panic!("NodeDown -> PodCrashLooping not learned: {out:#}"));
    assert_eq!(e["scope"], "neighbour");
    assert_eq!(e["support"], 240);
    let median = e["lag_seconds"]["median"].as_f64().expect("median");
    assert!((30.0..=40.0).contains(&median), "{e}");
    assert!(
        edges
            .iter()
            .all(|e| e["cause"] != "DiskFull" && e["effect"] != "DiskFull"),
        "{out:#}"
    );
    assert!(err.contains("learned"), "{err}");
}

#[tokio::test]
async fn a_bad_line_is_named_and_nothing_is_written() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let mut text = history();
    text.push_str("{\"labels\": {\"alertname\": \"X\"}, \"startsAt\": \"yesterday\"}\n");
    let bad_line = text.lines().count();
    let (ok, err, out) = learn(&db, &text);
    assert!(!ok);
    assert!(err.contains(&format!("alerts.jsonl:{bad_line}:")), "{err}");
    assert!(out.is_none());
}

#[tokio::test]
async fn an_empty_history_learns_nothing_and_says_so() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let (ok, err, out) = learn(&db, "");
    assert!(ok, "{err}");
    let out = out.expect("output written");
    assert_eq!(out["edges"], json!([]));
    assert!(
        out["summary"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("no usable")),
        "{out:#}"
    );
}
