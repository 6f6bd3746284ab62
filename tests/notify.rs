//! Outbound incident events, black-box: a tiny receiver on 127.0.0.1 stands in for the
//! ITSM suite. Each scenario runs on SQLite and on PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{SecondsFormat, Utc};
use common::{Backend, Db, Sift, metric, parse_prometheus};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(20);
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
const WEBHOOK: &str = "/api/v1/alerts/alertmanager";
const SECRET: &str = "s3cret-shared-with-the-receiver";

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
    receiver_gets_events_in_order_signed,
    events_survive_a_crash_before_delivery,
    retried_after_500_until_delivered,
    hanging_receiver_never_blocks_ingest_and_dead_letters,
    subscriptions_through_the_api,
    live_events_over_server_sent_events,
    a_silenced_alert_still_gets_its_incident_resolved_downstream,
    https_receiver_trusted_through_ca_file,
    dead_letter_sent_again_once_the_receiver_is_fixed,
    delivered_events_purged_after_retention_dead_ones_kept,
    a_stale_dead_letter_is_not_sent_again,
);

// ---- the receiver -----------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Got {
    signature: Option<String>,
    body: Value,
    raw: Bytes,
}

#[derive(Clone, Copy)]
enum Mode {
    Ok,
    /// Answer 500 to the first N requests, then 200.
    FailFirst(usize),
    /// Never answer.
    Hang,
    /// Answer 500 while the flag is up, 200 once it is down.
    DownWhile(&'static std::sync::atomic::AtomicBool),
}

#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    calls: Arc<AtomicUsize>,
    mode: Mode,
}

impl Receiver {
    fn new(mode: Mode) -> Self {
        Receiver {
            got: Arc::default(),
            calls: Arc::default(),
            mode,
        }
    }

    /// Serves on `addr` (port 0: any) and returns the address it bound.
    async fn serve(&self, addr: SocketAddr) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        let bound = listener.local_addr().expect("receiver address");
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        bound
    }

    /// Serves HTTPS on a free port with `tls`'s certificate; returns the address.
    async fn serve_tls(&self, tls: &Tls) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS receiver");
        let bound = listener.local_addr().expect("receiver address");
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![tls.leaf_der.clone()], tls.key_der.clone_key())
        .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(self.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    // A client that rejects the certificate ends the handshake here.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        bound
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Each event once (receivers dedupe on event_id), in order of first arrival.
    fn unique(&self) -> Vec<Got> {
        let mut seen = std::collections::HashSet::new();
        self.got()
            .into_iter()
            .filter(|g| seen.insert(g.body["event_id"].as_str().unwrap_or("").to_string()))
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let n = r.calls.fetch_add(1, Ordering::SeqCst);
    match r.mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::OK;
        }
        Mode::FailFirst(k) if n < k => return StatusCode::INTERNAL_SERVER_ERROR,
        Mode::DownWhile(down) if down.load(Ordering::SeqCst) => {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        _ => {}
    }
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    r.got.lock().unwrap().push(Got {
        signature: headers
            .get("x-sift-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
        raw,
    });
    StatusCode::OK
}

/// An in-house CA and a receiver certificate for 127.0.0.1 signed by it.
struct Tls {
    ca_pem: String,
    leaf_der: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    key_der: tokio_rustls::rustls::pki_types::PrivateKeyDer<'static>,
}

impl Tls {
    fn new(ca_name: &str) -> Tls {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap())
            .expect("CA certificate");
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .expect("receiver certificate");
        Tls {
            ca_pem: ca.pem(),
            leaf_der: leaf.der().clone(),
            key_der: tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
                key.serialize_der().into(),
            ),
        }
    }
}

fn sign(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

// ---- helpers ------------------------------------------------------------------------------

fn ts(offset_secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(offset_secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn webhook(alerts: Vec<Value>) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"x\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "sift", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    })
}

fn alert(status: &str, instance: &str, fp: &str, starts_at: &str, ends_at: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": "ApiDown", "job": "orders-api", "instance": instance, "severity": "critical"},
        "annotations": {"summary": "orders-api is down"},
        "startsAt": starts_at, "endsAt": ends_at, "fingerprint": fp,
    })
}

async fn post_ok(s: &Sift, body: &Value) -> Value {
    let r = s.post(WEBHOOK, body).await;
    s.expect(&r, 200, "POST alerts");
    r.body
}

fn hooks(url: &str, extra: Value) -> String {
    let mut h =
        json!({"name": "itsm", "url": url, "secret": SECRET, "timeout": "2s", "max_attempts": 100});
    if let (Some(m), Some(e)) = (h.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    json!([h]).to_string()
}

/// The receivers in these tests listen on loopback, which deliveries refuse by default.
const LOOPBACK: (&str, &str) = ("SIFT_NOTIFY__ALLOW_NETWORKS", r#"["127.0.0.0/8"]"#);

fn start(db: &Db, hooks: &str) -> Sift {
    Sift::start(
        db,
        &[
            LOOPBACK,
            ("SIFT_NOTIFY__WEBHOOKS", hooks),
            ("SIFT_NOTIFY__POLL_INTERVAL", "50ms"),
            ("SIFT_NOTIFY__BACKOFF_BASE", "50ms"),
            ("SIFT_NOTIFY__BACKOFF_MAX", "200ms"),
            ("SIFT_INCIDENT__RESOLVE_HOLD_OFF", "0s"),
        ],
    )
}

async fn outbox(s: &Sift, status: &str) -> Vec<Value> {
    s.get_ok(&format!("/api/v1/outbox?status={status}")).await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The outbox rows of `status`, once there is at least one.
async fn outbox_soon(s: &Sift, status: &str, what: &str) -> Vec<Value> {
    s.eventually(WAIT, what, || async {
        let rows = outbox(s, status).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await
}

async fn wait_events(s: &Sift, r: &Receiver, n: usize) -> Vec<Got> {
    s.eventually(
        WAIT,
        &format!("{n} distinct events at the receiver"),
        || async {
            let u = r.unique();
            (u.len() >= n).then_some(u)
        },
    )
    .await
}

fn kinds(got: &[Got]) -> Vec<String> {
    got.iter()
        .map(|g| g.body["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

// ---- scenarios ------------------------------------------------------------------------------

/// Opened, updated (a second alert joins), resolved: in order, signed, one incident, and
/// a ServiceNow-shaped copy for a second subscription.
async fn receiver_gets_events_in_order_signed(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let r = Receiver::new(Mode::Ok);
    let addr = r.serve("127.0.0.1:0".parse().unwrap()).await;
    let snow = Receiver::new(Mode::Ok);
    let snow_addr = snow.serve("127.0.0.1:0".parse().unwrap()).await;
    let url = format!("http://{addr}/hook");
    let mut subs: Vec<Value> = serde_json::from_str(&hooks(&url, json!({}))).unwrap();
    subs.push(
        json!({"name": "snow", "url": format!("http://{snow_addr}/hook"), "preset": "servicenow",
                     "events": ["incident.opened", "incident.resolved"]}),
    );
    let s = start(&db, &Value::Array(subs).to_string());

    let t0 = ts(-120);
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-a",
            &t0,
            ZERO_TIME,
        )]),
    )
    .await;
    let first = wait_events(&s, &r, 1).await;
    assert_eq!(kinds(&first), ["incident.opened"]);
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.2:8080",
            "fp-b",
            &ts(-100),
            ZERO_TIME,
        )]),
    )
    .await;
    wait_events(&s, &r, 2).await;
    post_ok(
        &s,
        &webhook(vec![
            alert("resolved", "10.0.0.1:8080", "fp-a", &t0, &ts(-10)),
            alert("resolved", "10.0.0.2:8080", "fp-b", &ts(-100), &ts(-10)),
        ]),
    )
    .await;
    let got = s
        .eventually(WAIT, "incident.resolved at the receiver", || async {
            let u = r.unique();
            (u.last().map(|g| g.body["event"] == "incident.resolved") == Some(true)).then_some(u)
        })
        .await;
    let k = kinds(&got);
    assert_eq!(
        k.first().map(String::as_str),
        Some("incident.opened"),
        "{k:?}"
    );
    assert!(
        k[1..k.len() - 1].iter().all(|e| e == "incident.updated"),
        "{k:?}"
    );
    assert!(
        k.len() >= 3,
        "an update when the second alert joined: {k:?}"
    );
    let inc_id = got[0].body["incident"]["id"].as_str().unwrap().to_string();
    for g in &got {
        assert_eq!(g.body["incident"]["id"], inc_id.as_str(), "one incident");
        assert_eq!(
            g.signature.as_deref(),
            Some(sign(&g.raw).as_str()),
            "valid signature"
        );
        assert!(g.body["event_id"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(got.last().unwrap().body["incident"]["status"], "resolved");
    assert_eq!(
        r.got().len(),
        got.len(),
        "no event twice on a healthy receiver"
    );

    let sn = wait_events(&s, &snow, 2).await;
    assert_eq!(sn[0].body["state"], "1");
    assert_eq!(sn[0].body["correlation_id"], inc_id.as_str());
    assert_eq!(sn[0].body["urgency"], "1");
    assert!(sn[0].body["short_description"].is_string());
    assert_eq!(sn[1].body["state"], "6");
    assert_eq!(sn[0].signature, None, "no secret, no signature");
}

/// The receiver is down when the incident opens; sift is killed (SIGKILL) before it could
/// deliver, the incident resolves after the restart, then the receiver comes up: both
/// events arrive, each event id once after dedupe, in order.
async fn events_survive_a_crash_before_delivery(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    // Reserve a port, then leave it closed: the receiver is down.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut s = start(&db, &hooks(&format!("http://{addr}/hook"), json!({})));
    let t0 = ts(-120);
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-a",
            &t0,
            ZERO_TIME,
        )]),
    )
    .await;
    s.eventually(WAIT, "a failed delivery attempt", || async {
        let p = outbox(&s, "pending").await;
        p.iter()
            .any(|e| e["attempts"].as_i64() >= Some(1))
            .then_some(())
    })
    .await;
    s.crash_restart();
    post_ok(
        &s,
        &webhook(vec![alert(
            "resolved",
            "10.0.0.1:8080",
            "fp-a",
            &t0,
            &ts(-10),
        )]),
    )
    .await;
    let r = Receiver::new(Mode::Ok);
    r.serve(addr).await;
    let got = wait_events(&s, &r, 2).await;
    assert_eq!(kinds(&got), ["incident.opened", "incident.resolved"]);
    assert_eq!(got[0].body["incident"]["id"], got[1].body["incident"]["id"]);
    let delivered = s
        .eventually(WAIT, "both rows delivered", || async {
            let d = outbox(&s, "delivered").await;
            (d.len() == 2).then_some(d)
        })
        .await;
    let mut ids: Vec<&str> = delivered
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    ids.sort();
    let mut seen: Vec<String> = got
        .iter()
        .map(|g| g.body["event_id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    assert_eq!(ids, seen, "the receiver saw exactly the outbox's event ids");
    assert!(outbox(&s, "pending").await.is_empty());
}

/// A receiver answering 500 twice, then 200: delivered after backoff, attempts counted.
async fn retried_after_500_until_delivered(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let r = Receiver::new(Mode::FailFirst(2));
    let addr = r.serve("127.0.0.1:0".parse().unwrap()).await;
    let s = start(&db, &hooks(&format!("http://{addr}/hook"), json!({})));
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-a",
            &ts(-60),
            ZERO_TIME,
        )]),
    )
    .await;
    let got = wait_events(&s, &r, 1).await;
    assert_eq!(kinds(&got), ["incident.opened"]);
    let d = outbox_soon(&s, "delivered", "the row delivered").await;
    assert_eq!(d[0]["attempts"], 3, "{d:#?}");
    let m = parse_prometheus(&s.get("/metrics").await.text).unwrap();
    assert_eq!(
        metric(
            &m,
            "sift_notify_deliveries_total",
            &[("subscription", "itsm"), ("outcome", "failed")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "sift_notify_deliveries_total",
            &[("subscription", "itsm"), ("outcome", "delivered")]
        ),
        1.0
    );
}

/// A receiver that never answers: ingest goes on answering, and after max_attempts the
/// event is dead, visible in the API and the metrics.
async fn hanging_receiver_never_blocks_ingest_and_dead_letters(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let r = Receiver::new(Mode::Hang);
    let addr = r.serve("127.0.0.1:0".parse().unwrap()).await;
    let s = start(
        &db,
        &hooks(
            &format!("http://{addr}/hook"),
            json!({"timeout": "300ms", "max_attempts": 2}),
        ),
    );
    for i in 0..20 {
        let rep = post_ok(
            &s,
            &webhook(vec![alert(
                "firing",
                &format!("10.0.1.{i}:8080"),
                &format!("fp-{i}"),
                &ts(-60),
                ZERO_TIME,
            )]),
        )
        .await;
        assert_eq!(rep["accepted"], 1);
    }
    assert_eq!(
        s.alerts().await.len(),
        20,
        "every alert stored while the receiver hangs"
    );
    let dead = outbox_soon(&s, "dead", "a dead-lettered event").await;
    assert_eq!(dead[0]["attempts"], 2);
    assert!(
        dead[0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{dead:#?}"
    );
    let m = parse_prometheus(&s.get("/metrics").await.text).unwrap();
    assert!(
        metric(
            &m,
            "sift_notify_deliveries_total",
            &[("subscription", "itsm"), ("outcome", "dead")]
        ) >= 1.0
    );
    let r = s.get("/api/v1/outbox?status=bogus").await;
    s.expect(&r, 400, "unknown outbox status");
}

/// Subscriptions through the API: admin only, validated, config ones protected; a
/// subscription made through the API gets the events.
async fn subscriptions_through_the_api(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let tokens = json!([{"token": "viewer-token-0001", "role": "viewer"}, {"token": "admin-token-0001", "role": "admin"}]).to_string();
    let s = Sift::start(
        &db,
        &[
            LOOPBACK,
            ("SIFT_AUTH__TOKENS", tokens.as_str()),
            ("SIFT_NOTIFY__POLL_INTERVAL", "50ms"),
            (
                "SIFT_NOTIFY__WEBHOOKS",
                r#"[{"name": "cfg", "url": "http://127.0.0.1:9/none", "events": ["incident.closed"]}]"#,
            ),
        ],
    );
    let admin = |m, p: &str| s.request(m, p).bearer_auth("admin-token-0001");
    let r = Receiver::new(Mode::Ok);
    let addr = r.serve("127.0.0.1:0".parse().unwrap()).await;
    let sub = json!({"name": "jira", "url": format!("http://{addr}/hook"), "preset": "jira", "secret": SECRET});

    let resp = s
        .send(
            s.request(common::Method::POST, "/api/v1/subscriptions")
                .bearer_auth("viewer-token-0001")
                .json(&sub),
        )
        .await;
    s.expect(&resp, 403, "viewer cannot subscribe");
    let resp = s
        .send(
            admin(common::Method::POST, "/api/v1/subscriptions")
                .json(&json!({"name": "x", "url": "ftp://x"})),
        )
        .await;
    s.expect(&resp, 422, "bad url");
    let resp = s
        .send(admin(common::Method::POST, "/api/v1/subscriptions").json(&sub))
        .await;
    s.expect(&resp, 201, "subscribe");
    assert_eq!(resp.body["has_secret"], true);
    assert!(resp.body.get("secret").is_none(), "secret never shown");
    let list = s
        .send(admin(common::Method::GET, "/api/v1/subscriptions"))
        .await;
    s.expect(&list, 200, "list");
    let names: Vec<&str> = list.body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(names, ["cfg", "jira"]);
    let resp = s
        .send(admin(common::Method::DELETE, "/api/v1/subscriptions/cfg"))
        .await;
    s.expect(&resp, 409, "config subscriptions live in the config");

    let resp = s
        .send(
            s.request(common::Method::POST, WEBHOOK)
                .bearer_auth("admin-token-0001")
                .json(&webhook(vec![alert(
                    "firing",
                    "10.0.0.1:8080",
                    "fp-a",
                    &ts(-60),
                    ZERO_TIME,
                )])),
        )
        .await;
    s.expect(&resp, 200, "ingest");
    let got = wait_events(&s, &r, 1).await;
    let b = &got[0].body;
    assert!(b["fields"]["summary"].is_string(), "{b:#}");
    assert!(b["fields"]["priority"]["name"].is_string(), "{b:#}");
    assert!(b["event_id"].is_string());
    assert_eq!(
        got[0].signature.as_deref(),
        Some(sign(&got[0].raw).as_str())
    );

    let resp = s
        .send(admin(common::Method::DELETE, "/api/v1/subscriptions/jira"))
        .await;
    s.expect(&resp, 204, "unsubscribe");
    let resp = s
        .send(admin(common::Method::DELETE, "/api/v1/subscriptions/jira"))
        .await;
    s.expect(&resp, 404, "gone");
}

/// `GET /api/v1/events`: a live reader sees the incident open and resolve as SSE events.
async fn live_events_over_server_sent_events(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let mut s = Sift::start(&db, &[LOOPBACK, ("SIFT_INCIDENT__RESOLVE_HOLD_OFF", "0s")]);
    let mut resp = s
        .request(common::Method::GET, "/api/v1/events")
        .send()
        .await
        .expect("connect to the event stream");
    assert_eq!(resp.status().as_u16(), 200);
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    let t0 = ts(-60);
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-a",
            &t0,
            ZERO_TIME,
        )]),
    )
    .await;
    post_ok(
        &s,
        &webhook(vec![alert(
            "resolved",
            "10.0.0.1:8080",
            "fp-a",
            &t0,
            &ts(-5),
        )]),
    )
    .await;
    let mut text = String::new();
    let read = tokio::time::timeout(WAIT, async {
        while !text.contains("event: incident.resolved") {
            match resp.chunk().await {
                Ok(Some(c)) => text.push_str(&String::from_utf8_lossy(&c)),
                _ => break,
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no incident.resolved within {WAIT:?}; got:\n{text}"
    );
    let opened = text.find("event: incident.opened").expect("opened event");
    let resolved = text
        .find("event: incident.resolved")
        .expect("resolved event");
    assert!(opened < resolved, "{text}");
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(
        data.iter()
            .any(|d| d["event"] == "incident.opened" && d["incident"]["status"] == "open")
    );
    assert!(data.iter().all(|d| d["event_id"].is_string()));
    // A reader still connected does not hold up a clean shutdown.
    s.stop();
    drop(resp);
}

/// Users' pain #1: Alertmanager sends no "resolved" for an alert silenced after it fired.
/// sift resolves the alert when its `endsAt` passes without a re-send (the daemon's ticks
/// move event time), so the announced incident still gets `incident.resolved`.
async fn a_silenced_alert_still_gets_its_incident_resolved_downstream(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let r = Receiver::new(Mode::Ok);
    let addr = r.serve("127.0.0.1:0".parse().unwrap()).await;
    let s = Sift::start(
        &db,
        &[
            LOOPBACK,
            (
                "SIFT_NOTIFY__WEBHOOKS",
                hooks(&format!("http://{addr}/hook"), json!({})).as_str(),
            ),
            ("SIFT_NOTIFY__POLL_INTERVAL", "50ms"),
            ("SIFT_INCIDENT__RESOLVE_HOLD_OFF", "0s"),
            ("SIFT_INGEST__TICK_INTERVAL", "100ms"),
        ],
    );
    // Firing, with endsAt a little ahead as Prometheus sends it; then silence: no re-send,
    // no resolved.
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-a",
            &ts(-60),
            &ts(2),
        )]),
    )
    .await;
    let got = s
        .eventually(
            WAIT,
            "incident.resolved without a resolved alert",
            || async {
                let u = r.unique();
                (u.last().map(|g| g.body["event"] == "incident.resolved") == Some(true))
                    .then_some(u)
            },
        )
        .await;
    assert_eq!(kinds(&got), ["incident.opened", "incident.resolved"]);
}

/// An https:// receiver whose certificate comes from an in-house CA: trusted once the CA is
/// in notify.ca_file, and the signed event arrives. A receiver whose certificate no trusted
/// CA signed gets nothing; its event is dead-lettered with the reason.
async fn https_receiver_trusted_through_ca_file(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let tls = Tls::new("ITSM in-house CA");
    let ca_file = db.dir.path().join("itsm-ca.pem");
    std::fs::write(&ca_file, &tls.ca_pem).unwrap();
    let good = Receiver::new(Mode::Ok);
    let good_addr = good.serve_tls(&tls).await;
    let rogue = Receiver::new(Mode::Ok);
    let rogue_addr = rogue.serve_tls(&Tls::new("Nobody's CA")).await;
    let subs = json!([
        {"name": "itsm", "url": format!("https://{good_addr}/hook"), "secret": SECRET,
         "timeout": "2s", "max_attempts": 100},
        {"name": "rogue", "url": format!("https://{rogue_addr}/hook"), "timeout": "2s",
         "max_attempts": 2},
    ]);
    let s = Sift::start(
        &db,
        &[
            LOOPBACK,
            ("SIFT_NOTIFY__WEBHOOKS", subs.to_string().as_str()),
            ("SIFT_NOTIFY__CA_FILE", ca_file.to_str().unwrap()),
            ("SIFT_NOTIFY__POLL_INTERVAL", "50ms"),
            ("SIFT_NOTIFY__BACKOFF_BASE", "50ms"),
            ("SIFT_NOTIFY__BACKOFF_MAX", "200ms"),
        ],
    );
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-tls",
            &ts(-60),
            ZERO_TIME,
        )]),
    )
    .await;
    let got = wait_events(&s, &good, 1).await;
    assert_eq!(kinds(&got), ["incident.opened"]);
    assert_eq!(
        got[0].signature.as_deref(),
        Some(sign(&got[0].raw).as_str())
    );
    let dead = s
        .eventually(
            WAIT,
            "the untrusted receiver's event dead-lettered",
            || async {
                let d = outbox(&s, "dead").await;
                (!d.is_empty()).then_some(d)
            },
        )
        .await;
    assert_eq!(dead[0]["subscription"], "rogue");
    let why = dead[0]["last_error"].as_str().unwrap_or("");
    assert!(why.to_lowercase().contains("certificate"), "reason: {why}");
    assert!(
        rogue.got().is_empty(),
        "nothing sent over an untrusted connection"
    );
}

/// A dead-lettered event goes out again on an operator's retry, once the receiver is
/// fixed; only dead events can be retried.
async fn dead_letter_sent_again_once_the_receiver_is_fixed(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    // Fails twice (both attempts of the budget), then answers 200.
    let r = Receiver::new(Mode::FailFirst(2));
    let addr = r.serve("127.0.0.1:0".parse().unwrap()).await;
    let s = start(
        &db,
        &hooks(&format!("http://{addr}/hook"), json!({"max_attempts": 2})),
    );
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-r",
            &ts(-60),
            ZERO_TIME,
        )]),
    )
    .await;
    let dead = outbox_soon(&s, "dead", "a dead-lettered event").await;
    assert_eq!(
        dead[0]["last_error"],
        "receiver answered 500 Internal Server Error"
    );
    let id = dead[0]["id"].as_i64().expect("outbox id");
    let rep = s
        .post(&format!("/api/v1/outbox/{id}/retry"), &json!({}))
        .await;
    s.expect(&rep, 202, "retry a dead event");
    let got = wait_events(&s, &r, 1).await;
    assert_eq!(kinds(&got), ["incident.opened"]);
    let delivered = outbox_soon(&s, "delivered", "the retried event delivered").await;
    assert_eq!(delivered[0]["id"], id);
    let rep = s
        .post(&format!("/api/v1/outbox/{id}/retry"), &json!({}))
        .await;
    s.expect(&rep, 409, "retry a delivered event");
    let rep = s.post("/api/v1/outbox/999999/retry", &json!({})).await;
    s.expect(&rep, 404, "retry an unknown event");
    let rep = s.post("/api/v1/outbox/abc/retry", &json!({})).await;
    s.expect(&rep, 400, "retry a malformed id");
}

/// Delivered events leave the outbox after notify.retention; dead ones stay for the
/// operator.
async fn delivered_events_purged_after_retention_dead_ones_kept(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    let ok = Receiver::new(Mode::Ok);
    let ok_addr = ok.serve("127.0.0.1:0".parse().unwrap()).await;
    let broken = Receiver::new(Mode::FailFirst(usize::MAX));
    let broken_addr = broken.serve("127.0.0.1:0".parse().unwrap()).await;
    let subs = json!([
        {"name": "itsm", "url": format!("http://{ok_addr}/hook"), "timeout": "2s"},
        {"name": "broken", "url": format!("http://{broken_addr}/hook"), "timeout": "2s",
         "max_attempts": 1},
    ]);
    let s = Sift::start(
        &db,
        &[
            LOOPBACK,
            ("SIFT_NOTIFY__WEBHOOKS", subs.to_string().as_str()),
            ("SIFT_NOTIFY__POLL_INTERVAL", "50ms"),
            ("SIFT_NOTIFY__RETENTION", "2s"),
        ],
    );
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-p",
            &ts(-60),
            ZERO_TIME,
        )]),
    )
    .await;
    wait_events(&s, &ok, 1).await;
    outbox_soon(&s, "delivered", "the delivered event listed").await;
    outbox_soon(&s, "dead", "the dead event").await;
    s.eventually(WAIT, "the delivered event purged", || async {
        outbox(&s, "delivered").await.is_empty().then_some(())
    })
    .await;
    let dead = outbox(&s, "dead").await;
    assert_eq!(dead.len(), 1, "dead events are kept: {dead:#?}");
    assert_eq!(dead[0]["subscription"], "broken");
}

/// A dead `incident.opened` is not sent again once the incident's later `resolved` has
/// reached the receiver: it would roll the receiver's record back to an older state.
async fn a_stale_dead_letter_is_not_sent_again(backend: Backend) {
    let Some(db) = Db::new(backend).await else {
        return;
    };
    // One flag per backend: both variants of this scenario may run at once.
    static DOWN_SQLITE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    static DOWN_PG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    let down = match backend {
        Backend::Sqlite => &DOWN_SQLITE,
        Backend::Postgres => &DOWN_PG,
    };
    let r = Receiver::new(Mode::DownWhile(down));
    let addr = r.serve("127.0.0.1:0".parse().unwrap()).await;
    let s = start(
        &db,
        &hooks(&format!("http://{addr}/hook"), json!({"max_attempts": 2})),
    );
    let started = ts(-60);
    post_ok(
        &s,
        &webhook(vec![alert(
            "firing",
            "10.0.0.1:8080",
            "fp-s",
            &started,
            ZERO_TIME,
        )]),
    )
    .await;
    let dead = outbox_soon(&s, "dead", "the opened event dead").await;
    assert_eq!(dead[0]["event"], "incident.opened");
    down.store(false, Ordering::SeqCst);
    post_ok(
        &s,
        &webhook(vec![alert(
            "resolved",
            "10.0.0.1:8080",
            "fp-s",
            &started,
            &ts(-1),
        )]),
    )
    .await;
    let got = wait_events(&s, &r, 1).await;
    assert_eq!(kinds(&got), ["incident.resolved"]);
    outbox_soon(&s, "delivered", "the resolved event recorded as delivered").await;
    let id = dead[0]["id"].as_i64().unwrap();
    let rep = s
        .post(&format!("/api/v1/outbox/{id}/retry"), &json!({}))
        .await;
    s.expect(&rep, 409, "retry a stale dead event");
    assert!(rep.text.contains("stale"), "{}", rep.text);
    assert_eq!(
        outbox(&s, "dead").await.len(),
        1,
        "the stale event stays dead"
    );
}

/// Subscriptions cannot reach what only sift can: internal addresses are refused when a
/// subscription is made, a name that resolves to one is refused at delivery (a viewer
/// sees that it was blocked, not what answered), and so is a redirect to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_never_reach_internal_addresses() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let target = Receiver::new(Mode::Ok);
    let target_addr = target.serve("127.0.0.1:0".parse().unwrap()).await;
    // An allowed internal receiver that redirects to one that is not allowed.
    let redirect_to = format!("http://{target_addr}/hook");
    let app = Router::new().route(
        "/hook",
        post(move || {
            let to = redirect_to.clone();
            async move { axum::response::Redirect::temporary(&to) }
        }),
    );
    let redirector = tokio::net::TcpListener::bind("127.0.0.3:0").await.unwrap();
    let redirector_addr = redirector.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(redirector, app).await;
    });
    let tokens = json!([{"token": "viewer-token-0001", "role": "viewer"}, {"token": "admin-token-0001", "role": "admin"}]).to_string();
    let s = Sift::start(
        &db,
        &[
            ("SIFT_AUTH__TOKENS", tokens.as_str()),
            ("SIFT_NOTIFY__ALLOW_NETWORKS", r#"["127.0.0.3/32"]"#),
            ("SIFT_NOTIFY__POLL_INTERVAL", "50ms"),
        ],
    );
    let admin = |m, p: &str| s.request(m, p).bearer_auth("admin-token-0001");
    for (url, says) in [
        (format!("http://{target_addr}/hook"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data".to_string(),
            "cloud metadata",
        ),
        ("http://10.0.0.5:5432/".to_string(), "private network"),
        ("http://[::ffff:127.0.0.2]:9400/".to_string(), "loopback"),
    ] {
        let resp = s
            .send(
                admin(common::Method::POST, "/api/v1/subscriptions")
                    .json(&json!({"name": "x", "url": url})),
            )
            .await;
        s.expect(&resp, 422, &format!("subscription to {url}"));
        assert!(resp.text.contains(says), "{url}: {}", resp.text);
    }
    let port = target_addr.port();
    for sub in [
        json!({"name": "by-name", "url": format!("http://localhost:{port}/hook"), "max_attempts": 1}),
        json!({"name": "redirected", "url": format!("http://{redirector_addr}/hook"), "max_attempts": 1}),
    ] {
        let resp = s
            .send(admin(common::Method::POST, "/api/v1/subscriptions").json(&sub))
            .await;
        s.expect(&resp, 201, "a name and an allowed address are taken");
    }
    let resp = s
        .send(
            admin(common::Method::POST, WEBHOOK).json(&webhook(vec![alert(
                "firing",
                "10.0.0.1:8080",
                "fp-ssrf",
                &ts(-60),
                "0001-01-01T00:00:00Z",
            )])),
        )
        .await;
    s.expect(&resp, 200, "alert");
    let dead = s
        .eventually(Duration::from_secs(20), "both deliveries dead", || async {
            let r = s
                .send(admin(common::Method::GET, "/api/v1/outbox?status=dead"))
                .await;
            let rows = r.body["events"].as_array().cloned().unwrap_or_default();
            (rows.len() >= 2).then_some(rows)
        })
        .await;
    for row in &dead {
        let e = row["last_error"].as_str().unwrap_or_default();
        assert!(e.contains("blocked: "), "{row}");
    }
    let viewed = s
        .send(
            s.request(common::Method::GET, "/api/v1/outbox?status=dead")
                .bearer_auth("viewer-token-0001"),
        )
        .await;
    for row in viewed.body["events"].as_array().unwrap() {
        assert_eq!(row["last_error"], "blocked destination", "{row}");
    }
    assert_eq!(
        target.calls.load(Ordering::SeqCst),
        0,
        "nothing reached the receiver on 127.0.0.1"
    );
}

/// A receiver that is down with a backlog is probed a few times per backoff interval,
/// not once per event; when it comes back, every event is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_is_backed_off_as_a_whole() {
    static DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let r = Receiver::new(Mode::DownWhile(&DOWN));
    let addr = r.serve("127.0.0.1:0".parse().unwrap()).await;
    let s = Sift::start(
        &db,
        &[
            LOOPBACK,
            (
                "SIFT_NOTIFY__WEBHOOKS",
                hooks(
                    &format!("http://{addr}/hook"),
                    json!({"events": ["incident.opened"]}),
                )
                .as_str(),
            ),
            ("SIFT_NOTIFY__POLL_INTERVAL", "50ms"),
            ("SIFT_NOTIFY__CONCURRENCY", "2"),
            ("SIFT_NOTIFY__BACKOFF_BASE", "2s"),
            ("SIFT_NOTIFY__BACKOFF_MAX", "2s"),
        ],
    );
    // 40 incidents (one per unknown host), 40 events waiting for the receiver.
    let alerts: Vec<Value> = (0..40)
        .map(|i| {
            let mut a = alert(
                "firing",
                &format!("10.9.0.{i}:8080"),
                &format!("fp-{i}"),
                &ts(-60),
                "0001-01-01T00:00:00Z",
            );
            a["labels"]["alertname"] = json!(format!("Down{i}"));
            a
        })
        .collect();
    post_ok(&s, &webhook(alerts)).await;
    s.eventually(Duration::from_secs(10), "first probes", || async {
        (r.calls.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = r.calls.load(Ordering::SeqCst);
    // Each event on its own would have been tried at least once by now (40 calls);
    // backed off as a whole, a probe of `concurrency` per wait of 1-2 s.
    assert!(calls <= 10, "{calls} requests to a dead receiver in ~3 s");
    DOWN.store(false, Ordering::SeqCst);
    s.eventually(
        Duration::from_secs(30),
        "all 40 delivered once it is back",
        || async { (r.got.lock().unwrap().len() >= 40).then_some(()) },
    )
    .await;
}

/// `notify.max_subscriptions` bounds what the API will hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_capped() {
    let Some(db) = Db::new(Backend::Sqlite).await else {
        return;
    };
    let s = Sift::start(&db, &[("SIFT_NOTIFY__MAX_SUBSCRIPTIONS", "2")]);
    for (i, want) in [(0, 201), (1, 201), (2, 422)] {
        let sub =
            json!({"name": format!("s{i}"), "url": format!("https://itsm{i}.example.com/hook")});
        let r = s.post("/api/v1/subscriptions", &sub).await;
        s.expect(&r, want, &format!("subscription {i}"));
    }
    // Replacing one that exists is not a new one.
    let r = s
        .post(
            "/api/v1/subscriptions",
            &json!({"name": "s1", "url": "https://itsm9.example.com/hook"}),
        )
        .await;
    s.expect(&r, 201, "replace");
}
