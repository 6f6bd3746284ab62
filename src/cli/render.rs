//! Tables and summaries of the daemon's JSON answers, for a person at a terminal. Read
//! from the JSON (not from sift's types), so an answer with fields missing or added still
//! renders; `--json` is the stable, complete form.

use std::fmt::Write as _;

use serde_json::Value;

/// A field as text: strings bare, numbers and booleans as written, null or absent as `-`.
pub fn s(v: &Value, key: &str) -> String {
    text(v.get(key))
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.is_empty() => "-".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| text(Some(x)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

/// An RFC 3339 time as `2026-12-06 05:01:02Z`; anything else as it is.
fn time(v: &Value, key: &str) -> String {
    let t = s(v, key);
    match chrono::DateTime::parse_from_rfc3339(&t) {
        Ok(d) => d
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%SZ")
            .to_string(),
        Err(_) => t,
    }
}

/// Cells longer than this are cut (with `…`): one row per line on a terminal.
const MAX_CELL: usize = 60;

fn cut(s: String) -> String {
    let s = s.replace(['\n', '\r', '\t'], " ");
    if s.chars().count() <= MAX_CELL {
        return s;
    }
    let mut c: String = s.chars().take(MAX_CELL - 1).collect();
    c.push('…');
    c
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().cloned().map(cut).collect())
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                let pad = width[i] - c.chars().count();
                out.push_str(c);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(&mut out, &mut header.iter().copied());
    for r in &rows {
        line(&mut out, &mut r.iter().map(String::as_str));
    }
    out
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn fields(out: &mut String, v: &Value, keys: &[(&str, &str)]) {
    let w = keys.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (label, key) in keys {
        let val = if key.ends_with("_at") {
            time(v, key)
        } else {
            s(v, key)
        };
        let _ = writeln!(out, "{label:w$}  {val}");
    }
}

pub fn incidents(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v, "incidents")
        .iter()
        .map(|i| {
            vec![
                s(i, "id"),
                s(i, "status"),
                format!("P{}", s(i, "priority")),
                s(i, "root_cause_ci"),
                s(i, "alert_count"),
                time(i, "opened_at"),
                s(i, "title"),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no incidents\n".into();
    }
    table(
        &[
            "ID", "STATUS", "PRI", "ROOT CI", "ALERTS", "OPENED", "TITLE",
        ],
        &rows,
    )
}

pub fn incident(v: &Value) -> String {
    let mut out = String::new();
    fields(
        &mut out,
        v,
        &[
            ("id", "id"),
            ("title", "title"),
            ("status", "status"),
            ("priority", "priority"),
            ("root cause CI", "root_cause_ci"),
            ("CIs", "ci_ids"),
            ("services", "impacted_services"),
            ("group", "assignment_group"),
            ("assignee", "assignee"),
            ("alerts", "alert_count"),
            ("opened", "opened_at"),
            ("acknowledged", "acknowledged_at"),
            ("resolved", "resolved_at"),
            ("resolution", "resolution_note"),
        ],
    );
    if let Some(rc) = v.get("root_cause").filter(|r| r.is_object()) {
        let _ = writeln!(
            out,
            "root cause     {} (confidence {}): {}",
            s(rc, "ci_id"),
            s(rc, "confidence"),
            s(rc, "reason")
        );
    }
    let alerts = list(v, "alerts");
    if !alerts.is_empty() {
        let _ = writeln!(out, "\nalerts:");
        out.push_str(&alert_table(alerts));
    }
    let timeline = list(v, "timeline");
    if !timeline.is_empty() {
        let _ = writeln!(out, "\ntimeline:");
        let rows: Vec<Vec<String>> = timeline
            .iter()
            .map(|t| {
                let detail = match t.get("detail") {
                    Some(Value::Object(m)) => m
                        .iter()
                        .filter(|(_, x)| !x.is_null())
                        .map(|(k, x)| format!("{k}={}", text(Some(x))))
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => text(other),
                };
                vec![time(t, "at"), s(t, "actor"), s(t, "kind"), detail]
            })
            .collect();
        out.push_str(&table(&["AT", "ACTOR", "WHAT", "DETAIL"], &rows));
    }
    out
}

/// After a change: the incident's id, state and who has it.
pub fn incident_line(v: &Value) -> String {
    let mut line = format!("{}: {}", s(v, "id"), s(v, "status"));
    if let Some(a) = v.get("assignee").and_then(Value::as_str) {
        let _ = write!(line, ", assignee {a}");
    }
    line.push('\n');
    line
}

fn alert_table(alerts: &[Value]) -> String {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            let labels = a.get("labels").cloned().unwrap_or(Value::Null);
            vec![
                s(&labels, "alertname"),
                s(a, "status"),
                s(a, "ci_id"),
                s(a, "incident_id"),
                s(a, "count"),
                time(a, "starts_at"),
                s(a, "fingerprint"),
            ]
        })
        .collect();
    table(
        &[
            "ALERTNAME",
            "STATUS",
            "CI",
            "INCIDENT",
            "COUNT",
            "STARTS",
            "FINGERPRINT",
        ],
        &rows,
    )
}

pub fn alerts(v: &Value) -> String {
    let alerts = list(v, "alerts");
    if alerts.is_empty() {
        return "no alerts\n".into();
    }
    alert_table(alerts)
}

pub fn problems(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v, "problems")
        .iter()
        .map(|p| {
            let root = p
                .get("suggested_root_cause")
                .cloned()
                .unwrap_or(Value::Null);
            let rec = p.get("recurrence").cloned().unwrap_or(Value::Null);
            let score = p
                .get("score")
                .and_then(Value::as_f64)
                .map_or("-".into(), |x| format!("{x:.2}"));
            vec![
                s(p, "id"),
                s(p, "status"),
                score,
                list(p, "incident_ids").len().to_string(),
                s(&root, "ci_id"),
                s(&rec, "pattern"),
                s(p, "title"),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no problems\n".into();
    }
    table(
        &[
            "ID",
            "STATUS",
            "SCORE",
            "INCIDENTS",
            "ROOT CI",
            "PATTERN",
            "TITLE",
        ],
        &rows,
    )
}

pub fn problem(v: &Value) -> String {
    let mut out = String::new();
    fields(
        &mut out,
        v,
        &[
            ("id", "id"),
            ("title", "title"),
            ("status", "status"),
            ("score", "score"),
            ("incidents", "incident_ids"),
            ("hours lost", "hours_lost"),
            ("q-value", "q_value"),
        ],
    );
    if let Some(r) = v.get("suggested_root_cause") {
        let _ = writeln!(
            out,
            "root cause  {} ({}, confidence {})",
            s(r, "ci_id"),
            s(r, "signature"),
            s(r, "confidence")
        );
    }
    if let Some(r) = v.get("recurrence") {
        let _ = writeln!(
            out,
            "recurrence  {} times, {} ({} .. {})",
            s(r, "count"),
            s(r, "pattern"),
            time(r, "first_seen"),
            time(r, "last_seen")
        );
    }
    out
}

pub fn ci(v: &Value) -> String {
    let mut out = String::new();
    fields(
        &mut out,
        v,
        &[
            ("id", "id"),
            ("name", "name"),
            ("type", "type"),
            ("criticality", "criticality"),
            ("owner group", "owner_group"),
            ("aliases", "aliases"),
        ],
    );
    if let Some(Value::Object(a)) = v.get("attributes")
        && !a.is_empty()
    {
        let attrs: Vec<String> = a
            .iter()
            .map(|(k, x)| format!("{k}={}", text(Some(x))))
            .collect();
        let _ = writeln!(out, "attributes   {}", attrs.join(" "));
    }
    for (label, key) in [("depends on", "depends_on"), ("dependents", "dependents")] {
        let shown = list(v, key).len();
        let total = v
            .get(format!("{key}_total"))
            .and_then(Value::as_u64)
            .unwrap_or(shown as u64);
        let more = if total > shown as u64 {
            format!(" (and {} more)", total - shown as u64)
        } else {
            String::new()
        };
        let _ = writeln!(out, "{label:11}  {}{more}", s(v, key));
    }
    out
}

pub fn impact(v: &Value) -> String {
    let rows: Vec<Vec<String>> = list(v, "impacted")
        .iter()
        .map(|r| {
            let path: Vec<String> = list(r, "path").iter().map(|p| text(Some(p))).collect();
            vec![s(r, "hops"), s(r, "id"), s(r, "type"), path.join(" -> ")]
        })
        .collect();
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("nothing depends on it\n");
    } else {
        out.push_str(&table(&["HOPS", "IMPACTED", "TYPE", "PATH"], &rows));
    }
    let _ = writeln!(out, "services     {}", s(v, "impacted_services"));
    if v.get("truncated").and_then(Value::as_bool) == Some(true) {
        out.push_str("(cut at the limit)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_columns_and_cuts_long_cells() {
        let t = table(
            &["ID", "TITLE"],
            &[
                vec!["INC1".into(), "short".into()],
                vec!["INC0000002".into(), "x".repeat(100)],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID          TITLE");
        assert_eq!(lines[1], "INC1        short");
        assert!(lines[2].ends_with('…') && lines[2].chars().count() == 12 + MAX_CELL);
    }

    #[test]
    fn incident_list_shows_missing_fields_as_dashes() {
        let v = json!({"incidents": [{"id": "INC1", "status": "open", "priority": 2,
            "root_cause_ci": null, "alert_count": 3, "opened_at": "2026-12-06T05:00:00Z",
            "title": "db down"}], "next_cursor": null});
        let t = incidents(&v);
        assert!(t.contains("INC1"), "{t}");
        assert!(t.contains("P2"), "{t}");
        assert!(t.contains("2026-12-06 05:00:00Z"), "{t}");
        assert!(t.lines().nth(1).unwrap().contains("  -  "), "{t}");
        assert_eq!(incidents(&json!({"incidents": []})), "no incidents\n");
    }
}
