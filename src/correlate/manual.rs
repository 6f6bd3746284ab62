//! Operators correcting the grouping: merge an incident into another, split chosen alerts
//! out of an incident into a new one. Each edit is recorded in the timelines it touches
//! with who made it, and as feedback pairs (these alerts belong together / apart) that
//! correlation tuning can read later.
//!
//! Part of the pure core: no I/O and no clock (the API edge passes the request's time).
//! An edit moves the alerts themselves (`AlertRecord::incident_id`), which is what makes
//! their later events follow them: a re-send stays with its record's incident, and a
//! re-fire goes back to it (`policy::place`, the refire rule). The store keeps that
//! column, so a restart rebuilds the same state. A split also marks both incidents
//! `kept_apart` from each other (in their documents, so it too survives a restart), which
//! the grouping policy reads: its merge rules never fold one back into the other. This
//! module must not decide grouping for new alerts: that stays in `policy`.

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::{Engine, enrichment, policy};
use crate::alert::{AlertStatus, Fingerprint, FingerprintSet};
use crate::cmdb::Topology;
use crate::cmdb::topology::Node;
use crate::incident::{
    CorrelationKey, IncidentStatus, Members, Reason, Rule, TimelineKind, impact_of, incident_id,
    urgency_of,
};

/// Most feedback pairs one edit records: merging two incidents of 10,000 alerts each
/// would otherwise write 100 million rows. The timeline says when pairs were left out.
pub const MAX_PAIRS: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("incident {0} not found")]
    NotFound(String),
    #[error("incident {0} is closed: a closed incident cannot be merged or split")]
    Closed(String),
    #[error("cannot merge incident {0} into itself")]
    IntoItself(String),
    #[error("incident {id} does not hold alerts {fingerprints:?}")]
    NotMember {
        id: String,
        fingerprints: Vec<String>,
    },
    #[error(
        "splitting out every alert of incident {0} would leave it empty; merge or close it instead"
    )]
    Everything(String),
}

/// Which edit made a feedback pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EditKind {
    Merge,
    Split,
}

impl EditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EditKind::Merge => "merge",
            EditKind::Split => "split",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "merge" => Some(EditKind::Merge),
            "split" => Some(EditKind::Split),
            _ => None,
        }
    }
}

/// What an operator said about two alerts: they belong in one incident, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Together,
    Apart,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Together => "together",
            Label::Apart => "apart",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "together" => Some(Label::Together),
            "apart" => Some(Label::Apart),
            _ => None,
        }
    }
}

/// One labelled pair of alerts (with their CIs, the unit correlation links), who said so
/// and when. `incident_id` is the incident the edit was made on (merge: the one merged
/// away; split: the one split), `other_incident_id` the other one (merge: the target;
/// split: the new incident).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FeedbackPair {
    /// The store's row id (0 before it is stored): a cursor for readers.
    #[serde(default)]
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: EditKind,
    pub label: Label,
    pub incident_id: String,
    pub other_incident_id: String,
    pub a: Fingerprint,
    pub a_ci: Option<String>,
    pub b: Fingerprint,
    pub b_ci: Option<String>,
}

/// The edit's context shared by its pairs.
struct PairOf<'a> {
    at: DateTime<Utc>,
    actor: &'a str,
    action: EditKind,
    incident_id: &'a str,
    other_incident_id: &'a str,
}

impl Engine {
    /// Merges incident `from` into `into` on an operator's request: every alert of `from`
    /// moves to `into`, `from` closes with `merged_into`. The root of the result is the
    /// root that explains the other (one depends on the other in the CMDB), else the
    /// target's; impact is the higher of the two, urgency the most urgent alert's.
    pub fn merge_incident(
        &mut self,
        topo: &Topology,
        from: &str,
        into: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), EditError> {
        if from == into {
            return Err(EditError::IntoItself(from.to_string()));
        }
        let src = self
            .incidents
            .get(from)
            .ok_or_else(|| EditError::NotFound(from.to_string()))?;
        let dst = self
            .incidents
            .get(into)
            .ok_or_else(|| EditError::NotFound(into.to_string()))?;
        for i in [src, dst] {
            if i.status == IncidentStatus::Closed {
                return Err(EditError::Closed(i.id.clone()));
            }
        }
        let src = src.clone();
        let (dst_fps, dst_impact, dst_services, old_priority, dst_status) = (
            dst.alert_fingerprints.iter().cloned().collect::<Vec<_>>(),
            dst.impact,
            dst.impacted_services.clone(),
            dst.priority,
            dst.status,
        );
        // Which root explains the other: a path up the dependencies from one to the other.
        let sr = src.root_cause_ci.as_deref().and_then(|r| topo.node(r));
        let tr = self
            .incidents
            .get(into)
            .and_then(|i| i.root_cause_ci.as_deref())
            .and_then(|r| topo.node(r));
        let up = |e: &Engine, a: Node, b: Node| {
            let walk = policy::ancestors(&e.memo, topo, a, e.cfg.max_hops);
            policy::path_in(topo, &walk, a, b)
        };
        let (source_root, ext) = match (sr, tr) {
            (Some(s), Some(t)) if s == t => (None, Some(Vec::new())),
            (Some(s), Some(t)) => match up(self, t, s) {
                Some(p) => (Some((s, p)), None),
                None => (None, up(self, s, t)),
            },
            // A target without a root (its alerts have no CI) takes the source's.
            (Some(s), None) => (Some((s, Vec::new())), None),
            _ => (None, None),
        };

        let firing = src.alert_fingerprints.iter().any(|f| {
            self.alerts
                .get(f)
                .is_some_and(|a| a.status == AlertStatus::Firing)
        });
        if dst_status == IncidentStatus::Resolved && firing {
            self.reopen(into, at);
        }
        let reason = self.record.then(|| Box::new(Reason::rule(Rule::Operator)));
        for fp in &src.alert_fingerprints {
            if let Some(a) = self.alerts.get_mut(fp) {
                a.incident_id = Some(into.into());
                self.mark_alert(fp);
            }
            self.join(topo, into, fp, at, reason.clone());
        }
        let src_paths = enrichment::evidence_paths(&src.enrichment);
        let explained = match (source_root, ext) {
            (Some((s, p)), _) => {
                // The source's root is upstream of the target's: it becomes the root.
                if let Some(inc) = self.incidents.get_mut(into) {
                    enrichment::extend_evidence(&mut inc.enrichment, &p);
                    enrichment::copy_root_support(&src.enrichment, &mut inc.enrichment);
                }
                let alerting = src.root_cause.as_ref().is_none_or(|r| r.alerting);
                let name = self.alertname_on(into, topo.ci(s).id.as_str());
                self.assess_root(topo, into, s, &name, alerting);
                if !alerting {
                    self.index_ci(topo.ci(s).id.as_str(), into, at);
                }
                let mut n = 0;
                for (ci, path) in src_paths {
                    self.record_path(into, &ci, path);
                    n += 1;
                }
                self.refresh_confidence(into);
                n
            }
            (None, Some(ext)) => {
                let root = tr.map(|t| topo.ci(t).id.clone()).unwrap_or_default();
                let mut n = 0;
                for (ci, mut path) in src_paths {
                    path.extend(ext.iter().skip(1).cloned());
                    if path.last() != Some(&root) {
                        path.push(root.clone());
                    }
                    self.record_path(into, &ci, path);
                    n += 1;
                }
                n
            }
            // Unrelated in the CMDB: the target's root stays, and the source's CIs stay
            // unexplained, which lowers the root's confidence.
            (None, None) => {
                self.refresh_confidence(into);
                0
            }
        };
        if let Some(inc) = self.incidents.get_mut(into) {
            // What the source was kept apart from, the merged incident is too.
            for other in enrichment::kept_apart(&src.enrichment) {
                if other != into {
                    enrichment::add_kept_apart(&mut inc.enrichment, other);
                }
            }
            let mut services = inc.impacted_services.clone();
            services.extend(dst_services);
            services.extend(src.impacted_services.iter().cloned());
            services.sort();
            services.dedup();
            inc.impacted_services = services;
            inc.impact = inc.impact.min(dst_impact).min(src.impact);
            inc.priority = super::priority_of(
                &self.priorities,
                &self.cfg.priority_matrix,
                inc.impact,
                inc.urgency,
            );
            inc.updated_at = inc.updated_at.max(at);
        }
        let new_priority = self
            .incidents
            .get(into)
            .map_or(old_priority, |i| i.priority);
        self.apply_sla(into);
        self.mark_incident(into);

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

        let ctx = PairOf {
            at,
            actor,
            action: EditKind::Merge,
            incident_id: from,
            other_incident_id: into,
        };
        let moved: Vec<Fingerprint> = src.alert_fingerprints.iter().cloned().collect();
        let (pairs, total) = self.pairs(&ctx, Label::Together, &moved, &dst_fps, MAX_PAIRS);
        let n = moved.len();
        let root = self
            .incidents
            .get(into)
            .and_then(|i| i.root_cause_ci.clone());
        self.timeline(
            from,
            at,
            actor,
            TimelineKind::Merged,
            serde_json::json!({"into": into, "alerts": n}),
        );
        self.timeline(
            into,
            at,
            actor,
            TimelineKind::Merged,
            serde_json::json!({"from": from, "alerts": n, "root_cause_ci": root,
                "explained_cis": explained, "priority": {"from": old_priority, "to": new_priority},
                "feedback_pairs": pairs, "feedback_pairs_left_out": total - pairs}),
        );
        self.maybe_resolve(into, at);
        Ok(())
    }

    /// Splits alerts `fps` of incident `id` out into a new incident, on an operator's
    /// request; returns the new incident's id. Each side's root, evidence, urgency and
    /// priority are worked out again from the alerts it keeps.
    pub fn split_incident(
        &mut self,
        topo: &Topology,
        id: &str,
        fps: &[Fingerprint],
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<String, EditError> {
        let inc = self
            .incidents
            .get(id)
            .ok_or_else(|| EditError::NotFound(id.to_string()))?;
        if inc.status == IncidentStatus::Closed {
            return Err(EditError::Closed(id.to_string()));
        }
        // Sets, not list scans: a split may name thousands of an incident's alerts.
        let mut chosen_set = FingerprintSet::default();
        let mut chosen: Vec<Fingerprint> = Vec::with_capacity(fps.len());
        for f in fps {
            if chosen_set.insert(f.clone()) {
                chosen.push(f.clone());
            }
        }
        let missing: Vec<String> = chosen
            .iter()
            .filter(|f| !inc.alert_fingerprints.contains(*f))
            .map(|f| f.0.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(EditError::NotMember {
                id: id.to_string(),
                fingerprints: missing,
            });
        }
        if chosen.len() >= inc.alert_fingerprints.len() {
            return Err(EditError::Everything(id.to_string()));
        }
        let Some(first) = chosen.first().and_then(|f| self.alerts.get(f)).cloned() else {
            return Err(EditError::NotMember {
                id: id.to_string(),
                fingerprints: chosen.iter().map(|f| f.0.to_string()).collect(),
            });
        };
        let old_priority = inc.priority;
        let was_resolved = inc.status == IncidentStatus::Resolved;
        let new_id = incident_id(self.next_number);
        let opened = self.open_incident(
            topo,
            None,
            CorrelationKey::Split(new_id.clone()),
            &first,
            at,
        );
        debug_assert_eq!(opened, new_id);
        // The new incident was not resolved by anyone: it starts open (and resolves below
        // if all its alerts have).
        let mut keys_left: std::collections::HashSet<CompactString> = Default::default();
        if let Some(inc) = self.incidents.get_mut(id) {
            inc.alert_fingerprints.retain(|f| !chosen_set.contains(f));
            inc.alert_count = inc.alert_fingerprints.len() as u64;
            inc.updated_at = inc.updated_at.max(at);
            keys_left = inc
                .alert_fingerprints
                .iter()
                .filter_map(|f| self.alerts.get(f))
                .filter_map(index_key)
                .collect();
        }
        if self.record {
            self.changes.rewrite_members.insert(id.to_string());
        }
        let reason = self.record.then(|| Box::new(Reason::rule(Rule::Operator)));
        for f in &chosen {
            let key = self.alerts.get_mut(f).and_then(|a| {
                a.incident_id = Some(new_id.as_str().into());
                index_key(a)
            });
            self.mark_alert(f);
            // The old incident no longer holds an alert on this CI (or host): new alerts
            // there must not be drawn into it by it.
            if let Some(k) = key
                && !keys_left.contains(&k)
                && let Some(c) = self.ci_state.get_mut(k.as_str())
            {
                c.incidents.retain(|x| x != id);
            }
            self.join(topo, &new_id, f, at, reason.clone());
        }
        self.regroup(topo, id, at);
        self.regroup(topo, &new_id, at);
        // The rules must not fold one back into the other (`policy`: kept apart).
        for (a, b) in [(id, new_id.as_str()), (new_id.as_str(), id)] {
            if let Some(inc) = self.incidents.get_mut(a) {
                enrichment::add_kept_apart(&mut inc.enrichment, b);
            }
        }
        let ctx = PairOf {
            at,
            actor,
            action: EditKind::Split,
            incident_id: id,
            other_incident_id: &new_id,
        };
        let left: Vec<Fingerprint> = self
            .incidents
            .get(id)
            .map(|i| i.alert_fingerprints.iter().cloned().collect())
            .unwrap_or_default();
        let (apart, apart_total) = self.pairs(&ctx, Label::Apart, &chosen, &left, MAX_PAIRS);
        let mut together = 0;
        let mut together_total = 0;
        for (i, a) in chosen.iter().enumerate() {
            let (n, t) = self.pairs(
                &ctx,
                Label::Together,
                std::slice::from_ref(a),
                &chosen[i + 1..],
                MAX_PAIRS.saturating_sub(apart + together),
            );
            together += n;
            together_total += t;
        }
        let alerts: Vec<&str> = chosen.iter().map(|f| f.0.as_str()).collect();
        let new_priority = self.incidents.get(id).map_or(old_priority, |i| i.priority);
        self.timeline(
            id,
            at,
            actor,
            TimelineKind::Split,
            serde_json::json!({"alerts": alerts, "to": new_id,
                "priority": {"from": old_priority, "to": new_priority},
                "feedback_pairs": apart + together,
                "feedback_pairs_left_out": apart_total + together_total - apart - together}),
        );
        self.timeline(
            &new_id,
            at,
            actor,
            TimelineKind::Split,
            serde_json::json!({"alerts": alerts, "from": id}),
        );
        if !was_resolved {
            self.maybe_resolve(id, at);
        }
        self.maybe_resolve(&new_id, at);
        Ok(new_id)
    }

    /// Works an incident's CIs, urgency, root, evidence, impact, priority and title out
    /// again from the alerts it holds (after a split). The root: a suspected root that
    /// every CI left still depends on stays; else the CI the most others depend on (ties:
    /// the one that alerted first in the incident).
    fn regroup(&mut self, topo: &Topology, id: &str, at: DateTime<Utc>) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        let members: Vec<_> = inc
            .alert_fingerprints
            .iter()
            .filter_map(|f| self.alerts.get(f))
            .collect();
        let mut ci_ids: Members<String> = Members::default();
        for a in &members {
            if let Some(c) = &a.ci_id {
                ci_ids.insert(c.to_string());
            }
        }
        let urgency = members
            .iter()
            .map(|a| urgency_of(a.severity()))
            .min()
            .unwrap_or(inc.urgency);
        let first_name = members
            .first()
            .map(|a| a.alertname().to_string())
            .unwrap_or_default();
        let nodes: Vec<Node> = ci_ids.iter().filter_map(|c| topo.node(c)).collect();
        let walks: Vec<_> = nodes
            .iter()
            .map(|&n| policy::ancestors(&self.memo, topo, n, self.cfg.max_hops))
            .collect();
        let below = |r: Node| {
            nodes
                .iter()
                .zip(&walks)
                .filter(|(n, w)| **n != r && policy::path_in(topo, w, **n, r).is_some())
                .count()
        };
        let kept = inc
            .root_cause
            .as_ref()
            .filter(|rc| !rc.alerting)
            .and_then(|rc| topo.node(&rc.ci_id))
            .filter(|&r| !nodes.is_empty() && below(r) == nodes.len());
        let root = match kept {
            Some(r) => Some((r, false)),
            None => {
                let mut best: Option<(Node, usize)> = None;
                for &n in &nodes {
                    let k = below(n);
                    if best.is_none_or(|(_, b)| k > b) {
                        best = Some((n, k));
                    }
                }
                best.map(|(n, _)| (n, true))
            }
        };
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        inc.ci_ids = ci_ids;
        inc.urgency = urgency;
        inc.updated_at = inc.updated_at.max(at);
        enrichment::clear_root(&mut inc.enrichment, kept.is_some());
        match root {
            Some((r, alerting)) => {
                let rid = topo.ci(r).id.clone();
                let name = self.alertname_on(id, &rid);
                let name = if name.is_empty() { first_name } else { name };
                self.assess_root(topo, id, r, &name, alerting);
                for (&n, w) in nodes.iter().zip(&walks) {
                    let cid = topo.ci(n).id.clone();
                    if n == r {
                        self.record_path(id, &cid, vec![cid.clone()]);
                    } else if let Some(p) = policy::path_in(topo, w, n, r) {
                        self.record_path(id, &cid, p);
                    }
                }
                self.refresh_confidence(id);
            }
            None => {
                inc.root_cause_ci = None;
                inc.root_cause = None;
                enrichment::clear_root_ci(&mut inc.enrichment);
                inc.impacted_services.clear();
                inc.impact = impact_of(None);
                inc.priority = super::priority_of(
                    &self.priorities,
                    &self.cfg.priority_matrix,
                    inc.impact,
                    inc.urgency,
                );
                let n = inc.alert_count.saturating_sub(1);
                inc.title = first_name;
                super::set_related_count(&mut inc.title, n);
                self.mark_incident(id);
                self.apply_sla(id);
            }
        }
    }

    /// The confidence of an incident's root from the share of its CIs explained now (for
    /// when CIs joined without an evidence path: `record_path` is what sets it).
    fn refresh_confidence(&mut self, id: &str) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        let Some(root) = inc.root_cause_ci.clone() else {
            return;
        };
        let path = enrichment::evidence_paths(&inc.enrichment)
            .into_iter()
            .find(|(ci, _)| *ci == root)
            .map(|(_, p)| p);
        match path {
            Some(p) => self.record_path(id, &root, p),
            None => {
                // Any recorded path: rewriting it recomputes the share.
                if let Some((ci, p)) = enrichment::evidence_paths(&inc.enrichment)
                    .into_iter()
                    .next()
                {
                    self.record_path(id, &ci, p);
                }
            }
        }
    }

    /// The name of an incident's first alert on `ci` (empty when none).
    fn alertname_on(&self, id: &str, ci: &str) -> String {
        self.incidents
            .get(id)
            .into_iter()
            .flat_map(|i| i.alert_fingerprints.iter())
            .filter_map(|f| self.alerts.get(f))
            .find(|a| a.ci_id.as_deref() == Some(ci))
            .map(|a| a.alertname().to_string())
            .unwrap_or_default()
    }

    /// Records the pairs `a` × `b` with `label`, at most `budget`; (recorded, all pairs).
    fn pairs(
        &mut self,
        ctx: &PairOf,
        label: Label,
        a: &[Fingerprint],
        b: &[Fingerprint],
        budget: usize,
    ) -> (usize, usize) {
        let total = a.len() * b.len();
        if !self.record {
            return (0, total);
        }
        let ci = |e: &Engine, f: &Fingerprint| {
            e.alerts
                .get(f)
                .and_then(|r| r.ci_id.as_ref())
                .map(|c| c.to_string())
        };
        let mut n = 0;
        'outer: for x in a {
            for y in b {
                if n >= budget {
                    break 'outer;
                }
                let pair = FeedbackPair {
                    id: 0,
                    at: ctx.at,
                    actor: ctx.actor.to_string(),
                    action: ctx.action,
                    label,
                    incident_id: ctx.incident_id.to_string(),
                    other_incident_id: ctx.other_incident_id.to_string(),
                    a: x.clone(),
                    a_ci: ci(self, x),
                    b: y.clone(),
                    b_ci: ci(self, y),
                };
                self.changes.feedback.push(pair);
                n += 1;
            }
        }
        (n, total)
    }
}

/// What `join` files an alert's incident under in the CI index: its CI, or its host.
fn index_key(a: &super::AlertRecord) -> Option<CompactString> {
    match &a.ci_id {
        Some(ci) => Some(ci.clone()),
        None => crate::cmdb::topology::unmapped_key(&a.labels),
    }
}
