//! A time-ordered set of alerts (when each is due: `endsAt` expiry), cheap when many
//! alerts share one time, as a storm from one Prometheus rule group does: a B-tree of
//! distinct times, a hash set per time. Alerts due at one time come out sorted by
//! fingerprint, so the core's decisions do not depend on hashing order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::alert::{Fingerprint, FingerprintSet};

#[derive(Debug, Default)]
pub(super) struct Schedule {
    by_time: BTreeMap<DateTime<Utc>, FingerprintSet>,
}

impl Schedule {
    pub(super) fn insert(&mut self, at: DateTime<Utc>, fp: Fingerprint) {
        self.by_time.entry(at).or_default().insert(fp);
    }

    pub(super) fn remove(&mut self, at: DateTime<Utc>, fp: &Fingerprint) {
        if let Some(set) = self.by_time.get_mut(&at) {
            set.remove(fp);
            if set.is_empty() {
                self.by_time.remove(&at);
            }
        }
    }

    /// The earliest time at or before `now` and every alert due then, sorted; removed.
    pub(super) fn pop_due(
        &mut self,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, Vec<Fingerprint>)> {
        let entry = self.by_time.first_entry()?;
        if *entry.key() > now {
            return None;
        }
        let (at, set) = entry.remove_entry();
        let mut fps: Vec<Fingerprint> = set.into_iter().collect();
        fps.sort_unstable();
        Some((at, fps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn due_alerts_come_out_by_time_then_fingerprint() {
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        let fp = |s: &str| Fingerprint::from(s);
        let mut q = Schedule::default();
        q.insert(t(20), fp("b"));
        q.insert(t(10), fp("z"));
        q.insert(t(20), fp("a"));
        q.insert(t(30), fp("c"));
        q.remove(t(30), &fp("c"));
        q.remove(t(99), &fp("nothing"));
        assert_eq!(q.pop_due(t(5)), None);
        assert_eq!(q.pop_due(t(25)), Some((t(10), vec![fp("z")])));
        assert_eq!(q.pop_due(t(25)), Some((t(20), vec![fp("a"), fp("b")])));
        assert_eq!(q.pop_due(t(100)), None, "c was removed");
    }
}
