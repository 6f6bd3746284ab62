//! The HTTP API (axum): alert intake, incidents (with merge and split), alerts, CMDB,
//! problems, grouping feedback, outbound subscriptions and outbox, metrics and health.
//!
//! Handlers parse at the edge and hand typed values to the pipeline or the store; they
//! never decide correlation. Every error is `{"error", "detail"}` with a 4xx/5xx status,
//! except the PagerDuty route's 400, which has PagerDuty's own shape for its senders.

pub mod auth;
mod edit;
pub mod error;
pub mod events;
pub mod extract;
mod handlers;
pub mod notify;
pub mod problems;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::config::Role;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::sources::Normalize;
use crate::store::Store;

use auth::{Auth, Need};
use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub pipeline: Pipeline,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub normalize: Arc<Normalize>,
    /// `kafka.forward_http`: intake goes to Kafka instead of the local pipeline.
    pub forward: Option<Arc<crate::sources::forward::Forwarder>>,
    /// Where webhook subscriptions may point (`notify.allow_networks`).
    pub destinations: Arc<crate::outbox::guard::Destinations>,
    /// `notify.max_subscriptions`.
    pub max_subscriptions: usize,
}

pub struct ApiSettings {
    pub auth: Auth,
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// `[problems]`: the problem routes' clustering settings.
    pub problems: crate::config::ProblemsConfig,
}

pub fn router(state: AppState, s: ApiSettings) -> Router {
    let guard = |role: Role, basic_ok: bool| {
        middleware::from_fn_with_state((s.auth.clone(), Need { role, basic_ok }), auth::require)
    };
    let intake = Router::new()
        .route(
            "/api/v1/alerts/alertmanager",
            post(handlers::alertmanager_webhook),
        )
        .route("/api/v2/alerts", post(handlers::alert_list))
        .route("/api/v1/alerts/pagerduty", post(handlers::pagerduty_event))
        .layer(guard(Role::Operator, true));
    let read = Router::new()
        .route("/api/v1/incidents", get(handlers::list_incidents))
        .route("/api/v1/incidents/{id}", get(handlers::get_incident))
        .route("/api/v1/alerts", get(handlers::list_alerts))
        .route("/api/v1/cmdb/cis/{id}", get(handlers::get_ci))
        .route("/api/v1/cmdb/cis/{id}/impact", get(handlers::ci_impact))
        .route("/api/v1/changes", get(handlers::list_changes))
        .route("/api/v1/feedback", get(edit::list_feedback))
        .route("/api/v1/events", get(events::stream))
        .layer(guard(Role::Viewer, false));
    let operate = Router::new()
        .route(
            "/api/v1/incidents/{id}",
            axum::routing::patch(handlers::patch_incident),
        )
        .route("/api/v1/incidents/{id}/merge", post(edit::merge))
        .route("/api/v1/incidents/{id}/split", post(edit::split))
        .layer(guard(Role::Operator, false));
    let admin = Router::new()
        .route("/api/v1/cmdb/cis", put(handlers::put_cis))
        .route("/api/v1/cmdb/relations", put(handlers::put_relations))
        .route("/api/v1/changes", post(handlers::post_changes))
        .layer(guard(Role::Admin, false));
    let open = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    let timeout = s.request_timeout;
    Router::new()
        .merge(intake)
        .merge(read)
        .merge(operate)
        .merge(admin)
        .merge(problems::routes(&s.auth, s.problems.clone()))
        .merge(notify::routes(&s.auth))
        .merge(open)
        .merge(crate::console::router(&s.auth))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(s.body_limit))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            with_timeout(timeout, req, next)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

async fn with_timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "request timed out before sift answered; a write in it may or may not have been stored",
        )
        .into_response(),
    }
}

/// Counts and times every request by route template (not raw path: bounded labels).
async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let t = Instant::now();
    let resp = next.run(req).await;
    st.metrics
        .http_requests
        .with_label_values(&[route.as_str(), method.as_str(), resp.status().as_str()])
        .inc();
    st.metrics
        .http_seconds
        .with_label_values(&[route.as_str()])
        .observe(t.elapsed().as_secs_f64());
    resp
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
}

/// Ready when the store answers a read within two seconds and the writer's last write
/// transaction succeeded (a full disk or a database refusing writes is not ready, though
/// reads still work).
async fn readyz(State(st): State<AppState>) -> Result<&'static str, ApiError> {
    if let Some(e) = st.pipeline.write_failure() {
        return Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store writes are failing")
                .with_detail(serde_json::json!(e)),
        );
    }
    match tokio::time::timeout(Duration::from_secs(2), st.store.ping()).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store did not answer within 2 s",
            ));
        }
    }
    Ok("ready\n")
}
