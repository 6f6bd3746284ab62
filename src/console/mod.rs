//! The operator console: server-rendered HTML pages served by sift itself at `/` (incidents,
//! problems, CMDB, noise), with one small script and one stylesheet embedded in the binary.
//! Pages work without JavaScript; the script adds live updates from the event stream.
//!
//! Sign-in: with auth on, a bearer token from the configuration, typed once into a form,
//! opens a server-side session (in memory: a restart signs everyone out) held in an
//! HttpOnly, SameSite=Strict cookie. Every state-changing form carries the session's CSRF
//! token and is refused (403) without it; actions need the same role as the API's, and the
//! server checks it whatever the page showed. With auth off everyone is admin, as in the API.
//!
//! This module renders and routes. It must not decide anything the API decides: actions go
//! through the same pipeline and store calls the API handlers make (`Pipeline::patch`,
//! `Pipeline::edit`, `api::problems::decide`), and it is not part of the JSON API.

mod cmdb;
mod graph;
mod incidents;
mod noise;
mod problems;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::api::AppState;
use crate::api::auth::{Auth, constant_time_eq};
use crate::api::error::ApiError;
use crate::config::Role;

/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once (the oldest are dropped beyond it).
const MAX_SESSIONS: usize = 10_000;
const COOKIE: &str = "sift_session";

const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// The console's routes (HTML, not part of the JSON API), merged with the API by `app`
/// (`api::router_with`).
pub fn router(auth: &Auth) -> Router<AppState> {
    let console = Console {
        auth: auth.clone(),
        sessions: Arc::new(Sessions::default()),
        anonymous_csrf: Arc::from(random_token().as_str()),
    };
    Router::new()
        .route("/", get(incidents::list))
        .route("/incidents/{id}", get(incidents::detail))
        .route("/incidents/{id}/status", post(incidents::set_status))
        .route("/incidents/{id}/assign", post(incidents::assign))
        .route("/incidents/{id}/comment", post(incidents::comment))
        .route("/incidents/{id}/note", post(incidents::note))
        .route("/incidents/{id}/merge", post(incidents::merge))
        .route("/incidents/{id}/split", post(incidents::split))
        .route("/problems", get(problems::list))
        .route("/problems/{id}/decide", post(problems::decide))
        .route("/cmdb", get(cmdb::search))
        .route("/cmdb/{id}", get(cmdb::detail))
        .route("/noise", get(noise::page_handler))
        .route("/signin", get(signin_page).post(signin))
        .route("/signout", post(signout))
        .route("/console/events", get(events))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .layer(Extension(console))
}

#[derive(Clone)]
struct Console {
    auth: Auth,
    sessions: Arc<Sessions>,
    /// With auth off there is no session: forms carry this per-process token instead
    /// (another site's page cannot read it, so it still stops cross-site posts).
    anonymous_csrf: Arc<str>,
}

#[derive(Clone)]
struct Session {
    name: String,
    role: Role,
    csrf: String,
    expires: Instant,
}

#[derive(Default)]
struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn open(&self, name: String, role: Role, now: Instant) -> String {
        let id = random_token();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                name,
                role,
                csrf: random_token(),
                expires: now + SESSION_TTL,
            },
        );
        id
    }

    /// The live session `id` names; an expired one is forgotten.
    fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    fn close(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// 32 random bytes from the OS, hex: session ids and CSRF tokens.
fn random_token() -> String {
    let mut b = [0u8; 32];
    // The OS random source does not fail on Linux after boot; a zeroed id would still be
    // unique per process only, so fail loudly rather than hand out guessable ids.
    getrandom::getrandom(&mut b).expect("the OS random source failed");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Who is looking at a page: from the session cookie, or everyone-as-admin with auth off.
#[derive(Clone)]
pub(crate) struct Viewer {
    pub name: String,
    pub role: Role,
    pub csrf: String,
    pub auth_on: bool,
    session: Option<String>,
}

impl Viewer {
    pub fn can_operate(&self) -> bool {
        self.role >= Role::Operator
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Response> {
        let Some(console) = parts.extensions.get::<Console>().cloned() else {
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        if !console.auth.enabled() {
            return Ok(Viewer {
                name: "anonymous".into(),
                role: Role::Admin,
                csrf: console.anonymous_csrf.to_string(),
                auth_on: false,
                session: None,
            });
        }
        let found = session_cookie(&parts.headers)
            .and_then(|id| Some((id, console.sessions.get(id, Instant::now())?)));
        match found {
            Some((id, s)) => Ok(Viewer {
                name: s.name,
                role: s.role,
                csrf: s.csrf,
                auth_on: true,
                session: Some(id.to_string()),
            }),
            None => {
                // Back to the page after sign-in; a form post lands on its page instead.
                let path = parts.uri.path();
                let next = if parts.method == axum::http::Method::GET {
                    parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or(path)
                } else {
                    path.rsplit_once('/')
                        .map(|(a, _)| a)
                        .filter(|a| !a.is_empty())
                        .unwrap_or("/")
                };
                let to = format!("/signin?next={}", encode(next));
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|x| x.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// The page a refused form post answers with (boxed: a `Response` is large).
pub(crate) type Refused = Box<Response>;

/// A posted form: its fields in order (a field may repeat, like checked checkboxes).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Result<Form, Refused> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(Form)
            .map_err(|e| {
                Box::new(error_page(
                    None,
                    StatusCode::BAD_REQUEST,
                    &format!("the form could not be read: {e}"),
                ))
            })
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Reads a state-changing form: its CSRF token must be the session's (403 when missing
/// or wrong), and the viewer must hold `role` (403 otherwise, whatever the page showed).
pub(crate) fn checked_form(v: &Viewer, body: &[u8], role: Role) -> Result<Form, Refused> {
    let form = Form::parse(body)?;
    let ok = form
        .get("csrf")
        .is_some_and(|t| constant_time_eq(t.as_bytes(), v.csrf.as_bytes()));
    if !ok {
        return Err(Box::new(error_page(
            Some(v),
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: reload the page and try again",
        )));
    }
    if v.role < role {
        return Err(Box::new(error_page(
            Some(v),
            StatusCode::FORBIDDEN,
            &format!(
                "role {} may not do this; it needs {}",
                v.role.as_str(),
                role.as_str()
            ),
        )));
    }
    Ok(form)
}

/// An HTML page with the console's security headers.
pub(crate) fn page(v: Option<&Viewer>, title: &str, live: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · sift" }
                link rel="stylesheet" href="/console/console.css";
                script src="/console/console.js" defer {}
            }
            body data-live=(live) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "sift" }
                    @if let Some(v) = v {
                        nav aria-label="Console" {
                            a href="/" { "Incidents" }
                            a href="/problems" { "Problems" }
                            a href="/cmdb" { "CMDB" }
                            a href="/noise" { "Noise" }
                        }
                        span.who {
                            (v.name) " (" (v.role.as_str()) ")"
                            @if v.auth_on {
                                form.inline method="post" action="/signout" {
                                    input type="hidden" name="csrf" value=(v.csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                        span #live-status role="status" aria-live="polite" {}
                    }
                }
                @if v.is_some_and(|v| !v.auth_on) {
                    p.banner role="note" {
                        "Authentication is off: anyone who can reach this port acts as admin. "
                        "Configure auth.tokens to require sign-in."
                    }
                }
                main #main { (body) }
            }
        }
    };
    html_response(StatusCode::OK, doc)
}

fn html_response(status: StatusCode, doc: Markup) -> Response {
    let mut r = (status, doc).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An error as a page: the status and what went wrong, in words.
pub(crate) fn error_page(v: Option<&Viewer>, status: StatusCode, msg: &str) -> Response {
    let body = html! {
        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
        p.error role="alert" { (msg) }
        p { a href="/" { "Back to incidents" } }
    };
    let mut r = page(v, "Error", "", body);
    *r.status_mut() = status;
    r
}

/// An API error (from the shared pipeline or store calls) as a page.
pub(crate) fn api_error(v: &Viewer, e: ApiError) -> Response {
    let mut msg = e.error;
    if !e.detail.is_null() {
        msg.push_str(": ");
        match e.detail {
            serde_json::Value::String(s) => msg.push_str(&s),
            d => msg.push_str(&d.to_string()),
        }
    }
    error_page(Some(v), e.status, &msg)
}

/// After a successful action: back to `to` (303, so a reload does not post again).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Deserialize)]
struct SigninParams {
    next: Option<String>,
}

/// Where to go after sign-in: a path on this site only (no `//host`, no scheme).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

fn signin_form(next: &str, error: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in to sift" }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.signin method="post" action="/signin" {
            input type="hidden" name="next" value=(next);
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
        p.hint { "Use a token from auth.tokens in sift.toml; its role decides what you can do." }
    }
}

async fn signin_page(Extension(c): Extension<Console>, Query(p): Query<SigninParams>) -> Response {
    if !c.auth.enabled() {
        return see_other("/");
    }
    let next = safe_next(p.next.as_deref());
    page(None, "Sign in", "", signin_form(&next, None))
}

async fn signin(Extension(c): Extension<Console>, body: Bytes) -> Response {
    if !c.auth.enabled() {
        return see_other("/");
    }
    let form = match Form::parse(&body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let next = safe_next(form.get("next"));
    let token = form.get("token").unwrap_or("").trim();
    let Some(t) = (!token.is_empty()).then(|| c.auth.lookup(token)).flatten() else {
        let mut r = page(
            None,
            "Sign in",
            "",
            signin_form(&next, Some("That token is not one sift knows.")),
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let name = t
        .name
        .clone()
        .unwrap_or_else(|| t.role.as_str().to_string());
    let id = c.sessions.open(name, t.role, Instant::now());
    let mut r = see_other(&next);
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn signout(Extension(c): Extension<Console>, v: Viewer, body: Bytes) -> Response {
    if let Err(r) = checked_form(&v, &body, Role::Viewer) {
        return *r;
    }
    if let Some(id) = &v.session {
        c.sessions.close(id);
    }
    let mut r = see_other("/signin");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sift_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

/// The API's event stream for a signed-in browser (EventSource sends the cookie, not a
/// bearer token).
async fn events(_: Viewer, st: State<AppState>) -> Response {
    crate::api::events::stream(st).await
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A relative time for people: `in 12 min`, `3 h ago`.
pub(crate) fn ago(t: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let s = (now - t).num_seconds();
    let (n, past) = (s.unsigned_abs(), s >= 0);
    let text = match n {
        0..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=172_799 => format!("{} h {} min", n / 3600, (n % 3600) / 60),
        _ => format!("{} d", n / 86_400),
    };
    if past {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

/// A timestamp as the console shows it (UTC, to the second).
pub(crate) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_expires_and_is_forgotten() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.open("alice".into(), Role::Operator, t0);
        assert!(s.get(&id, t0 + Duration::from_secs(60)).is_some());
        assert!(
            s.get(&id, t0 + SESSION_TTL + Duration::from_secs(1))
                .is_none()
        );
        assert!(s.get(&id, t0).is_none(), "an expired session is removed");
        assert!(s.get("not-a-session", t0).is_none());
    }

    #[test]
    fn sign_in_only_returns_to_this_site() {
        assert_eq!(
            safe_next(Some("/incidents/INC0000001")),
            "/incidents/INC0000001"
        );
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn tokens_are_long_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
