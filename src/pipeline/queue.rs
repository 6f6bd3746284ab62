//! What passes between the `Pipeline` handle and the writer: the queued commands with the
//! ticket a caller and the writer race on, the replies a batch holds until its commit
//! decides them, and the writer's health for `/readyz`.
//!
//! Nothing here touches the store or the core: it carries commands and answers.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{Edit, Edited, IngestReport, PipelineError};
use crate::alert::{Alert, Source};
use crate::cmdb::{Change, ChangeError, Ci, CmdbError, Relation};
use crate::correlate::{EditError, IncidentPatch, PatchError};
use crate::incident::Incident;
use crate::metrics::Metrics;
use crate::store::StoreError;

pub(super) type Reply<T> = oneshot::Sender<Result<T, PipelineError>>;

/// A command in the writer's queue, with the ticket its caller and the writer race on.
pub(super) struct Queued {
    pub cmd: Command,
    pub ticket: Arc<AtomicU8>,
}

pub(super) const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

/// Takes a queued command for writing; false when its caller withdrew it.
pub(super) fn take(ticket: &AtomicU8) -> bool {
    ticket
        .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Withdraws a command the writer has not taken; false when it already has.
pub(super) fn withdraw(ticket: &AtomicU8) -> bool {
    ticket
        .compare_exchange(QUEUED, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
        || ticket.load(Ordering::Acquire) == WITHDRAWN
}

/// Withdraws the command when the caller's future is dropped (the client went away).
pub(super) struct WithdrawOnDrop(pub Arc<AtomicU8>);

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        withdraw(&self.0);
    }
}

/// The writer's last outcome, for `/readyz`.
#[derive(Default)]
pub(super) struct Health {
    /// The error of the last write transaction, while no later one has succeeded.
    failing: Mutex<Option<String>>,
}

impl Health {
    pub fn set(&self, e: Option<String>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
    pub fn get(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

pub(super) enum Command {
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

pub(super) fn batch_alerts(c: &Command) -> usize {
    match c {
        Command::Ingest { alerts, .. } => alerts.len().max(1),
        _ => 1,
    }
}

/// Why a batch's transaction failed: before its commit (nothing was stored), or in it.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    #[error(transparent)]
    Before(#[from] StoreError),
    #[error("commit failed: {0}")]
    Commit(StoreError),
}

impl WriteError {
    /// A commit the database refused (its error answer) kept nothing; a commit whose
    /// answer never came (connection lost, I/O) may have been kept.
    pub fn commit(e: StoreError) -> Self {
        match e {
            StoreError::Db(sqlx::Error::Database(_)) => WriteError::Before(e),
            e => WriteError::Commit(e),
        }
    }

    pub fn answer(&self) -> PipelineError {
        match self {
            WriteError::Before(e) => PipelineError::WriteFailed(e.to_string()),
            WriteError::Commit(e) => PipelineError::CommitFailed(e.to_string()),
        }
    }
}

impl Command {
    /// Answers the command's caller with `e` (nothing of it was written).
    pub fn fail(self, e: PipelineError) {
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
pub(super) enum Pending {
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
    pub fn send_ok(self, m: &Metrics) {
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

    pub fn send_err(self, e: &WriteError) {
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

/// A command's own store step failed: its caller is told now (the batch's other commands
/// are answered by `process`), and the batch stops.
pub(super) fn failed<T>(reply: Reply<T>, e: StoreError) -> WriteError {
    let _ = reply.send(Err(PipelineError::WriteFailed(e.to_string())));
    e.into()
}
