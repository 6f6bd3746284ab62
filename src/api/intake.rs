//! Alert intake over HTTP: one handler for every format in `sources::registry` that has a
//! route. It reads the body, parses it with the format's function, stores the alerts (or,
//! with `kafka.forward_http`, produces them to Kafka) and answers in the format's dialect:
//! sift's ingest report, or PagerDuty's own shapes for PagerDuty's senders. Each route's
//! OpenAPI operation is built here from the registry's words, so a registered route cannot
//! be served undocumented.
//!
//! This module moves bytes and answers; it must not parse a format itself (that is the
//! format's file) nor name one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, Paths, PathsBuilder};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};

use super::AppState;
use super::error::ApiError;
use super::extract::read_body;
use super::openapi::{ApiRouter, ErrorBody};
use crate::alert::{Alert, Source};
use crate::pipeline::IngestReport;
use crate::sources::registry::{self, Format, Intake, Refusal, Reply};
use crate::sources::{SourceError, pagerduty};

/// An accepted PagerDuty event, answered as PagerDuty's Events API v2 does.
#[derive(Serialize, ToSchema)]
pub struct PagerDutyAccepted {
    /// `success`
    status: &'static str,
    /// `Event processed`
    message: &'static str,
    /// The event's dedup key (given, or made up for a trigger without one).
    dedup_key: String,
}

/// A refused PagerDuty event, in PagerDuty's own error shape (its senders expect it).
#[derive(Serialize, ToSchema)]
pub struct PagerDutyError {
    /// `invalid event`
    status: &'static str,
    message: String,
    errors: Vec<String>,
}

/// Every registered format's route, documented.
pub fn routes() -> ApiRouter {
    registry::http().fold(ApiRouter::new(), |router, (format, intake)| {
        let handler = move |State(st): State<AppState>, body: Result<Bytes, BytesRejection>| {
            handle(st, format, intake, body)
        };
        router.routes((
            schemas(intake.reply),
            paths(intake),
            axum::routing::post(handler),
        ))
    })
}

/// The one intake handler.
async fn handle(
    st: AppState,
    format: &'static Format,
    intake: &'static Intake,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match intake.reply {
        Reply::Report => report(&st, format, intake.source, body)
            .await
            .map(Json)
            .into_response(),
        Reply::PagerDuty => pagerduty(&st, format, intake.source, body).await,
    }
}

/// Sift's own dialect: 200 with what the request did, errors in `ErrorBody`.
async fn report(
    st: &AppState,
    format: &Format,
    source: Source,
    body: Result<Bytes, BytesRejection>,
) -> Result<IngestReport, ApiError> {
    let body = read_body(body)?;
    let n = st.normalize.as_ref().clone().at(Utc::now());
    let parsed = (format.parse)(&body, &n, &pagerduty::random_dedup_key).map_err(|e| {
        reject(st, source);
        ApiError::from(SourceError::from(e))
    })?;
    store(st, parsed.alerts, source).await
}

/// PagerDuty's dialect: 202 with the dedup key; an unreadable or invalid body in
/// PagerDuty's error shape.
async fn pagerduty(
    st: &AppState,
    format: &Format,
    source: Source,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let invalid = |status: StatusCode, message: String, errors: Vec<String>| {
        (
            status,
            Json(PagerDutyError {
                status: "invalid event",
                message,
                errors,
            }),
        )
            .into_response()
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return invalid(
                e.status(),
                "cannot read request body".into(),
                vec![e.body_text()],
            );
        }
    };
    let n = st.normalize.as_ref().clone().at(Utc::now());
    let parsed = match (format.parse)(&body, &n, &pagerduty::random_dedup_key) {
        Ok(p) => p,
        Err(e) => {
            reject(st, source);
            let (message, errors) = match e {
                Refusal::Event(e) => (e.message, e.errors),
                Refusal::At(e) => ("Event object is invalid".into(), vec![e.to_string()]),
            };
            return invalid(StatusCode::BAD_REQUEST, message, errors);
        }
    };
    match store(st, parsed.alerts, source).await {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(PagerDutyAccepted {
                status: "success",
                message: "Event processed",
                dedup_key: parsed.dedup_key.unwrap_or_default(),
            }),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Stores the alerts, or with `kafka.forward_http` produces them to Kafka (then only
/// `accepted` is known here; the consumer decides the rest). Either way, durable on return.
async fn store(
    st: &AppState,
    alerts: Vec<Alert>,
    source: Source,
) -> Result<IngestReport, ApiError> {
    match &st.forward {
        None => Ok(st.pipeline.ingest(alerts, source).await?),
        Some(f) => {
            f.forward(&alerts).await.map_err(|e| {
                tracing::warn!(error = %e, "forward to kafka failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "kafka did not acknowledge the alerts; nothing was stored, retry",
                )
                .with_detail(json!(e.to_string()))
            })?;
            Ok(IngestReport {
                accepted: alerts.len() as u64,
                ..Default::default()
            })
        }
    }
}

fn reject(st: &AppState, source: Source) {
    st.metrics
        .alerts_received
        .with_label_values(&[source.as_str(), "rejected"])
        .inc();
}

/// The schemas a dialect's answers name.
fn schemas(reply: Reply) -> Vec<(String, RefOr<Schema>)> {
    fn add<T: ToSchema>(v: &mut Vec<(String, RefOr<Schema>)>) {
        v.push((T::name().into_owned(), T::schema()));
        T::schemas(v);
    }
    let mut v = Vec::new();
    match reply {
        Reply::Report => {
            add::<IngestReport>(&mut v);
            add::<ErrorBody>(&mut v);
        }
        Reply::PagerDuty => {
            add::<PagerDutyAccepted>(&mut v);
            add::<PagerDutyError>(&mut v);
        }
    }
    v
}

/// The route's OpenAPI operation, as `#[utoipa::path]` would write it.
fn paths(intake: &Intake) -> Paths {
    let doc = &intake.doc;
    let object = || Schema::Object(ObjectBuilder::new().schema_type(Type::Object).build());
    let body_schema = if doc.list {
        Schema::Array(ArrayBuilder::new().items(RefOr::T(object())).build())
    } else {
        object()
    };
    let json = |name: &str| {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(name)))
            .build()
    };
    let response = |description: &str, name: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", json(name))
            .build()
    };
    let mut op = OperationBuilder::new()
        .tag("intake")
        .operation_id(Some(doc.operation_id))
        .summary(Some(doc.summary))
        .request_body(Some(
            RequestBodyBuilder::new()
                .description(Some(doc.body))
                .content(
                    intake.content_type,
                    ContentBuilder::new().schema(Some(body_schema)).build(),
                )
                .required(Some(Required::True))
                .build(),
        ));
    op = match intake.reply {
        Reply::Report => op
            .response(
                "200",
                response(
                    "Stored (durable on return): what the request did.",
                    "IngestReport",
                ),
            )
            .response("400", response(doc.refused, "ErrorBody")),
        Reply::PagerDuty => op
            .response(
                "202",
                response("Stored (durable on return).", "PagerDutyAccepted"),
            )
            .response("400", response(doc.refused, "PagerDutyError"))
            .response(
                "413",
                response(
                    "The body is larger than `server.body_limit_bytes`, in PagerDuty's error shape.",
                    "PagerDutyError",
                ),
            ),
    };
    PathsBuilder::new()
        .path(intake.path, PathItem::new(HttpMethod::Post, op.build()))
        .build()
}
