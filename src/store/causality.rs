//! What causality learning reads and keeps: alert occurrences from the incident
//! timelines, the last learned graph, and operators' pins and vetoes.
//!
//! Learning itself is `crate::causality`'s; this file only reads its input and keeps its
//! output.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::{
    Backend, CHUNK, Col, PushArg, QueryExt, SqlStore, decode, decode_docs, encode, ms,
};
use crate::causality::overrides::{LearnedGraph, Override};

/// Stored alert occurrences since a time (`CausalityStore::alert_occurrences`): the input
/// of the daemon's causality learning.
#[derive(Debug, Clone, Default)]
pub struct OccurrenceHistory {
    /// Each distinct alert the occurrences are of: its labels and the CI it was mapped to
    /// when it was stored (`None`: none).
    pub alerts: Vec<(crate::labels::Labels, Option<String>)>,
    /// (index into `alerts`, start in ms since the epoch), in no particular order.
    pub occurrences: Vec<(u32, i64)>,
    /// Occurrences since the time asked that the limit left out (the oldest ones).
    pub left_out: u64,
    /// Occurrences whose alert row is gone or unreadable (left out too).
    pub orphaned: u64,
}

#[async_trait]
pub trait CausalityStore: Send + Sync {
    /// Occurrences of alerts that started at or after `since`, the newest `limit` (see
    /// `OccurrenceHistory`). Read from the incident timelines' `alert_joined` entries (one
    /// per occurrence placed in an incident, appended, never pruned or rewritten) with the
    /// alert rows for labels and CI: the alerts table alone keeps only each alert's latest
    /// occurrence (a re-fire overwrites its row), and the re-send journal is deleted once
    /// folded. Alerts held back by a maintenance window join late or never; those
    /// occurrences are not read (planned work is not the estate's own behaviour).
    async fn alert_occurrences(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<OccurrenceHistory, StoreError>;
    /// The last learning run, `None` before the first.
    async fn load_causality(&self) -> Result<Option<LearnedGraph>, StoreError>;
    /// Replaces the stored learning run.
    async fn save_causality(&self, g: &LearnedGraph) -> Result<(), StoreError>;
    /// Every operator override (pins and vetoes), by (cause, effect).
    async fn causality_overrides(&self) -> Result<Vec<Override>, StoreError>;
    /// In one transaction: stores `put` (replacing any override of the same pair) and
    /// deletes the overrides of the pairs in `remove`; returns how many were deleted.
    async fn change_causality_overrides(
        &self,
        put: &[Override],
        remove: &[(String, String)],
    ) -> Result<u64, StoreError>;
}

#[async_trait]
impl<B: Backend> CausalityStore for SqlStore<B> {
    async fn alert_occurrences(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<OccurrenceHistory, StoreError> {
        // When the limit bites, the newest are kept: the start of the newest `limit`
        // is found first (a sort of times only), then the rows are streamed in table
        // order, unsorted, so neither database holds a million documents in a sorter
        // and only the parsed occurrences are held here.
        let mut out = OccurrenceHistory::default();
        let limit = u64::from(limit);
        let (total, from) = newest_start(self, since, limit).await?;
        let (fps, occ, seen) = joined_since(self, from, limit, &mut out).await?;
        out.left_out = total.saturating_sub(seen);
        let found = alerts_of(self, &fps, &mut out).await?;
        out.occurrences = occ
            .into_iter()
            .filter_map(|(k, at)| match found[k as usize] {
                Some(a) => Some((a, at)),
                None => {
                    out.orphaned += 1;
                    None
                }
            })
            .collect();
        Ok(out)
    }

    async fn load_causality(&self) -> Result<Option<LearnedGraph>, StoreError> {
        let row = B::query("SELECT doc FROM causality_graph WHERE id = 1")
            .optional(&mut *self.read().await?)
            .await?;
        row.map(|r| decode("causality graph", &r.col::<String>(0)?))
            .transpose()
    }

    async fn save_causality(&self, g: &LearnedGraph) -> Result<(), StoreError> {
        B::query(
            "INSERT INTO causality_graph (id, learned_at, occurrences, doc) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET learned_at = excluded.learned_at, \
             occurrences = excluded.occurrences, doc = excluded.doc",
        )
        .arg(ms(g.learned_at))
        .arg(g.occurrences_read as i64)
        .arg(encode(g))
        .run(&mut *self.write().await?)
        .await?;
        Ok(())
    }

    async fn causality_overrides(&self) -> Result<Vec<Override>, StoreError> {
        let rows = B::query("SELECT doc FROM causality_overrides ORDER BY cause, effect")
            .all(&mut *self.read().await?)
            .await?;
        decode_docs::<B, _>("causality override", rows)
    }

    async fn change_causality_overrides(
        &self,
        put: &[Override],
        remove: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_locked().await?;
        let mut removed = 0;
        for (cause, effect) in remove {
            removed += B::query("DELETE FROM causality_overrides WHERE cause = $1 AND effect = $2")
                .arg(cause.clone())
                .arg(effect.clone())
                .run(&mut *tx)
                .await?;
        }
        for chunk in put.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO causality_overrides (cause, effect, kind, actor, at, doc) ",
            );
            qb.push_values(chunk, |mut b, o| {
                b.push_arg(o.cause.clone())
                    .push_arg(o.effect.clone())
                    .push_arg(o.kind.as_str())
                    .push_arg(o.by.clone())
                    .push_arg(ms(o.at))
                    .push_arg(encode(o));
            });
            qb.push(
                " ON CONFLICT (cause, effect) DO UPDATE SET kind = excluded.kind, actor = excluded.actor, \
                 at = excluded.at, doc = excluded.doc",
            );
            qb.build().run(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// How many occurrences started at or after `since`, and the start (ms) of the newest
/// `limit` of them (`since` when the limit does not bite).
async fn newest_start<B: Backend>(
    store: &SqlStore<B>,
    since: DateTime<Utc>,
    limit: u64,
) -> Result<(u64, i64), StoreError> {
    let total: i64 =
        B::query("SELECT COUNT(*) FROM timeline WHERE kind = 'alert_joined' AND at >= $1")
            .arg(ms(since))
            .one(&mut *store.read().await?)
            .await?
            .col(0)?;
    let total = total.max(0) as u64;
    let from: i64 = if total > limit && limit > 0 {
        match B::query(
            "SELECT at FROM timeline WHERE kind = 'alert_joined' AND at >= $1 \
             ORDER BY at DESC LIMIT 1 OFFSET $2",
        )
        .arg(ms(since))
        .arg((limit - 1) as i64)
        .optional(&mut *store.read().await?)
        .await?
        {
            Some(r) => r.col(0)?,
            None => ms(since),
        }
    } else {
        ms(since)
    };
    Ok((total, from))
}

/// The `alert_joined` entries from `from` on, at most `limit`: each distinct fingerprint,
/// the occurrences as (index into those, start in ms), and how many entries were read.
/// An entry whose detail does not parse counts as orphaned. The detail is parsed here,
/// not with the databases' JSON functions (one that PostgreSQL's parser refuses must not
/// fail the whole read).
async fn joined_since<B: Backend>(
    store: &SqlStore<B>,
    from: i64,
    limit: u64,
    out: &mut OccurrenceHistory,
) -> Result<(Vec<String>, Vec<(u32, i64)>, u64), StoreError> {
    #[derive(serde::Deserialize)]
    struct Joined {
        fingerprint: String,
    }
    let mut ix: HashMap<String, u32> = HashMap::new();
    let mut fps: Vec<String> = Vec::new();
    let mut occ: Vec<(u32, i64)> = Vec::new();
    let mut seen = 0u64;
    let mut conn = store.read().await?;
    let mut rows =
        B::query("SELECT at, detail FROM timeline WHERE kind = 'alert_joined' AND at >= $1")
            .arg(from)
            .stream(&mut conn);
    // Ties at `from` can make more than `limit`: those past it are left out.
    while seen < limit
        && let Some(r) = rows.try_next().await?
    {
        let (at, detail): (i64, String) = (r.col(0)?, r.col(1)?);
        seen += 1;
        let Ok(j) = serde_json::from_str::<Joined>(&detail) else {
            out.orphaned += 1;
            continue;
        };
        let k = match ix.get(&j.fingerprint) {
            Some(&k) => k,
            None => {
                let k = fps.len() as u32;
                ix.insert(j.fingerprint.clone(), k);
                fps.push(j.fingerprint);
                k
            }
        };
        occ.push((k, at));
    }
    Ok((fps, occ, seen))
}

/// The labels and CI of each of `fps` from its alert row, pushed to `out.alerts`; for each
/// of `fps`, its index there (`None`: no readable row).
async fn alerts_of<B: Backend>(
    store: &SqlStore<B>,
    fps: &[String],
    out: &mut OccurrenceHistory,
) -> Result<Vec<Option<u32>>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Doc {
        labels: crate::labels::Labels,
    }
    let mut found: Vec<Option<u32>> = vec![None; fps.len()];
    let at_of: HashMap<&str, u32> = fps
        .iter()
        .enumerate()
        .map(|(i, f)| (f.as_str(), i as u32))
        .collect();
    for chunk in fps.chunks(CHUNK) {
        let mut qb = QueryBuilder::<B>::new(
            "SELECT fingerprint, ci_id, doc FROM alerts WHERE fingerprint IN (",
        );
        let mut sep = qb.separated(", ");
        for f in chunk {
            sep.push_arg(f.clone());
        }
        qb.push(")");
        for r in qb.build().all(&mut *store.read().await?).await? {
            let fp: String = r.col(0)?;
            let ci: Option<String> = r.col(1)?;
            let doc: String = r.col(2)?;
            let (Some(&k), Ok(d)) = (at_of.get(fp.as_str()), serde_json::from_str::<Doc>(&doc))
            else {
                continue;
            };
            found[k as usize] = Some(out.alerts.len() as u32);
            out.alerts.push((d.labels, ci));
        }
    }
    Ok(found)
}
