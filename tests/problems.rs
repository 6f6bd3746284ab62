//! Problem management end to end: history import, clustering into candidates, a problem
//! manager's accept / reject, and what the next clustering run does with those decisions.
//! Each scenario runs on SQLite and on PostgreSQL (`TEST_DATABASE_URL`, else skipped).

mod common;

use chrono::{DateTime, Duration, SecondsFormat, Timelike, Utc};
use common::{Backend, Db, Method, Sift, metric, parse_prometheus};
use serde_json::{Value, json};

const VIEWER: &str = "viewer-token-0001";
const OPERATOR: &str = "operator-token-0001";
const ADMIN: &str = "admin-token-0001";

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
    decisions_survive_reclustering,
    bad_history_is_refused_whole,
    rejected_candidate_needs_more_evidence,
);

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// 90 days ago at 08:10 UTC: inside the default 180-day lookback.
fn base() -> DateTime<Utc> {
    let d = Utc::now() - Duration::days(90);
    d.with_hour(8)
        .and_then(|d| d.with_minute(10))
        .and_then(|d| d.with_second(0))
        .unwrap()
}

fn rec(id: &str, at: DateTime<Utc>, ci: &str, title: &str, alert: &str) -> Value {
    json!({"id": id, "opened_at": iso(at), "resolved_at": iso(at + Duration::hours(1)),
           "ci": ci, "title": title, "alertnames": [alert], "priority": 2})
}

/// Weekly too-many-connections on db-01 (some reported by orders-api, naming db-01),
/// daily disk-full on host-01, and unrelated one-offs.
fn history() -> Vec<Value> {
    let b = base();
    let mut v = Vec::new();
    for k in 0..6 {
        let at = b + Duration::weeks(k) + Duration::minutes(k * 5);
        v.push(if k % 3 == 2 {
            rec(
                &format!("HIST-A{k}"),
                at,
                "orders-api",
                "orders-api: too many connections on db-01, requests failing",
                "HighErrorRate",
            )
        } else {
            rec(
                &format!("HIST-A{k}"),
                at,
                "db-01",
                "db-01: too many connections",
                "PostgresTooManyConnections",
            )
        });
    }
    for k in 0..5 {
        let at = b + Duration::days(k * 3 + 1) - Duration::hours(5);
        v.push(rec(
            &format!("HIST-B{k}"),
            at,
            "host-01",
            "host-01: disk full on /var",
            "HostDiskFull",
        ));
    }
    let one_offs = [
        ("web", "web: certificate expiring", "CertificateExpiring"),
        (
            "orders-api",
            "orders-api: jvm heap exhausted",
            "JvmHeapExhausted",
        ),
        (
            "db-01",
            "db-01: replication lag high",
            "PostgresReplicationLag",
        ),
        ("host-01", "host-01: clock skew", "HostClockSkew"),
        ("web", "web: pods crash looping", "PodCrashLooping"),
    ];
    for (k, (ci, title, alert)) in one_offs.iter().enumerate() {
        let at = b + Duration::days(k as i64 * 11 + 2) + Duration::hours(k as i64 * 5);
        v.push(rec(&format!("HIST-X{k}"), at, ci, title, alert));
    }
    v
}

fn ids(p: &Value) -> Vec<String> {
    let mut v: Vec<String> = p["incident_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn problems(body: &Value) -> Vec<Value> {
    body["problems"].as_array().cloned().unwrap_or_default()
}

fn rooted<'a>(ps: &'a [Value], ci: &str) -> Vec<&'a Value> {
    ps.iter()
        .filter(|p| p["suggested_root_cause"]["ci_id"] == ci)
        .collect()
}

async fn start(backend: Backend, env: &[(&str, &str)]) -> Option<(Db, Sift)> {
    let db = Db::new(backend).await?;
    let tokens = json!([
        {"token": VIEWER, "role": "viewer"},
        {"token": OPERATOR, "role": "operator"},
        {"token": ADMIN, "role": "admin"}
    ])
    .to_string();
    let mut all = vec![("SIFT_AUTH__TOKENS", tokens.as_str())];
    all.extend_from_slice(env);
    let s = Sift::start(&db, &all);
    let r = s
        .call(
            Method::PUT,
            "/api/v1/cmdb/cis",
            Some(ADMIN),
            Some(&json!([{"id": "db-01"}, {"id": "host-01"}, {"id": "orders-api"}, {"id": "web"}])),
        )
        .await;
    s.expect(&r, 200, "PUT cis");
    let r = s
        .call(
            Method::PUT,
            "/api/v1/cmdb/relations",
            Some(ADMIN),
            Some(&json!([
                {"source": "orders-api", "target": "db-01", "type": "depends_on"},
                {"source": "db-01", "target": "host-01", "type": "hosted_on"},
                {"source": "web", "target": "orders-api", "type": "depends_on"}
            ])),
        )
        .await;
    s.expect(&r, 200, "PUT relations");
    Some((db, s))
}

async fn get_as(s: &Sift, path: &str, token: &str) -> Value {
    let r = s.call(Method::GET, path, Some(token), None).await;
    s.expect(&r, 200, &format!("GET {path}"));
    r.body
}

async fn recluster(s: &Sift) -> Vec<Value> {
    let r = s
        .call(
            Method::POST,
            "/api/v1/problems/recluster",
            Some(OPERATOR),
            None,
        )
        .await;
    s.expect(&r, 200, "recluster");
    problems(&r.body)
}

async fn decisions_survive_reclustering(backend: Backend) {
    let Some((_db, s)) = start(backend, &[]).await else {
        return;
    };
    let hist = history();
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&json!(hist)),
        )
        .await;
    s.expect(&r, 200, "import");
    assert_eq!(r.body["new"], 16);

    // A viewer may read but not import.
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(VIEWER),
            Some(&json!(hist)),
        )
        .await;
    s.expect(&r, 403, "viewer import");

    let ps = recluster(&s).await;
    let a = rooted(&ps, "db-01");
    let b = rooted(&ps, "host-01");
    assert_eq!((a.len(), b.len()), (1, 1), "one problem per root: {ps:#?}");
    let (a, b) = (a[0].clone(), b[0].clone());
    assert_eq!(
        ids(&a),
        (0..6).map(|k| format!("HIST-A{k}")).collect::<Vec<_>>()
    );
    assert_eq!(
        a["suggested_root_cause"]["signature"],
        "PostgresTooManyConnections"
    );
    assert!(
        a["recurrence"]["pattern"]
            .as_str()
            .unwrap()
            .starts_with("weekly at "),
        "{a:#}"
    );
    assert_eq!(b["recurrence"]["pattern"], "daily at 03:00-04:00 UTC");
    assert_eq!(ids(&b).len(), 5);
    assert!(ps.iter().all(|p| p["status"] == "candidate"));
    assert!(
        ps.iter()
            .all(|p| ids(p).iter().all(|i| !i.starts_with("HIST-X"))),
        "one-offs are in no problem: {ps:#?}"
    );
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    // Decisions: a viewer cannot make them, an operator can.
    let accept = json!({"status": "accepted"});
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/problems/{a_id}"),
            Some(VIEWER),
            Some(&accept),
        )
        .await;
    s.expect(&r, 403, "viewer accept");
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/problems/{a_id}"),
            Some(OPERATOR),
            Some(&accept),
        )
        .await;
    s.expect(&r, 200, "accept");
    assert_eq!(r.body["status"], "accepted");
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/problems/{b_id}"),
            Some(OPERATOR),
            Some(&json!({"status": "rejected"})),
        )
        .await;
    s.expect(&r, 200, "reject");
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/problems/{b_id}"),
            Some(OPERATOR),
            Some(&json!({"status": "maybe"})),
        )
        .await;
    s.expect(&r, 400, "bad status");
    let r = s
        .call(
            Method::PATCH,
            "/api/v1/problems/PRB0000000",
            Some(OPERATOR),
            Some(&accept),
        )
        .await;
    s.expect(&r, 404, "unknown problem");

    // Two more weeks of the db-01 problem and one more disk-full day arrive; one old
    // record is sent again (idempotent).
    let later = base() + Duration::weeks(6);
    let more = json!([
        rec(
            "HIST-A6",
            later,
            "db-01",
            "db-01: too many connections again",
            "PostgresTooManyConnections"
        ),
        rec(
            "HIST-A7",
            later + Duration::weeks(1),
            "db-01",
            "db-01: too many connections",
            "PostgresTooManyConnections"
        ),
        rec(
            "HIST-B5",
            base() + Duration::days(16) - Duration::hours(5),
            "host-01",
            "host-01: disk full on /var",
            "HostDiskFull"
        ),
        hist[0].clone(),
    ]);
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&more),
        )
        .await;
    s.expect(&r, 200, "import more");
    assert_eq!(
        (r.body["new"].as_u64(), r.body["updated"].as_u64()),
        (Some(3), Some(1))
    );

    let ps = recluster(&s).await;
    let a2 = ps
        .iter()
        .find(|p| p["id"] == a_id)
        .expect("accepted problem kept");
    assert_eq!(a2["status"], "accepted");
    assert_eq!(
        ids(a2),
        (0..8).map(|k| format!("HIST-A{k}")).collect::<Vec<_>>()
    );
    let b2 = ps
        .iter()
        .find(|p| p["id"] == b_id)
        .expect("rejected problem kept");
    assert_eq!(b2["status"], "rejected");
    assert_eq!(ids(b2).len(), 5);
    // The rejected incidents are not proposed again (one new incident is not a problem).
    let open = problems(&get_as(&s, "/api/v1/problems?status=candidate", VIEWER).await);
    assert!(
        open.iter()
            .all(|p| ids(p).iter().all(|i| !i.starts_with("HIST-B"))),
        "rejected problem proposed again: {open:#?}"
    );
    let one = get_as(&s, &format!("/api/v1/problems/{a_id}"), VIEWER).await;
    assert_eq!(one["status"], "accepted");

    let r = s.get("/metrics").await;
    let samples = parse_prometheus(&r.text).unwrap();
    assert_eq!(
        metric(&samples, "sift_problem_candidates_open", &[]),
        open.len() as f64
    );
    assert!(metric(&samples, "sift_problem_cluster_duration_seconds_count", &[]) >= 2.0);
}

async fn bad_history_is_refused_whole(backend: Backend) {
    let Some((_db, s)) = start(backend, &[("SIFT_SERVER__BODY_LIMIT_BYTES", "100000")]).await
    else {
        return;
    };
    let b = base();
    let body = [
        json!({"id": "OK-1", "opened_at": iso(b), "title": "db-01: too many connections", "ci": "db-01"}).to_string(),
        json!({"id": "BAD-TIME", "opened_at": "last tuesday", "title": "x"}).to_string(),
        json!({"id": "OK-1", "opened_at": iso(b), "title": "duplicate"}).to_string(),
        json!({"id": "EMPTY", "opened_at": iso(b), "title": "  "}).to_string(),
        json!({"id": "NO-TIME", "title": "x"}).to_string(),
        "{not json".to_string(),
    ]
    .join("\n");
    let r = s
        .send(
            s.request(Method::POST, "/api/v1/incidents/import")
                .bearer_auth(OPERATOR)
                .body(body),
        )
        .await;
    s.expect(&r, 422, "bad records");
    let rejected: Vec<u64> = r.body["detail"]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["record"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, [2, 3, 4, 5, 6], "{}", r.text);
    assert!(r.text.contains("duplicate id"), "{}", r.text);
    assert!(r.text.contains("empty title"), "{}", r.text);
    assert!(r.text.contains("opened_at"), "{}", r.text);

    // Nothing was stored: the good record is not there either.
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&json!([])),
        )
        .await;
    s.expect(&r, 400, "empty list");
    let ok = json!([{"id": "OK-1", "opened_at": iso(b), "title": "db-01: too many connections", "ci": "nowhere-01"}]);
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&ok),
        )
        .await;
    s.expect(&r, 200, "good record");
    assert_eq!(r.body["new"], 1, "the refused batch stored nothing");
    assert_eq!(r.body["unknown_cis"][0]["ci"], "nowhere-01");
    let r = s
        .send(
            s.request(Method::POST, "/api/v1/incidents/import")
                .bearer_auth(OPERATOR)
                .body("[1, 2"),
        )
        .await;
    s.expect(&r, 422, "not a list");

    // Past the body limit: 413, nothing read.
    let line = json!({"id": "BIG", "opened_at": iso(b), "title": "x".repeat(1000)}).to_string();
    let big = vec![line; 200].join("\n");
    let r = s
        .send(
            s.request(Method::POST, "/api/v1/incidents/import")
                .bearer_auth(OPERATOR)
                .body(big),
        )
        .await;
    s.expect(&r, 413, "too large");
    assert!(r.body["error"].is_string(), "{}", r.text);
}

/// The offline command: bad lines are named by line and refuse the file; with
/// `--skip-bad` they are skipped and the rest clustered.
#[test]
fn cli_clusters_a_file_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = history().iter().map(|v| v.to_string()).collect();
    lines.insert(
        3,
        r#"{"id": "HIST-A0", "opened_at": "2026-01-01T00:00:00Z", "title": "dup"}"#.into(),
    );
    lines.insert(
        5,
        r#"{"id": "Z", "opened_at": "soon", "title": "x"}"#.into(),
    );
    let incidents = dir.path().join("history.jsonl");
    std::fs::write(&incidents, lines.join("\n")).unwrap();
    let cmdb = dir.path().join("cmdb.yaml");
    std::fs::write(
        &cmdb,
        "cis:\n - {id: db-01}\n - {id: host-01}\n - {id: orders-api}\n - {id: web}\nrelations:\n - {source: orders-api, target: db-01, type: depends_on}\n",
    )
    .unwrap();
    let out_file = dir.path().join("problems.json");
    // By default a bad record refuses the file, naming it; nothing is written.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["problems", "cluster", "--incidents"])
        .arg(&incidents)
        .arg("--cmdb")
        .arg(&cmdb)
        .arg("--output")
        .arg(&out_file)
        .env_remove("SIFT_STORE__URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("history.jsonl:4: record HIST-A0: duplicate id") && err.contains("--skip-bad"),
        "{err}"
    );
    assert!(!out_file.exists(), "nothing written when refused");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["problems", "cluster", "--skip-bad", "--incidents"])
        .arg(&incidents)
        .arg("--cmdb")
        .arg(&cmdb)
        .arg("--output")
        .arg(&out_file)
        .env_remove("SIFT_STORE__URL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("history.jsonl:4: record HIST-A0: duplicate id"),
        "{err}"
    );
    assert!(err.contains("history.jsonl:6: record Z: "), "{err}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let ps = problems(&doc);
    assert_eq!(rooted(&ps, "db-01").len(), 1, "{doc:#}");
    assert_eq!(rooted(&ps, "host-01").len(), 1, "{doc:#}");
    // Same input, same ids.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_sift"))
        .args(["problems", "cluster", "--skip-bad", "--incidents"])
        .arg(&incidents)
        .arg("--cmdb")
        .arg(&cmdb)
        .output()
        .unwrap();
    let doc2: Value = serde_json::from_slice(&again.stdout).unwrap();
    let idset = |d: &Value| {
        problems(d)
            .iter()
            .map(|p| p["id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(idset(&doc), idset(&doc2));
}

fn sift_cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sift"));
    cmd.args(args).env_remove("SIFT_STORE__URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn cluster_file(path: &std::path::Path, mapping: Option<&str>) -> (Value, String) {
    let mut args = vec!["problems", "cluster", "--incidents", path.to_str().unwrap()];
    if let Some(m) = mapping {
        args.extend(["--mapping", m]);
    }
    let out = sift_cli(&args, &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    (serde_json::from_slice(&out.stdout).unwrap(), err)
}

/// A ServiceNow-style CSV line: number, opened_at, resolved_at, cmdb_ci,
/// short_description, category, subcategory, priority, assignment_group, close_code,
/// description (quoted, with a comma and a line break).
fn sn_row(n: &str, at: DateTime<Utc>, ci: &str, short: &str, cat: &str, sub: &str) -> String {
    let f = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    format!(
        "{n},{},{},{ci},\"{short}\",{cat},{sub},2 - High,Service Desk,Solved (Permanently),\"Reported by phone,\nsee notes\"",
        f(at),
        f(at + Duration::hours(2))
    )
}

/// Six weekly too-many-connections incidents on db-01 and unrelated one-offs, as a
/// ServiceNow incident export: one candidate, with its base rate and explanation; the
/// same file imports into the store (twice: idempotent).
#[test]
fn servicenow_export_clusters_and_imports_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let b = base();
    let mut lines = vec![
        "number,opened_at,resolved_at,cmdb_ci,short_description,category,subcategory,priority,assignment_group,close_code,description".to_string(),
    ];
    for k in 0..6 {
        lines.push(sn_row(
            &format!("INC00100{k}"),
            b + Duration::weeks(k),
            "db-01",
            "db-01: too many connections, max_connections reached",
            "Database",
            "Connections",
        ));
    }
    let one_offs = [
        (
            "web",
            "certificate expiring on web",
            "Security",
            "Certificates",
        ),
        ("host-01", "disk full on /var", "Infrastructure", "Storage"),
        ("orders-api", "jvm heap exhausted", "Application", "Memory"),
        ("db-01", "replication lag high", "Database", "Replication"),
        ("host-02", "clock skew detected", "Infrastructure", "Time"),
    ];
    for (k, (ci, t, cat, sub)) in one_offs.iter().enumerate() {
        lines.push(sn_row(
            &format!("INC00200{k}"),
            b + Duration::days(k as i64 * 9 + 3),
            ci,
            t,
            cat,
            sub,
        ));
    }
    let csv = dir.path().join("incident.csv");
    std::fs::write(&csv, lines.join("\r\n") + "\r\n").unwrap();
    let (doc, err) = cluster_file(&csv, Some("servicenow"));
    let ps = problems(&doc);
    assert_eq!(ps.len(), 1, "{doc:#}\n{err}");
    let p = &ps[0];
    assert_eq!(p["suggested_root_cause"]["ci_id"], "db-01");
    assert_eq!(
        ids(p),
        (0..6).map(|k| format!("INC00100{k}")).collect::<Vec<_>>()
    );
    assert_eq!(p["observed"], 6);
    assert!(p["expected"].as_f64().unwrap() < 1.0, "{p:#}");
    assert!(p["q_value"].as_f64().unwrap() <= 0.05, "{p:#}");
    assert_eq!(p["explanation"]["scope"], "ci:db-01");
    assert!(
        !p["explanation"]["shared_signature"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(err.contains("features used: "), "{err}");
    assert!(
        doc["features_used"]
            .as_array()
            .unwrap()
            .contains(&json!("ci"))
    );

    // Into the store, twice.
    let url = format!("sqlite://{}", dir.path().join("sift.db").display());
    let env = [("SIFT_STORE__URL", url.as_str())];
    let path = csv.to_str().unwrap();
    let out = sift_cli(
        &["incidents", "import", path, "--mapping", "servicenow"],
        &env,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("imported 11 records"), "{text}");
    assert!(text.contains("(11 new, 0 updated"), "{text}");
    let out = sift_cli(
        &["incidents", "import", path, "--mapping", "servicenow"],
        &env,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(0 new, 11 updated"), "{text}");

    // Bad input: named by line and column, nothing imported.
    let mut latin1 = std::fs::read(&csv).unwrap();
    let at = latin1.windows(4).position(|w| w == b"disk").unwrap();
    latin1[at + 1] = 0xe9; // "d\xe9sk": Latin-1, not UTF-8
    let bad = dir.path().join("latin1.csv");
    std::fs::write(&bad, &latin1).unwrap();
    let out = sift_cli(
        &[
            "incidents",
            "import",
            bad.to_str().unwrap(),
            "--mapping",
            "servicenow",
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("line 16, column \"short_description\": not UTF-8"),
        "{err}"
    );
    let semi = dir.path().join("semicolon.csv");
    std::fs::write(&semi, lines.join("\n").replace(',', ";")).unwrap();
    let out = sift_cli(
        &[
            "problems",
            "cluster",
            "--incidents",
            semi.to_str().unwrap(),
            "--mapping",
            "servicenow",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("line 1: no column \"number\""), "{err}");
    assert!(err.contains("is the delimiter ';'?"), "{err}");
    let dates = dir.path().join("dates.csv");
    std::fs::write(
        &dates,
        lines
            .join("\n")
            .replacen(&format!("{}", b.format("%Y-%m-%d")), "someday", 1),
    )
    .unwrap();
    let out = sift_cli(
        &[
            "problems",
            "cluster",
            "--incidents",
            dates.to_str().unwrap(),
            "--mapping",
            "servicenow",
            "--strict",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("dates.csv:2: record INC001000: column \"opened_at\": cannot read"),
        "{err}"
    );
}

/// A Jira Service Management export without CIs: a burst of one symptom on one service
/// (five in two days) among that service's ordinary one-offs over months is one
/// candidate; the service's other incidents are none.
#[test]
fn jira_export_burst_of_one_symptom_on_one_service_is_one_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let b = base();
    let jira = |t: DateTime<Utc>| t.format("%d/%b/%y %-I:%M %p").to_string();
    let mut lines = vec![
        "Summary,Issue key,Issue id,Issue Type,Status,Priority,Resolution,Created,Resolved,Labels,Labels,Custom field (Affected services),Custom field (Symptom)".to_string(),
    ];
    let mut n = 0;
    let mut row =
        |lines: &mut Vec<String>, t: DateTime<Utc>, summary: &str, svc: &str, sym: &str| {
            n += 1;
            lines.push(format!(
            "\"{summary}\",ITSM-{n},{},[System] Incident,Resolved,High,Done,{},{},ops,,{svc},{sym}",
            10000 + n,
            jira(t),
            jira(t + Duration::hours(3))
        ));
        };
    for k in 0..5 {
        row(
            &mut lines,
            b + Duration::hours(k * 9),
            "Card payments fail with 502 from acquirer gateway",
            "Payments",
            "502 Bad Gateway",
        );
    }
    let others = [
        (
            "Refund report missing yesterday's refunds",
            "Report incomplete",
        ),
        ("Payment page shows wrong currency", "Display error"),
        ("Settlement file delayed", "Batch late"),
        ("Chargeback notification email not sent", "Mail not sent"),
        ("Invoice PDF garbled", "Rendering error"),
        ("Payment reconciliation mismatch", "Data mismatch"),
        ("3-D Secure page timeout for one bank", "Timeout"),
        ("Merchant portal login loop", "Login error"),
    ];
    for (k, (s, sym)) in others.iter().enumerate() {
        row(
            &mut lines,
            b - Duration::days(60) + Duration::days(k as i64 * 17),
            s,
            "Payments",
            sym,
        );
    }
    for k in 0..8 {
        row(
            &mut lines,
            b - Duration::days(50) + Duration::days(k * 13),
            &format!("Laptop request {k} stuck in approval"),
            "Workplace",
            "Approval pending",
        );
    }
    let csv = dir.path().join("jira.csv");
    std::fs::write(&csv, lines.join("\n") + "\n").unwrap();
    let (doc, err) = cluster_file(&csv, Some("jira"));
    let ps = problems(&doc);
    assert_eq!(ps.len(), 1, "{doc:#}\n{err}");
    assert_eq!(
        ids(&ps[0]),
        (1..=5).map(|k| format!("ITSM-{k}")).collect::<Vec<_>>()
    );
    assert_eq!(ps[0]["recurrence"]["kind"], "burst");
    assert_eq!(ps[0]["explanation"]["scope"], "svc:Payments");
    assert!(
        !doc["features_used"]
            .as_array()
            .unwrap()
            .contains(&json!("ci"))
    );
}

/// A busy CI with many unrelated one-offs worded in the words everyone uses ("slow",
/// "users report", "intermittent") and varied alertnames is no problem.
#[test]
fn busy_ci_with_many_one_offs_yields_no_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let b = base();
    let generic = [
        "users report slow",
        "intermittent errors",
        "high response time",
        "users report problems, intermittent",
        "slow and degraded",
    ];
    let details = [
        ("LoginPageSlow", "login page"),
        ("ExportJobFailed", "nightly export"),
        ("PdfRenderError", "pdf invoices"),
        ("SearchIndexStale", "search results"),
        ("SmtpRelayRejected", "mail relay"),
        ("LdapBindFailed", "ldap bind"),
        ("ConfigDrift", "config drift"),
        ("BackupJobLate", "backup window"),
        ("CronJobMissed", "cron job"),
        ("DnsLookupFailures", "dns lookups"),
        ("ProxyAuthErrors", "proxy auth"),
        ("LicenseServerDown", "license server"),
        ("ReportQueueStuck", "report queue"),
        ("FileShareUnavailable", "file share"),
        ("ApiQuotaExceeded", "partner api quota"),
        ("SessionStoreErrors", "session store"),
        ("WebhookDeliveryFailed", "webhooks"),
        ("SsoRedirectLoop", "sso redirect"),
    ];
    let mut lines = Vec::new();
    for (k, (alert, detail)) in details.iter().enumerate() {
        let at = b + Duration::hours(k as i64 * 97);
        lines.push(
            json!({"id": format!("BUSY-{k}"), "opened_at": iso(at), "ci": "portal",
            "title": format!("portal: {} - {detail}", generic[k % generic.len()]),
            "alertnames": [alert], "category": "application"})
            .to_string(),
        );
    }
    // The same words are everyday wording on every other CI too.
    for c in 0..12 {
        for k in 0..3 {
            let at = b + Duration::hours(c * 131 + k * 401);
            lines.push(json!({"id": format!("OTHER-{c}-{k}"), "opened_at": iso(at),
                "ci": format!("app-{c}"),
                "title": format!("app-{c}: {} ({})", generic[(c + k) as usize % generic.len()], details[(c * 3 + k) as usize % details.len()].1),
                "alertnames": [format!("Check{c}x{k}")], "category": "application"}).to_string());
        }
    }
    let f = dir.path().join("busy.jsonl");
    std::fs::write(&f, lines.join("\n")).unwrap();
    let (doc, err) = cluster_file(&f, None);
    assert!(problems(&doc).is_empty(), "{doc:#}\n{err}");
}

/// A rejected candidate is not proposed again when a few more look-alike incidents
/// arrive (weak evidence), and is, under a new id, when many more do.
async fn rejected_candidate_needs_more_evidence(backend: Backend) {
    let Some((_db, s)) = start(backend, &[]).await else {
        return;
    };
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&json!(history())),
        )
        .await;
    s.expect(&r, 200, "import");
    let ps = recluster(&s).await;
    let a = rooted(&ps, "db-01")[0].clone();
    let a_id = a["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/problems/{a_id}"),
            Some(OPERATOR),
            Some(&json!({"status": "rejected"})),
        )
        .await;
    s.expect(&r, 200, "reject");
    let more = |from: i64, n: i64| -> Vec<Value> {
        (from..from + n)
            .map(|k| {
                rec(
                    &format!("HIST-A{k}"),
                    base() + Duration::weeks(k) + Duration::minutes(k * 3),
                    "db-01",
                    "db-01: too many connections",
                    "PostgresTooManyConnections",
                )
            })
            .collect()
    };
    // Three more: as many as a fresh problem needs, not enough after a rejection.
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&json!(more(6, 3))),
        )
        .await;
    s.expect(&r, 200, "import 3 more");
    recluster(&s).await;
    let open = problems(&get_as(&s, "/api/v1/problems?status=candidate", VIEWER).await);
    assert!(
        rooted(&open, "db-01").is_empty(),
        "rejected problem proposed again on three more incidents: {open:#?}"
    );
    // Six more on top: proposed again, under a new id, the rejected one kept.
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&json!(more(9, 6))),
        )
        .await;
    s.expect(&r, 200, "import 6 more");
    let ps = recluster(&s).await;
    let again: Vec<&Value> = rooted(&ps, "db-01")
        .into_iter()
        .filter(|p| p["status"] == "candidate")
        .collect();
    assert_eq!(again.len(), 1, "{ps:#?}");
    assert_ne!(again[0]["id"], a_id.as_str());
    assert_eq!(again[0]["explanation"]["rejected_before"], true);
    assert!(
        ps.iter()
            .any(|p| p["id"] == a_id.as_str() && p["status"] == "rejected")
    );
}

/// The sample history in config/ (README, walkthrough) gives the problem candidates it was
/// written for: the weekly connection exhaustion on db-01 (two of its incidents raised on
/// orders-api, naming db-01) and the nightly disk-full on host-db-01; the one-offs none.
#[test]
fn sample_history_in_config_yields_its_candidates() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = sift_cli(
        &[
            "problems",
            "cluster",
            "--strict",
            "--incidents",
            repo.join("config/incidents.example.jsonl")
                .to_str()
                .unwrap(),
            "--cmdb",
            repo.join("config/cmdb.example.yaml").to_str().unwrap(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ps = problems(&doc);
    assert_eq!(ps.len(), 2, "{doc:#}");
    let db = rooted(&ps, "db-01");
    assert_eq!(db.len(), 1, "{doc:#}");
    assert_eq!(ids(db[0]).len(), 7, "{doc:#}");
    assert_eq!(db[0]["recurrence"]["kind"], "weekly", "{doc:#}");
    let disk = rooted(&ps, "host-db-01");
    assert_eq!(disk.len(), 1, "{doc:#}");
    assert_eq!(ids(disk[0]).len(), 5, "{doc:#}");
}
