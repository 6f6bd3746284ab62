//! Enrichment the core derives for an incident from what it already holds: recent changes
//! on the root CI or anything it depends on (and whether one overlaps the incident start),
//! and runbook links. Pure: the change records and the topology come in, nothing is read.
//! Written into `incident.enrichment` under `recent_changes`, `probably_change_related`
//! and `runbooks`: computed whole when the root moves or the change log or the CMDB
//! changed, and otherwise only extended by each joining alert (so a join costs the same
//! in an incident of ten alerts and of ten thousand).
//!
//! Runbook order: the root CI's, then per member alert in join order its annotations'
//! (`runbook_url`, `runbook`) and its CI's `runbook` attribute; first occurrence wins. The
//! incremental path appends in exactly that order, so both paths agree.

use serde_json::{Value, json};

use super::{Engine, enrichment, policy};
use crate::cmdb::Topology;

impl Engine {
    /// A member joined, with its runbook links `found` (`runbooks_of_alert`): add them,
    /// or recompute everything when the root or the change log moved since the last full
    /// computation.
    pub(super) fn enrich_joined(&mut self, topo: &Topology, id: &str, found: Vec<String>) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        let current = self.enriched.get(id).is_some_and(|(root, changes, cmdb)| {
            *root == inc.root_cause_ci && *changes == self.change_version && *cmdb == topo.version()
        });
        if !current {
            return self.enrich(topo, id);
        }
        if found.is_empty() {
            return;
        }
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        enrichment::add_runbooks(&mut inc.enrichment, found);
    }

    /// Recomputes the whole enrichment of incident `id`.
    pub(super) fn enrich(&mut self, topo: &Topology, id: &str) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        self.enriched.insert(
            id.to_string(),
            (
                inc.root_cause_ci.clone(),
                self.change_version,
                topo.version(),
            ),
        );
        let opened = inc.opened_at;
        let since = opened - self.cfg.change_lookback;
        // The root and what it depends on, nearest first.
        let mut cis: Vec<String> = Vec::new();
        if let Some(root) = inc.root_cause_ci.clone()
            && let Some(node) = topo.node(&root)
        {
            cis.push(root);
            let walk = policy::ancestors(&self.memo, topo, node, self.cfg.max_hops);
            cis.extend(walk.iter().map(|r| topo.ci(r.node).id.clone()));
        }
        let mut changes: Vec<(chrono::DateTime<chrono::Utc>, Value)> = Vec::new();
        let mut related = false;
        for ci in &cis {
            for c in self.changes_on(ci) {
                if c.start > opened || c.end < since {
                    continue;
                }
                let overlaps = c.start <= opened && opened <= c.end;
                related |= overlaps;
                changes.push((
                    c.start,
                    json!({
                        "id": c.id, "ci_id": c.ci_id, "summary": c.summary, "start": c.start,
                        "end": c.end, "maintenance": c.maintenance, "overlaps_start": overlaps,
                    }),
                ));
            }
        }
        // Latest first: the change closest to the fault is the likeliest cause.
        changes.sort_by_key(|c| std::cmp::Reverse(c.0));
        let changes: Vec<Value> = changes.into_iter().map(|(_, v)| v).collect();

        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        let mut found: Vec<String> = Vec::new();
        if let Some(root) = &inc.root_cause_ci {
            runbooks_of_ci(topo, root, &mut found);
        }
        for fp in &inc.alert_fingerprints {
            if let Some(a) = self.alerts.get(fp) {
                runbooks_of_alert(topo, a, &mut found);
            }
        }
        let mut runbooks: Vec<String> = Vec::new();
        for r in found {
            if !runbooks.contains(&r) {
                runbooks.push(r);
            }
        }
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        enrichment::set_changes_and_runbooks(&mut inc.enrichment, changes, related, &runbooks);
    }
}

/// An alert's runbook links: its annotations', then its CI's.
pub(super) fn runbooks_of_alert(topo: &Topology, a: &super::AlertRecord, out: &mut Vec<String>) {
    for key in ["runbook_url", "runbook"] {
        if let Some(v) = a.annotations.get(key) {
            push_link(out, v);
        }
    }
    if let Some(ci) = &a.ci_id {
        runbooks_of_ci(topo, ci, out);
    }
}

/// A CI's `runbook` attribute: a string or a list of strings.
fn runbooks_of_ci(topo: &Topology, ci: &str, out: &mut Vec<String>) {
    match topo.get(ci).and_then(|c| c.attributes.get("runbook")) {
        Some(Value::String(s)) => push_link(out, s),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .for_each(|s| push_link(out, s)),
        _ => {}
    }
}

fn push_link(out: &mut Vec<String>, s: &str) {
    let s = s.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
}
