//! The writer's commands, one step each, inside the batch's transaction: what the store
//! must give the core first (alerts and incidents it no longer holds), the core's call,
//! and the reply held until the commit (`Pending`).
//!
//! A command whose own store step fails answers its caller at once (`failed`) and stops
//! the batch. Nothing here decides correlation: the core does.

use chrono::{DateTime, Utc};

use super::journal::ResendJournal;
use super::queue::{Command, Pending, Reply, WriteError, failed};
use super::writer::{CmdbWrites, Writer};
use super::{Edit, Edited, IngestReport};
use crate::alert::{Alert, Source};
use crate::cmdb::{self, Change, Ci, Relation};
use crate::correlate::{EditError, Outcome};
use crate::store::{StoreError, WriteTx};

impl Writer {
    /// Runs one command through the core.
    pub(super) async fn command(
        &mut self,
        tx: &mut dyn WriteTx,
        cmd: Command,
        cmdb: &mut CmdbWrites,
    ) -> Result<Pending, WriteError> {
        match cmd {
            Command::Ingest {
                alerts,
                source,
                enqueued,
                reply,
            } => self.ingest(tx, alerts, source, enqueued, reply).await,
            Command::Patch {
                id,
                patch,
                actor,
                at,
                reply,
            } => {
                if let Err(e) = self.load_for_patch(tx, &id).await {
                    return Err(failed(reply, e));
                }
                let result = self
                    .engine
                    .patch_incident(&id, &patch, &actor, at)
                    .map(|()| self.engine.incident(&id).cloned().map(Box::new));
                Ok(Pending::Patch { reply, result })
            }
            Command::Edit {
                edit,
                actor,
                at,
                reply,
            } => self.edit(tx, edit, &actor, at, reply).await,
            Command::UpsertCis { cis, reply } => self.upsert_cis(tx, cis, cmdb, reply).await,
            Command::UpsertRelations { rels, reply } => {
                self.upsert_relations(tx, rels, cmdb, reply).await
            }
            Command::UpsertChanges { changes, reply } => {
                self.upsert_changes(tx, changes, cmdb, reply).await
            }
        }
    }

    async fn ingest(
        &mut self,
        tx: &mut dyn WriteTx,
        alerts: Vec<Alert>,
        source: Source,
        enqueued: std::time::Instant,
        reply: Reply<IngestReport>,
    ) -> Result<Pending, WriteError> {
        if let Err(e) = self.preload(tx, &alerts).await {
            return Err(failed(reply, e));
        }
        let topo = self
            .shared
            .topology
            .read()
            .unwrap_or_else(|p| p.into_inner());
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
        Ok(Pending::Ingest {
            reply,
            report,
            source,
            enqueued,
        })
    }

    /// An incident the core does not hold comes in from the store, with its alerts.
    async fn load_for_patch(&mut self, tx: &mut dyn WriteTx, id: &str) -> Result<(), StoreError> {
        if self.engine.incident(id).is_some() {
            return Ok(());
        }
        let Some(inc) = tx.load_incident(id).await? else {
            return Ok(());
        };
        let fps: Vec<_> = inc.alert_fingerprints.iter().cloned().collect();
        self.engine.load_incident(inc);
        for a in tx.load_alerts(&fps).await? {
            if self.engine.alert(&a.fingerprint).is_none() {
                ResendJournal::adopt(&mut self.engine, a);
            }
        }
        Ok(())
    }

    async fn edit(
        &mut self,
        tx: &mut dyn WriteTx,
        edit: Edit,
        actor: &str,
        at: DateTime<Utc>,
        reply: Reply<Edited>,
    ) -> Result<Pending, WriteError> {
        let ids: Vec<String> = match &edit {
            Edit::Merge { from, into } => vec![from.clone(), into.clone()],
            Edit::Split { id, .. } => vec![id.clone()],
        };
        for id in &ids {
            if let Err(e) = self.load_whole(tx, id).await {
                return Err(failed(reply, e));
            }
        }
        let topo = self
            .shared
            .topology
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let res = match edit {
            Edit::Merge { from, into } => self
                .engine
                .merge_incident(&topo, &from, &into, actor, at)
                .map(|()| (from, into)),
            Edit::Split { id, alerts } => self
                .engine
                .split_incident(&topo, &id, &alerts, actor, at)
                .map(|new| (id, new)),
        };
        let result =
            res.and_then(
                |(a, b)| match (self.engine.incident(&a), self.engine.incident(&b)) {
                    (Some(x), Some(y)) => Ok(Box::new(Edited {
                        incident: x.clone(),
                        other: y.clone(),
                    })),
                    _ => Err(EditError::NotFound(a)),
                },
            );
        Ok(Pending::Edit { reply, result })
    }

    async fn upsert_cis(
        &mut self,
        tx: &mut dyn WriteTx,
        cis: Vec<Ci>,
        cmdb: &mut CmdbWrites,
        reply: Reply<usize>,
    ) -> Result<Pending, WriteError> {
        if let Err(e) = cmdb::validate_cis(&cis) {
            return Ok(Pending::Count {
                reply,
                result: Err(e),
            });
        }
        if let Err(e) = tx.upsert_cis(&cis).await {
            return Err(failed(reply, e));
        }
        cmdb.changed = true;
        let result = Ok(cis.len());
        cmdb.cis.extend(cis);
        Ok(Pending::Count { reply, result })
    }

    async fn upsert_relations(
        &mut self,
        tx: &mut dyn WriteTx,
        rels: Vec<Relation>,
        cmdb: &mut CmdbWrites,
        reply: Reply<usize>,
    ) -> Result<Pending, WriteError> {
        let valid = {
            let topo = self
                .shared
                .topology
                .read()
                .unwrap_or_else(|p| p.into_inner());
            cmdb::validate_relations(&rels, |id| {
                topo.node(id).is_some() || cmdb.cis.iter().any(|c| c.id == id)
            })
        };
        if let Err(e) = valid {
            return Ok(Pending::Count {
                reply,
                result: Err(e),
            });
        }
        if let Err(e) = tx.upsert_relations(&rels).await {
            return Err(failed(reply, e));
        }
        cmdb.changed = true;
        let result = Ok(rels.len());
        cmdb.rels.extend(rels);
        Ok(Pending::Count { reply, result })
    }

    async fn upsert_changes(
        &mut self,
        tx: &mut dyn WriteTx,
        changes: Vec<Change>,
        cmdb: &mut CmdbWrites,
        reply: Reply<usize>,
    ) -> Result<Pending, WriteError> {
        let valid = {
            let topo = self
                .shared
                .topology
                .read()
                .unwrap_or_else(|p| p.into_inner());
            cmdb::change::validate(&changes, |id| topo.node(id).is_some())
        };
        if let Err(e) = valid {
            return Ok(Pending::Changes {
                reply,
                result: Err(e),
            });
        }
        if let Err(e) = tx.upsert_changes(&changes).await {
            return Err(failed(reply, e));
        }
        cmdb.changes = true;
        let n = changes.len();
        for c in changes {
            self.engine.upsert_change(c);
        }
        Ok(Pending::Changes {
            reply,
            result: Ok(n),
        })
    }
}
