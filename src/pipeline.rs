//! The daemon's driver of the pure core: one writer task per daemon that takes parsed
//! alerts, operator changes and CMDB updates from a bounded queue, runs them through the
//! `Engine` and commits the results in one transaction per batch (group commit).
//!
//! A sender is answered only after the commit: a 2xx means durable. When the queue is
//! full, callers are told at once (the API answers 503 + Retry-After) instead of memory
//! growing. An error never claims more than is known: a command is either withdrawn by a
//! caller that stopped waiting before the writer took it (then nothing of it is stored), or
//! taken, and then the caller is told when its outcome is unknown. A large request is
//! written in bounded batches, one after another, so other senders' commands go between
//! them. A failed write transaction is rolled back; the writer re-reads the store and
//! goes on, and its health (`Pipeline::write_failure`) is what `/readyz` reports. Under the store's write lock the writer first checks whether another daemon
//! wrote since its last commit, and if so re-reads what changed before deciding anything;
//! a CMDB changed by another process is also looked for every second, so it shows without
//! waiting for a write.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::alert::{Alert, Fingerprint, FingerprintSet, Source};
use crate::cmdb::{self, Change, ChangeError, Ci, CiMapper, CmdbError, Relation, Topology};
use crate::correlate::{EditError, Engine, IncidentPatch, Outcome, PatchError};
use crate::incident::Incident;
use crate::metrics::Metrics;
use crate::store::{JournalEntry, StateRow, Store, StoreError, WriteTx};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("ingest queue is full; retry shortly")]
    Busy,
    #[error("sift is shutting down")]
    ShuttingDown,
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The write transaction failed before its commit and was rolled back.
    #[error("write failed, nothing was stored: {0}")]
    WriteFailed(String),
    /// The commit itself failed: the store may or may not have kept it.
    #[error("the store's commit failed; it may or may not have been stored: {0}")]
    CommitFailed(String),
    /// The caller stopped waiting. With `maybe_stored` false the command was withdrawn
    /// before the writer took it.
    #[error("{}", if *maybe_stored {
        "the store did not confirm the write in time; it may have been stored"
    } else {
        "the writer did not reach the request in time; nothing from it was stored"
    })]
    TimedOut { maybe_stored: bool },
    /// The writer ended (a bug or a shutdown) after taking the command, before answering.
    #[error("the writer stopped before confirming the write; it may have been stored")]
    WriterStopped,
    /// The writer's last transaction failed and none has succeeded since: answered at
    /// once, without queueing, until a write (or the writer's probe) succeeds again.
    #[error("store writes are failing, nothing was stored: {0}")]
    StoreFailing(String),
    /// A request written in several batches failed part way.
    #[error("{stored} of {total} alerts were stored before this failure: {cause}")]
    Partial {
        stored: u64,
        total: u64,
        cause: Box<PipelineError>,
    },
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error(transparent)]
    Cmdb(#[from] CmdbError),
    #[error(transparent)]
    Change(#[from] ChangeError),
}

/// What an ingest request did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    pub accepted: u64,
    pub new: u64,
    pub duplicate: u64,
    pub resolved: u64,
}

/// An operator's edit of the grouping (see `correlate::manual`).
#[derive(Debug, Clone)]
pub enum Edit {
    /// Merge incident `from` into `into`.
    Merge { from: String, into: String },
    /// Split `alerts` out of incident `id` into a new incident.
    Split {
        id: String,
        alerts: Vec<Fingerprint>,
    },
}

/// The two incidents an edit touched, as committed: merge, the source (closed) and the
/// target; split, the incident split and the new one.
#[derive(Debug, Clone)]
pub struct Edited {
    pub incident: Incident,
    pub other: Incident,
}

type Reply<T> = oneshot::Sender<Result<T, PipelineError>>;

/// A command in the writer's queue, with the ticket its caller and the writer race on.
struct Queued {
    cmd: Command,
    ticket: Arc<AtomicU8>,
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

/// Takes a queued command for writing; false when its caller withdrew it.
fn take(ticket: &AtomicU8) -> bool {
    ticket
        .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Withdraws a command the writer has not taken; false when it already has.
fn withdraw(ticket: &AtomicU8) -> bool {
    ticket
        .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
        || ticket.load(Ordering::Acquire) == WITHDRAWN
}

/// Withdraws the command when the caller's future is dropped (the client went away).
struct WithdrawOnDrop(Arc<AtomicU8>);

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        withdraw(&self.0);
    }
}

/// The writer's last outcome, for `/readyz`.
#[derive(Default)]
struct Health {
    /// The error of the last write transaction, while no later one has succeeded.
    failing: Mutex<Option<String>>,
}

impl Health {
    fn set(&self, e: Option<String>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
    fn get(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

enum Command {
    Ingest {
        alerts: Vec<Alert>,
        source: Source,
        enqueued: Instant,
        reply: Reply<IngestReport>,
    },
    Patch {
        id: String,
        patch: IncidentPatch,
        actor: String,
        at: DateTime<Utc>,
        reply: Reply<Incident>,
    },
    Edit {
        edit: Edit,
        actor: String,
        at: DateTime<Utc>,
        reply: Reply<Edited>,
    },
    UpsertCis {
        cis: Vec<Ci>,
        reply: Reply<usize>,
    },
    UpsertRelations {
        rels: Vec<Relation>,
        reply: Reply<usize>,
    },
    UpsertChanges {
        changes: Vec<Change>,
        reply: Reply<usize>,
    },
}

/// The handle the API holds.
#[derive(Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Queued>,
    health: Arc<Health>,
    /// How long a caller waits for its command's outcome.
    deadline: std::time::Duration,
    /// Most alerts one command carries; a larger request is written in several.
    max_batch_alerts: usize,
    topology: Arc<RwLock<Topology>>,
    /// Incident events, sent after their batch commits (`GET /api/v1/events`).
    events: tokio::sync::broadcast::Sender<Arc<[u8]>>,
    /// The effective learned causality graph (`causality_graph`).
    causality: Arc<CausalitySlot>,
}

/// The effective causality graph (learned − vetoed + pinned, `causality::overrides`),
/// shared by whoever replaces it (the API after a relearn or an override change, and the
/// daemon at start with what the store holds) and whoever reads it (correlation). `None`
/// until a graph is loaded or learned. `version` moves on every `set`, so a reader can tell
/// cheaply per batch whether to pick the graph up again.
#[derive(Debug, Default)]
pub struct CausalitySlot {
    graph: RwLock<Option<Arc<crate::causality::Learned>>>,
    version: std::sync::atomic::AtomicU64,
}

impl CausalitySlot {
    pub fn get(&self) -> Option<Arc<crate::causality::Learned>> {
        self.graph.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, g: Option<Arc<crate::causality::Learned>>) {
        *self.graph.write().unwrap_or_else(|p| p.into_inner()) = g;
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// How many times the graph was set (0: never).
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }
}

pub struct Settings {
    pub queue_capacity: usize,
    pub max_batch_alerts: usize,
    /// How long a caller waits for the writer before it is answered that the write did
    /// not finish (keep it under the HTTP request timeout, so the precise answer wins).
    pub reply_deadline: std::time::Duration,
    pub tick_interval: std::time::Duration,
    /// Age at which re-send journal rows are folded into alert rows (`store::journal`).
    pub resend_flush: std::time::Duration,
    /// Entries the journal may hold before its oldest rows are folded whatever their age.
    pub resend_journal_max: usize,
    pub correlate: crate::correlate::CorrelateConfig,
    pub mapper: CiMapper,
    /// Finished incidents (the newest) loaded at start as similar-incident history.
    pub similar_history: u32,
    /// Labels whose values make an alert's type for learned causality (`[causality]
    /// type_labels`): how correlation matches alerts to the learned graph's edges.
    pub causality_types: Vec<String>,
}

impl Pipeline {
    /// Loads state from the store and starts the writer. The writer ends when every
    /// `Pipeline` handle is dropped, after finishing what was queued.
    pub async fn start(
        store: Arc<dyn Store>,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Result<(Pipeline, tokio::task::JoinHandle<()>), StoreError> {
        let (tx, rx) = mpsc::channel(settings.queue_capacity);
        let topology = Arc::new(RwLock::new(Topology::new()));
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let health = Arc::new(Health::default());
        let causality = Arc::new(CausalitySlot::default());
        let deadline = settings.reply_deadline;
        let max_batch_alerts = settings.max_batch_alerts.max(1);
        let mut writer = Writer {
            health: health.clone(),
            events: events.clone(),
            store,
            engine: Engine::new(settings.correlate.clone()),
            topology: topology.clone(),
            metrics,
            seen: StateRow {
                seq: -1,
                cmdb_version: -1,
                next_incident: 1,
            },
            settings,
            draining: false,
            journal_left: false,
            journal: JournalBook::default(),
            causality: causality.clone(),
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
        let handle = tokio::spawn(writer.run(rx));
        Ok((
            Pipeline {
                tx,
                health,
                deadline,
                max_batch_alerts,
                topology,
                events,
                causality,
            },
            handle,
        ))
    }

    /// The effective causality graph correlation should use (see `CausalitySlot`).
    pub fn causality_graph(&self) -> Option<Arc<crate::causality::Learned>> {
        self.causality.get()
    }

    /// Replaces the effective causality graph (after a relearn or an override change).
    pub fn set_causality_graph(&self, g: Option<Arc<crate::causality::Learned>>) {
        self.causality.set(g)
    }

    /// The slot itself, for a reader that keeps it (the writer's engine).
    pub fn causality_slot(&self) -> &Arc<CausalitySlot> {
        &self.causality
    }

    pub fn topology(&self) -> &Arc<RwLock<Topology>> {
        &self.topology
    }

    /// Incident events of this daemon's commits from now on, as Server-Sent Events
    /// frames built once for all readers (a slow reader loses the oldest:
    /// `RecvError::Lagged`).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Arc<[u8]>> {
        self.events.subscribe()
    }

    /// The error of the writer's last transaction while no later one succeeded: the
    /// store takes no writes (a full disk, a database that is down).
    pub fn write_failure(&self) -> Option<String> {
        self.health.get()
    }

    /// Queues a command and waits for its outcome until `deadline`.
    async fn call<T>(
        &self,
        deadline: tokio::time::Instant,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, PipelineError> {
        // A store that refuses writes (down, disk full) fails senders fast instead of
        // making each wait for its own failed attempt; the writer's tick probes it.
        if let Some(e) = self.health.get() {
            return Err(PipelineError::StoreFailing(e));
        }
        let (reply, rx) = oneshot::channel();
        let ticket = Arc::new(AtomicU8::new(QUEUED));
        let queued = Queued {
            cmd: make(reply),
            ticket: ticket.clone(),
        };
        self.tx.try_send(queued).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PipelineError::Busy,
            mpsc::error::TrySendError::Closed(_) => PipelineError::ShuttingDown,
        })?;
        let _withdraw = WithdrawOnDrop(ticket.clone());
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            // The writer skips only withdrawn commands, and this one was not: it ended.
            Ok(Err(_)) => Err(PipelineError::WriterStopped),
            Err(_) => Err(PipelineError::TimedOut {
                maybe_stored: !withdraw(&ticket),
            }),
        }
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.deadline
    }

    /// Stores and correlates `alerts`; returns once they are durable. More than
    /// `max_batch_alerts` are written as several commands, one after the other (in order,
    /// so correlation sees them as sent); a failure part way says how many were stored.
    pub async fn ingest(
        &self,
        mut alerts: Vec<Alert>,
        source: Source,
    ) -> Result<IngestReport, PipelineError> {
        let deadline = self.deadline();
        let total = alerts.len() as u64;
        let mut report = IngestReport::default();
        loop {
            let rest = if alerts.len() > self.max_batch_alerts {
                alerts.split_off(self.max_batch_alerts)
            } else {
                Vec::new()
            };
            let enqueued = Instant::now();
            let part = self
                .call(deadline, |reply| Command::Ingest {
                    alerts,
                    source,
                    enqueued,
                    reply,
                })
                .await;
            match part {
                Ok(r) => {
                    report.accepted += r.accepted;
                    report.new += r.new;
                    report.duplicate += r.duplicate;
                    report.resolved += r.resolved;
                }
                Err(e) if report.accepted == 0 => return Err(e),
                Err(e) => {
                    return Err(PipelineError::Partial {
                        stored: report.accepted,
                        total,
                        cause: Box::new(e),
                    });
                }
            }
            if rest.is_empty() {
                return Ok(report);
            }
            alerts = rest;
        }
    }

    pub async fn patch(
        &self,
        id: String,
        patch: IncidentPatch,
        actor: String,
        at: DateTime<Utc>,
    ) -> Result<Incident, PipelineError> {
        self.call(self.deadline(), |reply| Command::Patch {
            id,
            patch,
            actor,
            at,
            reply,
        })
        .await
    }

    /// Merges or splits incidents for an operator; returns once durable.
    pub async fn edit(
        &self,
        edit: Edit,
        actor: String,
        at: DateTime<Utc>,
    ) -> Result<Edited, PipelineError> {
        self.call(self.deadline(), |reply| Command::Edit {
            edit,
            actor,
            at,
            reply,
        })
        .await
    }

    pub async fn upsert_cis(&self, cis: Vec<Ci>) -> Result<usize, PipelineError> {
        self.call(self.deadline(), |reply| Command::UpsertCis { cis, reply })
            .await
    }

    pub async fn upsert_relations(&self, rels: Vec<Relation>) -> Result<usize, PipelineError> {
        self.call(self.deadline(), |reply| Command::UpsertRelations {
            rels,
            reply,
        })
        .await
    }

    /// Stores change records; maintenance windows among them take effect at once.
    pub async fn upsert_changes(&self, changes: Vec<Change>) -> Result<usize, PipelineError> {
        self.call(self.deadline(), |reply| Command::UpsertChanges {
            changes,
            reply,
        })
        .await
    }
}

/// How often the writer looks whether another process changed the CMDB: one small read
/// of `sift_state`; the reload happens only when the version moved.
const CMDB_POLL: std::time::Duration = std::time::Duration::from_secs(1);

struct Writer {
    health: Arc<Health>,
    events: tokio::sync::broadcast::Sender<Arc<[u8]>>,
    store: Arc<dyn Store>,
    engine: Engine,
    topology: Arc<RwLock<Topology>>,
    metrics: Arc<Metrics>,
    /// The store state as of this daemon's last commit or reload.
    seen: StateRow,
    settings: Settings,
    /// Shutting down: fold the whole re-send journal into alert rows.
    draining: bool,
    /// The last journal flush left rows for later batches.
    journal_left: bool,
    /// The re-send journal's rows as far as this daemon knows them.
    journal: JournalBook,
    /// The learned causality graph correlation uses, and the slot version last taken
    /// from it (checked once per batch: a relearn reaches the engine at the next batch).
    causality: Arc<CausalitySlot>,
    causality_seen: u64,
}

/// The journal rows a daemon knows of (it wrote them, or read them at start or catching
/// up) and their entry counts: what decides when the journal is over its size bound.
/// Rows another daemon deleted are forgotten once the oldest row left is past them.
#[derive(Default)]
struct JournalBook {
    rows: std::collections::BTreeMap<i64, usize>,
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

/// Journaled alerts a batch rewrites, and the journal rows it may then delete.
#[derive(Default)]
struct Flush {
    alerts: FingerprintSet,
    through: Option<i64>,
    /// Entries in the rows it deletes.
    entries: usize,
}

impl Flush {
    fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.through.is_none()
    }
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
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
                    let mut n = batch_alerts(&q.cmd);
                    let mut batch = VecDeque::from([q]);
                    // Group commit: take whatever else is waiting, up to the batch limit.
                    while n < self.settings.max_batch_alerts && matches!(batch.back(), Some(Queued { cmd: Command::Ingest { .. }, .. })) {
                        match rx.try_recv() {
                            Ok(q) => {
                                n += batch_alerts(&q.cmd);
                                batch.push_back(q);
                            }
                            Err(_) => break,
                        }
                    }
                    self.metrics.queue_depth.set(rx.len() as i64);
                    self.process(batch, None).await;
                }
                _ = ticker.tick() => {
                    self.process(VecDeque::new(), Some(Utc::now())).await;
                }
                _ = cmdb_poll.tick() => {
                    // The CMDB changed under us (`sift cmdb import`, another daemon): an
                    // empty batch catches up now, not at the next write, which on a quiet
                    // daemon may be minutes away. A failed look waits for the next one.
                    match self.store.cmdb_version().await {
                        Ok(v) if v != self.seen.cmdb_version => {
                            self.process(VecDeque::new(), None).await;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "cannot read the CMDB version"),
                    }
                }
            }
        }
        self.drain_journal().await;
        tracing::info!("writer drained its queue and stopped");
    }

    /// Runs one batch in one transaction and answers its callers: every command taken
    /// gets an answer, whatever fails.
    async fn process(&mut self, mut batch: VecDeque<Queued>, tick: Option<DateTime<Utc>>) {
        let started = Instant::now();
        let version = self.causality.version();
        if version != self.causality_seen {
            self.causality_seen = version;
            let graph = self.causality.get();
            self.engine
                .set_learned(graph.as_deref(), &self.settings.causality_types);
        }
        let mut replies = Vec::with_capacity(batch.len());
        let result = self.apply(&mut batch, tick, &mut replies).await;
        let elapsed = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                self.health.set(None);
                for r in replies {
                    r.send_ok(&self.metrics);
                }
                // Pruning walks every alert in memory: once per tick, not once per batch.
                if tick.is_some() {
                    self.engine.prune();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "write transaction failed; state will be re-read from the store");
                self.metrics.store_write_errors.inc();
                self.health.set(Some(e.to_string()));
                // The engine may hold decisions the store never got: start over from the store.
                self.seen.seq = -1;
                self.journal_left = false; // a shutdown drain stops here
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
        }
        self.metrics
            .store_seconds
            .with_label_values(&["batch"])
            .observe(elapsed);
        self.metrics
            .incidents_open
            .set(self.engine.active_incident_count() as i64);
    }

    async fn apply(
        &mut self,
        batch: &mut VecDeque<Queued>,
        tick: Option<DateTime<Utc>>,
        replies: &mut Vec<Pending>,
    ) -> Result<(), WriteError> {
        let mut tx = self.store.begin().await?;
        self.catch_up(&mut *tx).await?;
        if let Some(now) = tick {
            let topo = self.topology.read().unwrap_or_else(|p| p.into_inner());
            self.engine.tick(&topo, now);
        }
        let mut cmdb_changed = false;
        let mut changes_written = false;
        let mut new_cis: Vec<Ci> = Vec::new();
        let mut new_rels: Vec<Relation> = Vec::new();
        // A command's reply is answered here when its own step fails; the batch's other
        // commands are answered by `process`.
        macro_rules! or_answer {
            ($step:expr, $reply:expr) => {
                match $step {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = $reply.send(Err(PipelineError::WriteFailed(e.to_string())));
                        return Err(e.into());
                    }
                }
            };
        }
        while let Some(Queued { cmd, ticket }) = batch.pop_front() {
            if !take(&ticket) {
                continue; // its caller stopped waiting before the writer got here
            }
            match cmd {
                Command::Ingest {
                    alerts,
                    source,
                    enqueued,
                    reply,
                } => {
                    or_answer!(self.preload(&mut *tx, &alerts).await, reply);
                    let topo = self.topology.read().unwrap_or_else(|p| p.into_inner());
                    let mut report = IngestReport {
                        accepted: alerts.len() as u64,
                        ..Default::default()
                    };
                    for a in alerts {
                        let fp = a.fingerprint.clone();
                        let outcome = self.engine.ingest(&topo, &self.settings.mapper, a);
                        tracing::debug!(fingerprint = %fp, outcome = outcome.as_str(), "alert");
                        match outcome {
                            Outcome::New => report.new += 1,
                            Outcome::Duplicate => report.duplicate += 1,
                            Outcome::Resolved => report.resolved += 1,
                        }
                    }
                    replies.push(Pending::Ingest {
                        reply,
                        report,
                        source,
                        enqueued,
                    });
                }
                Command::Patch {
                    id,
                    patch,
                    actor,
                    at,
                    reply,
                } => {
                    if self.engine.incident(&id).is_none()
                        && let Some(inc) = or_answer!(tx.load_incident(&id).await, reply)
                    {
                        let fps: Vec<_> = inc.alert_fingerprints.iter().cloned().collect();
                        self.engine.load_incident(inc);
                        for a in or_answer!(tx.load_alerts(&fps).await, reply) {
                            if self.engine.alert(&a.fingerprint).is_none() {
                                self.engine.load_alert(a);
                            }
                        }
                    }
                    let res = self
                        .engine
                        .patch_incident(&id, &patch, &actor, at)
                        .map(|()| self.engine.incident(&id).cloned().map(Box::new));
                    replies.push(Pending::Patch { reply, result: res });
                }
                Command::Edit {
                    edit,
                    actor,
                    at,
                    reply,
                } => {
                    let ids: Vec<String> = match &edit {
                        Edit::Merge { from, into } => vec![from.clone(), into.clone()],
                        Edit::Split { id, .. } => vec![id.clone()],
                    };
                    for id in &ids {
                        or_answer!(self.load_whole(&mut *tx, id).await, reply);
                    }
                    let topo = self.topology.read().unwrap_or_else(|p| p.into_inner());
                    let res = match edit {
                        Edit::Merge { from, into } => self
                            .engine
                            .merge_incident(&topo, &from, &into, &actor, at)
                            .map(|()| (from, into)),
                        Edit::Split { id, alerts } => self
                            .engine
                            .split_incident(&topo, &id, &alerts, &actor, at)
                            .map(|new| (id, new)),
                    };
                    let result = res.and_then(|(a, b)| {
                        match (self.engine.incident(&a), self.engine.incident(&b)) {
                            (Some(x), Some(y)) => Ok(Box::new(Edited {
                                incident: x.clone(),
                                other: y.clone(),
                            })),
                            _ => Err(EditError::NotFound(a)),
                        }
                    });
                    replies.push(Pending::Edit { reply, result });
                }
                Command::UpsertCis { cis, reply } => {
                    let res = cmdb::validate_cis(&cis);
                    if res.is_ok() {
                        or_answer!(tx.upsert_cis(&cis).await, reply);
                        cmdb_changed = true;
                        replies.push(Pending::Count {
                            reply,
                            result: Ok(cis.len()),
                        });
                        new_cis.extend(cis);
                    } else {
                        replies.push(Pending::Count {
                            reply,
                            result: res.map(|()| 0),
                        });
                    }
                }
                Command::UpsertRelations { rels, reply } => {
                    let res = {
                        let topo = self.topology.read().unwrap_or_else(|p| p.into_inner());
                        cmdb::validate_relations(&rels, |id| {
                            topo.node(id).is_some() || new_cis.iter().any(|c| c.id == id)
                        })
                    };
                    if res.is_ok() {
                        or_answer!(tx.upsert_relations(&rels).await, reply);
                        cmdb_changed = true;
                        replies.push(Pending::Count {
                            reply,
                            result: Ok(rels.len()),
                        });
                        new_rels.extend(rels);
                    } else {
                        replies.push(Pending::Count {
                            reply,
                            result: res.map(|()| 0),
                        });
                    }
                }
                Command::UpsertChanges { changes, reply } => {
                    let res = {
                        let topo = self.topology.read().unwrap_or_else(|p| p.into_inner());
                        cmdb::change::validate(&changes, |id| topo.node(id).is_some())
                    };
                    match res {
                        Ok(()) => {
                            or_answer!(tx.upsert_changes(&changes).await, reply);
                            changes_written = true;
                            let n = changes.len();
                            for c in changes {
                                self.engine.upsert_change(c);
                            }
                            replies.push(Pending::Changes {
                                reply,
                                result: Ok(n),
                            });
                        }
                        Err(e) => replies.push(Pending::Changes {
                            reply,
                            result: Err(e),
                        }),
                    }
                }
            }
        }
        let mut changes = self.engine.take_changes();
        changes.touched.retain(|f| !changes.alerts.contains(f));
        // A fingerprint too long for a journal entry: rewrite the row instead.
        let long: Vec<Fingerprint> = changes
            .touched
            .iter()
            .filter(|f| f.0.len() > crate::store::journal::MAX_FINGERPRINT)
            .cloned()
            .collect();
        for f in long {
            changes.touched.remove(&f);
            changes.alerts.insert(f);
        }
        let flush = self
            .journal_to_flush(&mut *tx, &changes.alerts, tick.is_some())
            .await?;
        // While writes are failing, each tick commits even with nothing to write: that
        // probe is how the writer learns the store takes writes again.
        let probe = tick.is_some() && self.health.get().is_some();
        if changes.is_empty() && flush.is_empty() && !cmdb_changed && !changes_written && !probe {
            return Ok(()); // nothing to write: the transaction rolls back on drop
        }
        // Rows written in full: changed alerts, and journaled ones whose turn has come.
        // In fingerprint order: concurrent daemons lock them in the same order.
        let mut fps: Vec<&Fingerprint> = changes.alerts.iter().chain(&flush.alerts).collect();
        fps.sort_unstable();
        let alerts: Vec<&crate::correlate::AlertRecord> =
            fps.iter().filter_map(|f| self.engine.alert(f)).collect();
        // Re-sends that changed only count and ends_at: one journal row for all of them.
        let journal: Vec<JournalEntry> = changes
            .touched
            .iter()
            .filter(|f| !flush.alerts.contains(*f))
            .filter_map(|f| self.engine.alert(f))
            .map(|r| JournalEntry {
                fingerprint: r.fingerprint.clone(),
                count: r.count,
                ends_at: r.ends_at,
            })
            .collect();
        // Re-sends (same status, CI, incident and start as stored) only rewrite their
        // document; everything else is a full upsert.
        let (refresh, upsert): (Vec<_>, Vec<_>) =
            alerts.iter().copied().partition(|r| r.index_unchanged());
        let incidents: Vec<&Incident> = changes
            .incidents
            .iter()
            .filter_map(|i| self.engine.incident(i))
            .collect();
        let t = Instant::now();
        tx.upsert_alerts(&upsert).await?;
        tx.refresh_alerts(&refresh).await?;
        tx.append_journal(&journal).await?;
        if let Some(seq) = flush.through {
            tx.delete_journal_through(seq).await?;
        }
        // Member lists a split shortened are written whole, in place of their rows and of
        // this batch's new rows for them: the shortened list hands out positions again
        // that stored rows still hold.
        for id in &changes.rewrite_members {
            if let Some(inc) = self.engine.incident(id) {
                let fps: Vec<Fingerprint> = inc.alert_fingerprints.iter().cloned().collect();
                tx.rewrite_members(id, &fps).await?;
            }
        }
        tx.upsert_incidents(&incidents).await?;
        if changes.rewrite_members.is_empty() {
            tx.add_members(&changes.members).await?;
        } else {
            let members: Vec<_> = changes
                .members
                .iter()
                .filter(|(i, _, _)| !changes.rewrite_members.contains(i.as_str()))
                .cloned()
                .collect();
            tx.add_members(&members).await?;
        }
        tx.append_feedback(&changes.feedback).await?;
        tx.append_timeline(&changes.timeline).await?;
        // Outbound events commit with the change they announce (durable delivery).
        let live = self.events.receiver_count() > 0;
        let events = crate::outbox::enqueue(&mut *tx, &incidents, &changes.timeline, live).await?;
        let n_alerts = alerts.len();
        let state = tx.commit().await.map_err(WriteError::commit)?;
        self.metrics
            .store_seconds
            .with_label_values(&["commit"])
            .observe(t.elapsed().as_secs_f64());
        self.metrics.batch_alerts.observe(n_alerts as f64);
        self.metrics.incidents_opened.inc_by(changes.opened);
        self.metrics.incidents_resolved.inc_by(changes.resolved);
        self.metrics
            .observe_incidents(&incidents, &changes.timeline);
        for e in events {
            let _ = self.events.send(e.sse_frame()); // no live reader: nothing to do
        }
        let own_cmdb = self.seen.cmdb_version + i64::from(cmdb_changed) == state.cmdb_version;
        self.seen = state;
        let written: Vec<Fingerprint> = fps.into_iter().cloned().collect();
        self.engine.mark_persisted(&written, state.seq);
        self.metrics.journal_entries.inc_by(journal.len() as u64);
        self.journal.add(state.seq, journal.len());
        if let Some(seq) = flush.through {
            self.journal.forget_below(seq + 1);
        }
        self.metrics
            .journal_flushed
            .inc_by(flush.alerts.len() as u64);
        if cmdb_changed {
            let mut topo = self.topology.write().unwrap_or_else(|p| p.into_inner());
            for c in new_cis {
                topo.upsert_ci(c);
            }
            for r in &new_rels {
                topo.upsert_relation(r);
            }
        }
        if !own_cmdb {
            self.seen.cmdb_version = -1;
        }
        Ok(())
    }

    /// Under the write lock: if another daemon (or `sift cmdb import`) wrote since our last
    /// commit, take in what changed.
    async fn catch_up(&mut self, tx: &mut dyn WriteTx) -> Result<(), StoreError> {
        let state = tx.state();
        if self.seen.seq < 0 {
            return self.full_reload(tx).await;
        }
        if state.cmdb_version != self.seen.cmdb_version {
            let doc = tx.load_cmdb().await?;
            *self.topology.write().unwrap_or_else(|p| p.into_inner()) = Topology::from_file(&doc);
            self.seen.cmdb_version = state.cmdb_version;
        }
        if state.seq != self.seen.seq {
            let t = Instant::now();
            for c in tx.changes_since(self.seen.seq, change_horizon()).await? {
                self.engine.upsert_change(c);
            }
            for a in tx.alerts_since(self.seen.seq).await? {
                self.engine.load_alert(a);
            }
            for i in tx.incidents_since(self.seen.seq).await? {
                self.engine.load_incident(i);
            }
            // Re-sends other daemons journaled (alerts they rewrote came in above).
            for row in tx.journal_since(self.seen.seq).await? {
                self.journal.add(row.seq, row.entries.len());
                for e in row.entries {
                    self.engine
                        .apply_journal(row.seq, &e.fingerprint, e.count, e.ends_at);
                }
            }
            self.metrics.state_reloads.inc();
            self.metrics
                .store_seconds
                .with_label_values(&["catch_up"])
                .observe(t.elapsed().as_secs_f64());
            self.seen.seq = state.seq;
        }
        self.engine
            .reserve_numbers_below(state.next_incident as u64);
        Ok(())
    }

    async fn full_reload(&mut self, tx: &mut dyn WriteTx) -> Result<(), StoreError> {
        let state = tx.state();
        let doc = tx.load_cmdb().await?;
        *self.topology.write().unwrap_or_else(|p| p.into_inner()) = Topology::from_file(&doc);
        let (alerts, incidents) = tx.load_active().await?;
        let mut engine = Engine::new(self.engine.config().clone());
        for c in tx.changes_since(-1, change_horizon()).await? {
            engine.upsert_change(c);
        }
        for i in incidents {
            engine.load_incident(i);
        }
        for a in alerts {
            engine.load_alert(a);
        }
        // Re-sends journaled since each alert's row was written (see `store::journal`).
        self.journal = JournalBook::default();
        for row in tx.journal_since(-1).await? {
            self.journal.add(row.seq, row.entries.len());
            for e in row.entries {
                engine.apply_journal(row.seq, &e.fingerprint, e.count, e.ends_at);
            }
        }
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

    /// Picks the journaled alerts whose rows are rewritten in this batch: those in journal
    /// rows older than `resend_flush` (all rows at shutdown) whose row has not been
    /// rewritten since. Those journal rows are deleted in the same transaction. A batch
    /// takes a bounded share, so a storm's backlog is worked off over several batches.
    async fn journal_to_flush(
        &mut self,
        tx: &mut dyn WriteTx,
        written_anyway: &FingerprintSet,
        tick: bool,
    ) -> Result<Flush, StoreError> {
        // A tick also comes under load: a tick that folded 200k rows in one transaction
        // stalled every sender for seconds on PostgreSQL. Only the shutdown drain takes
        // large bites.
        let (max_rows, max_alerts) = if self.draining {
            (256, 200_000)
        } else if tick {
            (32, 20_000)
        } else {
            (8, 5_000)
        };
        let now = Utc::now();
        // Past the size bound, the oldest rows are folded whatever their age.
        let before = if self.draining || self.journal.entries > self.settings.resend_journal_max {
            Some(now + chrono::Duration::days(1))
        } else {
            chrono::Duration::from_std(self.settings.resend_flush)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
        };
        let Some(before) = before else {
            return Ok(Flush::default()); // a flush age beyond any date: rows wait for the stop
        };
        // A row stamped more than a minute ahead of this clock means a clock stepped back
        // (here or on another daemon): it must not hold the journal up.
        let (oldest, rows) = tx
            .oldest_journal(before, now + chrono::Duration::minutes(1), max_rows)
            .await?;
        // Rows before the oldest one left were folded and deleted by another daemon.
        match oldest {
            Some(seq) => self.journal.forget_below(seq),
            None => self.journal = JournalBook::default(),
        }
        let mut flush = Flush::default();
        self.journal_left = rows.len() as i64 == max_rows;
        for row in rows {
            for e in &row.entries {
                let stale = self
                    .engine
                    .alert(&e.fingerprint)
                    .is_some_and(|r| r.persisted.seq <= row.seq);
                if stale && !written_anyway.contains(&e.fingerprint) {
                    flush.alerts.insert(e.fingerprint.clone());
                }
            }
            flush.through = Some(row.seq);
            flush.entries += row.entries.len();
            if flush.alerts.len() >= max_alerts {
                self.journal_left = true;
                break;
            }
        }
        Ok(flush)
    }

    /// At shutdown: folds the whole journal into alert rows, so the store reads exactly
    /// right without the journal (the journal alone would be enough after a crash).
    async fn drain_journal(&mut self) {
        self.draining = true;
        for _ in 0..1000 {
            self.journal_left = false;
            self.process(VecDeque::new(), None).await;
            if !self.journal_left {
                break;
            }
        }
    }

    /// Brings an incident and every alert of it into the core from the store, where the
    /// core does not hold them (an edit moves all of them). Nothing for an unknown id.
    async fn load_whole(&mut self, tx: &mut dyn WriteTx, id: &str) -> Result<(), StoreError> {
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
                self.engine.load_alert(a);
            }
        }
        Ok(())
    }

    /// Brings alerts the core no longer holds in memory (but the store has) back in, with
    /// their incidents, so dedup counts and incident links continue where they were.
    async fn preload(&mut self, tx: &mut dyn WriteTx, alerts: &[Alert]) -> Result<(), StoreError> {
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
            self.engine.load_alert(rec);
        }
        self.metrics
            .store_seconds
            .with_label_values(&["preload"])
            .observe(t.elapsed().as_secs_f64());
        Ok(())
    }
}

/// Changes that ended before this are history (enrichment looks back no further).
fn change_horizon() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(7)
}

fn batch_alerts(c: &Command) -> usize {
    match c {
        Command::Ingest { alerts, .. } => alerts.len().max(1),
        _ => 1,
    }
}

/// Why a batch's transaction failed: before its commit (nothing was stored), or in it.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Before(#[from] StoreError),
    #[error("commit failed: {0}")]
    Commit(StoreError),
}

impl WriteError {
    /// A commit the database refused (its error answer) kept nothing; a commit whose
    /// answer never came (connection lost, I/O) may have been kept.
    fn commit(e: StoreError) -> Self {
        match e {
            StoreError::Db(sqlx::Error::Database(_)) => WriteError::Before(e),
            e => WriteError::Commit(e),
        }
    }

    fn answer(&self) -> PipelineError {
        match self {
            WriteError::Before(e) => PipelineError::WriteFailed(e.to_string()),
            WriteError::Commit(e) => PipelineError::CommitFailed(e.to_string()),
        }
    }
}

impl Command {
    /// Answers the command's caller with `e` (nothing of it was written).
    fn fail(self, e: PipelineError) {
        match self {
            Command::Ingest { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Command::Patch { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Command::Edit { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            Command::UpsertCis { reply, .. }
            | Command::UpsertRelations { reply, .. }
            | Command::UpsertChanges { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// A reply held until the batch's commit decides it.
enum Pending {
    Ingest {
        reply: Reply<IngestReport>,
        report: IngestReport,
        source: Source,
        enqueued: Instant,
    },
    Patch {
        reply: Reply<Incident>,
        result: Result<Option<Box<Incident>>, PatchError>,
    },
    Edit {
        reply: Reply<Edited>,
        result: Result<Box<Edited>, EditError>,
    },
    Count {
        reply: Reply<usize>,
        result: Result<usize, CmdbError>,
    },
    Changes {
        reply: Reply<usize>,
        result: Result<usize, ChangeError>,
    },
}

impl Pending {
    fn send_ok(self, m: &Metrics) {
        match self {
            Pending::Ingest {
                reply,
                report,
                source,
                enqueued,
            } => {
                let s = source.as_str();
                for (outcome, n) in [
                    ("new", report.new),
                    ("duplicate", report.duplicate),
                    ("resolved", report.resolved),
                ] {
                    if n > 0 {
                        m.alerts_received.with_label_values(&[s, outcome]).inc_by(n);
                    }
                }
                m.ingest_seconds
                    .with_label_values(&[s])
                    .observe(enqueued.elapsed().as_secs_f64());
                let _ = reply.send(Ok(report));
            }
            Pending::Patch { reply, result } => {
                let r = match result {
                    Ok(Some(inc)) => Ok(*inc),
                    Ok(None) => Err(PipelineError::WriterStopped),
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Pending::Edit { reply, result } => {
                let _ = reply.send(result.map(|e| *e).map_err(Into::into));
            }
            Pending::Count { reply, result } => {
                let _ = reply.send(result.map_err(Into::into));
            }
            Pending::Changes { reply, result } => {
                let _ = reply.send(result.map_err(Into::into));
            }
        }
    }

    fn send_err(self, e: &WriteError) {
        let err = || e.answer();
        match self {
            Pending::Ingest { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Pending::Patch { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Pending::Edit { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Pending::Count { reply, .. } | Pending::Changes { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
        }
    }
}
