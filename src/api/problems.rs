//! Problem management over HTTP: history import, problem candidates, the problem
//! manager's accept / reject, reclustering on demand (`recluster`, which the daemon's
//! schedule in `crate::app` runs too).
//!
//! Roles: viewers read problems; operators (problem managers work with operator tokens)
//! import history, accept or reject, and recluster — none of it touches the CMDB or
//! config, which stay admin-only.
//!
//! Import is all-or-nothing: when any record is bad the answer is 422 naming every bad
//! record (1-based position and reason) and nothing is stored; otherwise every record is
//! stored, replacing a stored record with the same id (idempotent). Records naming CIs the
//! CMDB does not know are stored and listed in the answer (history outlives CIs).
//!
//! This module drives `crate::problem` (pure) with the store; it does not cluster itself.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::AppState;
use super::auth::Auth;
use super::error::ApiError;
use super::extract::{Body, JsonBody, Params};
use super::openapi::{ApiRouter, ErrorBody, guarded};
use crate::config::{ProblemsConfig, Role};
use crate::problem::{self, BadRecord, HistoryRecord, ProblemCandidate, ProblemStatus};
use crate::store::StoreError;

/// The problem routes, each behind its role; `cfg` is `[problems]`.
pub fn routes(auth: &Auth, cfg: ProblemsConfig) -> ApiRouter {
    let cfg = Arc::new(cfg);
    let read = ApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one));
    let operate = ApiRouter::new()
        .routes(routes!(import))
        .routes(routes!(patch))
        .routes(routes!(recluster_now))
        .layer(axum::Extension(cfg));
    guarded(read, auth, Role::Viewer, false).merge(guarded(operate, auth, Role::Operator, false))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// candidate, accepted or rejected.
    status: Option<String>,
}

/// Problems, highest score first.
#[derive(Serialize, ToSchema)]
struct ProblemList {
    problems: Vec<ProblemCandidate>,
}

fn parse_status(s: &str) -> Result<ProblemStatus, ApiError> {
    ProblemStatus::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status must be candidate, accepted or rejected, not {s:?}"
        ))
    })
}

/// Problem candidates and decided problems, highest score first.
#[utoipa::path(
    get,
    path = "/api/v1/problems",
    tag = "problems",
    params(ListParams),
    responses(
        (status = 200, description = "The problems.", body = ProblemList),
        (status = 400, description = "A bad status (named).", body = ErrorBody),
    ),
)]
async fn list(
    State(st): State<AppState>,
    Params(p): Params<ListParams>,
) -> Result<Json<ProblemList>, ApiError> {
    let status = match p.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_status(s)?),
        None => None,
    };
    let problems = st.store.list_problems(status).await?;
    Ok(Json(ProblemList { problems }))
}

/// One problem, with its incidents, signature, recurrence, score and why.
#[utoipa::path(
    get,
    path = "/api/v1/problems/{id}",
    tag = "problems",
    params(("id" = String, Path, description = "Problem id.")),
    responses(
        (status = 200, description = "The problem.", body = ProblemCandidate),
        (status = 404, description = "No such problem.", body = ErrorBody),
    ),
)]
async fn get_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProblemCandidate>, ApiError> {
    st.store
        .get_problem(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("problem {id} not found")))
}

/// The problem manager's decision.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProblemPatch {
    /// accepted or rejected.
    #[schema(example = "accepted")]
    status: String,
}

/// Accepts or rejects a problem candidate (later clustering runs keep the decision).
#[utoipa::path(
    patch,
    path = "/api/v1/problems/{id}",
    tag = "problems",
    params(("id" = String, Path, description = "Problem id.")),
    request_body(content = ProblemPatch, content_type = "application/json"),
    responses(
        (status = 200, description = "The problem as decided.", body = ProblemCandidate),
        (status = 400, description = "status is not accepted or rejected.", body = ErrorBody),
        (status = 404, description = "No such problem.", body = ErrorBody),
    ),
)]
async fn patch(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ProblemPatch>,
) -> Result<Json<ProblemCandidate>, ApiError> {
    let status = parse_status(&body.status)?;
    Ok(Json(decide(&st, &id, status).await?))
}

/// The problem manager's decision on a problem (the API's PATCH and the console's
/// accept / reject buttons): `accepted` or `rejected`, stored at once.
pub async fn decide(
    st: &AppState,
    id: &str,
    status: ProblemStatus,
) -> Result<ProblemCandidate, ApiError> {
    if status == ProblemStatus::Candidate {
        return Err(ApiError::bad_request(
            "status must be accepted or rejected (a decision)",
        ));
    }
    let mut tx = st.store.begin().await?;
    let Some(p) = tx.set_problem_status(id, status).await? else {
        return Err(ApiError::not_found(format!("problem {id} not found")));
    };
    tx.commit().await?;
    refresh_gauge(st).await;
    Ok(p)
}

/// A record naming a CI the CMDB does not know (stored all the same).
#[derive(Serialize, ToSchema)]
struct UnknownCi {
    id: String,
    ci: String,
}

/// What an import stored.
#[derive(Serialize, ToSchema)]
struct Imported {
    received: u64,
    new: u64,
    /// Records that replaced a stored record with the same id.
    updated: u64,
    unknown_cis: Vec<UnknownCi>,
}

/// The 422 detail of an import with bad records (documentation of `ErrorBody.detail`).
#[derive(Serialize, ToSchema)]
struct ImportRejected {
    /// The first bad records, each with its 1-based position and reason.
    rejected: Vec<BadRecord>,
    rejected_total: usize,
    reported: String,
}

/// Imports incident history for problem clustering: a JSON list of records or JSON lines.
/// All or nothing: any bad record and nothing is stored.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/import",
    tag = "problems",
    request_body(content = Vec<HistoryRecord>, description = "A JSON list of history records, or JSON lines (one record a line).", content_type = "application/json"),
    responses(
        (status = 200, description = "Every record stored (idempotent by id).", body = Imported),
        (status = 400, description = "Not UTF-8, or no records.", body = ErrorBody),
        (status = 422, description = "Bad records, nothing stored; `detail` is an `ImportRejected`.", body = ErrorBody),
    ),
)]
async fn import(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Imported>), ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    let batch = problem::parse_batch(text);
    if batch.bad_total > 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{} of the records are bad; nothing was imported",
                batch.bad_total
            ),
        )
        .with_detail(json!(ImportRejected {
            reported: format!("the first {} with their reasons", batch.bad.len()),
            rejected: batch.bad,
            rejected_total: batch.bad_total,
        })));
    }
    if batch.records.is_empty() {
        return Err(ApiError::bad_request(
            "no records: send a JSON list of history records or JSON lines",
        ));
    }
    let unknown: Vec<UnknownCi> = {
        let topo = st
            .pipeline
            .topology()
            .read()
            .unwrap_or_else(|p| p.into_inner());
        batch
            .records
            .iter()
            .filter_map(|r| {
                let ci = r.ci.as_deref()?;
                topo.resolve(ci).is_none().then(|| UnknownCi {
                    id: r.id.clone(),
                    ci: ci.to_string(),
                })
            })
            .collect()
    };
    let mut tx = st.store.begin().await?;
    let new = tx.upsert_history(&batch.records).await?;
    tx.commit().await?;
    let n = batch.records.len() as u64;
    Ok((
        StatusCode::OK,
        Json(Imported {
            received: n,
            new,
            updated: n - new,
            unknown_cis: unknown,
        }),
    ))
}

/// The result of a clustering run.
#[derive(Serialize, ToSchema)]
struct Reclustered {
    /// Every stored problem, highest score first.
    problems: Vec<ProblemCandidate>,
    duration_seconds: f64,
}

/// Clusters now (as the `[problems] interval` schedule does) and answers with the result.
#[utoipa::path(
    post,
    path = "/api/v1/problems/recluster",
    tag = "problems",
    responses(
        (status = 200, description = "Clustered and stored.", body = Reclustered),
        (status = 500, description = "Clustering itself failed.", body = ErrorBody),
    ),
)]
async fn recluster_now(
    State(st): State<AppState>,
    axum::Extension(cfg): axum::Extension<Arc<ProblemsConfig>>,
) -> Result<Json<Reclustered>, ApiError> {
    let t = Instant::now();
    let problems = recluster(&st, &cfg, Utc::now())
        .await
        .map_err(|e| match e {
            ReclusterError::Store(s) => ApiError::from(s),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    Ok(Json(Reclustered {
        problems,
        duration_seconds: t.elapsed().as_secs_f64(),
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum ReclusterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] problem::ClusterError),
    #[error("clustering task failed: {0}")]
    Task(String),
}

/// One clustering run: imported history and sift's finished incidents opened within the
/// lookback, clustered off the async threads, reconciled with the stored decisions and
/// stored. Returns every stored problem, highest score first.
pub async fn recluster(
    st: &AppState,
    cfg: &ProblemsConfig,
    now: DateTime<Utc>,
) -> Result<Vec<ProblemCandidate>, ReclusterError> {
    let t = Instant::now();
    let since = now - cfg.lookback.0;
    let mut records = st.store.history_since(since).await?;
    let mut seen: std::collections::HashSet<String> =
        records.iter().map(|r| r.id.clone()).collect();
    for inc in st.store.finished_incidents(u32::MAX).await? {
        if inc.opened_at >= since && seen.insert(inc.id.clone()) {
            records.push(HistoryRecord::from_incident(&inc, &[]));
        }
    }
    let topo = st
        .pipeline
        .topology()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let ccfg = cfg.cluster();
    let min_pts = ccfg.min_pts;
    // The problem manager's decisions steer the run: rejected roots and signatures need
    // more evidence, accepted problems absorb new look-alike incidents.
    let decided: Vec<ProblemCandidate> = st
        .store
        .list_problems(None)
        .await?
        .into_iter()
        .filter(|p| p.status != ProblemStatus::Candidate)
        .collect();
    let fresh = tokio::task::spawn_blocking(move || {
        problem::cluster_report(&records, Some(&topo), &ccfg, &decided).map(|r| r.candidates)
    })
    .await
    .map_err(|e| ReclusterError::Task(e.to_string()))??;
    let mut tx = st.store.begin().await?;
    let decided = tx.load_problems().await?;
    let mut all = problem::reconcile(fresh, decided, min_pts);
    all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    tx.replace_problems(&all).await?;
    tx.commit().await?;
    let open = all
        .iter()
        .filter(|p| p.status == ProblemStatus::Candidate)
        .count();
    st.metrics.problem_candidates_open.set(open as i64);
    st.metrics
        .problem_cluster_seconds
        .observe(t.elapsed().as_secs_f64());
    tracing::info!(
        problems = all.len(),
        candidates = open,
        seconds = t.elapsed().as_secs_f64(),
        "problem clustering done"
    );
    Ok(all)
}

async fn refresh_gauge(st: &AppState) {
    if let Ok(c) = st.store.list_problems(Some(ProblemStatus::Candidate)).await {
        st.metrics.problem_candidates_open.set(c.len() as i64);
    }
}
