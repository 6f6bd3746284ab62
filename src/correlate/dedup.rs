//! Alert events in: a new alert's first sight, re-sends (deduplicated: a count, a later
//! `ends_at`, new annotations), resolves, re-fires of a resolved alert, and holding a new
//! firing alert back while a maintenance window covers its CI or what it depends on.
//!
//! This decides what an event means for its alert only. Where a new firing alert goes is
//! `policy::place`'s decision, applied by `apply`; resolving is `lifecycle`'s.

use chrono::{DateTime, Utc};

use super::{AlertRecord, Engine, Outcome, policy};
use crate::alert::{Alert, AlertStatus, Fingerprint};
use crate::cmdb::topology::Node;
use crate::cmdb::{CiMapper, Topology};

impl Engine {
    /// Ingests one alert event. `ci` is the alert's CI as mapped by the caller's
    /// `CiMapper` (see `ingest`); kept apart so replay and daemon map the same way.
    pub fn ingest(&mut self, topo: &Topology, mapper: &CiMapper, alert: Alert) -> Outcome {
        let at = alert.event_time();
        self.advance(topo, at);
        let fp = alert.fingerprint.clone();
        if !self.alerts.contains_key(&fp) {
            return self.first_sight(topo, mapper, alert, at);
        }
        let Some(rec) = self.alerts.get_mut(&fp) else {
            return Outcome::Duplicate;
        };
        rec.count += 1;
        let last_event_at = rec.last_event_at;
        rec.last_event_at = rec.last_event_at.max(at);
        if !(rec.status == AlertStatus::Firing && alert.status == AlertStatus::Firing) {
            self.mark_alert(&fp);
        }
        let Some(rec) = self.alerts.get_mut(&fp) else {
            return Outcome::Duplicate;
        };
        match (rec.status, alert.status) {
            (AlertStatus::Firing, AlertStatus::Firing) => {
                // A re-send refreshes expiry and annotations; a firing event older than
                // the current occurrence changes nothing else. When only the count and
                // `ends_at` moved, the writer journals them instead of rewriting the row.
                let mut only_count_and_end = rec.last_event_at == last_event_at;
                if alert.starts_at >= rec.starts_at {
                    if let Some(old) = rec.ends_at {
                        self.expiry.remove(old, &fp);
                    }
                    rec.ends_at = alert.ends_at;
                    if rec.annotations != alert.annotations {
                        rec.annotations = alert.annotations;
                        only_count_and_end = false;
                    }
                    if let Some(end) = rec.ends_at {
                        if self.watermark.is_some_and(|w| end <= w) {
                            self.mark_alert(&fp);
                            self.resolve_alert(&fp, end);
                            return Outcome::Resolved;
                        }
                        self.expiry.insert(end, fp.clone());
                    }
                }
                if only_count_and_end {
                    self.touch_alert(fp);
                } else {
                    self.mark_alert(&fp);
                }
                Outcome::Duplicate
            }
            (AlertStatus::Firing, AlertStatus::Resolved) => {
                let end = alert.ends_at.unwrap_or(at);
                if end < rec.starts_at {
                    return Outcome::Duplicate; // the end of an earlier occurrence
                }
                if let Some(old) = rec.ends_at {
                    self.expiry.remove(old, &fp);
                }
                self.resolve_alert(&fp, end);
                Outcome::Resolved
            }
            (AlertStatus::Resolved, AlertStatus::Resolved) => Outcome::Duplicate,
            (AlertStatus::Resolved, AlertStatus::Firing) => {
                let ended = rec.ends_at.unwrap_or(rec.starts_at);
                if alert.starts_at < ended {
                    return Outcome::Duplicate; // a late re-send of the occurrence that ended
                }
                let (count, flips, flapping) =
                    (rec.count, std::mem::take(&mut rec.flips), rec.flapping);
                self.refire_of = rec.incident_id.as_deref().map(|id| (id.to_string(), ended));
                let fresh = self.first_sight(topo, mapper, alert, at);
                self.refire_of = None;
                if let Some(r) = self.alerts.get_mut(&fp) {
                    r.count = count;
                    r.flips = flips;
                    r.flapping = flapping;
                }
                self.note_flip(&fp, at);
                fresh
            }
        }
    }

    pub(super) fn first_sight(
        &mut self,
        topo: &Topology,
        mapper: &CiMapper,
        alert: Alert,
        at: DateTime<Utc>,
    ) -> Outcome {
        let fp = alert.fingerprint.clone();
        let node = mapper.map(topo, &alert.labels);
        let mut rec = AlertRecord::new(alert, at);
        rec.ci_id = node.map(|n| topo.ci(n).id.as_str().into());
        self.mark_alert(&fp);
        if rec.status == AlertStatus::Resolved {
            // Resolved before sift ever saw it firing: recorded, opens nothing.
            self.alerts.insert(Box::new(rec));
            return Outcome::Resolved;
        }
        let expired = rec
            .ends_at
            .is_some_and(|end| self.watermark.is_some_and(|w| end <= w));
        self.count_firing(rec.ci_id.as_deref(), 1);
        let ends_at = rec.ends_at;
        self.place_firing(topo, node, Box::new(rec), at);
        match ends_at {
            Some(end) if expired => {
                self.resolve_alert(&fp, end);
                return Outcome::Resolved;
            }
            Some(end) => {
                self.expiry.insert(end, fp);
            }
            None => {}
        }
        Outcome::New
    }

    /// Puts a new firing alert (not yet in `alerts`) into an incident, or holds it back
    /// while a maintenance window covers its CI or something its CI depends on.
    pub(super) fn place_firing(
        &mut self,
        topo: &Topology,
        node: Option<Node>,
        mut rec: Box<AlertRecord>,
        at: DateTime<Utc>,
    ) {
        if let Some(n) = node
            && let Some((change, until)) = self.maintenance_at(topo, n, at)
        {
            rec.suppressed = true;
            rec.suppressed_by = Some(change.into_boxed_str());
            let fp = rec.fingerprint.clone();
            self.alerts.insert(rec);
            self.changes_out_alert(&fp);
            self.held.insert((until, fp));
            return;
        }
        self.place_record(topo, node, rec, at);
    }

    /// The maintenance change covering `node` or something it depends on at `at`, and when
    /// the last such window ends.
    pub(super) fn maintenance_at(
        &mut self,
        topo: &Topology,
        node: Node,
        at: DateTime<Utc>,
    ) -> Option<(String, DateTime<Utc>)> {
        if self.change_records.is_empty() {
            return None;
        }
        let walk = policy::ancestors(&self.memo, topo, node, self.cfg.max_hops);
        let mut found: Option<(String, DateTime<Utc>)> = None;
        for n in std::iter::once(node).chain(walk.iter().map(|r| r.node)) {
            for c in self.changes_on(&topo.ci(n).id) {
                if c.maintenance
                    && c.start <= at
                    && at <= c.end
                    && found.as_ref().is_none_or(|(_, e)| c.end > *e)
                {
                    found = Some((c.id.clone(), c.end));
                }
            }
        }
        found
    }

    pub(super) fn changes_out_alert(&mut self, fp: &Fingerprint) {
        self.mark_alert(fp);
    }
}
