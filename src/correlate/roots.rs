//! An incident's root and its evidence, as applied placements change them: assessing a
//! root (owner group, impacted services, impact, priority, title), the evidence path of
//! each CI up to the root, suspecting a silent root, confirming it when it alerts,
//! re-rooting on a late root, and merging incidents that one CI explains.
//!
//! Called by `apply` (and `manual`) only; nothing here decides which incident or root:
//! that is `policy::place`'s.

use chrono::{DateTime, Utc};

use super::engine::priority_of;
use super::{Engine, enrichment, policy};
use crate::alert::{AlertStatus, Fingerprint};
use crate::cmdb::Topology;
use crate::cmdb::topology::Node;
use crate::incident::{IncidentStatus, RootCause, TimelineKind, impact_of};

impl Engine {
    /// Sets what follows from an incident's root CI: its id, owner group, impacted
    /// business services, ITIL impact and priority, title, and root details.
    pub(super) fn assess_root(
        &mut self,
        topo: &Topology,
        id: &str,
        root: Node,
        alertname: &str,
        alerting: bool,
    ) {
        let ci = topo.ci(root);
        let mut services: Vec<String> = std::iter::once(root)
            .chain(
                topo.impact(root, self.cfg.max_hops, 100_000)
                    .into_iter()
                    .map(|r| r.node),
            )
            .map(|m| topo.ci(m))
            .filter(|c| c.is_business_service())
            .map(|c| c.id.clone())
            .collect();
        services.sort();
        let service_crit: Vec<crate::cmdb::Criticality> = services
            .iter()
            .filter_map(|s| topo.get(s))
            .map(|c| c.criticality)
            .collect();
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        inc.root_cause_ci = Some(ci.id.clone());
        inc.root_cause = Some(RootCause {
            ci_id: ci.id.clone(),
            alerting,
            confidence: 0.0,
            reason: String::new(),
        });
        inc.impacted_services = services;
        if let Some(g) = &ci.owner_group {
            inc.assignment_group = Some(g.clone());
        }
        // Impact: the root's own criticality, raised by the business services it hurts
        // (the most critical one; three or more make it at least medium).
        let service_impact = service_crit
            .iter()
            .map(|c| impact_of(Some(*c)))
            .min()
            .unwrap_or(3)
            .min(if service_crit.len() >= 3 { 2 } else { 3 });
        inc.impact = impact_of(Some(ci.criticality)).min(service_impact);
        inc.priority = priority_of(
            &self.priorities,
            &self.cfg.priority_matrix,
            inc.impact,
            inc.urgency,
        );
        let base = if alerting {
            format!("{}: {alertname}", ci.display_name())
        } else {
            format!("{} (suspected root): {alertname}", ci.display_name())
        };
        inc.title = match inc.alert_count {
            0 | 1 => base,
            n => format!("{base} (+{} related alerts)", n - 1),
        };
        enrichment::set_root_ci(&mut inc.enrichment, ci);
        self.mark_incident(id);
        self.enrich(topo, id);
        self.similar(id);
        self.apply_sla(id);
    }

    /// Records the dependency path from `ci` to the incident's root (evidence): `path`
    /// runs from `ci` to a CI already in the incident, whose own path completes it.
    pub(super) fn record_path(&mut self, id: &str, ci: &str, path: Vec<String>) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let Some(explained) = enrichment::record_evidence(&mut inc.enrichment, ci, path) else {
            return;
        };
        let total = inc.ci_ids.len().max(1);
        let share = explained.min(total) as f64 / total as f64;
        let Some(root) = inc.root_cause.as_mut() else {
            return;
        };
        if root.alerting {
            root.confidence = share;
            root.reason =
                "the alerting CI that every other alerting CI of this incident depends on".into();
        } else {
            // Inferred, not seen: at most half as sure, scaled by the inference's support.
            let support = enrichment::root_support(&inc.enrichment).unwrap_or(1.0);
            root.confidence = share * 0.5 * support;
            root.reason = "suspected: not alerting itself, but every alerting CI of this incident depends on it and they started within the propagation window".into();
        }
        enrichment::set_root_cause(&mut inc.enrichment, root);
    }

    /// `s`, a CI that is not alerting, is the suspected root of incident `id`: every
    /// evidence path is extended from the old root up to `s`, and `s` is filed as a CI of
    /// the incident so that alerts below it link to it and an alert on it confirms it.
    pub(super) fn suspect(
        &mut self,
        topo: &Topology,
        id: &str,
        s: Node,
        fp: &Fingerprint,
        support: f64,
        at: DateTime<Utc>,
    ) {
        let old = self.incidents.get(id).and_then(|i| i.root_cause_ci.clone());
        let ext = old
            .as_deref()
            .and_then(|o| topo.node(o))
            .and_then(|o| {
                let walk = policy::ancestors(&self.memo, topo, o, self.cfg.max_hops);
                policy::path_in(topo, &walk, o, s)
            })
            .unwrap_or_default();
        let name = self
            .alerts
            .get(fp)
            .map(|a| a.alertname().to_string())
            .unwrap_or_default();
        if let Some(inc) = self.incidents.get_mut(id) {
            enrichment::set_root_support(&mut inc.enrichment, support);
            enrichment::extend_evidence(&mut inc.enrichment, &ext);
        }
        self.assess_root(topo, id, s, &name, false);
        let sid = topo.ci(s).id.clone();
        let onset = at - self.cfg.hold(&name);
        self.index_ci(&sid, id, onset);
        if let Some(ci) = old.clone() {
            // Re-records the old root's own path (now ending at `s`) with the confidence.
            let p = self
                .incidents
                .get(id)
                .and_then(|i| enrichment::evidence_path(&i.enrichment, &ci));
            if let Some(p) = p {
                self.record_path(id, &ci, p);
            }
        }
        self.timeline(
            id,
            at,
            "sift",
            TimelineKind::RootSuspected,
            serde_json::json!({"from": old, "to": sid, "support": support}),
        );
    }

    /// The suspected root `c` of incident `id` alerts: it is the confirmed root.
    pub(super) fn confirm(
        &mut self,
        topo: &Topology,
        id: &str,
        c: Node,
        fp: &Fingerprint,
        at: DateTime<Utc>,
    ) {
        let name = self
            .alerts
            .get(fp)
            .map(|a| a.alertname().to_string())
            .unwrap_or_default();
        self.assess_root(topo, id, c, &name, true);
        let cid = topo.ci(c).id.clone();
        self.record_path(id, &cid, vec![cid.clone()]);
        self.timeline(
            id,
            at,
            "sift",
            TimelineKind::RootConfirmed,
            serde_json::json!({"ci_id": cid}),
        );
    }

    /// The alert's CI `c` explains the incident's root: `c` becomes the root and every
    /// evidence path is extended from the old root up to `c`.
    pub(super) fn reroot(
        &mut self,
        topo: &Topology,
        id: &str,
        c: Node,
        fp: &Fingerprint,
        at: DateTime<Utc>,
    ) {
        let Some(old) = self.incidents.get(id).and_then(|i| i.root_cause_ci.clone()) else {
            return;
        };
        let Some(old_node) = topo.node(&old) else {
            return;
        };
        let walk = policy::ancestors(&self.memo, topo, old_node, self.cfg.max_hops);
        let ext = policy::path_in(topo, &walk, old_node, c).unwrap_or_default();
        let name = self
            .alerts
            .get(fp)
            .map(|a| a.alertname().to_string())
            .unwrap_or_default();
        if let Some(inc) = self.incidents.get_mut(id) {
            enrichment::extend_evidence(&mut inc.enrichment, &ext);
        }
        self.assess_root(topo, id, c, &name, true);
        let cid = topo.ci(c).id.clone();
        self.record_path(id, &cid, vec![cid.clone()]);
        self.timeline(
            id,
            at,
            "sift",
            TimelineKind::RootChanged,
            serde_json::json!({"from": old, "to": cid}),
        );
    }

    /// Folds incident `from` into `into`: `c` (now in `into`) explains `from`'s root.
    pub(super) fn merge(
        &mut self,
        topo: &Topology,
        from: &str,
        into: &str,
        c: Node,
        at: DateTime<Utc>,
    ) {
        let Some(src) = self.incidents.get(from).cloned() else {
            return;
        };
        if !src.status.is_active() || from == into {
            return;
        }
        let ext = src
            .root_cause_ci
            .as_deref()
            .and_then(|r| topo.node(r))
            .and_then(|r| {
                let walk = policy::ancestors(&self.memo, topo, r, self.cfg.max_hops);
                policy::path_in(topo, &walk, r, c)
            })
            .unwrap_or_default();
        let cid = topo.ci(c).id.clone();
        for fp in &src.alert_fingerprints {
            if let Some(a) = self.alerts.get_mut(fp) {
                a.incident_id = Some(into.into());
                self.mark_alert(fp);
            }
            self.join(topo, into, fp, at, None);
        }
        for (ci, mut p) in enrichment::evidence_paths(&src.enrichment) {
            p.extend(ext.iter().skip(1).cloned());
            if p.last() != Some(&cid) {
                p.push(cid.clone());
            }
            self.record_path(into, &ci, p);
        }
        let all_resolved = self
            .incidents
            .get(into)
            .map(|i| {
                i.alert_fingerprints.iter().all(|f| {
                    self.alerts
                        .get(f)
                        .is_none_or(|a| a.status == AlertStatus::Resolved)
                })
            })
            .unwrap_or(true);
        if !all_resolved {
            self.pending_resolve.remove(into);
        }
        self.pending_resolve.remove(from);
        if let Some(f) = self.incidents.get_mut(from) {
            f.status = IncidentStatus::Closed;
            f.closed_at = Some(at);
            f.updated_at = f.updated_at.max(at);
            enrichment::set_merged_into(&mut f.enrichment, into);
            if self.open_by_key.get(&f.correlation_key).map(String::as_str) == Some(from) {
                self.open_by_key.remove(&f.correlation_key);
            }
        }
        self.mark_incident(from);
        self.timeline(
            from,
            at,
            "sift",
            TimelineKind::Merged,
            serde_json::json!({"into": into, "explained_by": cid}),
        );
        self.timeline(
            into,
            at,
            "sift",
            TimelineKind::Merged,
            serde_json::json!({"from": from, "explained_by": cid}),
        );
    }
}
