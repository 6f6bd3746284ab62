//! PagerDuty Events API v2 (`trigger` / `acknowledge` / `resolve`), as any tool that can
//! page PagerDuty sends it, normalized into one `Alert`.
//!
//! Mapping (documented in README):
//! - fingerprint: the event's `dedup_key`, always (it is PagerDuty's own dedup mechanism;
//!   `ingest.dedup_labels.pagerduty` is not applied, since acknowledge and resolve events
//!   carry no payload to hash). A trigger without one gets a generated key, returned to
//!   the sender as PagerDuty does.
//! - labels: `alertname` (payload `class`, else `summary`), `severity`, `host` (payload
//!   `source`) and `service` (payload `component`), both of which the CI mapper tries, plus
//!   `group` and `class` when given.
//! - annotations: `summary`, and `custom_details` as JSON text.
//! - `trigger` is a firing alert starting at payload `timestamp` (else arrival); `resolve`
//!   resolves it at arrival; `acknowledge` changes nothing but the alert's event count
//!   (sift's incidents are acknowledged by operators, not by senders).
//!
//! Errors are collected, not stopped at the first, because PagerDuty answers with the
//! whole list (`{"status":"invalid event","message":...,"errors":[...]}`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::Normalize;
use super::registry::{Doc, Format, Intake, Parsed, Reply};
use crate::alert::{Alert, AlertStatus, Fingerprint, Labels, Source};

/// PagerDuty's event actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

/// One accepted event: the dedup key to answer with and the alert event it became.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: Action,
    pub dedup_key: String,
    pub alert: Alert,
}

/// A rejected event, in PagerDuty's terms: one message and every reason found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}: {}", errors.join("; "))]
pub struct Invalid {
    pub message: String,
    pub errors: Vec<String>,
}

impl Invalid {
    fn one(message: &str, error: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            errors: vec![error.into()],
        }
    }
}

/// PagerDuty's Events API v2: one event per body.
pub const EVENTS: Format = Format {
    name: "pagerduty",
    example: r#"{"routing_key":"R0123456789ABCDEF0123456789ABCDE","event_action":"trigger","payload":{"summary":"ExampleEvent","source":"host-1","severity":"info"}}"#,
    parse: |body, n, key| {
        let e = parse_event(body, n, key)?;
        Ok(Parsed {
            alerts: vec![e.alert],
            dedup_key: Some(e.dedup_key),
        })
    },
    http: Some(Intake {
        path: "/api/v1/alerts/pagerduty",
        source: Source::Pagerduty,
        content_type: "application/json",
        reply: Reply::PagerDuty,
        doc: Doc {
            operation_id: "pagerduty_event",
            summary: "`POST /api/v1/alerts/pagerduty`: one Events API v2 event. Answers as PagerDuty does:\n202 with the dedup_key, or 400 `{\"status\":\"invalid event\",\"message\",\"errors\"}`.",
            body: "One PagerDuty Events API v2 event: `{\"routing_key\", \"event_action\", \"dedup_key\", \"payload\": {\"summary\", \"source\", \"severity\", ...}}`.",
            list: false,
            refused: "Not a valid event, in PagerDuty's error shape.",
        },
    }),
};

/// Largest dedup_key PagerDuty accepts.
const MAX_DEDUP_KEY: usize = 255;

/// Parses one event. `generate_key` makes the dedup_key of a trigger that has none (HTTP:
/// random, as PagerDuty; Kafka: derived from the message position, so a redelivered
/// message gets the same key).
pub fn parse_event(
    body: &[u8],
    n: &Normalize,
    generate_key: impl FnOnce() -> String,
) -> Result<Event, Invalid> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Invalid::one(
            "Event object is invalid",
            "empty body; expected a JSON event object",
        ));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::one("Event object is invalid", format!("invalid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(Invalid::one(
            "Event object is invalid",
            "the event must be a JSON object",
        ));
    };
    event_from_object(&obj, n, generate_key)
}

/// A string field: `Ok(None)` when absent, null or blank; an error when not a string.
fn text(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(format!("'{path}' must be a string"));
            None
        }
    }
}

fn event_from_object(
    obj: &Map<String, Value>,
    n: &Normalize,
    generate_key: impl FnOnce() -> String,
) -> Result<Event, Invalid> {
    let mut errors = Vec::new();
    if text(obj, "routing_key", "routing_key", &mut errors).is_none() && errors.is_empty() {
        errors.push("'routing_key' is missing or blank".into());
    }
    let action = match text(obj, "event_action", "event_action", &mut errors).as_deref() {
        Some("trigger") => Some(Action::Trigger),
        Some("acknowledge") => Some(Action::Acknowledge),
        Some("resolve") => Some(Action::Resolve),
        Some(other) => {
            errors.push(format!(
                "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve'), not {other:?}"
            ));
            None
        }
        None => {
            if !errors.iter().any(|e| e.contains("event_action")) {
                errors.push("'event_action' is missing or blank".into());
            }
            None
        }
    };
    let dedup_key = text(obj, "dedup_key", "dedup_key", &mut errors);
    if dedup_key.as_ref().is_some_and(|k| k.len() > MAX_DEDUP_KEY) {
        errors.push(format!(
            "'dedup_key' is longer than {MAX_DEDUP_KEY} characters"
        ));
    }
    if matches!(action, Some(Action::Acknowledge | Action::Resolve)) && dedup_key.is_none() {
        errors.push("'dedup_key' is missing or blank (required to acknowledge or resolve)".into());
    }
    let now = n.received_at.unwrap_or_else(Utc::now);
    let mut alert = None;
    if action == Some(Action::Trigger) {
        alert = trigger(obj, n, now, &mut errors);
    }
    let Some(action) = action.filter(|_| errors.is_empty()) else {
        return Err(Invalid {
            message: "Event object is invalid".into(),
            errors,
        });
    };
    let dedup_key = dedup_key.unwrap_or_else(generate_key);
    let fingerprint = Fingerprint::from(dedup_key.as_str());
    let alert = match (action, alert) {
        (Action::Trigger, Some(mut a)) => {
            a.fingerprint = fingerprint;
            a
        }
        (Action::Resolve, _) => Alert {
            fingerprint,
            status: AlertStatus::Resolved,
            labels: Labels::new(),
            annotations: Labels::new(),
            starts_at: now,
            ends_at: Some(now),
            generator_url: None,
            source: Source::Pagerduty,
        },
        // An acknowledge is sent as an event the core counts and otherwise ignores: the end
        // of an occurrence older than any current one (the Unix epoch). It can neither
        // resolve nor (re)open anything.
        (Action::Acknowledge, _) | (Action::Trigger, None) => Alert {
            fingerprint,
            status: AlertStatus::Resolved,
            labels: Labels::new(),
            annotations: Labels::new(),
            starts_at: DateTime::UNIX_EPOCH,
            ends_at: Some(DateTime::UNIX_EPOCH),
            generator_url: None,
            source: Source::Pagerduty,
        },
    };
    Ok(Event {
        action,
        dedup_key,
        alert,
    })
}

fn trigger(
    obj: &Map<String, Value>,
    n: &Normalize,
    now: DateTime<Utc>,
    errors: &mut Vec<String>,
) -> Option<Alert> {
    let payload = match obj.get("payload") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => {
            errors.push("'payload' is missing (required to trigger)".into());
            return None;
        }
        Some(_) => {
            errors.push("'payload' must be an object".into());
            return None;
        }
    };
    let before = errors.len();
    let summary = text(payload, "summary", "payload.summary", errors);
    if summary.is_none() && !errors[before..].iter().any(|e| e.contains("summary")) {
        errors.push("'payload.summary' is missing or blank".into());
    }
    if summary.as_ref().is_some_and(|s| s.chars().count() > 1024) {
        errors.push("'payload.summary' is longer than 1024 characters".into());
    }
    let source = text(payload, "source", "payload.source", errors);
    if source.is_none() && !errors[before..].iter().any(|e| e.contains("source")) {
        errors.push("'payload.source' is missing or blank".into());
    }
    let severity = match text(payload, "severity", "payload.severity", errors).as_deref() {
        Some(s @ ("critical" | "error" | "warning" | "info")) => Some(s.to_string()),
        Some(other) => {
            errors.push(format!(
                "'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info'), not {other:?}"
            ));
            None
        }
        None => {
            if !errors[before..].iter().any(|e| e.contains("severity")) {
                errors.push("'payload.severity' is missing or blank".into());
            }
            None
        }
    };
    let component = text(payload, "component", "payload.component", errors);
    let group = text(payload, "group", "payload.group", errors);
    let class = text(payload, "class", "payload.class", errors);
    let timestamp = match text(payload, "timestamp", "payload.timestamp", errors) {
        Some(t) => match DateTime::parse_from_rfc3339(&t) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                errors.push(format!(
                    "'payload.timestamp' is not an ISO 8601 (RFC 3339) timestamp ({t:?}: {e})"
                ));
                None
            }
        },
        None => None,
    };
    let details = match payload.get("custom_details") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => Some(v.to_string()),
    };
    let client_url = text(obj, "client_url", "client_url", errors);
    if errors.len() > before {
        return None;
    }
    let (summary, source, severity) = (summary?, source?, severity?);
    let mut labels = Labels::new();
    labels.insert(
        "alertname".into(),
        class.clone().unwrap_or_else(|| summary.clone()),
    );
    labels.insert("severity".into(), severity);
    labels.insert("host".into(), source);
    if let Some(c) = component {
        labels.insert("service".into(), c);
    }
    if let Some(g) = group {
        labels.insert("group".into(), g);
    }
    if let Some(c) = class {
        labels.insert("class".into(), c);
    }
    let mut annotations = Labels::new();
    annotations.insert("summary".into(), summary);
    if let Some(d) = details {
        annotations.insert("custom_details".into(), d);
    }
    Some(Alert {
        fingerprint: Fingerprint::from(""),
        status: AlertStatus::Firing,
        labels,
        annotations,
        starts_at: n.clamp(timestamp.unwrap_or(now)),
        ends_at: None,
        generator_url: client_url,
        source: Source::Pagerduty,
    })
}

/// A fresh dedup key as PagerDuty makes one: 32 hex digits, unique per call.
pub fn random_dedup_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    // RandomState is seeded from the OS once per process and varied per instance.
    let mut out = String::with_capacity(32);
    for salt in [0u64, 1] {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(seq);
        h.write_i64(nanos);
        h.write_u64(salt);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn n() -> Normalize {
        Normalize::default().at(Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap())
    }

    fn parse(body: &str) -> Result<Event, Invalid> {
        parse_event(body.as_bytes(), &n(), || "generated".into())
    }

    #[test]
    fn trigger_maps_payload() {
        let e = parse(
            r#"{"routing_key":"r","event_action":"trigger","dedup_key":"k1",
                "payload":{"summary":"DB down","source":"db-01","severity":"critical",
                "component":"orders-db","group":"prod","class":"PostgresDown",
                "timestamp":"2026-11-23T09:58:00Z","custom_details":{"free":"x"}},
                "client_url":"http://mon/x"}"#,
        )
        .unwrap();
        assert_eq!(e.dedup_key, "k1");
        let a = e.alert;
        assert_eq!(a.fingerprint.0, "k1");
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(&a.labels["alertname"], "PostgresDown");
        assert_eq!(&a.labels["host"], "db-01");
        assert_eq!(&a.labels["service"], "orders-db");
        assert_eq!(&a.annotations["custom_details"], r#"{"free":"x"}"#);
        assert_eq!(a.starts_at.to_rfc3339(), "2026-11-23T09:58:00+00:00");
        assert_eq!(a.generator_url.as_deref(), Some("http://mon/x"));
    }

    #[test]
    fn trigger_without_key_gets_one() {
        let e = parse(
            r#"{"routing_key":"r","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"info"}}"#,
        )
        .unwrap();
        assert_eq!(e.dedup_key, "generated");
        assert_eq!(&e.alert.labels["alertname"], "s");
        let k = random_dedup_key();
        assert_eq!(k.len(), 32);
        assert_ne!(k, random_dedup_key());
    }

    #[test]
    fn every_reason_is_listed() {
        let e = parse(r#"{"event_action":"trigger","payload":{"source":"h","severity":"bad"}}"#)
            .unwrap_err();
        assert!(e.errors.iter().any(|m| m.contains("routing_key")), "{e}");
        assert!(
            e.errors.iter().any(|m| m.contains("payload.summary")),
            "{e}"
        );
        assert!(
            e.errors.iter().any(|m| m.contains("payload.severity")),
            "{e}"
        );
        let e = parse(r#"{"routing_key":"r","event_action":"resolve"}"#).unwrap_err();
        assert!(e.errors[0].contains("dedup_key"), "{e}");
        assert!(parse("[1]").is_err());
        assert!(parse("").is_err());
        assert!(parse(r#"{"routing_key":"r","event_action":"page"}"#).is_err());
    }

    #[test]
    fn resolve_and_acknowledge() {
        let r = parse(r#"{"routing_key":"r","event_action":"resolve","dedup_key":"k"}"#).unwrap();
        assert_eq!(r.alert.status, AlertStatus::Resolved);
        assert_eq!(r.alert.ends_at, n().received_at);
        let a =
            parse(r#"{"routing_key":"r","event_action":"acknowledge","dedup_key":"k"}"#).unwrap();
        assert_eq!(a.action, Action::Acknowledge);
        assert_eq!(a.alert.ends_at, Some(DateTime::UNIX_EPOCH));
    }
}
