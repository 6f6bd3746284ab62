//! Unit tests of learned causality in placement: an edge lets a late symptom join its
//! cause, the reason quotes the edge, a pair history shows unrelated gets no window
//! growth, and with no graph correlation is exactly as without the feature.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::tests::incident_of;
use super::*;
use crate::alert::{Alert, AlertStatus, Fingerprint, Labels, Source};
use crate::causality::{Edge, Lag, Learned, Scope};
use crate::cmdb::{Ci, CmdbFile, Relation};
use crate::cmdb::{CiMapper, Topology};
use crate::incident::Incident;
use crate::incident::Rule;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}

fn estate(cis: &[(&str, &str)], rels: &[(&str, &str)]) -> Topology {
    Topology::from_file(&CmdbFile {
        cis: cis
            .iter()
            .map(|(id, ty)| Ci {
                id: (*id).into(),
                name: None,
                ci_type: Some((*ty).into()),
                criticality: Default::default(),
                owner_group: None,
                aliases: Vec::new(),
                attributes: Default::default(),
            })
            .collect(),
        relations: rels
            .iter()
            .map(|(s, t)| Relation {
                source: (*s).into(),
                target: (*t).into(),
                rel_type: "depends_on".into(),
            })
            .collect(),
    })
}

/// app-1 and app-2 run on node-1, which hangs off tor-1 with node-2; app-3 runs on node-2.
fn cluster() -> Topology {
    estate(
        &[
            ("app-1", "application"),
            ("app-2", "application"),
            ("app-3", "application"),
            ("node-1", "host"),
            ("node-2", "host"),
            ("tor-1", "network"),
        ],
        &[
            ("app-1", "node-1"),
            ("app-2", "node-1"),
            ("app-3", "node-2"),
            ("node-1", "tor-1"),
            ("node-2", "tor-1"),
        ],
    )
}

fn on(ci: &str, name: &str, start_s: i64) -> Alert {
    let mut labels = Labels::new();
    labels.insert("alertname".into(), name.into());
    labels.insert("ci".into(), ci.into());
    Alert {
        fingerprint: Fingerprint::of_labels(&labels),
        status: AlertStatus::Firing,
        labels,
        annotations: Labels::new(),
        starts_at: t0() + Duration::seconds(start_s),
        ends_at: None,
        generator_url: None,
        source: Source::Alertmanager,
    }
}

fn edge(cause: &str, effect: &str, support: u64, median: f64, p90: f64, scope: Scope) -> Edge {
    Edge {
        cause: cause.into(),
        effect: effect.into(),
        score: 5.0,
        support,
        expected: 1.0,
        q_value: 0.001,
        lag_seconds: Lag { median, p90 },
        scope,
    }
}

fn graph(edges: Vec<Edge>) -> Option<Arc<CausalIndex>> {
    let learned = Learned {
        edges,
        ..Default::default()
    };
    Some(Arc::new(CausalIndex::new(
        &learned,
        &["alertname".to_string()],
    )))
}

/// NodeDown on a host brings PodCrashLooping on its apps, typically 4 minutes later and
/// up to 8 (p90 480 s): pods back off before they crash-loop.
fn node_graph() -> Option<Arc<CausalIndex>> {
    graph(vec![edge(
        "NodeDown",
        "PodCrashLooping",
        143,
        240.0,
        480.0,
        Scope::Neighbour,
    )])
}

fn engine(g: Option<Arc<CausalIndex>>) -> Engine {
    let mut e = Engine::new(CorrelateConfig::default());
    e.set_causality(g);
    e
}

fn reason_of(ch: &Changes, a: &Alert) -> crate::incident::Reason {
    ch.timeline
        .iter()
        .find_map(|t| match &t.detail {
            crate::incident::Detail::AlertJoined {
                fingerprint,
                reason: Some(r),
                ..
            } if *fingerprint == a.fingerprint => Some((**r).clone()),
            _ => None,
        })
        .expect("a reason for the alert")
}

#[test]
fn a_learned_edge_lets_a_late_symptom_join_its_cause_and_the_reason_quotes_it() {
    let topo = cluster();
    let m = CiMapper::default();
    let root = on("node-1", "NodeDown", 0);
    // Seven minutes later: past the 5-minute window, within the edge's p90.
    let late = on("app-1", "PodCrashLooping", 420);

    let mut plain = engine(None);
    plain.ingest(&topo, &m, root.clone());
    plain.ingest(&topo, &m, late.clone());
    assert_ne!(
        incident_of(&plain, &root).id,
        incident_of(&plain, &late).id,
        "without a graph the late symptom opens its own incident"
    );

    let mut e = engine(node_graph());
    e.ingest(&topo, &m, root.clone());
    e.ingest(&topo, &m, late.clone());
    let ch = e.take_changes();
    let inc = incident_of(&e, &late);
    assert_eq!(inc.id, incident_of(&e, &root).id);
    assert_eq!(inc.root_cause_ci.as_deref(), Some("node-1"));
    let r = reason_of(&ch, &late);
    assert_eq!(r.rule, Rule::Upstream);
    assert_eq!(r.lag_seconds, Some(420));
    assert_eq!(
        r.learned.as_deref(),
        Some("learned: NodeDown → PodCrashLooping, seen 143 times, median lag 240 s")
    );
    // In the timeline's JSON, as an operator reads it.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["learned"],
        "learned: NodeDown → PodCrashLooping, seen 143 times, median lag 240 s"
    );
}

#[test]
fn an_edge_quoted_even_when_the_window_alone_would_do_and_never_beyond_its_lag() {
    let topo = cluster();
    let m = CiMapper::default();
    let mut e = engine(node_graph());
    let root = on("node-1", "NodeDown", 0);
    let quick = on("app-1", "PodCrashLooping", 30);
    // Past the edge's p90 (and the window): its own incident.
    let too_late = on("app-2", "PodCrashLooping", 600);
    for a in [&root, &quick, &too_late] {
        e.ingest(&topo, &m, a.clone());
    }
    let ch = e.take_changes();
    assert_eq!(incident_of(&e, &quick).id, incident_of(&e, &root).id);
    assert!(reason_of(&ch, &quick).learned.is_some());
    assert_ne!(incident_of(&e, &too_late).id, incident_of(&e, &root).id);
}

#[test]
fn an_edge_learned_in_another_scope_or_for_another_type_does_not_extend() {
    let topo = cluster();
    let m = CiMapper::default();
    // Same CI only: says nothing about a host and its app.
    let same_ci = graph(vec![edge(
        "NodeDown",
        "PodCrashLooping",
        143,
        40.0,
        480.0,
        Scope::SameCi,
    )]);
    let mut e = engine(same_ci);
    let root = on("node-1", "NodeDown", 0);
    let late = on("app-1", "PodCrashLooping", 420);
    e.ingest(&topo, &m, root.clone());
    e.ingest(&topo, &m, late.clone());
    assert_ne!(incident_of(&e, &late).id, incident_of(&e, &root).id);

    let mut e = engine(node_graph());
    let other = on("app-1", "HighLatency", 420);
    e.ingest(&topo, &m, root.clone());
    e.ingest(&topo, &m, other.clone());
    assert_ne!(incident_of(&e, &other).id, incident_of(&e, &root).id);

    // An edge barely above chance (lift 2), or whose long p90 is a thin tail far past
    // its median (40 s), does not stretch the window: a late alert is then more likely
    // a coincidence.
    let mut weak = edge(
        "NodeDown",
        "PodCrashLooping",
        143,
        240.0,
        480.0,
        Scope::Neighbour,
    );
    weak.score = 2.0;
    let tail = edge(
        "NodeDown",
        "PodCrashLooping",
        143,
        40.0,
        480.0,
        Scope::Neighbour,
    );
    for g in [graph(vec![weak]), graph(vec![tail])] {
        let mut e = engine(g);
        e.ingest(&topo, &m, root.clone());
        e.ingest(&topo, &m, late.clone());
        assert_ne!(incident_of(&e, &late).id, incident_of(&e, &root).id);
    }
}

/// The incidents an engine made, as JSON (ids, alerts, roots, titles, timelines' reasons).
fn outcome(g: Option<Arc<CausalIndex>>, topo: &Topology, alerts: &[Alert]) -> String {
    let m = CiMapper::default();
    let mut e = engine(g);
    let mut timeline = Vec::new();
    for a in alerts {
        e.ingest(topo, &m, a.clone());
        timeline.extend(e.take_changes().timeline);
    }
    let mut incs: Vec<&Incident> = e.incidents().collect();
    incs.sort_by_key(|i| i.number());
    let views: Vec<_> = incs
        .into_iter()
        .map(crate::view::IncidentView::of)
        .collect();
    serde_json::to_string(&(views, timeline)).unwrap()
}

#[test]
fn with_no_graph_or_an_empty_one_correlation_is_identical() {
    let topo = cluster();
    let alerts = vec![
        on("node-1", "NodeDown", 0),
        on("app-1", "PodCrashLooping", 30),
        on("app-2", "PodCrashLooping", 420),
        on("tor-1", "SwitchDown", 500),
        on("app-3", "HighLatency", 800),
        on("node-2", "NodeDown", 1000),
        on("app-3", "PodCrashLooping", 1500),
    ];
    let none = outcome(None, &topo, &alerts);
    assert_eq!(none, outcome(graph(Vec::new()), &topo, &alerts));
    let mut e = Engine::new(CorrelateConfig::default());
    e.set_learned(Some(&Learned::default()), &["alertname".to_string()]);
    assert!(e.causality().is_none(), "an empty graph is no graph");
    // A graph about types that never fire here changes nothing either.
    let elsewhere = graph(vec![edge(
        "DiskFull",
        "Slow",
        50,
        10.0,
        900.0,
        Scope::Neighbour,
    )]);
    assert_eq!(none, outcome(elsewhere, &topo, &alerts));
    // And the real graph does change this history (the test is not vacuous).
    assert_ne!(none, outcome(node_graph(), &topo, &alerts));
}

#[test]
fn a_pair_history_shows_unrelated_gets_no_window_growth_through_a_gap() {
    // app-1 → node-1 (never alerts) → tor-1. Without a graph, an app alert 6.5 minutes
    // after the switch's joins it through the silent host (the window grows per silent
    // CI). History knows SwitchDown and HighLatency well, and never together: no growth.
    // (In an estate of some size: in the six-CI cluster the switch is a hub by share.)
    let names: Vec<String> = (0..60).map(|i| format!("other-{i}")).collect();
    let mut cis = vec![
        ("app-1", "application"),
        ("app-2", "application"),
        ("node-1", "host"),
        ("tor-1", "network"),
    ];
    cis.extend(names.iter().map(|n| (n.as_str(), "application")));
    let topo = estate(
        &cis,
        &[
            ("app-1", "node-1"),
            ("app-2", "node-1"),
            ("node-1", "tor-1"),
        ],
    );
    let m = CiMapper::default();
    let sw = on("tor-1", "SwitchDown", 0);
    let app = on("app-1", "HighLatency", 390);
    let mut plain = engine(None);
    plain.ingest(&topo, &m, sw.clone());
    plain.ingest(&topo, &m, app.clone());
    assert_eq!(
        incident_of(&plain, &app).id,
        incident_of(&plain, &sw).id,
        "the gap rule links them without a graph"
    );

    let known = graph(vec![
        edge("SwitchDown", "NodeDown", 60, 20.0, 60.0, Scope::Neighbour),
        edge("NodeDown", "HighLatency", 80, 30.0, 90.0, Scope::Neighbour),
    ]);
    let ix = known.clone().unwrap();
    let ty = |n: &str| {
        let mut l = Labels::new();
        l.insert("alertname".into(), n.into());
        ix.type_of(&l).unwrap()
    };
    assert!(ix.independent(ty("SwitchDown"), ty("HighLatency")));
    assert!(!ix.independent(ty("SwitchDown"), ty("NodeDown")));
    let mut e = engine(known);
    e.ingest(&topo, &m, sw.clone());
    e.ingest(&topo, &m, app.clone());
    assert_ne!(incident_of(&e, &app).id, incident_of(&e, &sw).id);

    // Within the plain window the link holds: unrelated types are weaker, not barred.
    let soon = on("app-2", "HighLatency", 120);
    e.ingest(&topo, &m, soon.clone());
    assert_eq!(incident_of(&e, &soon).id, incident_of(&e, &sw).id);

    // Thin history judges nothing: a pair seen too rarely keeps the gap rule's window.
    let thin = graph(vec![
        edge("SwitchDown", "NodeDown", 5, 20.0, 60.0, Scope::Neighbour),
        edge("NodeDown", "HighLatency", 5, 30.0, 90.0, Scope::Neighbour),
    ]);
    let mut e = engine(thin);
    e.ingest(&topo, &m, sw.clone());
    e.ingest(&topo, &m, app.clone());
    assert_eq!(incident_of(&e, &app).id, incident_of(&e, &sw).id);
}

#[test]
fn a_same_ci_edge_keeps_a_late_alert_on_its_ci_in_the_incident() {
    let topo = cluster();
    let m = CiMapper::default();
    let g = graph(vec![edge(
        "DiskFull",
        "DatabaseDown",
        30,
        200.0,
        540.0,
        Scope::SameCi,
    )]);
    let disk = on("node-2", "DiskFull", 0);
    let db = on("node-2", "DatabaseDown", 500);
    let mut plain = engine(None);
    plain.ingest(&topo, &m, disk.clone());
    plain.ingest(&topo, &m, db.clone());
    assert_ne!(incident_of(&plain, &db).id, incident_of(&plain, &disk).id);
    let mut e = engine(g);
    e.ingest(&topo, &m, disk.clone());
    e.ingest(&topo, &m, db.clone());
    let ch = e.take_changes();
    assert_eq!(incident_of(&e, &db).id, incident_of(&e, &disk).id);
    let r = reason_of(&ch, &db);
    assert_eq!(r.rule, Rule::SameCi);
    assert!(
        r.learned
            .as_deref()
            .is_some_and(|t| t.contains("DiskFull → DatabaseDown"))
    );
}
