//! The operator CLI against a running daemon, as an operator uses it from a shell: list,
//! show, acknowledge, comment and resolve incidents, list alerts, show a CI, decide problem
//! candidates; the errors a script can tell apart by exit code. And the CMDB a daemon
//! serves: a `sift cmdb import` from another process, or a CMDB write through another
//! daemon on the same store, shows through the API within seconds, without an alert.

mod common;

use std::process::Output;
use std::time::Duration;

use chrono::{DateTime, Duration as Days, Utc};
use common::{Backend, Db, Method, Sift};
use serde_json::{Value, json};

const VIEWER: &str = "viewer-token-0001";
const OPERATOR: &str = "operator-token-0001";
const ADMIN: &str = "admin-token-0001";

/// Where the CLI's exit codes are documented (docs/cli.md): checked here by value.
const EXIT_UNREACHABLE: i32 = 3;
const EXIT_AUTH: i32 = 4;
const EXIT_NOT_FOUND: i32 = 5;
const EXIT_CONFLICT: i32 = 6;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

scenarios!(
    operator_works_incidents_alerts_cis_and_problems_from_the_shell,
    a_cmdb_import_shows_through_the_api_within_seconds,
);

const CMDB: &str = "cis:
  - {id: checkout, type: business_service, criticality: critical}
  - {id: orders-api, type: application, owner_group: orders-team}
  - {id: db-01, name: orders-db primary, type: database, aliases: [10.0.4.12]}
relations:
  - {source: checkout, target: orders-api, type: depends_on}
  - {source: orders-api, target: db-01, type: depends_on}
";

/// One CLI call: (exit code, stdout, stderr).
struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn ok(self, what: &str) -> Self {
        assert_eq!(
            self.code, 0,
            "{what}: exit {}\nstdout: {}\nstderr: {}",
            self.code, self.out, self.err
        );
        self
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.out, self.err))
    }
}

fn run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).to_string(),
        err: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// `sift ARGS` pointed at `s` through SIFT_URL, with `token` in SIFT_TOKEN.
fn sift(db: &Db, s: &Sift, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = db.command();
    cmd.env("SIFT_URL", &s.base).args(args);
    if let Some(t) = token {
        cmd.env("SIFT_TOKEN", t);
    }
    run(cmd.output().expect("run sift"))
}

fn tokens() -> String {
    json!([
        {"token": VIEWER, "role": "viewer"},
        {"token": OPERATOR, "role": "operator", "name": "alice"},
        {"token": ADMIN, "role": "admin"}
    ])
    .to_string()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A history with one recurring problem: too many connections on db-01 every week for
/// six weeks (within the daemon's lookback), and unrelated one-offs.
fn history() -> Vec<Value> {
    let base = Utc::now() - Days::days(60);
    let rec = |id: String, at: DateTime<Utc>, ci: &str, title: &str, alert: &str| {
        json!({"id": id, "opened_at": iso(at), "resolved_at": iso(at + Days::hours(1)),
               "ci": ci, "title": title, "alertnames": [alert], "priority": 2})
    };
    let mut v: Vec<Value> = (0..6)
        .map(|k| {
            rec(
                format!("HIST-A{k}"),
                base + Days::weeks(k) + Days::minutes(k * 5),
                "db-01",
                "db-01: too many connections",
                "PostgresTooManyConnections",
            )
        })
        .collect();
    for (k, (ci, title, alert)) in [
        ("orders-api", "orders-api: jvm heap exhausted", "JvmHeap"),
        ("checkout", "checkout: certificate expiring", "CertExpiring"),
        ("db-01", "db-01: replication lag high", "ReplicationLag"),
        ("orders-api", "orders-api: pods crash looping", "CrashLoop"),
    ]
    .iter()
    .enumerate()
    {
        let at = base + Days::days(k as i64 * 11 + 2) + Days::hours(k as i64 * 5);
        v.push(rec(format!("HIST-X{k}"), at, ci, title, alert));
    }
    v
}

async fn operator_works_incidents_alerts_cis_and_problems_from_the_shell(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let tokens = tokens();
    let s = Sift::start(&db, &[("SIFT_AUTH__TOKENS", tokens.as_str())]);
    let now = Utc::now() - Days::minutes(5);
    let alerts = json!({"version": "4", "alerts": [
        {"status": "firing", "labels": {"alertname": "PostgresDown", "instance": "10.0.4.12:9187", "severity": "critical"},
         "startsAt": iso(now)},
        {"status": "firing", "labels": {"alertname": "HighErrorRate", "ci": "orders-api", "severity": "warning"},
         "startsAt": iso(now + Days::seconds(40))}]});
    let r = s
        .call(
            Method::POST,
            "/api/v1/alerts/alertmanager",
            Some(OPERATOR),
            Some(&alerts),
        )
        .await;
    s.expect(&r, 200, "alerts in");

    // List: a table for people, the daemon's JSON for scripts.
    let list = sift(&db, &s, Some(VIEWER), &["incidents", "list"]).ok("incidents list");
    let header = list.out.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("STATUS") && header.contains("TITLE"),
        "{}",
        list.out
    );
    let j = sift(&db, &s, Some(VIEWER), &["incidents", "list", "--json"]).ok("--json");
    let incidents = j.json()["incidents"]
        .as_array()
        .cloned()
        .expect("incidents");
    assert_eq!(incidents.len(), 1, "{}", j.out);
    let id = incidents[0]["id"].as_str().expect("id").to_string();
    assert_eq!(incidents[0]["root_cause_ci"], "db-01");
    assert!(
        list.out.contains(&id) && list.out.contains("open") && list.out.contains("db-01"),
        "{}",
        list.out
    );
    // Filters reach the API.
    let none = sift(
        &db,
        &s,
        Some(VIEWER),
        &["incidents", "list", "--status", "resolved", "--ci", "db-01"],
    )
    .ok("filtered list");
    assert_eq!(none.out, "no incidents\n");
    let p1 = sift(
        &db,
        &s,
        Some(VIEWER),
        &["incidents", "list", "-p", "1", "-n", "1", "--json"],
    )
    .ok("priority filter");
    assert_eq!(p1.json()["incidents"][0]["id"], id.as_str(), "{}", p1.out);

    // Writes need an operator: a viewer is told which role, and so is a caller without one.
    let denied = sift(&db, &s, Some(VIEWER), &["incidents", "ack", &id]);
    assert_eq!(denied.code, EXIT_AUTH, "{}", denied.err);
    assert!(
        denied.err.contains("403") && denied.err.contains("operator"),
        "{}",
        denied.err
    );
    let anonymous = sift(&db, &s, None, &["incidents", "list"]);
    assert_eq!(anonymous.code, EXIT_AUTH, "{}", anonymous.err);
    assert!(
        anonymous.err.contains("401") && anonymous.err.contains("SIFT_TOKEN"),
        "{}",
        anonymous.err
    );
    // The token from a file wins over SIFT_TOKEN.
    let token_file = db.write("operator.token", &format!("{OPERATOR}\n"));
    let tf = token_file.to_str().expect("path");
    let ack = sift(
        &db,
        &s,
        Some(VIEWER),
        &[
            "incidents",
            "ack",
            &id,
            "--token-file",
            tf,
            "--assignee",
            "bob",
            "-c",
            "looking at the primary",
        ],
    )
    .ok("ack");
    assert_eq!(ack.out, format!("{id}: acknowledged, assignee bob\n"));
    sift(
        &db,
        &s,
        Some(OPERATOR),
        &["incidents", "comment", &id, "failed over to the replica"],
    )
    .ok("comment");
    let resolved = sift(
        &db,
        &s,
        Some(OPERATOR),
        &[
            "incidents",
            "resolve",
            &id,
            "--note",
            "restarted the primary",
        ],
    )
    .ok("resolve");
    assert!(
        resolved.out.starts_with(&format!("{id}: resolved")),
        "{}",
        resolved.out
    );
    // Show: the incident, its alerts and its timeline with who did what.
    let show = sift(&db, &s, Some(VIEWER), &["incidents", "show", &id]).ok("show");
    for needle in [
        "resolved",
        "restarted the primary",
        "failed over to the replica",
        "looking at the primary",
        "alice",
        "PostgresDown",
        "HighErrorRate",
    ] {
        assert!(show.out.contains(needle), "{needle:?} not in\n{}", show.out);
    }
    let api = s
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}"),
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(api.body["status"], "resolved");
    assert_eq!(api.body["assignee"], "bob");

    // A resolved incident cannot be acknowledged: 409, named; unknown ids: 404.
    let again = sift(&db, &s, Some(OPERATOR), &["incidents", "ack", &id]);
    assert_eq!(again.code, EXIT_CONFLICT, "{}", again.err);
    assert!(
        again.err.contains(&id) && again.err.contains("409"),
        "{}",
        again.err
    );
    let missing = sift(&db, &s, Some(VIEWER), &["incidents", "show", "INC9999999"]);
    assert_eq!(missing.code, EXIT_NOT_FOUND, "{}", missing.err);
    assert!(
        missing.err.contains("INC9999999 not found"),
        "{}",
        missing.err
    );

    // Alerts, filtered by CI and by incident.
    let on_db = sift(&db, &s, Some(VIEWER), &["alerts", "list", "--ci", "db-01"]).ok("alerts");
    assert!(
        on_db.out.contains("PostgresDown") && !on_db.out.contains("HighErrorRate"),
        "{}",
        on_db.out
    );
    let of_incident = sift(
        &db,
        &s,
        Some(VIEWER),
        &["alerts", "list", "--incident", &id, "--json"],
    )
    .ok("alerts of the incident");
    assert_eq!(
        of_incident.json()["alerts"].as_array().map(Vec::len),
        Some(2),
        "{}",
        of_incident.out
    );

    // A CI with what depends on it, transitively.
    let ci = sift(
        &db,
        &s,
        Some(VIEWER),
        &["cmdb", "show", "10.0.4.12", "--impact"],
    );
    assert_eq!(ci.code, EXIT_NOT_FOUND, "an alias is not an id: {}", ci.out);
    let ci = sift(
        &db,
        &s,
        Some(VIEWER),
        &["cmdb", "show", "db-01", "--impact"],
    )
    .ok("cmdb show");
    assert!(
        ci.out.contains("orders-db primary") && ci.out.contains("checkout -> orders-api -> db-01"),
        "{}",
        ci.out
    );
    let cij = sift(&db, &s, Some(VIEWER), &["cmdb", "show", "db-01", "--json"]).ok("--json");
    assert_eq!(
        cij.json()["dependents"],
        json!(["orders-api"]),
        "{}",
        cij.out
    );

    // Problems: a recurring history becomes a candidate; an operator accepts it.
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&json!(history())),
        )
        .await;
    s.expect(&r, 200, "history import");
    let r = s
        .call(
            Method::POST,
            "/api/v1/problems/recluster",
            Some(OPERATOR),
            None,
        )
        .await;
    s.expect(&r, 200, "recluster");
    let plist = sift(&db, &s, Some(VIEWER), &["problems", "list", "--json"]).ok("problems");
    let candidate = plist.json()["problems"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["suggested_root_cause"]["ci_id"] == "db-01")
                .cloned()
        })
        .unwrap_or_else(|| panic!("no db-01 candidate in {}", plist.out));
    let pid = candidate["id"].as_str().expect("problem id").to_string();
    let table = sift(&db, &s, Some(VIEWER), &["problems", "list"]).ok("problems table");
    assert!(
        table.out.contains(&pid) && table.out.contains("candidate"),
        "{}",
        table.out
    );
    let denied = sift(&db, &s, Some(VIEWER), &["problems", "accept", &pid]);
    assert_eq!(denied.code, EXIT_AUTH, "{}", denied.err);
    let accepted = sift(&db, &s, Some(OPERATOR), &["problems", "accept", &pid]).ok("accept");
    assert_eq!(accepted.out, format!("{pid}: accepted\n"));
    let acc = sift(
        &db,
        &s,
        Some(VIEWER),
        &["problems", "list", "--status", "accepted", "--json"],
    )
    .ok("accepted list");
    assert_eq!(acc.json()["problems"][0]["id"], pid.as_str(), "{}", acc.out);
    let show = sift(&db, &s, Some(VIEWER), &["problems", "show", &pid]).ok("problem show");
    assert!(
        show.out.contains("HIST-A0") && show.out.contains("db-01"),
        "{}",
        show.out
    );
    let gone = sift(&db, &s, Some(OPERATOR), &["problems", "reject", "PRB-none"]);
    assert_eq!(gone.code, EXIT_NOT_FOUND, "{}", gone.err);

    // No daemon there: said at once, with what to check.
    let away = sift(
        &db,
        &s,
        Some(VIEWER),
        &["incidents", "list", "--url", "127.0.0.1:1"],
    );
    assert_eq!(away.code, EXIT_UNREACHABLE, "{}", away.err);
    assert!(
        away.err
            .contains("cannot reach the sift daemon at http://127.0.0.1:1/")
            && away.err.contains("refused"),
        "{}",
        away.err
    );
    // Bad arguments are clap's usage errors, before any request.
    let bad = sift(
        &db,
        &s,
        Some(VIEWER),
        &["incidents", "list", "--priority", "9"],
    );
    assert_eq!(bad.code, 2, "{}", bad.err);
    assert!(bad.err.contains("--priority"), "{}", bad.err);
}

async fn a_cmdb_import_shows_through_the_api_within_seconds(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    // A tick far away: what brings the CMDB in is not the clock's tick nor an alert.
    let quiet = [("SIFT_INGEST__TICK_INTERVAL", "1h")];
    let s = Sift::start(&db, &quiet);
    assert_eq!(s.get("/api/v1/cmdb/cis/db-01").await.status, 404);

    // Another process imports while the daemon runs.
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    let ci = s
        .eventually(
            Duration::from_secs(5),
            "the imported CI through the API",
            || async {
                let r = s.get("/api/v1/cmdb/cis/db-01").await;
                (r.status == 200).then_some(r.body)
            },
        )
        .await;
    assert_eq!(ci["name"], "orders-db primary");
    assert_eq!(ci["dependents"], json!(["orders-api"]));
    // And the correlation uses it: an alert on the alias maps to the CI.
    let r = s
        .post(
            "/api/v1/alerts/alertmanager",
            &json!({"version": "4", "alerts": [{"status": "firing",
                "labels": {"alertname": "PostgresDown", "instance": "10.0.4.12:9187"},
                "startsAt": iso(Utc::now() - Days::minutes(1))}]}),
        )
        .await;
    s.expect(&r, 200, "alert on the alias");
    assert_eq!(s.incidents().await[0]["root_cause_ci"], "db-01");

    // A second import changes a relation: the daemon takes that in too.
    db.cmdb_import(&db.write(
        "more.yaml",
        "cis:\n  - {id: replica-01, type: database}\nrelations:\n  - {source: replica-01, target: db-01, type: depends_on}\n",
    ));
    s.eventually(
        Duration::from_secs(5),
        "the new dependent of db-01",
        || async {
            let v = s.get_ok("/api/v1/cmdb/cis/db-01").await;
            (v["dependents_total"] == 2).then_some(())
        },
    )
    .await;

    // Another daemon on the same store writes the CMDB through its API.
    let other = Sift::start(&db, &quiet);
    let r = other
        .put(
            "/api/v1/cmdb/cis",
            &json!([{"id": "cache-01", "type": "database"}]),
        )
        .await;
    other.expect(&r, 200, "PUT cis on the other daemon");
    s.eventually(
        Duration::from_secs(5),
        "a CI written through another daemon",
        || async { (s.get("/api/v1/cmdb/cis/cache-01").await.status == 200).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn completions_are_generated_for_the_whole_tree() {
    let db = Db::new(Backend::Sqlite).await.expect("sqlite");
    for shell in ["bash", "zsh", "fish"] {
        let out = run(db
            .command()
            .args(["completions", shell])
            .output()
            .expect("run sift"))
        .ok(shell);
        for word in ["incidents", "resolve", "token-file", "skip-bad"] {
            assert!(out.out.contains(word), "{shell}: {word} missing");
        }
    }
    let bad = run(db
        .command()
        .args(["completions", "cmd.exe"])
        .output()
        .expect("run sift"));
    assert_eq!(bad.code, 2, "{}", bad.err);
}
