//! CSV exports of ITSM suites as history records, streamed.
//!
//! A [`Mapping`] says how to read a file: delimiter, encoding (UTF-8 or Latin-1), the
//! date formats and the offset of naive times, and which column feeds which
//! [`HistoryRecord`] field. Presets cover ServiceNow's incident table export, Jira
//! Service Management's issue export and the BPI Challenge 2014 `Detail Incident.csv`
//! (see `PRESETS` and docs/problems.md); a TOML mapping file does the rest.
//!
//! The parser is RFC 4180 (quoted fields with the delimiter, doubled quotes and line
//! breaks inside; CRLF or LF) over a `BufRead`, one record at a time: a 500 MB export
//! is never held whole. Errors that make the whole file unreadable (a mapped required
//! column not in the header, a delimiter that does not split the header, bytes that are
//! not the declared encoding, an unterminated quote) stop it and name the line and
//! column; a row that cannot become a record (unparseable date, empty id, bad priority)
//! is handed to the caller as a [`BadRecord`] naming its line and column, never dropped
//! silently. Rows whose cells are all empty are counted, not read.
//!
//! What it must not do: open files (the caller passes a reader) or read the clock.

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::Deserialize;

use super::{BadRecord, HistoryRecord};

/// The ready mappings, by name: (name, what it reads, TOML).
pub const PRESETS: &[(&str, &str, &str)] = &[
    (
        "servicenow",
        "ServiceNow incident table export (CSV, field names or labels as headers)",
        include_str!("presets/servicenow.toml"),
    ),
    (
        "jira",
        "Jira Service Management issue export (CSV)",
        include_str!("presets/jira.toml"),
    ),
    (
        "bpi2014",
        "BPI Challenge 2014 Detail Incident.csv (Rabobank ICT), as published",
        include_str!("presets/bpi2014.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("mapping: {0}")]
    Mapping(String),
    #[error("line {line}: {reason}")]
    Header { line: usize, reason: String },
    #[error("line {line}, column {column:?}: {reason}")]
    Cell {
        line: usize,
        column: String,
        reason: String,
    },
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("reading line {line}: {source}")]
    Io {
        line: usize,
        #[source]
        source: std::io::Error,
    },
}

/// A column or several (text fields join them with a space; coded fields take the first
/// non-empty one; alertnames take each).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Cols {
    One(String),
    Many(Vec<String>),
}

impl Cols {
    fn names(&self) -> Vec<&str> {
        match self {
            Cols::One(s) => vec![s.as_str()],
            Cols::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// Which column feeds which field. `id` and `opened_at` are required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub id: Cols,
    pub opened_at: Cols,
    pub resolved_at: Option<Cols>,
    pub ci: Option<Cols>,
    pub title: Option<Cols>,
    pub alertnames: Option<Cols>,
    pub category: Option<Cols>,
    pub subcategory: Option<Cols>,
    pub symptom: Option<Cols>,
    pub location: Option<Cols>,
    pub service: Option<Cols>,
    pub ci_class: Option<Cols>,
    pub assignment_group: Option<Cols>,
    pub closure_code: Option<Cols>,
    pub priority: Option<Cols>,
    pub resolution_note: Option<Cols>,
    pub known_error: Option<Cols>,
}

/// A mapping file (TOML), as documented in docs/problems.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub date_formats: Vec<String>,
    /// Offset of naive times, `+01:00`; UTC when absent.
    #[serde(default)]
    pub utc_offset: Option<String>,
    pub columns: Columns,
    /// Priority words to 1..5 (`Highest = 1`); a leading digit (`1 - Critical`) is read
    /// as is.
    #[serde(default)]
    pub priority: BTreeMap<String, u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Latin1,
}

#[derive(Debug, Clone)]
pub struct Mapping {
    pub delimiter: u8,
    pub encoding: Encoding,
    pub date_formats: Vec<String>,
    pub offset: FixedOffset,
    pub columns: Columns,
    pub priority: BTreeMap<String, u8>,
}

impl Mapping {
    /// A preset by name, or the TOML text of a mapping file.
    pub fn preset(name: &str) -> Option<Mapping> {
        PRESETS
            .iter()
            .find(|p| p.0 == name)
            .and_then(|p| Mapping::parse(p.2).ok())
    }

    pub fn parse(toml: &str) -> Result<Mapping, ImportError> {
        use figment::Figment;
        use figment::providers::{Format, Toml};
        let f: MappingFile = Figment::from(Toml::string(toml))
            .extract()
            .map_err(|e| ImportError::Mapping(e.to_string()))?;
        let delimiter = match f.delimiter.as_deref() {
            None => b',',
            Some("\\t") | Some("tab") => b'\t',
            Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
            Some(d) => {
                return Err(ImportError::Mapping(format!(
                    "delimiter must be one ASCII character (or \"tab\"), not {d:?}"
                )));
            }
        };
        let encoding = match f
            .encoding
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("utf-8") | Some("utf8") => Encoding::Utf8,
            Some("latin1") | Some("latin-1") | Some("iso-8859-1") => Encoding::Latin1,
            Some(e) => {
                return Err(ImportError::Mapping(format!(
                    "encoding must be utf-8 or latin-1, not {e:?}"
                )));
            }
        };
        let offset = match f.utc_offset.as_deref() {
            None | Some("Z") | Some("UTC") => FixedOffset::east_opt(0),
            Some(o) => parse_offset(o),
        }
        .ok_or_else(|| {
            ImportError::Mapping(format!(
                "utc_offset must look like +01:00, not {:?}",
                f.utc_offset.unwrap_or_default()
            ))
        })?;
        for (k, v) in &f.priority {
            if !(1..=5).contains(v) {
                return Err(ImportError::Mapping(format!(
                    "priority {k:?} must map to 1..5, not {v}"
                )));
            }
        }
        Ok(Mapping {
            delimiter,
            encoding,
            date_formats: f.date_formats,
            offset,
            columns: f.columns,
            priority: f
                .priority
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect(),
        })
    }
}

fn parse_offset(o: &str) -> Option<FixedOffset> {
    let (sign, rest) = match o.as_bytes().first()? {
        b'+' => (1, &o[1..]),
        b'-' => (-1, &o[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
    FixedOffset::east_opt(sign * secs)
}

/// A record's first line and its fields, as bytes.
type RawRow = (usize, Vec<Vec<u8>>);

/// A streaming RFC 4180 reader.
struct Csv<R> {
    r: R,
    delim: u8,
    /// The physical line the next byte is on (1-based).
    line: usize,
}

impl<R: BufRead> Csv<R> {
    /// The next record's fields (raw bytes) and the line it starts on.
    fn next(&mut self) -> Result<Option<RawRow>, ImportError> {
        let start = self.line;
        let mut fields: Vec<Vec<u8>> = Vec::new();
        let mut cur: Vec<u8> = Vec::new();
        let mut quoted = false;
        let mut after_quote = false;
        let mut at_field_start = true;
        let mut any = false;
        loop {
            let buf = self.r.fill_buf().map_err(|e| ImportError::Io {
                line: self.line,
                source: e,
            })?;
            if buf.is_empty() {
                if quoted {
                    return Err(ImportError::Syntax {
                        line: start,
                        reason: "a quoted field is never closed (unbalanced \")".into(),
                    });
                }
                if !any {
                    return Ok(None);
                }
                fields.push(cur);
                return Ok(Some((start, fields)));
            }
            let mut used = 0;
            let mut done = false;
            for &b in buf {
                used += 1;
                any = true;
                if quoted {
                    if b == b'"' {
                        quoted = false;
                        after_quote = true;
                    } else {
                        if b == b'\n' {
                            self.line += 1;
                        }
                        cur.push(b);
                    }
                    continue;
                }
                if b == b'"' && after_quote {
                    // A doubled quote inside a quoted field.
                    cur.push(b'"');
                    quoted = true;
                    after_quote = false;
                    continue;
                }
                if b == b'"' && at_field_start {
                    quoted = true;
                    at_field_start = false;
                    continue;
                }
                after_quote = false;
                if b == self.delim {
                    fields.push(std::mem::take(&mut cur));
                    at_field_start = true;
                } else if b == b'\n' {
                    self.line += 1;
                    done = true;
                    break;
                } else if b == b'\r' {
                    // CRLF: the LF ends the record.
                } else {
                    cur.push(b);
                    at_field_start = false;
                }
            }
            self.r.consume(used);
            if done {
                fields.push(cur);
                return Ok(Some((start, fields)));
            }
        }
    }
}

fn decode(bytes: &[u8], enc: Encoding) -> Result<String, std::str::Utf8Error> {
    match enc {
        Encoding::Utf8 => std::str::from_utf8(bytes).map(str::to_string),
        // Latin-1 is the first 256 code points, byte for byte.
        Encoding::Latin1 => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
    }
}

/// Header names compare without case, spaces, underscores and dashes (`Short description`
/// = `short_description`).
fn norm(h: &str) -> String {
    h.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// What an import read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows read (records and bad rows, not counting the header or empty rows).
    pub rows: usize,
    pub records: usize,
    pub bad: usize,
    /// Rows whose cells were all empty.
    pub empty_rows: usize,
    /// Mapped optional columns the file does not have (`field: column`).
    pub missing_columns: Vec<String>,
}

/// Reads a CSV export through `mapping`, calling `each` with every record or bad row in
/// file order (duplicate ids are bad rows: the first wins). Stops at the first error
/// that makes the rest of the file unreadable.
pub fn read_csv<R: BufRead>(
    reader: R,
    mapping: &Mapping,
    mut each: impl FnMut(Result<HistoryRecord, BadRecord>),
) -> Result<Summary, ImportError> {
    let mut csv = Csv {
        r: reader,
        delim: mapping.delimiter,
        line: 1,
    };
    let Some((hline, raw)) = csv.next()? else {
        return Err(ImportError::Header {
            line: 1,
            reason: "the file is empty (no header)".into(),
        });
    };
    let mut header: Vec<String> = Vec::with_capacity(raw.len());
    for (k, h) in raw.iter().enumerate() {
        let mut s = decode(h, mapping.encoding).map_err(|e| ImportError::Cell {
            line: hline,
            column: format!("#{}", k + 1),
            reason: format!("header is not UTF-8 ({e}); set encoding = \"latin-1\"?"),
        })?;
        if k == 0 {
            s = s.trim_start_matches('\u{feff}').to_string();
        }
        header.push(s.trim().to_string());
    }
    let find = |name: &str| -> Vec<usize> {
        let n = norm(name);
        header
            .iter()
            .enumerate()
            .filter(|(_, h)| norm(h) == n)
            .map(|(i, _)| i)
            .collect()
    };
    let mut summary = Summary::default();
    // Resolve each field to column positions.
    let c = &mapping.columns;
    let mut plan: Vec<(&'static str, Vec<(usize, String)>)> = Vec::new();
    let fields: [(&'static str, Option<&Cols>, bool); 17] = [
        ("id", Some(&c.id), true),
        ("opened_at", Some(&c.opened_at), true),
        ("resolved_at", c.resolved_at.as_ref(), false),
        ("ci", c.ci.as_ref(), false),
        ("title", c.title.as_ref(), false),
        ("alertnames", c.alertnames.as_ref(), false),
        ("category", c.category.as_ref(), false),
        ("subcategory", c.subcategory.as_ref(), false),
        ("symptom", c.symptom.as_ref(), false),
        ("location", c.location.as_ref(), false),
        ("service", c.service.as_ref(), false),
        ("ci_class", c.ci_class.as_ref(), false),
        ("assignment_group", c.assignment_group.as_ref(), false),
        ("closure_code", c.closure_code.as_ref(), false),
        ("priority", c.priority.as_ref(), false),
        ("resolution_note", c.resolution_note.as_ref(), false),
        ("known_error", c.known_error.as_ref(), false),
    ];
    for (field, cols, required) in fields {
        let Some(cols) = cols else { continue };
        let mut at: Vec<(usize, String)> = Vec::new();
        for name in cols.names() {
            for i in find(name) {
                at.push((i, header[i].clone()));
            }
        }
        if at.is_empty() {
            if required {
                let mut reason = format!(
                    "no column {} (mapped to {field}) in the header; it has {} column(s): {}",
                    cols.names()
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    header.len(),
                    header
                        .iter()
                        .filter(|h| !h.is_empty())
                        .take(12)
                        .map(|h| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if header.len() <= 1 {
                    let first = header.first().map(String::as_str).unwrap_or("");
                    if let Some(d) = [';', ',', '\t', '|']
                        .into_iter()
                        .find(|d| *d as u8 != mapping.delimiter && first.contains(*d))
                    {
                        reason.push_str(&format!(
                            "; the header does not split on {:?} but contains {d:?}: is the delimiter {d:?}?",
                            char::from(mapping.delimiter)
                        ));
                    }
                }
                return Err(ImportError::Header {
                    line: hline,
                    reason,
                });
            }
            summary
                .missing_columns
                .push(format!("{field}: {}", cols.names().join(" | ")));
            continue;
        }
        plan.push((field, at));
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut first_line: std::collections::HashMap<String, usize> = Default::default();
    while let Some((line, raw)) = csv.next()? {
        if raw.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            summary.empty_rows += 1;
            continue;
        }
        summary.rows += 1;
        let row = match row_record(line, &raw, &header, &plan, mapping) {
            Ok(r) => r,
            Err(RowError::Fatal(e)) => return Err(e),
            Err(RowError::Bad(b)) => {
                summary.bad += 1;
                each(Err(b));
                continue;
            }
        };
        if !seen.insert(row.id.clone()) {
            summary.bad += 1;
            let first = first_line.get(&row.id).copied().unwrap_or(0);
            each(Err(BadRecord {
                record: line,
                id: Some(row.id.clone()),
                reason: format!("duplicate id {:?} (first at line {first})", row.id),
            }));
            continue;
        }
        first_line.insert(row.id.clone(), line);
        summary.records += 1;
        each(Ok(row));
    }
    Ok(summary)
}

enum RowError {
    Fatal(ImportError),
    Bad(BadRecord),
}

fn row_record(
    line: usize,
    raw: &[Vec<u8>],
    header: &[String],
    plan: &[(&'static str, Vec<(usize, String)>)],
    mapping: &Mapping,
) -> Result<HistoryRecord, RowError> {
    let mut id_cell: Option<String> = None;
    let bad = |column: &str, reason: String, id: &Option<String>| {
        RowError::Bad(BadRecord {
            record: line,
            id: id.clone(),
            reason: format!("column {column:?}: {reason}"),
        })
    };
    // Cells of a field: (column name, trimmed text), non-empty only.
    let cells = |at: &[(usize, String)]| -> Result<Vec<(String, String)>, RowError> {
        let mut out = Vec::new();
        for (i, name) in at {
            let Some(b) = raw.get(*i) else {
                return Err(RowError::Bad(BadRecord {
                    record: line,
                    id: None,
                    reason: format!(
                        "the row has {} field(s), the header {}: no column {name:?}",
                        raw.len(),
                        header.len()
                    ),
                }));
            };
            let s = decode(b, mapping.encoding).map_err(|e| {
                RowError::Fatal(ImportError::Cell {
                    line,
                    column: name.clone(),
                    reason: format!(
                        "not UTF-8 ({e}): is the file in another encoding (set encoding = \"latin-1\")?"
                    ),
                })
            })?;
            let s = s.trim();
            if !s.is_empty() {
                out.push((name.clone(), s.to_string()));
            }
        }
        Ok(out)
    };
    let mut rec = HistoryRecord {
        id: String::new(),
        opened_at: DateTime::<Utc>::default(),
        resolved_at: None,
        ci: None,
        title: None,
        alertnames: Vec::new(),
        category: None,
        subcategory: None,
        symptom: None,
        assignment_group: None,
        priority: None,
        resolution_note: None,
        location: None,
        service: None,
        ci_class: None,
        closure_code: None,
        known_error: None,
    };
    let mut opened = false;
    // The id first, so later errors can name the record.
    for (field, at) in plan.iter().filter(|p| p.0 == "id") {
        let v = cells(at)?;
        match v.first() {
            Some((_, s)) => {
                rec.id = s.clone();
                id_cell = Some(s.clone());
            }
            None => return Err(bad(&at[0].1, format!("empty {field}"), &None)),
        }
    }
    for (field, at) in plan.iter().filter(|p| p.0 != "id") {
        let v = cells(at)?;
        let first = v.first().cloned();
        match *field {
            "opened_at" | "resolved_at" => {
                let Some((col, s)) = first else {
                    if *field == "opened_at" {
                        return Err(bad(&at[0].1, "empty opened_at".into(), &id_cell));
                    }
                    continue;
                };
                let t = parse_time(&s, mapping).ok_or_else(|| {
                    bad(
                        &col,
                        format!(
                            "cannot read {s:?} as a date and time (formats tried: RFC 3339{})",
                            mapping
                                .date_formats
                                .iter()
                                .map(|f| format!(", {f:?}"))
                                .collect::<String>()
                        ),
                        &id_cell,
                    )
                })?;
                if *field == "opened_at" {
                    rec.opened_at = t;
                    opened = true;
                } else {
                    rec.resolved_at = Some(t);
                }
            }
            "title" | "resolution_note" => {
                let text = v
                    .iter()
                    .map(|(_, s)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let text = (!text.is_empty()).then_some(text);
                if *field == "title" {
                    rec.title = text;
                } else {
                    rec.resolution_note = text;
                }
            }
            "alertnames" => {
                rec.alertnames = v
                    .iter()
                    .flat_map(|(_, s)| s.split([',', ' ']).map(str::to_string))
                    .filter(|s| !s.is_empty())
                    .collect();
            }
            "priority" => {
                if let Some((col, s)) = first {
                    let p = parse_priority(&s, mapping).ok_or_else(|| {
                        bad(
                            &col,
                            format!(
                                "cannot read {s:?} as a priority 1..5 (a leading digit, or a word the mapping's [priority] table names)"
                            ),
                            &id_cell,
                        )
                    })?;
                    rec.priority = Some(p);
                }
            }
            f => {
                let val = first.map(|(_, s)| s);
                match f {
                    "ci" => rec.ci = val,
                    "category" => rec.category = val,
                    "subcategory" => rec.subcategory = val,
                    "symptom" => rec.symptom = val,
                    "location" => rec.location = val,
                    "service" => rec.service = val,
                    "ci_class" => rec.ci_class = val,
                    "assignment_group" => rec.assignment_group = val,
                    "closure_code" => rec.closure_code = val,
                    "known_error" => rec.known_error = val,
                    _ => {}
                }
            }
        }
    }
    if !opened {
        return Err(RowError::Bad(BadRecord {
            record: line,
            id: id_cell,
            reason: "no opened_at".into(),
        }));
    }
    rec.validate().map_err(|e| {
        RowError::Bad(BadRecord {
            record: line,
            id: id_cell.clone(),
            reason: e.to_string(),
        })
    })
}

fn parse_time(s: &str, m: &Mapping) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in &m.date_formats {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return n
                .and_local_timezone(m.offset)
                .single()
                .map(|t| t.with_timezone(&Utc));
        }
    }
    None
}

fn parse_priority(s: &str, m: &Mapping) -> Option<u8> {
    if let Some(p) = m.priority.get(&s.to_lowercase()) {
        return Some(*p);
    }
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u8>().ok().filter(|p| (1..=5).contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8], m: &Mapping) -> Result<(Vec<HistoryRecord>, Vec<BadRecord>), ImportError> {
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        read_csv(text, m, |r| match r {
            Ok(r) => ok.push(r),
            Err(b) => bad.push(b),
        })?;
        Ok((ok, bad))
    }

    #[test]
    fn every_preset_parses() {
        for (name, _, _) in PRESETS {
            assert!(Mapping::preset(name).is_some(), "{name}");
        }
    }

    #[test]
    fn quoted_fields_crlf_and_latin1() {
        let m = Mapping::preset("bpi2014").unwrap();
        let text = b"CI Name (aff);Incident ID;Open Time;Category;Closure Code;KM number;;\r\n\
SUB1;IM1;05/02/2012 13:32:57;incident;\"Soft;ware\";KM1;;\r\n\
;;;;;;;\r\n\
SUB2;IM2;30-8-2012 7:00;incident;Caf\xe9;KM2;;\r\n";
        let (ok, bad) = read(text, &m).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].closure_code.as_deref(), Some("Soft;ware"));
        assert_eq!(ok[1].closure_code.as_deref(), Some("Café"));
        // Day first, local time one hour ahead of UTC.
        assert_eq!(ok[0].opened_at.to_rfc3339(), "2012-02-05T12:32:57+00:00");
        assert_eq!(ok[1].known_error.as_deref(), Some("KM2"));
    }

    #[test]
    fn bad_input_names_line_and_column() {
        let m = Mapping::preset("bpi2014").unwrap();
        // Wrong delimiter.
        let e = read(b"CI Name (aff),Incident ID,Open Time\nA,1,x\n", &m).unwrap_err();
        assert!(e.to_string().contains("is the delimiter ','?"), "{e}");
        // Unparseable date: a bad row with its line and column, the rest read.
        let (ok, bad) = read(
            b"Incident ID;Open Time;Category\nIM1;yesterday;incident\nIM2;05/02/2012 13:32:57;incident\n",
            &m,
        )
        .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(bad[0].record, 2);
        assert!(
            bad[0].reason.contains("column \"Open Time\""),
            "{:?}",
            bad[0]
        );
        // Another encoding than declared.
        let m = Mapping::parse(
            "delimiter = \";\"\n[columns]\nid = \"Incident ID\"\nopened_at = \"Open Time\"\ntitle = \"Title\"\n",
        )
        .unwrap();
        let e = read(
            b"Incident ID;Open Time;Title\nIM1;2026-01-01T00:00:00Z;caf\xe9\n",
            &m,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 2, column \"Title\": not UTF-8"),
            "{e}"
        );
        // Unterminated quote.
        let e = read(b"Incident ID;Open Time;Title\nIM1;x;\"open\n", &m).unwrap_err();
        assert!(e.to_string().starts_with("line 2: a quoted field"), "{e}");
    }
}
