//! Operators correcting the grouping: `POST /api/v1/incidents/{id}/merge` and
//! `POST /api/v1/incidents/{id}/split` (operator role), and the feedback they leave,
//! `GET /api/v1/feedback` (viewer role). Handlers check the request's shape; whether the
//! edit is allowed (closed incidents, alerts not in the incident, ...) is the core's call,
//! answered 404 or 409 through `ApiError`.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::extract::{Body, Params, parse_json};
use crate::alert::Fingerprint;
use crate::correlate::Label;
use crate::incident::incident_number;
use crate::pipeline::Edit;
use crate::store::FeedbackQuery;

/// Most alerts one split names (a split of more is several requests, or a merge).
const MAX_SPLIT: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    into: String,
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

pub async fn merge(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"merged": done.incident, "into": done.other})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitBody {
    alerts: Vec<String>,
}

pub async fn split(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(
        json!({"incident": done.incident, "split": done.other}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackParams {
    label: Option<String>,
    incident: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/feedback`: the labelled pairs, oldest first, paged by `cursor`.
pub async fn list_feedback(
    State(st): State<AppState>,
    Params(p): Params<FeedbackParams>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"pairs": pairs, "next_cursor": next})))
}
