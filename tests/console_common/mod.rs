//! What the console's tests share: a daemon with tokens and a small CMDB (a silent
//! connection pool between the API and its database), alerts, problem history, and a
//! browser-like HTTP session (cookie, CSRF token, no redirect following).

#![allow(dead_code)]

use chrono::{DateTime, Duration, SecondsFormat, Timelike, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Db, Sift};

pub const VIEWER: &str = "viewer-token-console-tests";
pub const OPERATOR: &str = "operator-token-console-tests";
pub const ADMIN: &str = "admin-token-console-tests";

/// checkout → orders-api → conn-pool (never alerts) → db-01; cache-01 on its own.
pub const CMDB: &str = r#"
cis:
  - {id: checkout, type: business_service, criticality: high}
  - {id: orders-api, type: application, owner_group: app-team}
  - {id: conn-pool, type: middleware}
  - {id: db-01, type: database, criticality: critical, owner_group: dba-team, aliases: [orders-db]}
  - {id: cache-01, type: cache, criticality: low}
  - {id: host-01, type: server}
relations:
  - {source: checkout, target: orders-api}
  - {source: orders-api, target: conn-pool}
  - {source: conn-pool, target: db-01}
"#;

/// `sift serve` on `db` with auth on (a viewer, an operator named alice, an admin).
pub fn start(db: &Db) -> Sift {
    let tokens = json!([
        {"token": VIEWER, "role": "viewer", "name": "vera-viewer"},
        {"token": OPERATOR, "role": "operator", "name": "alice-oncall"},
        {"token": ADMIN, "role": "admin"},
    ])
    .to_string();
    db.cmdb_import(&db.write("cmdb.yaml", CMDB));
    Sift::start(
        db,
        &[
            ("SIFT_AUTH__TOKENS", tokens.as_str()),
            ("SIFT_INCIDENT__RESOLVE_HOLD_OFF", "0s"),
            (
                "SIFT_INCIDENT__SLA__P1",
                r#"{"respond": "15m", "resolve": "4h"}"#,
            ),
        ],
    )
}

pub fn ts(offset_secs: i64) -> String {
    (Utc::now() + Duration::seconds(offset_secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A firing Alertmanager alert with fingerprint `fp`.
pub fn alert(name: &str, ci: &str, sev: &str, fp: &str, offset: i64) -> Value {
    json!({"status": "firing", "labels": {"alertname": name, "ci": ci, "severity": sev},
           "annotations": {"summary": format!("{name} on {ci}")},
           "startsAt": ts(offset), "fingerprint": fp})
}

pub async fn send(s: &Sift, alerts: Vec<Value>) {
    let r = s
        .call(
            Method::POST,
            "/api/v1/alerts/alertmanager",
            Some(OPERATOR),
            Some(&json!({"version": "4", "alerts": alerts})),
        )
        .await;
    s.expect(&r, 200, "post alerts");
}

/// An incident as the API shows it.
pub async fn incident(s: &Sift, id: &str) -> Value {
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/incidents/{id}"),
            Some(VIEWER),
            None,
        )
        .await;
    s.expect(&r, 200, &format!("GET incident {id}"));
    r.body
}

/// The incident an alert is in now.
pub async fn incident_of(s: &Sift, fp: &str) -> String {
    let r = s
        .call(Method::GET, "/api/v1/alerts?limit=1000", Some(VIEWER), None)
        .await;
    s.expect(&r, 200, "GET alerts");
    r.body["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["fingerprint"] == fp)
        .and_then(|a| a["incident_id"].as_str())
        .unwrap_or_else(|| panic!("alert {fp} has no incident: {}", r.body))
        .to_string()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Six weekly "too many connections" incidents on db-01 (a problem candidate once
/// reclustered) and a few unrelated one-offs; imported, then reclustered. Returns the
/// candidates.
pub async fn make_problem(s: &Sift) -> Vec<Value> {
    let b = (Utc::now() - Duration::days(90))
        .with_hour(8)
        .and_then(|d| d.with_minute(10))
        .unwrap();
    let rec = |id: String, at: DateTime<Utc>, ci: &str, title: &str, alert: &str| {
        json!({"id": id, "opened_at": iso(at), "resolved_at": iso(at + Duration::hours(1)),
               "ci": ci, "title": title, "alertnames": [alert], "priority": 2})
    };
    let mut v = Vec::new();
    for k in 0..6 {
        let at = b + Duration::weeks(k) + Duration::minutes(k * 5);
        v.push(rec(
            format!("HIST-A{k}"),
            at,
            "db-01",
            "db-01: too many connections",
            "PostgresTooManyConnections",
        ));
    }
    for (k, (ci, title, alert)) in [
        ("cache-01", "cache-01: evictions", "RedisEvictions"),
        ("orders-api", "orders-api: jvm heap exhausted", "JvmHeap"),
        ("host-01", "host-01: clock skew", "HostClockSkew"),
    ]
    .iter()
    .enumerate()
    {
        let at = b + Duration::days(k as i64 * 11 + 2) + Duration::hours(k as i64 * 5);
        v.push(rec(format!("HIST-X{k}"), at, ci, title, alert));
    }
    let r = s
        .call(
            Method::POST,
            "/api/v1/incidents/import",
            Some(OPERATOR),
            Some(&json!(v)),
        )
        .await;
    s.expect(&r, 200, "import history");
    let r = s
        .call(
            Method::POST,
            "/api/v1/problems/recluster",
            Some(OPERATOR),
            None,
        )
        .await;
    s.expect(&r, 200, "recluster");
    r.body["problems"].as_array().cloned().unwrap_or_default()
}

/// A signed-in browser, by HTTP: its session cookie and the CSRF token its pages carry.
pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

/// One answer: status, body, and where a redirect points.
pub struct Page {
    pub status: u16,
    pub text: String,
    pub location: Option<String>,
}

impl Browser {
    pub fn new(s: &Sift) -> Browser {
        Browser {
            base: s.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("client"),
            cookie: None,
            csrf: None,
        }
    }

    /// Signs in with `token` through the form; panics unless it worked.
    pub async fn sign_in(s: &Sift, token: &str) -> Browser {
        let mut b = Browser::new(s);
        let p = b.post("/signin", &[("token", token), ("next", "/")]).await;
        assert_eq!(p.status, 303, "sign in: {}", p.text);
        assert_eq!(p.location.as_deref(), Some("/"));
        b.csrf = None;
        let page = b.get("/").await;
        assert_eq!(page.status, 200, "the list after sign-in: {}", page.text);
        b
    }

    async fn send(&mut self, rb: reqwest::RequestBuilder) -> Page {
        let rb = match &self.cookie {
            Some(c) => rb.header("cookie", format!("sift_session={c}")),
            None => rb,
        };
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if let Some(set) = r.headers().get("set-cookie").and_then(|v| v.to_str().ok())
            && let Some(v) = set.strip_prefix("sift_session=")
        {
            let v = v.split(';').next().unwrap_or("");
            self.cookie = (!v.is_empty()).then(|| v.to_string());
        }
        let text = r.text().await.unwrap_or_default();
        if let Some(t) = csrf_of(&text) {
            self.csrf = Some(t);
        }
        Page {
            status,
            text,
            location,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let rb = self.client.get(format!("{}{path}", self.base));
        self.send(rb).await
    }

    /// Posts a form as typed (no CSRF token added).
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).expect("form");
        let rb = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(rb).await
    }

    /// Posts a form with this session's CSRF token, as the page's own form would.
    pub async fn submit(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self
            .csrf
            .clone()
            .expect("a page with a CSRF token was read first");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }
}

/// The CSRF token in a page's forms.
pub fn csrf_of(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let rest = &html[at..];
    Some(rest[..rest.find('"')?].to_string())
}
