//! Bad CMDBs through `sift cmdb import`: rejected whole with a message naming the
//! problem, or (cycles) imported; nothing half-imported; big fan-outs do not hang.

mod common;

use common::{Backend, Db, Sift};
use serde_json::json;

#[tokio::test]
async fn bad_cmdb_files_are_rejected_whole_and_cycles_are_fine() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let cases = [
        (
            "dup.yaml",
            "cis:\n  - {id: a}\n  - {id: a}\n",
            "\"a\" appears more than once",
        ),
        (
            "self.yaml",
            "cis:\n  - {id: a}\nrelations:\n  - {source: a, target: a}\n",
            "to itself",
        ),
        (
            "unknown.yaml",
            "cis:\n  - {id: a}\nrelations:\n  - {source: a, target: ghost}\n",
            "ghost",
        ),
        (
            "badcrit.yaml",
            "cis:\n  - {id: a, criticality: huge}\n",
            "criticality",
        ),
        ("garbage.json", "{\"cis\": [", "cannot parse"),
    ];
    for (file, text, needle) in cases {
        let path = db.write(file, text);
        let (ok, out) = db.run(&["cmdb", "import", path.to_str().expect("path")]);
        assert!(!ok, "{file} should be rejected: {out}");
        assert!(out.contains(needle), "{file}: {needle:?} not in {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    let cycle = "cis:\n  - {id: a}\n  - {id: b}\n  - {id: c}\nrelations:\n  - {source: a, target: b}\n  - {source: b, target: c}\n  - {source: c, target: a}\n";
    let path = db.write("cycle.yaml", cycle);
    let (ok, out) = db.run(&["cmdb", "import", path.to_str().expect("path")]);
    assert!(ok, "{out}");
    let s = Sift::start(&db, &[]);
    // nothing from the rejected files got in
    let r = s.get("/api/v1/cmdb/cis/ghost").await;
    assert_eq!(r.status, 404);
    let imp = s.get_ok("/api/v1/cmdb/cis/a/impact").await;
    assert_eq!(imp["impacted"].as_array().map(Vec::len), Some(2), "{imp}");
    let body = json!({"version": "4", "alerts": [
        {"status": "firing", "labels": {"alertname": "A", "ci": "a"}, "startsAt": "2026-11-23T10:00:00Z"},
        {"status": "firing", "labels": {"alertname": "B", "ci": "b"}, "startsAt": "2026-11-23T10:00:30Z"},
        {"status": "firing", "labels": {"alertname": "C", "ci": "c"}, "startsAt": "2026-11-23T10:01:00Z"}]});
    let r = s.post("/api/v1/alerts/alertmanager", &body).await;
    s.expect(&r, 200, "alerts on a cycle");
    assert_eq!(
        s.incidents().await.len(),
        1,
        "one fault on a cycle is one incident"
    );
}

#[tokio::test]
async fn a_ci_with_100k_dependents_imports_and_correlates() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    let n = 100_000;
    let mut cis = vec![json!({"id": "core", "type": "network"})];
    let mut rels = Vec::with_capacity(n);
    for i in 0..n {
        cis.push(json!({"id": format!("h{i}"), "type": "host"}));
        rels.push(json!({"source": format!("h{i}"), "target": "core"}));
    }
    let path = db.write(
        "big.json",
        &json!({"cis": cis, "relations": rels}).to_string(),
    );
    let (ok, out) = db.run(&["cmdb", "import", path.to_str().expect("path")]);
    assert!(ok, "{out}");
    let s = Sift::start(&db, &[]);
    let mut alerts = vec![
        json!({"status": "firing", "labels": {"alertname": "SwitchDown", "ci": "core"},
                                 "startsAt": "2026-11-23T10:00:00Z"}),
    ];
    for i in (0..n).step_by(500) {
        alerts.push(json!({"status": "firing", "labels": {"alertname": "HostUnreachable", "ci": format!("h{i}")},
                           "startsAt": "2026-11-23T10:01:00Z"}));
    }
    let r = s
        .post(
            "/api/v1/alerts/alertmanager",
            &json!({"version": "4", "alerts": alerts}),
        )
        .await;
    s.expect(&r, 200, "storm under a huge fan-out");
    let incidents = s.incidents().await;
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["root_cause_ci"], "core");
    assert_eq!(incidents[0]["alert_count"], 201);
    let imp = s.get_ok("/api/v1/cmdb/cis/core/impact?limit=1000").await;
    assert_eq!(imp["truncated"], true);
    // The hub itself: its dependents listed up to the limit, with their full count.
    let hub = s.get_ok("/api/v1/cmdb/cis/core?limit=50").await;
    assert_eq!(hub["dependents"].as_array().map(Vec::len), Some(50));
    assert_eq!(hub["dependents_total"], n);
    let hub = s.get_ok("/api/v1/cmdb/cis/core").await;
    assert_eq!(hub["dependents"].as_array().map(Vec::len), Some(1000));
}
