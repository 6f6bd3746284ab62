//! What the writer reads from the store into the core, under the batch's write lock:
//! everything at start or after a failed batch (`full_reload`), what another daemon wrote
//! since this one's last commit (`catch_up`), and alerts and incidents a command needs
//! that the core no longer holds (`preload`, `load_whole`).
//!
//! It reads and never writes; the core's records come in marked by the re-send journal
//! (`ResendJournal::adopt`), which also takes in the journal's rows.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::journal::ResendJournal;
use super::writer::Writer;
use crate::alert::{Alert, Fingerprint};
use crate::cmdb::Topology;
use crate::correlate::Engine;
use crate::store::{StoreError, WriteTx};

/// Changes that ended before this are history (enrichment looks back no further).
fn change_horizon() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(7)
}

impl Writer {
    /// Under the write lock: if another daemon (or `sift cmdb import`) wrote since our last
    /// commit, take in what changed.
    pub(super) async fn catch_up(&mut self, tx: &mut dyn WriteTx) -> Result<(), StoreError> {
        let state = tx.state();
        if self.seen.seq < 0 {
            return self.full_reload(tx).await;
        }
        if state.cmdb_version != self.seen.cmdb_version {
            let doc = tx.load_cmdb().await?;
            *self
                .shared
                .topology
                .write()
                .unwrap_or_else(|p| p.into_inner()) = Topology::from_file(&doc);
            self.seen.cmdb_version = state.cmdb_version;
        }
        if state.seq != self.seen.seq {
            self.read_since(tx, self.seen.seq).await?;
            self.seen.seq = state.seq;
        }
        self.engine
            .reserve_numbers_below(state.next_incident as u64);
        Ok(())
    }

    /// Changes, alerts, incidents and re-sends other daemons committed after `seq`.
    async fn read_since(&mut self, tx: &mut dyn WriteTx, seq: i64) -> Result<(), StoreError> {
        let t = Instant::now();
        for c in tx.changes_since(seq, change_horizon()).await? {
            self.engine.upsert_change(c);
        }
        for a in tx.alerts_since(seq).await? {
            ResendJournal::adopt(&mut self.engine, a);
        }
        for i in tx.incidents_since(seq).await? {
            self.engine.load_incident(i);
        }
        // Re-sends other daemons journaled (alerts they rewrote came in above).
        let rows = tx.journal_since(seq).await?;
        self.journal.take_in(&mut self.engine, rows);
        self.metrics.state_reloads.inc();
        self.metrics
            .store_seconds
            .with_label_values(&["catch_up"])
            .observe(t.elapsed().as_secs_f64());
        Ok(())
    }

    /// Reads the whole active state into a new engine, which keeps the old one's
    /// similar-incident history and causality graph.
    pub(super) async fn full_reload(&mut self, tx: &mut dyn WriteTx) -> Result<(), StoreError> {
        let state = tx.state();
        let doc = tx.load_cmdb().await?;
        *self
            .shared
            .topology
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Topology::from_file(&doc);
        let (alerts, incidents) = tx.load_active().await?;
        let mut engine = Engine::new(self.engine.config().clone());
        for c in tx.changes_since(-1, change_horizon()).await? {
            engine.upsert_change(c);
        }
        for i in incidents {
            engine.load_incident(i);
        }
        for a in alerts {
            ResendJournal::adopt(&mut engine, a);
        }
        // Re-sends journaled since each alert's row was written (see `store::journal`).
        self.journal.forget_all();
        let rows = tx.journal_since(-1).await?;
        self.journal.take_in(&mut engine, rows);
        engine.reserve_numbers_below(state.next_incident as u64);
        engine.inherit_history(&mut self.engine);
        engine.set_causality(self.engine.causality().cloned());
        tracing::info!(
            cis = doc.cis.len(),
            relations = doc.relations.len(),
            active_incidents = engine.active_incident_count(),
            "loaded state from the store"
        );
        self.engine = engine;
        self.seen = state;
        self.metrics
            .incidents_open
            .set(self.engine.active_incident_count() as i64);
        Ok(())
    }

    /// Brings an incident and every alert of it into the core from the store, where the
    /// core does not hold them (an edit moves all of them). Nothing for an unknown id.
    pub(super) async fn load_whole(
        &mut self,
        tx: &mut dyn WriteTx,
        id: &str,
    ) -> Result<(), StoreError> {
        if self.engine.incident(id).is_none() {
            match tx.load_incident(id).await? {
                Some(inc) => self.engine.load_incident(inc),
                None => return Ok(()),
            }
        }
        let missing: Vec<Fingerprint> = self
            .engine
            .incident(id)
            .map(|i| {
                i.alert_fingerprints
                    .iter()
                    .filter(|f| self.engine.alert(f).is_none())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if !missing.is_empty() {
            for a in tx.load_alerts(&missing).await? {
                ResendJournal::adopt(&mut self.engine, a);
            }
        }
        Ok(())
    }

    /// Brings alerts the core no longer holds in memory (but the store has) back in, with
    /// their incidents, so dedup counts and incident links continue where they were.
    pub(super) async fn preload(
        &mut self,
        tx: &mut dyn WriteTx,
        alerts: &[Alert],
    ) -> Result<(), StoreError> {
        let mut missing: Vec<Fingerprint> = alerts
            .iter()
            .filter(|a| self.engine.alert(&a.fingerprint).is_none())
            .map(|a| a.fingerprint.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort();
        missing.dedup();
        let t = Instant::now();
        for rec in tx.load_alerts(&missing).await? {
            if let Some(id) = rec.incident_id.as_deref()
                && self.engine.incident(id).is_none()
                && let Some(inc) = tx.load_incident(id).await?
            {
                self.engine.load_incident(inc);
            }
            ResendJournal::adopt(&mut self.engine, rec);
        }
        self.metrics
            .store_seconds
            .with_label_values(&["preload"])
            .observe(t.elapsed().as_secs_f64());
        Ok(())
    }
}
