//! The evidence graph of an incident as inline SVG, drawn on the server: the root CI at
//! the bottom, each symptom CI above it as far as its dependency path is long, silent CIs
//! on a path drawn dashed, each link labelled with why it was made. Huge incidents are
//! summarised: the shortest paths are drawn up to `MAX_NODES` CIs and the rest counted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use maud::{Markup, html};
use serde_json::Value;

use crate::cmdb::Topology;
use crate::incident::Incident;

const MAX_NODES: usize = 40;
const NODE_W: i64 = 160;
const NODE_H: i64 = 30;
const ROW_H: i64 = 90;
const COL_W: i64 = 190;
const LABEL_CHARS: usize = 20;

/// What the reason of a CI's first alert says, in a few words.
fn reason_label(r: &Value) -> String {
    let rule = r["rule"].as_str().unwrap_or("linked").replace('_', " ");
    let mut s = rule;
    if let Some(l) = r["lag_seconds"].as_i64() {
        s.push_str(&format!(", {l:+} s"));
    }
    if let Some(score) = r["score"].as_f64()
        && score < 1.0
    {
        s.push_str(&format!(", score {score:.2}"));
    }
    s
}

fn short(s: &str) -> String {
    if s.chars().count() <= LABEL_CHARS {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(LABEL_CHARS - 1).collect();
        t.push('…');
        t
    }
}

pub fn evidence(inc: &Incident, reasons: &HashMap<String, Value>, topo: &Topology) -> Markup {
    let Some(root) = inc.root_cause_ci.as_deref() else {
        return html! { p { "No root CI identified: the alerts are grouped by label or host, not by the CMDB." } };
    };
    let mut paths: Vec<Vec<String>> = inc
        .enrichment
        .get("evidence")
        .and_then(|e| e.as_object())
        .map(|m| {
            m.values()
                .filter_map(|p| p.as_array())
                .map(|p| {
                    p.iter()
                        .filter_map(|c| c.as_str().map(String::from))
                        .collect::<Vec<_>>()
                })
                .filter(|p| p.len() > 1)
                .collect()
        })
        .unwrap_or_default();
    // Shortest first: a summarised graph keeps the links nearest the root.
    paths.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
    let alerting: BTreeSet<&str> = inc.ci_ids.iter().map(String::as_str).collect();
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    depth.insert(root.to_string(), 0);
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut drawn_paths = Vec::new();
    let mut left_out: BTreeSet<String> = BTreeSet::new();
    for p in &paths {
        let new = p.iter().filter(|c| !depth.contains_key(*c)).count();
        if depth.len() + new > MAX_NODES {
            left_out.insert(p[0].clone());
            continue;
        }
        let n = p.len();
        for (i, c) in p.iter().enumerate() {
            let d = depth.entry(c.clone()).or_insert(0);
            *d = (*d).max(n - 1 - i);
            if let Some(next) = p.get(i + 1) {
                let label = if i == 0 {
                    reasons
                        .get(c)
                        .map(reason_label)
                        .unwrap_or_else(|| "depends on".into())
                } else {
                    let rel = topo
                        .node(c)
                        .zip(topo.node(next))
                        .and_then(|(a, b)| topo.relation_type(a, b).map(String::from));
                    rel.unwrap_or_else(|| "depends on".into())
                };
                edges.entry((c.clone(), next.clone())).or_insert(label);
            }
        }
        drawn_paths.push(p);
    }
    let unlinked: Vec<&str> = alerting
        .iter()
        .copied()
        .filter(|c| !depth.contains_key(*c) && !left_out.contains(*c))
        .collect();
    let max_depth = depth.values().copied().max().unwrap_or(0);
    let mut rows: Vec<Vec<&str>> = vec![Vec::new(); max_depth + 1];
    for (c, d) in &depth {
        rows[*d].push(c);
    }
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1) as i64;
    let width = (widest * COL_W).max(COL_W * 2);
    let height = max_depth as i64 * ROW_H + 20 + NODE_H / 2 + 10;
    let mut pos: HashMap<&str, (i64, i64)> = HashMap::new();
    for (d, row) in rows.iter().enumerate() {
        let y = 20 + (max_depth - d) as i64 * ROW_H;
        let step = width / (row.len() as i64 + 1);
        for (i, c) in row.iter().enumerate() {
            pos.insert(c, (step * (i as i64 + 1), y));
        }
    }
    let summary = format!(
        "Root {root}; {} CIs linked to it{}",
        depth.len() - 1,
        if left_out.is_empty() {
            String::new()
        } else {
            format!(", {} more not drawn", left_out.len())
        }
    );
    html! {
        figure.graph {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) role="img" aria-labelledby="graph-title" {
                title #graph-title { "Evidence graph. " (summary) }
                defs {
                    marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse" {
                        path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" {}
                    }
                }
                @for ((from, to), label) in &edges {
                    @if let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(from.as_str()), pos.get(to.as_str())) {
                        g.edge {
                            line x1=(x1) y1=(y1 + NODE_H / 2) x2=(x2) y2=(y2 - NODE_H / 2) marker-end="url(#arrow)" {}
                            text x=((x1 + x2) / 2 + 4) y=((y1 + y2) / 2) { (label) }
                        }
                    }
                }
                @for (c, &(x, y)) in &pos {
                    @let is_root = *c == root;
                    @let silent = !alerting.contains(c);
                    g class={ "node" @if is_root { " root" } @if silent { " silent" } } data-ci=(c) {
                        title { (c) @if is_root { " (root)" } @if silent { " (silent: no alert)" } }
                        rect x=(x - NODE_W / 2) y=(y - NODE_H / 2) width=(NODE_W) height=(NODE_H) rx="4" {}
                        text x=(x) y=(y + 5) text-anchor="middle" { (short(c)) }
                    }
                }
            }
            figcaption {
                (summary) ". Root at the bottom; dashed boxes are silent CIs (on the path, not alerting); each arrow points at what the CI depends on, labelled with why the link was made."
            }
        }
        details.paths {
            summary { "The paths as text" }
            ul {
                li { strong { "Root: " } (root) @if !alerting.contains(root) { " (silent, suspected)" } }
                @for p in &drawn_paths { li { (p.join(" → ")) } }
                @for c in &left_out { li { (c) " (not drawn)" } }
            }
        }
        @if !unlinked.is_empty() {
            p { "Alerting CIs not linked through the CMDB: " (unlinked.join(", ")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(evidence: serde_json::Value, cis: Vec<String>) -> Incident {
        serde_json::from_value(serde_json::json!({
            "id": "INC0000001", "title": "t", "status": "open", "priority": 1, "impact": 1,
            "urgency": 1, "root_cause_ci": "db", "ci_ids": cis, "impacted_services": [],
            "assignment_group": null, "assignee": null, "alert_count": 1,
            "opened_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "acknowledged_at": null, "resolved_at": null, "closed_at": null,
            "correlation_key": "ci:db", "enrichment": {"evidence": evidence},
        }))
        .expect("incident")
    }

    #[test]
    fn a_huge_incident_is_summarised_and_names_are_escaped() {
        let mut ev = serde_json::Map::new();
        let mut cis = vec!["db".to_string()];
        for i in 0..500 {
            let c = format!("app-{i}<script>");
            ev.insert(c.clone(), serde_json::json!([c, "pool", "db"]));
            cis.push(c);
        }
        let html = evidence(
            &incident(serde_json::Value::Object(ev), cis),
            &HashMap::new(),
            &Topology::new(),
        )
        .into_string();
        let drawn = html.matches("<g class=\"node").count();
        assert_eq!(drawn, MAX_NODES, "drawn nodes");
        assert!(html.contains("more not drawn"));
        assert!(html.contains(r#"class="node root" data-ci="db""#));
        assert!(html.contains(r#"class="node silent" data-ci="pool""#));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
