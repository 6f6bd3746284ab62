//! Kafka intake: a consumer-group member that turns messages into alerts, stores them
//! through the pipeline, and commits offsets only after the store said yes.
//!
//! Guarantees: at-least-once (an offset is committed only after its batch is durable, so
//! a crash redelivers, and redelivery is harmless because alerts deduplicate on their
//! fingerprint); a message that cannot be parsed goes to the dead-letter topic with the
//! reason in a `sift-error` header and never stalls its partition; when the store is slow
//! (`Busy`), the same batch is retried, never skipped. Consumer lag per partition comes
//! from librdkafka's statistics (high watermark minus position).
//!
//! `[kafka]` is configured here (`KafkaConfig`, a section of `crate::config::Config`). A
//! topic's format is looked up in `sources::registry`; this module names none.
//!
//! This module decodes and moves messages; it must not decide anything about alerts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use tokio_util::sync::CancellationToken;

use serde::{Deserialize, Serialize};

use super::registry::TopicFormat;
use super::{Normalize, SourceError};
use crate::alert::{Alert, Fingerprint, Source};
use crate::duration::Dur;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineError};

#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("kafka is not configured (kafka.brokers is unset)")]
    NotConfigured,
}

/// A topic to consume, and the registered format (`sources::registry`) of its messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTopic {
    pub name: String,
    pub format: TopicFormat,
}

/// Kafka intake. On when `brokers` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`. Unset: Kafka is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    pub group_id: String,
    pub dead_letter_topic: String,
    pub topics: Vec<KafkaTopic>,
    /// Most messages ingested (and committed) together.
    pub batch_max_messages: usize,
    /// How long a batch waits for more messages after its first.
    pub batch_linger: Dur,
    /// Messages larger than this go to the dead-letter topic unparsed.
    pub max_message_bytes: usize,
    /// Commit offsets after each stored batch. `false` never commits (a dry run that
    /// re-reads everything on restart; the tests use it to simulate a crash before commit).
    pub commit_offsets: bool,
    /// Alerts received over HTTP are produced to the first `alert_list` topic (keyed by
    /// correlation domain) and answered once the broker acknowledged, instead of stored
    /// here; the consumer group stores them. The scale-out deployment.
    pub forward_http: bool,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, ...), passed as given.
    pub client: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: None,
            group_id: "sift".into(),
            dead_letter_topic: "sift-dead-letter".into(),
            topics: Vec::new(),
            batch_max_messages: 500,
            batch_linger: Dur(chrono::Duration::milliseconds(20)),
            max_message_bytes: 1024 * 1024,
            commit_offsets: true,
            forward_http: false,
            client: Default::default(),
        }
    }
}

/// Where a message came from: also the dead-letter headers and the seed of generated keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Decodes one message of a topic of `format` into alert events. Every alert is marked as
/// having come in over Kafka.
pub fn decode(
    format: TopicFormat,
    payload: Option<&[u8]>,
    origin: &Origin,
    n: &Normalize,
    max_bytes: usize,
) -> Result<Vec<Alert>, SourceError> {
    let body = payload.unwrap_or_default();
    if body.len() > max_bytes {
        return Err(SourceError::new(
            "message",
            format!(
                "message of {} bytes exceeds kafka.max_message_bytes ({max_bytes})",
                body.len()
            ),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SourceError::new("message", "empty message; expected JSON"));
    }
    // A keyless PagerDuty trigger gets a key derived from its position, so a redelivered
    // message dedups onto the alert it made the first time.
    let key = || {
        let mut l = crate::alert::Labels::new();
        l.insert(
            "kafka".into(),
            format!("{}/{}/{}", origin.topic, origin.partition, origin.offset),
        );
        Fingerprint::of_labels(&l).0.to_string()
    };
    let mut alerts = (format.format().parse)(body, n, &key)?.alerts;
    for a in &mut alerts {
        a.source = Source::Kafka;
    }
    Ok(alerts)
}

/// librdkafka callbacks: commit what is stored before partitions are taken away, and
/// publish consumer lag from statistics.
pub struct Context {
    metrics: Arc<Metrics>,
    commit: bool,
}

impl ClientContext for Context {
    fn stats(&self, stats: Statistics) {
        for (name, topic) in &stats.topics {
            for (p, part) in &topic.partitions {
                // -1 is librdkafka's internal unassigned partition; lag -1 is "unknown".
                if *p < 0 || part.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .kafka_consumer_lag
                    .with_label_values(&[name.as_str(), p.to_string().as_str()])
                    .set(part.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "kafka: partitions revoked");
            if self.commit {
                // Only offsets of stored batches were stored, so this commits nothing
                // unstored; NoOffset just means nothing new since the last commit.
                match consumer.commit_consumer_state(CommitMode::Sync) {
                    Ok(())
                    | Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) =>
                        {}
                    Err(e) => tracing::warn!(error = %e, "kafka: commit on revoke failed"),
                }
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            tracing::info!(partitions = tpl.count(), "kafka: partitions assigned");
        }
    }
}

/// One message, copied out of librdkafka (a borrowed message must not outlive its
/// consumer, and must not be held across the ingest await).
struct Received {
    origin: Origin,
    payload: Option<Vec<u8>>,
}

/// The consumer: built from config, run until the shutdown token is cancelled.
pub struct KafkaSource {
    consumer: StreamConsumer<Context>,
    producer: FutureProducer,
    formats: HashMap<String, TopicFormat>,
    cfg: KafkaConfig,
    pipeline: Pipeline,
    metrics: Arc<Metrics>,
    normalize: Arc<Normalize>,
}

impl KafkaSource {
    pub fn new(
        cfg: &KafkaConfig,
        pipeline: Pipeline,
        metrics: Arc<Metrics>,
        normalize: Arc<Normalize>,
    ) -> Result<Self, KafkaSourceError> {
        let brokers = cfg
            .brokers
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or(KafkaSourceError::NotConfigured)?;
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", &brokers);
        for (k, v) in &cfg.client {
            base.set(k, v);
        }
        let consumer: StreamConsumer<Context> = base
            .clone()
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000")
            .set("enable.partition.eof", "false")
            .create_with_context(Context {
                metrics: metrics.clone(),
                commit: cfg.commit_offsets,
            })?;
        let producer: FutureProducer = base.clone().set("message.timeout.ms", "30000").create()?;
        let topics: Vec<&str> = cfg.topics.iter().map(|t| t.name.as_str()).collect();
        consumer.subscribe(&topics)?;
        Ok(Self {
            consumer,
            producer,
            formats: cfg
                .topics
                .iter()
                .map(|t| (t.name.clone(), t.format))
                .collect(),
            cfg: cfg.clone(),
            pipeline,
            metrics,
            normalize,
        })
    }

    /// Consumes until `stop` is cancelled, then commits and leaves the group.
    pub async fn run(self, stop: CancellationToken) {
        let linger = self.cfg.batch_linger.std();
        tracing::info!(group = %self.cfg.group_id, topics = ?self.formats.keys().collect::<Vec<_>>(), "kafka consumer started");
        loop {
            let first = tokio::select! {
                m = self.consumer.recv() => m,
                () = stop.cancelled() => break,
            };
            let mut batch = Vec::new();
            match first {
                Ok(m) => batch.push(received(&m)),
                Err(e) => {
                    tracing::warn!(error = %e, "kafka: receive failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            let deadline = tokio::time::Instant::now() + linger;
            while batch.len() < self.cfg.batch_max_messages {
                match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                    Ok(Ok(m)) => batch.push(received(&m)),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "kafka: receive failed");
                        break;
                    }
                    Err(_) => break,
                }
            }
            if !self.handle(batch, &stop).await {
                break;
            }
        }
        if self.cfg.commit_offsets {
            match self.consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => tracing::warn!(error = %e, "kafka: final commit failed"),
            }
        }
        self.consumer.unsubscribe();
        tracing::info!("kafka consumer stopped");
    }

    /// Parses, dead-letters, stores and commits one batch. `false`: stop was asked while
    /// the batch could not be stored (its offsets stay uncommitted; it will be redelivered).
    async fn handle(&self, batch: Vec<Received>, stop: &CancellationToken) -> bool {
        let n = self.normalize.as_ref().clone().at(Utc::now());
        let mut alerts = Vec::new();
        let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in &batch {
            let format = self.formats.get(&r.origin.topic).copied();
            let parsed = match format {
                Some(f) => decode(
                    f,
                    r.payload.as_deref(),
                    &r.origin,
                    &n,
                    self.cfg.max_message_bytes,
                ),
                None => Err(SourceError::new(
                    "topic",
                    format!("no format configured for topic {:?}", r.origin.topic),
                )),
            };
            match parsed {
                Ok(a) => alerts.extend(a),
                Err(e) => {
                    if !self.dead_letter(r, &e, stop).await {
                        return false;
                    }
                }
            }
            let k = (r.origin.topic.clone(), r.origin.partition);
            let off = last.entry(k).or_insert(r.origin.offset);
            *off = (*off).max(r.origin.offset);
        }
        if !alerts.is_empty() && !self.ingest(alerts, stop).await {
            return false;
        }
        if self.cfg.commit_offsets {
            for ((topic, partition), offset) in &last {
                // Fails when the partition was revoked meanwhile: its new owner re-reads
                // these messages, which dedup makes harmless.
                if let Err(e) = self.consumer.store_offset(topic, *partition, *offset) {
                    tracing::debug!(error = %e, topic, partition, "kafka: offset not stored");
                }
            }
            if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Async) {
                tracing::debug!(error = %e, "kafka: commit not sent");
            }
        }
        true
    }

    /// Stores alerts, retrying the same batch while the pipeline is busy or the store fails.
    async fn ingest(&self, alerts: Vec<Alert>, stop: &CancellationToken) -> bool {
        let mut wait = Duration::from_millis(50);
        loop {
            match self.pipeline.ingest(alerts.clone(), Source::Kafka).await {
                Ok(_) => return true,
                Err(PipelineError::ShuttingDown) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?wait, "kafka: batch not stored; retrying the same batch");
                }
            }
            if stop.is_cancelled() {
                return false;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    /// Produces the message unchanged (or, when over the size limit, without payload) to the
    /// dead-letter topic with the reason and its origin in headers; retries until the broker acknowledges (or stop is asked).
    async fn dead_letter(&self, r: &Received, e: &SourceError, stop: &CancellationToken) -> bool {
        tracing::warn!(topic = %r.origin.topic, partition = r.origin.partition, offset = r.origin.offset, error = %e, "kafka: unparsable message to the dead-letter topic");
        let reason = e.to_string();
        let partition = r.origin.partition.to_string();
        let offset = r.origin.offset.to_string();
        let original = r.payload.as_deref().unwrap_or_default();
        // An oversized message would be refused by the broker as well: dead-letter its
        // headers only; the original stays readable at its topic/partition/offset.
        let oversized = original.len() > self.cfg.max_message_bytes;
        let payload = if oversized { &[][..] } else { original };
        let size = original.len().to_string();
        let mut wait = Duration::from_millis(100);
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "sift-error",
                    value: Some(reason.as_bytes()),
                })
                .insert(Header {
                    key: "sift-original-topic",
                    value: Some(r.origin.topic.as_bytes()),
                })
                .insert(Header {
                    key: "sift-original-partition",
                    value: Some(partition.as_bytes()),
                })
                .insert(Header {
                    key: "sift-original-offset",
                    value: Some(offset.as_bytes()),
                })
                .insert(Header {
                    key: "sift-original-size",
                    value: Some(size.as_bytes()),
                });
            let rec = FutureRecord::<[u8], [u8]>::to(&self.cfg.dead_letter_topic)
                .payload(payload)
                .headers(headers);
            match self.producer.send(rec, Duration::from_secs(10)).await {
                Ok(_) => {
                    self.metrics
                        .kafka_dead_letters
                        .with_label_values(&[r.origin.topic.as_str()])
                        .inc();
                    return true;
                }
                Err((err, _)) => {
                    tracing::warn!(error = %err, "kafka: dead-letter produce failed; retrying");
                }
            }
            if stop.is_cancelled() {
                return false;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

fn received<M: Message>(m: &M) -> Received {
    Received {
        origin: Origin {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
        },
        payload: m.payload().map(<[u8]>::to_vec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(name: &str) -> TopicFormat {
        TopicFormat::named(name).expect("a registered format")
    }

    fn origin() -> Origin {
        Origin {
            topic: "alerts".into(),
            partition: 0,
            offset: 7,
        }
    }

    fn dec(f: TopicFormat, body: &str) -> Result<Vec<Alert>, SourceError> {
        decode(
            f,
            Some(body.as_bytes()),
            &origin(),
            &Normalize::default().at(Utc::now()),
            1024,
        )
    }

    #[test]
    fn formats_and_cloudevents() {
        let list = r#"[{"labels":{"alertname":"A"}}]"#;
        assert_eq!(
            dec(fmt("alert_list"), list).unwrap()[0].source,
            Source::Kafka
        );
        let pd = r#"{"routing_key":"r","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"info"}}"#;
        let a = dec(fmt("pagerduty"), pd).unwrap();
        let b = dec(fmt("pagerduty"), pd).unwrap();
        assert_eq!(
            a[0].fingerprint, b[0].fingerprint,
            "same position, same generated key"
        );
        let ce = format!(
            r#"{{"specversion":"1.0","id":"1","source":"x","type":"com.example.pagerduty.event","data":{pd}}}"#
        );
        assert_eq!(dec(fmt("cloudevents"), &ce).unwrap().len(), 1);
        let ce = format!(
            r#"{{"specversion":"1.0","id":"1","source":"x","type":"t","format":"alert_list","data":{list}}}"#
        );
        assert_eq!(dec(fmt("cloudevents"), &ce).unwrap().len(), 1);
    }

    #[test]
    fn poison() {
        for (f, body) in [
            (fmt("alert_list"), ""),
            (fmt("alert_list"), "not json"),
            (fmt("alertmanager_webhook"), "[1]"),
            (
                fmt("cloudevents"),
                r#"{"specversion":"1.0","type":"x","data":[]}"#,
            ),
            (
                fmt("cloudevents"),
                r#"{"specversion":"1.0","format":"zip","data":[]}"#,
            ),
            (fmt("alert_list"), &"x".repeat(2000)),
        ] {
            assert!(dec(f, body).is_err(), "{body:.40}");
        }
        let ten_mb = vec![b'['; 10 * 1024 * 1024];
        let e = decode(
            fmt("alert_list"),
            Some(&ten_mb),
            &origin(),
            &Normalize::default(),
            1024 * 1024,
        )
        .unwrap_err();
        assert!(e.message.contains("exceeds"), "{e}");
    }
}
