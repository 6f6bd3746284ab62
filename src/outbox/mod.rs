//! Durable outbound delivery of incident events to webhook subscribers (the ITSM suite).
//!
//! The pipeline's writer turns each committed batch's incident changes into outbox rows in
//! the same transaction (`pipeline::write::enqueue_events`), so an event exists exactly when its incident change
//! does: a crash can delay an event, never lose it. The delivery task (`crate::delivery`) POSTs due
//! rows in order per (subscription, incident), retries with backoff and jitter, and marks a
//! row dead after the subscription's `max_attempts`. This module must not decide anything
//! about incidents: it only reports what the core decided.

pub mod guard;
pub mod preset;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::duration::Dur;
use crate::incident::{Incident, IncidentStatus, TimelineEntry, TimelineKind};
use crate::view::IncidentView;

/// The incident events a subscription can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    #[serde(rename = "incident.opened")]
    Opened,
    #[serde(rename = "incident.updated")]
    Updated,
    #[serde(rename = "incident.resolved")]
    Resolved,
    #[serde(rename = "incident.closed")]
    Closed,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Opened,
        EventKind::Updated,
        EventKind::Resolved,
        EventKind::Closed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "incident.opened",
            EventKind::Updated => "incident.updated",
            EventKind::Resolved => "incident.resolved",
            EventKind::Closed => "incident.closed",
        }
    }
}

/// How a subscription's request body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The CONTRACT incident plus `event` and `event_id`.
    #[default]
    Generic,
    /// A ServiceNow Table API `incident` record.
    Servicenow,
    /// A Jira Service Management request (`fields.*`).
    Jira,
}

fn default_timeout() -> Dur {
    Dur::secs(10)
}

fn default_max_attempts() -> u32 {
    12
}

/// One webhook subscription (`[[notify.webhooks]]` or `POST /api/v1/subscriptions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub name: String,
    pub url: String,
    /// Empty: every event.
    #[serde(default)]
    pub events: Vec<EventKind>,
    #[serde(default)]
    pub preset: Preset,
    /// Signs bodies: `X-Sift-Signature: sha256=<hex HMAC-SHA256>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Per-request timeout: a hanging receiver costs at most this per attempt.
    #[serde(default = "default_timeout")]
    #[schema(value_type = String, example = "10s")]
    pub timeout: Dur,
    /// Attempts before the event is dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubscriptionError {
    #[error("subscription name must be 1-100 characters of letters, digits, '-', '_' or '.'")]
    BadName,
    #[error("subscription {name}: url must be an http:// or https:// URL with a host, got {url:?}")]
    BadUrl { name: String, url: String },
    #[error("subscription {0}: max_attempts must be at least 1")]
    NoAttempts(String),
    #[error("subscription {0}: timeout must be more than zero")]
    NoTimeout(String),
    #[error("subscription {0} is defined twice")]
    Duplicate(String),
}

impl Subscription {
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 100
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(SubscriptionError::BadName);
        }
        let url_ok = reqwest::Url::parse(&self.url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        if !url_ok {
            return Err(SubscriptionError::BadUrl {
                name: self.name.clone(),
                url: self.url.clone(),
            });
        }
        if self.max_attempts == 0 {
            return Err(SubscriptionError::NoAttempts(self.name.clone()));
        }
        if self.timeout.0 <= chrono::Duration::zero() {
            return Err(SubscriptionError::NoTimeout(self.name.clone()));
        }
        Ok(())
    }

    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }

    /// What the API shows: the secret never leaves sift.
    pub fn redacted(&self, origin: &str) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.remove("secret");
            m.insert("has_secret".into(), json!(self.secret.is_some()));
            m.insert("origin".into(), json!(origin));
        }
        v
    }
}

/// Checks a list of subscriptions (config): each valid, names unique.
pub fn validate_all(subs: &[Subscription]) -> Result<(), SubscriptionError> {
    let mut seen = std::collections::HashSet::new();
    for s in subs {
        s.validate()?;
        if !seen.insert(s.name.as_str()) {
            return Err(SubscriptionError::Duplicate(s.name.clone()));
        }
    }
    Ok(())
}

/// One incident event, before fan-out to subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable per event: the idempotency key receivers dedupe on.
    pub event_id: String,
    pub kind: EventKind,
    pub incident_id: String,
    /// The generic body, JSON text: `{event, event_id, occurred_at, incident}`.
    pub body: String,
}

impl Event {
    /// The event as one Server-Sent Events frame (`event`, `id`, `data`), built once and
    /// shared by every live reader (the body is one line of JSON).
    pub fn sse_frame(&self) -> Arc<[u8]> {
        let mut f = String::with_capacity(self.body.len() + self.event_id.len() + 40);
        f.push_str("event: ");
        f.push_str(self.kind.as_str());
        f.push_str("\nid: ");
        f.push_str(&self.event_id);
        f.push_str("\ndata: ");
        f.push_str(&self.body);
        f.push_str("\n\n");
        Arc::from(f.into_bytes())
    }
}

/// The events a committed batch means, in the order they happened per incident. `seq` is
/// the batch's commit sequence number (unique per transaction, so event ids are unique).
///
/// An incident gets `opened` when it opened in the batch; `resolved` / `closed` when it
/// ended in that state (merged incidents close, with `merged_into`); otherwise `updated`
/// when its timeline moved (alerts joined, priority changed, acknowledged, reopened...).
pub fn events_of(seq: i64, incidents: &[&Incident], timeline: &[TimelineEntry]) -> Vec<Event> {
    // Per incident: the kinds of its timeline entries in this batch, and the latest time.
    let mut moved: std::collections::HashMap<&str, (Vec<&TimelineKind>, DateTime<Utc>)> =
        std::collections::HashMap::new();
    for e in timeline {
        let m = moved
            .entry(e.incident_id.as_str())
            .or_insert_with(|| (Vec::new(), e.at));
        if !m.0.contains(&&e.kind) {
            m.0.push(&e.kind);
        }
        m.1 = m.1.max(e.at);
    }
    let mut out = Vec::new();
    for inc in incidents {
        let Some((kinds, at)) = moved.get(inc.id.as_str()) else {
            continue; // a refresh (re-sent alert, counters) is not news
        };
        let at = *at;
        let opened = kinds.contains(&&TimelineKind::Opened);
        let ended = match inc.status {
            IncidentStatus::Resolved if kinds.contains(&&TimelineKind::Resolved) => {
                Some(EventKind::Resolved)
            }
            IncidentStatus::Closed
                if kinds
                    .iter()
                    .any(|k| matches!(k, TimelineKind::Closed | TimelineKind::Merged)) =>
            {
                Some(EventKind::Closed)
            }
            _ => None,
        };
        let mut push = |kind: EventKind| {
            let event_id = format!("{}:{}:{}", inc.id, seq, kind.as_str());
            out.push(Event {
                body: generic_body(&event_id, kind, at, inc),
                event_id,
                kind,
                incident_id: inc.id.clone(),
            });
        };
        if opened {
            push(EventKind::Opened);
        }
        match ended {
            Some(k) => push(k),
            None if !opened => push(EventKind::Updated),
            None => {}
        }
    }
    out
}

/// The generic body, serialized straight from the incident (no intermediate JSON tree).
#[derive(Serialize)]
struct GenericBody<'a> {
    event: &'static str,
    event_id: &'a str,
    occurred_at: DateTime<Utc>,
    incident: IncidentView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merged_into: Option<&'a Value>,
}

fn generic_body(event_id: &str, kind: EventKind, at: DateTime<Utc>, inc: &Incident) -> String {
    // Our own types always serialize.
    serde_json::to_string(&GenericBody {
        event: kind.as_str(),
        event_id,
        occurred_at: at,
        incident: IncidentView::of(inc),
        merged_into: inc.enrichment.get("merged_into"),
    })
    .unwrap_or_default()
}

/// Where an outbox row is in its delivery; stored (and shown) as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting for its (next) attempt.
    Pending,
    Delivered,
    /// Out of attempts: dead-lettered until an admin retries it.
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }
}

impl std::fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is none of `pending`, `delivered`, `dead`.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unknown outbox status {0:?}")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for OutboxStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(OutboxStatus::Pending),
            "delivered" => Ok(OutboxStatus::Delivered),
            "dead" => Ok(OutboxStatus::Dead),
            _ => Err(UnknownStatus(s.to_string())),
        }
    }
}

/// One outbox row, as the delivery task and `GET /api/v1/outbox` see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboxEntry {
    pub id: i64,
    pub subscription: String,
    pub event_id: String,
    pub event: String,
    pub incident_id: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub next_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub body: String,
}

/// A delivery attempt's result, written back to the row.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered {
        at: DateTime<Utc>,
    },
    Retry {
        attempts: i64,
        next_at: DateTime<Utc>,
        error: String,
    },
    Dead {
        attempts: i64,
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(status: IncidentStatus) -> Incident {
        let t = "2026-11-23T10:00:00Z".parse().unwrap();
        Incident {
            id: "INC0000001".into(),
            title: "t".into(),
            status,
            priority: 3,
            impact: 2,
            urgency: 2,
            root_cause_ci: None,
            root_cause: None,
            ci_ids: Default::default(),
            impacted_services: vec![],
            assignment_group: None,
            assignee: None,
            alert_fingerprints: Default::default(),
            alert_count: 1,
            opened_at: t,
            updated_at: t,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            correlation_key: "k".into(),
            enrichment: Default::default(),
            sla: None,
            resolution_note: None,
        }
    }

    fn entry(kind: &str) -> TimelineEntry {
        TimelineEntry {
            incident_id: "INC0000001".into(),
            at: "2026-11-23T10:00:00Z".parse().unwrap(),
            actor: "sift".into(),
            kind: TimelineKind::parse(kind),
            detail: Value::Null.into(),
        }
    }

    fn kinds(evs: &[Event]) -> Vec<EventKind> {
        evs.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn events_follow_the_timeline() {
        let open = incident(IncidentStatus::Open);
        assert_eq!(
            kinds(&events_of(1, &[&open], &[entry("opened")])),
            [EventKind::Opened]
        );
        assert_eq!(
            kinds(&events_of(2, &[&open], &[entry("alert_joined")])),
            [EventKind::Updated]
        );
        assert!(events_of(3, &[&open], &[]).is_empty());
        let resolved = incident(IncidentStatus::Resolved);
        assert_eq!(
            kinds(&events_of(
                4,
                &[&resolved],
                &[entry("opened"), entry("resolved")]
            )),
            [EventKind::Opened, EventKind::Resolved]
        );
        let mut merged = incident(IncidentStatus::Closed);
        merged
            .enrichment
            .insert("merged_into".into(), json!("INC0000002"));
        let evs = events_of(5, &[&merged], &[entry("merged")]);
        assert_eq!(kinds(&evs), [EventKind::Closed]);
        let body: Value = serde_json::from_str(&evs[0].body).unwrap();
        assert_eq!(body["merged_into"], "INC0000002");
        assert_eq!(evs[0].event_id, "INC0000001:5:incident.closed");
        assert_eq!(body["event_id"], "INC0000001:5:incident.closed");
    }

    #[test]
    fn subscriptions_are_checked() {
        let s: Subscription =
            serde_json::from_value(json!({"name": "itsm", "url": "http://x/y"})).unwrap();
        assert!(s.validate().is_ok());
        assert!(s.wants(EventKind::Closed));
        for url in [
            "https://itsm.example:8443/api/now/table/incident",
            "http://127.0.0.1:9/x",
        ] {
            let ok = Subscription {
                url: url.into(),
                ..s.clone()
            };
            assert!(ok.validate().is_ok(), "{url}");
        }
        for url in [
            "ftp://x",
            "http://",
            "https://",
            "itsm.example/hook",
            "",
            "http//x",
        ] {
            let bad = Subscription {
                url: url.into(),
                ..s.clone()
            };
            assert!(
                matches!(bad.validate(), Err(SubscriptionError::BadUrl { .. })),
                "{url:?} was accepted"
            );
        }
        assert_eq!(
            validate_all(&[s.clone(), s]),
            Err(SubscriptionError::Duplicate("itsm".into()))
        );
    }
}
