//! The operator console over HTTP, black-box: pages render what an operator needs,
//! everything from alerts is escaped, forms need the session's CSRF token and the role,
//! a viewer gets no actions and is refused anyway, an unknown session goes to sign-in,
//! and merge / split / acknowledge / problem decisions from forms land in the store.
//! Each scenario runs on SQLite and on PostgreSQL (`TEST_DATABASE_URL`).

mod common;
mod console_common;

use common::{Backend, Db, Method, Sift};
use console_common::*;
use serde_json::json;

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
    pages_show_the_incident_and_escape_what_alerts_carry,
    forms_need_the_csrf_token_and_the_role,
    merge_split_and_decisions_from_the_console_reach_the_store,
);

const XSS: &str = "<script>alert(1)</script>";

/// The database down, then the API and the checkout service above it, through the
/// silent connection pool: one incident rooted at db-01.
async fn outage(s: &Sift) -> String {
    send(
        s,
        vec![
            alert("PostgresDown", "db-01", "critical", "fp-db", -120),
            alert("HighErrorRate", "orders-api", "error", "fp-api", -60),
            alert("CheckoutSLOBurn", "checkout", "warning", "fp-checkout", -30),
        ],
    )
    .await;
    let id = incident_of(s, "fp-db").await;
    assert_eq!(incident_of(s, "fp-api").await, id);
    id
}

async fn pages_show_the_incident_and_escape_what_alerts_carry(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = start(&db);
    // Script in a label value, an annotation and (through the alert name) the title.
    let mut a = alert(&format!("Disk{XSS}"), "cache-01", "critical", "fp-xss", -10);
    a["labels"]["team"] = json!(XSS);
    a["annotations"]["summary"] = json!(format!("<img src=x onerror=alert(1)>{XSS}"));
    send(&s, vec![a]).await;
    let xss_inc = incident_of(&s, "fp-xss").await;
    let id = outage(&s).await;
    make_problem(&s).await;

    let mut b = Browser::sign_in(&s, OPERATOR).await;
    let list = b.get("/").await;
    assert_eq!(list.status, 200);
    assert!(
        list.text.contains(&id) && list.text.contains(&xss_inc),
        "{}",
        list.text
    );
    assert!(list.text.contains("alice-oncall (operator)"));

    // Filters: by CI, by service, by text, and a bad status named.
    let by_ci = b.get("/?ci=cache-01").await;
    assert!(by_ci.text.contains(&xss_inc) && !by_ci.text.contains(&format!(">{id}<")));
    let by_service = b.get("/?service=checkout").await;
    assert!(by_service.text.contains(&id) && !by_service.text.contains(&format!(">{xss_inc}<")));
    let by_text = b.get("/?q=postgresdown").await;
    assert!(by_text.text.contains(&id) && !by_text.text.contains(&format!(">{xss_inc}<")));
    let bad = b.get("/?status=sleeping").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text
            .contains("status must be open, acknowledged, resolved or closed")
    );

    for (path, expect) in [
        (format!("/incidents/{id}"), "PostgresDown"),
        (format!("/incidents/{xss_inc}"), "cache-01"),
        ("/problems".to_string(), "Accept PRB"),
        ("/cmdb?q=orders-db".to_string(), ""),
        ("/cmdb/db-01".to_string(), "Depended on by"),
        ("/noise".to_string(), "alerts per incident"),
    ] {
        let p = b.get(&path).await;
        match path.as_str() {
            // An alias finds its CI straight away.
            "/cmdb?q=orders-db" => {
                assert_eq!(p.status, 303, "{path}");
                assert_eq!(p.location.as_deref(), Some("/cmdb/db-01"));
            }
            _ => {
                assert_eq!(p.status, 200, "{path}: {}", p.text);
                assert!(p.text.contains(expect), "{path} lacks {expect:?}");
                assert!(!p.text.contains("<script>alert"), "{path} has raw script");
                assert!(!p.text.contains("<img src=x"), "{path} has a raw img");
            }
        }
    }

    // The detail page: priority with impact and urgency, SLA, the graph with the root at
    // the bottom and the silent pool drawn as such, symptoms marked, the timeline.
    let d = b.get(&format!("/incidents/{id}")).await.text;
    assert!(d.contains("(impact 1, urgency 1)"), "{d}");
    assert!(d.contains("Respond by") && d.contains("Resolve by"));
    assert!(d.contains(r#"class="node root" data-ci="db-01""#), "{d}");
    assert!(
        d.contains(r#"class="node silent" data-ci="conn-pool""#),
        "{d}"
    );
    assert!(d.contains("orders-api → conn-pool → db-01"));
    assert!(d.contains(">symptom<") && d.contains(">root<"));
    assert!(d.contains("alert_joined"));
    // An operator sees the actions.
    assert!(d.contains("Acknowledge") && d.contains("Split the checked alerts"));

    let x = b.get(&format!("/incidents/{xss_inc}")).await.text;
    assert!(
        x.contains("Disk&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{x}"
    );
    assert!(x.contains("team=&lt;script&gt;"));
    assert!(x.contains("&lt;img src=x onerror=alert(1)&gt;"));
    // The page forbids inline script whatever slips through.
    let r = b
        .client
        .get(format!("{}/incidents/{xss_inc}", s.base))
        .header(
            "cookie",
            format!("sift_session={}", b.cookie.clone().unwrap()),
        )
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");

    let missing = b.get("/incidents/INC9999999").await;
    assert_eq!(missing.status, 404);
    let missing = b.get("/cmdb/no-such-ci").await;
    assert_eq!(missing.status, 404);
    // The stylesheet and script are served from the binary.
    assert_eq!(b.get("/console/console.js").await.status, 200);
    assert_eq!(b.get("/console/console.css").await.status, 200);
}

async fn forms_need_the_csrf_token_and_the_role(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = start(&db);
    let id = outage(&s).await;
    let status_path = format!("/incidents/{id}/status");

    // No session: pages and posts go to sign-in, which names where to come back.
    let mut anon = Browser::new(&s);
    let p = anon.get(&format!("/incidents/{id}")).await;
    assert_eq!(p.status, 303);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/signin?next=%2Fincidents%2F{id}").as_str())
    );
    anon.cookie = Some("0".repeat(64));
    let p = anon.post(&status_path, &[("status", "acknowledged")]).await;
    assert_eq!(p.status, 303, "an unknown session is sent to sign in");
    assert!(p.location.unwrap().starts_with("/signin"));
    // A wrong token is refused with the form again.
    let p = anon
        .post("/signin", &[("token", "not-a-token-at-all")])
        .await;
    assert_eq!(p.status, 401);
    assert!(p.text.contains("not one sift knows"));
    assert!(anon.get("/signin").await.text.contains("API token"));

    let mut op = Browser::sign_in(&s, OPERATOR).await;
    op.get(&format!("/incidents/{id}")).await;
    let p = op.post(&status_path, &[("status", "acknowledged")]).await;
    assert_eq!(p.status, 403, "no CSRF token");
    assert!(p.text.contains("CSRF token is missing or wrong"));
    let p = op
        .post(
            &status_path,
            &[("csrf", &"f".repeat(64)), ("status", "acknowledged")],
        )
        .await;
    assert_eq!(p.status, 403, "forged CSRF token");
    assert_eq!(incident(&s, &id).await["status"], "open");

    // A viewer: no action on the page, and the server refuses a forged post even with
    // the viewer's own valid CSRF token.
    let mut viewer = Browser::sign_in(&s, VIEWER).await;
    let d = viewer.get(&format!("/incidents/{id}")).await.text;
    assert!(d.contains("vera-viewer (viewer)"));
    for action in [
        "/status\"",
        "/merge\"",
        "/split\"",
        "/assign\"",
        "Acknowledge",
        "type=\"checkbox\"",
    ] {
        assert!(!d.contains(action), "a viewer sees {action}");
    }
    let p = viewer
        .submit(&status_path, &[("status", "acknowledged")])
        .await;
    assert_eq!(p.status, 403);
    assert!(p.text.contains("role viewer may not do this"));
    let p = viewer
        .submit(&format!("/incidents/{id}/split"), &[("alert", "fp-api")])
        .await;
    assert_eq!(p.status, 403);
    assert_eq!(incident(&s, &id).await["status"], "open");
    // The viewer's token does not work in the operator's session.
    let p = op
        .post(
            &status_path,
            &[
                ("csrf", &viewer.csrf.clone().unwrap()),
                ("status", "acknowledged"),
            ],
        )
        .await;
    assert_eq!(p.status, 403);

    // The operator's own form works: acknowledged, by alice, through the pipeline.
    let p = op.submit(&status_path, &[("status", "acknowledged")]).await;
    assert_eq!(p.status, 303, "{}", p.text);
    let inc = incident(&s, &id).await;
    assert_eq!(inc["status"], "acknowledged");
    let by_alice = inc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "alice-oncall");
    assert!(by_alice, "{inc:#}");
    // A comment and an empty one.
    let p = op
        .submit(
            &format!("/incidents/{id}/comment"),
            &[("comment", "looking at the pool")],
        )
        .await;
    assert_eq!(p.status, 303);
    let p = op
        .submit(&format!("/incidents/{id}/comment"), &[("comment", "  ")])
        .await;
    assert_eq!(p.status, 400);
    assert!(p.text.contains("comment is empty"));

    // Signing out ends the session: the old cookie goes to sign-in again.
    let old = op.cookie.clone();
    let p = op.submit("/signout", &[]).await;
    assert_eq!(p.status, 303);
    op.cookie = old;
    let p = op.get("/").await;
    assert_eq!(p.status, 303);
}

async fn merge_split_and_decisions_from_the_console_reach_the_store(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let s = start(&db);
    let id = outage(&s).await;
    send(
        &s,
        vec![alert("RedisDown", "cache-01", "critical", "fp-cache", -20)],
    )
    .await;
    let cache = incident_of(&s, "fp-cache").await;
    assert_ne!(cache, id);
    let mut op = Browser::sign_in(&s, OPERATOR).await;
    op.get(&format!("/incidents/{cache}")).await;

    // Merge refusals are named: into itself, into something that is not an id.
    let p = op
        .submit(&format!("/incidents/{cache}/merge"), &[("into", &cache)])
        .await;
    assert_eq!(p.status, 409, "{}", p.text);
    assert!(p.text.contains("into itself"));
    let p = op
        .submit(
            &format!("/incidents/{cache}/merge"),
            &[("into", "yesterday's")],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.text.contains("into must be an incident id"));

    let p = op
        .submit(&format!("/incidents/{cache}/merge"), &[("into", &id)])
        .await;
    assert_eq!(p.status, 303, "{}", p.text);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/incidents/{id}").as_str())
    );
    assert_eq!(incident(&s, &cache).await["status"], "closed");
    assert_eq!(incident_of(&s, "fp-cache").await, id);
    // A closed incident cannot be merged again.
    let p = op
        .submit(&format!("/incidents/{cache}/merge"), &[("into", &id)])
        .await;
    assert_eq!(p.status, 409);

    // Split the cache alert back out: a new incident holds it; the old one does not.
    let p = op.submit(&format!("/incidents/{id}/split"), &[]).await;
    assert_eq!(p.status, 400, "nothing checked");
    let p = op
        .submit(
            &format!("/incidents/{id}/split"),
            &[("alert", "fp-not-here")],
        )
        .await;
    assert_eq!(p.status, 409, "{}", p.text);
    let every = [
        ("alert", "fp-db"),
        ("alert", "fp-api"),
        ("alert", "fp-checkout"),
        ("alert", "fp-cache"),
    ];
    let p = op.submit(&format!("/incidents/{id}/split"), &every).await;
    assert_eq!(p.status, 409, "splitting every alert out: {}", p.text);
    assert!(p.text.contains("would leave it empty"));
    let p = op
        .submit(&format!("/incidents/{id}/split"), &[("alert", "fp-cache")])
        .await;
    assert_eq!(p.status, 303, "{}", p.text);
    let new = incident_of(&s, "fp-cache").await;
    assert_ne!(new, id);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/incidents/{new}").as_str())
    );
    assert_eq!(incident(&s, &id).await["alert_count"], 3);
    let page = op.get(&format!("/incidents/{new}")).await.text;
    assert!(page.contains("RedisDown"));

    // A problem candidate accepted from its page.
    let ps = make_problem(&s).await;
    let p = ps
        .iter()
        .find(|p| p["suggested_root_cause"]["ci_id"] == "db-01")
        .expect("a db-01 problem");
    let pid = p["id"].as_str().unwrap().to_string();
    let page = op.get("/problems").await.text;
    assert!(page.contains(&format!("Accept {pid}")), "{page}");
    let r = op
        .submit(
            &format!("/problems/{pid}/decide"),
            &[("status", "accepted")],
        )
        .await;
    assert_eq!(r.status, 303);
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/problems/{pid}"),
            Some(VIEWER),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "accepted");
    let r = op
        .submit(&format!("/problems/{pid}/decide"), &[("status", "maybe")])
        .await;
    assert_eq!(r.status, 400);
    let r = op
        .submit("/problems/PRB-nope/decide", &[("status", "rejected")])
        .await;
    assert_eq!(r.status, 404);
}
