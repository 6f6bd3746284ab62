//! The HTTP API (axum): alert intake, incidents (with merge and split), alerts, CMDB,
//! problems, learned causality, grouping feedback, outbound subscriptions and outbox, metrics and health.
//!
//! Handlers parse at the edge and hand typed values to the pipeline or the store; they
//! never decide correlation. Every error is `{"error", "detail"}` with a 4xx/5xx status,
//! except the PagerDuty route's 400, which has PagerDuty's own shape for its senders.
//!
//! Every route here is added through `OpenApiRouter::routes(routes!(handler))` (the intake
//! routes through the same call, with operations `intake` builds from the format registry),
//! so it is in the OpenAPI document (`GET /api/openapi.json`, see `openapi`); roles are put on groups
//! of routes with `openapi::guarded`. Plain `.route(`/`.nest(` calls are refused in this
//! directory by tests/openapi.rs. The one exception is the operator console's HTML pages,
//! which are not the API: they come in through `router_with` as a plain axum router.

pub mod auth;
pub mod causality;
mod edit;
pub mod error;
pub mod events;
pub mod extract;
mod handlers;
mod intake;
pub mod notify;
pub mod openapi;
pub mod problems;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;
use utoipa_axum::routes;

use crate::config::{ProblemsConfig, Role};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::sources::Normalize;
use crate::store::Store;

use auth::Auth;
use error::ApiError;
use openapi::{ApiRouter, ErrorBody, guarded};

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
    /// The daemon's one shutdown token (`crate::app`): open event streams end when it is
    /// cancelled.
    pub shutdown: CancellationToken,
}

pub struct ApiSettings {
    pub auth: Auth,
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// `[problems]`: the problem routes' clustering settings.
    pub problems: crate::config::ProblemsConfig,
    /// `[causality]` and its run locks, shared with the schedule (`crate::app`).
    pub causality: Arc<causality::Learner>,
}

/// Every route of the API, each documented, each group behind its role.
fn api(auth: &Auth, problems: ProblemsConfig, learner: Arc<causality::Learner>) -> ApiRouter {
    let intake = intake::routes();
    let read = ApiRouter::new()
        .routes(routes!(handlers::list_incidents))
        .routes(routes!(handlers::get_incident))
        .routes(routes!(handlers::list_alerts))
        .routes(routes!(handlers::get_ci))
        .routes(routes!(handlers::ci_impact))
        .routes(routes!(handlers::list_changes))
        .routes(routes!(edit::list_feedback))
        .routes(routes!(events::stream));
    let operate = ApiRouter::new()
        .routes(routes!(handlers::patch_incident))
        .routes(routes!(edit::merge))
        .routes(routes!(edit::split));
    let admin = ApiRouter::new()
        .routes(routes!(handlers::put_cis))
        .routes(routes!(handlers::put_relations))
        .routes(routes!(handlers::post_changes));
    let open = ApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz));
    ApiRouter::new()
        .merge(guarded(intake, auth, Role::Operator, true))
        .merge(guarded(read, auth, Role::Viewer, false))
        .merge(guarded(operate, auth, Role::Operator, false))
        .merge(guarded(admin, auth, Role::Admin, false))
        .merge(problems::routes(auth, problems))
        .merge(notify::routes(auth))
        .merge(causality::routes(auth, learner))
        .merge(openapi::open(open))
}

/// The document route itself (open), apart so it can carry the finished document.
fn document_route() -> ApiRouter {
    openapi::open(ApiRouter::new().routes(routes!(openapi::document)))
}

/// The OpenAPI 3.1 document of every route `router` serves (as `GET /api/openapi.json`
/// serves it). Roles and routes do not depend on the settings, so any will do.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let learner = causality::Learner::new(crate::config::CausalityConfig::default());
    let mut doc = api(&Auth::default(), ProblemsConfig::default(), learner).into_openapi();
    doc.merge(document_route().into_openapi());
    openapi::finish(doc)
}

/// The API plus `html`: the operator console's pages (plain axum routes, merged with
/// `.merge(html)`). They are HTML, not the API, so they are exempt from the OpenAPI
/// document; they must not serve anything under `/api/`, `/metrics`, `/healthz` or
/// `/readyz`.
pub fn router_with(state: AppState, s: ApiSettings, html: Router<AppState>) -> Router {
    let (api, mut doc) = api(&s.auth, s.problems.clone(), s.causality.clone()).split_for_parts();
    let (doc_route, doc_part) = document_route().split_for_parts();
    doc.merge(doc_part);
    // Built once: every request for it is a reference count, not a serialization.
    let json = serde_json::to_vec(&openapi::finish(doc)).unwrap_or_default();
    let doc_route = doc_route.layer(axum::Extension(openapi::Document(Bytes::from(json))));
    let timeout = s.request_timeout;
    api.merge(doc_route)
        .merge(html)
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

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Metrics (text format 0.0.4).", content_type = "text/plain", body = String)),
)]
async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
}

/// Alive: the process answers HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)),
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the store answers a read within two seconds and the writer's last write
/// transaction succeeded (a full disk or a database refusing writes is not ready, though
/// reads still work).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "The store does not answer, or its writes are failing.", body = ErrorBody),
    ),
)]
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
