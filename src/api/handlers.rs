//! Route handlers: parse, call the pipeline or the store, shape the JSON answer.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{Body, JsonBody, Params, parse_json};
use super::openapi::ErrorBody;
use crate::alert::AlertStatus;
use crate::cmdb::{Change, Ci, Relation};
use crate::correlate::IncidentPatch;
use crate::incident::{IncidentStatus, TimelineEntry, incident_number};
use crate::store::{AlertQuery, ChangeQuery, IncidentQuery};
use crate::view::{AlertView, IncidentView};

fn limit(l: Option<u32>) -> Result<u32, ApiError> {
    match l {
        None => Ok(50),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit must be 1..1000, not {n}"
        ))),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentParams {
    /// open, acknowledged, resolved or closed.
    status: Option<String>,
    /// 1 (critical) .. 5 (planning).
    #[param(minimum = 1, maximum = 5)]
    priority: Option<u8>,
    /// Only incidents on this CI id.
    ci: Option<String>,
    /// Page size, 1..1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of incidents, newest first.
#[derive(Serialize, ToSchema)]
pub struct IncidentList<'a> {
    incidents: Vec<IncidentView<'a>>,
    /// The next page's `cursor`; `null` on the last page.
    next_cursor: Option<String>,
}

/// Incidents, newest first, paged by `cursor`.
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    params(IncidentParams),
    responses(
        (status = 200, description = "A page of incidents.", body = IncidentList),
        (status = 400, description = "A bad filter, limit or cursor (named).", body = ErrorBody),
    ),
)]
pub async fn list_incidents(
    State(st): State<AppState>,
    Params(p): Params<IncidentParams>,
) -> Result<Response, ApiError> {
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
    Ok(Json(IncidentList {
        incidents: IncidentView::all(&incidents),
        next_cursor: next,
    })
    .into_response())
}

/// An incident with its alerts and its timeline.
#[derive(Serialize, ToSchema)]
pub struct IncidentDetail<'a> {
    #[serde(flatten)]
    incident: IncidentView<'a>,
    /// Its alerts (at most 1000), newest first.
    alerts: Vec<AlertView<'a>>,
    /// What happened to it, oldest first.
    timeline: Vec<TimelineEntry>,
}

/// One incident, with its alerts and timeline.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id, e.g. INC0000042.")),
    responses(
        (status = 200, description = "The incident.", body = IncidentDetail),
        (status = 404, description = "No such incident.", body = ErrorBody),
    ),
)]
pub async fn get_incident(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
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
    Ok(Json(IncidentDetail {
        incident: IncidentView::of(&inc),
        alerts: AlertView::all(&alerts),
        timeline,
    })
    .into_response())
}

/// What to change on an incident: at least one field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    /// The new status (a legal move: open → acknowledged → resolved → closed, resolve
    /// from open, reopen from resolved).
    #[serde(default)]
    status: Option<IncidentStatus>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    assignee: Option<Option<String>>,
    /// A comment for the timeline.
    #[serde(default)]
    comment: Option<String>,
    /// How it was fixed; shown on similar incidents later.
    #[serde(default)]
    resolution_note: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Acknowledge, resolve, close, reopen, assign, comment or note the resolution; the
/// caller is the actor in the timeline.
#[utoipa::path(
    patch,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id, e.g. INC0000042.")),
    request_body(content = PatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The incident as changed.", body = IncidentView),
        (status = 400, description = "Nothing to change, an empty comment, or a bad field (named).", body = ErrorBody),
        (status = 404, description = "No such incident.", body = ErrorBody),
        (status = 409, description = "An illegal status move (e.g. out of closed).", body = ErrorBody),
    ),
)]
pub async fn patch_incident(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Response, ApiError> {
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
    Ok(Json(IncidentView::of(&inc)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// firing or resolved.
    status: Option<String>,
    /// Only alerts mapped to this CI id.
    ci: Option<String>,
    /// Only alerts of this incident.
    incident: Option<String>,
    /// Page size, 1..1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of alerts, newest first.
#[derive(Serialize, ToSchema)]
pub struct AlertList<'a> {
    alerts: Vec<AlertView<'a>>,
    /// The next page's `cursor`; `null` on the last page.
    next_cursor: Option<String>,
}

/// Deduplicated alerts, newest first, paged by `cursor`.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(AlertParams),
    responses(
        (status = 200, description = "A page of alerts.", body = AlertList),
        (status = 400, description = "A bad filter, limit or cursor (named).", body = ErrorBody),
    ),
)]
pub async fn list_alerts(
    State(st): State<AppState>,
    Params(p): Params<AlertParams>,
) -> Result<Response, ApiError> {
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
    Ok(Json(AlertList {
        alerts: AlertView::all(&alerts),
        next_cursor: next,
    })
    .into_response())
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

/// How many records a bulk write stored (new or replaced).
#[derive(Serialize, ToSchema)]
pub struct Upserted {
    upserted: usize,
}

/// Creates or replaces CIs by id (the topology is rebuilt).
#[utoipa::path(
    put,
    path = "/api/v1/cmdb/cis",
    tag = "cmdb",
    request_body(content = Vec<Ci>, description = "A list of CIs, or `{\"cis\": [...]}` (the CMDB file's shape).", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored.", body = Upserted),
        (status = 400, description = "Not a list of CIs; the bad field is named.", body = ErrorBody),
        (status = 422, description = "CIs that cannot stand (e.g. an empty id).", body = ErrorBody),
    ),
)]
pub async fn put_cis(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<Json<Upserted>, ApiError> {
    let cis: Vec<Ci> = list_body(&body, "cis")?;
    let n = st.pipeline.upsert_cis(cis).await?;
    Ok(Json(Upserted { upserted: n }))
}

/// Creates or replaces dependency relations (`source` depends on `target`).
#[utoipa::path(
    put,
    path = "/api/v1/cmdb/relations",
    tag = "cmdb",
    request_body(content = Vec<Relation>, description = "A list of relations, or `{\"relations\": [...]}`.", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored.", body = Upserted),
        (status = 400, description = "Not a list of relations; the bad field is named.", body = ErrorBody),
        (status = 422, description = "Relations that cannot stand (e.g. an unknown CI, a cycle).", body = ErrorBody),
    ),
)]
pub async fn put_relations(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<Json<Upserted>, ApiError> {
    let rels: Vec<Relation> = list_body(&body, "relations")?;
    let n = st.pipeline.upsert_relations(rels).await?;
    Ok(Json(Upserted { upserted: n }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CiParams {
    /// Most direct dependents and dependencies listed (default 1000, at most 10000).
    limit: Option<usize>,
}

/// A CI with its direct dependencies and dependents.
#[derive(Serialize, ToSchema)]
pub struct CiDetail {
    #[serde(flatten)]
    ci: Ci,
    /// CI ids it depends on (at most `limit`).
    depends_on: Vec<String>,
    depends_on_total: usize,
    /// CI ids that depend on it (at most `limit`).
    dependents: Vec<String>,
    dependents_total: usize,
}

/// A CI with its direct dependencies and dependents, each list cut at `limit` with its
/// full count beside it (a hub can have a million dependents).
#[utoipa::path(
    get,
    path = "/api/v1/cmdb/cis/{id}",
    tag = "cmdb",
    params(("id" = String, Path, description = "CI id."), CiParams),
    responses(
        (status = 200, description = "The CI.", body = CiDetail),
        (status = 400, description = "A bad parameter (named).", body = ErrorBody),
        (status = 404, description = "No such CI.", body = ErrorBody),
    ),
)]
pub async fn get_ci(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Params(p): Params<CiParams>,
) -> Result<Json<CiDetail>, ApiError> {
    let limit = p.limit.unwrap_or(1000).clamp(1, 10_000);
    let topo = st
        .pipeline
        .topology()
        .read()
        .unwrap_or_else(|p| p.into_inner());
    let node = topo
        .node(&id)
        .ok_or_else(|| ApiError::not_found(format!("CI {id} not found")))?;
    let ids = |ns: &[u32]| {
        ns.iter()
            .take(limit)
            .map(|&n| topo.ci(n).id.clone())
            .collect::<Vec<_>>()
    };
    let (up, down) = (topo.depends_on(node), topo.dependents(node));
    Ok(Json(CiDetail {
        ci: topo.ci(node).clone(),
        depends_on: ids(up),
        depends_on_total: up.len(),
        dependents: ids(down),
        dependents_total: down.len(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImpactParams {
    /// How far to follow dependents (default 16, at most 64).
    max_hops: Option<u32>,
    /// Most CIs listed (default 10000, at most 100000).
    limit: Option<usize>,
}

/// A CI reached from the impacted one.
#[derive(Serialize, ToSchema)]
pub struct ImpactedCi {
    id: String,
    #[serde(rename = "type")]
    ci_type: Option<String>,
    /// Dependency hops from the CI asked about.
    hops: u32,
    /// From this CI back to the one asked about.
    path: Vec<String>,
}

/// What a fault on a CI reaches.
#[derive(Serialize, ToSchema)]
pub struct Impact {
    ci: String,
    impacted: Vec<ImpactedCi>,
    /// The business services among them.
    impacted_services: Vec<String>,
    /// `limit` cut the list.
    truncated: bool,
}

/// What depends on a CI, transitively: each with its distance and the path back to the CI.
#[utoipa::path(
    get,
    path = "/api/v1/cmdb/cis/{id}/impact",
    tag = "cmdb",
    params(("id" = String, Path, description = "CI id."), ImpactParams),
    responses(
        (status = 200, description = "What depends on the CI.", body = Impact),
        (status = 400, description = "A bad parameter (named).", body = ErrorBody),
        (status = 404, description = "No such CI.", body = ErrorBody),
    ),
)]
pub async fn ci_impact(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Params(p): Params<ImpactParams>,
) -> Result<Json<Impact>, ApiError> {
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
    let impacted: Vec<ImpactedCi> = reached
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
            ImpactedCi {
                id: ci.id.clone(),
                ci_type: ci.ci_type.clone(),
                hops: r.hops,
                path,
            }
        })
        .collect();
    let services: Vec<String> = reached
        .iter()
        .map(|r| topo.ci(r.node))
        .filter(|c| c.is_business_service())
        .map(|c| c.id.clone())
        .collect();
    Ok(Json(Impact {
        ci: id,
        impacted,
        impacted_services: services,
        truncated: reached.len() >= limit,
    }))
}

/// `POST /api/v1/changes`: one change, a list, or `{"changes": [...]}`.
#[utoipa::path(
    post,
    path = "/api/v1/changes",
    tag = "changes",
    request_body(content = Vec<Change>, description = "One change, a list of changes, or `{\"changes\": [...]}`; stored by id (idempotent).", content_type = "application/json"),
    responses(
        (status = 200, description = "Stored.", body = Upserted),
        (status = 400, description = "Not a change or a list of changes; the bad field is named.", body = ErrorBody),
        (status = 422, description = "A change that cannot stand (empty id, end not after start).", body = ErrorBody),
    ),
)]
pub async fn post_changes(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<Json<Upserted>, ApiError> {
    let v: Value = parse_json(&body)?;
    let changes: Vec<Change> = match &v {
        Value::Object(m) if !m.contains_key("changes") => vec![parse_json(&body)?],
        _ => list_body(&body, "changes")?,
    };
    let n = st.pipeline.upsert_changes(changes).await?;
    Ok(Json(Upserted { upserted: n }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangeParams {
    /// Only changes on this CI id.
    ci: Option<String>,
    /// Only changes whose window contains this instant (RFC 3339).
    active_at: Option<chrono::DateTime<Utc>>,
    /// Most changes listed, 1..1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Change records.
#[derive(Serialize, ToSchema)]
pub struct ChangeList {
    changes: Vec<Change>,
}

/// Change records, filtered by CI and by the instant they cover.
#[utoipa::path(
    get,
    path = "/api/v1/changes",
    tag = "changes",
    params(ChangeParams),
    responses(
        (status = 200, description = "The changes.", body = ChangeList),
        (status = 400, description = "A bad parameter (named).", body = ErrorBody),
    ),
)]
pub async fn list_changes(
    State(st): State<AppState>,
    Params(p): Params<ChangeParams>,
) -> Result<Json<ChangeList>, ApiError> {
    let q = ChangeQuery {
        ci: p.ci.filter(|c| !c.is_empty()),
        active_at: p.active_at,
        limit: limit(p.limit)?,
    };
    Ok(Json(ChangeList {
        changes: st.store.list_changes(&q).await?,
    }))
}
