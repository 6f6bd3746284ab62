//! The CMDB as stored: CIs, relations and changes (maintenance windows among them).
//!
//! Stores and reads what it is given; whether a CMDB is valid is decided in `crate::cmdb`
//! before it gets here.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::{
    Backend, CHUNK, Col, PushArg, QueryExt, SqlStore, SqlTx, decode_docs, encode, ms,
};
use crate::cmdb::{Change, Ci, CmdbFile, Relation};

#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    pub ci: Option<String>,
    /// Only changes whose window contains this instant.
    pub active_at: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: u32,
}

#[async_trait]
pub trait CmdbStore: Send + Sync {
    /// `sift_state.cmdb_version`, read without the write lock: a cheap look at whether the
    /// CMDB changed since a daemon last loaded it (every CMDB write bumps it).
    async fn cmdb_version(&self) -> Result<i64, StoreError>;
    async fn load_cmdb(&self) -> Result<CmdbFile, StoreError>;
    async fn list_changes(&self, q: &ChangeQuery) -> Result<Vec<Change>, StoreError>;
}

#[async_trait]
pub trait CmdbTx: Send {
    async fn load_cmdb(&mut self) -> Result<CmdbFile, StoreError>;
    async fn existing_cis(&mut self, ids: &[String]) -> Result<HashSet<String>, StoreError>;
    async fn upsert_cis(&mut self, cis: &[Ci]) -> Result<(), StoreError>;
    async fn upsert_relations(&mut self, rels: &[Relation]) -> Result<(), StoreError>;
    /// Changes written after `seq` (all of them when `seq` < 0) that end after `ending_after`.
    async fn changes_since(
        &mut self,
        seq: i64,
        ending_after: DateTime<Utc>,
    ) -> Result<Vec<Change>, StoreError>;
    async fn upsert_changes(&mut self, changes: &[Change]) -> Result<(), StoreError>;
}

#[async_trait]
impl<B: Backend> CmdbStore for SqlStore<B> {
    async fn cmdb_version(&self) -> Result<i64, StoreError> {
        let row = B::query("SELECT cmdb_version FROM sift_state WHERE id = 1")
            .one(&mut *self.read().await?)
            .await?;
        Ok(row.col(0)?)
    }

    async fn load_cmdb(&self) -> Result<CmdbFile, StoreError> {
        load_cmdb::<B>(&mut *self.read().await?).await
    }

    async fn list_changes(&self, q: &ChangeQuery) -> Result<Vec<Change>, StoreError> {
        let rows = B::query(
            "SELECT doc FROM changes WHERE ($1 IS NULL OR ci_id = $1) \
             AND ($2 IS NULL OR (start_at <= $2 AND end_at >= $2)) \
             ORDER BY start_at DESC, id LIMIT $3",
        )
        .arg(q.ci.clone())
        .arg(q.active_at.map(ms))
        .arg(i64::from(q.limit))
        .all(&mut *self.read().await?)
        .await?;
        decode_docs::<B, _>("change", rows)
    }
}

#[async_trait]
impl<B: Backend> CmdbTx for SqlTx<B> {
    async fn load_cmdb(&mut self) -> Result<CmdbFile, StoreError> {
        load_cmdb::<B>(self.conn()).await
    }

    async fn existing_cis(&mut self, ids: &[String]) -> Result<HashSet<String>, StoreError> {
        let mut out = HashSet::new();
        for chunk in ids.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new("SELECT id FROM cis WHERE id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_arg(id.clone());
            }
            qb.push(")");
            for r in qb.build().all(self.conn()).await? {
                out.insert(r.col::<String>(0)?);
            }
        }
        Ok(out)
    }

    async fn upsert_cis(&mut self, cis: &[Ci]) -> Result<(), StoreError> {
        self.written.cmdb = true;
        let seq = self.seq();
        for chunk in cis.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new("INSERT INTO cis (id, doc, seq) ");
            qb.push_values(chunk, |mut b, c| {
                b.push_arg(c.id.clone()).push_arg(encode(c)).push_arg(seq);
            });
            qb.push(" ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, seq = excluded.seq");
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }

    async fn upsert_relations(&mut self, rels: &[Relation]) -> Result<(), StoreError> {
        self.written.cmdb = true;
        for chunk in rels.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new("INSERT INTO relations (source, target, type) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_arg(r.source.clone())
                    .push_arg(r.target.clone())
                    .push_arg(r.rel_type.clone());
            });
            qb.push(" ON CONFLICT DO NOTHING");
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }

    async fn changes_since(
        &mut self,
        seq: i64,
        ending_after: DateTime<Utc>,
    ) -> Result<Vec<Change>, StoreError> {
        let rows = B::query("SELECT doc FROM changes WHERE seq > $1 AND end_at > $2")
            .arg(seq)
            .arg(ms(ending_after))
            .all(self.conn())
            .await?;
        decode_docs::<B, _>("change", rows)
    }

    async fn upsert_changes(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let seq = self.seq();
        for chunk in changes.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO changes (id, ci_id, start_at, end_at, maintenance, seq, doc) ",
            );
            qb.push_values(chunk, |mut b, c| {
                b.push_arg(c.id.clone())
                    .push_arg(c.ci_id.clone())
                    .push_arg(ms(c.start))
                    .push_arg(ms(c.end))
                    .push_arg(i64::from(c.maintenance))
                    .push_arg(seq)
                    .push_arg(encode(c));
            });
            qb.push(
                " ON CONFLICT (id) DO UPDATE SET ci_id = excluded.ci_id, start_at = excluded.start_at, \
                 end_at = excluded.end_at, maintenance = excluded.maintenance, seq = excluded.seq, doc = excluded.doc",
            );
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }
}

async fn load_cmdb<B: Backend>(conn: &mut B::Connection) -> Result<CmdbFile, StoreError> {
    let cis = decode_docs::<B, _>(
        "ci",
        B::query("SELECT doc FROM cis ORDER BY id")
            .all(&mut *conn)
            .await?,
    )?;
    let relations =
        B::query("SELECT source, target, type FROM relations ORDER BY source, target, type")
            .all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(Relation {
                    source: r.col(0)?,
                    target: r.col(1)?,
                    rel_type: r.col(2)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(CmdbFile { cis, relations })
}
