//! The Prometheus registry and every `sift_*` metric. Names follow
//! `sift_<noun>_<unit>_total` / `_seconds` / `_bytes`, with few labels.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::incident::TimelineKind;

pub struct Metrics {
    registry: Registry,
    /// by `source` and `outcome` (new, duplicate, resolved, rejected)
    pub alerts_received: IntCounterVec,
    pub incidents_opened: IntCounter,
    pub incidents_resolved: IntCounter,
    pub incidents_open: IntGauge,
    /// Time from a request's alerts reaching the writer queue to being durable.
    pub ingest_seconds: HistogramVec,
    /// by `op`
    pub store_seconds: HistogramVec,
    /// Alerts per committed transaction (group commit size).
    pub batch_alerts: Histogram,
    /// by `route`, `method`, `status`
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    pub queue_depth: IntGauge,
    pub state_reloads: IntCounter,
    /// Write transactions of the writer that failed (full disk, store down, …).
    pub store_write_errors: IntCounter,
    pub journal_entries: IntCounter,
    pub journal_flushed: IntCounter,
    /// Kafka messages sent to the dead-letter topic, by source `topic`.
    pub kafka_dead_letters: IntCounterVec,
    /// Kafka consumer lag (high watermark minus position), by `topic` and `partition`.
    pub kafka_consumer_lag: IntGaugeVec,
    /// Problem candidates awaiting review (status `candidate`) after the last run.
    pub problem_candidates_open: IntGauge,
    /// Duration of problem clustering runs (load, cluster, store).
    pub problem_cluster_seconds: Histogram,
    /// Outbox events not yet delivered nor dead (all subscriptions).
    pub outbox_pending: IntGauge,
    /// Delivery attempts, by `subscription` and `outcome` (delivered, failed, dead).
    pub notify_deliveries: IntCounterVec,
    /// Opened → acknowledged, by `priority`.
    pub time_to_acknowledge: HistogramVec,
    /// Opened → resolved, by `priority`.
    pub time_to_resolve: HistogramVec,
    /// SLA breaches, by `priority` and `target` (respond, resolve).
    pub sla_breaches: IntCounterVec,
}

/// Buckets for human-scale durations: a minute to a week.
const INCIDENT_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0, 604800.0,
];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            alerts_received: IntCounterVec::new(
                Opts::new(
                    "sift_alerts_received_total",
                    "Alert events received, by source and outcome",
                ),
                &["source", "outcome"],
            )
            .expect("static metric"),
            incidents_opened: IntCounter::new("sift_incidents_opened_total", "Incidents opened")
                .expect("static metric"),
            incidents_resolved: IntCounter::new(
                "sift_incidents_resolved_total",
                "Incidents resolved automatically",
            )
            .expect("static metric"),
            incidents_open: IntGauge::new(
                "sift_incidents_open",
                "Incidents open or acknowledged (this daemon's view)",
            )
            .expect("static metric"),
            ingest_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "sift_ingest_duration_seconds",
                    "From accepted body to durable, per request",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["source"],
            )
            .expect("static metric"),
            store_seconds: HistogramVec::new(
                HistogramOpts::new("sift_store_duration_seconds", "Store operations, by op")
                    .buckets(LATENCY_BUCKETS.to_vec()),
                &["op"],
            )
            .expect("static metric"),
            batch_alerts: Histogram::with_opts(
                HistogramOpts::new(
                    "sift_store_batch_alerts",
                    "Alert records written per committed transaction",
                )
                .buckets(vec![1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0]),
            )
            .expect("static metric"),
            http_requests: IntCounterVec::new(
                Opts::new(
                    "sift_http_requests_total",
                    "HTTP requests, by route, method and status",
                ),
                &["route", "method", "status"],
            )
            .expect("static metric"),
            http_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "sift_http_request_duration_seconds",
                    "HTTP request latency, by route",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"],
            )
            .expect("static metric"),
            queue_depth: IntGauge::new(
                "sift_ingest_queue_depth",
                "Requests waiting for the writer",
            )
            .expect("static metric"),
            journal_entries: IntCounter::new(
                "sift_resend_journal_entries_total",
                "Re-sends stored as journal entries (count and endsAt only) instead of row rewrites",
            )
            .expect("valid metric"),
            journal_flushed: IntCounter::new(
                "sift_resend_journal_flushed_total",
                "Alert rows rewritten to fold in their journaled re-sends",
            )
            .expect("valid metric"),
            state_reloads: IntCounter::new(
                "sift_state_reloads_total",
                "Times this daemon re-read state another daemon wrote to the shared store",
            )
            .expect("static metric"),
            store_write_errors: IntCounter::new(
                "sift_store_write_errors_total",
                "Write transactions that failed and were rolled back (full disk, store down, ...)",
            )
            .expect("static metric"),
            kafka_dead_letters: IntCounterVec::new(
                Opts::new(
                    "sift_kafka_dead_letters_total",
                    "Kafka messages that could not be parsed, sent to the dead-letter topic",
                ),
                &["topic"],
            )
            .expect("static metric"),
            kafka_consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "sift_kafka_consumer_lag",
                    "Messages between this consumer's position and the partition's high watermark",
                ),
                &["topic", "partition"],
            )
            .expect("static metric"),
            problem_candidates_open: IntGauge::new(
                "sift_problem_candidates_open",
                "Problem candidates awaiting review after the last clustering run",
            )
            .expect("static metric"),
            problem_cluster_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "sift_problem_cluster_duration_seconds",
                    "Problem clustering runs, load to store",
                )
                .buckets(vec![0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
            )
            .expect("static metric"),
            outbox_pending: IntGauge::new(
                "sift_outbox_pending",
                "Outbound incident events waiting for delivery",
            )
            .expect("static metric"),
            notify_deliveries: IntCounterVec::new(
                Opts::new(
                    "sift_notify_deliveries_total",
                    "Webhook delivery attempts, by subscription and outcome (delivered, failed, dead)",
                ),
                &["subscription", "outcome"],
            )
            .expect("static metric"),
            time_to_acknowledge: HistogramVec::new(
                HistogramOpts::new(
                    "sift_incident_time_to_acknowledge_seconds",
                    "From incident opened to acknowledged (event time), by priority",
                )
                .buckets(INCIDENT_BUCKETS.to_vec()),
                &["priority"],
            )
            .expect("static metric"),
            time_to_resolve: HistogramVec::new(
                HistogramOpts::new(
                    "sift_incident_time_to_resolve_seconds",
                    "From incident opened to resolved (event time), by priority",
                )
                .buckets(INCIDENT_BUCKETS.to_vec()),
                &["priority"],
            )
            .expect("static metric"),
            sla_breaches: IntCounterVec::new(
                Opts::new(
                    "sift_incident_sla_breaches_total",
                    "Incident SLA targets missed, by priority and target (respond, resolve)",
                ),
                &["priority", "target"],
            )
            .expect("static metric"),
            registry,
        };
        for c in [
            Box::new(m.alerts_received.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.incidents_opened.clone()),
            Box::new(m.incidents_resolved.clone()),
            Box::new(m.incidents_open.clone()),
            Box::new(m.ingest_seconds.clone()),
            Box::new(m.store_seconds.clone()),
            Box::new(m.batch_alerts.clone()),
            Box::new(m.http_requests.clone()),
            Box::new(m.http_seconds.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.state_reloads.clone()),
            Box::new(m.store_write_errors.clone()),
            Box::new(m.journal_entries.clone()),
            Box::new(m.journal_flushed.clone()),
            Box::new(m.kafka_dead_letters.clone()),
            Box::new(m.kafka_consumer_lag.clone()),
            Box::new(m.problem_candidates_open.clone()),
            Box::new(m.problem_cluster_seconds.clone()),
            Box::new(m.outbox_pending.clone()),
            Box::new(m.notify_deliveries.clone()),
            Box::new(m.time_to_acknowledge.clone()),
            Box::new(m.time_to_resolve.clone()),
            Box::new(m.sla_breaches.clone()),
        ] {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// Lifecycle metrics from a committed batch's timeline.
    pub fn observe_incidents(
        &self,
        incidents: &[&crate::incident::Incident],
        timeline: &[crate::incident::TimelineEntry],
    ) {
        for e in timeline {
            let Some(inc) = incidents.iter().find(|i| i.id == e.incident_id) else {
                continue;
            };
            let p = inc.priority.to_string();
            let since_open = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| (t - inc.opened_at).num_milliseconds().max(0) as f64 / 1000.0)
            };
            match e.kind {
                TimelineKind::Acknowledged => {
                    if let Some(s) = since_open(inc.acknowledged_at) {
                        self.time_to_acknowledge
                            .with_label_values(&[p.as_str()])
                            .observe(s);
                    }
                }
                TimelineKind::Resolved => {
                    if let Some(s) = since_open(inc.resolved_at) {
                        self.time_to_resolve
                            .with_label_values(&[p.as_str()])
                            .observe(s);
                    }
                }
                TimelineKind::SlaRespondBreached => self
                    .sla_breaches
                    .with_label_values(&[p.as_str(), "respond"])
                    .inc(),
                TimelineKind::SlaResolveBreached => self
                    .sla_breaches
                    .with_label_values(&[p.as_str(), "resolve"])
                    .inc(),
                _ => {}
            }
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding our own registry into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
