//! SLA tracking in the core: response (acknowledge) and resolution targets per priority,
//! judged on event time. Deadlines are set from `opened_at` and the current priority (a
//! priority change moves them); a breach is flagged once, with a timeline entry, when
//! event time passes a deadline (an alert or a tick) or when the acknowledge / resolve
//! itself comes late. Resolving counts as responding. Pure: no clock.

use chrono::{DateTime, Duration, Utc};

use super::Engine;
use crate::incident::{Sla, TimelineKind};

/// Response and resolution targets of one priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaTarget {
    pub respond: Duration,
    pub resolve: Duration,
}

impl Engine {
    /// Sets (or moves, after a priority change) an incident's SLA deadlines.
    pub(super) fn apply_sla(&mut self, id: &str) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let Some(target) = self.cfg.sla.get(&inc.priority).copied() else {
            inc.sla = None;
            return;
        };
        let (respond_by, resolve_by) = (
            inc.opened_at + target.respond,
            inc.opened_at + target.resolve,
        );
        let old = inc.sla.clone().unwrap_or(Sla {
            respond_by,
            resolve_by,
            respond_breached: false,
            resolve_breached: false,
        });
        if inc.sla.is_some() && old.respond_by == respond_by && old.resolve_by == resolve_by {
            return;
        }
        inc.sla = Some(Sla {
            respond_by,
            resolve_by,
            ..old
        });
        self.sla_due.insert((respond_by, id.to_string()));
        self.sla_due.insert((resolve_by, id.to_string()));
        self.mark_incident(id);
    }

    /// Re-arms the deadlines of an incident loaded from the store.
    pub(super) fn arm_sla(&mut self, id: &str) {
        if let Some(s) = self.incidents.get(id).and_then(|i| i.sla.clone()) {
            self.sla_due.insert((s.respond_by, id.to_string()));
            self.sla_due.insert((s.resolve_by, id.to_string()));
        }
    }

    /// Flags the breaches of deadlines event time `t` has passed.
    pub(super) fn check_sla_due(&mut self, t: DateTime<Utc>) {
        while let Some((due, id)) = self.sla_due.first().cloned() {
            if due >= t {
                break;
            }
            self.sla_due.pop_first();
            self.evaluate_sla(&id, t);
        }
    }

    /// Flags what is breached at `t` for one incident (idempotent).
    pub(super) fn evaluate_sla(&mut self, id: &str, t: DateTime<Utc>) {
        let Some(inc) = self.incidents.get_mut(id) else {
            return;
        };
        let Some(mut sla) = inc.sla.clone() else {
            return;
        };
        let active = inc.status.is_active();
        let responded = inc.acknowledged_at.or(inc.resolved_at);
        let mut notes = Vec::new();
        if !sla.respond_breached {
            let late = match responded {
                Some(r) => r > sla.respond_by,
                None => active && t > sla.respond_by,
            };
            if late {
                sla.respond_breached = true;
                notes.push(("respond", TimelineKind::SlaRespondBreached, sla.respond_by));
            }
        }
        if !sla.resolve_breached {
            let late = match inc.resolved_at {
                Some(r) => r > sla.resolve_by,
                None => active && t > sla.resolve_by,
            };
            if late {
                sla.resolve_breached = true;
                notes.push(("resolve", TimelineKind::SlaResolveBreached, sla.resolve_by));
            }
        }
        if notes.is_empty() {
            return;
        }
        let priority = inc.priority;
        inc.sla = Some(sla);
        self.mark_incident(id);
        for (target, kind, due) in notes {
            self.timeline(
                id,
                due,
                "sift",
                kind,
                serde_json::json!({"target": target, "due": due, "priority": priority}),
            );
        }
    }
}
