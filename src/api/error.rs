//! The one error shape of the HTTP API: `{"error": "...", "detail": ...}` with a 4xx/5xx.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cmdb::CmdbError;
use crate::correlate::{EditError, PatchError};
use crate::pipeline::PipelineError;
use crate::sources::SourceError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub detail: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            detail: Value::Null,
        }
    }
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        );
        let body = super::openapi::ErrorBody {
            error: self.error,
            detail: self.detail,
        };
        let mut resp = (self.status, Json(body)).into_response();
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> Self {
        ApiError::bad_request(format!("invalid alert payload: {e}"))
            .with_detail(json!({"path": e.path, "reason": e.message}))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
            .with_detail(json!(e.to_string()))
    }
}

impl From<CmdbError> for ApiError {
    fn from(e: CmdbError) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            PipelineError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            PipelineError::Store(s) => s.into(),
            PipelineError::StoreFailing(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store writes are failing, nothing was stored; retry",
            )
            .with_detail(json!(m)),
            PipelineError::WriteFailed(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "write failed, nothing was stored; retry",
            )
            .with_detail(json!(m)),
            // Re-sending is safe: alerts are deduplicated (a re-send counts as one more
            // event of the alert), incident edits and CMDB upserts are idempotent.
            PipelineError::CommitFailed(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store's commit failed: the request may or may not have been stored; re-send it",
            )
            .with_detail(json!(m)),
            PipelineError::TimedOut { .. } | PipelineError::WriterStopped => {
                let retry = if matches!(e, PipelineError::TimedOut { maybe_stored: false }) {
                    "retry"
                } else {
                    "re-send it"
                };
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{e}; {retry}"))
            }
            PipelineError::Partial {
                stored,
                total,
                ref cause,
            } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{stored} of {total} alerts were stored before a failure; re-send the request"
                ),
            )
            .with_detail(json!({"stored": stored, "total": total, "cause": cause.to_string()})),
            PipelineError::Patch(PatchError::NotFound(id)) => {
                ApiError::not_found(format!("incident {id} not found"))
            }
            PipelineError::Patch(p @ PatchError::IllegalTransition { .. }) => {
                ApiError::new(StatusCode::CONFLICT, p.to_string())
            }
            PipelineError::Edit(EditError::NotFound(id)) => {
                ApiError::not_found(format!("incident {id} not found"))
            }
            PipelineError::Edit(e @ EditError::NotMember { .. }) => {
                let detail = match &e {
                    EditError::NotMember { fingerprints, .. } => json!({"alerts": fingerprints}),
                    _ => Value::Null,
                };
                ApiError::new(StatusCode::CONFLICT, e.to_string()).with_detail(detail)
            }
            PipelineError::Edit(e) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            PipelineError::Cmdb(c) => c.into(),
            PipelineError::Change(c) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, c.to_string())
            }
        }
    }
}
