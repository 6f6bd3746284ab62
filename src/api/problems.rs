//! Problem management over HTTP: history import, problem candidates, the problem
//! manager's accept / reject, reclustering on demand and on a schedule.
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

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{self, Auth, Need};
use super::error::ApiError;
use super::extract::{Body, JsonBody, Params};
use crate::config::{ProblemsConfig, Role};
use crate::problem::{self, HistoryRecord, ProblemCandidate, ProblemStatus};
use crate::store::StoreError;

/// The problem routes, each behind its role; `cfg` is `[problems]`.
pub fn routes(auth: &Auth, cfg: ProblemsConfig) -> Router<AppState> {
    let guard = |role: Role| {
        middleware::from_fn_with_state(
            (
                auth.clone(),
                Need {
                    role,
                    basic_ok: false,
                },
            ),
            auth::require,
        )
    };
    let cfg = Arc::new(cfg);
    let read = Router::new()
        .route("/api/v1/problems", get(list))
        .route("/api/v1/problems/{id}", get(get_one))
        .layer(guard(Role::Viewer));
    let operate = Router::new()
        .route("/api/v1/incidents/import", post(import))
        .route("/api/v1/problems/{id}", axum::routing::patch(patch))
        .route("/api/v1/problems/recluster", post(recluster_now))
        .layer(axum::Extension(cfg))
        .layer(guard(Role::Operator));
    read.merge(operate)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
}

fn parse_status(s: &str) -> Result<ProblemStatus, ApiError> {
    ProblemStatus::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "status must be candidate, accepted or rejected, not {s:?}"
        ))
    })
}

async fn list(
    State(st): State<AppState>,
    Params(p): Params<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let status = match p.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_status(s)?),
        None => None,
    };
    let problems = st.store.list_problems(status).await?;
    Ok(Json(json!({ "problems": problems })))
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    status: String,
}

async fn patch(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchBody>,
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
    let next = tx.state().next_incident;
    tx.commit(next, false).await?;
    refresh_gauge(st).await;
    Ok(p)
}

async fn import(
    State(st): State<AppState>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        .with_detail(json!({
            "rejected": batch.bad,
            "rejected_total": batch.bad_total,
            "reported": format!("the first {} with their reasons", batch.bad.len()),
        })));
    }
    if batch.records.is_empty() {
        return Err(ApiError::bad_request(
            "no records: send a JSON list of history records or JSON lines",
        ));
    }
    let unknown: Vec<Value> = {
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
                topo.resolve(ci)
                    .is_none()
                    .then(|| json!({"id": r.id, "ci": ci}))
            })
            .collect()
    };
    let mut tx = st.store.begin().await?;
    let new = tx.upsert_history(&batch.records).await?;
    let next = tx.state().next_incident;
    tx.commit(next, false).await?;
    let n = batch.records.len() as u64;
    Ok((
        StatusCode::OK,
        Json(json!({
            "received": n,
            "new": new,
            "updated": n - new,
            "unknown_cis": unknown,
        })),
    ))
}

async fn recluster_now(
    State(st): State<AppState>,
    axum::Extension(cfg): axum::Extension<Arc<ProblemsConfig>>,
) -> Result<Json<Value>, ApiError> {
    let t = Instant::now();
    let problems = recluster(&st, &cfg, Utc::now())
        .await
        .map_err(|e| match e {
            ReclusterError::Store(s) => ApiError::from(s),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    Ok(Json(json!({
        "problems": problems,
        "duration_seconds": t.elapsed().as_secs_f64(),
    })))
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
    let next = tx.state().next_incident;
    tx.commit(next, false).await?;
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

/// Reclusters every `interval` (at least a minute; first run a minute after start, so a
/// daemon restarted more often than `interval` still reclusters); nothing when
/// `interval` is zero.
pub fn spawn_scheduler(st: AppState, cfg: ProblemsConfig) -> Option<tokio::task::JoinHandle<()>> {
    let period = cfg.interval.std();
    if period.is_zero() {
        return None;
    }
    let period = period.max(std::time::Duration::from_secs(60));
    Some(tokio::spawn(async move {
        let first = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut tick = tokio::time::interval_at(first, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = recluster(&st, &cfg, Utc::now()).await {
                tracing::warn!(error = %e, "scheduled problem clustering failed");
            }
        }
    }))
}
