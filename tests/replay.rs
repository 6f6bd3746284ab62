//! `sift replay` and the daemon run the same core: the same alerts, in the same order,
//! through HTTP and through `sift replay`, give the same incidents.

mod common;

use common::{Backend, Db, Sift};
use serde_json::{Value, json};

/// What must agree between the two paths for one incident.
fn essence(inc: &Value) -> Value {
    let mut fps: Vec<String> = inc["alert_fingerprints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    fps.sort();
    json!({
        "id": inc["id"], "title": inc["title"], "status": inc["status"], "priority": inc["priority"],
        "root_cause_ci": inc["root_cause_ci"], "impacted_services": inc["impacted_services"],
        "opened_at": inc["opened_at"], "resolved_at": inc["resolved_at"], "alerts": fps,
        "evidence": inc["enrichment"]["evidence"],
    })
}

#[tokio::test]
async fn http_and_replay_give_the_same_incidents() {
    let db = Db::new(Backend::Sqlite)
        .await
        .expect("sqlite always available");
    // Seed 28 starts on 2026-11-22: in the past, so the daemon takes every timestamp as
    // given (timestamps ahead of its clock would be clamped to arrival, by design).
    let scenario = sift_eval::generate(28, sift_eval::EstateSize::Small);
    let cmdb = db.write(
        "cmdb.json",
        &serde_json::to_string(&scenario.cmdb).expect("cmdb json"),
    );
    let alerts = db.write("alerts.jsonl", &(scenario.alerts.join("\n") + "\n"));
    let out = db.path("replay.json");

    let run = std::process::Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["replay", "--cmdb"])
        .arg(&cmdb)
        .arg("--alerts")
        .arg(&alerts)
        .arg("--output")
        .arg(&out)
        .env_remove("RUST_LOG")
        .current_dir(db.path(""))
        .output()
        .expect("run sift replay");
    assert!(
        run.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let replayed: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("replay output")).expect("json");
    let mut want: Vec<Value> = replayed["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .map(essence)
        .collect();
    assert!(
        want.len() >= 3,
        "the scenario should open several incidents, got {}",
        want.len()
    );

    db.cmdb_import(&cmdb);
    // No clock ticks during the test: event time comes from the alerts alone, as in replay.
    let sift = Sift::start(&db, &[("SIFT_INGEST__TICK_INTERVAL", "1d")]);
    for line in &scenario.alerts {
        let alert: Value = serde_json::from_str(line).expect("alert line");
        let r = sift
            .post(
                "/api/v1/alerts/alertmanager",
                &json!({"version": "4", "alerts": [alert]}),
            )
            .await;
        sift.expect(&r, 200, "post one alert");
    }
    let mut got: Vec<Value> = sift
        .incidents()
        .await
        .iter()
        .filter(|i| i["enrichment"]["merged_into"].is_null())
        .map(essence)
        .collect();
    let key = |v: &Value| v["id"].as_str().unwrap_or("").to_string();
    want.sort_by_key(key);
    got.sort_by_key(key);
    if got.len() != want.len() {
        let ids = |v: &[Value]| {
            v.iter()
                .map(|i| format!("{} {} {}", i["id"], i["title"], i["alerts"]))
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "incident count differs:\nhttp:\n{}\nreplay:\n{}",
            ids(&got),
            ids(&want)
        );
    }
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "incident differs between HTTP and replay");
    }
}

/// The rule every record-file command shares: a bad line is named (FILE:LINE: reason) and
/// refuses the file; `--skip-bad` replays the rest.
#[test]
fn a_bad_alert_line_is_named_and_refuses_the_file_unless_skip_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cmdb = dir.path().join("cmdb.yaml");
    std::fs::write(&cmdb, "cis:\n  - {id: db-01}\n").expect("write");
    let good = r#"{"status":"firing","labels":{"alertname":"Down","ci":"db-01"},"startsAt":"2026-11-23T10:00:00Z"}"#;
    let alerts = dir.path().join("alerts.jsonl");
    std::fs::write(
        &alerts,
        format!("{good}\n{{\"status\": \"firing\"\n\n{{\"labels\": 7}}\n"),
    )
    .expect("write");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sift"))
            .arg("replay")
            .arg("--cmdb")
            .arg(&cmdb)
            .arg("--alerts")
            .arg(&alerts)
            .args(extra)
            .env_remove("SIFT_STORE__URL")
            .env_remove("RUST_LOG")
            .current_dir(dir.path())
            .output()
            .expect("run sift replay");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stdout, stderr) = run(&[]);
    assert!(!ok, "a bad line refuses the file: {stderr}");
    assert!(stdout.is_empty(), "nothing replayed: {stdout}");
    // Both bad lines are named, not only the first; the blank line is not one.
    assert!(stderr.contains("alerts.jsonl:2: "), "{stderr}");
    assert!(stderr.contains("alerts.jsonl:4: "), "{stderr}");
    assert!(!stderr.contains("alerts.jsonl:3: "), "{stderr}");
    assert!(
        stderr.contains("2 bad lines") && stderr.contains("--skip-bad"),
        "{stderr}"
    );

    let (ok, stdout, stderr) = run(&["--skip-bad"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("alerts.jsonl:2: ") && stderr.contains("(skipped)"),
        "{stderr}"
    );
    let v: Value = serde_json::from_str(&stdout).expect("incidents json");
    assert_eq!(v["incidents"].as_array().map(Vec::len), Some(1), "{v}");
}
