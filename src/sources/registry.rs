//! The input formats, in one table. A format is a name (what `kafka.topics[].format` and a
//! CloudEvent's `format` attribute say), a parse function from bytes to alerts, and, when
//! senders post it over HTTP, its intake: route, answer dialect and documentation. The
//! transports read this table and name no format themselves: the HTTP intake
//! (`api::intake`, one handler for every route here), the Kafka consumer (`kafka`) and the
//! config's list of topic formats. A new format is its parser's file plus one line in
//! [`FORMATS`].
//!
//! This module describes formats; it must not do I/O, and must not know a transport's
//! types (axum, rdkafka).

use std::fmt;
use std::sync::LazyLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Normalize, SourceError, alertmanager, cloudevents, pagerduty};
use crate::alert::{Alert, Source};

/// Every format, once. The order is the order names are listed in (config errors, the
/// CloudEvents `format` error).
pub static FORMATS: &[&Format] = &[
    &alertmanager::WEBHOOK,
    &alertmanager::ALERT_LIST,
    &pagerduty::EVENTS,
    &cloudevents::ENVELOPE,
];

/// Makes a dedup key for an event that has none (HTTP: random, as PagerDuty does; Kafka:
/// derived from the message's position, so a redelivered message gets the same key).
pub type MakeKey<'a> = &'a dyn Fn() -> String;

/// One input format.
pub struct Format {
    /// Its name in `kafka.topics[].format` and a CloudEvent's `format` attribute.
    pub name: &'static str,
    /// Bytes to alerts, all or none.
    pub parse: fn(&[u8], &Normalize, MakeKey<'_>) -> Result<Parsed, Refusal>,
    /// The HTTP intake, when senders post this format to sift directly.
    pub http: Option<Intake>,
    /// A small valid body of one firing alert: shows a sender the shape, and lets the
    /// tests reach every format over every transport.
    pub example: &'static str,
}

impl fmt::Debug for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Format")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a body became.
#[derive(Debug)]
pub struct Parsed {
    pub alerts: Vec<Alert>,
    /// The key a sender is answered with (PagerDuty's `dedup_key`), for formats that have one.
    pub dedup_key: Option<String>,
}

impl Parsed {
    pub fn alerts(alerts: Vec<Alert>) -> Self {
        Self {
            alerts,
            dedup_key: None,
        }
    }
}

/// Why a body was refused, in the terms its format's senders expect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// A field of the body (its JSON path) and what is wrong with it.
    #[error(transparent)]
    At(#[from] SourceError),
    /// A PagerDuty event: one message and every reason found.
    #[error(transparent)]
    Event(#[from] pagerduty::Invalid),
}

impl From<Refusal> for SourceError {
    /// For transports that report a refusal as a path and a reason (Kafka's dead letters).
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::At(e) => e,
            Refusal::Event(e) => SourceError::new("event", e.to_string()),
        }
    }
}

/// A format's HTTP route.
pub struct Intake {
    pub path: &'static str,
    /// The source its alerts are recorded (and counted) under.
    pub source: Source,
    /// The request body's media type.
    pub content_type: &'static str,
    pub reply: Reply,
    pub doc: Doc,
}

/// How an HTTP intake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the ingest report; a refusal in sift's error shape (400 naming the path).
    Report,
    /// As PagerDuty's Events API v2: 202 with the dedup key; every refusal (an unreadable
    /// body included) in PagerDuty's error shape.
    PagerDuty,
}

/// The OpenAPI words of an intake route.
pub struct Doc {
    pub operation_id: &'static str,
    /// The operation's summary (its description is the role note `openapi::guarded` adds).
    pub summary: &'static str,
    /// What the request body is.
    pub body: &'static str,
    /// The body is a JSON list (else an object).
    pub list: bool,
    /// When the answer is 400.
    pub refused: &'static str,
}

/// The format named `name`.
pub fn by_name(name: &str) -> Option<&'static Format> {
    FORMATS.iter().copied().find(|f| f.name == name)
}

/// The formats senders post over HTTP.
pub fn http() -> impl Iterator<Item = (&'static Format, &'static Intake)> {
    FORMATS
        .iter()
        .copied()
        .filter_map(|f| f.http.as_ref().map(|h| (f, h)))
}

/// Every format's name, in registry order.
pub fn names() -> &'static [&'static str] {
    static NAMES: LazyLock<Vec<&'static str>> =
        LazyLock::new(|| FORMATS.iter().map(|f| f.name).collect());
    &NAMES
}

/// The sources alerts come in under, as `ingest.dedup_labels` names them: each HTTP
/// intake's, then Kafka's.
pub fn sources() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = http().map(|(_, h)| h.source.as_str()).collect();
    v.dedup();
    v.push(Source::Kafka.as_str());
    v
}

/// `a, b or c`.
pub fn either(names: &[&str]) -> String {
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// A Kafka topic's format, by its name in config (`kafka.topics[].format`).
#[derive(Clone, Copy)]
pub struct TopicFormat(&'static Format);

impl TopicFormat {
    /// The registered format named `name`.
    pub fn named(name: &str) -> Option<Self> {
        by_name(name).map(Self)
    }

    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    pub fn format(self) -> &'static Format {
        self.0
    }
}

impl PartialEq for TopicFormat {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for TopicFormat {}

impl fmt::Debug for TopicFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl Serialize for TopicFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.name)
    }
}

impl<'de> Deserialize<'de> for TopicFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The same words serde's derive used for the enum this replaced.
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = TopicFormat;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("enum TopicFormat")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<TopicFormat, E> {
                TopicFormat::named(name).ok_or_else(|| E::unknown_variant(name, names()))
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_routes_too() {
        let mut n: Vec<_> = names().to_vec();
        n.sort_unstable();
        n.dedup();
        assert_eq!(n.len(), FORMATS.len(), "two formats share a name");
        let mut p: Vec<_> = http().map(|(_, h)| h.path).collect();
        let all = p.len();
        p.sort_unstable();
        p.dedup();
        assert_eq!(p.len(), all, "two formats share a route");
    }

    #[test]
    fn sources_as_config_names_them() {
        assert_eq!(
            sources().join(", "),
            "alertmanager, prometheus, pagerduty, kafka"
        );
    }

    #[test]
    fn either_lists() {
        assert_eq!(either(&["a"]), "a");
        assert_eq!(either(&["a", "b", "c"]), "a, b or c");
    }
}
