//! Outbound delivery routes: webhook subscriptions (admin) and the outbox with its
//! dead letters (viewer; an operator can send a dead letter again). Subscriptions made here live in the store beside those from
//! `[[notify.webhooks]]`; a config subscription cannot be deleted here (it would come back
//! at the next start), change the config instead.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

use super::AppState;
use super::auth::{self, Auth};
use super::error::ApiError;
use super::extract::{JsonBody, Params};
use super::openapi::{ApiRouter, ErrorBody, guarded};
use crate::config::Role;
use crate::outbox::{EventKind, OutboxEntry, OutboxStatus, Preset, Subscription, UnknownStatus};
use crate::store::RetryOutcome;

pub fn routes(auth: &Auth) -> ApiRouter {
    let read = ApiRouter::new().routes(routes!(list_outbox));
    let operate = ApiRouter::new().routes(routes!(retry_outbox));
    let admin = ApiRouter::new()
        .routes(routes!(list_subscriptions, post_subscription))
        .routes(routes!(delete_subscription));
    guarded(read, auth, Role::Viewer, false)
        .merge(guarded(operate, auth, Role::Operator, false))
        .merge(guarded(admin, auth, Role::Admin, false))
}

/// A subscription as the API shows it: without its secret, with where it comes from.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionView {
    name: String,
    url: String,
    /// Empty: every event.
    events: Vec<EventKind>,
    preset: Preset,
    /// Per-request timeout, e.g. `10s`.
    timeout: String,
    max_attempts: u32,
    /// Bodies are signed (`X-Sift-Signature`); the secret itself is never shown.
    has_secret: bool,
    /// `config` (`[[notify.webhooks]]`, changed only there) or `api`.
    origin: String,
}

impl SubscriptionView {
    fn new(s: &Subscription, origin: &str) -> Self {
        Self {
            name: s.name.clone(),
            url: s.url.clone(),
            events: s.events.clone(),
            preset: s.preset,
            timeout: s.timeout.to_string(),
            max_attempts: s.max_attempts,
            has_secret: s.secret.is_some(),
            origin: origin.to_string(),
        }
    }
}

/// Webhook subscriptions.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    subscriptions: Vec<SubscriptionView>,
}

/// Every webhook subscription, from the config and from the API.
#[utoipa::path(
    get,
    path = "/api/v1/subscriptions",
    tag = "notify",
    responses((status = 200, description = "The subscriptions.", body = SubscriptionList)),
)]
async fn list_subscriptions(
    State(st): State<AppState>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let subscriptions = st
        .store
        .list_subscriptions()
        .await?
        .iter()
        .map(|(s, origin)| SubscriptionView::new(s, origin))
        .collect();
    Ok(Json(SubscriptionList { subscriptions }))
}

/// Creates or replaces a webhook subscription (by name).
#[utoipa::path(
    post,
    path = "/api/v1/subscriptions",
    tag = "notify",
    request_body(content = Subscription, content_type = "application/json"),
    responses(
        (status = 201, description = "Stored.", body = SubscriptionView),
        (status = 400, description = "Not a subscription; the bad field is named.", body = ErrorBody),
        (status = 409, description = "A subscription of that name is defined in the config file.", body = ErrorBody),
        (status = 422, description = "A bad name or URL, a blocked destination (`notify.allow_networks`), or `notify.max_subscriptions` reached.", body = ErrorBody),
    ),
)]
async fn post_subscription(
    State(st): State<AppState>,
    JsonBody(sub): JsonBody<Subscription>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    sub.validate()
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    if let Ok(u) = reqwest::Url::parse(&sub.url) {
        st.destinations
            .check_url(&u)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("url: {e}")))?;
    }
    let existing = st.store.list_subscriptions().await?;
    let others = existing.iter().filter(|(s, _)| s.name != sub.name).count();
    if others >= st.max_subscriptions {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "sift holds {others} subscriptions, the most notify.max_subscriptions allows; delete one first"
            ),
        ));
    }
    if existing
        .iter()
        .any(|(s, origin)| s.name == sub.name && origin == "config")
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "subscription {} is defined in the config file; change it there",
                sub.name
            ),
        ));
    }
    st.store.put_subscription(&sub, "api").await?;
    Ok((
        StatusCode::CREATED,
        Json(SubscriptionView::new(&sub, "api")),
    ))
}

/// Deletes a subscription made through the API.
#[utoipa::path(
    delete,
    path = "/api/v1/subscriptions/{name}",
    tag = "notify",
    params(("name" = String, Path, description = "Subscription name.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "No such subscription.", body = ErrorBody),
        (status = 409, description = "It is defined in the config file; remove it there.", body = ErrorBody),
    ),
)]
async fn delete_subscription(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let subs = st.store.list_subscriptions().await?;
    match subs.iter().find(|(s, _)| s.name == name) {
        None => Err(ApiError::not_found(format!(
            "subscription {name} not found"
        ))),
        Some((_, origin)) if origin == "config" => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("subscription {name} is defined in the config file; remove it there"),
        )),
        Some(_) => {
            st.store.delete_subscription(&name).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxParams {
    /// pending, delivered or dead.
    status: Option<String>,
    /// Most events listed, 1..1000 (default 100).
    limit: Option<u32>,
}

/// Outbox events.
#[derive(Serialize, ToSchema)]
pub struct OutboxList {
    events: Vec<OutboxEntry>,
}

/// The outbox: events per subscription with their delivery state. Below admin,
/// `last_error` is only its class (a receiver's raw error tells what listens where).
#[utoipa::path(
    get,
    path = "/api/v1/outbox",
    tag = "notify",
    params(OutboxParams),
    responses(
        (status = 200, description = "The events.", body = OutboxList),
        (status = 400, description = "A bad status (named).", body = ErrorBody),
    ),
)]
async fn list_outbox(
    State(st): State<AppState>,
    axum::Extension(auth::CallerRole(role)): axum::Extension<auth::CallerRole>,
    Params(p): Params<OutboxParams>,
) -> Result<Json<OutboxList>, ApiError> {
    let status = p
        .status
        .as_deref()
        .map(str::parse::<OutboxStatus>)
        .transpose()
        .map_err(|UnknownStatus(s)| {
            ApiError::bad_request(format!(
                "status must be pending, delivered or dead, not {s:?}"
            ))
        })?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let mut rows = st
        .store
        .list_outbox(status.map(OutboxStatus::as_str), limit)
        .await?;
    // A receiver's raw error (a refused port, a banner) tells what listens where: only
    // admins, who set the subscriptions, read it.
    if role < Role::Admin {
        for r in &mut rows {
            if let Some(e) = &r.last_error {
                r.last_error = Some(error_class(e).to_string());
            }
        }
    }
    Ok(Json(OutboxList { events: rows }))
}

/// What a viewer is told of a delivery error.
fn error_class(error: &str) -> &'static str {
    if error.contains("blocked: ") {
        "blocked destination"
    } else if error.starts_with("no answer within") {
        "receiver did not answer in time"
    } else if error.starts_with("receiver answered") {
        "receiver refused the event"
    } else {
        "delivery failed (details for admins)"
    }
}

/// A dead letter queued again.
#[derive(Serialize, ToSchema)]
pub struct Requeued {
    id: i64,
    /// `pending`
    status: OutboxStatus,
}

/// A dead-lettered event goes back in its queue with a fresh attempt budget (the
/// receiver is fixed now); 409 for a row that is not dead.
#[utoipa::path(
    post,
    path = "/api/v1/outbox/{id}/retry",
    tag = "notify",
    params(("id" = i64, Path, description = "Outbox event id.")),
    responses(
        (status = 202, description = "Queued again.", body = Requeued),
        (status = 400, description = "The id is not a number.", body = ErrorBody),
        (status = 404, description = "No such event.", body = ErrorBody),
        (status = 409, description = "The event is not dead, or a later event of its incident was delivered since.", body = ErrorBody),
    ),
)]
async fn retry_outbox(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Requeued>), ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("outbox id must be a number, not {id:?}")))?;
    match st.store.retry_outbox(id, chrono::Utc::now()).await? {
        RetryOutcome::NotFound => Err(ApiError::not_found(format!("outbox event {id} not found"))),
        RetryOutcome::Queued => Ok((
            StatusCode::ACCEPTED,
            Json(Requeued {
                id,
                status: OutboxStatus::Pending,
            }),
        )),
        RetryOutcome::NotDead(other) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("outbox event {id} is {other}; only dead events can be retried"),
        )),
        RetryOutcome::Stale(later) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "outbox event {id} is stale: a later event of its incident ({later}) was \
                 delivered to that subscription since, and carries the newer state"
            ),
        )),
    }
}
