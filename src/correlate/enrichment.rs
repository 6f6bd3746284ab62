//! The keys the core keeps in `Incident::enrichment`, typed: evidence paths, the
//! suspected root's support, the incidents an operator kept apart, the incident a merge
//! folded this one into, the root's details, and the display-only lists (`runbooks`,
//! `recent_changes`, `probably_change_related`, `similar_incidents`). One place that
//! knows their names and JSON shapes, so the rest of the core handles paths, numbers and
//! ids, not JSON.
//!
//! The stored JSON is what it always was (the incident document, the API and webhooks
//! show it as is): `evidence` {ci: [ci, …, root]}, `root_support` number, `kept_apart`
//! [incident id], `merged_into` incident id, `root_cause` and `root_ci` objects. The map
//! itself stays a JSON map (`Incident` is the public, stored shape), so what this version
//! did not write is read leniently: a value not of the expected shape reads as absent,
//! as before. Accessors only: nothing here decides anything.

use serde_json::{Value, json};

use crate::cmdb::Ci;
use crate::incident::RootCause;

/// An incident's enrichment map.
pub(super) type Map = serde_json::Map<String, Value>;

const EVIDENCE: &str = "evidence";
const ROOT_SUPPORT: &str = "root_support";
const KEPT_APART: &str = "kept_apart";
const MERGED_INTO: &str = "merged_into";
const ROOT_CAUSE: &str = "root_cause";
const ROOT_CI: &str = "root_ci";
const RUNBOOKS: &str = "runbooks";
const RECENT_CHANGES: &str = "recent_changes";
const PROBABLY_CHANGE_RELATED: &str = "probably_change_related";
const SIMILAR_INCIDENTS: &str = "similar_incidents";

/// The support of an incident's suspected root, as inferred (`None`: not recorded).
pub(super) fn root_support(e: &Map) -> Option<f64> {
    e.get(ROOT_SUPPORT).and_then(Value::as_f64)
}

/// Records the support of the incident's suspected root.
pub(super) fn set_root_support(e: &mut Map, support: f64) {
    e.insert(ROOT_SUPPORT.into(), json!(support));
}

/// Copies `from`'s recorded support (if any) into `to`.
pub(super) fn copy_root_support(from: &Map, to: &mut Map) {
    if let Some(v) = from.get(ROOT_SUPPORT) {
        to.insert(ROOT_SUPPORT.into(), v.clone());
    }
}

/// Whether `other` is on the incident's `kept_apart` list.
pub(super) fn is_kept_apart(e: &Map, other: &str) -> bool {
    e.get(KEPT_APART)
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(other)))
}

/// The incidents an operator kept this one apart from.
pub(super) fn kept_apart(e: &Map) -> impl Iterator<Item = &str> {
    e.get(KEPT_APART)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Adds `other` to the incident's `kept_apart` list (once).
pub(super) fn add_kept_apart(e: &mut Map, other: &str) {
    let list = e
        .entry(KEPT_APART)
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(l) = list.as_array_mut()
        && !l.iter().any(|v| v.as_str() == Some(other))
    {
        l.push(json!(other));
    }
}

/// Whether the incident was folded into another one.
pub(super) fn is_merged(e: &Map) -> bool {
    e.contains_key(MERGED_INTO)
}

/// Records that the incident was folded into `into`.
pub(super) fn set_merged_into(e: &mut Map, into: &str) {
    e.insert(MERGED_INTO.into(), json!(into));
}

/// Records the root CI's details.
pub(super) fn set_root_ci(e: &mut Map, ci: &Ci) {
    e.insert(
        ROOT_CI.into(),
        serde_json::to_value(ci).unwrap_or(Value::Null),
    );
}

/// Records the root cause (a copy of `Incident::root_cause`).
pub(super) fn set_root_cause(e: &mut Map, root: &RootCause) {
    e.insert(
        ROOT_CAUSE.into(),
        serde_json::to_value(root).unwrap_or_default(),
    );
}

/// Forgets the evidence and the root (a regroup recomputes them); the support too
/// unless `keep_support`.
pub(super) fn clear_root(e: &mut Map, keep_support: bool) {
    e.remove(EVIDENCE);
    e.remove(ROOT_CAUSE);
    if !keep_support {
        e.remove(ROOT_SUPPORT);
    }
}

/// Forgets the root CI's details (no root any more).
pub(super) fn clear_root_ci(e: &mut Map) {
    e.remove(ROOT_CI);
}

/// An evidence path as stored: its CI ids (anything else in the list is skipped).
fn path_of(p: &Value) -> Vec<String> {
    p.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// The incident's evidence paths, CI → path to the root, in the order stored.
pub(super) fn evidence_paths(e: &Map) -> Vec<(String, Vec<String>)> {
    e.get(EVIDENCE)
        .and_then(Value::as_object)
        .map(|ev| ev.iter().map(|(ci, p)| (ci.clone(), path_of(p))).collect())
        .unwrap_or_default()
}

/// The evidence path of `ci`, if one is recorded.
pub(super) fn evidence_path(e: &Map, ci: &str) -> Option<Vec<String>> {
    e.get(EVIDENCE)
        .and_then(|ev| ev.get(ci))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
}

/// Records `path`, from `ci` to the incident's root, as `ci`'s evidence: when it ends at
/// another CI whose own path is recorded, that path (past its first CI) completes it.
/// Returns how many CIs have a path now; `None` (nothing recorded) when `evidence` holds
/// something other than a map.
pub(super) fn record_evidence(e: &mut Map, ci: &str, mut path: Vec<String>) -> Option<usize> {
    let ev = e
        .entry(EVIDENCE)
        .or_insert_with(|| Value::Object(Default::default()));
    let ev = ev.as_object_mut()?;
    if let Some(last) = path.last().cloned()
        && last != ci
        && let Some(rest) = ev.get(&last).and_then(|v| v.as_array())
    {
        path.extend(
            rest.iter()
                .skip(1)
                .filter_map(|v| v.as_str().map(String::from)),
        );
    }
    ev.insert(ci.to_string(), json!(path));
    Some(ev.len())
}

/// Extends every evidence path past its old root along `ext` (the path from the old root
/// to the new one; its first entry, the old root, ends each path already).
pub(super) fn extend_evidence(e: &mut Map, ext: &[String]) {
    if let Some(ev) = e.get_mut(EVIDENCE).and_then(|v| v.as_object_mut()) {
        for path in ev.values_mut() {
            if let Some(p) = path.as_array_mut() {
                p.extend(ext.iter().skip(1).map(|x| json!(x)));
            }
        }
    }
}

/// Adds runbook links `found` to the incident's list, each once, in order.
pub(super) fn add_runbooks(e: &mut Map, found: Vec<String>) {
    let list = e
        .entry(RUNBOOKS)
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        for r in found {
            if !list.iter().any(|x| x.as_str() == Some(r.as_str())) {
                list.push(Value::String(r));
            }
        }
    }
}

/// Records the changes near the incident (`recent_changes`, display objects), whether one
/// probably caused it, and its runbook links (the whole list).
pub(super) fn set_changes_and_runbooks(
    e: &mut Map,
    changes: Vec<Value>,
    related: bool,
    runbooks: &[String],
) {
    e.insert(RECENT_CHANGES.into(), Value::Array(changes));
    e.insert(PROBABLY_CHANGE_RELATED.into(), json!(related));
    e.insert(RUNBOOKS.into(), json!(runbooks));
}

/// Records the similar past incidents shown (display objects); none removes the key.
pub(super) fn set_similar(e: &mut Map, list: Vec<Value>) {
    if list.is_empty() {
        e.remove(SIMILAR_INCIDENTS);
    } else {
        e.insert(SIMILAR_INCIDENTS.into(), Value::Array(list));
    }
}
