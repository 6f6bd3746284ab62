//! Problems as stored: imported incident history (the clustering's input besides sift's
//! own finished incidents) and the problems a clustering run found, with operators'
//! decisions on them.
//!
//! Clustering and reconciling runs is `crate::problem`'s; this file keeps the results.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::StoreError;
use super::backend::{
    Backend, CHUNK, Col, PushArg, QueryExt, SqlStore, SqlTx, decode, decode_docs, encode, ms,
};
use crate::problem::{HistoryRecord, ProblemCandidate, ProblemStatus};

#[async_trait]
pub trait ProblemStore: Send + Sync {
    /// Imported history records opened at or after `since`, oldest first.
    async fn history_since(&self, since: DateTime<Utc>) -> Result<Vec<HistoryRecord>, StoreError>;
    /// Problems, highest score first, optionally of one status.
    async fn list_problems(
        &self,
        status: Option<ProblemStatus>,
    ) -> Result<Vec<ProblemCandidate>, StoreError>;
    async fn get_problem(&self, id: &str) -> Result<Option<ProblemCandidate>, StoreError>;
}

#[async_trait]
pub trait ProblemTx: Send {
    /// Inserts or replaces history records by id; returns how many were new.
    async fn upsert_history(&mut self, recs: &[HistoryRecord]) -> Result<u64, StoreError>;
    async fn load_problems(&mut self) -> Result<Vec<ProblemCandidate>, StoreError>;
    /// Replaces every stored problem with `problems` (a reconciled clustering run).
    async fn replace_problems(&mut self, problems: &[ProblemCandidate]) -> Result<(), StoreError>;
    /// Sets a problem's status; `None` when there is no such problem.
    async fn set_problem_status(
        &mut self,
        id: &str,
        status: ProblemStatus,
    ) -> Result<Option<ProblemCandidate>, StoreError>;
}

#[async_trait]
impl<B: Backend> ProblemStore for SqlStore<B> {
    async fn history_since(&self, since: DateTime<Utc>) -> Result<Vec<HistoryRecord>, StoreError> {
        let rows = B::query(
            "SELECT doc FROM history_incidents WHERE opened_at >= $1 ORDER BY opened_at, id",
        )
        .arg(ms(since))
        .all(&mut *self.read().await?)
        .await?;
        decode_docs::<B, _>("history record", rows)
    }

    async fn list_problems(
        &self,
        status: Option<ProblemStatus>,
    ) -> Result<Vec<ProblemCandidate>, StoreError> {
        let rows = B::query(
            "SELECT doc FROM problems WHERE ($1 IS NULL OR status = $1) ORDER BY score DESC, id",
        )
        .arg(status.map(|s| s.as_str()))
        .all(&mut *self.read().await?)
        .await?;
        decode_docs::<B, _>("problem", rows)
    }

    async fn get_problem(&self, id: &str) -> Result<Option<ProblemCandidate>, StoreError> {
        let row = B::query("SELECT doc FROM problems WHERE id = $1")
            .arg(id.to_string())
            .optional(&mut *self.read().await?)
            .await?;
        row.map(|r| decode("problem", &r.col::<String>(0)?))
            .transpose()
    }
}

#[async_trait]
impl<B: Backend> ProblemTx for SqlTx<B> {
    async fn upsert_history(&mut self, recs: &[HistoryRecord]) -> Result<u64, StoreError> {
        let mut new = 0u64;
        for chunk in recs.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new("SELECT id FROM history_incidents WHERE id IN (");
            let mut sep = qb.separated(", ");
            for r in chunk {
                sep.push_arg(r.id.clone());
            }
            qb.push(")");
            let existing = qb.build().all(self.conn()).await?.len() as u64;
            new += chunk.len() as u64 - existing.min(chunk.len() as u64);
            let mut qb =
                QueryBuilder::<B>::new("INSERT INTO history_incidents (id, opened_at, doc) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_arg(r.id.clone())
                    .push_arg(ms(r.opened_at))
                    .push_arg(encode(r));
            });
            qb.push(" ON CONFLICT (id) DO UPDATE SET opened_at = excluded.opened_at, doc = excluded.doc");
            qb.build().run(self.conn()).await?;
        }
        Ok(new)
    }

    async fn load_problems(&mut self) -> Result<Vec<ProblemCandidate>, StoreError> {
        let rows = B::query("SELECT doc FROM problems ORDER BY id")
            .all(self.conn())
            .await?;
        decode_docs::<B, _>("problem", rows)
    }

    async fn replace_problems(&mut self, problems: &[ProblemCandidate]) -> Result<(), StoreError> {
        B::query("DELETE FROM problems").run(self.conn()).await?;
        let now = ms(Utc::now());
        for chunk in problems.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO problems (id, status, score, updated_at, doc) ",
            );
            qb.push_values(chunk, |mut b, p| {
                b.push_arg(p.id.clone())
                    .push_arg(p.status.as_str())
                    .push_arg(p.score)
                    .push_arg(now)
                    .push_arg(encode(p));
            });
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }

    async fn set_problem_status(
        &mut self,
        id: &str,
        status: ProblemStatus,
    ) -> Result<Option<ProblemCandidate>, StoreError> {
        let row = B::query("SELECT doc FROM problems WHERE id = $1")
            .arg(id.to_string())
            .optional(self.conn())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut p: ProblemCandidate = decode("problem", &row.col::<String>(0)?)?;
        p.status = status;
        B::query("UPDATE problems SET status = $1, updated_at = $2, doc = $3 WHERE id = $4")
            .arg(status.as_str())
            .arg(ms(Utc::now()))
            .arg(encode(&p))
            .arg(id.to_string())
            .run(self.conn())
            .await?;
        Ok(Some(p))
    }
}
