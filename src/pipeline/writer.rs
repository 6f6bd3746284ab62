//! The writer task: one per daemon, it takes batches from the queue and runs each in one
//! transaction, top to bottom: catch up with the store (`catch_up`), run the commands
//! through the core (`commands`), plan the rows (`plan`), write them (`write`), commit,
//! then answer the callers and send the events to live readers.
//!
//! It must not decide anything about correlation (the core does) nor answer a caller
//! before the commit that made its command durable.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::journal::{Flush, ResendJournal};
use super::plan::Plan;
use super::queue::{Command, Health, Pending, Queued, WriteError, batch_alerts, take};
use super::{CausalitySlot, PipelineError, Settings, write};
use crate::alert::Fingerprint;
use crate::cmdb::{Ci, Relation, Topology};
use crate::correlate::{Changes, Engine};
use crate::metrics::Metrics;
use crate::outbox::Event;
use crate::store::{StateRow, Store, StoreError};

/// How often the writer looks whether another process changed the CMDB: one small read
/// of `sift_state`; the reload happens only when the version moved.
const CMDB_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// What the writer shares with the `Pipeline` handles.
pub(super) struct Shared {
    pub health: Arc<Health>,
    /// Incident events, sent after their batch commits (`GET /api/v1/events`).
    pub events: tokio::sync::broadcast::Sender<Arc<[u8]>>,
    pub topology: Arc<RwLock<Topology>>,
    /// The learned causality graph correlation uses.
    pub causality: Arc<CausalitySlot>,
}

pub(super) struct Writer {
    pub(super) shared: Shared,
    pub(super) store: Arc<dyn Store>,
    pub(super) engine: Engine,
    pub(super) metrics: Arc<Metrics>,
    /// The store state as of this daemon's last commit or reload.
    pub(super) seen: StateRow,
    pub(super) settings: Settings,
    pub(super) journal: ResendJournal,
    /// The causality slot's version last taken (checked once per batch: a relearn
    /// reaches the engine at the next batch).
    causality_seen: u64,
}

/// What a batch's CMDB commands wrote, applied to the shared topology after the commit.
#[derive(Default)]
pub(super) struct CmdbWrites {
    pub cis: Vec<Ci>,
    pub rels: Vec<Relation>,
    /// CIs or relations were written (the CMDB's version moves).
    pub changed: bool,
    /// Change records were written.
    pub changes: bool,
}

impl Writer {
    /// Loads state from the store: the writer, ready to `run`.
    pub async fn start(
        store: Arc<dyn Store>,
        settings: Settings,
        metrics: Arc<Metrics>,
        shared: Shared,
    ) -> Result<Writer, StoreError> {
        let mut writer = Writer {
            shared,
            store,
            engine: Engine::new(settings.correlate.clone()),
            metrics,
            seen: StateRow {
                seq: -1,
                cmdb_version: -1,
                next_incident: 1,
            },
            journal: ResendJournal::new(settings.resend_flush, settings.resend_journal_max),
            settings,
            causality_seen: 0,
        };
        let mut t = writer.store.begin().await?;
        writer.full_reload(&mut *t).await?;
        drop(t);
        // Finished incidents, oldest first, so new ones can show how similar ones were fixed.
        let mut finished = writer
            .store
            .finished_incidents(writer.settings.similar_history)
            .await?;
        finished.sort_by_key(|i| i.opened_at);
        for inc in &finished {
            writer.engine.remember(inc);
        }
        Ok(writer)
    }

    /// Runs until every `Pipeline` handle is gone and the queue is empty, then folds the
    /// re-send journal into alert rows.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
        let period = self.settings.tick_interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cmdb_poll =
            tokio::time::interval_at(tokio::time::Instant::now() + CMDB_POLL, CMDB_POLL);
        cmdb_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                q = rx.recv() => {
                    let Some(q) = q else { break };
                    let batch = self.gather(q, &mut rx);
                    self.process(batch, None).await;
                }
                _ = ticker.tick() => {
                    self.process(VecDeque::new(), Some(Utc::now())).await;
                }
                _ = cmdb_poll.tick() => self.poll_cmdb().await,
            }
        }
        self.drain_journal().await;
        tracing::info!("writer drained its queue and stopped");
    }

    /// Group commit: `first` and whatever else is waiting, up to the batch limit.
    fn gather(&self, first: Queued, rx: &mut mpsc::Receiver<Queued>) -> VecDeque<Queued> {
        let mut n = batch_alerts(&first.cmd);
        let mut batch = VecDeque::from([first]);
        while n < self.settings.max_batch_alerts
            && matches!(
                batch.back(),
                Some(Queued {
                    cmd: Command::Ingest { .. },
                    ..
                })
            )
        {
            let Ok(q) = rx.try_recv() else { break };
            n += batch_alerts(&q.cmd);
            batch.push_back(q);
        }
        self.metrics.queue_depth.set(rx.len() as i64);
        batch
    }

    /// The CMDB changed under us (`sift cmdb import`, another daemon): an empty batch
    /// catches up now, not at the next write, which on a quiet daemon may be minutes
    /// away. A failed look waits for the next one.
    async fn poll_cmdb(&mut self) {
        match self.store.cmdb_version().await {
            Ok(v) if v != self.seen.cmdb_version => {
                self.process(VecDeque::new(), None).await;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read the CMDB version"),
        }
    }

    /// Runs one batch in one transaction and answers its callers: every command taken
    /// gets an answer, whatever fails.
    async fn process(&mut self, mut batch: VecDeque<Queued>, tick: Option<DateTime<Utc>>) {
        let started = Instant::now();
        self.take_causality();
        let mut replies = Vec::with_capacity(batch.len());
        let result = self.apply(&mut batch, tick, &mut replies).await;
        let elapsed = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                self.shared.health.set(None);
                for r in replies {
                    r.send_ok(&self.metrics);
                }
                // Pruning walks every alert in memory: once per tick, not once per batch.
                if tick.is_some() {
                    self.engine.prune();
                }
            }
            Err(e) => self.failed(e, replies, batch),
        }
        self.metrics
            .store_seconds
            .with_label_values(&["batch"])
            .observe(elapsed);
        self.metrics
            .incidents_open
            .set(self.engine.active_incident_count() as i64);
    }

    /// A relearned (or overridden) causality graph reaches the engine at a batch's start.
    fn take_causality(&mut self) {
        let version = self.shared.causality.version();
        if version != self.causality_seen {
            self.causality_seen = version;
            let graph = self.shared.causality.get();
            self.engine
                .set_learned(graph.as_deref(), &self.settings.causality_types);
        }
    }

    /// The batch's transaction failed: every caller hears it, and the next batch starts
    /// over from the store.
    fn failed(&mut self, e: WriteError, replies: Vec<Pending>, batch: VecDeque<Queued>) {
        tracing::error!(error = %e, "write transaction failed; state will be re-read from the store");
        self.metrics.store_write_errors.inc();
        self.shared.health.set(Some(e.to_string()));
        // The engine may hold decisions the store never got: start over from the store.
        self.seen.seq = -1;
        self.journal.stop_drain();
        for r in replies {
            r.send_err(&e);
        }
        // Commands not reached: nothing of them was written either.
        for q in batch {
            if take(&q.ticket) {
                q.cmd.fail(PipelineError::WriteFailed(e.to_string()));
            }
        }
    }

    /// One batch's transaction: catch up, the commands, plan, write, commit.
    async fn apply(
        &mut self,
        batch: &mut VecDeque<Queued>,
        tick: Option<DateTime<Utc>>,
        replies: &mut Vec<Pending>,
    ) -> Result<(), WriteError> {
        let mut tx = self.store.begin().await?;
        self.catch_up(&mut *tx).await?;
        if let Some(now) = tick {
            let topo = self
                .shared
                .topology
                .read()
                .unwrap_or_else(|p| p.into_inner());
            self.engine.tick(&topo, now);
        }
        let mut cmdb = CmdbWrites::default();
        while let Some(Queued { cmd, ticket }) = batch.pop_front() {
            if !take(&ticket) {
                continue; // its caller stopped waiting before the writer got here
            }
            replies.push(self.command(&mut *tx, cmd, &mut cmdb).await?);
        }
        let mut changes = self.engine.take_changes();
        ResendJournal::route(&mut changes);
        let due = self.journal.due_rows(&mut *tx, tick.is_some()).await?;
        let flush = (self.journal).pick_flush(&self.engine, due, &changes.alerts);
        // While writes are failing, each tick commits even with nothing to write: that
        // probe is how the writer learns the store takes writes again.
        let probe = tick.is_some() && self.shared.health.get().is_some();
        if changes.is_empty() && flush.is_empty() && !cmdb.changed && !cmdb.changes && !probe {
            return Ok(()); // nothing to write: the transaction rolls back on drop
        }
        let plan = Plan::new(&self.engine, &changes, &flush);
        let t = Instant::now();
        write::write(&mut *tx, &plan).await?;
        let live = self.shared.events.receiver_count() > 0;
        let events = write::enqueue_events(&mut *tx, &plan.incidents, plan.timeline, live).await?;
        let state = tx.commit().await.map_err(WriteError::commit)?;
        self.report(&plan, &changes, t, events);
        let written: Vec<Fingerprint> = plan.written.iter().map(|f| (*f).clone()).collect();
        let entries = plan.journal.len();
        drop(plan);
        self.committed(state, cmdb, &written, entries, &flush);
        Ok(())
    }

    /// After a commit: its metrics, and its events to live readers.
    fn report(&self, plan: &Plan<'_>, changes: &Changes, t: Instant, events: Vec<Event>) {
        self.metrics
            .store_seconds
            .with_label_values(&["commit"])
            .observe(t.elapsed().as_secs_f64());
        self.metrics.batch_alerts.observe(plan.alert_rows() as f64);
        self.metrics.incidents_opened.inc_by(changes.opened);
        self.metrics.incidents_resolved.inc_by(changes.resolved);
        self.metrics
            .observe_incidents(&plan.incidents, &changes.timeline);
        for e in events {
            let _ = self.shared.events.send(e.sse_frame()); // no live reader: nothing to do
        }
    }

    /// After a commit: what this daemon now knows the store holds.
    fn committed(
        &mut self,
        state: StateRow,
        cmdb: CmdbWrites,
        written: &[Fingerprint],
        entries: usize,
        flush: &Flush,
    ) {
        let own_cmdb = self.seen.cmdb_version + i64::from(cmdb.changed) == state.cmdb_version;
        self.seen = state;
        (self.journal).committed(&mut self.engine, state.seq, written, entries, flush);
        self.metrics.journal_entries.inc_by(entries as u64);
        self.metrics
            .journal_flushed
            .inc_by(flush.alerts.len() as u64);
        if cmdb.changed {
            let mut topo = self
                .shared
                .topology
                .write()
                .unwrap_or_else(|p| p.into_inner());
            for c in cmdb.cis {
                topo.upsert_ci(c);
            }
            for r in &cmdb.rels {
                topo.upsert_relation(r);
            }
        }
        if !own_cmdb {
            self.seen.cmdb_version = -1;
        }
    }

    /// At shutdown: folds the whole journal into alert rows, so the store reads exactly
    /// right without the journal (the journal alone would be enough after a crash).
    async fn drain_journal(&mut self) {
        for _ in 0..1000 {
            self.journal.drain_round();
            self.process(VecDeque::new(), None).await;
            if !self.journal.rows_left() {
                break;
            }
        }
    }
}
