//! Applying a placement: a firing alert goes where `policy::place` decided (opening or
//! reopening the incident first), joins it (members, priority, title, timeline, SLA,
//! enrichment), and the action's root changes follow (`roots`: reroot, merge, suspect,
//! confirm, evidence paths).
//!
//! Nothing here chooses an incident: every choice is made in `policy::place`, from a
//! read-only view, before anything is applied.

use chrono::{DateTime, Utc};
use compact_str::CompactString;

use super::engine::priority_of;
use super::policy::{Action, Placement};
use super::{AlertRecord, Engine, enrich, policy};
use crate::alert::Fingerprint;
use crate::cmdb::Topology;
use crate::cmdb::topology::Node;
use crate::incident::{
    CorrelationKey, Detail, Incident, IncidentStatus, TimelineKind, impact_of, incident_id,
    urgency_of,
};

/// Ends `title` with " (+N related alerts)" (none for 0), replacing the count it had.
/// Rewritten in place, with no formatting machinery: this runs for every joining alert.
pub(super) fn set_related_count(title: &mut String, n: u64) {
    const SUFFIX: &str = " related alerts)";
    if let Some(head) = title.strip_suffix(SUFFIX)
        && let Some(open) = head.rfind('(')
        && head[..open].ends_with(' ')
        && let Some(count) = head[open + 1..].strip_prefix('+')
        && count.bytes().all(|b| b.is_ascii_digit())
    {
        title.truncate(open - 1);
    }
    if n == 0 {
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    title.push_str(" (+");
    title.extend(digits[i..].iter().map(|&d| char::from(d)));
    title.push_str(SUFFIX);
}

impl Engine {
    /// Puts a firing alert already in `alerts` into an incident as the grouping policy
    /// decides.
    pub(super) fn place(
        &mut self,
        topo: &Topology,
        node: Option<Node>,
        fp: &Fingerprint,
        at: DateTime<Utc>,
    ) {
        if let Some(rec) = self.alerts.remove(fp) {
            self.place_record(topo, node, rec, at);
        }
    }

    /// Puts a firing alert into an incident as the grouping policy decides. The record is
    /// outside the map while the policy and a new incident look at it (no clone on the
    /// per-alert path), and goes in, with its incident set, before it joins.
    pub(super) fn place_record(
        &mut self,
        topo: &Topology,
        node: Option<Node>,
        mut rec: Box<AlertRecord>,
        at: DateTime<Utc>,
    ) {
        let ci = rec.ci_id.clone();
        let fp = rec.fingerprint.clone();
        let fp = &fp;
        let Placement { action, reason } = policy::place(&self.view(), topo, node, &rec, at);
        if let (Some(g), Some(n)) = (&self.causal, node)
            && let Some(t) = g.type_of(&rec.labels)
        {
            let horizon = at - self.cfg.max_window.max(self.cfg.window);
            let seen = self
                .ci_types
                .entry(CompactString::from(topo.ci(n).id.as_str()))
                .or_default();
            seen.retain(|(_, s)| *s >= horizon);
            match seen.iter_mut().find(|(k, _)| *k == t) {
                Some((_, s)) => *s = (*s).max(at),
                None => seen.push((t, at)),
            }
        }
        let opened = match &action {
            Action::Open { key } => Some(self.open_incident(topo, node, key.clone(), &rec, at)),
            _ => None,
        };
        let id = match (&action, &opened) {
            (Action::Open { .. }, Some(id)) => Some(id.as_str()),
            (
                Action::Reopen { id }
                | Action::Join { id, .. }
                | Action::Suspect { id, .. }
                | Action::Confirm { id },
                _,
            ) => Some(id.as_str()),
            (Action::Open { .. }, None) => None,
        };
        if let Some(id) = id {
            rec.incident_id = Some(id.into());
        }
        self.alerts.insert(rec);
        let score = reason.score;
        let reason = self.record.then(|| Box::new(reason));
        match action {
            Action::Open { .. } => {
                let Some(id) = opened else { return };
                self.join(topo, &id, fp, at, reason);
            }
            Action::Reopen { id } => {
                self.reopen(&id, at);
                self.join(topo, &id, fp, at, reason);
            }
            Action::Join {
                id,
                path,
                reroot,
                merge,
                orphans,
            } => {
                self.join(topo, &id, fp, at, reason);
                if let (Some(ci), false) = (ci.as_deref(), path.is_empty()) {
                    self.record_path(&id, ci, path);
                }
                if reroot && let Some(n) = node {
                    self.reroot(topo, &id, n, fp, at);
                }
                for m in merge {
                    if let Some(n) = node {
                        self.merge(topo, &m, &id, n, at);
                    }
                }
                // An orphan's incident is explained by the CI its peers alert under.
                for (m, under) in orphans {
                    let orphan = self.incidents.get(&m).and_then(|i| i.root_cause_ci.clone());
                    self.merge(topo, &m, &id, under, at);
                    if let Some(o) = orphan {
                        let path = vec![o.clone(), topo.ci(under).id.clone()];
                        self.record_path(&id, &o, path);
                    }
                }
            }
            Action::Suspect {
                id,
                root,
                path,
                merge,
            } => {
                self.join(topo, &id, fp, at, reason);
                self.suspect(topo, &id, root, fp, score, at);
                for m in merge {
                    self.merge(topo, &m, &id, root, at);
                }
                if let (Some(ci), false) = (ci.as_deref(), path.is_empty()) {
                    self.record_path(&id, ci, path);
                }
            }
            Action::Confirm { id } => {
                self.join(topo, &id, fp, at, reason);
                if let Some(n) = node {
                    self.confirm(topo, &id, n, fp, at);
                }
            }
        }
    }

    pub(super) fn open_incident(
        &mut self,
        topo: &Topology,
        node: Option<Node>,
        key: CorrelationKey,
        rec: &AlertRecord,
        at: DateTime<Utc>,
    ) -> String {
        let id = incident_id(self.next_number);
        self.next_number += 1;
        let urgency = urgency_of(rec.severity());
        let inc = Incident {
            id: id.clone(),
            title: rec.alertname().to_string(),
            status: IncidentStatus::Open,
            priority: self.priority(impact_of(None), urgency),
            impact: impact_of(None),
            urgency,
            root_cause_ci: None,
            root_cause: None,
            ci_ids: Default::default(),
            impacted_services: Vec::new(),
            assignment_group: self
                .cfg
                .assignment_rules
                .iter()
                .find_map(|r| r.apply(&rec.labels)),
            assignee: None,
            alert_fingerprints: Default::default(),
            alert_count: 0,
            opened_at: at,
            updated_at: at,
            acknowledged_at: None,
            resolved_at: None,
            closed_at: None,
            correlation_key: key.clone(),
            enrichment: serde_json::Map::new(),
            sla: None,
            resolution_note: None,
        };
        self.open_by_key.insert(key.clone(), id.clone());
        self.incidents.insert(id.clone(), inc);
        self.changes.opened += 1;
        self.timeline(
            &id,
            at,
            "sift",
            TimelineKind::Opened,
            serde_json::json!({"key": key}),
        );
        if let Some(n) = node {
            self.assess_root(topo, &id, n, rec.alertname(), true);
            let cid = topo.ci(n).id.clone();
            self.record_path(&id, &cid, vec![cid.clone()]);
        }
        id
    }

    /// Adds a firing alert to an incident and refreshes what depends on its members.
    pub(super) fn join(
        &mut self,
        topo: &Topology,
        id: &str,
        fp: &Fingerprint,
        at: DateTime<Utc>,
        reason: Option<Box<crate::incident::Reason>>,
    ) {
        // The record is borrowed beside the incident (two fields of the engine), so its
        // CI id and name are copied only where they are kept.
        let Some(rec) = self.alerts.get(fp) else {
            return;
        };
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let (sev, name) = (rec.severity(), CompactString::from(rec.alertname()));
        // A CI is filed under when its trouble began: the alert's onset (see `policy`).
        let onset = at - self.cfg.hold(rec.alertname());
        let mut runbooks = Vec::new();
        enrich::runbooks_of_alert(topo, rec, &mut runbooks);
        // What `index_ci` files the incident under: the CI, or the unknown host.
        let index_key: Option<CompactString> = match &rec.ci_id {
            Some(ci) => {
                if !inc.ci_ids.contains(ci.as_str()) {
                    inc.ci_ids.insert(ci.to_string());
                }
                Some(ci.as_str().into())
            }
            None => crate::cmdb::topology::unmapped_key(&rec.labels),
        };
        if !self.pending_resolve.is_empty() {
            self.pending_resolve.remove(id);
        }
        if inc.alert_fingerprints.insert(fp.clone()) {
            inc.alert_count = inc.alert_fingerprints.len() as u64;
            if self.record {
                self.changes
                    .members
                    .push((id.into(), fp.clone(), inc.alert_count - 1));
            }
        }
        inc.updated_at = inc.updated_at.max(at);
        let urgency = inc.urgency.min(urgency_of(sev));
        let priority = priority_of(
            &self.priorities,
            &self.cfg.priority_matrix,
            inc.impact,
            urgency,
        );
        let old_priority = inc.priority;
        inc.urgency = urgency;
        inc.priority = priority;
        if inc.title.is_empty() {
            let root = inc
                .root_cause_ci
                .as_deref()
                .and_then(|c| topo.get(c))
                .map(|c| c.display_name().to_string());
            inc.title = match root {
                Some(r) => format!("{r}: {name}"),
                None => name.to_string(),
            };
        }
        set_related_count(&mut inc.title, inc.alert_count.saturating_sub(1));
        self.mark_incident(id);
        if let Some(key) = &index_key {
            self.index_ci(key, id, onset);
        }
        let joined = Detail::AlertJoined {
            alertname: name,
            fingerprint: fp.clone(),
            reason,
        };
        self.timeline(id, at, "sift", TimelineKind::AlertJoined, joined);
        if priority != old_priority {
            self.timeline(
                id,
                at,
                "sift",
                TimelineKind::PriorityChanged,
                serde_json::json!({"from": old_priority, "to": priority}),
            );
        }
        self.enrich_joined(topo, id, runbooks);
        self.apply_sla(id);
    }
}
