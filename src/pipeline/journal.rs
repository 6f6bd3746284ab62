//! The re-send journal's bookkeeping, in one type (`ResendJournal`); the rows' format is
//! `store::journal`, which also says why the journal exists.
//!
//! A re-send that changed only an alert's count and `ends_at` is journaled instead of
//! rewriting the alert's row; later a batch rewrites journaled alerts' rows (a flush) and
//! deletes the journal rows every alert row has caught up with. This type decides which
//! of a batch's changed alerts are journaled and which written in full, which journaled
//! alerts a batch folds in, which written rows only need their document refreshed, and
//! brings journal rows written before a restart or by another daemon into the core. It
//! keeps each alert's mark (`Persisted`: the commit that wrote its row, the digest of the
//! indexed columns it holds), which the core carries with the record and never reads.
//!
//! It must not decide anything about alerts (which alerts changed is the core's answer),
//! and it reads the store only for the journal's own rows.

use std::collections::BTreeMap;

use chrono::Utc;

use crate::alert::{AlertStatus, Fingerprint, FingerprintSet};
use crate::correlate::{AlertRecord, Changes, Engine, Persisted};
use crate::store::journal::{MAX_FINGERPRINT, index_digest};
use crate::store::{JournalEntry, JournalRow, StoreError, WriteTx};

/// The re-send journal as this daemon's writer knows it.
pub(super) struct ResendJournal {
    book: JournalBook,
    /// Age at which journal rows are folded into alert rows (`ingest.resend_flush`).
    flush_age: std::time::Duration,
    /// Entries the journal may hold before its oldest rows are folded whatever their age.
    max_entries: usize,
    /// Shutting down: fold the whole journal into alert rows.
    draining: bool,
    /// The last flush left rows for later batches.
    left: bool,
}

/// Journal rows due to be folded, and how many alerts one batch may fold.
pub(super) struct Due {
    rows: Vec<JournalRow>,
    max_alerts: usize,
}

/// Journaled alerts a batch rewrites, and the journal rows it may then delete.
#[derive(Default)]
pub(super) struct Flush {
    pub alerts: FingerprintSet,
    pub through: Option<i64>,
    /// Entries in the rows it deletes.
    pub entries: usize,
}

impl Flush {
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.through.is_none()
    }
}

impl ResendJournal {
    pub fn new(flush_age: std::time::Duration, max_entries: usize) -> Self {
        ResendJournal {
            book: JournalBook::default(),
            flush_age,
            max_entries,
            draining: false,
            left: false,
        }
    }

    /// Hands a stored alert to the core, marked as what its row holds.
    pub fn adopt(engine: &mut Engine, mut rec: AlertRecord) {
        rec.persisted.index = index_digest(&rec);
        engine.load_alert(rec);
    }

    /// Takes in journal rows read from the store (all of them at a full reload, after
    /// `forget_all`; those since the last commit when catching up): the re-sends they
    /// recorded reach the alerts whose rows are older.
    pub fn take_in(&mut self, engine: &mut Engine, rows: Vec<JournalRow>) {
        for row in rows {
            self.book.add(row.seq, row.entries.len());
            for e in row.entries {
                apply_entry(engine, row.seq, &e);
            }
        }
    }

    /// Forgets every row known (a full reload reads them all again).
    pub fn forget_all(&mut self) {
        self.book = JournalBook::default();
    }

    /// Of a batch's changes, leaves in `touched` only the alerts to journal: an alert also
    /// changed otherwise is written in full, and so is one whose fingerprint is too long
    /// for an entry.
    pub fn route(changes: &mut Changes) {
        changes.touched.retain(|f| !changes.alerts.contains(f));
        let long: Vec<Fingerprint> = changes
            .touched
            .iter()
            .filter(|f| f.0.len() > MAX_FINGERPRINT)
            .cloned()
            .collect();
        for f in long {
            changes.touched.remove(&f);
            changes.alerts.insert(f);
        }
    }

    /// Reads the journal rows due in this batch: older than the flush age (all rows at
    /// shutdown), a bounded share, so a storm's backlog is worked off over several
    /// batches. `pick_flush` then picks their alerts.
    pub async fn due_rows(&mut self, tx: &mut dyn WriteTx, tick: bool) -> Result<Due, StoreError> {
        let (max_rows, max_alerts) = self.bite(tick);
        let now = Utc::now();
        let Some(before) = self.fold_before(now) else {
            // A flush age beyond any date: rows wait for the stop.
            return Ok(Due {
                rows: Vec::new(),
                max_alerts,
            });
        };
        // A row stamped more than a minute ahead of this clock means a clock stepped back
        // (here or on another daemon): it must not hold the journal up.
        let (oldest, rows) = tx
            .oldest_journal(before, now + chrono::Duration::minutes(1), max_rows)
            .await?;
        // Rows before the oldest one left were folded and deleted by another daemon.
        match oldest {
            Some(seq) => self.book.forget_below(seq),
            None => self.book = JournalBook::default(),
        }
        self.left = rows.len() as i64 == max_rows;
        Ok(Due { rows, max_alerts })
    }

    /// Picks the journaled alerts of the due rows whose rows are rewritten in this batch:
    /// those whose row has not been rewritten since. The rows it went through are deleted
    /// in the same transaction.
    pub fn pick_flush(
        &mut self,
        engine: &Engine,
        due: Due,
        written_anyway: &FingerprintSet,
    ) -> Flush {
        let mut flush = Flush::default();
        for row in due.rows {
            for e in &row.entries {
                let stale = engine
                    .alert(&e.fingerprint)
                    .is_some_and(|r| r.persisted.seq <= row.seq);
                if stale && !written_anyway.contains(&e.fingerprint) {
                    flush.alerts.insert(e.fingerprint.clone());
                }
            }
            flush.through = Some(row.seq);
            flush.entries += row.entries.len();
            if flush.alerts.len() >= due.max_alerts {
                self.left = true;
                break;
            }
        }
        flush
    }

    /// Journal rows and alerts one batch may fold. A tick also comes under load: a tick
    /// that folded 200k rows in one transaction stalled every sender for seconds on
    /// PostgreSQL. Only the shutdown drain takes large bites.
    fn bite(&self, tick: bool) -> (i64, usize) {
        if self.draining {
            (256, 200_000)
        } else if tick {
            (32, 20_000)
        } else {
            (8, 5_000)
        }
    }

    /// Rows written before this are due; `None` when no row can be.
    fn fold_before(&self, now: chrono::DateTime<Utc>) -> Option<chrono::DateTime<Utc>> {
        // Past the size bound, the oldest rows are folded whatever their age.
        if self.draining || self.book.entries > self.max_entries {
            return Some(now + chrono::Duration::days(1));
        }
        chrono::Duration::from_std(self.flush_age)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
    }

    /// This batch's journal entries: the re-sends that changed only count and `ends_at`,
    /// except those whose row the batch rewrites anyway.
    pub fn entries(engine: &Engine, touched: &FingerprintSet, flush: &Flush) -> Vec<JournalEntry> {
        touched
            .iter()
            .filter(|f| !flush.alerts.contains(*f))
            .filter_map(|f| engine.alert(f))
            .map(|r| JournalEntry {
                fingerprint: r.fingerprint.clone(),
                count: r.count,
                ends_at: r.ends_at,
            })
            .collect()
    }

    /// Whether the store's indexed columns already hold what the record says: then a
    /// write refreshes only its document.
    pub fn index_unchanged(rec: &AlertRecord) -> bool {
        rec.persisted.index == index_digest(rec)
    }

    /// After the commit `seq`: the rows of `written` now hold what the core says, the
    /// batch's journal row (`entries` long) exists, and the rows the flush folded are gone.
    pub fn committed(
        &mut self,
        engine: &mut Engine,
        seq: i64,
        written: &[Fingerprint],
        entries: usize,
        flush: &Flush,
    ) {
        engine.mark_persisted(written, |r| Persisted {
            index: index_digest(r),
            seq,
        });
        self.book.add(seq, entries);
        if let Some(through) = flush.through {
            self.book.forget_below(through + 1);
        }
    }

    /// Starts (or continues) the shutdown drain: every batch from now folds what it can.
    pub fn drain_round(&mut self) {
        self.draining = true;
        self.left = false;
    }

    /// Whether the last flush left rows for later batches.
    pub fn rows_left(&self) -> bool {
        self.left
    }

    /// A failed batch ends a shutdown drain (the rows stay in the durable journal).
    pub fn stop_drain(&mut self) {
        self.left = false;
    }
}

/// A journal entry of commit `seq` sets its alert's count and `ends_at` unless the
/// alert's row is newer. Only firing alerts are journaled; a resolved one was written in
/// full since. Alerts the core does not hold are left to the store.
fn apply_entry(engine: &mut Engine, seq: i64, e: &JournalEntry) {
    let newer = engine
        .alert(&e.fingerprint)
        .is_some_and(|r| seq > r.persisted.seq && r.status == AlertStatus::Firing);
    if newer {
        engine.restore_resend(&e.fingerprint, e.count, e.ends_at);
    }
}

/// The journal rows a daemon knows of (it wrote them, or read them at start or catching
/// up) and their entry counts: what decides when the journal is over its size bound.
/// Rows another daemon deleted are forgotten once the oldest row left is past them.
#[derive(Default)]
struct JournalBook {
    rows: BTreeMap<i64, usize>,
    entries: usize,
}

impl JournalBook {
    fn add(&mut self, seq: i64, entries: usize) {
        if entries > 0 && self.rows.insert(seq, entries).is_none() {
            self.entries += entries;
        }
    }

    fn forget_below(&mut self, seq: i64) {
        let kept = self.rows.split_off(&seq);
        self.entries -= self.rows.values().sum::<usize>();
        self.rows = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, Labels, Source};
    use crate::cmdb::{CiMapper, Topology};
    use crate::correlate::CorrelateConfig;
    use chrono::{DateTime, Utc};

    fn t(min: i64) -> DateTime<Utc> {
        "2026-11-23T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(min)
    }

    fn firing(ends: i64) -> Alert {
        let mut labels = Labels::default();
        labels.insert("alertname".into(), "PostgresDown".into());
        labels.insert("host".into(), "db-01".into());
        Alert {
            fingerprint: Fingerprint("4a1f3c0e9b2d7a65".into()),
            status: AlertStatus::Firing,
            labels,
            annotations: Labels::default(),
            starts_at: t(0),
            ends_at: Some(t(ends)),
            generator_url: None,
            source: Source::Prometheus,
        }
    }

    fn row(seq: i64, fp: &Fingerprint, count: u64, end: i64) -> JournalRow {
        JournalRow {
            seq,
            entries: vec![JournalEntry {
                fingerprint: fp.clone(),
                count,
                ends_at: Some(t(end)),
            }],
        }
    }

    #[test]
    fn a_journal_entry_older_than_the_alerts_row_is_ignored() {
        let (topo, m) = (Topology::new(), CiMapper::default());
        let mut e = Engine::new(CorrelateConfig::default());
        let a = firing(8);
        e.ingest(&topo, &m, a.clone());
        e.ingest(&topo, &m, a.clone());
        let written: Vec<Fingerprint> = e.take_changes().alerts.into_iter().collect();
        let mut j = ResendJournal::new(std::time::Duration::from_secs(60), 1_000);
        j.committed(&mut e, 5, &written, 0, &Flush::default());

        j.take_in(&mut e, vec![row(4, &a.fingerprint, 99, 1)]);
        let rec = e.alert(&a.fingerprint).unwrap();
        assert_eq!((rec.count, rec.ends_at), (2, Some(t(8))));
        assert!(ResendJournal::index_unchanged(rec));

        j.take_in(&mut e, vec![row(6, &a.fingerprint, 7, 20)]);
        let rec = e.alert(&a.fingerprint).unwrap();
        assert_eq!((rec.count, rec.ends_at), (7, Some(t(20))));
    }

    #[test]
    fn a_touched_alert_also_changed_otherwise_is_written_in_full() {
        let mut c = Changes::default();
        let fp = Fingerprint("a".into());
        let long = Fingerprint("x".repeat(MAX_FINGERPRINT + 1).into());
        c.alerts.insert(fp.clone());
        c.touched.insert(fp.clone());
        c.touched.insert(long.clone());
        ResendJournal::route(&mut c);
        assert!(c.touched.is_empty());
        assert!(c.alerts.contains(&fp) && c.alerts.contains(&long));
    }
}
