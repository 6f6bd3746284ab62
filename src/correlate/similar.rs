//! Similar past incidents: what an operator most wants to see next to a new incident is
//! how the last ones like it were fixed. The core keeps a bounded history of finished
//! incidents per root CI (fed as incidents resolve or close, and by the daemon at start)
//! and writes the closest ones into `enrichment.similar_incidents`: same root CI and same
//! alert signature first, then same root CI, newest first. Pure, no I/O.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Engine, enrichment};
use crate::incident::Incident;

/// Finished incidents kept per root CI.
const PER_CI: usize = 20;
/// Similar incidents shown.
const SHOWN: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct PastIncident {
    pub id: String,
    pub title: String,
    /// The root alert's name: the incident title after "<root>: ".
    pub signature: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_note: Option<String>,
}

/// What is kept of a finished incident, and under which root CI; nothing for incidents
/// without a root or folded into another one.
fn past_of(inc: &Incident) -> Option<(String, PastIncident)> {
    let root = inc.root_cause_ci.clone()?;
    if enrichment::is_merged(&inc.enrichment) {
        return None;
    }
    Some((
        root,
        PastIncident {
            id: inc.id.clone(),
            title: inc.title.clone(),
            signature: signature(&inc.title),
            opened_at: inc.opened_at,
            resolved_at: inc.resolved_at.or(inc.closed_at),
            resolution_note: inc.resolution_note.clone(),
        },
    ))
}

/// The alert signature of an incident, from its title `"<root name>: <alertname> (+N …)"`.
pub fn signature(title: &str) -> String {
    let base = title.split(" (+").next().unwrap_or(title);
    base.rsplit_once(": ")
        .map(|(_, a)| a)
        .unwrap_or(base)
        .to_string()
}

impl Engine {
    /// Records a finished incident (resolved or closed) for later similarity lookups.
    /// Incidents without a root CI and merged ones are not kept.
    pub fn remember(&mut self, inc: &Incident) {
        if let Some((root, past)) = past_of(inc) {
            self.keep(root, past);
        }
    }

    /// `remember` for an incident the engine holds, without cloning it.
    pub(super) fn remember_finished(&mut self, id: &str) {
        if let Some((root, past)) = self.incidents.get(id).and_then(past_of) {
            self.keep(root, past);
        }
    }

    fn keep(&mut self, root: String, past: PastIncident) {
        let list = self.history.entry(root).or_default();
        list.retain(|p| p.id != past.id);
        list.push_back(past);
        while list.len() > PER_CI {
            list.pop_front();
        }
    }

    /// Takes over another engine's history (the daemon rebuilding its engine from the store).
    pub fn inherit_history(&mut self, old: &mut Engine) {
        self.history = std::mem::take(&mut old.history);
    }

    /// `enrichment.similar_incidents` for incident `id`.
    pub(super) fn similar(&mut self, id: &str) {
        let Some(inc) = self.incidents.get(id) else {
            return;
        };
        let Some(root) = inc.root_cause_ci.as_deref() else {
            return;
        };
        let sig = signature(&inc.title);
        let mut found: Vec<(bool, &PastIncident)> = self
            .history
            .get(root)
            .into_iter()
            .flatten()
            .filter(|p| p.id != inc.id && p.opened_at <= inc.opened_at)
            .map(|p| (p.signature == sig, p))
            .collect();
        // Same signature first, then newest first.
        found.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.opened_at.cmp(&a.1.opened_at)));
        let list: Vec<Value> = found
            .into_iter()
            .take(SHOWN)
            .map(|(same, p)| {
                json!({
                    "id": p.id, "title": p.title, "same_signature": same, "opened_at": p.opened_at,
                    "resolved_at": p.resolved_at, "resolution_note": p.resolution_note,
                })
            })
            .collect();
        if let Some(inc) = self.incidents.get_mut(id) {
            enrichment::set_similar(&mut inc.enrichment, list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::signature;

    #[test]
    fn signature_is_the_root_alert_name() {
        assert_eq!(
            signature("orders-db primary: PostgresDown (+7 related alerts)"),
            "PostgresDown"
        );
        assert_eq!(signature("db-01: PostgresDown"), "PostgresDown");
        assert_eq!(signature("DiskFull"), "DiskFull");
    }
}
