//! Alerts as stored: one row per fingerprint (its latest occurrence), and the re-send
//! journal's rows (`JournalTx`; `journal` says what they hold and why).
//!
//! Which columns of `alerts` are indexed is said once, by `journal::IndexedColumns`:
//! `upsert_alerts` writes them from it, and the writer compares its digest
//! (`journal::index_digest`) with the stored row's to send a re-send whose indexed columns
//! are unchanged to `refresh_alerts`, which rewrites only the document. The document is
//! written as an `AlertDoc` and read back as an `AlertRecord`. Nothing here decides what a
//! re-send is.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::Serialize;
use sqlx::{AssertSqlSafe, QueryBuilder};

use super::StoreError;
use super::backend::{Backend, CHUNK, Col, PushArg, QueryExt, SqlStore, SqlTx, decode, encode, ms};
use super::journal::{self, IndexedColumns, JournalEntry, JournalRow};
use crate::alert::{AlertStatus, Fingerprint, Labels, Source};
use crate::correlate::AlertRecord;

#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub status: Option<crate::alert::AlertStatus>,
    pub ci: Option<String>,
    pub incident: Option<String>,
    /// Only alerts strictly after this `(starts_at ms, arrival order)` in newest-first
    /// order (the order is `AlertPage::last_order` of the page before).
    pub before: Option<(i64, i64)>,
    pub limit: u32,
}

/// A page of `list_alerts`: newest first, ties of `starts_at` newest arrival first.
#[derive(Debug, Clone, Default)]
pub struct AlertPage {
    pub alerts: Vec<AlertRecord>,
    /// The arrival order of the page's last alert (its row's insertion order, kept by
    /// updates): with its `starts_at`, where the next page begins.
    pub last_order: Option<i64>,
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    async fn list_alerts(&self, q: &AlertQuery) -> Result<AlertPage, StoreError>;
}

#[async_trait]
pub trait AlertTx: Send {
    async fn alerts_since(&mut self, seq: i64) -> Result<Vec<AlertRecord>, StoreError>;
    async fn load_alerts(&mut self, fps: &[Fingerprint]) -> Result<Vec<AlertRecord>, StoreError>;
    async fn upsert_alerts(&mut self, recs: &[&AlertRecord]) -> Result<(), StoreError>;
    /// Rewrites only the document (and `seq`) of alerts whose indexed columns (status, CI,
    /// incident, start) are unchanged in the store: a re-send touches one index, not five.
    async fn refresh_alerts(&mut self, recs: &[&AlertRecord]) -> Result<(), StoreError>;
}

/// The re-send journal's rows (`journal` says what they hold), written and folded in the
/// writer's transaction.
#[async_trait]
pub trait JournalTx: Send {
    /// Appends this commit's re-send journal row (see `journal`); nothing when empty.
    async fn append_journal(&mut self, entries: &[JournalEntry]) -> Result<(), StoreError>;
    /// Journal rows of commits after `seq` (all when `seq` < 0), oldest first.
    async fn journal_since(&mut self, seq: i64) -> Result<Vec<JournalRow>, StoreError>;
    /// The seq of the oldest journal row (`None`: the journal is empty), and the oldest
    /// rows (at most `max_rows`) as long as each was written at or before `written_before`
    /// or is stamped after `future_after` (a clock that stepped back must not hold the
    /// journal up); oldest first.
    async fn oldest_journal(
        &mut self,
        written_before: DateTime<Utc>,
        future_after: DateTime<Utc>,
        max_rows: i64,
    ) -> Result<(Option<i64>, Vec<JournalRow>), StoreError>;
    async fn delete_journal_through(&mut self, seq: i64) -> Result<(), StoreError>;
}

#[async_trait]
impl<B: Backend> AlertStore for SqlStore<B> {
    async fn list_alerts(&self, q: &AlertQuery) -> Result<AlertPage, StoreError> {
        let (before_t, before_ord) = match q.before {
            Some((t, o)) => (Some(t), Some(o)),
            None => (None, None),
        };
        // The page and the re-send journal from one snapshot: a flush commits the
        // rewritten row and the journal deletion together.
        let mut tx = self.begin_snapshot().await?;
        // Ties of starts_at in arrival order (`Backend::ARRIVAL`), kept by upserts.
        let sql = format!(
            "SELECT doc, seq, {o} FROM alerts WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR ci_id = $2) \
             AND ($3 IS NULL OR incident_id = $3) \
             AND ($4 IS NULL OR starts_at < $4 OR (starts_at = $4 AND {o} < $5)) \
             ORDER BY starts_at DESC, {o} DESC LIMIT $6",
            o = B::ARRIVAL
        );
        let rows = B::query(AssertSqlSafe(sql))
            .arg(q.status.map(|s| s.as_str()))
            .arg(q.ci.clone())
            .arg(q.incident.clone())
            .arg(before_t)
            .arg(before_ord)
            .arg(i64::from(q.limit))
            .all(&mut *tx)
            .await?;
        let last_order = rows.last().map(|r| r.col::<i64>(2)).transpose()?;
        let mut alerts = decode_alerts::<B>(rows)?;
        // Re-sends journaled after a row was written: their count and ends_at.
        if let Some(oldest) = alerts.iter().map(|a| a.persisted.seq).min() {
            let rows = B::query("SELECT seq, body FROM alert_journal WHERE seq > $1 ORDER BY seq")
                .arg(oldest)
                .all(&mut *tx)
                .await?;
            if !rows.is_empty() {
                let mut page: HashMap<&str, usize> = alerts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a.fingerprint.0.as_str(), i))
                    .collect();
                type Latest = Option<(i64, u64, Option<DateTime<Utc>>)>;
                let mut latest: Vec<Latest> = vec![None; alerts.len()];
                for r in rows {
                    let seq: i64 = r.col(0)?;
                    let body: Vec<u8> = r.col(1)?;
                    journal::scan(seq, &body, |fp, count, end| {
                        if let Some(&i) = page.get(fp) {
                            latest[i] = Some((seq, count, end));
                        }
                    })?;
                }
                page.clear();
                for (a, l) in alerts.iter_mut().zip(latest) {
                    if let Some((seq, count, end)) = l
                        && seq > a.persisted.seq
                    {
                        a.count = count;
                        a.ends_at = end;
                    }
                }
            }
        }
        Ok(AlertPage { alerts, last_order })
    }
}

#[async_trait]
impl<B: Backend> AlertTx for SqlTx<B> {
    async fn alerts_since(&mut self, seq: i64) -> Result<Vec<AlertRecord>, StoreError> {
        let rows = B::query("SELECT doc, seq FROM alerts WHERE seq > $1")
            .arg(seq)
            .all(self.conn())
            .await?;
        decode_alerts::<B>(rows)
    }

    async fn load_alerts(&mut self, fps: &[Fingerprint]) -> Result<Vec<AlertRecord>, StoreError> {
        let mut out = Vec::new();
        for chunk in fps.chunks(CHUNK) {
            let mut qb =
                QueryBuilder::<B>::new("SELECT doc, seq FROM alerts WHERE fingerprint IN (");
            let mut sep = qb.separated(", ");
            for fp in chunk {
                sep.push_arg(fp.0.to_string());
            }
            qb.push(")");
            let rows = qb.build().all(self.conn()).await?;
            out.extend(decode_alerts::<B>(rows)?);
        }
        Ok(out)
    }

    async fn upsert_alerts(&mut self, recs: &[&AlertRecord]) -> Result<(), StoreError> {
        let seq = self.seq();
        for chunk in recs.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO alerts (fingerprint, status, ci_id, incident_id, starts_at, seq, doc) ",
            );
            qb.push_values(chunk, |mut b, r| {
                let IndexedColumns {
                    status,
                    ci_id,
                    incident_id,
                    starts_at,
                } = IndexedColumns::of(r);
                b.push_arg(r.fingerprint.0.to_string())
                    .push_arg(status)
                    .push_arg(ci_id.map(String::from))
                    .push_arg(incident_id.map(String::from))
                    .push_arg(starts_at)
                    .push_arg(seq)
                    .push_arg(encode(&AlertDoc::of(r)));
            });
            qb.push(
                " ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status, ci_id = excluded.ci_id, \
                 incident_id = excluded.incident_id, starts_at = excluded.starts_at, seq = excluded.seq, doc = excluded.doc",
            );
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }

    async fn refresh_alerts(&mut self, recs: &[&AlertRecord]) -> Result<(), StoreError> {
        if !B::REFRESH_IN_PLACE {
            return self.upsert_alerts(recs).await;
        }
        let seq = self.seq();
        for chunk in recs.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new("WITH v (fp, doc) AS (");
            qb.push_values(chunk, |mut b, r| {
                b.push_arg(r.fingerprint.0.to_string())
                    .push_arg(encode(&AlertDoc::of(r)));
            });
            qb.push(") UPDATE alerts SET seq = ");
            qb.push_arg(seq);
            qb.push(", doc = v.doc FROM v WHERE alerts.fingerprint = v.fp");
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> JournalTx for SqlTx<B> {
    async fn append_journal(&mut self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let seq = self.seq();
        B::query("INSERT INTO alert_journal (seq, written_at, body) VALUES ($1, $2, $3)")
            .arg(seq)
            .arg(ms(Utc::now()))
            .arg(journal::encode(entries))
            .run(self.conn())
            .await?;
        Ok(())
    }

    async fn journal_since(&mut self, seq: i64) -> Result<Vec<JournalRow>, StoreError> {
        let rows = B::query("SELECT seq, body FROM alert_journal WHERE seq > $1 ORDER BY seq")
            .arg(seq)
            .all(self.conn())
            .await?;
        decode_journal_rows::<B>(rows)
    }

    async fn oldest_journal(
        &mut self,
        written_before: DateTime<Utc>,
        future_after: DateTime<Utc>,
        max_rows: i64,
    ) -> Result<(Option<i64>, Vec<JournalRow>), StoreError> {
        // The oldest rows first (by seq, without their bodies); stop at the first
        // one that is too young, then read the bodies of those before it.
        let heads: Vec<(i64, i64)> =
            B::query("SELECT seq, written_at FROM alert_journal ORDER BY seq LIMIT $1")
                .arg(max_rows)
                .all(self.conn())
                .await?
                .iter()
                .map(|r| Ok((r.col(0)?, r.col(1)?)))
                .collect::<Result<_, sqlx::Error>>()?;
        let Some(last) = heads
            .iter()
            .take_while(|(_, at)| *at <= ms(written_before) || *at > ms(future_after))
            .map(|(seq, _)| *seq)
            .last()
        else {
            return Ok((heads.first().map(|(seq, _)| *seq), Vec::new()));
        };
        let rows = B::query("SELECT seq, body FROM alert_journal WHERE seq <= $1 ORDER BY seq")
            .arg(last)
            .all(self.conn())
            .await?;
        Ok((
            heads.first().map(|(seq, _)| *seq),
            decode_journal_rows::<B>(rows)?,
        ))
    }

    async fn delete_journal_through(&mut self, seq: i64) -> Result<(), StoreError> {
        B::query("DELETE FROM alert_journal WHERE seq <= $1")
            .arg(seq)
            .run(self.conn())
            .await?;
        Ok(())
    }
}

/// The JSON `alerts.doc` holds: the record as the API shows it, in the same field order,
/// so documents read back as `AlertRecord`s, without the writer's mark (`persisted`: the
/// row's `seq` column says which commit wrote it). Built by destructuring: a field added
/// to `AlertRecord` does not compile here until it is decided whether the document keeps
/// it.
#[derive(Serialize)]
struct AlertDoc<'a> {
    fingerprint: &'a Fingerprint,
    status: AlertStatus,
    labels: &'a Labels,
    annotations: &'a Labels,
    starts_at: DateTime<Utc>,
    ends_at: Option<DateTime<Utc>>,
    generator_url: Option<&'a str>,
    source: Source,
    ci_id: Option<&'a CompactString>,
    incident_id: Option<&'a CompactString>,
    count: u64,
    flapping: bool,
    suppressed: bool,
    suppressed_by: Option<&'a str>,
    flips: &'a [DateTime<Utc>],
    last_event_at: DateTime<Utc>,
}

impl<'a> AlertDoc<'a> {
    fn of(rec: &'a AlertRecord) -> Self {
        let AlertRecord {
            fingerprint,
            status,
            labels,
            annotations,
            starts_at,
            ends_at,
            generator_url,
            source,
            ci_id,
            incident_id,
            count,
            flapping,
            suppressed,
            suppressed_by,
            flips,
            last_event_at,
            persisted: _,
        } = rec;
        AlertDoc {
            fingerprint,
            status: *status,
            labels,
            annotations,
            starts_at: *starts_at,
            ends_at: *ends_at,
            generator_url: generator_url.as_deref(),
            source: *source,
            ci_id: ci_id.as_ref(),
            incident_id: incident_id.as_ref(),
            count: *count,
            flapping: *flapping,
            suppressed: *suppressed,
            suppressed_by: suppressed_by.as_deref(),
            flips,
            last_event_at: *last_event_at,
        }
    }
}

/// Alert rows read as `(doc, seq, …)`: the record remembers which commit wrote its row.
pub(super) fn decode_alerts<B: Backend>(rows: Vec<B::Row>) -> Result<Vec<AlertRecord>, StoreError> {
    rows.iter()
        .map(|r| {
            let mut rec: AlertRecord = decode("alert", &r.col::<String>(0)?)?;
            rec.persisted.seq = r.col::<i64>(1)?;
            Ok(rec)
        })
        .collect()
}

/// Journal rows read as `(seq, body)`.
fn decode_journal_rows<B: Backend>(rows: Vec<B::Row>) -> Result<Vec<JournalRow>, StoreError> {
    rows.iter()
        .map(|r| {
            let seq: i64 = r.col(0)?;
            let body: Vec<u8> = r.col(1)?;
            Ok(JournalRow {
                seq,
                entries: journal::decode(seq, &body)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored document is the API's JSON of the alert, and reads back as the same
    /// alert; the writer's mark is not in it.
    #[test]
    fn the_document_is_the_alert_as_the_api_shows_it() {
        let mut rec: AlertRecord = serde_json::from_value(serde_json::json!({
            "fingerprint": "abc",
            "status": "firing",
            "labels": {"alertname": "DiskFull", "host": "db-1"},
            "annotations": {"summary": "disk full"},
            "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": "2026-01-01T01:00:00Z",
            "generator_url": "http://prom/graph",
            "source": "alertmanager",
            "ci_id": "db-1",
            "incident_id": "INC-0000042",
            "count": 3,
            "flapping": true,
            "suppressed": true,
            "suppressed_by": "CHG-1",
            "flips": ["2026-01-01T00:10:00Z"],
            "last_event_at": "2026-01-01T00:20:00Z"
        }))
        .unwrap();
        rec.persisted.seq = 7;
        rec.persisted.index = 9;
        let doc = encode(&AlertDoc::of(&rec));
        assert_eq!(
            doc,
            serde_json::to_string(&crate::view::AlertView::of(&rec)).unwrap()
        );
        let back: AlertRecord = serde_json::from_str(&doc).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.persisted.seq, 0);
        // And an alert with none of the optional fields.
        rec.ends_at = None;
        rec.generator_url = None;
        rec.ci_id = None;
        rec.incident_id = None;
        rec.suppressed_by = None;
        rec.flips.clear();
        assert_eq!(
            encode(&AlertDoc::of(&rec)),
            serde_json::to_string(&crate::view::AlertView::of(&rec)).unwrap()
        );
    }
}
