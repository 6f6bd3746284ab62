//! The re-send journal: what a re-send changed in an alert, recorded cheaply.
//!
//! Most of an alert storm is senders repeating what sift already stores: Prometheus sends
//! every firing alert again each evaluation. Such a re-send changes only the alert's count
//! and its `ends_at`. Rewriting the alert's row for each one costs a random page write per
//! alert; instead, each commit appends one `alert_journal` row holding those two values for
//! every alert it re-sent (about 40 bytes each, written sequentially), in the same
//! transaction, so a 2xx still means durable. The writer later rewrites each journaled
//! alert's row once (coalescing all its re-sends in between) and deletes journal rows
//! whose entries every row has caught up with.
//!
//! Values are absolute, not deltas: an entry of commit `s` is applied to an alert whose row
//! was written by a commit before `s`, and ignored otherwise, so replaying the journal is
//! idempotent.

use chrono::{DateTime, TimeZone, Utc};

use super::StoreError;
use crate::alert::Fingerprint;
use crate::correlate::AlertRecord;

/// The values of the columns the `alerts` table is indexed by, for a record: the one
/// place that lists them. `AlertTx::upsert_alerts` writes those columns from it (it
/// destructures it, so a field added here does not compile there until it is stored), and
/// `index_digest` hashes it, so a re-send never leaves an indexed column stale
/// (`tests/resend.rs`). A new indexed column is a field here and a column in a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndexedColumns<'a> {
    pub status: &'static str,
    pub ci_id: Option<&'a str>,
    pub incident_id: Option<&'a str>,
    /// `starts_at` in ms since the epoch.
    pub starts_at: i64,
}

impl<'a> IndexedColumns<'a> {
    pub fn of(rec: &'a AlertRecord) -> Self {
        IndexedColumns {
            status: rec.status.as_str(),
            ci_id: rec.ci_id.as_deref(),
            incident_id: rec.incident_id.as_deref(),
            starts_at: rec.starts_at.timestamp_millis(),
        }
    }
}

/// A digest of a record's indexed columns (`IndexedColumns`), for its current values
/// (never 0). When a record's digest equals the one of its stored row, a write rewrites
/// only the row's document (`AlertTx::refresh_alerts`).
pub fn index_digest(rec: &AlertRecord) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    IndexedColumns::of(rec).hash(&mut h);
    h.finish() | 1
}

/// An alert's count and `ends_at` as of one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub fingerprint: Fingerprint,
    pub count: u64,
    pub ends_at: Option<DateTime<Utc>>,
}

/// One commit's journal row.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRow {
    pub seq: i64,
    pub entries: Vec<JournalEntry>,
}

const VERSION: u8 = 1;

/// Longest fingerprint an entry can hold. The writer rewrites the row of an alert with a
/// longer one (a sender's own fingerprint can be anything) instead of journaling it.
pub const MAX_FINGERPRINT: usize = u16::MAX as usize;

/// Binary layout: a version byte, then per entry: fingerprint length (u16 LE) and bytes,
/// count (u64 LE), a flag byte (1 = has `ends_at`), and if set seconds (i64 LE) and
/// nanoseconds (u32 LE).
pub fn encode(entries: &[JournalEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + entries.len() * 40);
    out.push(VERSION);
    for e in entries {
        let fp = e.fingerprint.0.as_bytes();
        // Never cut a fingerprint: the writer keeps longer ones out of the journal.
        let Ok(len) = u16::try_from(fp.len()) else {
            debug_assert!(false, "fingerprint longer than MAX_FINGERPRINT journaled");
            continue;
        };
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(fp);
        out.extend_from_slice(&e.count.to_le_bytes());
        match e.ends_at {
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&t.timestamp().to_le_bytes());
                out.extend_from_slice(&t.timestamp_subsec_nanos().to_le_bytes());
            }
            None => out.push(0),
        }
    }
    out
}

pub fn decode(seq: i64, body: &[u8]) -> Result<Vec<JournalEntry>, StoreError> {
    let mut out = Vec::new();
    scan(seq, body, |fp, count, ends_at| {
        out.push(JournalEntry {
            fingerprint: Fingerprint::from(fp),
            count,
            ends_at,
        })
    })?;
    Ok(out)
}

/// Visits each entry of a row without allocating (readers that look for a few alerts).
pub fn scan(
    seq: i64,
    body: &[u8],
    mut visit: impl FnMut(&str, u64, Option<DateTime<Utc>>),
) -> Result<(), StoreError> {
    let corrupt = |err: &str| StoreError::Corrupt {
        what: format!("alert_journal row {seq}"),
        err: err.to_string(),
    };
    let mut r = Reader(body);
    if r.take(1).ok_or_else(|| corrupt("empty"))? != [VERSION] {
        return Err(corrupt("unknown version"));
    }
    while !r.0.is_empty() {
        let len = u16::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?) as usize;
        let fp = r
            .take(len)
            .ok_or_else(|| corrupt("truncated fingerprint"))?;
        let fp = std::str::from_utf8(fp).map_err(|_| corrupt("fingerprint is not UTF-8"))?;
        let count = u64::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated count"))?);
        let ends_at = match r.take(1).ok_or_else(|| corrupt("truncated flag"))? {
            [0] => None,
            [1] => {
                let secs = i64::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?);
                let nanos = u32::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?);
                Some(
                    Utc.timestamp_opt(secs, nanos)
                        .single()
                        .ok_or_else(|| corrupt("ends_at out of range"))?,
                )
            }
            _ => return Err(corrupt("bad flag")),
        };
        visit(fp, count, ends_at);
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).map(|b| b.try_into().expect("took N bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fp: &str, count: u64, end: Option<&str>) -> JournalEntry {
        JournalEntry {
            fingerprint: Fingerprint(fp.into()),
            count,
            ends_at: end.map(|e| e.parse().unwrap()),
        }
    }

    #[test]
    fn round_trip_keeps_every_value_exactly() {
        let entries = vec![
            entry("4a1f3c0e9b2d7a65", 1, None),
            entry(
                "pd-dedup-key/ünïcode",
                u64::MAX,
                Some("2026-11-24T10:00:00.123456789Z"),
            ),
            entry("", 7, Some("1970-01-01T00:00:00Z")),
        ];
        assert_eq!(decode(3, &encode(&entries)).unwrap(), entries);
        assert_eq!(decode(3, &encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn a_damaged_row_is_reported_with_its_seq_not_misread() {
        let body = encode(&[entry("abc", 2, Some("2026-11-24T10:00:00Z"))]);
        // Cut anywhere but right after the version byte (an empty row is valid).
        for cut in (0..body.len()).filter(|&c| c != 1) {
            let err = decode(42, &body[..cut]).unwrap_err().to_string();
            assert!(err.contains("alert_journal row 42"), "{cut}: {err}");
        }
        let mut bad = body.clone();
        bad[0] = 9;
        assert!(decode(1, &bad).unwrap_err().to_string().contains("version"));
    }
}
