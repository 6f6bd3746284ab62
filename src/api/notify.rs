//! Outbound delivery routes: webhook subscriptions (admin) and the outbox with its
//! dead letters (viewer; an operator can send a dead letter again). Subscriptions made here live in the store beside those from
//! `[[notify.webhooks]]`; a config subscription cannot be deleted here (it would come back
//! at the next start), change the config instead.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{self, Auth, Need};
use super::error::ApiError;
use super::extract::{JsonBody, Params};
use crate::config::Role;
use crate::outbox::Subscription;
use crate::store::RetryOutcome;

pub fn routes(auth: &Auth) -> Router<AppState> {
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
    let read = Router::new()
        .route("/api/v1/outbox", get(list_outbox))
        .layer(guard(Role::Viewer));
    let operate = Router::new()
        .route(
            "/api/v1/outbox/{id}/retry",
            axum::routing::post(retry_outbox),
        )
        .layer(guard(Role::Operator));
    let admin = Router::new()
        .route(
            "/api/v1/subscriptions",
            get(list_subscriptions).post(post_subscription),
        )
        .route(
            "/api/v1/subscriptions/{name}",
            axum::routing::delete(delete_subscription),
        )
        .layer(guard(Role::Admin));
    read.merge(operate).merge(admin)
}

async fn list_subscriptions(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let subs: Vec<Value> = st
        .store
        .list_subscriptions()
        .await?
        .iter()
        .map(|(s, origin)| s.redacted(origin))
        .collect();
    Ok(Json(json!({ "subscriptions": subs })))
}

async fn post_subscription(
    State(st): State<AppState>,
    JsonBody(sub): JsonBody<Subscription>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(sub.redacted("api"))))
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxParams {
    status: Option<String>,
    limit: Option<u32>,
}

async fn list_outbox(
    State(st): State<AppState>,
    axum::Extension(auth::CallerRole(role)): axum::Extension<auth::CallerRole>,
    Params(p): Params<OutboxParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(s) = p.status.as_deref()
        && !matches!(s, "pending" | "delivered" | "dead")
    {
        return Err(ApiError::bad_request(format!(
            "status must be pending, delivered or dead, not {s:?}"
        )));
    }
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let mut rows = st.store.list_outbox(p.status.as_deref(), limit).await?;
    // A receiver's raw error (a refused port, a banner) tells what listens where: only
    // admins, who set the subscriptions, read it.
    if role < Role::Admin {
        for r in &mut rows {
            if let Some(e) = &r.last_error {
                r.last_error = Some(error_class(e).to_string());
            }
        }
    }
    Ok(Json(json!({ "events": rows })))
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

/// A dead-lettered event goes back in its queue with a fresh attempt budget (the
/// receiver is fixed now); 409 for a row that is not dead.
async fn retry_outbox(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("outbox id must be a number, not {id:?}")))?;
    match st.store.retry_outbox(id, chrono::Utc::now()).await? {
        RetryOutcome::NotFound => Err(ApiError::not_found(format!("outbox event {id} not found"))),
        RetryOutcome::Queued => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "status": "pending"})),
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
