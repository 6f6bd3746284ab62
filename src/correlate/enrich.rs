//! Enrichment the core derives for an incident from what it already holds: recent changes
//! on the root CI or anything it depends on (and whether one overlaps the incident start),
//! and runbook links. Pure: the change records and the topology come in, nothing is read.
//! Written into `incident.enrichment` under `recent_changes`, `probably_change_related`
//! and `runbooks` each time an alert joins or the root moves.

use serde_json::{Value, json};

use super::{Engine, policy};
use crate::cmdb::Topology;

impl Engine {
    pub(super) fn enrich(&mut self, topo: &Topology, id: &str) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        let opened = inc.opened_at;
        let since = opened - self.cfg.change_lookback;
        // The root and what it depends on, nearest first.
        let mut cis: Vec<String> = Vec::new();
        if let Some(root) = inc.root_cause_ci.clone()
            && let Some(node) = topo.node(&root)
        {
            cis.push(root);
            let walk = policy::ancestors(self, topo, node);
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
        let mut runbooks: Vec<String> = Vec::new();
        let mut add = |s: &str| {
            let s = s.trim();
            if !s.is_empty() && !runbooks.iter().any(|r| r == s) {
                runbooks.push(s.to_string());
            }
        };
        for fp in &inc.alert_fingerprints {
            if let Some(a) = self.alerts.get(fp) {
                for key in ["runbook_url", "runbook"] {
                    if let Some(v) = a.annotations.get(key) {
                        add(v);
                    }
                }
            }
        }
        for ci in inc.root_cause_ci.iter().chain(inc.ci_ids.iter()) {
            match topo.get(ci).and_then(|c| c.attributes.get("runbook")) {
                Some(Value::String(s)) => add(s),
                Some(Value::Array(list)) => {
                    list.iter().filter_map(Value::as_str).for_each(&mut add)
                }
                _ => {}
            }
        }
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        inc.enrichment
            .insert("recent_changes".into(), Value::Array(changes));
        inc.enrichment
            .insert("probably_change_related".into(), json!(related));
        inc.enrichment.insert("runbooks".into(), json!(runbooks));
    }
}
