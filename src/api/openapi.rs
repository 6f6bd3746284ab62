//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/openapi.json`.
//!
//! The document is collected while the router is built: every route of `src/api/` is added
//! with `OpenApiRouter::routes(routes!(handler))`, which takes the handler's
//! `#[utoipa::path]` (method, path, parameters, body, responses) and the `ToSchema` types it
//! names, so a route cannot be served without being documented. The alert intake routes,
//! one per registered format, come through the same call with operations `intake` builds
//! from `sources::registry`. A group of routes gets
//! its role through [`guarded`], which puts the role middleware on the group and writes the
//! same role into each operation's security requirement and description: the role is
//! stated once, where it is enforced. [`finish`] adds what holds for every route (the
//! error shape of a timeout, the security schemes, the document's info).
//!
//! This module only describes and serves the document; it decides no access itself (that
//! is `auth::require`) and must not add routes of its own beyond the document's.

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, middleware};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response as ApiResponse};
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::auth::{self, Auth, Need};
use crate::config::Role;

/// A router that documents what it serves.
pub type ApiRouter = OpenApiRouter<AppState>;

/// The one error shape of the API (see `error::ApiError`): what went wrong, and a detail
/// (often `null`; for a bad body `{"path", "reason"}`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "limit must be 1..1000, not 0", "detail": null}))]
pub struct ErrorBody {
    /// What is wrong, in words.
    pub error: String,
    /// More about it: `null`, a string, or an object (the JSON path of a bad field, the
    /// rejected records of an import...).
    #[schema(value_type = serde_json::Value)]
    pub detail: Value,
}

/// The document as served: serialized once, when the router is built.
#[derive(Clone)]
pub struct Document(pub Bytes);

/// The machine-readable description of this API.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1, JSON).", content_type = "application/json", body = Object),
    ),
)]
pub async fn document(Extension(doc): Extension<Document>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], doc.0.clone()).into_response()
}

/// The methods of a path item that have an operation.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Every operation of a document, for changes that hold route by route.
pub fn each_operation(doc: &mut OpenApi, mut f: impl FnMut(&mut Operation)) {
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            f(op);
        }
    }
}

fn append_description(op: &mut Operation, note: &str) {
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{note}"),
        _ => note.to_string(),
    });
}

/// A response carrying [`ErrorBody`].
pub fn error_response(description: &str) -> RefOr<ApiResponse> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build();
    RefOr::T(
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content("application/json", content)
            .build(),
    )
}

fn add_response(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| error_response(description));
}

/// Puts `router`'s routes behind `role` (the middleware that refuses lesser roles, as
/// before), and documents it: a bearer requirement whose scope is the role (OpenAPI 3.1
/// allows role names there for non-OAuth schemes), the role in the description, and the
/// 401 and 403 answers. `basic_ok`: the token may also come as an HTTP basic password
/// (the webhook routes, for Alertmanager's `basic_auth`).
pub fn guarded(router: ApiRouter, auth: &Auth, role: Role, basic_ok: bool) -> ApiRouter {
    let mut router = router.layer(middleware::from_fn_with_state(
        (auth.clone(), Need { role, basic_ok }),
        auth::require,
    ));
    let note = if basic_ok {
        format!(
            "Role: {} or above (`Authorization: Bearer <token>`, or HTTP basic auth with the token as password). Open when sift has no tokens configured.",
            role.as_str()
        )
    } else {
        format!(
            "Role: {} or above (`Authorization: Bearer <token>`). Open when sift has no tokens configured.",
            role.as_str()
        )
    };
    let forbidden = format!("The token's role is below {}.", role.as_str());
    each_operation(router.get_openapi_mut(), |op| {
        let mut security = vec![SecurityRequirement::new("bearer", [role.as_str()])];
        if basic_ok {
            security.push(SecurityRequirement::new("basic", [role.as_str()]));
        }
        op.security = Some(security);
        append_description(op, &note);
        add_response(op, "401", "Missing or invalid credentials.");
        add_response(op, "403", &forbidden);
    });
    router
}

/// Routes anyone may call (health, metrics, this document): documented as such.
pub fn open(mut router: ApiRouter) -> ApiRouter {
    each_operation(router.get_openapi_mut(), |op| {
        append_description(op, "Open: no credentials needed.");
    });
    router
}

/// What holds for the whole document: its info, the security schemes the routes name, and
/// the answers every route can give (a request that outlives `server.request_timeout` is
/// 503; a body over `server.body_limit_bytes` is 413).
pub fn finish(mut doc: OpenApi) -> OpenApi {
    doc.info.title = "sift".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "sift's HTTP API: alert intake, incidents, alerts, CMDB, changes, problems, grouping \
         feedback, outbound subscriptions, metrics and health. Errors are \
         `{\"error\", \"detail\"}` (`ErrorBody`) unless a route says otherwise. Times are \
         RFC 3339 in UTC. Generated from the code: see docs/api.md for the contract in words."
            .into(),
    );
    // `OpenApiRouter::new` fills these from a crate's metadata, not sift's.
    doc.info.contact = None;
    doc.info.license = Some(
        utoipa::openapi::LicenseBuilder::new()
            .name("Apache-2.0")
            .identifier(Some("Apache-2.0"))
            .build(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    components.add_security_scheme(
        "basic",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
    );
    components
        .schemas
        .entry("ErrorBody".into())
        .or_insert_with(<ErrorBody as utoipa::PartialSchema>::schema);
    each_operation(&mut doc, |op| {
        if op.request_body.is_some() {
            add_response(
                op,
                "413",
                "The body is larger than `server.body_limit_bytes`.",
            );
        }
        add_response(
            op,
            "503",
            "sift could not answer in time (`server.request_timeout`), or the store is unavailable; retry (`Retry-After`).",
        );
    });
    doc
}
