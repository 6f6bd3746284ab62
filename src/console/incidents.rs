//! Incident pages: the filtered, paged list and the detail page, and the actions on an
//! incident (status, assignment, comment, resolution note, merge, split), each a form post
//! that calls the pipeline exactly as the API's handlers do.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{Viewer, ago, api_error, checked_form, encode, error_page, page, see_other, when};
use crate::alert::Fingerprint;
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::config::Role;
use crate::correlate::{AlertRecord, IncidentPatch};
use crate::incident::{Incident, IncidentStatus, TimelineEntry, TimelineKind, incident_number};
use crate::pipeline::Edit;
use crate::store::{AlertQuery, IncidentQuery};

/// Incidents per page of the list.
pub const PAGE: usize = 50;
/// Alerts per page of the detail page.
const ALERTS_PAGE: u32 = 100;
/// Timeline entries shown (newest first).
const TIMELINE_SHOWN: usize = 200;
/// Most incidents read to fill one page when filtering on what the store cannot
/// (service, group, text): past it the page says so and offers the next stretch.
const MAX_SCAN: usize = 20_000;
const SCAN_BATCH: u32 = 500;

#[derive(Deserialize, Default)]
pub struct ListParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    ci: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    cursor: String,
}

impl ListParams {
    /// The query string of these filters (without the cursor).
    fn query(&self) -> String {
        let pairs = [
            ("status", &self.status),
            ("priority", &self.priority),
            ("ci", &self.ci),
            ("service", &self.service),
            ("group", &self.group),
            ("q", &self.q),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn matches(&self, inc: &Incident) -> bool {
        if !self.service.is_empty() && !inc.impacted_services.contains(&self.service) {
            return false;
        }
        if !self.group.is_empty() && inc.assignment_group.as_deref() != Some(self.group.as_str()) {
            return false;
        }
        if !self.q.is_empty() {
            let q = self.q.to_lowercase();
            let hit = inc.id.to_lowercase().contains(&q)
                || inc.title.to_lowercase().contains(&q)
                || inc.ci_ids.iter().any(|c| c.to_lowercase().contains(&q))
                || inc
                    .root_cause_ci
                    .as_deref()
                    .is_some_and(|c| c.to_lowercase().contains(&q));
            if !hit {
                return false;
            }
        }
        true
    }
}

/// One page of the list: the incidents, where the next page starts, and whether the scan
/// stopped at `MAX_SCAN` before the page filled.
pub struct ListPage {
    pub incidents: Vec<Incident>,
    pub next: Option<String>,
    pub scan_capped: bool,
}

/// Reads one page: store filters go to the store; service, group and text are checked
/// here over store pages until the page is full.
pub async fn fetch(st: &AppState, p: &ListParams) -> Result<ListPage, ApiError> {
    let status = (!p.status.is_empty())
        .then(|| {
            IncidentStatus::parse(&p.status).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "status must be open, acknowledged, resolved or closed, not {:?}",
                    p.status
                ))
            })
        })
        .transpose()?;
    let priority = (!p.priority.is_empty())
        .then(|| match p.priority.parse::<u8>() {
            Ok(n @ 1..=5) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "priority must be 1..5, not {:?}",
                p.priority
            ))),
        })
        .transpose()?;
    let before_number = (!p.cursor.is_empty())
        .then(|| {
            incident_number(&p.cursor)
                .ok_or_else(|| ApiError::bad_request(format!("invalid cursor {:?}", p.cursor)))
        })
        .transpose()?;
    let mut q = IncidentQuery {
        status,
        priority,
        ci: (!p.ci.is_empty()).then(|| p.ci.clone()),
        before_number,
        limit: PAGE as u32,
    };
    let filtered = !(p.service.is_empty() && p.group.is_empty() && p.q.is_empty());
    if !filtered {
        let incidents = st.store.list_incidents(&q).await?;
        let next = (incidents.len() == PAGE)
            .then(|| incidents.last().map(|i| i.id.clone()))
            .flatten();
        return Ok(ListPage {
            incidents,
            next,
            scan_capped: false,
        });
    }
    q.limit = SCAN_BATCH;
    let (mut out, mut scanned) = (Vec::new(), 0usize);
    loop {
        let batch = st.store.list_incidents(&q).await?;
        let full = batch.len() == SCAN_BATCH as usize;
        let last = batch.last().map(|i| (i.id.clone(), i.number()));
        scanned += batch.len();
        for inc in batch {
            if p.matches(&inc) {
                let id = inc.id.clone();
                out.push(inc);
                if out.len() == PAGE {
                    return Ok(ListPage {
                        incidents: out,
                        next: Some(id),
                        scan_capped: false,
                    });
                }
            }
        }
        let Some((last_id, last_n)) = last.filter(|_| full) else {
            return Ok(ListPage {
                incidents: out,
                next: None,
                scan_capped: false,
            });
        };
        if scanned >= MAX_SCAN {
            return Ok(ListPage {
                incidents: out,
                next: Some(last_id),
                scan_capped: true,
            });
        }
        q.before_number = Some(last_n);
    }
}

fn status_badge(s: IncidentStatus) -> Markup {
    html! { span class={ "badge status-" (s.as_str()) } { (s.as_str()) } }
}

fn priority_badge(p: u8) -> Markup {
    html! { span class={ "badge p" (p) } { "P" (p) } }
}

pub async fn list(v: Viewer, State(st): State<AppState>, Query(p): Query<ListParams>) -> Response {
    let lp = match fetch(&st, &p).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, e),
    };
    let now = Utc::now();
    let filters = p.query();
    let body = html! {
        h1 { "Incidents" }
        form.filters method="get" action="/" role="search" {
            label { "Status "
                select name="status" {
                    option value="" selected[p.status.is_empty()] { "any" }
                    @for s in ["open", "acknowledged", "resolved", "closed"] {
                        option value=(s) selected[p.status == s] { (s) }
                    }
                }
            }
            label { "Priority "
                select name="priority" {
                    option value="" selected[p.priority.is_empty()] { "any" }
                    @for n in 1..=5u8 {
                        option value=(n) selected[p.priority == n.to_string()] { "P" (n) }
                    }
                }
            }
            label { "CI " input type="text" name="ci" value=(p.ci) size="12"; }
            label { "Service " input type="text" name="service" value=(p.service) size="12"; }
            label { "Assignment group " input type="text" name="group" value=(p.group) size="12"; }
            label { "Text " input type="search" name="q" value=(p.q) size="16"; }
            button type="submit" { "Filter" }
            @if !filters.is_empty() { " " a href="/" { "Clear" } }
        }
        div #incidents data-refresh="1" {
            @if lp.incidents.is_empty() {
                p.empty { "No incidents match." }
            } @else {
                table.list {
                    caption.sr { "Incidents, newest first" }
                    thead { tr {
                        th scope="col" { "Incident" } th scope="col" { "Priority" }
                        th scope="col" { "Status" } th scope="col" { "Title" }
                        th scope="col" { "Root CI" } th scope="col" { "Alerts" }
                        th scope="col" { "Group" } th scope="col" { "Opened" }
                    } }
                    tbody {
                        @for inc in &lp.incidents {
                            tr data-id=(inc.id) {
                                td { a href={ "/incidents/" (inc.id) } { (inc.id) } }
                                td { (priority_badge(inc.priority)) }
                                td { (status_badge(inc.status)) }
                                td { (inc.title) }
                                td { (inc.root_cause_ci.as_deref().unwrap_or("–")) }
                                td.num { (inc.alert_count) }
                                td { (inc.assignment_group.as_deref().unwrap_or("–")) }
                                td { time datetime=(inc.opened_at.to_rfc3339()) title=(when(inc.opened_at)) { (ago(inc.opened_at, now)) } }
                            }
                        }
                    }
                }
            }
            @if lp.scan_capped {
                p.hint { "Searched " (MAX_SCAN) " incidents without filling the page; continue to search older ones." }
            }
            nav.pager aria-label="Pages" {
                @if !p.cursor.is_empty() {
                    a href={ "/?" (filters) } { "Newest" }
                }
                @if let Some(n) = &lp.next {
                    a rel="next" href={ "/?" (filters) @if !filters.is_empty() { "&" } "cursor=" (encode(n)) } { "Older" }
                }
            }
        }
    };
    page(Some(&v), "Incidents", "incidents", body)
}

#[derive(Deserialize, Default)]
pub struct DetailParams {
    #[serde(default)]
    alerts: String,
}

/// Why each CI is in the incident: the reason of the first alert on it that joined.
fn reasons_by_ci(timeline: &[TimelineEntry], alerts: &[AlertRecord]) -> HashMap<String, Value> {
    let ci_of: HashMap<&str, &str> = alerts
        .iter()
        .filter_map(|a| Some((a.fingerprint.0.as_str(), a.ci_id.as_deref()?)))
        .collect();
    let mut out = HashMap::new();
    for e in timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::AlertJoined)
    {
        let d = e.detail.to_json();
        let (Some(fp), Some(reason)) = (d["fingerprint"].as_str(), d.get("reason")) else {
            continue;
        };
        // The path's first CI is the alert's own; else the alert page tells.
        let ci = reason["path"][0]
            .as_str()
            .or_else(|| ci_of.get(fp).copied())
            .map(String::from);
        if let Some(ci) = ci {
            out.entry(ci).or_insert_with(|| reason.clone());
        }
    }
    out
}

pub async fn detail(
    v: Viewer,
    State(st): State<AppState>,
    Path(id): Path<String>,
    Query(dp): Query<DetailParams>,
) -> Response {
    match detail_page(&v, &st, &id, &dp).await {
        Ok(r) => r,
        Err(e) => api_error(&v, e),
    }
}

async fn detail_page(
    v: &Viewer,
    st: &AppState,
    id: &str,
    dp: &DetailParams,
) -> Result<Response, ApiError> {
    let inc = st
        .store
        .get_incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("incident {id} not found")))?;
    let before = (!dp.alerts.is_empty())
        .then(|| {
            dp.alerts
                .split_once('.')
                .and_then(|(t, o)| Some((t.parse::<i64>().ok()?, o.parse::<i64>().ok()?)))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("invalid alerts cursor {:?}", dp.alerts))
                })
        })
        .transpose()?;
    let alert_page = st
        .store
        .list_alerts(&AlertQuery {
            incident: Some(id.to_string()),
            before,
            limit: ALERTS_PAGE,
            ..Default::default()
        })
        .await?;
    let next_alerts = match (alert_page.alerts.last(), alert_page.last_order) {
        (Some(a), Some(o)) if alert_page.alerts.len() == ALERTS_PAGE as usize => {
            Some(format!("{}.{o}", a.starts_at.timestamp_millis()))
        }
        _ => None,
    };
    let alerts = alert_page.alerts;
    let timeline = st.store.timeline(id).await?;
    let reasons = reasons_by_ci(&timeline, &alerts);
    let graph = {
        let topo = st
            .pipeline
            .topology()
            .read()
            .unwrap_or_else(|p| p.into_inner());
        super::graph::evidence(&inc, &reasons, &topo)
    };
    let now = Utc::now();
    let root = inc.root_cause_ci.as_deref();
    let act = v.can_operate();
    let active = inc.status.is_active();
    let base = format!("/incidents/{}", inc.id);
    let e = &inc.enrichment;
    let body = html! {
        div #incident data-id=(inc.id) {
        p.crumbs { a href="/" { "Incidents" } " › " (inc.id) }
        h1 { (inc.id) ": " (inc.title) }
        dl.facts {
            dt { "Status" } dd { (status_badge(inc.status)) }
            dt { "Priority" } dd { (priority_badge(inc.priority)) " (impact " (inc.impact) ", urgency " (inc.urgency) ")" }
            dt { "Root CI" } dd {
                @if let Some(r) = root { a href={ "/cmdb/" (encode(r)) } { (r) } } @else { "none identified" }
                @if let Some(rc) = &inc.root_cause {
                    " — " @if rc.alerting { "alerting" } @else { "suspected (silent)" }
                    ", confidence " (format!("{:.0}%", rc.confidence * 100.0)) ": " (rc.reason)
                }
            }
            dt { "Services" } dd { @if inc.impacted_services.is_empty() { "–" } @else { (inc.impacted_services.join(", ")) } }
            dt { "Assignment" } dd { (inc.assignment_group.as_deref().unwrap_or("no group")) " / " (inc.assignee.as_deref().unwrap_or("unassigned")) }
            dt { "Opened" } dd { (when(inc.opened_at)) " (" (ago(inc.opened_at, now)) ")" }
            @if let Some(t) = inc.acknowledged_at { dt { "Acknowledged" } dd { (when(t)) } }
            @if let Some(t) = inc.resolved_at { dt { "Resolved" } dd { (when(t)) } }
            @if let Some(t) = inc.closed_at { dt { "Closed" } dd { (when(t)) } }
            @if let Some(sla) = &inc.sla {
                dt { "Respond by" } dd.sla.breached[sla.respond_breached] {
                    (when(sla.respond_by)) " (" (ago(sla.respond_by, now)) ")"
                    @if sla.respond_breached { " — breached" }
                    @else if inc.acknowledged_at.is_some() { " — met" }
                }
                dt { "Resolve by" } dd.sla.breached[sla.resolve_breached] {
                    (when(sla.resolve_by)) " (" (ago(sla.resolve_by, now)) ")"
                    @if sla.resolve_breached { " — breached" }
                    @else if inc.resolved_at.is_some() { " — met" }
                }
            }
            @if let Some(m) = e.get("merged_into").and_then(|m| m.as_str()) {
                dt { "Merged into" } dd { a href={ "/incidents/" (encode(m)) } { (m) } }
            }
            @if let Some(n) = &inc.resolution_note { dt { "Resolution note" } dd { (n) } }
        }
        @if act {
            section.actions aria-labelledby="actions-h" {
                h2 #actions-h { "Actions" }
                div.row {
                    @for (to, label) in [(IncidentStatus::Acknowledged, "Acknowledge"), (IncidentStatus::Resolved, "Resolve"), (IncidentStatus::Closed, "Close"), (IncidentStatus::Open, "Reopen")] {
                        @if inc.status.can_move_to(to) && inc.status != to {
                            form.inline method="post" action={ (base) "/status" } {
                                input type="hidden" name="csrf" value=(v.csrf);
                                input type="hidden" name="status" value=(to.as_str());
                                button type="submit" name="do" value=(to.as_str()) { (label) }
                            }
                        }
                    }
                }
                form.row method="post" action={ (base) "/assign" } {
                    input type="hidden" name="csrf" value=(v.csrf);
                    label { "Assignee " input type="text" name="assignee" value=(inc.assignee.as_deref().unwrap_or("")); }
                    button type="submit" { "Assign" }
                }
                form.row method="post" action={ (base) "/comment" } {
                    input type="hidden" name="csrf" value=(v.csrf);
                    label { "Comment " textarea name="comment" rows="2" cols="40" required {} }
                    button type="submit" { "Add comment" }
                }
                form.row method="post" action={ (base) "/note" } {
                    input type="hidden" name="csrf" value=(v.csrf);
                    label { "Resolution note " textarea name="resolution_note" rows="2" cols="40" required { (inc.resolution_note.as_deref().unwrap_or("")) } }
                    button type="submit" { "Save note" }
                }
                @if active {
                    form.row method="post" action={ (base) "/merge" } {
                        input type="hidden" name="csrf" value=(v.csrf);
                        label { "Merge into incident " input type="text" name="into" placeholder="INC0000042" pattern="INC[0-9]+" required; }
                        button type="submit" { "Merge" }
                    }
                }
            }
        }
        section aria-labelledby="graph-h" {
            h2 #graph-h { "Evidence" }
            (graph)
        }
        section aria-labelledby="alerts-h" {
            h2 #alerts-h { "Alerts (" (inc.alert_count) ")" }
            @let table = alerts_table(&alerts, root, act && active);
            @if act && active {
                form method="post" action={ (base) "/split" } {
                    input type="hidden" name="csrf" value=(v.csrf);
                    (table)
                    button type="submit" { "Split the checked alerts into a new incident" }
                }
            } @else { (table) }
            nav.pager aria-label="Alert pages" {
                @if !dp.alerts.is_empty() { a href=(base) { "Newest alerts" } }
                @if let Some(n) = &next_alerts { a rel="next" href={ (base) "?alerts=" (encode(n)) } { "Older alerts" } }
            }
        }
        section aria-labelledby="enrich-h" {
            h2 #enrich-h { "Enrichment" }
            h3 { "Recent changes" }
            @match e.get("recent_changes").and_then(|c| c.as_array()).filter(|c| !c.is_empty()) {
                Some(cs) => ul { @for c in cs {
                    li { (text(&c["id"])) " on " (text(&c["ci_id"])) ": " (text(&c["summary"]))
                        " (" (text(&c["start"])) " – " (text(&c["end"])) ")"
                        @if c["overlaps_start"] == true { strong { " — under way when this began" } } }
                } },
                None => p { "None found." },
            }
            h3 { "Runbooks" }
            @match e.get("runbooks").and_then(|c| c.as_array()).filter(|c| !c.is_empty()) {
                Some(rs) => ul { @for r in rs { @let t = text(r); li {
                    @if t.starts_with("https://") || t.starts_with("http://") { a href=(t) rel="noopener noreferrer" { (t) } } @else { (t) }
                } } },
                None => p { "None." },
            }
            h3 { "Similar past incidents" }
            @match e.get("similar_incidents").and_then(|c| c.as_array()).filter(|c| !c.is_empty()) {
                Some(ss) => ul { @for s in ss { li {
                    a href={ "/incidents/" (encode(&text(&s["id"]))) } { (text(&s["id"])) } ": " (text(&s["title"]))
                    @if s["same_signature"] == true { " (same signature)" }
                    @if let Some(n) = s["resolution_note"].as_str() { br; span.note { "Resolution: " (n) } }
                } } },
                None => p { "None." },
            }
        }
        section aria-labelledby="timeline-h" {
            h2 #timeline-h { "Timeline" }
            @if timeline.len() > TIMELINE_SHOWN { p.hint { "The newest " (TIMELINE_SHOWN) " of " (timeline.len()) " entries." } }
            ol.timeline reversed {
                @for t in timeline.iter().rev().take(TIMELINE_SHOWN) {
                    li { time datetime=(t.at.to_rfc3339()) { (when(t.at)) } " " strong { (t.kind.as_str()) } " by " (t.actor.as_str())
                        @let d = t.detail.to_json();
                        @if !d.is_null() { " " code { (d.to_string()) } } }
                }
            }
        }
        }
    };
    Ok(page(Some(v), &inc.id, "incident", body))
}

/// A JSON value as text (strings without quotes).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        other => other.to_string(),
    }
}

fn alerts_table(alerts: &[AlertRecord], root: Option<&str>, pick: bool) -> Markup {
    html! {
        @if alerts.is_empty() { p.empty { "No alerts." } } @else {
        table.list.alerts {
            thead { tr {
                @if pick { th scope="col" { span.sr { "Split out" } } }
                th scope="col" { "Alert" } th scope="col" { "CI" } th scope="col" { "Role" }
                th scope="col" { "Severity" } th scope="col" { "Status" } th scope="col" { "Started" }
                th scope="col" { "Labels" }
            } }
            tbody {
                @for a in alerts {
                    @let is_root = root.is_some() && a.ci_id.as_deref() == root;
                    tr.symptom[!is_root] data-fp=(a.fingerprint.0) {
                        @if pick { td { input type="checkbox" name="alert" value=(a.fingerprint.0) id={ "pick-" (a.fingerprint.0) } aria-label={ "split out " (a.alertname()) " on " (a.ci_id.as_deref().unwrap_or("no CI")) }; } }
                        td { (a.alertname())
                            @if let Some(s) = a.annotations.get("summary") { br; span.note { (s) } } }
                        td { @match a.ci_id.as_deref() { Some(c) => a href={ "/cmdb/" (encode(c)) } { (c) }, None => "–" } }
                        td { @if is_root { strong { "root" } } @else { "symptom" }
                             @if a.suppressed { " (suppressed)" } @if a.flapping { " (flapping)" } }
                        td { (a.severity().as_str()) }
                        td { (a.status.as_str()) }
                        td { (when(a.starts_at)) }
                        td.labels { @for (k, val) in a.labels.iter() { code { (k) "=" (val) } " " } }
                    }
                }
            }
        }
        }
    }
}

async fn apply_patch(v: Viewer, st: &AppState, id: String, patch: IncidentPatch) -> Response {
    let back = format!("/incidents/{}", encode(&id));
    match st
        .pipeline
        .patch(id, patch, v.name.clone(), Utc::now())
        .await
    {
        Ok(_) => see_other(&back),
        Err(e) => api_error(&v, e.into()),
    }
}

pub async fn set_status(
    v: Viewer,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match checked_form(&v, &body, Role::Operator) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let s = form.get("status").unwrap_or("");
    let Some(status) = IncidentStatus::parse(s) else {
        return error_page(
            Some(&v),
            StatusCode::BAD_REQUEST,
            &format!("status must be open, acknowledged, resolved or closed, not {s:?}"),
        );
    };
    let patch = IncidentPatch {
        status: Some(status),
        ..Default::default()
    };
    apply_patch(v, &st, id, patch).await
}

pub async fn assign(
    v: Viewer,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match checked_form(&v, &body, Role::Operator) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    // An empty assignee clears it, as `null` does in the API.
    let who = form
        .get("assignee")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from);
    let patch = IncidentPatch {
        assignee: Some(who),
        ..Default::default()
    };
    apply_patch(v, &st, id, patch).await
}

fn required(v: &Viewer, form: &super::Form, field: &str) -> Result<String, super::Refused> {
    match form.get(field).map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Ok(s.to_string()),
        None => Err(Box::new(error_page(
            Some(v),
            StatusCode::BAD_REQUEST,
            &format!("{field} is empty"),
        ))),
    }
}

pub async fn comment(
    v: Viewer,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    one_field(v, &st, id, &body, "comment", |c| IncidentPatch {
        comment: Some(c),
        ..Default::default()
    })
    .await
}

pub async fn note(
    v: Viewer,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    one_field(v, &st, id, &body, "resolution_note", |n| IncidentPatch {
        resolution_note: Some(n),
        ..Default::default()
    })
    .await
}

/// A form of one required text `field` that becomes an incident patch.
async fn one_field(
    v: Viewer,
    st: &AppState,
    id: String,
    body: &Bytes,
    field: &str,
    patch: fn(String) -> IncidentPatch,
) -> Response {
    match checked_form(&v, body, Role::Operator).and_then(|f| required(&v, &f, field)) {
        Ok(x) => apply_patch(v, st, id, patch(x)).await,
        Err(r) => *r,
    }
}

pub async fn merge(
    v: Viewer,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let into = match checked_form(&v, &body, Role::Operator).and_then(|f| required(&v, &f, "into"))
    {
        Ok(i) => i,
        Err(r) => return *r,
    };
    if incident_number(&into).is_none() {
        return error_page(
            Some(&v),
            StatusCode::BAD_REQUEST,
            &format!("into must be an incident id like INC0000042, not {into:?}"),
        );
    }
    let edit = Edit::Merge {
        from: id,
        into: into.clone(),
    };
    match st.pipeline.edit(edit, v.name.clone(), Utc::now()).await {
        Ok(_) => see_other(&format!("/incidents/{}", encode(&into))),
        Err(e) => api_error(&v, e.into()),
    }
}

pub async fn split(
    v: Viewer,
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form = match checked_form(&v, &body, Role::Operator) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let picked = form.all("alert");
    if picked.is_empty() {
        return error_page(
            Some(&v),
            StatusCode::BAD_REQUEST,
            "no alerts checked: check the alerts to split out",
        );
    }
    let alerts = picked.into_iter().map(|f| Fingerprint(f.into())).collect();
    let edit = Edit::Split {
        id: id.clone(),
        alerts,
    };
    match st.pipeline.edit(edit, v.name.clone(), Utc::now()).await {
        Ok(done) => see_other(&format!("/incidents/{}", encode(&done.other.id))),
        Err(e) => api_error(&v, e.into()),
    }
}
