//! The noise page: alerts received against incidents opened per hour over the last day
//! (the compression sift is for), the noisiest alert names and CIs, and the alerts that
//! are suppressed or flapping now. Read from the store's newest alerts and incidents,
//! bounded (`MAX_ALERTS`, `MAX_INCIDENTS`): the page says when it saw only part.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use chrono::{Duration, DurationRound, Utc};
use maud::{Markup, html};

use super::{Viewer, api_error, encode, page, when};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::correlate::AlertRecord;
use crate::incident::Incident;
use crate::store::{AlertQuery, IncidentQuery};

const HOURS: i64 = 24;
const MAX_ALERTS: usize = 20_000;
const MAX_INCIDENTS: usize = 10_000;
const TOP: usize = 10;
const LISTED: usize = 50;

async fn recent_alerts(st: &AppState, since_ms: i64) -> Result<(Vec<AlertRecord>, bool), ApiError> {
    let mut out = Vec::new();
    let mut q = AlertQuery {
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = st.store.list_alerts(&q).await?;
        let n = page.alerts.len();
        let last = page
            .alerts
            .last()
            .map(|a| a.starts_at.timestamp_millis())
            .zip(page.last_order);
        out.extend(page.alerts);
        match last {
            Some((t, o)) if n == 1000 && t >= since_ms => {
                if out.len() >= MAX_ALERTS {
                    return Ok((out, true));
                }
                q.before = Some((t, o));
            }
            _ => return Ok((out, false)),
        }
    }
}

async fn recent_incidents(
    st: &AppState,
    since: chrono::DateTime<Utc>,
) -> Result<(Vec<Incident>, bool), ApiError> {
    let mut out: Vec<Incident> = Vec::new();
    let mut q = IncidentQuery {
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = st.store.list_incidents(&q).await?;
        let n = page.len();
        let last = page.last().map(|i| (i.number(), i.opened_at));
        out.extend(page);
        match last {
            Some((num, at)) if n == 1000 && at >= since => {
                if out.len() >= MAX_INCIDENTS {
                    return Ok((out, true));
                }
                q.before_number = Some(num);
            }
            _ => return Ok((out, false)),
        }
    }
}

/// Two series of bars per hour: alerts (wide) and incidents (narrow, in front).
fn chart(alerts: &[u64], incidents: &[u64], start: chrono::DateTime<Utc>) -> Markup {
    let max = alerts
        .iter()
        .chain(incidents)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let (bw, h) = (24i64, 120i64);
    let width = alerts.len() as i64 * (bw + 4) + 30;
    html! {
        svg.noise xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (h + 16) } width=(width) height=(h + 16) role="img" aria-label="Alerts started and incidents opened per hour, last 24 hours" {
            @for (i, (&a, &n)) in alerts.iter().zip(incidents).enumerate() {
                @let x = 30 + i as i64 * (bw + 4);
                @let ah = (a as i64 * h) / max as i64;
                @let nh = (n as i64 * h) / max as i64;
                @let hour = start + Duration::hours(i as i64);
                g {
                    title { (hour.format("%H:00")) ": " (a) " alerts, " (n) " incidents" }
                    rect.alerts x=(x) y=(h - ah) width=(bw) height=(ah) {}
                    rect.incidents x=(x + bw / 4) y=(h - nh) width=(bw / 2) height=(nh) {}
                    @if i % 3 == 0 { text x=(x) y=(h + 12) { (hour.format("%H")) } }
                }
            }
            text x="0" y="10" { (max) }
            text x="0" y=(h) { "0" }
        }
    }
}

fn top(counts: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(TOP);
    v
}

pub async fn page_body(st: &AppState) -> Result<Markup, ApiError> {
    let now = Utc::now();
    let start = now.duration_trunc(Duration::hours(1)).unwrap_or(now) - Duration::hours(HOURS - 1);
    let (alerts, alerts_capped) = recent_alerts(st, start.timestamp_millis()).await?;
    let (incidents, incidents_capped) = recent_incidents(st, start).await?;
    let bucket = |t: chrono::DateTime<Utc>| {
        let h = (t - start).num_hours();
        (t >= start && h < HOURS).then_some(h as usize)
    };
    let mut a_per_h = vec![0u64; HOURS as usize];
    let mut events = 0u64;
    let (mut by_name, mut by_ci) = (HashMap::new(), HashMap::new());
    for a in &alerts {
        if let Some(h) = bucket(a.starts_at) {
            a_per_h[h] += 1;
        }
        events += a.count;
        *by_name.entry(a.alertname().to_string()).or_insert(0) += a.count;
        *by_ci
            .entry(a.ci_id.as_deref().unwrap_or("(no CI)").to_string())
            .or_insert(0) += a.count;
    }
    let mut i_per_h = vec![0u64; HOURS as usize];
    for i in &incidents {
        if let Some(h) = bucket(i.opened_at) {
            i_per_h[h] += 1;
        }
    }
    let (a_day, i_day) = (a_per_h.iter().sum::<u64>(), i_per_h.iter().sum::<u64>());
    let suppressed: Vec<&AlertRecord> = alerts.iter().filter(|a| a.suppressed).collect();
    let flapping: Vec<&AlertRecord> = alerts.iter().filter(|a| a.flapping).collect();
    let alert_list = |l: &[&AlertRecord], why: bool| {
        html! {
            @if l.is_empty() { p { "None." } } @else {
                ul { @for a in l.iter().take(LISTED) { li {
                    (a.alertname()) " on " (a.ci_id.as_deref().unwrap_or("no CI"))
                    @if let Some(i) = a.incident_id.as_deref() { " in " a href={ "/incidents/" (encode(i)) } { (i) } }
                    @if why { @if let Some(c) = a.suppressed_by.as_deref() { " — by change " (c) } }
                    @else { " — " (a.flips.len()) " state changes recently" }
                } } }
                @if l.len() > LISTED { p.hint { "The first " (LISTED) " of " (l.len()) "." } }
            }
        }
    };
    let top_list = |t: Vec<(String, u64)>, ci: bool| {
        html! { ol { @for (k, n) in t { li {
        @if ci && k != "(no CI)" { a href={ "/cmdb/" (encode(&k)) } { (k) } } @else { (k) }
        ": " (n) @if n == 1 { " event" } @else { " events" } } } } }
    };
    Ok(html! {
        h1 { "Noise" }
        p { "Last 24 hours (from " (when(start)) "): " strong { (a_day) } " alerts started, "
            strong { (i_day) } " incidents opened"
            @if i_day > 0 { " — " strong { (format!("{:.1}", a_day as f64 / i_day as f64)) } " alerts per incident" }
            "." }
        @if alerts_capped || incidents_capped {
            p.hint { "Only the newest " (alerts.len()) " alerts and " (incidents.len()) " incidents were read." }
        }
        figure {
            (chart(&a_per_h, &i_per_h, start))
            figcaption { "Per hour (UTC): wide bars are alerts started, narrow bars incidents opened." }
        }
        div.columns {
            section { h2 { "Noisiest alert names" } (top_list(top(by_name), false)) }
            section { h2 { "Noisiest CIs" } (top_list(top(by_ci), true)) }
        }
        p.hint { (events) " events over the " (alerts.len()) " alerts read (re-sends included)." }
        h2 { "Suppressed alerts (" (suppressed.len()) ")" } (alert_list(&suppressed, true))
        h2 { "Flapping alerts (" (flapping.len()) ")" } (alert_list(&flapping, false))
    })
}

pub async fn page_handler(v: Viewer, State(st): State<AppState>) -> Response {
    match page_body(&st).await {
        Ok(b) => page(Some(&v), "Noise", "", b),
        Err(e) => api_error(&v, e),
    }
}
