//! What the core keeps per CI id (or host, for alerts mapped to no CI): how many of its
//! alerts fire now and which incidents it alerted in. One entry per alerting CI, so with
//! 100k+ alerts on distinct hosts this index is as large as the alerts: one table for
//! both, and the usual single incident held inline rather than in a list of its own.

use chrono::{DateTime, Utc};
use compact_str::CompactString;

#[derive(Debug, Default)]
pub(super) struct CiState {
    /// Alerts firing on the CI now.
    pub(super) firing: u32,
    /// Incidents the CI alerted in, with when it first alerted there (only active
    /// incidents matter: the rest are dropped as they are met, and swept on prune).
    pub(super) incidents: CiIncidents,
}

impl CiState {
    /// Whether the entry holds nothing and can go.
    pub(super) fn is_empty(&self) -> bool {
        self.firing == 0 && self.incidents.is_empty()
    }
}

/// Incident ids with a time each; most CIs are in one incident.
#[derive(Debug)]
pub(super) enum CiIncidents {
    One(CompactString, DateTime<Utc>),
    Many(Vec<(CompactString, DateTime<Utc>)>),
}

impl Default for CiIncidents {
    fn default() -> Self {
        CiIncidents::Many(Vec::new())
    }
}

impl CiIncidents {
    pub(super) fn is_empty(&self) -> bool {
        matches!(self, CiIncidents::Many(v) if v.is_empty())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, DateTime<Utc>)> {
        let (one, many) = match self {
            CiIncidents::One(id, t) => (Some((id.as_str(), *t)), &[][..]),
            CiIncidents::Many(v) => (None, &v[..]),
        };
        one.into_iter()
            .chain(many.iter().map(|(id, t)| (id.as_str(), *t)))
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        match self {
            CiIncidents::One(id, _) => {
                if !keep(id) {
                    *self = CiIncidents::default();
                }
            }
            CiIncidents::Many(v) => {
                v.retain(|(id, _)| keep(id));
                if v.len() == 1
                    && let Some((id, t)) = v.pop()
                {
                    *self = CiIncidents::One(id, t);
                }
            }
        }
    }

    /// Records that the CI alerted in `incident` at `at` (the earlier time is kept).
    pub(super) fn note(&mut self, incident: &str, at: DateTime<Utc>) {
        match self {
            CiIncidents::One(id, t) if id == incident => *t = (*t).min(at),
            CiIncidents::One(id, t) => {
                let first = (std::mem::take(id), *t);
                *self = CiIncidents::Many(vec![first, (CompactString::from(incident), at)]);
            }
            CiIncidents::Many(v) if v.is_empty() => {
                *self = CiIncidents::One(CompactString::from(incident), at);
            }
            CiIncidents::Many(v) => match v.iter_mut().find(|(id, _)| id == incident) {
                Some((_, t)) => *t = (*t).min(at),
                None => v.push((CompactString::from(incident), at)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn one_incident_inline_more_in_a_list_earliest_time_kept() {
        let mut c = CiIncidents::default();
        assert!(c.is_empty());
        c.note("INC-1", t(10));
        c.note("INC-1", t(5));
        c.note("INC-1", t(20));
        assert!(matches!(c, CiIncidents::One(..)));
        assert_eq!(c.iter().collect::<Vec<_>>(), [("INC-1", t(5))]);
        c.note("INC-2", t(30));
        c.note("INC-3", t(40));
        c.note("INC-2", t(25));
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            [("INC-1", t(5)), ("INC-2", t(25)), ("INC-3", t(40))]
        );
        c.retain(|id| id != "INC-1");
        assert_eq!(c.iter().count(), 2);
        c.retain(|id| id == "INC-3");
        assert!(matches!(c, CiIncidents::One(..)));
        assert_eq!(c.iter().collect::<Vec<_>>(), [("INC-3", t(40))]);
        c.retain(|_| false);
        assert!(c.is_empty() && c.iter().next().is_none());
    }

    #[test]
    fn an_entry_is_small() {
        // The point of the inline variant: a CI's entry is no bigger than a list's.
        assert!(
            std::mem::size_of::<CiState>() <= 48,
            "{} {}",
            std::mem::size_of::<CiState>(),
            std::mem::size_of::<CiIncidents>()
        );
    }
}
