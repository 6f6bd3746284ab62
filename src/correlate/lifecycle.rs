//! The incident lifecycle after placement: event time moving on (`tick`: expired alerts
//! resolve, hold-offs end, flapping settles, SLA deadlines pass, maintenance ends), alerts
//! resolving, incidents auto-resolving once all their alerts have, flapping, reopening,
//! and operators' changes (`patch_incident`).
//!
//! Pure: times come from events, ticks and the API edge, never from a clock. Grouping is
//! not decided here (`policy`).

use chrono::{DateTime, Duration, Utc};

use super::{Engine, IncidentPatch, PatchError};
use crate::alert::{AlertStatus, Fingerprint};
use crate::cmdb::Topology;
use crate::incident::{IncidentStatus, TimelineKind};

impl Engine {
    /// Moves event time forward to `now` (a tick from the daemon's clock): alerts past
    /// their `endsAt` resolve, incidents past their hold-off resolve.
    pub fn tick(&mut self, topo: &Topology, now: DateTime<Utc>) {
        self.advance(topo, now);
    }

    pub(super) fn advance(&mut self, topo: &Topology, t: DateTime<Utc>) {
        if self.watermark.is_some_and(|w| w >= t) {
            return;
        }
        self.watermark = Some(t);
        while let Some((end, fps)) = self.expiry.pop_due(t) {
            for fp in fps {
                self.resolve_alert(&fp, end);
            }
        }
        let due: Vec<(String, DateTime<Utc>)> = self
            .pending_resolve
            .iter()
            .filter(|(_, since)| **since + self.cfg.resolve_hold_off <= t)
            .map(|(id, since)| (id.clone(), *since))
            .collect();
        for (id, since) in due {
            self.pending_resolve.remove(id.as_str());
            self.auto_resolve(&id, since + self.cfg.resolve_hold_off);
        }
        if !self.flapping.is_empty() {
            self.settle_flapping(t);
        }
        self.check_sla_due(t);
        // Maintenance over and the alert still fires: now it is a real problem.
        while let Some((until, fp)) = self.held.first().cloned() {
            if until >= t {
                break;
            }
            self.held.pop_first();
            let Some(rec) = self.alerts.get_mut(&fp) else {
                continue;
            };
            if rec.status != AlertStatus::Firing || !rec.suppressed {
                continue;
            }
            let node = rec.ci_id.as_deref().and_then(|c| topo.node(c));
            // Another window may go on past this one's end: hold on until that one ends
            // (always later, so this loop ends).
            let next =
                node.and_then(|n| self.maintenance_at(topo, n, until + Duration::milliseconds(1)));
            if let Some((change, later)) = next {
                if let Some(rec) = self.alerts.get_mut(&fp) {
                    rec.suppressed_by = Some(change.into_boxed_str());
                }
                self.held.insert((later, fp));
                continue;
            }
            if let Some(rec) = self.alerts.get_mut(&fp) {
                rec.suppressed = false;
                rec.suppressed_by = None;
            }
            self.mark_alert(&fp);
            self.place(topo, node, &fp, until);
        }
    }

    /// An alert of a recently resolved incident fires again: the incident reopens.
    pub(super) fn reopen(&mut self, id: &str, at: DateTime<Utc>) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let was = inc.resolved_at;
        inc.status = IncidentStatus::Open;
        inc.resolved_at = None;
        inc.updated_at = inc.updated_at.max(at);
        let key = inc.correlation_key.clone();
        self.open_by_key
            .entry(key)
            .or_insert_with(|| id.to_string());
        self.mark_incident(id);
        self.timeline(
            id,
            at,
            "sift",
            TimelineKind::Reopened,
            serde_json::json!({"resolved_at": was}),
        );
    }

    pub(super) fn resolve_alert(&mut self, fp: &Fingerprint, end: DateTime<Utc>) {
        let Some(rec) = self.alerts.get_mut(fp) else {
            return;
        };
        if rec.status == AlertStatus::Resolved {
            return;
        }
        rec.status = AlertStatus::Resolved;
        rec.ends_at = Some(end);
        rec.last_event_at = rec.last_event_at.max(end);
        let ci = rec.ci_id.clone();
        let incident = rec.incident_id.clone();
        self.mark_alert(fp);
        self.count_firing(ci.as_deref(), -1);
        let Some(id) = incident else {
            return;
        };
        let fp_s = fp.0.clone();
        self.timeline(
            &id,
            end,
            "sift",
            TimelineKind::AlertResolved,
            serde_json::json!({"fingerprint": fp_s}),
        );
        let Some(inc) = self.incidents.get(id.as_str()) else {
            return;
        };
        if !inc.status.is_active() {
            return;
        }
        self.note_flip(fp, end);
        self.maybe_resolve(&id, end);
    }

    /// Resolves (or schedules the resolution of) an incident whose alerts have all
    /// resolved and none of which is flapping.
    pub(super) fn maybe_resolve(&mut self, id: &str, at: DateTime<Utc>) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        if !inc.status.is_active() {
            return;
        }
        let all_resolved = inc.alert_fingerprints.iter().all(|m| {
            self.alerts
                .get(m)
                .is_none_or(|r| r.status == AlertStatus::Resolved && !r.flapping)
        });
        if all_resolved {
            if self.cfg.resolve_hold_off <= Duration::zero() {
                self.auto_resolve(id, at);
            } else {
                self.pending_resolve.insert(id.to_string(), at);
            }
        }
    }

    /// Records a state change of an alert; past the threshold it is flapping, and its
    /// incident is held open until it has been steady for the flap window.
    pub(super) fn note_flip(&mut self, fp: &Fingerprint, at: DateTime<Utc>) {
        let (window, threshold) = (self.cfg.flap_window, self.cfg.flap_threshold);
        let Some(rec) = self.alerts.get_mut(fp) else {
            return;
        };
        rec.flips.retain(|t| *t > at - window);
        rec.flips.push(at);
        rec.flips.sort();
        if rec.flips.len() > threshold + 1 {
            rec.flips.remove(0);
        }
        if rec.flapping || rec.flips.len() <= threshold {
            return;
        }
        rec.flapping = true;
        let incident = rec.incident_id.clone();
        self.flapping.insert(fp.clone());
        self.mark_alert(fp);
        if let Some(id) = incident {
            self.pending_resolve.remove(id.as_str());
            let detail = serde_json::json!({"fingerprint": fp.0, "changes": threshold + 1});
            self.timeline(&id, at, "sift", TimelineKind::FlappingStarted, detail);
        }
    }

    /// Alerts steady for the flap window stop flapping; their incident may resolve now.
    pub(super) fn settle_flapping(&mut self, t: DateTime<Utc>) {
        let window = self.cfg.flap_window;
        let settled: Vec<Fingerprint> = self
            .flapping
            .iter()
            .filter(|fp| {
                self.alerts
                    .get(fp)
                    .is_none_or(|r| r.flips.last().is_none_or(|last| *last + window <= t))
            })
            .cloned()
            .collect();
        for fp in settled {
            self.flapping.remove(&fp);
            let Some(rec) = self.alerts.get_mut(&fp) else {
                continue;
            };
            rec.flapping = false;
            let since = rec.flips.last().map(|l| *l + window).unwrap_or(t);
            let (incident, resolved) =
                (rec.incident_id.clone(), rec.status == AlertStatus::Resolved);
            self.mark_alert(&fp);
            if let Some(id) = incident {
                self.timeline(
                    &id,
                    since,
                    "sift",
                    TimelineKind::FlappingStopped,
                    serde_json::json!({"fingerprint": fp.0}),
                );
                if resolved {
                    self.maybe_resolve(&id, since);
                }
            }
        }
    }

    pub(super) fn auto_resolve(&mut self, id: &str, at: DateTime<Utc>) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        if !inc.status.is_active() {
            return;
        }
        inc.status = IncidentStatus::Resolved;
        inc.resolved_at = Some(at);
        inc.updated_at = inc.updated_at.max(at);
        if self
            .open_by_key
            .get(&inc.correlation_key)
            .map(String::as_str)
            == Some(id)
        {
            self.open_by_key.remove(&inc.correlation_key);
        }
        self.mark_incident(id);
        self.changes.resolved += 1;
        self.timeline(
            id,
            at,
            "sift",
            TimelineKind::Resolved,
            serde_json::json!({"reason": "all alerts resolved"}),
        );
        self.remember_finished(id);
    }

    /// Applies an operator's change. `at` is the wall-clock time of the request (the API
    /// edge reads the clock, not the core).
    pub fn patch_incident(
        &mut self,
        id: &str,
        patch: &IncidentPatch,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PatchError> {
        let inc = self
            .incidents
            .get(id)
            .ok_or_else(|| PatchError::NotFound(id.to_string()))?;
        if let Some(to) = patch.status
            && to != inc.status
            && !inc.status.can_move_to(to)
        {
            return Err(PatchError::IllegalTransition {
                id: id.to_string(),
                from: inc.status.as_str(),
                to: to.as_str(),
            });
        }
        let key = inc.correlation_key.clone();
        let mut notes = Vec::new();
        let inc = self
            .incidents
            .get_mut(id)
            .ok_or_else(|| PatchError::NotFound(id.into()))?;
        if let Some(to) = patch.status
            && to != inc.status
        {
            let from = inc.status;
            inc.status = to;
            match to {
                IncidentStatus::Acknowledged => inc.acknowledged_at = Some(at),
                IncidentStatus::Resolved => inc.resolved_at = Some(at),
                IncidentStatus::Closed => inc.closed_at = Some(at),
                IncidentStatus::Open => inc.resolved_at = None,
            }
            notes.push((
                TimelineKind::of_status(to),
                serde_json::json!({"from": from.as_str(), "to": to.as_str()}),
            ));
        }
        if let Some(assignee) = &patch.assignee
            && *assignee != inc.assignee
        {
            inc.assignee = assignee.clone();
            notes.push((
                TimelineKind::Assigned,
                serde_json::json!({"assignee": assignee}),
            ));
        }
        if let Some(c) = &patch.comment {
            notes.push((TimelineKind::Comment, serde_json::json!({"text": c})));
        }
        if let Some(n) = &patch.resolution_note {
            inc.resolution_note = Some(n.clone());
            notes.push((TimelineKind::ResolutionNote, serde_json::json!({"text": n})));
        }
        inc.updated_at = inc.updated_at.max(at);
        let active = inc.status.is_active();
        if active {
            self.open_by_key
                .entry(key)
                .or_insert_with(|| id.to_string());
        } else {
            self.pending_resolve.remove(id);
            if self.open_by_key.get(&key).map(String::as_str) == Some(id) {
                self.open_by_key.remove(&key);
            }
        }
        self.mark_incident(id);
        for (kind, detail) in notes {
            self.timeline(id, at, actor, kind, detail);
        }
        self.evaluate_sla(id, at);
        if self
            .incidents
            .get(id)
            .is_some_and(|i| !i.status.is_active())
        {
            self.remember_finished(id);
        }
        Ok(())
    }
}
