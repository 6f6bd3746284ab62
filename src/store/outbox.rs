//! The outbox as stored: webhook subscriptions, and one row per event and subscription
//! that wants it, with its delivery state.
//!
//! What an event is and when to retry is decided in `crate::outbox`; this file keeps the
//! rows and hands out due ones, one per (subscription, incident) queue at a time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, QueryBuilder};

use super::StoreError;
use super::backend::{
    Backend, CHUNK, Col, PushArg, QueryExt, SqlStore, SqlTx, decode, decode_docs, encode, from_ms,
    ms,
};
use crate::outbox::{Event, OutboxEntry, OutboxStatus, Outcome, Subscription, UnknownStatus};

/// Webhook subscriptions: who wants which events.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Every webhook subscription with its origin (`config` or `api`).
    async fn list_subscriptions(&self) -> Result<Vec<(Subscription, String)>, StoreError>;
    /// Creates or replaces a subscription by name.
    async fn put_subscription(&self, sub: &Subscription, origin: &str) -> Result<(), StoreError>;
    /// Removes a subscription and its undelivered events; its origin, `None` when unknown.
    async fn delete_subscription(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Makes the `config` subscriptions exactly `subs` (API-made ones stay).
    async fn sync_config_subscriptions(&self, subs: &[Subscription]) -> Result<(), StoreError>;
}

/// The outbox rows: claimed for delivery, settled, postponed, purged, retried.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Due pending rows, at most one per (subscription, incident) queue (its oldest),
    /// leased until `lease_until`.
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    async fn finish_outbox(&self, id: i64, outcome: &Outcome) -> Result<(), StoreError>;
    /// Outbox rows, newest first, optionally of one status.
    async fn list_outbox(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    async fn outbox_pending(&self) -> Result<i64, StoreError>;
    /// Moves the pending rows of `subscription` due before `until` to `until` (its
    /// receiver is failing: its events wait together instead of each retrying alone).
    async fn postpone_outbox(
        &self,
        subscription: &str,
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Deletes rows delivered before `delivered_before` (pending and dead rows stay);
    /// how many went.
    async fn purge_outbox(&self, delivered_before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Puts a dead row back in its queue, due `now`, with a fresh attempt budget.
    async fn retry_outbox(&self, id: i64, now: DateTime<Utc>) -> Result<RetryOutcome, StoreError>;
}

#[async_trait]
pub trait OutboxTx: Send {
    /// One outbox row per event and subscription that wants it (fan-out under the lock).
    async fn enqueue_outbox(
        &mut self,
        subs: &[Subscription],
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The webhook subscriptions, read under the write lock (events fan out to these).
    async fn subscriptions(&mut self) -> Result<Vec<Subscription>, StoreError>;
}

/// What `retry_outbox` did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryOutcome {
    /// Back in its queue.
    Queued,
    NotFound,
    /// Only dead rows are retried; this is its status.
    NotDead(OutboxStatus),
    /// A later event of the same incident was delivered to that subscription (its id):
    /// sending this one now would roll the receiver back to an older state.
    Stale(String),
}

const OUTBOX_COLS: &str = "o.id, o.subscription, o.event_id, o.event, o.incident_id, o.status, o.attempts, \
     o.next_at, o.created_at, o.delivered_at, o.last_error, o.body";

#[async_trait]
impl<B: Backend> SubscriptionStore for SqlStore<B> {
    async fn list_subscriptions(&self) -> Result<Vec<(Subscription, String)>, StoreError> {
        let rows = B::query("SELECT doc, origin FROM subscriptions ORDER BY name")
            .all(&mut *self.read().await?)
            .await?;
        rows.iter()
            .map(|r| Ok((decode("subscription", &r.col::<String>(0)?)?, r.col(1)?)))
            .collect()
    }

    async fn put_subscription(&self, sub: &Subscription, origin: &str) -> Result<(), StoreError> {
        B::query(
            "INSERT INTO subscriptions (name, origin, doc) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET origin = excluded.origin, doc = excluded.doc",
        )
        .arg(sub.name.clone())
        .arg(origin.to_string())
        .arg(encode(sub))
        .run(&mut *self.write().await?)
        .await?;
        Ok(())
    }

    async fn delete_subscription(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut tx = self.begin_locked().await?;
        let origin: Option<String> = B::query("SELECT origin FROM subscriptions WHERE name = $1")
            .arg(name.to_string())
            .optional(&mut *tx)
            .await?
            .map(|r| r.col(0))
            .transpose()?;
        B::query("DELETE FROM subscriptions WHERE name = $1")
            .arg(name.to_string())
            .run(&mut *tx)
            .await?;
        B::query("DELETE FROM outbox WHERE subscription = $1 AND status <> 'delivered'")
            .arg(name.to_string())
            .run(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(origin)
    }

    async fn sync_config_subscriptions(&self, subs: &[Subscription]) -> Result<(), StoreError> {
        let mut tx = self.begin_locked().await?;
        let old: Vec<String> = B::query("SELECT name FROM subscriptions WHERE origin = 'config'")
            .all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.col(0))
            .collect::<Result<_, _>>()?;
        for name in old.iter().filter(|n| !subs.iter().any(|s| &s.name == *n)) {
            B::query("DELETE FROM subscriptions WHERE name = $1")
                .arg(name.clone())
                .run(&mut *tx)
                .await?;
            B::query("DELETE FROM outbox WHERE subscription = $1 AND status <> 'delivered'")
                .arg(name.clone())
                .run(&mut *tx)
                .await?;
        }
        for sub in subs {
            B::query(
                "INSERT INTO subscriptions (name, origin, doc) VALUES ($1, 'config', $2) \
                 ON CONFLICT (name) DO UPDATE SET origin = excluded.origin, doc = excluded.doc",
            )
            .arg(sub.name.clone())
            .arg(encode(sub))
            .run(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> OutboxStore for SqlStore<B> {
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut tx = self.begin_locked().await?;
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM outbox o WHERE o.status = 'pending' AND o.next_at <= $1 \
             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.subscription = o.subscription \
             AND p.incident_id = o.incident_id AND p.status = 'pending' AND p.id < o.id) \
             ORDER BY o.id LIMIT $2{}",
            B::SKIP_LOCKED
        );
        let rows = B::query(AssertSqlSafe(sql))
            .arg(ms(now))
            .arg(i64::from(limit))
            .all(&mut *tx)
            .await?;
        let entries = rows
            .iter()
            .map(outbox_entry::<B>)
            .collect::<Result<Vec<_>, _>>()?;
        for e in &entries {
            B::query("UPDATE outbox SET next_at = $1 WHERE id = $2")
                .arg(ms(lease_until))
                .arg(e.id)
                .run(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(entries)
    }

    async fn finish_outbox(&self, id: i64, outcome: &Outcome) -> Result<(), StoreError> {
        let q = match outcome {
            Outcome::Delivered { at } => B::query(
                "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $1, last_error = NULL WHERE id = $2",
            )
            .arg(ms(*at))
            .arg(id),
            Outcome::Retry {
                attempts,
                next_at,
                error,
            } => B::query(
                "UPDATE outbox SET attempts = $1, next_at = $2, last_error = $3 WHERE id = $4",
            )
            .arg(*attempts)
            .arg(ms(*next_at))
            .arg(error.clone())
            .arg(id),
            Outcome::Dead { attempts, error } => B::query(
                "UPDATE outbox SET status = 'dead', attempts = $1, last_error = $2 WHERE id = $3",
            )
            .arg(*attempts)
            .arg(error.clone())
            .arg(id),
        };
        q.run(&mut *self.write().await?).await?;
        Ok(())
    }

    async fn list_outbox(
        &self,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let sql = format!(
            "SELECT {OUTBOX_COLS} FROM outbox o WHERE ($1 IS NULL OR o.status = $1) ORDER BY o.id DESC LIMIT $2"
        );
        let rows = B::query(AssertSqlSafe(sql))
            .arg(status.map(String::from))
            .arg(i64::from(limit))
            .all(&mut *self.read().await?)
            .await?;
        rows.iter()
            .map(outbox_entry::<B>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Into::into)
    }

    async fn outbox_pending(&self) -> Result<i64, StoreError> {
        let row = B::query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            .one(&mut *self.read().await?)
            .await?;
        Ok(row.col::<i64>(0)?)
    }

    async fn postpone_outbox(
        &self,
        subscription: &str,
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(B::query(
            "UPDATE outbox SET next_at = $1 WHERE subscription = $2 AND status = 'pending' AND next_at < $1",
        )
        .arg(ms(until))
        .arg(subscription.to_string())
        .run(&mut *self.write().await?)
        .await?)
    }

    async fn purge_outbox(&self, delivered_before: DateTime<Utc>) -> Result<u64, StoreError> {
        // In pages, so a large backlog never holds the write lock for long.
        let mut total = 0;
        loop {
            let n = B::query(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status = 'delivered' \
                 AND delivered_at < $1 LIMIT 5000)",
            )
            .arg(ms(delivered_before))
            .run(&mut *self.write().await?)
            .await?;
            total += n;
            if n < 5000 {
                return Ok(total);
            }
        }
    }

    async fn retry_outbox(&self, id: i64, now: DateTime<Utc>) -> Result<RetryOutcome, StoreError> {
        let mut tx = self.begin_locked().await?;
        let row = B::query("SELECT status, subscription, incident_id FROM outbox WHERE id = $1")
            .arg(id)
            .optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(RetryOutcome::NotFound);
        };
        let (status, subscription, incident): (String, String, String) =
            (row.col(0)?, row.col(1)?, row.col(2)?);
        let status: OutboxStatus =
            status
                .parse()
                .map_err(|e: UnknownStatus| StoreError::Corrupt {
                    what: format!("outbox row {id}"),
                    err: e.to_string(),
                })?;
        if status != OutboxStatus::Dead {
            return Ok(RetryOutcome::NotDead(status));
        }
        // A later event of the incident already reached the receiver: this one would
        // arrive after it and roll the receiver's record back to an older state.
        let later: Option<String> = B::query(
            "SELECT event_id FROM outbox WHERE subscription = $1 AND incident_id = $2 \
             AND id > $3 AND status = 'delivered' ORDER BY id LIMIT 1",
        )
        .arg(subscription)
        .arg(incident)
        .arg(id)
        .optional(&mut *tx)
        .await?
        .map(|r| r.col(0))
        .transpose()?;
        if let Some(later) = later {
            return Ok(RetryOutcome::Stale(later));
        }
        B::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_at = $1 WHERE id = $2 AND status = 'dead'",
        )
        .arg(ms(now))
        .arg(id)
        .run(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RetryOutcome::Queued)
    }
}

#[async_trait]
impl<B: Backend> OutboxTx for SqlTx<B> {
    async fn enqueue_outbox(
        &mut self,
        subs: &[Subscription],
        events: &[Event],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let rows: Vec<(&Subscription, &Event)> = events
            .iter()
            .flat_map(|e| subs.iter().filter(|s| s.wants(e.kind)).map(move |s| (s, e)))
            .collect();
        for chunk in rows.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO outbox (subscription, event_id, event, incident_id, status, attempts, next_at, created_at, body) ",
            );
            qb.push_values(chunk, |mut b, (s, e)| {
                b.push_arg(s.name.clone())
                    .push_arg(e.event_id.clone())
                    .push_arg(e.kind.as_str())
                    .push_arg(e.incident_id.to_string())
                    .push_arg("pending")
                    .push_arg(0i64)
                    .push_arg(ms(now))
                    .push_arg(ms(now))
                    .push_arg(e.body.clone());
            });
            qb.push(" ON CONFLICT (subscription, event_id) DO NOTHING");
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }

    async fn subscriptions(&mut self) -> Result<Vec<Subscription>, StoreError> {
        decode_docs::<B, _>(
            "subscription",
            B::query("SELECT doc FROM subscriptions ORDER BY name")
                .all(self.conn())
                .await?,
        )
    }
}

fn outbox_entry<B: Backend>(r: &B::Row) -> Result<OutboxEntry, sqlx::Error> {
    Ok(OutboxEntry {
        id: r.col(0)?,
        subscription: r.col(1)?,
        event_id: r.col(2)?,
        event: r.col(3)?,
        incident_id: r.col(4)?,
        status: r
            .col::<String>(5)?
            .parse()
            .map_err(|e: UnknownStatus| sqlx::Error::Decode(e.into()))?,
        attempts: r.col(6)?,
        next_at: from_ms(r.col(7)?),
        created_at: from_ms(r.col(8)?),
        delivered_at: r.col::<Option<i64>>(9)?.map(from_ms),
        last_error: r.col(10)?,
        body: r.col(11)?,
    })
}
