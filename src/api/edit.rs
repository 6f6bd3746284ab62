//! Operators correcting the grouping: `POST /api/v1/incidents/{id}/merge` and
//! `POST /api/v1/incidents/{id}/split` (operator role), and the feedback they leave,
//! `GET /api/v1/feedback` (viewer role). Handlers check the request's shape; whether the
//! edit is allowed (closed incidents, alerts not in the incident, ...) is the core's call,
//! answered 404 or 409 through `ApiError`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{Body, Params, parse_json};
use super::openapi::ErrorBody;
use crate::alert::Fingerprint;
use crate::correlate::{FeedbackPair, Label};
use crate::incident::incident_number;
use crate::pipeline::Edit;
use crate::store::FeedbackQuery;
use crate::view::IncidentView;

/// Most alerts one split names (a split of more is several requests, or a merge).
const MAX_SPLIT: usize = 10_000;

/// Which incident to merge into.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// The incident that takes the alerts (open or acknowledged), e.g. INC0000042.
    into: String,
}

/// A merge done.
#[derive(Serialize, ToSchema)]
pub struct Merged<'a> {
    /// The incident merged away (now closed with `merged_into`).
    merged: IncidentView<'a>,
    /// The incident that took its alerts.
    into: IncidentView<'a>,
}

/// A JSON object body parsed into `T` (serde would also take a list of the fields'
/// values, in order, for a struct: `["INC…"]` is not a merge request).
fn object<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::bad_request(format!(
            "expected a JSON object like {example}"
        )));
    }
    parse_json(body)
}

/// An incident id as the path or a body names it: `INC` and digits.
fn incident_ref(what: &str, id: &str) -> Result<(), ApiError> {
    if incident_number(id).is_none() {
        return Err(ApiError::bad_request(format!(
            "{what} must be an incident id like INC0000042, not {id:?}"
        )));
    }
    Ok(())
}

/// Merges incident `id` into another: its alerts move there, it closes with
/// `merged_into`, both timelines record it and who did it, and the pairs are kept as
/// feedback (`together`).
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/merge",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident to merge away, e.g. INC0000041.")),
    request_body(content = MergeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Merged.", body = Merged),
        (status = 400, description = "Not `{\"into\": \"INC…\"}`, or `into` is not an incident id.", body = ErrorBody),
        (status = 404, description = "Either incident does not exist.", body = ErrorBody),
        (status = 409, description = "Into itself, or either incident is closed.", body = ErrorBody),
    ),
)]
pub async fn merge(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let body: MergeBody = object(&body, r#"{"into": "INC0000042"}"#)?;
    if incident_number(&id).is_none() {
        return Err(ApiError::not_found(format!("incident {id} not found")));
    }
    incident_ref("into", &body.into)?;
    let edit = Edit::Merge {
        from: id,
        into: body.into,
    };
    let done = st.pipeline.edit(edit, caller.0, Utc::now()).await?;
    Ok(Json(Merged {
        merged: IncidentView::of(&done.incident),
        into: IncidentView::of(&done.other),
    })
    .into_response())
}

/// Which alerts to split out.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBody {
    /// Fingerprints of alerts of the incident (1..10000, not all of them).
    #[schema(min_items = 1, max_items = 10000)]
    alerts: Vec<String>,
}

/// A split done.
#[derive(Serialize, ToSchema)]
pub struct Split<'a> {
    /// The incident split.
    incident: IncidentView<'a>,
    /// The new incident holding the alerts split out.
    split: IncidentView<'a>,
}

/// Splits chosen alerts out of incident `id` into a new incident; later events of those
/// alerts follow them there. Both timelines record it, and the pairs are kept as feedback
/// (`apart`).
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/split",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident to split, e.g. INC0000042.")),
    request_body(content = SplitBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Split.", body = Split),
        (status = 400, description = "Not `{\"alerts\": [...]}`, an empty list or fingerprint, or too many.", body = ErrorBody),
        (status = 404, description = "No such incident.", body = ErrorBody),
        (status = 409, description = "The incident is closed, an alert is not in it (`detail.alerts`), or every alert was named.", body = ErrorBody),
    ),
)]
pub async fn split(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let body: SplitBody = object(&body, r#"{"alerts": ["<fingerprint>", ...]}"#)?;
    if incident_number(&id).is_none() {
        return Err(ApiError::not_found(format!("incident {id} not found")));
    }
    if body.alerts.is_empty() {
        return Err(ApiError::bad_request(
            "alerts is empty: name the fingerprints of the alerts to split out",
        ));
    }
    if body.alerts.len() > MAX_SPLIT {
        return Err(ApiError::bad_request(format!(
            "alerts names {} alerts; at most {MAX_SPLIT} per split",
            body.alerts.len()
        )));
    }
    if let Some(i) = body.alerts.iter().position(|f| f.trim().is_empty()) {
        return Err(ApiError::bad_request(format!(
            "alerts[{i}] is empty: expected an alert fingerprint"
        )));
    }
    let alerts = body
        .alerts
        .into_iter()
        .map(|f| Fingerprint(f.into()))
        .collect();
    let edit = Edit::Split { id, alerts };
    let done = st.pipeline.edit(edit, caller.0, Utc::now()).await?;
    Ok(Json(Split {
        incident: IncidentView::of(&done.incident),
        split: IncidentView::of(&done.other),
    })
    .into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedbackParams {
    /// together or apart.
    label: Option<String>,
    /// Only pairs of edits on or into this incident.
    incident: Option<String>,
    /// Page size, 1..10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of feedback pairs, oldest first.
#[derive(Serialize, ToSchema)]
pub struct FeedbackList {
    pairs: Vec<FeedbackPair>,
    /// The next page's `cursor`; `null` on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/v1/feedback`: the labelled pairs, oldest first, paged by `cursor`.
#[utoipa::path(
    get,
    path = "/api/v1/feedback",
    tag = "feedback",
    params(FeedbackParams),
    responses(
        (status = 200, description = "A page of labelled pairs.", body = FeedbackList),
        (status = 400, description = "A bad label, limit or cursor (named).", body = ErrorBody),
    ),
)]
pub async fn list_feedback(
    State(st): State<AppState>,
    Params(p): Params<FeedbackParams>,
) -> Result<Json<FeedbackList>, ApiError> {
    let label = p
        .label
        .filter(|l| !l.is_empty())
        .map(|l| {
            Label::parse(&l).ok_or_else(|| {
                ApiError::bad_request(format!("label must be together or apart, not {l:?}"))
            })
        })
        .transpose()?;
    let after_id = p
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid cursor {c:?}")))
        })
        .transpose()?;
    let limit = match p.limit {
        None => 1000,
        Some(n @ 1..=10_000) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit must be 1..10000, not {n}"
            )));
        }
    };
    let q = FeedbackQuery {
        after_id,
        label,
        incident: p.incident.filter(|i| !i.is_empty()),
        limit,
    };
    let pairs = st.store.list_feedback(&q).await?;
    let next = (pairs.len() == limit as usize)
        .then(|| pairs.last().map(|p| p.id.to_string()))
        .flatten();
    Ok(Json(FeedbackList {
        pairs,
        next_cursor: next,
    }))
}
