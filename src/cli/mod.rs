//! The operator's side of the `sift` command line: the command tree (`args`), the online
//! commands here, which ask a running daemon over its HTTP API, as `amtool` does for
//! Alertmanager, and the offline ones (`offline`), which work on the store and files.
//!
//! An online command is one request (two for `cmdb show --impact`) and prints the answer
//! as a table, or as the daemon sent it with `--json`. Failures say what went wrong and
//! what to do, and map to exit codes a script can test (`CliError::exit_code`). The online
//! commands never open the store nor read the daemon's configuration: what they know
//! comes from the API, so they see exactly what the daemon serves.

pub mod args;
pub mod offline;
mod render;

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::config::Role;
use args::{
    AlertStatusArg, AlertsCmd, CmdbOnline, IncidentStatusArg, IncidentsOnline, ProblemStatusArg,
    ProblemsOnline, Remote,
};

/// Exit codes of online commands (clap's usage errors exit 2, anything else 1).
pub mod exit {
    /// The daemon could not be reached (nothing listening, DNS, timeout).
    pub const UNREACHABLE: i32 = 3;
    /// 401 or 403: no token, a wrong one, or a role too low.
    pub const AUTH: i32 = 4;
    /// 404: no such incident, problem or CI.
    pub const NOT_FOUND: i32 = 5;
    /// 409: the change is not allowed in the object's current state.
    pub const CONFLICT: i32 = 6;
    /// Any other refusal or failure.
    pub const OTHER: i32 = 1;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "cannot reach the sift daemon at {url}: {reason} (is `sift serve` running there? set --url or SIFT_URL)"
    )]
    Unreachable { url: String, reason: String },
    /// The daemon answered with an error status.
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    /// Bad local input: the URL, the token file.
    #[error("{0}")]
    Local(String),
    #[error("cannot write the answer: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Unreachable { .. } => exit::UNREACHABLE,
            CliError::Api { status, .. } => match *status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => exit::AUTH,
                StatusCode::NOT_FOUND => exit::NOT_FOUND,
                StatusCode::CONFLICT => exit::CONFLICT,
                _ => exit::OTHER,
            },
            CliError::Local(_) | CliError::Output(_) => exit::OTHER,
        }
    }
}

/// An HTTP client for one daemon, with the caller's token.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// One request: what it asks and the role the daemon wants for it (named when refused).
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
    role: Role,
}

impl<'a> Call<'a> {
    fn get(path: &'a [&'a str], role: Role) -> Self {
        Call {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            role,
        }
    }
    fn patch(path: &'a [&'a str], body: Value) -> Self {
        Call {
            method: Method::PATCH,
            path,
            query: Vec::new(),
            body: Some(body),
            role: Role::Operator,
        }
    }
    fn query(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(v) = value {
            self.query.push((key, v.to_string()));
        }
        self
    }
}

impl Client {
    /// The token comes from `--token-file`, else from SIFT_TOKEN; without either none is
    /// sent (a daemon without `auth.tokens` needs none).
    pub fn new(remote: &Remote) -> Result<Self, CliError> {
        let token = match &remote.token_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    CliError::Local(format!("cannot read the token file {}: {e}", p.display()))
                })?;
                let t = text.trim();
                if t.is_empty() {
                    return Err(CliError::Local(format!(
                        "the token file {} is empty",
                        p.display()
                    )));
                }
                Some(t.to_string())
            }
            None => std::env::var("SIFT_TOKEN")
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        };
        Self::with_token(&remote.url, token)
    }

    pub fn with_token(url: &str, token: Option<String>) -> Result<Self, CliError> {
        let base = base_url(url)?;
        // https daemons: reqwest is built without a default TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Local(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client { http, base, token })
    }

    async fn send(&self, call: Call<'_>) -> Result<String, CliError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| CliError::Local(format!("--url {} cannot take a path", self.base)))?
            .pop_if_empty()
            .extend(call.path);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        let mut rb = self.http.request(call.method, url.clone());
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = &call.body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| CliError::Unreachable {
            url: self.base.to_string(),
            reason: reason(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| CliError::Unreachable {
            url: self.base.to_string(),
            reason: format!("the answer broke off: {}", reason(&e)),
        })?;
        if status.is_success() {
            return Ok(text);
        }
        Err(refusal(status, &text, call.role, self.token.is_some()))
    }

    async fn json(&self, call: Call<'_>) -> Result<(String, Value), CliError> {
        let text = self.send(call).await?;
        let v = serde_json::from_str(&text).map_err(|e| {
            CliError::Local(format!(
                "the daemon at {} answered something that is not JSON ({e}); is --url a sift daemon?",
                self.base
            ))
        })?;
        Ok((text, v))
    }
}

/// `--url` as a base URL: `host:port` alone is taken as http.
fn base_url(url: &str) -> Result<Url, CliError> {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let u = Url::parse(&with_scheme)
        .map_err(|e| CliError::Local(format!("--url {url:?} is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(CliError::Local(format!(
            "--url {url:?}: the scheme must be http or https"
        )));
    }
    if u.cannot_be_a_base() || u.host_str().is_none() {
        return Err(CliError::Local(format!("--url {url:?} names no host")));
    }
    Ok(u)
}

/// Why a request got no answer, in words: reqwest's outer message names the URL (said
/// already) and hides the cause, which is the innermost error.
fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    let text = inner.to_string();
    if e.is_connect() && !text.is_empty() {
        format!("cannot connect: {text}")
    } else {
        text
    }
}

/// The daemon's refusal as one message: its own `error` (and `detail`), with what to do.
fn refusal(status: StatusCode, text: &str, role: Role, sent_token: bool) -> CliError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let said = v
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| text.trim().chars().take(200).collect());
    let detail = match v.get("detail") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => format!(" ({s})"),
        Some(d) => format!(" ({d})"),
    };
    let need = match role {
        Role::Viewer => "a viewer",
        Role::Operator => "an operator",
        Role::Admin => "an admin",
    };
    let message = match status {
        StatusCode::UNAUTHORIZED if sent_token => format!(
            "the daemon refused the token (401: {said}): this command needs {need} token or higher"
        ),
        StatusCode::UNAUTHORIZED => format!(
            "the daemon wants a token (401: {said}): this command needs {need} token or higher; set SIFT_TOKEN or --token-file"
        ),
        StatusCode::FORBIDDEN => {
            format!("not allowed (403: {said}): this command needs {need} token or higher")
        }
        StatusCode::NOT_FOUND => format!("{said} (404)"),
        StatusCode::CONFLICT => format!("{said} (409)"),
        s => format!("the daemon answered {}: {said}{detail}", s.as_u16()),
    };
    CliError::Api { status, message }
}

/// What an online command prints: the daemon's answer as sent (`--json`) or rendered.
fn print(json: bool, raw: &str, table: impl FnOnce() -> String) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", raw.trim_end())?;
    } else {
        write!(out, "{}", table())?;
    }
    out.flush()?;
    Ok(())
}

/// `next_cursor` of a page, said on stderr so the table stays clean for pipes.
fn more(v: &Value, json: bool) {
    if let Some(c) = v.get("next_cursor").and_then(Value::as_str)
        && !json
    {
        eprintln!("more: --cursor {c}");
    }
}

pub async fn incidents(remote: &Remote, cmd: IncidentsOnline) -> Result<(), CliError> {
    let c = Client::new(remote)?;
    let j = remote.json;
    match cmd {
        IncidentsOnline::List(f) => {
            let call = Call::get(&["api", "v1", "incidents"], Role::Viewer)
                .query("status", f.status.map(incident_status))
                .query("priority", f.priority)
                .query("ci", f.ci)
                .query("limit", Some(f.limit))
                .query("cursor", f.cursor);
            let (raw, v) = c.json(call).await?;
            print(j, &raw, || render::incidents(&v))?;
            more(&v, j);
        }
        IncidentsOnline::Show { id } => {
            let (raw, v) = c
                .json(Call::get(&["api", "v1", "incidents", &id], Role::Viewer))
                .await?;
            print(j, &raw, || render::incident(&v))?;
        }
        IncidentsOnline::Ack {
            id,
            assignee,
            comment,
        } => {
            let body = patch_body([
                ("status", Some("acknowledged".to_string())),
                ("assignee", assignee),
                ("comment", comment),
            ]);
            let (raw, v) = c
                .json(Call::patch(&["api", "v1", "incidents", &id], body))
                .await?;
            print(j, &raw, || render::incident_line(&v))?;
        }
        IncidentsOnline::Resolve { id, note, comment } => {
            let body = patch_body([
                ("status", Some("resolved".to_string())),
                ("resolution_note", note),
                ("comment", comment),
            ]);
            let (raw, v) = c
                .json(Call::patch(&["api", "v1", "incidents", &id], body))
                .await?;
            print(j, &raw, || render::incident_line(&v))?;
        }
        IncidentsOnline::Comment { id, text } => {
            let body = patch_body([("comment", Some(text))]);
            let (raw, v) = c
                .json(Call::patch(&["api", "v1", "incidents", &id], body))
                .await?;
            print(j, &raw, || {
                format!("{}: comment added\n", render::s(&v, "id"))
            })?;
        }
    }
    Ok(())
}

/// An incident PATCH body of the fields given (absent ones left out).
fn patch_body<const N: usize>(fields: [(&str, Option<String>); N]) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), Value::String(v?))))
            .collect(),
    )
}

pub async fn alerts(remote: &Remote, cmd: AlertsCmd) -> Result<(), CliError> {
    let c = Client::new(remote)?;
    match cmd {
        AlertsCmd::List(f) => {
            let call = Call::get(&["api", "v1", "alerts"], Role::Viewer)
                .query("status", f.status.map(alert_status))
                .query("ci", f.ci)
                .query("incident", f.incident)
                .query("limit", Some(f.limit))
                .query("cursor", f.cursor);
            let (raw, v) = c.json(call).await?;
            print(remote.json, &raw, || render::alerts(&v))?;
            more(&v, remote.json);
        }
    }
    Ok(())
}

pub async fn problems(remote: &Remote, cmd: ProblemsOnline) -> Result<(), CliError> {
    let c = Client::new(remote)?;
    let j = remote.json;
    let decide = |id: &str, status: &str| (id.to_string(), json!({"status": status}));
    let (id, body) = match cmd {
        ProblemsOnline::List { status } => {
            let call = Call::get(&["api", "v1", "problems"], Role::Viewer)
                .query("status", status.map(problem_status));
            let (raw, v) = c.json(call).await?;
            return print(j, &raw, || render::problems(&v));
        }
        ProblemsOnline::Show { id } => {
            let (raw, v) = c
                .json(Call::get(&["api", "v1", "problems", &id], Role::Viewer))
                .await?;
            return print(j, &raw, || render::problem(&v));
        }
        ProblemsOnline::Accept { id } => decide(&id, "accepted"),
        ProblemsOnline::Reject { id } => decide(&id, "rejected"),
    };
    let (raw, v) = c
        .json(Call::patch(&["api", "v1", "problems", &id], body))
        .await?;
    print(j, &raw, || {
        format!("{}: {}\n", render::s(&v, "id"), render::s(&v, "status"))
    })
}

pub async fn cmdb(remote: &Remote, cmd: CmdbOnline) -> Result<(), CliError> {
    let c = Client::new(remote)?;
    let CmdbOnline::Show { ci, impact } = cmd;
    let (raw, v) = c
        .json(Call::get(&["api", "v1", "cmdb", "cis", &ci], Role::Viewer))
        .await?;
    if !impact {
        return print(remote.json, &raw, || render::ci(&v));
    }
    let (raw_impact, imp) = c
        .json(Call::get(
            &["api", "v1", "cmdb", "cis", &ci, "impact"],
            Role::Viewer,
        ))
        .await?;
    let both = format!(r#"{{"ci":{},"impact":{}}}"#, raw.trim(), raw_impact.trim());
    print(remote.json, &both, || {
        format!("{}\n{}", render::ci(&v), render::impact(&imp))
    })
}

fn incident_status(s: IncidentStatusArg) -> &'static str {
    match s {
        IncidentStatusArg::Open => "open",
        IncidentStatusArg::Acknowledged => "acknowledged",
        IncidentStatusArg::Resolved => "resolved",
        IncidentStatusArg::Closed => "closed",
    }
}

fn alert_status(s: AlertStatusArg) -> &'static str {
    match s {
        AlertStatusArg::Firing => "firing",
        AlertStatusArg::Resolved => "resolved",
    }
}

fn problem_status(s: ProblemStatusArg) -> &'static str {
    match s {
        ProblemStatusArg::Candidate => "candidate",
        ProblemStatusArg::Accepted => "accepted",
        ProblemStatusArg::Rejected => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_without_scheme_is_http_and_bad_urls_are_named() {
        assert_eq!(
            base_url("127.0.0.1:9400").unwrap().as_str(),
            "http://127.0.0.1:9400/"
        );
        assert_eq!(
            base_url("https://sift.example/prefix/").unwrap().as_str(),
            "https://sift.example/prefix/"
        );
        let e = base_url("ftp://x").unwrap_err().to_string();
        assert!(e.contains("http or https"), "{e}");
        let e = base_url("http://").unwrap_err().to_string();
        assert!(e.contains("--url"), "{e}");
    }

    #[test]
    fn refusals_name_the_role_and_map_to_exit_codes() {
        let body = r#"{"error":"role viewer may not do this; it needs operator","detail":null}"#;
        let e = refusal(StatusCode::FORBIDDEN, body, Role::Operator, true);
        assert_eq!(e.exit_code(), exit::AUTH);
        assert!(e.to_string().contains("needs an operator token"), "{e}");
        let e = refusal(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"missing or invalid credentials"}"#,
            Role::Viewer,
            false,
        );
        assert!(e.to_string().contains("SIFT_TOKEN"), "{e}");
        let e = refusal(
            StatusCode::NOT_FOUND,
            r#"{"error":"incident INC9 not found"}"#,
            Role::Viewer,
            false,
        );
        assert_eq!(e.exit_code(), exit::NOT_FOUND);
        assert_eq!(e.to_string(), "incident INC9 not found (404)");
        let e = refusal(
            StatusCode::CONFLICT,
            "{\"error\":\"x\"}",
            Role::Operator,
            true,
        );
        assert_eq!(e.exit_code(), exit::CONFLICT);
        let e = refusal(
            StatusCode::BAD_GATEWAY,
            "<html>proxy</html>",
            Role::Viewer,
            true,
        );
        assert_eq!(e.exit_code(), exit::OTHER);
        assert!(e.to_string().contains("502: <html>proxy</html>"), "{e}");
    }
}
