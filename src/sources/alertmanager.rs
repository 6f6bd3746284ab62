//! Alertmanager webhook (version 4) and the Alertmanager API v2 alert list that Prometheus
//! sends, plus the JSON-lines form of the same alert objects that `sift replay` reads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use super::registry::{Doc, Format, Intake, Parsed, Reply};
use super::{Normalize, SourceError, fast_read};
use crate::alert::{Alert, AlertStatus, Labels, Source};

/// One alert object as both formats carry it.
#[derive(Debug, PartialEq, Deserialize)]
pub struct WireAlert {
    #[serde(default)]
    pub status: Option<WireStatus>,
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    #[serde(default, rename = "startsAt", deserialize_with = "opt_time")]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "endsAt", deserialize_with = "opt_time")]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: Option<String>,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum WireStatus {
    Firing,
    Resolved,
}

/// RFC 3339 timestamps; absent, null, empty and Go's zero time (`0001-01-01T00:00:00Z`)
/// all mean "not set".
/// Read in place (no copy of the text), as this runs twice per alert.
fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    struct Time;
    impl<'de> serde::de::Visitor<'de> for Time {
        type Value = Option<DateTime<Utc>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp string or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
            read_time(s).map_err(E::custom)
        }
    }
    d.deserialize_option(Time)
}

/// A timestamp's text: empty and Go's zero time are "not set".
pub(super) fn read_time(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let t = match utc_seconds_or_fraction(s) {
        Some(t) => t,
        None => DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("invalid RFC 3339 timestamp {s:?}: {e}"))?
            .with_timezone(&Utc),
    };
    Ok((t.timestamp() > -62_135_596_800).then_some(t))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the form Go writes (every Prometheus and
/// Alertmanager timestamp), read without chrono's general RFC 3339 parser (a third of the
/// cost of reading an alert's times). `None` for anything else (offsets, lowercase,
/// leap seconds, more than 9 fraction digits, invalid dates): chrono reads those.
fn utc_seconds_or_fraction(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let (head, rest) = (b.get(..19)?, b.get(19..)?);
    let num = |from: usize, to: usize| -> Option<u32> {
        head[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| head[i] != c) {
        return None;
    }
    let nanos = match rest {
        [b'Z'] => 0,
        [b'.', digits @ .., b'Z'] if (1..=9).contains(&digits.len()) => {
            let n = digits.iter().try_fold(0u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })?;
            n * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let sec = num(17, 19)?;
    if sec > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(num(11, 13)?, num(14, 16)?, sec, nanos)?;
    Some(date.and_time(time).and_utc())
}

#[derive(Debug, PartialEq, Deserialize)]
struct Webhook {
    #[serde(default)]
    version: Option<String>,
    alerts: Vec<WireAlert>,
}

/// Reads a body: first with the fast reader (`fast`, given the body as text), then with
/// serde_json, then again with serde_json tracking where it is, to name what is wrong.
fn from_json<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    fast: impl FnOnce(&'a str) -> Option<T>,
) -> Result<T, SourceError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SourceError::new("body", "empty body; expected JSON"));
    }
    // The body checked as UTF-8 once (not string by string, which costs ~10% of a parse).
    if let Ok(text) = std::str::from_utf8(body) {
        if let Some(v) = fast(text) {
            return Ok(v);
        }
        if let Ok(v) = serde_json::from_str(text) {
            return Ok(v);
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = serde_path_to_error::deserialize(&mut de).map_err(SourceError::from_json)?;
    de.end()
        .map_err(|e| SourceError::new("body", e.to_string()))?;
    Ok(v)
}

/// Alertmanager's webhook (`webhook_configs`), version 4.
pub const WEBHOOK: Format = Format {
    name: "alertmanager_webhook",
    example: r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"ExampleWebhook","instance":"host-1"}}]}"#,
    parse: |body, n, _| Ok(Parsed::alerts(parse_webhook(body, n)?)),
    http: Some(Intake {
        path: "/api/v1/alerts/alertmanager",
        source: Source::Alertmanager,
        content_type: "application/json",
        reply: Reply::Report,
        doc: Doc {
            operation_id: "alertmanager_webhook",
            summary: "Alertmanager's webhook (`webhook_configs`): the payload of version 4, each alert in\n`alerts` deduplicated, mapped to its CI and correlated.",
            body: "Alertmanager webhook payload (`version` 4): `{\"alerts\": [{\"status\", \"labels\", \"annotations\", \"startsAt\", \"endsAt\", \"generatorURL\", \"fingerprint\"}], ...}`.",
            list: false,
            refused: "Not a valid webhook payload; `detail.path` names the bad field.",
        },
    }),
};

/// The Alertmanager API v2 alert list, as Prometheus sends it to an Alertmanager.
pub const ALERT_LIST: Format = Format {
    name: "alert_list",
    example: r#"[{"labels":{"alertname":"ExampleAlertList","instance":"host-1"}}]"#,
    parse: |body, n, _| Ok(Parsed::alerts(parse_alert_list(body, n)?)),
    http: Some(Intake {
        path: "/api/v2/alerts",
        source: Source::Prometheus,
        content_type: "application/json",
        reply: Reply::Report,
        doc: Doc {
            operation_id: "alert_list",
            summary: "Prometheus' and Alertmanager's API v2 alert list (`POST /api/v2/alerts`, as Prometheus\nsends to an Alertmanager): a JSON list of alerts.",
            body: "A list of alerts: `[{\"labels\", \"annotations\", \"startsAt\", \"endsAt\", \"generatorURL\"}]`.",
            list: true,
            refused: "Not a valid alert list; `detail.path` names the bad field.",
        },
    }),
};

/// `POST /api/v1/alerts/alertmanager`: the webhook body, version 4. All alerts or none.
pub fn parse_webhook(body: &[u8], n: &Normalize) -> Result<Vec<Alert>, SourceError> {
    let hook: Webhook = from_json(body, |text| {
        fast_read::webhook(text).map(|(version, alerts)| Webhook { version, alerts })
    })?;
    if let Some(v) = hook.version.as_deref()
        && v != "4"
    {
        return Err(SourceError::new(
            "version",
            format!("unsupported webhook version {v:?}; sift speaks version 4"),
        ));
    }
    convert_all(hook.alerts, "alerts", Source::Alertmanager, n)
}

/// `POST /api/v2/alerts`: the list Prometheus (or any Alertmanager client) sends.
pub fn parse_alert_list(body: &[u8], n: &Normalize) -> Result<Vec<Alert>, SourceError> {
    let list: Vec<WireAlert> = from_json(body, fast_read::alert_list)?;
    convert_all(list, "", Source::Prometheus, n)
}

/// One line of a replay file: one alert object.
pub fn parse_line(line: &str, n: &Normalize) -> Result<Alert, SourceError> {
    let w: WireAlert = from_json(line.as_bytes(), fast_read::alert)?;
    convert(w, &Path::Root, Source::Replay, n)
}

/// Where an alert object is in its body, for error messages (spelled out only then).
enum Path<'a> {
    Root,
    Item(&'a str, usize),
}

impl Path<'_> {
    fn field(&self, name: &str) -> String {
        match self {
            Path::Root => format!(".{name}"),
            Path::Item(at, i) => format!("{at}[{i}].{name}"),
        }
    }
}

fn convert_all(
    list: Vec<WireAlert>,
    at: &str,
    source: Source,
    n: &Normalize,
) -> Result<Vec<Alert>, SourceError> {
    list.into_iter()
        .enumerate()
        .map(|(i, w)| convert(w, &Path::Item(at, i), source, n))
        .collect()
}

fn convert(w: WireAlert, path: &Path, source: Source, n: &Normalize) -> Result<Alert, SourceError> {
    if w.labels.is_empty() {
        return Err(SourceError::new(
            path.field("labels"),
            "at least one label is required",
        ));
    }
    if let Some(k) = w.labels.keys().find(|k| k.is_empty()) {
        return Err(SourceError::new(
            path.field("labels"),
            format!("empty label name (value {:?})", &w.labels[k]),
        ));
    }
    let labels: Labels = w.labels;
    let starts_at = w.starts_at.or(n.received_at).map(|t| n.clamp(t));
    let Some(starts_at) = starts_at.or(w.ends_at) else {
        return Err(SourceError::new(
            path.field("startsAt"),
            "required (replay has no arrival time to fall back on)",
        ));
    };
    // endsAt of a firing alert is legitimately ahead (Prometheus sends now + 4 resend
    // intervals); only a resolved alert's end is held to arrival time.
    let ends_at = match w.status {
        Some(WireStatus::Resolved) => w.ends_at.map(|t| n.clamp_past(t)),
        _ => w.ends_at,
    };
    if let Some(end) = ends_at
        && end < starts_at
    {
        return Err(SourceError::new(
            path.field("endsAt"),
            format!("endsAt {end} is before startsAt {starts_at}"),
        ));
    }
    let status = match (w.status, n.received_at, ends_at) {
        (Some(WireStatus::Resolved), _, _) => AlertStatus::Resolved,
        (Some(WireStatus::Firing), _, _) => AlertStatus::Firing,
        // No status (the v2 list): resolved when endsAt has passed on arrival.
        (None, Some(now), Some(end)) if end <= now => AlertStatus::Resolved,
        (None, _, _) => AlertStatus::Firing,
    };
    let ends_at = match (status, ends_at, n.received_at) {
        (AlertStatus::Resolved, None, now) => Some(now.unwrap_or(starts_at).max(starts_at)),
        // Only a status-less item (what Prometheus sends) expires by default; an explicit
        // `firing` without `endsAt` (sift's own forwarded alerts) is open-ended.
        (AlertStatus::Firing, None, Some(now))
            if source == Source::Prometheus && w.status.is_none() =>
        {
            Some(now.max(starts_at) + n.resolve_timeout)
        }
        (_, e, _) => e,
    };
    Ok(Alert {
        fingerprint: n.fingerprint(source, &labels, w.fingerprint.as_deref()),
        status,
        labels,
        annotations: w.annotations,
        starts_at,
        ends_at,
        generator_url: w.generator_url.filter(|u| !u.is_empty()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
    }

    #[test]
    fn webhook_v4() {
        let body = br#"{"version":"4","status":"firing","receiver":"sift","groupLabels":{},
          "alerts":[{"status":"firing","labels":{"alertname":"PostgresDown","instance":"10.0.4.12:9187"},
          "annotations":{"summary":"down"},"startsAt":"2026-11-23T09:58:00Z","endsAt":"0001-01-01T00:00:00Z",
          "generatorURL":"http://p/graph","fingerprint":"abc123"}]}"#;
        let a = parse_webhook(body, &Normalize::default().at(now())).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].fingerprint.0, "abc123");
        assert_eq!(a[0].status, AlertStatus::Firing);
        assert_eq!(a[0].ends_at, None);
    }

    #[test]
    fn prometheus_list_status_from_ends_at() {
        let body = br#"[{"labels":{"alertname":"A"},"startsAt":"2026-11-23T09:00:00Z","endsAt":"2026-11-23T09:59:00Z"},
                        {"labels":{"alertname":"B"},"startsAt":"2026-11-23T09:00:00Z","endsAt":"2026-11-23T10:04:00Z"},
                        {"labels":{"alertname":"C"}}]"#;
        let a = parse_alert_list(body, &Normalize::default().at(now())).unwrap();
        assert_eq!(a[0].status, AlertStatus::Resolved);
        assert_eq!(a[1].status, AlertStatus::Firing);
        assert_eq!(a[2].starts_at, now());
        assert_eq!(a[2].ends_at, Some(now() + chrono::Duration::minutes(5)));
    }

    #[test]
    fn errors_name_the_path() {
        let n = Normalize::default().at(now());
        let e = parse_alert_list(
            br#"[{"labels":{"a":"b"}},{"labels":{"a":"c"},"startsAt":"yesterday"}]"#,
            &n,
        )
        .unwrap_err();
        assert!(e.path.starts_with("[1].startsAt"), "{e}");
        let e = parse_webhook(br#"{"alerts":[{"labels":{}}]}"#, &n).unwrap_err();
        assert_eq!(e.path, "alerts[0].labels");
        let e =
            parse_webhook(br#"{"alerts":[{"status":"on","labels":{"a":"b"}}]}"#, &n).unwrap_err();
        assert!(e.path.contains("alerts[0].status"), "{e}");
        assert!(
            parse_webhook(b"", &n)
                .unwrap_err()
                .message
                .contains("empty")
        );
        assert!(parse_webhook(br#"{"alerts":[]} x"#, &n).is_err());
        let e = parse_alert_list(br#"[{"labels":{"a":"b"},"startsAt":"2026-11-23T09:00:00Z","endsAt":"2026-11-23T08:00:00Z"}]"#, &n).unwrap_err();
        assert!(e.message.contains("before"), "{e}");
        // Not UTF-8 inside a label value: the error names the label set, not just "body".
        let e = parse_alert_list(
            b"[{\"labels\":{\"a\":\"b\"}},{\"labels\":{\"a\":\"\xff\"}}]",
            &n,
        )
        .unwrap_err();
        assert!(e.path.starts_with("[1].labels"), "{e}");
    }

    /// The fast path for Go's timestamps reads exactly what chrono reads, and leaves
    /// everything else to chrono.
    #[test]
    fn go_timestamps_read_as_chrono_reads_them() {
        let chrono_reads = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        let mut next = crate::test_rng(0x2545_f491_4f6c_dd1d);
        let mut fast = 0;
        for _ in 0..20_000 {
            let frac = match next(4) {
                0 => String::new(),
                _ => format!(".{}", &"0123456789".repeat(2)[..1 + next(11) as usize]),
            };
            let s = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{}",
                next(10_000),
                next(14),
                next(33),
                next(26),
                next(61),
                next(62),
                ["Z", "Z", "Z", "z", "+02:00"][next(5) as usize]
            );
            if let Some(t) = utc_seconds_or_fraction(&s) {
                fast += 1;
                assert_eq!(Some(t), chrono_reads(&s), "{s}");
            }
            assert_eq!(
                read_time(&s).ok().flatten(),
                chrono_reads(&s).filter(|t| t.timestamp() > -62_135_596_800),
                "{s}"
            );
        }
        assert!(fast > 2_000, "{fast}");
        for s in [
            "2026-11-23T09:58:00Z",
            "2026-11-23T09:58:00.5Z",
            "2024-02-29T23:59:59.123456789Z",
        ] {
            assert!(utc_seconds_or_fraction(s).is_some(), "{s}");
        }
        for s in [
            "2026-02-29T00:00:00Z",
            "2026-11-23T09:58:60Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T09:58:00.Z",
            "2026-11-23T09:58:00.1234567891Z",
            "2026-11-23 09:58:00Z",
            "2026-11-23T09:58:00",
        ] {
            assert!(utc_seconds_or_fraction(s).is_none(), "{s}");
        }
    }

    #[test]
    fn future_timestamps_are_clamped_to_arrival() {
        let n = Normalize::default().at(now());
        let a = parse_alert_list(
            br#"[{"labels":{"a":"b"},"startsAt":"2030-01-01T00:00:00Z"}]"#,
            &n,
        )
        .unwrap();
        assert_eq!(a[0].starts_at, now());
    }

    #[test]
    fn configured_dedup_labels_win() {
        let mut n = Normalize::default().at(now());
        n.dedup_labels
            .push((Source::Alertmanager, vec!["alertname".into()]));
        let body = br#"{"alerts":[{"status":"firing","labels":{"alertname":"X","pod":"a"},"fingerprint":"f1"},
                                  {"status":"firing","labels":{"alertname":"X","pod":"b"},"fingerprint":"f2"}]}"#;
        let a = parse_webhook(body, &n).unwrap();
        assert_eq!(a[0].fingerprint, a[1].fingerprint);
    }
}
