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
    let scenario = sift::eval::generate(28, sift::eval::EstateSize::Small);
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
