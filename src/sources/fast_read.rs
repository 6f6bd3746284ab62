//! The fast reader of alert bodies: the Alertmanager API v2 alert list (what Prometheus
//! sends), the Alertmanager webhook and the replay line, read straight into `WireAlert`s.
//!
//! Why it exists: with serde_json, reading a body cost ~1.1 µs per alert, of which ~0.25 µs
//! was scanning the JSON and the rest serde's generic machinery around each of the ~12
//! strings an alert holds (a visitor call, an enum and a copy per string). Reading is a
//! third of the pure pipeline's time per new alert; this reader takes it to about a half.
//!
//! What it must not do: accept anything serde_json would refuse, or read anything
//! differently. It reads a strict subset of JSON: the shapes senders write, strings with
//! or without escapes, unknown fields of any JSON type (skipped). Whatever is outside that
//! subset (a lone surrogate escape, a duplicate field, a `null` where serde_json wants an
//! object, deep nesting, malformed JSON of any kind) makes it give up with `None`, and the
//! serde_json path reads the body as before, and names what is wrong when it is wrong. A
//! test compares the two readers over a generated corpus of good, odd and broken bodies.
//! No `unsafe`: text is sliced from the body (`&str`, already checked as UTF-8) at ASCII
//! quote bytes, which are always character boundaries.

use std::borrow::Cow;

use super::alertmanager::{WireAlert, WireStatus, read_time};
use crate::alert::Labels;
use crate::labels::Packer;

/// A JSON array of alert objects, and nothing after it.
pub(super) fn alert_list(body: &str) -> Option<Vec<WireAlert>> {
    let mut r = Reader::new(body);
    let list = r.alerts()?;
    r.end()?;
    Some(list)
}

/// One alert object, and nothing after it.
pub(super) fn alert(body: &str) -> Option<WireAlert> {
    let mut r = Reader::new(body);
    r.ws();
    let a = r.alert()?;
    r.end()?;
    Some(a)
}

/// The webhook's `version` and `alerts`; its other fields are read past.
pub(super) fn webhook(body: &str) -> Option<(Option<String>, Vec<WireAlert>)> {
    let mut r = Reader::new(body);
    r.ws();
    r.eat(b'{')?;
    let (mut version, mut alerts) = (None, None);
    r.members(|r, key| {
        match &*key {
            "version" if version.is_none() => version = Some(r.opt_string()?.map(Cow::into_owned)),
            "alerts" if alerts.is_none() => alerts = Some(r.alerts()?),
            "version" | "alerts" => return None, // a duplicate: serde_json refuses it
            _ => r.skip(0)?,
        }
        Some(())
    })?;
    r.end()?;
    Some((version.flatten(), alerts?))
}

/// Deepest nesting of an unknown field's value that is read past (serde_json allows 128).
const MAX_DEPTH: u32 = 32;

struct Reader<'a> {
    text: &'a str,
    pos: usize,
    /// Reused by every label set of the body.
    packer: Packer,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            pos: 0,
            packer: Packer::default(),
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    fn eat_word(&mut self, w: &str) -> Option<()> {
        let end = self.pos + w.len();
        (self.bytes().get(self.pos..end)? == w.as_bytes()).then(|| self.pos = end)
    }

    /// After an element: `,` (more follow: `false`) or `close` (the end: `true`).
    fn comma_or(&mut self, close: u8) -> Option<bool> {
        let b = self.peek()?;
        self.pos += 1;
        match b {
            b',' => Some(false),
            b if b == close => Some(true),
            _ => None,
        }
    }

    fn end(&mut self) -> Option<()> {
        self.ws();
        (self.pos == self.bytes().len()).then_some(())
    }

    /// `[` alert, … `]`
    fn alerts(&mut self) -> Option<Vec<WireAlert>> {
        self.ws();
        self.eat(b'[')?;
        let mut list = Vec::new();
        self.ws();
        if self.eat(b']').is_some() {
            return Some(list);
        }
        loop {
            self.ws();
            list.push(self.alert()?);
            self.ws();
            if self.comma_or(b']')? {
                return Some(list);
            }
        }
    }

    /// After `{`: each member's key to `f`, which reads its value; up to the closing `}`.
    fn members(&mut self, mut f: impl FnMut(&mut Self, Cow<'a, str>) -> Option<()>) -> Option<()> {
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            f(self, key)?;
            self.ws();
            if self.comma_or(b'}')? {
                return Some(());
            }
        }
    }

    fn alert(&mut self) -> Option<WireAlert> {
        self.eat(b'{')?;
        let mut status: Option<Option<WireStatus>> = None;
        let mut labels: Option<Labels> = None;
        let mut annotations: Option<Labels> = None;
        let mut starts_at = None;
        let mut ends_at = None;
        let mut generator_url: Option<Option<String>> = None;
        let mut fingerprint: Option<Option<String>> = None;
        self.members(|r, key| {
            // A field seen twice: serde_json refuses the object; so give up.
            match &*key {
                "labels" if labels.is_none() => labels = Some(r.labels()?),
                "annotations" if annotations.is_none() => annotations = Some(r.labels()?),
                "startsAt" if starts_at.is_none() => starts_at = Some(r.time()?),
                "endsAt" if ends_at.is_none() => ends_at = Some(r.time()?),
                "status" if status.is_none() => {
                    status = Some(match r.opt_string()?.as_deref() {
                        None => None,
                        Some("firing") => Some(WireStatus::Firing),
                        Some("resolved") => Some(WireStatus::Resolved),
                        Some(_) => return None,
                    })
                }
                "generatorURL" if generator_url.is_none() => {
                    generator_url = Some(r.opt_string()?.map(Cow::into_owned))
                }
                "fingerprint" if fingerprint.is_none() => {
                    fingerprint = Some(r.opt_string()?.map(Cow::into_owned))
                }
                "labels" | "annotations" | "startsAt" | "endsAt" | "status" | "generatorURL"
                | "fingerprint" => return None,
                _ => r.skip(0)?,
            }
            Some(())
        })?;
        Some(WireAlert {
            status: status.flatten(),
            labels: labels?,
            annotations: annotations.unwrap_or_default(),
            starts_at: starts_at.flatten(),
            ends_at: ends_at.flatten(),
            generator_url: generator_url.flatten(),
            fingerprint: fingerprint.flatten(),
        })
    }

    /// An object of string values, each written straight into the packed set.
    fn labels(&mut self) -> Option<Labels> {
        self.eat(b'{')?;
        let mut p = std::mem::take(&mut self.packer);
        p.clear();
        let read = self.label_pairs(&mut p).map(|()| p.finish());
        self.packer = p;
        read
    }

    /// After `{`: `"name": "value"` pairs up to the closing `}`.
    fn label_pairs(&mut self, p: &mut Packer) -> Option<()> {
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            self.string_into(p.text())?;
            p.end_part();
            self.ws();
            self.eat(b':')?;
            self.ws();
            self.string_into(p.text())?;
            p.end_part();
            self.ws();
            if self.comma_or(b'}')? {
                return Some(());
            }
        }
    }

    /// A JSON string, decoded onto `out`.
    fn string_into(&mut self, out: &mut String) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let from = self.pos;
            let stop = self.scan();
            out.push_str(self.text.get(from..stop)?);
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(());
                }
                b'\\' => self.escape(out)?,
                // A raw control character: serde_json refuses it.
                _ => return None,
            }
        }
    }

    /// A timestamp string (or `null`), read as serde's `opt_time` does.
    fn time(&mut self) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
        match self.opt_string()? {
            None => Some(None),
            Some(s) => read_time(&s).ok(),
        }
    }

    /// A string, or `null` (→ `None`).
    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'n' {
            self.eat_word("null")?;
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A JSON string: borrowed from the body when it holds no escape, else decoded.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let open = self.pos;
        self.eat(b'"')?;
        let start = self.pos;
        let stop = self.scan();
        if self.peek()? == b'"' {
            self.pos += 1;
            return Some(Cow::Borrowed(self.text.get(start..stop)?));
        }
        self.pos = open;
        let mut out = String::with_capacity(stop - start + 16);
        self.string_into(&mut out)?;
        Some(Cow::Owned(out))
    }

    /// Moves to the next `"`, `\` or control character (or the end), 8 bytes at a time;
    /// returns that position.
    fn scan(&mut self) -> usize {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        let b = self.bytes();
        while let Some(chunk) = b.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word);
            let quote = x ^ (LO * u64::from(b'"'));
            let slash = x ^ (LO * u64::from(b'\\'));
            // A byte is flagged when zero (quote, slash) or below 0x20 (control); the
            // lowest flag is always a true one.
            let hits = (quote.wrapping_sub(LO) & !quote)
                | (slash.wrapping_sub(LO) & !slash)
                | (x.wrapping_sub(LO * 0x20) & !x);
            let hits = hits & HI;
            if hits != 0 {
                self.pos += (hits.trailing_zeros() / 8) as usize;
                return self.pos;
            }
            self.pos += 8;
        }
        while let Some(&c) = b.get(self.pos) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            self.pos += 1;
        }
        self.pos
    }

    /// At a `\`: one escape, decoded onto `out`. A `\u` surrogate must be a proper pair.
    fn escape(&mut self, out: &mut String) -> Option<()> {
        self.eat(b'\\')?;
        let c = self.peek()?;
        self.pos += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                match hi {
                    0xD800..=0xDBFF => {
                        self.eat(b'\\')?;
                        self.eat(b'u')?;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return None;
                        }
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => char::from_u32(hi)?,
                }
            }
            _ => return None,
        };
        out.push(ch);
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    /// Reads past one JSON value of any type, as strictly as serde_json does.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.pos += 1;
                self.members(|r, _| r.skip(depth + 1))
            }
            b'[' => {
                self.pos += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.ws();
                    self.skip(depth + 1)?;
                    self.ws();
                    if self.comma_or(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.eat_word("true"),
            b'f' => self.eat_word("false"),
            b'n' => self.eat_word("null"),
            _ => self.number(),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.peek().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as senders write them: what the fast reader must take itself.
    const LIST: &str = r#"[{"labels":{"alertname":"NodeDown","instance":"10.0.4.12:9100","job":"node","severity":"critical"},"annotations":{"summary":"down","description":"VALUE = 1\n LABELS = map[instance:10.0.4.12:9100]\t\"quoted\" \\ back \/ slash \u00e9 \ud83d\ude00"},"startsAt":"2026-11-23T09:58:00.123456789Z","endsAt":"2026-11-23T10:03:00Z","generatorURL":"http://prom:9090/graph?g0.expr=up+%3D%3D+0"},
        {"labels":{"zone":"b","alertname":"Out Of Order","zone":"a","":"empty name"},"startsAt":"2026-11-23T09:00:00+02:00","endsAt":"0001-01-01T00:00:00Z"},
        { "labels" : { "a" : "b" } , "annotations" : { } , "startsAt" : "" , "endsAt" : null , "status" : null , "fingerprint" : null , "generatorURL" : null },
        {"labels":{"l\u0061bel":"v\u0041lue","é":"ü"},"status":"resolved","fingerprint":"abc123","startsAt":"2026-11-23T09:00:00Z"}]"#;

    const WEBHOOK: &str = r#"{"receiver":"sift","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"PostgresDown","instance":"db-01"},"annotations":{"summary":"pg \"down\""},"startsAt":"2026-11-23T09:58:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://p/graph","fingerprint":"1a2b"}],
        "groupLabels":{"alertname":"PostgresDown"},"commonLabels":{},"commonAnnotations":{"description":"line 1\nline 2"},
        "externalURL":"http://am:9093","version":"4","groupKey":"{}:{alertname=\"PostgresDown\"}","truncatedAlerts":0,
        "extra":[1,-2.5,3e10,-0,0.1E-3,true,false,null,{"deep":[[[]]]},"s"]}"#;

    fn serde_list(text: &str) -> Result<Vec<WireAlert>, serde_json::Error> {
        serde_json::from_str(text)
    }

    fn serde_webhook(text: &str) -> Result<(Option<String>, Vec<WireAlert>), serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct W {
            #[serde(default)]
            version: Option<String>,
            alerts: Vec<WireAlert>,
        }
        serde_json::from_str::<W>(text).map(|w| (w.version, w.alerts))
    }

    #[test]
    fn reads_what_senders_write_as_serde_does() {
        let fast = alert_list(LIST).expect("the fast reader takes a Prometheus list");
        assert_eq!(fast, serde_list(LIST).unwrap());
        assert_eq!(fast.len(), 4);
        let desc = fast[0].annotations.get("description").unwrap();
        assert!(
            desc.contains("\n LABELS") && desc.ends_with("é 😀"),
            "{desc}"
        );
        // Out of order with a repeat: sorted, the last value wins.
        assert_eq!(fast[1].labels.get("zone"), Some("a"));
        assert_eq!(fast[1].labels.keys().next(), Some(""));
        assert_eq!(fast[3].labels.get("label"), Some("vAlue"));
        assert_eq!(fast[1].ends_at, None, "Go's zero time is unset");
        let hook = webhook(WEBHOOK).expect("the fast reader takes a webhook");
        assert_eq!(hook, serde_webhook(WEBHOOK).unwrap());
        assert_eq!(hook.0.as_deref(), Some("4"));
        let line = r#"{"labels":{"a":"b"},"startsAt":"2026-11-23T09:00:00Z"}"#;
        assert_eq!(alert(line), serde_json::from_str(line).ok());
        assert_eq!(alert_list(" [ ] "), Some(Vec::new()));
    }

    #[test]
    fn gives_up_where_serde_refuses_or_might() {
        for body in [
            r#"[{"labels":{"a":"b"}},]"#,                       // trailing comma
            r#"[{"labels":{"a":"b"}}] x"#,                      // trailing text
            r#"[{"labels":{"a":"b"},"labels":{"a":"c"}}]"#,     // duplicate field
            r#"[{"labels":null}]"#,                             // null labels
            r#"[{"labels":{"a":1}}]"#,                          // non-string value
            r#"[{"annotations":{}}]"#,                          // no labels
            r#"[{"labels":{"a":"b"},"status":"on"}]"#,          // unknown status
            r#"[{"labels":{"a":"\ud800"}}]"#,                   // lone surrogate
            r#"[{"labels":{"a":"b\q"}}]"#,                      // bad escape
            "[{\"labels\":{\"a\":\"b\u{1}\"}}]",                // raw control character
            r#"[{"labels":{"a":"b"},"startsAt":"yesterday"}]"#, // bad timestamp
            r#"[{"labels":{"a":"b"},"x":01}]"#,                 // bad number
            r#"[{"labels":{"a":"b"},"x":[1,]}]"#,               // bad skipped array
            r#"[{"labels":{"a":"b"}}"#,                         // truncated
        ] {
            assert_eq!(alert_list(body), None, "{body}");
        }
        let deep = format!(
            r#"{{"alerts":[],"x":{}{}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        assert_eq!(webhook(&deep), None, "too deep to skip here");
        assert!(serde_webhook(&deep).is_ok(), "serde_json reads it instead");
        assert_eq!(webhook(r#"{"alerts":[],"alerts":[]}"#), None);
        assert_eq!(webhook(r#"{"version":"4"}"#), None);
    }

    /// Every mutant of the sample bodies (a byte deleted, inserted, replaced, or the body
    /// cut short) that the fast reader takes, serde_json takes too, with the same result.
    #[test]
    fn never_disagrees_with_serde_on_mutated_bodies() {
        const BYTES: &[u8] = b"\"\\{}[],: \n0123456789-+.eEabnrtfu/lsxz\x01";
        let mut rng = crate::test_rng(0x9e37_79b9_7f4a_7c15);
        let mut next = move |n: usize| rng(n as u64) as usize;
        let (mut taken, mut tried) = (0, 0);
        for base in [LIST, WEBHOOK] {
            for _ in 0..20_000 {
                let mut b = base.as_bytes().to_vec();
                for _ in 0..1 + next(3) {
                    let at = next(b.len());
                    match next(4) {
                        0 => {
                            b.remove(at);
                        }
                        1 => b.insert(at, BYTES[next(BYTES.len())]),
                        2 => b[at] = BYTES[next(BYTES.len())],
                        _ => b.truncate(at),
                    }
                    if b.is_empty() {
                        break;
                    }
                }
                let Ok(text) = std::str::from_utf8(&b) else {
                    continue;
                };
                tried += 1;
                if let Some(fast) = alert_list(text) {
                    taken += 1;
                    assert_eq!(
                        Ok(fast),
                        serde_list(text).map_err(|e| e.to_string()),
                        "{text}"
                    );
                }
                if let Some(fast) = webhook(text) {
                    taken += 1;
                    assert_eq!(
                        Ok(fast),
                        serde_webhook(text).map_err(|e| e.to_string()),
                        "{text}"
                    );
                }
            }
        }
        assert!(tried > 30_000 && taken > 1_000, "{taken} of {tried} taken");
    }
}
