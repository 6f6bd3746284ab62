//! Per-incident features: where it points in the topology, what it says, when it happened.
//!
//! - CI neighbourhood: the incident's CI and what it depends on within `hops` (nearest
//!   first). A dependent's incident can point at the CI it depends on: orders-api timing
//!   out on its database is evidence about the database.
//! - Signature: the first alertname, else the title's leading words.
//! - Words: a bag over the title, alertnames (split at case changes) and symptom, plus
//!   every coded field as one whole-value atom (`close:software`), without the incident's
//!   own CI name (dependents of one root
//!   name different CIs for the same failure), digits-only words and stop words. Vectors are
//!   hashed TF-IDF counts, unit length, so Euclidean distance is a cosine distance.
//! - Time of week (UTC weekday and hour) for recurrence.
//!
//! Pure functions; no I/O.

use std::collections::HashMap;

use chrono::{Datelike, Timelike};

use super::HistoryRecord;
use crate::cmdb::Topology;

/// Hashed word-bag width: collisions among the few hundred distinct words and coded values
/// of one block stay rare enough.
pub const DIMS: usize = 512;

const STOP: &[&str] = &[
    "the", "and", "for", "with", "from", "into", "on", "of", "to", "in", "at", "is", "are", "was",
    "were", "has", "have", "not", "again", "incident", "alert", "alerts", "related", "issue",
    "problem", "see", "via", "by", "an", "a",
];

#[derive(Debug, Clone)]
pub struct Features {
    /// The CI id (resolved through the topology when known, else as written).
    pub ci: Option<String>,
    /// Whether `ci` is a CI of the topology.
    pub ci_known: bool,
    /// `ci` (hop 0) and what it depends on within the hop limit, nearest first.
    pub neighbourhood: Vec<(String, u32)>,
    /// The nearest CI upstream of `ci` that the title names, with its distance: the
    /// incident says where it comes from ("timeouts to backend (too many connections on
    /// db-01)").
    pub named: Option<(String, u32)>,
    pub signature: String,
    /// Title words, alertname words, and whole coded values as `field:value` atoms
    /// (`alertname:`, `cat:`, `sub:`, `sym:`, `close:`, `svc:`, `loc:`, `class:`, `grp:`).
    pub words: Vec<String>,
    /// Where the base rate of an incident without a CI is judged: its service, else its
    /// location, else its category, else none (`svc:` / `loc:` / `cat:` keys).
    pub scope: Option<String>,
    /// 0 = Monday.
    pub weekday: u8,
    pub hour: u8,
}

/// Splits `PostgresTooManyConnections` / `too_many-connections` into lowercase words.
pub fn split_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in text.chars() {
        if ch.is_alphanumeric() {
            if ch.is_uppercase() && prev_lower && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
            cur.extend(ch.to_lowercase());
        } else {
            prev_lower = false;
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn keep(word: &str) -> bool {
    word.chars().count() >= 2 && !word.chars().all(|c| c.is_ascii_digit()) && !STOP.contains(&word)
}

/// The CI as the topology knows it (id, name or alias), or as written.
pub fn resolve_ci(topo: Option<&Topology>, ci: &str) -> (String, bool) {
    match topo.and_then(|t| t.resolve(ci).map(|n| t.ci(n).id.clone())) {
        Some(id) => (id, true),
        None => (ci.to_string(), false),
    }
}

/// CIs a text names: whitespace/punctuation-separated tokens that are a CI's id, name or
/// alias (a trailing `:port` ignored), in order of appearance.
pub fn mentioned_cis(topo: &Topology, text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in text.split(|c: char| c.is_whitespace() || "()[]{},;\"'<>|=".contains(c)) {
        let tok = raw.trim_matches(|c: char| c == ':' || c == '.' || c == '-' || c == '/');
        if tok.is_empty() {
            continue;
        }
        let hit = topo.resolve(tok).or_else(|| {
            tok.rsplit_once(':')
                .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
                .and_then(|(h, _)| topo.resolve(h))
        });
        if let Some(n) = hit {
            let id = topo.ci(n).id.clone();
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

pub fn extract(rec: &HistoryRecord, topo: Option<&Topology>, hops: u32) -> Features {
    let title = rec.title.as_deref().unwrap_or("");
    let mentions = topo.map(|t| mentioned_cis(t, title)).unwrap_or_default();
    let (ci, ci_known) = match rec.ci.as_deref() {
        Some(c) => {
            let (id, known) = resolve_ci(topo, c);
            (Some(id), known)
        }
        // A record without a CI whose title names one is about that CI.
        None => match mentions.first() {
            Some(m) => (Some(m.clone()), true),
            None => (None, false),
        },
    };
    let mut neighbourhood = Vec::new();
    if let Some(id) = &ci {
        neighbourhood.push((id.clone(), 0));
        if let Some(t) = topo
            && let Some(node) = t.node(id)
        {
            for r in t.upstream(node, hops, 64) {
                neighbourhood.push((t.ci(r.node).id.clone(), r.hops));
            }
        }
    }
    // The nearest CI upstream of the incident's own that its title names.
    let named = neighbourhood
        .iter()
        .filter(|(c, h)| *h > 0 && mentions.contains(c))
        .min_by_key(|(_, h)| *h)
        .cloned();
    // CI names are not evidence about the failure mode (the topology carries them).
    let mut own: Vec<String> = Vec::new();
    if let Some(c) = rec.ci.as_deref() {
        own.extend(split_words(c));
    }
    for id in ci.iter().chain(mentions.iter()) {
        own.extend(split_words(id));
        if let Some(t) = topo
            && let Some(ci) = t.get(id)
        {
            own.extend(split_words(ci.display_name()));
            for a in &ci.aliases {
                own.extend(split_words(a));
            }
        }
    }
    let mut words = Vec::new();
    for t in rec
        .title
        .iter()
        .chain(rec.alertnames.iter())
        .chain(rec.symptom.iter())
    {
        words.extend(
            split_words(t)
                .into_iter()
                .filter(|w| keep(w) && !own.contains(w)),
        );
    }
    for a in &rec.alertnames {
        words.push(format!("alertname:{}", normalise_alertname(a)));
    }
    for (tag, v) in coded(rec) {
        // The CI's own attributes say where, not what failed: with a CI they would make
        // every cluster on it look specific.
        if ci.is_some() && matches!(tag, "svc" | "loc" | "class" | "grp") {
            continue;
        }
        words.push(format!("{tag}:{}", v.to_lowercase()));
    }
    let signature = rec.alertnames.first().cloned().unwrap_or_else(|| {
        let lead: Vec<String> = split_words(title)
            .into_iter()
            .filter(|w| keep(w) && !own.contains(w))
            .take(4)
            .collect();
        if !lead.is_empty() {
            return lead.join(" ");
        }
        if !title.is_empty() {
            return title.to_string();
        }
        // Codes only: the most specific two of what there is.
        let codes: Vec<&str> = [
            &rec.symptom,
            &rec.subcategory,
            &rec.closure_code,
            &rec.category,
        ]
        .iter()
        .filter_map(|f| f.as_deref())
        .take(2)
        .collect();
        codes.join(" / ")
    });
    let scope = rec
        .service
        .as_ref()
        .map(|s| format!("svc:{s}"))
        .or_else(|| rec.location.as_ref().map(|l| format!("loc:{l}")))
        .or_else(|| rec.category.as_ref().map(|c| format!("cat:{c}")));
    Features {
        ci,
        ci_known,
        neighbourhood,
        named,
        signature,
        words,
        scope,
        weekday: rec.opened_at.weekday().num_days_from_monday() as u8,
        hour: rec.opened_at.hour() as u8,
    }
}

/// Severity words that monitoring tools append to one rule's name (`...Critical`,
/// `..._warning`): one failure, not two signatures.
const SEVERITY: &[&str] = &[
    "critical", "crit", "warning", "warn", "major", "minor", "info", "page", "ticket", "sev",
];

/// An alertname as a signature: its words (camel case and snake case alike), severity
/// words dropped, joined by `_`.
pub fn normalise_alertname(a: &str) -> String {
    let ws: Vec<String> = split_words(a)
        .into_iter()
        .filter(|w| !(SEVERITY.contains(&w.as_str()) || (w.starts_with("sev") && w.len() <= 4)))
        .collect();
    if ws.is_empty() {
        a.to_lowercase()
    } else {
        ws.join("_")
    }
}

/// The coded fields of a record with their atom tags, in a fixed order.
pub fn coded(rec: &HistoryRecord) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("cat", &rec.category),
        ("sub", &rec.subcategory),
        ("sym", &rec.symptom),
        ("close", &rec.closure_code),
        ("svc", &rec.service),
        ("loc", &rec.location),
        ("class", &rec.ci_class),
        ("grp", &rec.assignment_group),
    ]
    .into_iter()
    .filter_map(|(t, v)| v.as_deref().map(|v| (t, v)))
}

/// FNV-1a, 64 bit: stable across runs, platforms and Rust versions (ids and hashed
/// vectors must not change when the toolchain does).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Document frequencies of words over a set of incidents.
pub fn document_frequencies<'a>(
    all: impl Iterator<Item = &'a Features>,
) -> (HashMap<String, u32>, u32) {
    let mut df: HashMap<String, u32> = HashMap::new();
    let mut n = 0;
    for f in all {
        n += 1;
        let mut ws: Vec<&String> = f.words.iter().collect();
        ws.sort();
        ws.dedup();
        for w in ws {
            *df.entry(w.clone()).or_default() += 1;
        }
    }
    (df, n)
}

/// The unit-length hashed TF-IDF vector of an incident's words, sparse: sorted
/// (dimension, weight) pairs, empty when it has no words.
pub fn vector(f: &Features, df: &HashMap<String, u32>, n_docs: u32) -> Vec<(u16, f32)> {
    let mut v: Vec<(u16, f64)> = Vec::with_capacity(f.words.len());
    for w in &f.words {
        let d = f64::from(df.get(w).copied().unwrap_or(1).max(1));
        let idf = (f64::from(n_docs.max(1)) / d).ln() + 1.0;
        let dim = (fnv1a(w.as_bytes()) % DIMS as u64) as u16;
        match v.iter_mut().find(|(k, _)| *k == dim) {
            Some(e) => e.1 += idf,
            None => v.push((dim, idf)),
        }
    }
    v.sort_by_key(|e| e.0);
    let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Vec::new();
    }
    v.into_iter().map(|(k, x)| (k, (x / norm) as f32)).collect()
}

/// Cosine similarity of two sparse unit vectors.
pub fn cosine(a: &[(u16, f32)], b: &[(u16, f32)]) -> f64 {
    let (mut i, mut j, mut s) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += f64::from(a[i].1) * f64::from(b[j].1);
                i += 1;
                j += 1;
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdb::CmdbFile;

    fn rec(ci: &str, title: &str, alert: &str) -> HistoryRecord {
        HistoryRecord {
            id: "INC1".into(),
            opened_at: "2026-06-01T08:15:00Z".parse().unwrap(),
            resolved_at: None,
            ci: Some(ci.into()),
            title: Some(title.into()),
            alertnames: if alert.is_empty() {
                vec![]
            } else {
                vec![alert.into()]
            },
            category: Some("database".into()),
            subcategory: None,
            symptom: None,
            assignment_group: None,
            priority: Some(2),
            resolution_note: None,
            location: None,
            service: None,
            ci_class: None,
            closure_code: None,
            known_error: None,
        }
    }

    fn topo() -> Topology {
        let doc = CmdbFile::parse(
            "cis:\n - {id: db-01, name: orders-db, aliases: [10.0.0.1]}\n - {id: orders-api}\n - {id: web}\nrelations:\n - {source: orders-api, target: db-01, type: depends_on}\n - {source: web, target: orders-api, type: depends_on}\n",
        )
        .unwrap();
        Topology::from_file(&doc)
    }

    #[test]
    fn camel_case_alertnames_become_words() {
        assert_eq!(
            split_words("PostgresTooManyConnections on db-01"),
            ["postgres", "too", "many", "connections", "on", "db", "01"]
        );
    }

    #[test]
    fn a_dependent_points_at_what_it_depends_on() {
        let t = topo();
        let f = extract(&rec("web", "web: HTTP 5xx", "HighErrorRate"), Some(&t), 2);
        assert_eq!(
            f.neighbourhood,
            [
                ("web".to_string(), 0),
                ("orders-api".into(), 1),
                ("db-01".into(), 2)
            ]
        );
        // An alias resolves to the CI id.
        let f = extract(&rec("10.0.0.1", "x", "A"), Some(&t), 2);
        assert_eq!(f.ci.as_deref(), Some("db-01"));
        assert!(f.ci_known);
        assert_eq!(f.weekday, 0);
        assert_eq!(f.hour, 8);
    }

    #[test]
    fn own_ci_names_are_not_words_and_similar_failures_are_close() {
        let t = topo();
        let a = extract(
            &rec(
                "db-01",
                "orders-db: too many connections",
                "PostgresTooManyConnections",
            ),
            Some(&t),
            2,
        );
        assert!(!a.words.iter().any(|w| w == "orders" || w == "db"));
        let b = extract(
            &rec(
                "orders-api",
                "orders-api: connection pool exhausted, too many connections",
                "",
            ),
            Some(&t),
            2,
        );
        let c = extract(
            &rec("web", "web: disk full on /var", "DiskFull"),
            Some(&t),
            2,
        );
        let (df, n) = document_frequencies([&a, &b, &c].into_iter());
        let (va, vb, vc) = (vector(&a, &df, n), vector(&b, &df, n), vector(&c, &df, n));
        assert!(cosine(&va, &vb) > cosine(&va, &vc));
        assert!((cosine(&va, &va) - 1.0).abs() < 1e-6);
        assert_eq!(b.signature, "connection pool exhausted too");
    }

    #[test]
    fn a_title_naming_an_upstream_ci_points_at_it() {
        let t = topo();
        let f = extract(
            &rec(
                "web",
                "web: timeouts to backend (too many connections on orders-db)",
                "HighLatency",
            ),
            Some(&t),
            2,
        );
        assert_eq!(f.named, Some(("db-01".to_string(), 2)));
        assert!(!f.words.iter().any(|w| w == "orders"));
        // No CI field, but the title names one.
        let mut r = rec("x", "10.0.0.1:5432 refuses connections", "");
        r.ci = None;
        let f = extract(&r, Some(&t), 2);
        assert_eq!(f.ci.as_deref(), Some("db-01"));
    }
}
