//! The plan step: what a batch writes, decided from the core's changes without I/O.
//!
//! `Plan::new` reads the core's records and incidents and the re-send journal's choices,
//! and lists the rows: alerts upserted or only refreshed, the journal row, the journal rows
//! deleted, member lists, incidents, feedback and timeline. `write` makes the store calls.
//! It must not call the store nor change the core: a plan is a view of one moment.

use std::borrow::Cow;

use compact_str::CompactString;

use super::journal::{Flush, ResendJournal};
use crate::alert::Fingerprint;
use crate::correlate::{AlertRecord, Changes, Engine, FeedbackPair};
use crate::incident::{Incident, TimelineEntry};
use crate::store::JournalEntry;

/// A new incident membership: (incident id, alert fingerprint, place in join order).
pub(super) type Member = (CompactString, Fingerprint, u64);

/// Every row one batch writes, in the order `write` writes them.
pub(super) struct Plan<'a> {
    /// Alerts whose indexed columns changed (or are unknown): full upserts.
    pub upsert: Vec<&'a AlertRecord>,
    /// Alerts whose indexed columns the store already holds: their document only.
    pub refresh: Vec<&'a AlertRecord>,
    /// Re-sends that changed only count and `ends_at`: one journal row for all of them.
    pub journal: Vec<JournalEntry>,
    /// Journal rows the batch folded in, deleted through this seq.
    pub fold_through: Option<i64>,
    /// Member lists a split shortened, written whole.
    pub rewrite_members: Vec<(&'a str, Vec<Fingerprint>)>,
    pub incidents: Vec<&'a Incident>,
    pub members: Cow<'a, [Member]>,
    pub feedback: &'a [FeedbackPair],
    pub timeline: &'a [TimelineEntry],
    /// Alerts whose rows are written in full, in fingerprint order.
    pub written: Vec<&'a Fingerprint>,
}

impl<'a> Plan<'a> {
    pub fn new(engine: &'a Engine, changes: &'a Changes, flush: &'a Flush) -> Self {
        // Rows written in full: changed alerts, and journaled ones whose turn has come.
        // In fingerprint order: concurrent daemons lock them in the same order.
        let mut written: Vec<&Fingerprint> = changes.alerts.iter().chain(&flush.alerts).collect();
        written.sort_unstable();
        // Re-sends (same status, CI, incident and start as stored) only rewrite their
        // document; everything else is a full upsert.
        let (refresh, upsert): (Vec<&AlertRecord>, Vec<&AlertRecord>) = written
            .iter()
            .filter_map(|f| engine.alert(f))
            .partition(|r| ResendJournal::index_unchanged(r));
        Plan {
            upsert,
            refresh,
            journal: ResendJournal::entries(engine, &changes.touched, flush),
            fold_through: flush.through,
            rewrite_members: rewritten_members(engine, changes),
            incidents: changes
                .incidents
                .iter()
                .filter_map(|i| engine.incident(i))
                .collect(),
            members: new_members(changes),
            feedback: &changes.feedback,
            timeline: &changes.timeline,
            written,
        }
    }

    /// Alert rows written in full or refreshed.
    pub fn alert_rows(&self) -> usize {
        self.upsert.len() + self.refresh.len()
    }
}

/// Member lists a split shortened are written whole: the shortened list hands out
/// positions again that stored rows still hold.
fn rewritten_members<'a>(
    engine: &'a Engine,
    changes: &'a Changes,
) -> Vec<(&'a str, Vec<Fingerprint>)> {
    changes
        .rewrite_members
        .iter()
        .filter_map(|id| engine.incident(id))
        .map(|inc| {
            (
                inc.id.as_str(),
                inc.alert_fingerprints.iter().cloned().collect(),
            )
        })
        .collect()
}

/// The batch's new member rows, less those of incidents whose list is written whole.
fn new_members(changes: &Changes) -> Cow<'_, [Member]> {
    if changes.rewrite_members.is_empty() {
        return Cow::Borrowed(&changes.members);
    }
    Cow::Owned(
        changes
            .members
            .iter()
            .filter(|(i, _, _)| !changes.rewrite_members.contains(i.as_str()))
            .cloned()
            .collect(),
    )
}
