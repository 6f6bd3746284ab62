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
    let existing = st.store.list_subscriptions().await?;
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
    let rows = st.store.list_outbox(p.status.as_deref(), limit).await?;
    Ok(Json(json!({ "events": rows })))
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
