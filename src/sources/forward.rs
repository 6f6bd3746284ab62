//! The scale-out path (`kafka.forward_http = true`): alerts received over HTTP are not
//! stored here but produced to the alert topic, keyed by correlation domain, and the
//! sender is answered only once the broker acknowledged them. The consumer group (this
//! daemon and its peers) then stores and correlates them.
//!
//! A correlation domain is a connected component of the CMDB topology (relations taken
//! as undirected): alerts that could ever be correlated share it, so they land on one
//! partition and one daemon. Its key is the smallest CI id in the component (the same on
//! every daemon); an alert with no CI is keyed by `cmdb::topology::unmapped_key`, the
//! unknown host it names, else its alertname: the key correlation groups such alerts by. This module decides no correlation; it only routes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use super::alertmanager;
use super::kafka::KafkaConfig;
use crate::alert::{Alert, AlertStatus};
use crate::cmdb::topology::Node;
use crate::cmdb::{CiMapper, Topology};

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("kafka.forward_http needs a topic with format alert_list in kafka.topics")]
    NoAlertListTopic,
    #[error("kafka.forward_http needs kafka.brokers")]
    NoBrokers,
    #[error("the broker did not acknowledge the alerts: {0}")]
    Kafka(#[from] KafkaError),
}

/// Component keys per topology version (recomputed when the CMDB's relations change).
#[derive(Default)]
struct Domains {
    version: u64,
    len: usize,
    /// node → the smallest CI id of its component.
    key: Vec<String>,
}

pub struct Forwarder {
    producer: FutureProducer,
    topic: String,
    topology: Arc<RwLock<Topology>>,
    mapper: CiMapper,
    domains: Mutex<Domains>,
}

impl Forwarder {
    pub fn new(
        cfg: &KafkaConfig,
        topology: Arc<RwLock<Topology>>,
        mapper: CiMapper,
    ) -> Result<Self, ForwardError> {
        let brokers = cfg
            .brokers
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or(ForwardError::NoBrokers)?;
        let topic = cfg
            .topics
            .iter()
            .find(|t| t.format.as_str() == alertmanager::ALERT_LIST.name)
            .map(|t| t.name.clone())
            .ok_or(ForwardError::NoAlertListTopic)?;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &brokers);
        for (k, v) in &cfg.client {
            c.set(k, v);
        }
        // acks=all: a 2xx to the sender means the alert is on every in-sync replica.
        let producer = c
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "20000")
            .create()?;
        Ok(Self {
            producer,
            topic,
            topology,
            mapper,
            domains: Mutex::new(Domains::default()),
        })
    }

    /// The partitioning key of each alert.
    pub fn keys(&self, alerts: &[Alert]) -> Vec<String> {
        let topo = self.topology.read().unwrap_or_else(|p| p.into_inner());
        let mut d = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        if d.version != topo.version() || d.len != topo.len() || d.key.len() != topo.len() {
            *d = Domains {
                version: topo.version(),
                len: topo.len(),
                key: component_keys(&topo),
            };
        }
        alerts
            .iter()
            .map(|a| match self.mapper.map(&topo, &a.labels) {
                Some(n) => format!("ci:{}", d.key[n as usize]),
                // Grouped as correlation groups it: by its host, else by its name.
                None => crate::cmdb::topology::unmapped_key(&a.labels)
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| format!("alertname:{}", a.alertname())),
            })
            .collect()
    }

    /// Produces the alerts (one message per domain, an `alert_list`) and returns once the
    /// broker acknowledged every message.
    pub async fn forward(&self, alerts: &[Alert]) -> Result<(), ForwardError> {
        let keys = self.keys(alerts);
        let mut by_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (a, k) in alerts.iter().zip(keys) {
            by_key.entry(k).or_default().push(wire(a));
        }
        let mut sends = tokio::task::JoinSet::new();
        for (key, list) in by_key {
            let producer = self.producer.clone();
            let topic = self.topic.clone();
            let body = Value::from(list).to_string();
            sends.spawn(async move {
                let rec = FutureRecord::<str, str>::to(&topic)
                    .key(key.as_str())
                    .payload(body.as_str());
                producer
                    .send(rec, Duration::from_secs(20))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            });
        }
        let mut result = Ok(());
        while let Some(r) = sends.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e.into()),
                Err(_) => result = Err(KafkaError::Canceled.into()),
            }
        }
        result
    }
}

/// The alert as an Alertmanager API v2 list item, with its status and fingerprint, so
/// the consumer reads back exactly this alert event.
fn wire(a: &Alert) -> Value {
    let mut v = json!({
        "status": a.status.as_str(),
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": a.starts_at.to_rfc3339(),
        "fingerprint": a.fingerprint.0,
    });
    if let Some(end) = a.ends_at {
        v["endsAt"] = json!(end.to_rfc3339());
    }
    if let Some(u) = &a.generator_url {
        v["generatorURL"] = json!(u);
    }
    if a.status == AlertStatus::Resolved && a.ends_at.is_none() {
        v["endsAt"] = json!(a.starts_at.to_rfc3339());
    }
    v
}

/// For each node, the smallest CI id of its connected component (union-find).
pub fn component_keys(topo: &Topology) -> Vec<String> {
    let n = topo.len();
    let mut parent: Vec<Node> = (0..n as Node).collect();
    fn find(parent: &mut [Node], mut x: Node) -> Node {
        while parent[x as usize] != x {
            let up = parent[parent[x as usize] as usize];
            parent[x as usize] = up;
            x = up;
        }
        x
    }
    for a in 0..n as Node {
        for &b in topo.depends_on(a) {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                // Keep the root with the smaller CI id, so the root names the component.
                if topo.ci(ra).id <= topo.ci(rb).id {
                    parent[rb as usize] = ra;
                } else {
                    parent[ra as usize] = rb;
                }
            }
        }
    }
    (0..n as Node)
        .map(|x| {
            let r = find(&mut parent, x);
            topo.ci(r).id.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdb::CmdbFile;

    #[test]
    fn components_are_named_by_their_smallest_ci() {
        let doc = CmdbFile::parse(
            r#"{"cis":[{"id":"web"},{"id":"db"},{"id":"app"},{"id":"lonely"},{"id":"b2"},{"id":"a2"}],
                "relations":[{"source":"web","target":"app","type":"depends_on"},
                             {"source":"app","target":"db","type":"depends_on"},
                             {"source":"b2","target":"a2","type":"runs_on"}]}"#,
        )
        .unwrap();
        let topo = Topology::from_file(&doc);
        let keys = component_keys(&topo);
        let key = |id: &str| keys[topo.node(id).unwrap() as usize].clone();
        assert_eq!(key("web"), "app");
        assert_eq!(key("db"), "app");
        assert_eq!(key("app"), "app");
        assert_eq!(key("lonely"), "lonely");
        assert_eq!(key("b2"), "a2");
    }

    fn unmapped(name: &str, labels: &[(&str, &str)]) -> Alert {
        let mut l = crate::labels::Labels::new();
        l.insert("alertname".into(), name.into());
        for (k, v) in labels {
            l.insert((*k).into(), (*v).into());
        }
        Alert {
            fingerprint: crate::alert::Fingerprint::of_labels(&l),
            status: crate::alert::AlertStatus::Firing,
            labels: l,
            annotations: Default::default(),
            starts_at: chrono::Utc::now(),
            ends_at: None,
            generator_url: None,
            source: crate::alert::Source::Prometheus,
        }
    }

    #[test]
    fn alerts_on_one_unknown_host_share_a_partition_key_as_correlation_groups_them() {
        let cfg = KafkaConfig {
            brokers: Some("127.0.0.1:9".into()),
            topics: vec![super::super::kafka::KafkaTopic {
                name: "alerts".into(),
                format: crate::sources::registry::TopicFormat::named("alert_list").unwrap(),
            }],
            ..Default::default()
        };
        let topo = Arc::new(RwLock::new(Topology::new()));
        let f = Forwarder::new(&cfg, topo, CiMapper::new(vec!["ci".into()])).unwrap();
        let keys = f.keys(&[
            unmapped("NodeDiskFull", &[("instance", "10.9.9.9:9100")]),
            unmapped("NodeHighLoad", &[("host", "10.9.9.9")]),
            unmapped("NodeHighLoad", &[]),
        ]);
        // Correlation files the first two under one key (the host): one daemon must see both.
        assert_eq!(keys[0], "host:10.9.9.9");
        assert_eq!(keys[1], keys[0]);
        // No CI, no host: the alertname decides, as it does in correlation.
        assert_eq!(keys[2], "alertname:NodeHighLoad");
    }
}
