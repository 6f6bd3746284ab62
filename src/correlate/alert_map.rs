//! The core's alerts by fingerprint. A table of boxed records looked up by the
//! fingerprint each record holds: a map would keep a second 24-byte copy of every
//! fingerprint as its key, and the table is as large as the number of active alerts.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::AlertRecord;
use crate::alert::Fingerprint;

#[derive(Default)]
pub(super) struct AlertMap {
    /// Boxed: the table holds a pointer per slot, not a 256-byte record, so its spare
    /// slots and its copy while it grows cost little with 100k+ alerts.
    table: HashTable<Box<AlertRecord>>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for AlertMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlertMap({} alerts)", self.table.len())
    }
}

impl AlertMap {
    fn hash(&self, fp: &Fingerprint) -> u64 {
        self.hasher.hash_one(fp.as_str())
    }

    pub(super) fn get(&self, fp: &Fingerprint) -> Option<&AlertRecord> {
        self.table
            .find(self.hash(fp), |r| r.fingerprint == *fp)
            .map(|r| &**r)
    }

    pub(super) fn get_mut(&mut self, fp: &Fingerprint) -> Option<&mut AlertRecord> {
        let h = self.hash(fp);
        self.table
            .find_mut(h, |r| r.fingerprint == *fp)
            .map(|r| &mut **r)
    }

    pub(super) fn contains_key(&self, fp: &Fingerprint) -> bool {
        self.get(fp).is_some()
    }

    /// Adds `rec` under its fingerprint, replacing (and returning) the record held for it.
    pub(super) fn insert(&mut self, rec: Box<AlertRecord>) -> Option<Box<AlertRecord>> {
        let h = self.hash(&rec.fingerprint);
        let hasher = &self.hasher;
        match self.table.entry(
            h,
            |r| r.fingerprint == rec.fingerprint,
            |r| hasher.hash_one(r.fingerprint.as_str()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                Some(std::mem::replace(o.get_mut(), rec))
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(rec);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, fp: &Fingerprint) -> Option<Box<AlertRecord>> {
        let h = self.hash(fp);
        match self.table.find_entry(h, |r| r.fingerprint == *fp) {
            Ok(o) => Some(o.remove().0),
            Err(_) => None,
        }
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut AlertRecord) -> bool) {
        self.table.retain(|r| keep(r));
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &AlertRecord> {
        self.table.iter().map(|r| &**r)
    }
}
