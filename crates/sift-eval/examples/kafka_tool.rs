//! A small Kafka client for the end-to-end scripts (tests/e2e/kafka.sh), on the same
//! librdkafka as sift (Debian's kcat is too old for some brokers' ApiVersions):
//!
//!   kafka_tool produce BROKERS TOPIC FILE   one message per non-empty line; exits after
//!                                           the broker acknowledged every one
//!   kafka_tool dead-letters BROKERS TOPIC   prints the `sift-error` header of every
//!                                           message in TOPIC, one per line

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["produce", brokers, topic, file] => produce(brokers, topic, file).await,
        ["dead-letters", brokers, topic] => dead_letters(brokers, topic),
        _ => bail!("usage: kafka_tool produce BROKERS TOPIC FILE | dead-letters BROKERS TOPIC"),
    }
}

async fn produce(brokers: &str, topic: &str, file: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "30000")
        .create()?;
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        p.send(
            FutureRecord::<(), str>::to(topic).payload(line),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .with_context(|| format!("produce to {topic}"))?;
        n += 1;
    }
    eprintln!("produced {n} messages to {topic}");
    Ok(())
}

fn dead_letters(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("kafka-tool-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    c.subscribe(&[topic])?;
    let mut idle_since = Instant::now();
    let mut seen = 0;
    // Until nothing arrived for 5 s (after the group's first assignment, which nisshi
    // 0.7.0-pre.2 makes in about 20 s for a new group: wait up to 45 s for the first).
    while idle_since.elapsed() < Duration::from_secs(if seen == 0 { 45 } else { 5 }) {
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        idle_since = Instant::now();
        seen += 1;
        let error = m
            .headers()
            .and_then(|h| h.iter().find(|x| x.key == "sift-error"))
            .and_then(|x| x.value)
            .map(|v| String::from_utf8_lossy(v).to_string())
            .unwrap_or_default();
        println!("{error}");
    }
    Ok(())
}
