//! Route handlers: parse, call the pipeline or the store, shape the JSON answer.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{Body, JsonBody, Params, parse_json};
use crate::alert::{Alert, AlertStatus, Source};
use crate::cmdb::{Change, Ci, Relation};
use crate::correlate::IncidentPatch;
use crate::incident::{IncidentStatus, incident_number};
use crate::pipeline::IngestReport;
use crate::sources::{alertmanager, pagerduty};
use crate::store::{AlertQuery, ChangeQuery, IncidentQuery};

pub async fn alertmanager_webhook(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<Json<IngestReport>, ApiError> {
    let n = st.normalize.as_ref().clone().at(Utc::now());
    let alerts = alertmanager::parse_webhook(&body, &n)
        .inspect_err(|_| reject(&st, Source::Alertmanager))?;
    Ok(Json(store(&st, alerts, Source::Alertmanager).await?))
}

/// Stores the alerts, or with `kafka.forward_http` produces them to Kafka (then only
/// `accepted` is known here; the consumer decides the rest). Either way, durable on return.
async fn store(
    st: &AppState,
    alerts: Vec<Alert>,
    source: Source,
) -> Result<IngestReport, ApiError> {
    match &st.forward {
        None => Ok(st.pipeline.ingest(alerts, source).await?),
        Some(f) => {
            f.forward(&alerts).await.map_err(|e| {
                tracing::warn!(error = %e, "forward to kafka failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "kafka did not acknowledge the alerts; nothing was stored, retry",
                )
                .with_detail(json!(e.to_string()))
            })?;
            Ok(IngestReport {
                accepted: alerts.len() as u64,
                ..Default::default()
            })
        }
    }
}

pub async fn alert_list(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<Json<IngestReport>, ApiError> {
    let n = st.normalize.as_ref().clone().at(Utc::now());
    let alerts = alertmanager::parse_alert_list(&body, &n)
        .inspect_err(|_| reject(&st, Source::Prometheus))?;
    Ok(Json(store(&st, alerts, Source::Prometheus).await?))
}

/// `POST /api/v1/alerts/pagerduty`: one Events API v2 event. Answers as PagerDuty does:
/// 202 with the dedup_key, or 400 `{"status":"invalid event","message","errors"}`.
pub async fn pagerduty_event(
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let status = e.status();
            return (
                status,
                Json(json!({"status": "invalid event", "message": "cannot read request body", "errors": [e.body_text()]})),
            )
                .into_response();
        }
    };
    let n = st.normalize.as_ref().clone().at(Utc::now());
    let event = match pagerduty::parse_event(&body, &n, pagerduty::random_dedup_key) {
        Ok(e) => e,
        Err(e) => {
            reject(&st, Source::Pagerduty);
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"status": "invalid event", "message": e.message, "errors": e.errors})),
            )
                .into_response();
        }
    };
    match store(&st, vec![event.alert], Source::Pagerduty).await {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "success", "message": "Event processed", "dedup_key": event.dedup_key})),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

fn reject(st: &AppState, source: Source) {
    st.metrics
        .alerts_received
        .with_label_values(&[source.as_str(), "rejected"])
        .inc();
}

fn limit(l: Option<u32>) -> Result<u32, ApiError> {
    match l {
        None => Ok(50),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit must be 1..1000, not {n}"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    status: Option<String>,
    priority: Option<u8>,
    ci: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list_incidents(
    State(st): State<AppState>,
    Params(p): Params<IncidentParams>,
) -> Result<Json<Value>, ApiError> {
    let status = p
        .status
        .filter(|s| !s.is_empty())
        .map(|s| {
            IncidentStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "status must be open, acknowledged, resolved or closed, not {s:?}"
                ))
            })
        })
        .transpose()?;
    if let Some(pr) = p.priority
        && !(1..=5).contains(&pr)
    {
        return Err(ApiError::bad_request(format!(
            "priority must be 1..5, not {pr}"
        )));
    }
    let before_number = p
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            incident_number(&c)
                .ok_or_else(|| ApiError::bad_request(format!("invalid cursor {c:?}")))
        })
        .transpose()?;
    let limit = limit(p.limit)?;
    let q = IncidentQuery {
        status,
        priority: p.priority,
        ci: p.ci.filter(|c| !c.is_empty()),
        before_number,
        limit,
    };
    let incidents = st.store.list_incidents(&q).await?;
    let next = (incidents.len() == limit as usize)
        .then(|| incidents.last().map(|i| i.id.clone()))
        .flatten();
    Ok(Json(json!({"incidents": incidents, "next_cursor": next})))
}

pub async fn get_incident(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let inc = st
        .store
        .get_incident(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {id} not found")))?;
    let alerts = st
        .store
        .list_alerts(&AlertQuery {
            incident: Some(id.clone()),
            limit: 1000,
            ..Default::default()
        })
        .await?
        .alerts;
    let timeline = st.store.timeline(&id).await?;
    let mut v = serde_json::to_value(&inc).unwrap_or_default();
    if let Value::Object(m) = &mut v {
        m.insert("alerts".into(), json!(alerts));
        m.insert("timeline".into(), json!(timeline));
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    status: Option<IncidentStatus>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    assignee: Option<Option<String>>,
    #[serde(default)]
    comment: Option<String>,
    /// How it was fixed; shown on similar incidents later.
    #[serde(default)]
    resolution_note: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub async fn patch_incident(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<Value>, ApiError> {
    if body.status.is_none()
        && body.assignee.is_none()
        && body.comment.is_none()
        && body.resolution_note.is_none()
    {
        return Err(ApiError::bad_request(
            "nothing to change: give status, assignee, comment or resolution_note",
        ));
    }
    if body.comment.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(ApiError::bad_request("comment is empty"));
    }
    if body
        .resolution_note
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        return Err(ApiError::bad_request("resolution_note is empty"));
    }
    let patch = IncidentPatch {
        status: body.status,
        assignee: body.assignee,
        comment: body.comment,
        resolution_note: body.resolution_note,
    };
    let inc = st.pipeline.patch(id, patch, caller.0, Utc::now()).await?;
    Ok(Json(serde_json::to_value(inc).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    status: Option<String>,
    ci: Option<String>,
    incident: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list_alerts(
    State(st): State<AppState>,
    Params(p): Params<AlertParams>,
) -> Result<Json<Value>, ApiError> {
    let status = p
        .status
        .filter(|s| !s.is_empty())
        .map(|s| {
            AlertStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_request(format!("status must be firing or resolved, not {s:?}"))
            })
        })
        .transpose()?;
    let before = p
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.split_once('.')
                .and_then(|(t, o)| Some((t.parse::<i64>().ok()?, o.parse::<i64>().ok()?)))
                .ok_or_else(|| ApiError::bad_request(format!("invalid cursor {c:?}")))
        })
        .transpose()?;
    let limit = limit(p.limit)?;
    let q = AlertQuery {
        status,
        ci: p.ci.filter(|c| !c.is_empty()),
        incident: p.incident,
        before,
        limit,
    };
    let page = st.store.list_alerts(&q).await?;
    let alerts = page.alerts;
    let next = match (alerts.last(), page.last_order) {
        (Some(a), Some(order)) if alerts.len() == limit as usize => {
            Some(format!("{}.{order}", a.starts_at.timestamp_millis()))
        }
        _ => None,
    };
    Ok(Json(json!({"alerts": alerts, "next_cursor": next})))
}

/// A bulk body: either a bare list or `{"<key>": [...]}` (the CMDB file's own shape).
fn list_body<T: serde::de::DeserializeOwned>(bytes: &[u8], key: &str) -> Result<Vec<T>, ApiError> {
    let trimmed = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| bytes[i]);
    if trimmed == Some(b'[') {
        return parse_json(bytes);
    }
    let mut v: serde_json::Map<String, Value> = parse_json(bytes)?;
    let Some(list) = v.remove(key) else {
        return Err(ApiError::bad_request(format!(
            "expected a JSON list or an object with {key:?}"
        )));
    };
    if let Some(other) = v.keys().next() {
        return Err(ApiError::bad_request(format!(
            "unknown field {other:?}; expected only {key:?}"
        )));
    }
    parse_json(list.to_string().as_bytes()).map_err(|e| ApiError {
        error: format!("{key}: {}", e.error),
        ..e
    })
}

pub async fn put_cis(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let cis: Vec<Ci> = list_body(&body, "cis")?;
    let n = st.pipeline.upsert_cis(cis).await?;
    Ok(Json(json!({"upserted": n})))
}

pub async fn put_relations(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let rels: Vec<Relation> = list_body(&body, "relations")?;
    let n = st.pipeline.upsert_relations(rels).await?;
    Ok(Json(json!({"upserted": n})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiParams {
    /// Most direct dependents and dependencies listed (default 1000, at most 10000).
    limit: Option<usize>,
}

/// A CI with its direct dependencies and dependents, each list cut at `limit` with its
/// full count beside it (a hub can have a million dependents).
pub async fn get_ci(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Params(p): Params<CiParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = p.limit.unwrap_or(1000).clamp(1, 10_000);
    let topo = st
        .pipeline
        .topology()
        .read()
        .unwrap_or_else(|p| p.into_inner());
    let node = topo
        .node(&id)
        .ok_or_else(|| ApiError::not_found(format!("CI {id} not found")))?;
    let mut v = serde_json::to_value(topo.ci(node)).unwrap_or_default();
    let ids = |ns: &[u32]| {
        ns.iter()
            .take(limit)
            .map(|&n| topo.ci(n).id.clone())
            .collect::<Vec<_>>()
    };
    if let Value::Object(m) = &mut v {
        let (up, down) = (topo.depends_on(node), topo.dependents(node));
        m.insert("depends_on".into(), json!(ids(up)));
        m.insert("depends_on_total".into(), json!(up.len()));
        m.insert("dependents".into(), json!(ids(down)));
        m.insert("dependents_total".into(), json!(down.len()));
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpactParams {
    max_hops: Option<u32>,
    limit: Option<usize>,
}

/// What depends on a CI, transitively: each with its distance and the path back to the CI.
pub async fn ci_impact(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Params(p): Params<ImpactParams>,
) -> Result<Json<Value>, ApiError> {
    let topo = st
        .pipeline
        .topology()
        .read()
        .unwrap_or_else(|p| p.into_inner());
    let node = topo
        .node(&id)
        .ok_or_else(|| ApiError::not_found(format!("CI {id} not found")))?;
    let max_hops = p.max_hops.unwrap_or(16).min(64);
    let limit = p.limit.unwrap_or(10_000).min(100_000);
    let reached = topo.impact(node, max_hops, limit);
    let via: std::collections::HashMap<u32, u32> =
        reached.iter().map(|r| (r.node, r.via)).collect();
    let impacted: Vec<Value> = reached
        .iter()
        .map(|r| {
            let mut path = vec![topo.ci(r.node).id.clone()];
            let mut cur = r.node;
            while let Some(&prev) = via.get(&cur) {
                path.push(topo.ci(prev).id.clone());
                cur = prev;
            }
            if cur != node {
                path.push(id.clone());
            }
            let ci = topo.ci(r.node);
            json!({"id": ci.id, "type": ci.ci_type, "hops": r.hops, "path": path})
        })
        .collect();
    let services: Vec<&str> = reached
        .iter()
        .map(|r| topo.ci(r.node))
        .filter(|c| c.is_business_service())
        .map(|c| c.id.as_str())
        .collect();
    Ok(Json(json!({
        "ci": id,
        "impacted": impacted,
        "impacted_services": services,
        "truncated": reached.len() >= limit,
    })))
}

/// `POST /api/v1/changes`: one change, a list, or `{"changes": [...]}`.
pub async fn post_changes(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let v: Value = parse_json(&body)?;
    let changes: Vec<Change> = match &v {
        Value::Object(m) if !m.contains_key("changes") => vec![parse_json(&body)?],
        _ => list_body(&body, "changes")?,
    };
    let n = st.pipeline.upsert_changes(changes).await?;
    Ok(Json(json!({"upserted": n})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeParams {
    ci: Option<String>,
    active_at: Option<chrono::DateTime<Utc>>,
    limit: Option<u32>,
}

pub async fn list_changes(
    State(st): State<AppState>,
    Params(p): Params<ChangeParams>,
) -> Result<Json<Value>, ApiError> {
    let q = ChangeQuery {
        ci: p.ci.filter(|c| !c.is_empty()),
        active_at: p.active_at,
        limit: limit(p.limit)?,
    };
    Ok(Json(json!({"changes": st.store.list_changes(&q).await?})))
}
