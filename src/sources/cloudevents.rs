//! CloudEvents (1.0, structured JSON mode): an envelope whose `data` is a body of another
//! registered format. Kafka topics may carry it (`format = "cloudevents"`); it has no HTTP
//! route of its own.
//!
//! This module unwraps and hands on; it must not parse alerts itself.

use serde_json::Value;

use super::registry::{self, Format, MakeKey, Parsed, Refusal};
use super::{Normalize, SourceError};

pub const ENVELOPE: Format = Format {
    name: "cloudevents",
    example: r#"{"specversion":"1.0","id":"1","source":"example","type":"t","format":"alert_list","data":[{"labels":{"alertname":"ExampleCloudEvent","instance":"host-1"}}]}"#,
    parse,
    http: None,
};

/// Words in an envelope's `type` or `datacontenttype` that say which format its data is in,
/// when it has no `format` attribute; tried in this order (a PagerDuty type may also say
/// "webhook").
const HINTS: [(&str, &str); 4] = [
    ("pagerduty", "pagerduty"),
    ("webhook", "alertmanager_webhook"),
    ("alert_list", "alert_list"),
    ("alerts", "alert_list"),
];

fn parse(body: &[u8], n: &Normalize, key: MakeKey<'_>) -> Result<Parsed, Refusal> {
    let (inner, data) = unwrap(body)?;
    (inner.parse)(&data, n, key)
}

/// Formats an envelope may carry: every registered one but itself.
fn inner_names() -> Vec<&'static str> {
    registry::names()
        .iter()
        .copied()
        .filter(|n| *n != ENVELOPE.name)
        .collect()
}

/// Which format the envelope's `data` is in, and the data's bytes. The format is the
/// `format` extension attribute when present, else read from `type` or `datacontenttype`
/// (see [`HINTS`]).
fn unwrap(body: &[u8]) -> Result<(&'static Format, Vec<u8>), SourceError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| SourceError::new("body", format!("invalid JSON: {e}")))?;
    let Value::Object(env) = v else {
        return Err(SourceError::new(
            "body",
            "a CloudEvent must be a JSON object",
        ));
    };
    if env.get("specversion").and_then(Value::as_str).is_none() {
        return Err(SourceError::new(
            "specversion",
            "missing: not a CloudEvents envelope",
        ));
    }
    let attr = |k: &str| {
        env.get(k)
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
    };
    let format = match attr("format").as_deref() {
        Some(name) => match registry::by_name(name).filter(|f| f.name != ENVELOPE.name) {
            Some(f) => f,
            None => {
                return Err(SourceError::new(
                    "format",
                    format!(
                        "unknown format {name:?}; expected {}",
                        registry::either(&inner_names())
                    ),
                ));
            }
        },
        None => {
            let hints = [attr("type"), attr("datacontenttype")];
            let has = |w: &str| hints.iter().flatten().any(|h| h.contains(w));
            match HINTS
                .iter()
                .find(|(w, _)| has(w))
                .and_then(|(_, name)| registry::by_name(name))
            {
                Some(f) => f,
                None => {
                    return Err(SourceError::new(
                        "type",
                        format!(
                            "unknown format: neither a `format` extension nor a recognizable type ({:?})",
                            attr("type").unwrap_or_default()
                        ),
                    ));
                }
            }
        }
    };
    let data = match (env.get("data"), env.get("data_base64")) {
        (Some(Value::String(s)), _) => s.clone().into_bytes(),
        (Some(d), _) if !d.is_null() => d.to_string().into_bytes(),
        (_, Some(Value::String(b))) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| SourceError::new("data_base64", e.to_string()))?
        }
        _ => return Err(SourceError::new("data", "missing")),
    };
    Ok((format, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_format_names_the_others() {
        let e = unwrap(br#"{"specversion":"1.0","format":"zip","data":[]}"#).unwrap_err();
        assert_eq!(
            e.message,
            r#"unknown format "zip"; expected alertmanager_webhook, alert_list or pagerduty"#
        );
        let e = unwrap(br#"{"specversion":"1.0","format":"cloudevents","data":[]}"#).unwrap_err();
        assert_eq!(e.path, "format", "an envelope does not nest");
    }

    #[test]
    fn pagerduty_hint_wins_over_webhook() {
        let (f, _) =
            unwrap(br#"{"specversion":"1.0","type":"com.pagerduty.webhook","data":{}}"#).unwrap();
        assert_eq!(f.name, "pagerduty");
    }
}
