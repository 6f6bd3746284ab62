//! The problem manager's page: candidates ranked by score, each with its incidents,
//! signature, recurrence (weekday and hour histograms), score and why; accept / reject
//! through `api::problems::decide`, as the API's PATCH does.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{Viewer, api_error, checked_form, encode, error_page, page, see_other, when};
use crate::api::AppState;
use crate::config::Role;
use crate::problem::{ProblemCandidate, ProblemStatus};

/// Incidents listed per problem (the rest counted).
const INCIDENTS_SHOWN: usize = 20;

/// Small vertical bars: one per value, with its label under it and the count as a title.
fn bars(values: &[u32], labels: &[&str], what: &str) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let (bw, h) = (14i64, 40i64);
    let width = values.len() as i64 * (bw + 2);
    html! {
        svg.bars xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (h + 12) } width=(width) height=(h + 12) role="img" aria-label=(what) {
            @for (i, (&v, l)) in values.iter().zip(labels).enumerate() {
                @let bh = (v as i64 * h) / max as i64;
                g {
                    title { (l) ": " (v) }
                    rect x=(i as i64 * (bw + 2)) y=(h - bh) width=(bw) height=(bh.max(1)) {}
                    text x=(i as i64 * (bw + 2) + bw / 2) y=(h + 10) text-anchor="middle" { (l) }
                }
            }
        }
    }
}

fn problem_card(v: &Viewer, p: &ProblemCandidate, rank: usize) -> Markup {
    const DAYS: [&str; 7] = ["M", "T", "W", "T", "F", "S", "S"];
    let hours: Vec<String> = (0..24)
        .map(|h| {
            if h % 6 == 0 {
                h.to_string()
            } else {
                String::new()
            }
        })
        .collect();
    let hour_labels: Vec<&str> = hours.iter().map(String::as_str).collect();
    let r = &p.recurrence;
    html! {
        article.problem data-id=(p.id) {
            h2 { (rank) ". " (p.id) ": " (p.title) " " span class={ "badge problem-" (p.status.as_str()) } { (p.status.as_str()) } }
            dl.facts {
                dt { "Score" } dd { (format!("{:.2}", p.score)) " (q-value " (format!("{:.3}", p.q_value)) ")" }
                dt { "Signature" } dd { code { (p.suggested_root_cause.signature) } }
                dt { "Suggested root" } dd {
                    @match p.suggested_root_cause.ci_id.as_deref() {
                        Some(c) => a href={ "/cmdb/" (encode(c)) } { (c) },
                        None => "none",
                    }
                    " (confidence " (format!("{:.0}%", p.suggested_root_cause.confidence * 100.0)) ")"
                }
                dt { "Recurrence" } dd { (r.count) " incidents, " (r.pattern) ", " (when(r.first_seen)) " – " (when(r.last_seen)) }
                dt { "Hours lost" } dd { (format!("{:.1}", p.hours_lost)) }
                dt { "Incidents" } dd {
                    @for (i, id) in p.incident_ids.iter().take(INCIDENTS_SHOWN).enumerate() {
                        @if i > 0 { ", " }
                        a href={ "/incidents/" (encode(id)) } { (id) }
                    }
                    @if p.incident_ids.len() > INCIDENTS_SHOWN { " and " (p.incident_ids.len() - INCIDENTS_SHOWN) " more" }
                }
            }
            div.histograms {
                figure { (bars(&r.weekdays, &DAYS, "Incidents per weekday, Monday first")) figcaption { "By weekday (UTC)" } }
                figure { (bars(&r.hours, &hour_labels, "Incidents per hour of day, UTC")) figcaption { "By hour (UTC)" } }
            }
            @if let Some(x) = &p.explanation {
                details open {
                    summary { "Why" }
                    p { (p.observed) " incidents where " (format!("{:.1}", p.expected)) " would be expected by chance in scope " code { (x.scope) }
                        " (" (x.scope_incidents) " incidents), p = " (format!("{:.2e}", p.p_value)) "." }
                    @if !x.shared_signature.is_empty() { p { "Shared: " (x.shared_signature.join(", ")) } }
                    @if x.rejected_before { p { "A similar candidate was rejected before; this one had to be more significant." } }
                }
            }
            @if v.can_operate() {
                div.row {
                    @for (to, label) in [(ProblemStatus::Accepted, "Accept"), (ProblemStatus::Rejected, "Reject")] {
                        @if p.status != to {
                            form.inline method="post" action={ "/problems/" (encode(&p.id)) "/decide" } {
                                input type="hidden" name="csrf" value=(v.csrf);
                                input type="hidden" name="status" value=(to.as_str());
                                button type="submit" { (label) " " (p.id) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn list(v: Viewer, State(st): State<AppState>) -> Response {
    let mut all = match st.store.list_problems(None).await {
        Ok(p) => p,
        Err(e) => return api_error(&v, e.into()),
    };
    // Open candidates first, each group by score.
    all.sort_by(|a, b| {
        (a.status != ProblemStatus::Candidate)
            .cmp(&(b.status != ProblemStatus::Candidate))
            .then(b.score.total_cmp(&a.score))
    });
    let body = html! {
        h1 { "Problems" }
        @if all.is_empty() {
            p.empty { "No problem candidates yet: they come from imported history and finished incidents when sift reclusters." }
        }
        @for (i, p) in all.iter().enumerate() { (problem_card(&v, p, i + 1)) }
    };
    page(Some(&v), "Problems", "problems", body)
}

pub async fn decide(
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
    let Some(status) = ProblemStatus::parse(s) else {
        return error_page(
            Some(&v),
            StatusCode::BAD_REQUEST,
            &format!("status must be accepted or rejected, not {s:?}"),
        );
    };
    match crate::api::problems::decide(&st, &id, status).await {
        Ok(_) => see_other("/problems"),
        Err(e) => api_error(&v, e),
    }
}
