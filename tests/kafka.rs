//! Kafka intake, black-box: the real `sift serve` binary consuming from rdkafka's
//! in-process mock cluster (`rdkafka::mocking::MockCluster`), checked through the HTTP API
//! and the dead-letter topic. Each test has an overall timeout, so nothing hangs.
//!
//! The mock cluster is not `Send`; the tests run on tokio's current-thread runtime, which
//! keeps it on one thread. The first message is consumed a few seconds after subscribe
//! (the group's initial rebalance delay).

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use common::{Backend, Db, Sift, metric, parse_prometheus};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const OVERALL: Duration = Duration::from_secs(180);

/// Runs a scenario under the overall timeout.
async fn bounded(f: impl Future<Output = ()>) {
    if tokio::time::timeout(OVERALL, f).await.is_err() {
        panic!("scenario did not finish within {OVERALL:?}");
    }
}

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "20000000")
        .create()
        .expect("producer")
}

async fn produce(p: &FutureProducer, topic: &str, partition: Option<i32>, payload: &[u8]) {
    let mut rec = FutureRecord::<(), [u8]>::to(topic).payload(payload);
    if let Some(part) = partition {
        rec = rec.partition(part);
    }
    p.send(rec, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .expect("produce to the mock cluster");
}

/// `SIFT_*` settings for a consumer of `topics` (name, format) on `brokers`.
fn kafka_env(brokers: &str, topics: &[(&str, &str)]) -> Vec<(String, String)> {
    let topics: Vec<Value> = topics
        .iter()
        .map(|(n, f)| json!({"name": n, "format": f}))
        .collect();
    vec![
        ("SIFT_KAFKA__BROKERS".into(), brokers.into()),
        ("SIFT_KAFKA__TOPICS".into(), Value::from(topics).to_string()),
        ("SIFT_KAFKA__GROUP_ID".into(), "sift-test".into()),
        ("SIFT_KAFKA__DEAD_LETTER_TOPIC".into(), "dlq".into()),
        ("SIFT_LOG__LEVEL".into(), "sift=debug,info".into()),
        // A killed consumer is noticed after the session timeout: keep it short here.
        (
            "SIFT_KAFKA__CLIENT".into(),
            r#"{"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}"#.into(),
        ),
    ]
}

fn start(db: &Db, env: &[(String, String)]) -> Sift {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Sift::start(db, &env)
}

fn list_alert(name: &str, instance: &str) -> Value {
    json!([{"labels": {"alertname": name, "instance": instance, "severity": "critical"},
            "annotations": {"summary": "from kafka"}}])
}

fn webhook(name: &str, status: &str, fingerprint: &str) -> Value {
    json!({"version": "4", "status": status, "receiver": "kafka", "groupLabels": {},
           "alerts": [{"status": status, "labels": {"alertname": name, "host": "web-01"},
                       "annotations": {}, "startsAt": "2026-11-24T10:00:00Z",
                       "endsAt": if status == "resolved" { "2026-11-24T10:05:00Z" } else { "0001-01-01T00:00:00Z" },
                       "fingerprint": fingerprint}]})
}

fn pd_trigger(key: &str) -> Value {
    json!({"routing_key": "r", "event_action": "trigger", "dedup_key": key,
           "payload": {"summary": "queue backlog", "source": "mq-01", "severity": "error"}})
}

/// Waits until the alert list satisfies `ok`; returns it by fingerprint.
async fn alerts_until(
    s: &Sift,
    what: &str,
    ok: impl Fn(&BTreeMap<String, Value>) -> bool,
) -> BTreeMap<String, Value> {
    s.eventually(WAIT, what, || {
        let ok = &ok;
        async move {
            let by_fp: BTreeMap<String, Value> = s
                .alerts()
                .await
                .into_iter()
                .map(|a| (a["fingerprint"].as_str().unwrap_or_default().to_string(), a))
                .collect();
            ok(&by_fp).then_some(by_fp)
        }
    })
    .await
}

#[tokio::test]
async fn each_format_becomes_alerts_and_incidents() {
    bounded(async {
        let Some(db) = Db::new(Backend::Sqlite).await else {
            return;
        };
        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        for t in ["am", "list", "pd", "ce", "dlq"] {
            cluster.create_topic(t, 2, 1).expect("create topic");
        }
        let s = start(
            &db,
            &kafka_env(
                &brokers,
                &[
                    ("am", "alertmanager_webhook"),
                    ("list", "alert_list"),
                    ("pd", "pagerduty"),
                    ("ce", "cloudevents"),
                ],
            ),
        );
        let p = producer(&brokers);
        produce(&p, "am", None, webhook("WebDown", "firing", "fp-am").to_string().as_bytes()).await;
        produce(&p, "list", None, list_alert("NodeDown", "10.0.0.9:9100").to_string().as_bytes()).await;
        produce(&p, "pd", None, pd_trigger("pd-1").to_string().as_bytes()).await;
        let ce = json!({"specversion": "1.0", "id": "e1", "source": "/monitoring",
                        "type": "com.example.alertmanager.webhook", "datacontenttype": "application/json",
                        "data": webhook("CacheDown", "firing", "fp-ce")});
        produce(&p, "ce", None, ce.to_string().as_bytes()).await;

        let alerts = alerts_until(&s, "one alert from each topic", |a| a.len() == 4).await;
        for (fp, a) in &alerts {
            assert_eq!(a["source"], "kafka", "{fp}: {a}");
            assert_eq!(a["status"], "firing", "{fp}: {a}");
            assert!(a["incident_id"].is_string(), "{fp} has an incident: {a}");
        }
        assert!(alerts.contains_key("fp-am") && alerts.contains_key("fp-ce") && alerts.contains_key("pd-1"));
        assert!(!s.incidents().await.is_empty());

        // A resolved webhook and a PagerDuty resolve resolve their alerts.
        produce(&p, "am", None, webhook("WebDown", "resolved", "fp-am").to_string().as_bytes()).await;
        let resolve = json!({"routing_key": "r", "event_action": "resolve", "dedup_key": "pd-1"});
        produce(&p, "pd", None, resolve.to_string().as_bytes()).await;
        alerts_until(&s, "fp-am and pd-1 resolved", |a| {
            a.get("fp-am").is_some_and(|x| x["status"] == "resolved")
                && a.get("pd-1").is_some_and(|x| x["status"] == "resolved")
        })
        .await;
        // Consumer lag per partition, from the statistics librdkafka reports every 5 s: all
        // consumed, so the partition of `am` that holds messages reports 0 (an empty
        // partition has no position yet, so no lag to report).
        s.eventually(WAIT, "sift_kafka_consumer_lag 0 for am", || async {
            let samples = parse_prometheus(&s.get("/metrics").await.text).ok()?;
            let parts: Vec<f64> = samples
                .iter()
                .filter(|x| x.name == "sift_kafka_consumer_lag" && x.label("topic") == Some("am"))
                .map(|x| x.value)
                .collect();
            (!parts.is_empty() && parts.iter().all(|v| *v == 0.0)).then_some(())
        })
        .await;
        // A graceful stop commits, leaves the group and exits.
        let mut s = s;
        s.stop();
        drop(p);
    })
    .await;
}

/// Every format in the registry, by its name in `kafka.topics[].format`, is consumed: one
/// topic per format, each given the format's example body (a format added to the registry
/// is covered without editing this test).
#[tokio::test]
async fn every_registered_format_is_consumed_from_its_topic() {
    bounded(async {
        let Some(db) = Db::new(Backend::Sqlite).await else {
            return;
        };
        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        let formats = sift::sources::registry::FORMATS;
        for f in formats {
            cluster.create_topic(f.name, 1, 1).expect("create topic");
        }
        cluster.create_topic("dlq", 1, 1).expect("create topic");
        let topics: Vec<(&str, &str)> = formats.iter().map(|f| (f.name, f.name)).collect();
        let s = start(&db, &kafka_env(&brokers, &topics));
        let p = producer(&brokers);
        for f in formats {
            produce(&p, f.name, None, f.example.as_bytes()).await;
        }
        let alerts = alerts_until(&s, "one alert from each format's topic", |a| {
            a.len() == formats.len()
        })
        .await;
        for (fp, a) in &alerts {
            assert_eq!(a["source"], "kafka", "{fp}: {a}");
        }
        let mut s = s;
        s.stop();
        drop(p);
    })
    .await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_topic_and_consumption_continues() {
    bounded(async {
        let Some(db) = Db::new(Backend::Sqlite).await else {
            return;
        };
        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        for t in ["list", "ce", "dlq"] {
            cluster.create_topic(t, 1, 1).expect("create topic");
        }
        let s = start(
            &db,
            &kafka_env(&brokers, &[("list", "alert_list"), ("ce", "cloudevents")]),
        );
        let p = producer(&brokers);
        // Over sift's 1 MiB limit. (The mock broker does not deliver a 10 MB message at all; the
        // 10 MB case is covered by the decode unit test.)
        let big = vec![b' '; 2 * 1024 * 1024];
        let unknown = json!({"specversion": "1.0", "id": "x", "source": "s", "type": "t",
                             "format": "zip", "data": []});
        let poison: Vec<(&str, Vec<u8>)> = vec![
            ("list", b"not json".to_vec()),
            ("list", br#"{"alerts": "wrong shape"}"#.to_vec()),
            ("list", Vec::new()),
            ("list", big),
            ("ce", unknown.to_string().into_bytes()),
        ];
        for (t, body) in &poison {
            produce(&p, t, Some(0), body).await;
        }
        // After the poison, on the same partitions, good messages still get through.
        produce(
            &p,
            "list",
            Some(0),
            list_alert("AfterPoison", "h1").to_string().as_bytes(),
        )
        .await;
        let ce = json!({"specversion": "1.0", "id": "ok", "source": "s", "type": "t",
                        "format": "alert_list", "data": list_alert("AfterPoisonCe", "h2")});
        produce(&p, "ce", Some(0), ce.to_string().as_bytes()).await;
        alerts_until(&s, "the good messages after the poison", |a| a.len() == 2).await;

        let samples = s
            .eventually(WAIT, "dead-letter metric at 5", || async {
                let text = s.get("/metrics").await.text;
                let samples = parse_prometheus(&text).ok()?;
                let n = metric(
                    &samples,
                    "sift_kafka_dead_letters_total",
                    &[("topic", "list")],
                ) + metric(
                    &samples,
                    "sift_kafka_dead_letters_total",
                    &[("topic", "ce")],
                );
                (n == 5.0).then_some(samples)
            })
            .await;
        assert_eq!(
            metric(
                &samples,
                "sift_kafka_dead_letters_total",
                &[("topic", "ce")]
            ),
            1.0
        );

        // The dead-letter topic holds each poison message with the reason and its origin.
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "dlq-reader")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        c.subscribe(&["dlq"]).expect("subscribe");
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + WAIT;
        while seen.len() < poison.len() && std::time::Instant::now() < deadline {
            let Some(m) = c.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m.expect("dlq message");
            let mut h = BTreeMap::new();
            if let Some(hs) = m.headers() {
                for x in hs.iter() {
                    h.insert(
                        x.key.to_string(),
                        String::from_utf8_lossy(x.value.unwrap_or_default()).to_string(),
                    );
                }
            }
            seen.push((h, m.payload().map(<[u8]>::len).unwrap_or(0)));
        }
        drop(c);
        assert_eq!(seen.len(), poison.len(), "dead letters: {seen:#?}");
        for (h, _) in &seen {
            assert!(
                !h.get("sift-error").cloned().unwrap_or_default().is_empty(),
                "{h:?}"
            );
            assert!(
                h.contains_key("sift-original-topic") && h.contains_key("sift-original-offset"),
                "{h:?}"
            );
        }
        let reasons: Vec<&str> = seen.iter().map(|(h, _)| h["sift-error"].as_str()).collect();
        assert!(reasons.iter().any(|r| r.contains("exceeds")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("empty")), "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.contains("unknown format")),
            "{reasons:?}"
        );
        let (_, big_len) = seen
            .iter()
            .find(|(h, _)| h["sift-error"].contains("exceeds"))
            .expect("oversized dead letter");
        assert_eq!(
            *big_len, 0,
            "an oversized message is dead-lettered without its payload"
        );
        drop(s);
        drop(p);
    })
    .await;
}

/// The scenarios that matter for the scale-out deployment also run on PostgreSQL (when
/// `TEST_DATABASE_URL` is set).
mod postgres {
    use super::Backend;
    #[tokio::test]
    async fn crash_before_commit_redelivers_without_duplicates() {
        super::crash_before_commit(Backend::Postgres).await
    }
    #[tokio::test]
    async fn two_consumers_in_one_group_share_partitions() {
        super::two_consumers(Backend::Postgres).await
    }
    #[tokio::test]
    async fn a_killed_daemons_partitions_are_taken_over_then_shared_again() {
        super::take_over(Backend::Postgres).await
    }
}

#[tokio::test]
async fn crash_before_commit_redelivers_without_duplicates() {
    crash_before_commit(Backend::Sqlite).await
}

async fn crash_before_commit(backend: Backend) {
    bounded(async {
        let Some(db) = Db::new(backend).await else {
            return;
        };
        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        for t in ["list", "pd", "dlq"] {
            cluster.create_topic(t, 2, 1).expect("create topic");
        }
        let topics = [("list", "alert_list"), ("pd", "pagerduty")];
        // The first daemon stores but never commits: as if it crashed right after storing.
        let mut env = kafka_env(&brokers, &topics);
        env.push(("SIFT_KAFKA__COMMIT_OFFSETS".into(), "false".into()));
        let first = start(&db, &env);
        let p = producer(&brokers);
        for (i, name) in ["A", "B", "C"].iter().enumerate() {
            let body = list_alert(name, &format!("10.0.0.{i}:9100")).to_string();
            produce(&p, "list", Some(i as i32 % 2), body.as_bytes()).await;
        }
        // A keyless PagerDuty trigger: its generated key must be the same on redelivery.
        let keyless = json!({"routing_key": "r", "event_action": "trigger",
                             "payload": {"summary": "disk", "source": "h9", "severity": "warning"}});
        produce(&p, "pd", Some(0), keyless.to_string().as_bytes()).await;
        let before = alerts_until(&first, "4 alerts stored", |a| a.len() == 4).await;
        let incidents_before: Vec<Value> = first.incidents().await;
        drop(first); // SIGKILL

        let second = start(&db, &kafka_env(&brokers, &topics));
        let after = alerts_until(&second, "every message redelivered (count 2)", |a| {
            a.len() == 4 && a.values().all(|x| x["count"] == 2)
        })
        .await;
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "redelivery created no new alert"
        );
        for (fp, a) in &after {
            assert_eq!(a["incident_id"], before[fp]["incident_id"], "{fp}");
        }
        let ids = |v: &[Value]| {
            let mut ids: Vec<String> = v.iter().map(|i| i["id"].to_string()).collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&second.incidents().await), ids(&incidents_before), "no new incident");
        drop(second);
        drop(p);
    })
    .await;
}

#[tokio::test]
async fn two_consumers_in_one_group_share_partitions() {
    two_consumers(Backend::Sqlite).await
}

async fn two_consumers(backend: Backend) {
    bounded(async {
        let Some(db) = Db::new(backend).await else {
            return;
        };
        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        cluster.create_topic("list", 4, 1).expect("create topic");
        cluster.create_topic("dlq", 1, 1).expect("create topic");
        let env = kafka_env(&brokers, &[("list", "alert_list")]);
        let a = start(&db, &env);
        let b = start(&db, &env);
        let split = |s: &Sift| {
            s.log()
                .lines()
                .rev()
                .find(|l| l.contains("partitions assigned"))
                .is_some_and(|l| l.contains("partitions=2"))
        };
        a.eventually(
            WAIT,
            "both daemons to hold 2 of the 4 partitions",
            || async { (split(&a) && split(&b)).then_some(()) },
        )
        .await;
        let p = producer(&brokers);
        for i in 0..20 {
            let body = list_alert(&format!("Alert{i}"), &format!("h{i}")).to_string();
            produce(&p, "list", Some(i % 4), body.as_bytes()).await;
        }
        let alerts = alerts_until(&a, "all 20 alerts stored", |x| x.len() == 20).await;
        assert!(
            alerts.values().all(|x| x["count"] == 1),
            "each stored once: {alerts:#?}"
        );
        for s in [&a, &b] {
            let samples = parse_prometheus(&s.get("/metrics").await.text).expect("metrics");
            let n: f64 = ["new", "duplicate", "resolved"]
                .iter()
                .map(|o| {
                    metric(
                        &samples,
                        "sift_alerts_received_total",
                        &[("source", "kafka"), ("outcome", o)],
                    )
                })
                .sum();
            assert!(n > 0.0, "each daemon consumed its share; log:\n{}", s.log());
        }
        drop(a);
        drop(b);
        drop(p);
    })
    .await;
}

/// The last `partitions assigned` line of a daemon's log names `n` partitions.
fn holds(s: &Sift, n: usize) -> bool {
    s.log()
        .lines()
        .rev()
        .find(|l| l.contains("partitions assigned"))
        .is_some_and(|l| l.contains(&format!("partitions={n}")))
}

/// High availability: of two daemons in one group, one is killed with SIGKILL (it cannot
/// leave the group). The broker expires its session (`session.timeout.ms`, 6 s here) and
/// the survivor takes its partitions over: everything produced meanwhile, to every
/// partition, is stored within a bound. Then the killed one comes back and the partitions
/// are shared again. Nothing is lost; a redelivered message only adds to its alert's
/// count; each alert keeps its one incident. rdkafka's mock cluster expires sessions as
/// Kafka does, so this holds the consumer to the protocol, not to one broker's quirks.
#[tokio::test]
async fn a_killed_daemons_partitions_are_taken_over_then_shared_again() {
    take_over(Backend::Sqlite).await
}

async fn take_over(backend: Backend) {
    bounded(async {
        let Some(db) = Db::new(backend).await else {
            return;
        };
        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        cluster.create_topic("list", 4, 1).expect("create topic");
        cluster.create_topic("dlq", 1, 1).expect("create topic");
        let env = kafka_env(&brokers, &[("list", "alert_list")]);
        let a = start(&db, &env);
        let b = start(&db, &env);
        b.eventually(
            WAIT,
            "both daemons to hold 2 of the 4 partitions",
            || async { (holds(&a, 2) && holds(&b, 2)).then_some(()) },
        )
        .await;
        let p = producer(&brokers);
        let mut sent = 0;
        let mut send = async |n: i32| {
            for _ in 0..n {
                let body = list_alert(&format!("Ha{sent}"), &format!("h{sent}")).to_string();
                produce(&p, "list", Some(sent % 4), body.as_bytes()).await;
                sent += 1;
            }
        };
        send(8).await;
        alerts_until(&b, "the first 8 alerts stored", |x| x.len() == 8).await;

        drop(a); // SIGKILL: no LeaveGroup, its session has to expire
        let killed = std::time::Instant::now();
        send(8).await;
        let all = alerts_until(&b, "b to store what went to a's partitions", |x| {
            x.len() == 16
        })
        .await;
        let took = killed.elapsed();
        eprintln!("take-over: everything sent after the kill stored {took:?} after it");
        assert!(holds(&b, 4), "b holds all 4 partitions; log:\n{}", b.log());
        // Session timeout (6 s) plus a rebalance; far below the test's wait.
        assert!(
            took < Duration::from_secs(30),
            "take-over took {took:?}; log:\n{}",
            b.log()
        );
        let once_or_redelivered = |x: &Value| x["count"] == 1 || x["count"] == 2;
        assert!(all.values().all(once_or_redelivered), "{all:#?}");

        let a = start(&db, &env);
        b.eventually(
            WAIT,
            "the partitions shared again after the rejoin",
            || async { (holds(&a, 2) && holds(&b, 2)).then_some(()) },
        )
        .await;
        send(8).await;
        let all = alerts_until(&a, "all 24 alerts stored", |x| x.len() == 24).await;
        // At-least-once: a message stored but not yet committed when a died is read
        // again by its partition's next owner; it only counts twice.
        assert!(all.values().all(once_or_redelivered), "{all:#?}");
        let incidents = a.incidents().await;
        let mut ids: Vec<String> = all.values().map(|x| x["incident_id"].to_string()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 24, "each alert (its own host) its own incident");
        assert_eq!(incidents.len(), 24, "no incident duplicated");
        for s in [&a, &b] {
            let samples = parse_prometheus(&s.get("/metrics").await.text).expect("metrics");
            let new = metric(
                &samples,
                "sift_alerts_received_total",
                &[("source", "kafka"), ("outcome", "new")],
            );
            assert!(new > 0.0, "each daemon stored some after the rejoin");
        }
        drop(a);
        drop(b);
        drop(p);
    })
    .await;
}

#[tokio::test]
async fn forward_http_produces_by_correlation_domain_then_consumes() {
    bounded(async {
        let Some(db) = Db::new(Backend::Sqlite).await else {
            return;
        };
        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        cluster.create_topic("list", 3, 1).expect("create topic");
        cluster.create_topic("dlq", 1, 1).expect("create topic");
        let mut env = kafka_env(&brokers, &[("list", "alert_list")]);
        env.push(("SIFT_KAFKA__FORWARD_HTTP".into(), "true".into()));
        let s = start(&db, &env);
        let r = s
            .put(
                "/api/v1/cmdb/cis",
                &json!([{"id": "web"}, {"id": "app"}, {"id": "db"}, {"id": "other"}]),
            )
            .await;
        s.expect(&r, 200, "PUT cis");
        let r = s
            .put(
                "/api/v1/cmdb/relations",
                &json!([{"source": "web", "target": "app", "type": "depends_on"},
                        {"source": "app", "target": "db", "type": "depends_on"}]),
            )
            .await;
        s.expect(&r, 200, "PUT relations");

        let hook = json!({"version": "4", "status": "firing", "receiver": "r", "groupLabels": {},
            "alerts": [
                {"status": "firing", "labels": {"alertname": "WebSlow", "host": "web"},
                 "startsAt": "2026-11-24T10:00:00Z", "fingerprint": "fp-web"},
                {"status": "firing", "labels": {"alertname": "Orphan", "host": "nowhere"},
                 "startsAt": "2026-11-24T10:00:00Z", "fingerprint": "fp-orphan"}]});
        let r = s.post("/api/v1/alerts/alertmanager", &hook).await;
        s.expect(&r, 200, "webhook forwarded");
        assert_eq!(r.body["accepted"], 2, "{}", r.text);

        let alerts = alerts_until(&s, "both forwarded alerts consumed and stored", |a| {
            a.contains_key("fp-web") && a.contains_key("fp-orphan")
        })
        .await;
        assert_eq!(alerts["fp-web"]["source"], "kafka");
        assert_eq!(alerts["fp-web"]["ci_id"], "web");
        assert_eq!(alerts["fp-web"]["status"], "firing");
        assert_eq!(
            alerts["fp-web"]["ends_at"],
            Value::Null,
            "no expiry was invented"
        );

        // The messages on the topic are keyed by correlation domain.
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "key-reader")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        c.subscribe(&["list"]).expect("subscribe");
        let mut keys = Vec::new();
        let deadline = std::time::Instant::now() + WAIT;
        while keys.len() < 2 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                keys.push(String::from_utf8_lossy(m.key().unwrap_or_default()).to_string());
            }
        }
        drop(c);
        keys.sort();
        // The orphan names a host the CMDB does not know: keyed by it, as correlation
        // groups it (other alerts on that host must reach the same daemon).
        assert_eq!(keys, ["ci:app", "host:nowhere"]);
        drop(s);
    })
    .await;
}

/// Backpressure: while the store is stuck (another session holds PostgreSQL's write lock)
/// and the write queue is full, the consumer's batch is answered Busy; it waits and
/// retries the same batch, and once the store moves again the message is stored. Nothing
/// is skipped. PostgreSQL only (the lock is how the test makes the store slow).
#[tokio::test]
async fn busy_store_delays_but_never_skips() {
    bounded(async {
        let Some(db) = Db::new(Backend::Postgres).await else {
            return;
        };
        let cluster = MockCluster::new(1).expect("mock cluster");
        let brokers = cluster.bootstrap_servers();
        cluster.create_topic("list", 1, 1).expect("create topic");
        cluster.create_topic("dlq", 1, 1).expect("create topic");
        let mut env = kafka_env(&brokers, &[("list", "alert_list")]);
        env.push(("SIFT_INGEST__QUEUE_CAPACITY".into(), "1".into()));
        env.push(("SIFT_INGEST__TICK_INTERVAL".into(), "1h".into()));
        let s = start(&db, &env);
        s.eventually(
            WAIT,
            "the consumer to be assigned its partition",
            || async { s.log().contains("partitions assigned").then_some(()) },
        )
        .await;

        // Hold the store's write lock: the writer blocks on its next transaction.
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        let mut lock = pool.begin().await.expect("begin");
        sqlx::query("SELECT 1 FROM sift_state FOR UPDATE")
            .execute(&mut *lock)
            .await
            .expect("lock sift_state");

        // Fill the write queue over HTTP until sift answers 503 (queue full).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..3 {
            let client = s.client.clone();
            let url = s.url("/api/v2/alerts");
            let tx = tx.clone();
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&list_alert(&format!("Http{i}"), "h"))
                    .send()
                    .await
                    .map(|r| {
                        let retry = r
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        (r.status().as_u16(), retry)
                    });
                let _ = tx.send(r.unwrap_or((0, None)));
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let first = tokio::time::timeout(WAIT, rx.recv()).await.ok().flatten();
        assert_eq!(
            first,
            Some((503, Some("1".to_owned()))),
            "the third request finds the queue full and is told when to retry"
        );

        let p = producer(&brokers);
        produce(
            &p,
            "list",
            Some(0),
            list_alert("FromKafka", "k").to_string().as_bytes(),
        )
        .await;
        s.eventually(WAIT, "the consumer to be told Busy and retry", || async {
            s.log().contains("retrying the same batch").then_some(())
        })
        .await;
        lock.rollback().await.expect("release the lock");
        pool.close().await;

        let alerts = alerts_until(
            &s,
            "the Kafka alert stored after the store moved again",
            |a| a.values().any(|x| x["labels"]["alertname"] == "FromKafka"),
        )
        .await;
        let kafka: Vec<&Value> = alerts
            .values()
            .filter(|x| x["labels"]["alertname"] == "FromKafka")
            .collect();
        assert_eq!(kafka.len(), 1);
        assert_eq!(kafka[0]["count"], 1, "stored once");
        drop(s);
    })
    .await;
}
