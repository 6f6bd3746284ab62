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
//! goes on, and its health (`Pipeline::write_failure`) is what `/readyz` reports. Under
//! the store's write lock the writer first checks whether another daemon wrote since its
//! last commit, and if so re-reads what changed before deciding anything; a CMDB changed
//! by another process is also looked for every second, so it shows without waiting for a
//! write.
//!
//! The parts, in the order a batch goes through them: this file is the handle callers hold
//! (`Pipeline`); `queue` the commands, their tickets and held replies; `writer` the task
//! that runs a batch: `catch_up` with the store, the `commands` through the core, then
//! `plan`, `write`, commit;
//! `plan` decides from the core's changes what the batch writes, without I/O; `write`
//! makes those store calls; `journal` owns the re-send journal's bookkeeping. This module
//! must not decide anything about correlation: the core decides, the writer makes it
//! durable and answers.

mod catch_up;
mod commands;
mod journal;
mod plan;
mod queue;
mod write;
mod writer;

use std::sync::atomic::AtomicU8;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::alert::{Alert, Fingerprint, Source};
use crate::cmdb::{Change, ChangeError, Ci, CiMapper, CmdbError, Relation, Topology};
use crate::correlate::{EditError, IncidentPatch, PatchError};
use crate::incident::Incident;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use queue::{Command, Health, QUEUED, Queued, Reply, WithdrawOnDrop, withdraw};

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
        let writer = writer::Writer::start(
            store,
            settings,
            metrics,
            writer::Shared {
                health: health.clone(),
                events: events.clone(),
                topology: topology.clone(),
                causality: causality.clone(),
            },
        )
        .await?;
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
