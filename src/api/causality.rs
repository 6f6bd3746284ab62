//! Learned causality in the daemon: learning from the alert occurrences it stored (on
//! request; the schedule in `crate::app` runs `refresh` and `relearn` too), the learned
//! graph and the operators' pins and vetoes over HTTP, and the effective graph handed to
//! the pipeline (`Pipeline::set_causality_graph`).
//!
//! Roles: viewers read the graph; admins relearn and pin or veto (the graph changes how
//! every later alert is grouped, as the CMDB does, which is admin-only too).
//!
//! This module drives `crate::causality` (pure: learning, `compose`) with the store; it
//! does not judge pairs itself, and never touches correlation (the pipeline's readers do).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::AppState;
use super::auth::{Auth, Caller};
use super::error::ApiError;
use super::extract::JsonBody;
use super::openapi::{ApiRouter, ErrorBody, guarded};
use crate::causality::overrides::{self, EdgeChanges, LearnedGraph};
use crate::causality::{self as causal, History};
use crate::cmdb::Topology;
use crate::config::{CausalityConfig, Role};
use crate::store::StoreError;
use utoipa_axum::routes;

/// `[causality]` and the locks that keep learning runs and graph refreshes in order.
pub struct Learner {
    pub cfg: CausalityConfig,
    /// One learning run at a time (the schedule and `POST …/relearn` wait for each other).
    running: tokio::sync::Mutex<()>,
    /// Reading the stored graph and overrides and setting the pipeline's slot is done
    /// under this, so a slower refresh can never put an older composition over a newer.
    refreshing: tokio::sync::Mutex<()>,
    /// With `[correlate] window = "auto"`: the configured rule holds (`rule_hold`), which
    /// with the learned ones give the onsets propagation windows are learned on. `None`:
    /// no windows learned.
    window_holds: Option<BTreeMap<String, chrono::Duration>>,
}

impl Learner {
    pub fn new(cfg: CausalityConfig) -> Arc<Self> {
        Self::with_correlate(cfg, &crate::correlate::CorrelateConfig::default())
    }

    /// A learner that also learns propagation windows when `correlate` says `window =
    /// "auto"`.
    pub fn with_correlate(
        cfg: CausalityConfig,
        correlate: &crate::correlate::CorrelateConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            running: tokio::sync::Mutex::new(()),
            refreshing: tokio::sync::Mutex::new(()),
            window_holds: correlate.auto_window.then(|| correlate.rule_hold.clone()),
        })
    }
}

/// The propagation windows (`causality::lags`) of the stored occurrences `hist` over
/// `topo`, each occurrence's onset its start less its rule's hold: `configured`, else
/// `learned`.
fn windows_of(
    topo: &Topology,
    hist: &crate::store::OccurrenceHistory,
    learned: &[causal::holds::Hold],
    configured: &BTreeMap<String, chrono::Duration>,
) -> Vec<causal::lags::RelationWindow> {
    let learned: HashMap<&str, i64> = learned
        .iter()
        .map(|h| (h.kind.as_str(), h.hold_seconds))
        .collect();
    let onsets: Vec<_> = hist
        .occurrences
        .iter()
        .filter_map(|&(a, at)| {
            let (labels, ci) = &hist.alerts[a as usize];
            let n = topo.node(ci.as_deref()?)?;
            let name = labels.get("alertname").unwrap_or_default();
            let hold = configured
                .get(name)
                .map(|d| d.num_seconds())
                .or_else(|| learned.get(name).copied())
                .unwrap_or(0);
            Some((n, at.div_euclid(1000) - hold))
        })
        .collect();
    causal::lags::learn(topo, &onsets)
}

/// The causality routes, each behind its role.
pub fn routes(auth: &Auth, learner: Arc<Learner>) -> ApiRouter {
    let read = ApiRouter::new().routes(routes!(show));
    let admin = ApiRouter::new()
        .routes(routes!(relearn_now))
        .routes(routes!(change_edges));
    guarded(read, auth, Role::Viewer, false)
        .merge(guarded(admin, auth, Role::Admin, false))
        .layer(Extension(learner))
}

#[derive(Debug, thiserror::Error)]
pub enum RelearnError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Learn(#[from] causal::LearnError),
    #[error("learning task failed: {0}")]
    Task(String),
}

/// What `GET /api/v1/causality` answers: the effective graph with each edge's origin,
/// the vetoes, and the last run.
async fn view(st: &AppState, learner: &Learner) -> Result<Value, StoreError> {
    let graph = st.store.load_causality().await?;
    let ovr = st.store.causality_overrides().await?;
    let edges: &[causal::Edge] = graph.as_ref().map_or(&[], |g| &g.learned.edges);
    let c = overrides::compose(edges, &ovr, learner.cfg.window.0.num_seconds());
    let pinned = c
        .edges
        .iter()
        .filter(|e| e.origin == overrides::Origin::Pinned)
        .count();
    Ok(json!({
        "learned_at": graph.as_ref().map(|g| g.learned_at),
        "occurrences_read": graph.as_ref().map_or(0, |g| g.occurrences_read),
        "occurrences_left_out": graph.as_ref().map_or(0, |g| g.occurrences_left_out),
        "summary": graph.as_ref().map(|g| &g.learned.summary),
        "learned_edges": edges.len(),
        "pinned_edges": pinned,
        "edges": c.edges,
        "vetoes": c.vetoes,
        // The rule holds learned, and the propagation windows (learned only with
        // `[correlate] window = "auto"`, which uses them).
        "holds": graph.as_ref().map_or(&[][..], |g| &g.learned.holds[..]),
        "windows": graph.as_ref().map_or(&[][..], |g| &g.learned.windows[..]),
        // What correlation holds now (the pipeline's slot): the edges above once the
        // daemon has picked them up (at start, after a change here, within a minute of a
        // change by another daemon on the same store).
        "edges_in_use": st.pipeline.causality_graph().map_or(0, |g| g.edges.len()),
    }))
}

/// The effective learned graph: learned and pinned edges, vetoes, the last run's summary.
#[utoipa::path(
    get,
    path = "/api/v1/causality",
    tag = "causality",
    responses(
        (status = 200, description = "`{learned_at, occurrences_read, occurrences_left_out, summary, learned_edges, pinned_edges, edges: [{cause, effect, score, support, expected, q_value, lag_seconds: {median, p90}, scope, origin}], vetoes, holds: [{type, hold_seconds, samples, lag_p25, lag_median, lag_p75, lag_p90}], windows: [{relation, samples, propagation, lag_median_s, lag_p90_s, window_s}], edges_in_use}` (docs/causality.md).", body = Object),
        (status = 500, description = "The store could not be read.", body = ErrorBody),
    ),
)]
async fn show(
    State(st): State<AppState>,
    Extension(learner): Extension<Arc<Learner>>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(view(&st, &learner).await?))
}

/// Learns now from the stored alert occurrences (one run at a time) and stores the result.
#[utoipa::path(
    post,
    path = "/api/v1/causality/relearn",
    tag = "causality",
    responses(
        (status = 200, description = "`{learned_at, occurrences_read, occurrences_left_out, learned_edges, effective_edges, summary, duration_seconds}`; `summary.note` says why nothing was learned when nothing was.", body = Object),
        (status = 500, description = "The store could not be read or written.", body = ErrorBody),
    ),
)]
async fn relearn_now(
    State(st): State<AppState>,
    Extension(learner): Extension<Arc<Learner>>,
) -> Result<Json<Value>, ApiError> {
    let t = Instant::now();
    // On a task of its own: a run that outlasts the request timeout (or a client that
    // hangs up) still finishes and is stored; only the answer is lost.
    let run = {
        let (st, learner) = (st.clone(), learner.clone());
        tokio::spawn(async move { relearn(&st, &learner, Utc::now()).await })
    };
    let g = run
        .await
        .map_err(|e| RelearnError::Task(e.to_string()))
        .and_then(|r| r)
        .map_err(|e| match e {
            RelearnError::Store(s) => ApiError::from(s),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    let effective = st.pipeline.causality_graph().map_or(0, |g| g.edges.len());
    Ok(Json(json!({
        "learned_at": g.learned_at,
        "occurrences_read": g.occurrences_read,
        "occurrences_left_out": g.occurrences_left_out,
        "learned_edges": g.learned.edges.len(),
        "effective_edges": effective,
        "summary": g.learned.summary,
        "duration_seconds": t.elapsed().as_secs_f64(),
    })))
}

/// Pins edges, vetoes pairs, or removes overrides; they survive relearning and restarts.
#[utoipa::path(
    put,
    path = "/api/v1/causality/edges",
    tag = "causality",
    request_body(content = Object, description = "`{\"pin\": [{\"cause\", \"effect\", \"scope\"?, \"lag_seconds\"?: {\"median\", \"p90\"}}], \"veto\": [{\"cause\", \"effect\"}], \"remove\": [{\"cause\", \"effect\"}]}` (docs/causality.md).", content_type = "application/json"),
    responses(
        (status = 200, description = "The graph as `GET /api/v1/causality` shows it, with `removed` and `not_found`.", body = Object),
        (status = 400, description = "A bad body: `detail.path` names the field (`pin[0].cause`), `detail.reason` what is wrong.", body = ErrorBody),
        (status = 500, description = "The store could not be written.", body = ErrorBody),
    ),
)]
async fn change_edges(
    State(st): State<AppState>,
    Extension(learner): Extension<Arc<Learner>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<EdgeChanges>,
) -> Result<Json<Value>, ApiError> {
    let (put, remove) = body.validate(&caller.0, Utc::now()).map_err(|e| {
        ApiError::bad_request(e.to_string())
            .with_detail(json!({"path": e.path, "reason": e.reason}))
    })?;
    let removed = st.store.change_causality_overrides(&put, &remove).await?;
    refresh(&st, &learner).await?;
    tracing::info!(
        by = %caller.0,
        pinned_or_vetoed = put.len(),
        removed,
        "causality overrides changed"
    );
    let mut v = view(&st, &learner).await?;
    v["removed"] = json!(removed);
    v["not_found"] = json!(
        remove
            .len()
            .saturating_sub(usize::try_from(removed).unwrap_or(usize::MAX))
    );
    Ok(Json(v))
}

/// Composes the stored graph with the stored overrides and hands the result to the
/// pipeline (`None` when there is neither a learned graph nor a pin).
pub async fn refresh(st: &AppState, learner: &Learner) -> Result<(), StoreError> {
    let _one = learner.refreshing.lock().await;
    let graph = st.store.load_causality().await?;
    let ovr = st.store.causality_overrides().await?;
    let edges: &[causal::Edge] = graph.as_ref().map_or(&[], |g| &g.learned.edges);
    let c = overrides::compose(edges, &ovr, learner.cfg.window.0.num_seconds());
    let effective = if graph.is_none() && c.edges.is_empty() {
        None
    } else {
        Some(c.to_learned(graph.as_ref().map(|g| &g.learned)))
    };
    // Unchanged (the minutely look found nothing new): the slot and its version stay, so
    // readers do not pick up the same graph again.
    if st.pipeline.causality_graph().as_deref() != effective.as_ref() {
        st.pipeline.set_causality_graph(effective.map(Arc::new));
    }
    Ok(())
}

/// One learning run: the stored occurrences that started within `lookback` (the newest
/// `max_occurrences`), learned off the async threads, stored, and composed with the
/// overrides into the pipeline's graph.
pub async fn relearn(
    st: &AppState,
    learner: &Learner,
    now: DateTime<Utc>,
) -> Result<LearnedGraph, RelearnError> {
    let _one = learner.running.lock().await;
    let t = Instant::now();
    let cfg = &learner.cfg;
    let learn_cfg = cfg.learn();
    learn_cfg.validate()?;
    let since = now - cfg.lookback.0;
    let limit = u32::try_from(cfg.max_occurrences).unwrap_or(u32::MAX);
    let hist = st.store.alert_occurrences(since, limit).await?;
    let read_seconds = t.elapsed().as_secs_f64();
    let topo = st
        .pipeline
        .topology()
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let read = hist.occurrences.len();
    let left_out = hist.left_out;
    let orphaned = hist.orphaned;
    let lookback = cfg.lookback;
    let window_holds = learner.window_holds.clone();
    let mut learned = tokio::task::spawn_blocking(move || {
        let mut h = History::new().with_topology(&topo);
        for &(a, at) in &hist.occurrences {
            let (labels, ci) = &hist.alerts[a as usize];
            h.push_labels(&learn_cfg, labels, ci.as_deref(), at.div_euclid(1000));
        }
        let mut learned = causal::learn(&h, &learn_cfg)?;
        drop(h);
        if let Some(configured) = &window_holds {
            learned.windows = windows_of(&topo, &hist, &learned.holds, configured);
        }
        Ok::<_, causal::LearnError>(learned)
    })
    .await
    .map_err(|e| RelearnError::Task(e.to_string()))??;
    if read == 0 {
        learned.summary.note = Some(format!(
            "no alert occurrences stored since {} (lookback {lookback}): nothing learned",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    } else if left_out > 0 {
        let more = format!(
            "read the newest {read} occurrences; {left_out} older ones within the lookback were left out (causality.max_occurrences)"
        );
        learned.summary.note = Some(match learned.summary.note.take() {
            Some(n) => format!("{n}; {more}"),
            None => more,
        });
    }
    if orphaned > 0 {
        tracing::warn!(
            orphaned,
            "alert occurrences without a readable alert row were left out of learning"
        );
    }
    let g = LearnedGraph {
        learned,
        learned_at: now,
        occurrences_read: read,
        occurrences_left_out: left_out,
    };
    st.store.save_causality(&g).await?;
    refresh(st, learner).await?;
    tracing::info!(
        occurrences = read,
        left_out,
        edges = g.learned.edges.len(),
        read_seconds,
        seconds = t.elapsed().as_secs_f64(),
        note = g.learned.summary.note.as_deref().unwrap_or(""),
        "causality learning done"
    );
    Ok(g)
}
