//! CMDB pages: find a CI by id, name or alias; a CI with what it depends on, what depends
//! on it, its open incidents and recent changes. Read-only.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{Viewer, api_error, encode, page, when};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::incident::IncidentStatus;
use crate::store::{ChangeQuery, IncidentQuery};

/// Most matches, neighbours, incidents and changes listed.
const SHOWN: usize = 100;

#[derive(Deserialize, Default)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
}

pub async fn search(
    v: Viewer,
    State(st): State<AppState>,
    Query(p): Query<SearchParams>,
) -> Response {
    let q = p.q.trim();
    let (exact, matches, total) = {
        let topo = st
            .pipeline
            .topology()
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let exact = (!q.is_empty())
            .then(|| topo.node(q).or_else(|| topo.resolve(q)))
            .flatten()
            .map(|n| topo.ci(n).id.clone());
        let needle = q.to_lowercase();
        let mut total = 0usize;
        let mut matches = Vec::new();
        if !q.is_empty() {
            for ci in topo.all_cis() {
                let hit = ci.id.to_lowercase().contains(&needle)
                    || ci
                        .name
                        .as_deref()
                        .is_some_and(|n| n.to_lowercase().contains(&needle))
                    || ci
                        .aliases
                        .iter()
                        .any(|a| a.to_lowercase().contains(&needle));
                if hit {
                    total += 1;
                    if matches.len() < SHOWN {
                        matches.push((
                            ci.id.clone(),
                            ci.display_name().to_string(),
                            ci.ci_type.clone().unwrap_or_default(),
                        ));
                    }
                }
            }
        }
        (exact, matches, total)
    };
    if let Some(id) = &exact
        && total <= 1
    {
        return super::see_other(&format!("/cmdb/{}", encode(id)));
    }
    let body = html! {
        h1 { "CMDB" }
        form.filters method="get" action="/cmdb" role="search" {
            label { "Find a CI by id, name or alias " input type="search" name="q" value=(q) required; }
            button type="submit" { "Find" }
        }
        @if !q.is_empty() {
            @if matches.is_empty() { p.empty { "No CI matches " code { (q) } "." } }
            @else {
                p { (total) " match" @if total != 1 { "es" } @if total > SHOWN { " (the first " (SHOWN) " shown)" } }
                ul { @for (id, name, ty) in &matches {
                    li { a href={ "/cmdb/" (encode(id)) } { (id) } @if name != id { " — " (name) } @if !ty.is_empty() { " (" (ty) ")" } }
                } }
            }
        }
    };
    page(Some(&v), "CMDB", "", body)
}

pub async fn detail(v: Viewer, State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let found = {
        let topo = st
            .pipeline
            .topology()
            .read()
            .unwrap_or_else(|p| p.into_inner());
        topo.node(&id).map(|n| {
            let names = |ns: &[u32]| {
                ns.iter()
                    .take(SHOWN)
                    .map(|&m| topo.ci(m).id.clone())
                    .collect::<Vec<_>>()
            };
            let (up, down) = (topo.depends_on(n), topo.dependents(n));
            (
                topo.ci(n).clone(),
                names(up),
                up.len(),
                names(down),
                down.len(),
            )
        })
    };
    let Some((ci, up, up_total, down, down_total)) = found else {
        return api_error(&v, ApiError::not_found(format!("CI {id} not found")));
    };
    let mut open = Vec::new();
    for status in [IncidentStatus::Open, IncidentStatus::Acknowledged] {
        let q = IncidentQuery {
            status: Some(status),
            ci: Some(ci.id.clone()),
            limit: SHOWN as u32,
            ..Default::default()
        };
        match st.store.list_incidents(&q).await {
            Ok(mut l) => open.append(&mut l),
            Err(e) => return api_error(&v, e.into()),
        }
    }
    open.sort_by_key(|i| std::cmp::Reverse(i.number()));
    let changes = match st
        .store
        .list_changes(&ChangeQuery {
            ci: Some(ci.id.clone()),
            active_at: None,
            limit: 20,
        })
        .await
    {
        Ok(c) => c,
        Err(e) => return api_error(&v, e.into()),
    };
    let list = |ids: &[String], total: usize| {
        html! {
            @if ids.is_empty() { p { "None." } } @else {
                ul { @for c in ids { li { a href={ "/cmdb/" (encode(c)) } { (c) } } } }
                @if total > ids.len() { p.hint { "The first " (ids.len()) " of " (total) "." } }
            }
        }
    };
    let body = html! {
        p.crumbs { a href="/cmdb" { "CMDB" } " › " (ci.id) }
        h1 { (ci.id) @if let Some(n) = &ci.name { " — " (n) } }
        dl.facts {
            dt { "Type" } dd { (ci.ci_type.as_deref().unwrap_or("–")) }
            dt { "Criticality" } dd { (format!("{:?}", ci.criticality).to_lowercase()) }
            dt { "Owner group" } dd { (ci.owner_group.as_deref().unwrap_or("–")) }
            dt { "Aliases" } dd { @if ci.aliases.is_empty() { "–" } @else { (ci.aliases.join(", ")) } }
            @for (k, val) in &ci.attributes { dt { (k) } dd { (super::incidents::text(val)) } }
        }
        h2 { "Depends on (" (up_total) ")" } (list(&up, up_total))
        h2 { "Depended on by (" (down_total) ")" } (list(&down, down_total))
        h2 { "Open incidents" }
        @if open.is_empty() { p { "None." } } @else {
            ul { @for i in &open { li { a href={ "/incidents/" (encode(&i.id)) } { (i.id) } " P" (i.priority) " " (i.status.as_str()) ": " (i.title) } } }
        }
        h2 { "Recent changes" }
        @if changes.is_empty() { p { "None." } } @else {
            ul { @for c in &changes { li { (c.id) ": " (c.summary) " (" (when(c.start)) " – " (when(c.end)) ")" @if c.maintenance { " maintenance" } } } }
        }
    };
    page(Some(&v), &ci.id, "", body)
}
