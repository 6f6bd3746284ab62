//! Incidents as stored: the incident documents, their member alerts (`incident_alerts`,
//! in join order) and CIs (`incident_cis`), their timelines, and operator feedback on
//! grouping.
//!
//! A document is stored without its member list (`IncidentDoc`): the list grows with every alert and is kept as rows, so a batch writes what changed rather than
//! every member of every touched incident again. Nothing here decides grouping.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use compact_str::CompactString;
use sqlx::{AssertSqlSafe, QueryBuilder};

use super::StoreError;
use super::alerts::decode_alerts;
use super::backend::{
    Backend, CHUNK, Col, PushArg, QueryExt, SqlStore, SqlTx, decode, decode_docs, encode, from_ms,
    ms,
};
use crate::alert::Fingerprint;
use crate::correlate::{AlertRecord, EditKind, FeedbackPair, Label};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::incident::{
    CorrelationKey, Incident, IncidentStatus, Members, RootCause, Sla, TimelineEntry, TimelineKind,
};

#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    pub status: Option<IncidentStatus>,
    pub priority: Option<u8>,
    pub ci: Option<String>,
    /// Only incidents numbered below this (the cursor of the previous page).
    pub before_number: Option<u64>,
    pub limit: u32,
}

/// Which feedback pairs to read (`GET /api/v1/feedback`), oldest first.
#[derive(Debug, Clone, Default)]
pub struct FeedbackQuery {
    /// Only pairs stored after this row id (the cursor of the previous page).
    pub after_id: Option<i64>,
    pub label: Option<Label>,
    /// Only pairs of edits on or into this incident.
    pub incident: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait IncidentStore: Send + Sync {
    async fn list_incidents(&self, q: &IncidentQuery) -> Result<Vec<Incident>, StoreError>;
    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError>;
    async fn timeline(&self, id: &str) -> Result<Vec<TimelineEntry>, StoreError>;
    /// Operator feedback on grouping (merges and splits as labelled pairs), oldest first.
    async fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<FeedbackPair>, StoreError>;
    /// sift's own resolved and closed incidents, the newest `limit` (problem clustering
    /// input; similar past incidents), without their member lists.
    async fn finished_incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError>;
}

#[async_trait]
pub trait IncidentTx: Send {
    /// What the core needs at start: firing alerts, alerts of active incidents, and
    /// active incidents.
    async fn load_active(&mut self) -> Result<(Vec<AlertRecord>, Vec<Incident>), StoreError>;
    async fn incidents_since(&mut self, seq: i64) -> Result<Vec<Incident>, StoreError>;
    async fn load_incident(&mut self, id: &str) -> Result<Option<Incident>, StoreError>;
    async fn upsert_incidents(&mut self, incs: &[&Incident]) -> Result<(), StoreError>;
    /// New incident memberships: (incident id, alert fingerprint, place in join order).
    async fn add_members(
        &mut self,
        members: &[(CompactString, Fingerprint, u64)],
    ) -> Result<(), StoreError>;
    /// Makes `fps` the incident's member rows, in this order (after a split took some
    /// away), and drops its CI rows (`upsert_incidents` writes those again).
    async fn rewrite_members(&mut self, id: &str, fps: &[Fingerprint]) -> Result<(), StoreError>;
    async fn append_feedback(&mut self, pairs: &[FeedbackPair]) -> Result<(), StoreError>;
    async fn append_timeline(&mut self, entries: &[TimelineEntry]) -> Result<(), StoreError>;
}

#[async_trait]
impl<B: Backend> IncidentStore for SqlStore<B> {
    async fn list_incidents(&self, q: &IncidentQuery) -> Result<Vec<Incident>, StoreError> {
        let mut tx = self.begin_snapshot().await?;
        let rows = B::query(
            "SELECT doc FROM incidents WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR priority = $2) \
             AND ($3 IS NULL OR id IN (SELECT incident_id FROM incident_cis WHERE ci_id = $3)) \
             AND ($4 IS NULL OR number < $4) ORDER BY number DESC LIMIT $5",
        )
        .arg(q.status.map(|s| s.as_str()))
        .arg(q.priority.map(i64::from))
        .arg(q.ci.clone())
        .arg(q.before_number.map(|n| n as i64))
        .arg(i64::from(q.limit))
        .all(&mut *tx)
        .await?;
        let mut incs = decode_docs::<B, _>("incident", rows)?;
        fill_members::<B>(&mut tx, &mut incs).await?;
        tx.commit().await?;
        Ok(incs)
    }

    async fn get_incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        let mut tx = self.begin_snapshot().await?;
        let inc = incident::<B>(&mut tx, id).await?;
        tx.commit().await?;
        Ok(inc)
    }

    async fn timeline(&self, id: &str) -> Result<Vec<TimelineEntry>, StoreError> {
        let rows = B::query(
            "SELECT at, actor, kind, detail FROM timeline WHERE incident_id = $1 ORDER BY at, id",
        )
        .arg(id.to_string())
        .all(&mut *self.read().await?)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TimelineEntry {
                    incident_id: id.into(),
                    at: from_ms(r.col(0)?),
                    actor: r.col::<String>(1)?.into(),
                    kind: TimelineKind::parse(&r.col::<String>(2)?),
                    detail: decode("timeline entry", &r.col::<String>(3)?)?,
                })
            })
            .collect()
    }

    async fn list_feedback(&self, q: &FeedbackQuery) -> Result<Vec<FeedbackPair>, StoreError> {
        let rows = B::query(
            "SELECT id, at, actor, action, label, incident_id, other_incident_id, a_fingerprint, a_ci, \
             b_fingerprint, b_ci FROM feedback WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR label = $2) \
             AND ($3 IS NULL OR incident_id = $3 OR other_incident_id = $3) ORDER BY id LIMIT $4",
        )
        .arg(q.after_id)
        .arg(q.label.map(|l| l.as_str()))
        .arg(q.incident.clone())
        .arg(i64::from(q.limit))
        .all(&mut *self.read().await?)
        .await?;
        rows.iter()
            .map(|r| {
                let action: String = r.col(3)?;
                let label: String = r.col(4)?;
                let corrupt = |what: &str, v: &str| StoreError::Corrupt {
                    what: "feedback row".into(),
                    err: format!("unknown {what} {v:?}"),
                };
                Ok(FeedbackPair {
                    id: r.col(0)?,
                    at: from_ms(r.col(1)?),
                    actor: r.col(2)?,
                    action: EditKind::parse(&action).ok_or_else(|| corrupt("action", &action))?,
                    label: Label::parse(&label).ok_or_else(|| corrupt("label", &label))?,
                    incident_id: r.col(5)?,
                    other_incident_id: r.col(6)?,
                    a: Fingerprint(r.col::<String>(7)?.into()),
                    a_ci: r.col(8)?,
                    b: Fingerprint(r.col::<String>(9)?.into()),
                    b_ci: r.col(10)?,
                })
            })
            .collect()
    }

    async fn finished_incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError> {
        let rows = B::query(
            "SELECT doc FROM incidents WHERE status IN ('resolved', 'closed') ORDER BY number DESC LIMIT $1",
        )
        .arg(i64::from(limit))
        .all(&mut *self.read().await?)
        .await?;
        decode_docs::<B, _>("incident", rows)
    }
}

#[async_trait]
impl<B: Backend> IncidentTx for SqlTx<B> {
    async fn load_active(&mut self) -> Result<(Vec<AlertRecord>, Vec<Incident>), StoreError> {
        let mut incidents = decode_docs::<B, _>(
            "incident",
            B::query("SELECT doc FROM incidents WHERE status IN ('open', 'acknowledged')")
                .all(self.conn())
                .await?,
        )?;
        fill_members::<B>(self.conn(), &mut incidents).await?;
        let alerts = decode_alerts::<B>(
            B::query(
                "SELECT a.doc, a.seq FROM alerts a WHERE a.status = 'firing' OR a.incident_id IN \
                 (SELECT id FROM incidents WHERE status IN ('open', 'acknowledged'))",
            )
            .all(self.conn())
            .await?,
        )?;
        Ok((alerts, incidents))
    }

    async fn incidents_since(&mut self, seq: i64) -> Result<Vec<Incident>, StoreError> {
        let rows = B::query("SELECT doc FROM incidents WHERE seq > $1")
            .arg(seq)
            .all(self.conn())
            .await?;
        let mut incs = decode_docs::<B, _>("incident", rows)?;
        fill_members::<B>(self.conn(), &mut incs).await?;
        Ok(incs)
    }

    async fn load_incident(&mut self, id: &str) -> Result<Option<Incident>, StoreError> {
        incident::<B>(self.conn(), id).await
    }

    async fn upsert_incidents(&mut self, incs: &[&Incident]) -> Result<(), StoreError> {
        for i in incs {
            self.written.incident(i.number());
        }
        let seq = self.seq();
        for chunk in incs.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO incidents (id, number, status, priority, seq, doc) ",
            );
            qb.push_values(chunk, |mut b, i| {
                b.push_arg(i.id.clone())
                    .push_arg(i.number() as i64)
                    .push_arg(i.status.as_str())
                    .push_arg(i64::from(i.priority))
                    .push_arg(seq)
                    .push_arg(encode(&IncidentDoc::of(i)));
            });
            qb.push(
                " ON CONFLICT (id) DO UPDATE SET status = excluded.status, priority = excluded.priority, \
                 seq = excluded.seq, doc = excluded.doc",
            );
            qb.build().run(self.conn()).await?;
            let pairs: Vec<(&str, &str)> = chunk
                .iter()
                .flat_map(|i| i.ci_ids.iter().map(move |c| (i.id.as_str(), c.as_str())))
                .collect();
            for pc in pairs.chunks(CHUNK) {
                let mut qb =
                    QueryBuilder::<B>::new("INSERT INTO incident_cis (incident_id, ci_id) ");
                qb.push_values(pc, |mut b, (i, c)| {
                    b.push_arg(i.to_string()).push_arg(c.to_string());
                });
                qb.push(" ON CONFLICT DO NOTHING");
                qb.build().run(self.conn()).await?;
            }
        }
        Ok(())
    }

    async fn add_members(
        &mut self,
        members: &[(CompactString, Fingerprint, u64)],
    ) -> Result<(), StoreError> {
        for chunk in members.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO incident_alerts (incident_id, fingerprint, pos) ",
            );
            qb.push_values(chunk, |mut b, (i, f, pos)| {
                b.push_arg(i.to_string())
                    .push_arg(f.0.to_string())
                    .push_arg(*pos as i64);
            });
            // The core hands each (incident, position) out once, from a member set
            // loaded whole with its incident. A clash would mean the two disagree;
            // failing the batch would then fail every later one too (the re-read
            // state is the same), so the row that is there stays, and it is said
            // loudly: the incident's stored member list then lacks an alert.
            qb.push(" ON CONFLICT DO NOTHING");
            let written = qb.build().run(self.conn()).await?;
            if written < chunk.len() as u64 {
                let incidents: BTreeSet<&str> = chunk.iter().map(|(i, _, _)| i.as_str()).collect();
                tracing::error!(
                    lost = chunk.len() as u64 - written,
                    ?incidents,
                    "incident member rows not written: their position was taken \
                     (the core's member list and the store's disagree)"
                );
            }
        }
        Ok(())
    }

    async fn rewrite_members(&mut self, id: &str, fps: &[Fingerprint]) -> Result<(), StoreError> {
        for table in ["incident_alerts", "incident_cis"] {
            B::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE incident_id = $1"
            )))
            .arg(id.to_string())
            .run(self.conn())
            .await?;
        }
        let rows: Vec<(CompactString, Fingerprint, u64)> = fps
            .iter()
            .zip(0u64..)
            .map(|(f, pos)| (CompactString::from(id), f.clone(), pos))
            .collect();
        self.add_members(&rows).await
    }

    async fn append_feedback(&mut self, pairs: &[FeedbackPair]) -> Result<(), StoreError> {
        for chunk in pairs.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO feedback (at, actor, action, label, incident_id, other_incident_id, \
                 a_fingerprint, a_ci, b_fingerprint, b_ci) ",
            );
            qb.push_values(chunk, |mut b, p| {
                b.push_arg(ms(p.at))
                    .push_arg(p.actor.clone())
                    .push_arg(p.action.as_str())
                    .push_arg(p.label.as_str())
                    .push_arg(p.incident_id.clone())
                    .push_arg(p.other_incident_id.clone())
                    .push_arg(p.a.0.to_string())
                    .push_arg(p.a_ci.clone())
                    .push_arg(p.b.0.to_string())
                    .push_arg(p.b_ci.clone());
            });
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }

    async fn append_timeline(&mut self, entries: &[TimelineEntry]) -> Result<(), StoreError> {
        for chunk in entries.chunks(CHUNK) {
            let mut qb = QueryBuilder::<B>::new(
                "INSERT INTO timeline (incident_id, at, actor, kind, detail) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_arg(e.incident_id.to_string())
                    .push_arg(ms(e.at))
                    .push_arg(e.actor.to_string())
                    .push_arg(e.kind.to_string())
                    .push_arg(encode(&e.detail));
            });
            qb.build().run(self.conn()).await?;
        }
        Ok(())
    }
}

/// One incident with its members.
async fn incident<B: Backend>(
    conn: &mut B::Connection,
    id: &str,
) -> Result<Option<Incident>, StoreError> {
    let row = B::query("SELECT doc FROM incidents WHERE id = $1")
        .arg(id.to_string())
        .optional(&mut *conn)
        .await?;
    let mut incs: Vec<Incident> = row
        .map(|r| decode("incident", &r.col::<String>(0)?))
        .transpose()?
        .into_iter()
        .collect();
    fill_members::<B>(conn, &mut incs).await?;
    Ok(incs.pop())
}

/// Fills `alert_fingerprints` of incidents read from `incidents.doc` from their
/// `incident_alerts` rows, in join order.
async fn fill_members<B: Backend>(
    conn: &mut B::Connection,
    incs: &mut [Incident],
) -> Result<(), StoreError> {
    let at: HashMap<String, usize> = incs
        .iter()
        .enumerate()
        .map(|(k, i)| (i.id.clone(), k))
        .collect();
    let ids: Vec<&String> = incs.iter().map(|i| &i.id).collect();
    let mut rows_of: Vec<Vec<(i64, String)>> = vec![Vec::new(); incs.len()];
    for chunk in ids.chunks(CHUNK) {
        let mut qb = QueryBuilder::<B>::new(
            "SELECT incident_id, fingerprint, pos FROM incident_alerts WHERE incident_id IN (",
        );
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_arg((*id).clone());
        }
        qb.push(")");
        for r in qb.build().all(&mut *conn).await? {
            let id: String = r.col(0)?;
            if let Some(&k) = at.get(&id) {
                rows_of[k].push((r.col(2)?, r.col(1)?));
            }
        }
    }
    for (inc, mut rows) in incs.iter_mut().zip(rows_of) {
        rows.sort_unstable();
        inc.alert_fingerprints
            .extend(rows.into_iter().map(|(_, f)| Fingerprint::from(f)));
    }
    Ok(())
}

/// The JSON `incidents.doc` holds: the incident as the API shows it, without its member
/// list (kept as `incident_alerts` rows) and in the same field order, so documents read
/// back as `Incident`s. Built by destructuring: a field added to `Incident` does not
/// compile here until it is decided whether the document keeps it.
#[derive(Serialize)]
struct IncidentDoc<'a> {
    id: &'a str,
    title: &'a str,
    status: IncidentStatus,
    priority: u8,
    impact: u8,
    urgency: u8,
    root_cause_ci: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_cause: Option<&'a RootCause>,
    ci_ids: &'a Members<String>,
    impacted_services: &'a [String],
    assignment_group: &'a Option<String>,
    assignee: &'a Option<String>,
    alert_count: u64,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    correlation_key: &'a CorrelationKey,
    enrichment: &'a serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sla: Option<&'a Sla>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution_note: Option<&'a str>,
}

impl<'a> IncidentDoc<'a> {
    fn of(inc: &'a Incident) -> Self {
        let Incident {
            id,
            title,
            status,
            priority,
            impact,
            urgency,
            root_cause_ci,
            root_cause,
            ci_ids,
            impacted_services,
            assignment_group,
            assignee,
            alert_fingerprints: _,
            alert_count,
            opened_at,
            updated_at,
            acknowledged_at,
            resolved_at,
            closed_at,
            correlation_key,
            enrichment,
            sla,
            resolution_note,
        } = inc;
        IncidentDoc {
            id,
            title,
            status: *status,
            priority: *priority,
            impact: *impact,
            urgency: *urgency,
            root_cause_ci,
            root_cause: root_cause.as_ref(),
            ci_ids,
            impacted_services,
            assignment_group,
            assignee,
            alert_count: *alert_count,
            opened_at: *opened_at,
            updated_at: *updated_at,
            acknowledged_at: *acknowledged_at,
            resolved_at: *resolved_at,
            closed_at: *closed_at,
            correlation_key,
            enrichment,
            sla: sla.as_ref(),
            resolution_note: resolution_note.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored document is the API's JSON of the incident, less its member list, and
    /// reads back as the same incident without members.
    #[test]
    fn the_document_is_the_incident_without_its_members() {
        let inc: Incident = serde_json::from_value(serde_json::json!({
            "id": "INC-0000042",
            "title": "disk full",
            "status": "acknowledged",
            "priority": 2,
            "impact": 2,
            "urgency": 1,
            "root_cause_ci": "db-1",
            "root_cause": {"ci_id": "db-1", "alerting": true, "confidence": 0.9, "reason": "r"},
            "ci_ids": ["db-1", "app-1"],
            "impacted_services": ["shop"],
            "assignment_group": "dba",
            "assignee": "ann",
            "alert_fingerprints": ["a", "b"],
            "alert_count": 2,
            "opened_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:05:00Z",
            "acknowledged_at": "2026-01-01T00:01:00Z",
            "resolved_at": null,
            "closed_at": null,
            "correlation_key": "ci:db-1",
            "enrichment": {"k": 1},
            "sla": {"respond_by": "2026-01-01T00:15:00Z", "resolve_by": "2026-01-01T04:00:00Z",
                    "respond_breached": false, "resolve_breached": false},
            "resolution_note": "freed space"
        }))
        .unwrap();
        let api = serde_json::to_string(&crate::view::IncidentView::of(&inc)).unwrap();
        let doc = encode(&IncidentDoc::of(&inc));
        assert_eq!(doc, api.replace(r#""alert_fingerprints":["a","b"],"#, ""));
        let back: Incident = serde_json::from_str(&doc).unwrap();
        let mut expected = inc.clone();
        expected.alert_fingerprints.clear();
        assert_eq!(back, expected);
    }
}
