//! Bearer tokens with roles (viewer < operator < admin) from config. Webhook routes also
//! take HTTP basic auth, where the password is a token (any user name), as Alertmanager's
//! `http_config.basic_auth` sends it. With no tokens configured, auth is off.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::error::ApiError;
use crate::config::{Role, Token};

#[derive(Clone, Default)]
pub struct Auth {
    tokens: Arc<Vec<Token>>,
}

/// Who made a request: shown as the actor in incident timelines.
#[derive(Clone, Debug)]
pub struct Caller(pub String);

/// The role a request was made with (admin when auth is off).
#[derive(Clone, Copy, Debug)]
pub struct CallerRole(pub Role);

impl Auth {
    pub fn new(tokens: Vec<Token>) -> Self {
        Self {
            tokens: Arc::new(tokens),
        }
    }
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The configured token equal to `presented` (the console's sign-in form).
    pub fn lookup(&self, presented: &str) -> Option<&Token> {
        self.tokens
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), presented.as_bytes()))
    }

    fn identify(&self, req: &Request, basic_ok: bool) -> Option<&Token> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, cred) = value.split_once(' ')?;
        let presented = if scheme.eq_ignore_ascii_case("bearer") {
            cred.trim().to_string()
        } else if basic_ok && scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(cred.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            text.split_once(':')?.1.to_string()
        } else {
            return None;
        };
        self.lookup(&presented)
    }
}

/// Compares SHA-256 digests, so the time taken says nothing about where the two differ,
/// nor about the configured token's length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::Digest;
    let (x, y) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// What a route needs.
#[derive(Clone, Copy)]
pub struct Need {
    pub role: Role,
    pub basic_ok: bool,
}

pub async fn require(
    State((auth, need)): State<(Auth, Need)>,
    mut req: Request,
    next: Next,
) -> Response {
    if !auth.enabled() {
        req.extensions_mut().insert(Caller("anonymous".into()));
        req.extensions_mut().insert(CallerRole(Role::Admin));
        return next.run(req).await;
    }
    let Some(token) = auth.identify(&req, need.basic_ok) else {
        let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid credentials")
            .with_detail(serde_json::json!("send Authorization: Bearer <token>"))
            .into_response();
        let challenge = if need.basic_ok {
            "Bearer, Basic realm=\"sift\""
        } else {
            "Bearer"
        };
        if let Ok(v) = challenge.parse() {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return resp;
    };
    if token.role < need.role {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "role {} may not do this; it needs {}",
                token.role.as_str(),
                need.role.as_str()
            ),
        )
        .into_response();
    }
    let name = token
        .name
        .clone()
        .unwrap_or_else(|| token.role.as_str().to_string());
    req.extensions_mut().insert(Caller(name));
    req.extensions_mut().insert(CallerRole(token.role));
    next.run(req).await
}
