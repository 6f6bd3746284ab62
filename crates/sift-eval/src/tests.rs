use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::grid;
use sift::alert::{AlertStatus, Labels};

fn fp(s: &str) -> Fingerprint {
    Fingerprint::from(s)
}

/// Truth with groups given as lists of alert names; roots `r<group>`.
fn truth(groups: &[&[&str]]) -> Truth {
    let mut t = Truth::default();
    for (g, alerts) in groups.iter().enumerate() {
        t.groups.push(TrueGroup {
            id: g,
            kind: GroupKind::Fault,
            root: Some(format!("r{g}")),
            root_alerted: true,
        });
        for a in *alerts {
            t.alerts.insert(fp(a), g);
        }
    }
    t
}

fn incidents(groups: &[&[&str]]) -> Vec<Vec<Fingerprint>> {
    groups
        .iter()
        .map(|g| g.iter().map(|a| fp(a)).collect())
        .collect()
}

const TRUE: &[&[&str]] = &[&["a", "b", "c"], &["d", "e"], &["f"]];

#[test]
fn perfect_grouping_scores_one() {
    let t = truth(TRUE);
    let roots = vec![Some("r0".into()), Some("r1".into()), Some("r2".into())];
    let s = score(&t, &incidents(TRUE), &roots);
    assert_eq!((s.precision, s.recall, s.f1), (1.0, 1.0, 1.0));
    assert_eq!((s.root_correct, s.root_eligible), (2, 2));
    assert_eq!(s.group_ratio, 1.0);
}

#[test]
fn one_big_incident_has_full_recall_and_low_precision() {
    let t = truth(TRUE);
    let all: &[&[&str]] = &[&["a", "b", "c", "d", "e", "f"]];
    let s = score(&t, &incidents(all), &[Some("r0".into())]);
    assert_eq!(s.recall, 1.0);
    // 4 true pairs out of C(6,2) = 15 predicted pairs.
    assert!((s.precision - 4.0 / 15.0).abs() < 1e-12, "{s:?}");
    assert_eq!((s.root_correct, s.root_eligible), (1, 2));
    assert!((s.group_ratio - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn singletons_and_missing_alerts_have_zero_recall() {
    let t = truth(TRUE);
    let singles: &[&[&str]] = &[&["a"], &["b"], &["c"], &["d"]];
    // "e" and "f" are in no incident: they count as singletons too.
    let s = score(&t, &incidents(singles), &[None, None, None, None]);
    assert_eq!(s.recall, 0.0);
    assert_eq!(s.f1, 0.0);
    assert_eq!(s.predicted_groups, 6);
    assert_eq!(s.root_correct, 0);
}

#[test]
fn alert_in_two_incidents_counts_once_in_the_first() {
    let t = truth(TRUE);
    let inc: &[&[&str]] = &[&["a", "b", "c"], &["d", "e", "a"], &["f", "zz"]];
    let s = score(&t, &incidents(inc), &[None, None, None]);
    assert_eq!((s.precision, s.recall), (1.0, 1.0));
}

#[test]
fn generator_is_deterministic_and_seed_sensitive() {
    let a = generate(7, EstateSize::Small);
    let b = generate(7, EstateSize::Small);
    assert_eq!(a.alerts, b.alerts);
    assert_eq!(a.truth, b.truth);
    assert_eq!(
        serde_json::to_string(&a.cmdb).unwrap(),
        serde_json::to_string(&b.cmdb).unwrap()
    );
    let c = generate(8, EstateSize::Small);
    assert_ne!(a.alerts, c.alerts);
}

#[test]
fn truth_fingerprints_are_what_sift_parses() {
    for seed in 0..4 {
        let scn = generate(seed, EstateSize::for_seed(seed));
        let alerts = parse_alerts(&scn.alerts).unwrap();
        let parsed: HashSet<&Fingerprint> = alerts.iter().map(|a| &a.fingerprint).collect();
        let known: HashSet<&Fingerprint> = scn.truth.alerts.keys().collect();
        assert_eq!(parsed, known, "seed {seed}");
        for a in &alerts {
            assert_eq!(a.fingerprint, Fingerprint::of_labels(&a.labels));
        }
        // Every group has an alert; groups are numbered densely.
        let used: HashSet<usize> = scn.truth.alerts.values().copied().collect();
        assert_eq!(used.len(), scn.truth.groups.len());
        assert!(scn.cmdb.validate(|_| false).is_ok());
        // What `sift-eval --out` writes is a CMDB file sift reads back unchanged.
        let text = serde_json::to_string_pretty(&scn.cmdb).unwrap();
        let back = sift::cmdb::CmdbFile::parse(&text).unwrap();
        assert_eq!(back.cis, scn.cmdb.cis);
        assert_eq!(back.relations, scn.cmdb.relations);
    }
}

#[test]
fn estates_span_small_to_ten_thousand_cis() {
    let small = generate(1, EstateSize::Small).cmdb.cis.len();
    let huge = generate(3, EstateSize::Huge).cmdb.cis.len();
    assert!((30..=100).contains(&small), "{small}");
    assert!((8_000..=10_500).contains(&huge), "{huge}");
}

#[test]
fn scenarios_contain_the_hard_cases() {
    let scn = generate(0, EstateSize::Medium);
    let alerts = parse_alerts(&scn.alerts).unwrap();
    let topo = sift::cmdb::Topology::from_file(&scn.cmdb);
    let mapper = CiMapper::default();
    let mut per_fp: BTreeMap<&Fingerprint, Vec<&Alert>> = BTreeMap::new();
    for a in &alerts {
        per_fp.entry(&a.fingerprint).or_default().push(a);
    }
    let resent = per_fp
        .values()
        .filter(|v| v.iter().filter(|a| a.status == AlertStatus::Firing).count() > 1)
        .count();
    let unmapped = per_fp
        .values()
        .filter(|v| mapper.map(&topo, &v[0].labels).is_none())
        .count();
    let by_ip = per_fp
        .values()
        .filter(|v| {
            v[0].labels
                .get("instance")
                .is_some_and(|i| i.starts_with("10."))
        })
        .count();
    assert!(
        resent > 0 && unmapped > 0 && by_ip > 0,
        "{resent} {unmapped} {by_ip}"
    );
    assert!(scn.truth.groups.iter().any(|g| g.kind == GroupKind::Noise));
}

#[test]
fn baselines_group_as_documented() {
    let t0 = DateTime::<Utc>::from_timestamp(1_795_420_800, 0).unwrap();
    let mk = |name: &str, job: &str, min: i64| {
        let mut l = Labels::new();
        l.insert("alertname".into(), name.into());
        l.insert("job".into(), job.into());
        l.insert("instance".into(), format!("{name}-{min}"));
        Alert {
            fingerprint: Fingerprint::of_labels(&l),
            status: AlertStatus::Firing,
            labels: l,
            annotations: Labels::new(),
            starts_at: t0 + Duration::minutes(min),
            ends_at: None,
            generator_url: None,
            source: sift::alert::Source::Replay,
        }
    };
    let alerts = vec![
        mk("A", "node", 0),
        mk("B", "node", 4),
        mk("A", "app", 4),
        mk("A", "node", 8),
        mk("B", "app", 20),
    ];
    let topo = Topology::new();
    let m = CiMapper::default();
    let w = time_window(&alerts, &topo, &m, Duration::minutes(5));
    assert_eq!(
        w.incidents.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 1, 1]
    );
    let by_name = group_by_labels(&alerts, &topo, &m, &["alertname"], Duration::minutes(5));
    // A@0, A@4, A@8 slide into one group; B@4 and B@20 are 16 minutes apart.
    assert_eq!(
        by_name.incidents.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 1, 1]
    );
    let by_job = group_by_labels(&alerts, &topo, &m, &["job"], Duration::minutes(5));
    assert_eq!(
        by_job.incidents.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 1, 1]
    );
}

#[test]
fn evaluation_runs_end_to_end() {
    let scn = generate(5, EstateSize::Small);
    let e = evaluate(&scn).unwrap();
    assert_eq!(e.alerts, scn.truth.alerts.len());
    for s in e.rows() {
        assert!((0.0..=1.0).contains(&s.f1));
        assert!(s.predicted_groups >= 1);
    }
}

#[test]
fn replay_workload_repeats_the_stream_each_copy_after_the_last() {
    let base = parse_alerts(&generate(10, EstateSize::Huge).alerts).unwrap();
    let events = base.len() * 2 + 7;
    let w = replay_workload(10, events).unwrap();
    assert_eq!(w.alerts.len(), events);
    assert_eq!(w.repeats, 3);
    assert!(w.cmdb.cis.len() >= 10_000, "{}", w.cmdb.cis.len());
    // Each copy is the base stream shifted by one period, past the end of the one before.
    let copies: Vec<&[Alert]> = w.alerts.chunks(base.len()).collect();
    let end = |c: &[Alert]| {
        c.iter()
            .map(|a| a.ends_at.unwrap_or(a.starts_at).max(a.starts_at))
            .max()
            .unwrap()
    };
    let start = |c: &[Alert]| c.iter().map(|a| a.starts_at).min().unwrap();
    for pair in copies.windows(2) {
        assert!(start(pair[1]) > end(pair[0]));
    }
    let shift = copies[1][0].starts_at - base[0].starts_at;
    for (a, b) in copies[1].iter().zip(&base) {
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.starts_at - b.starts_at, shift);
    }
    assert_eq!(copies[2].len(), 7);
}

#[test]
fn bcubed_weighs_every_alert_once() {
    let t = truth(TRUE);
    let all: &[&[&str]] = &[&["a", "b", "c", "d", "e", "f"]];
    let s = score(&t, &incidents(all), &[None]);
    // a, b, c: half their incident is their group; d, e: a third; f: a sixth.
    let p = (3.0 * 0.5 + 2.0 / 3.0 + 1.0 / 6.0) / 6.0;
    assert!((s.bcubed_precision - p).abs() < 1e-12, "{s:?}");
    assert_eq!(s.bcubed_recall, 1.0);
    let perfect = score(&t, &incidents(TRUE), &[None, None, None]);
    assert_eq!(
        (
            perfect.bcubed_precision,
            perfect.bcubed_recall,
            perfect.bcubed_f1
        ),
        (1.0, 1.0, 1.0)
    );
}

#[test]
fn root_top1_is_split_by_whether_the_root_alerted() {
    let mut t = truth(TRUE);
    t.groups[1].root_alerted = false;
    // Group 0 named right, group 1 (silent root) named right as a suspected root.
    let s = score(
        &t,
        &incidents(TRUE),
        &[Some("r0".into()), Some("r1".into()), None],
    );
    assert_eq!((s.root_alerted_correct, s.root_alerted_eligible), (1, 1));
    assert_eq!((s.root_silent_correct, s.root_silent_eligible), (1, 1));
    // Naming the alerting dependent instead of the silent root is wrong.
    let s = score(
        &t,
        &incidents(TRUE),
        &[Some("r0".into()), Some("d".into()), None],
    );
    assert_eq!(s.root_silent_top1(), Some(0.0));
    assert_eq!(s.root_alerted_top1(), Some(1.0));
}

#[test]
fn dependency_baseline_joins_only_recent_alerts_on_what_a_ci_depends_on() {
    let doc = sift::cmdb::CmdbFile::parse(
        r#"{"cis": [{"id": "db"}, {"id": "app"}, {"id": "other"}],
            "relations": [{"source": "app", "target": "db", "type": "depends_on"}]}"#,
    )
    .unwrap();
    let topo = Topology::from_file(&doc);
    let t0 = DateTime::<Utc>::from_timestamp(1_795_420_800, 0).unwrap();
    let mk = |ci: &str, name: &str, min: i64| {
        let mut l = Labels::new();
        l.insert("alertname".into(), name.into());
        l.insert("ci".into(), ci.into());
        Alert {
            fingerprint: Fingerprint::of_labels(&l),
            status: AlertStatus::Firing,
            labels: l,
            annotations: Labels::new(),
            starts_at: t0 + Duration::minutes(min),
            ends_at: None,
            generator_url: None,
            source: sift::alert::Source::Replay,
        }
    };
    let alerts = vec![
        mk("db", "Down", 0),
        mk("app", "Errors", 3),
        mk("other", "Errors", 4),
        mk("app", "Latency", 30),
    ];
    let g = recent_dependency(&alerts, &topo, &CiMapper::default(), Duration::minutes(10));
    assert_eq!(
        g.incidents.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 1, 1]
    );
    assert_eq!(g.roots[0].as_deref(), Some("db"));
}

fn first_starts(scn: &Scenario) -> BTreeMap<Fingerprint, DateTime<Utc>> {
    let mut out = BTreeMap::new();
    for a in parse_alerts(&scn.alerts).unwrap() {
        out.entry(a.fingerprint.clone()).or_insert(a.starts_at);
    }
    out
}

#[test]
fn knobs_change_only_what_they_name() {
    let size = EstateSize::Medium;
    let base = generate(0, size);

    // A wrong CMDB: the same alerts, a CMDB with CIs and relations missing and spurious
    // relations, still valid.
    let cmdb_err = Knobs {
        cmdb_missing: 0.2,
        cmdb_spurious: 0.1,
        cmdb_absent: 0.05,
        ..Knobs::default()
    };
    let c = generate_with(0, size, &cmdb_err);
    assert_eq!(c.alerts, base.alerts);
    assert_eq!(c.truth.alerts, base.truth.alerts);
    assert!(c.cmdb.cis.len() < base.cmdb.cis.len());
    assert!(c.cmdb.validate(|_| false).is_ok());
    let true_rels: HashSet<(String, String)> = base
        .cmdb
        .relations
        .iter()
        .map(|r| (r.source.clone(), r.target.clone()))
        .collect();
    let spurious = c
        .cmdb
        .relations
        .iter()
        .filter(|r| !true_rels.contains(&(r.source.clone(), r.target.clone())))
        .count();
    assert!(spurious > base.cmdb.relations.len() / 20, "{spurious}");

    // Another label convention: the same alerts, named by `host`.
    let host = generate_with(
        0,
        size,
        &Knobs {
            labels: LabelStyle::Host,
            ..Knobs::default()
        },
    );
    // (Fingerprints change with the labels, so which repeats clash differs a little.)
    let near = |a: usize, b: usize| a.abs_diff(b) * 20 <= b;
    assert!(near(host.truth.alerts.len(), base.truth.alerts.len()));
    assert!(near(host.truth.groups.len(), base.truth.groups.len()));
    let parsed = parse_alerts(&host.alerts).unwrap();
    assert!(parsed.iter().all(|a| a.labels.get("instance").is_none()));
    assert!(parsed.iter().any(|a| a.labels.get("host").is_some()));

    // Long `for:` clauses: the same alerts start later, some never fire.
    let slow = generate_with(
        0,
        size,
        &Knobs {
            for_max_min: 15,
            ..Knobs::default()
        },
    );
    let (b, s) = (first_starts(&base), first_starts(&slow));
    assert!(s.len() <= b.len());
    assert!(s.iter().all(|(fp, t)| b.get(fp).is_some_and(|bt| t >= bt)));
    assert!(s.iter().any(|(fp, t)| b[fp] + Duration::minutes(5) <= *t));

    // Sparse monitoring: fewer alerts, faults whose root never alerted, and the truth
    // still lists exactly the alerts sent.
    let sparse = Knobs {
        coverage: 0.25,
        silent_roots: 0.5,
        lag: Lag::HeavyTail,
        ..Knobs::default()
    };
    let sp = generate_with(0, size, &sparse);
    assert!(sp.truth.alerts.len() < base.truth.alerts.len());
    assert!(
        sp.truth
            .groups
            .iter()
            .any(|g| g.kind == GroupKind::Fault && !g.root_alerted)
    );
    assert!(base.truth.groups.iter().all(|g| g.root_alerted));
    let parsed: HashSet<Fingerprint> = parse_alerts(&sp.alerts)
        .unwrap()
        .into_iter()
        .map(|a| a.fingerprint)
        .collect();
    let known: HashSet<Fingerprint> = sp.truth.alerts.keys().cloned().collect();
    assert_eq!(parsed, known);
}

#[test]
fn grid_starts_with_the_default_world_and_names_each_cell_once() {
    let cells = grid::cells();
    assert_eq!(cells[0].knobs, Knobs::default());
    let names: HashSet<String> = cells.iter().map(grid::Cell::name).collect();
    assert_eq!(names.len(), cells.len());
    let r = grid::run_cell(&cells[0], &[1]).unwrap();
    assert_eq!(r.scorers.len(), ROW_NAMES.len());
    assert!((0.0..=1.0).contains(&r.scorers[0].bcubed_f1));
}

#[test]
fn tracked_replay_opens_the_incidents_sift_replay_opens() {
    let scn = generate_with(
        5,
        EstateSize::Small,
        &Knobs {
            coverage: 0.6,
            silent_roots: 0.2,
            ..Knobs::default()
        },
    );
    let alerts = parse_alerts(&scn.alerts).unwrap();
    let topo = Topology::from_file(&scn.cmdb);
    let m = CiMapper::default();
    let cfg = sift::correlate::CorrelateConfig::default();
    let plain = sift::replay::run(&topo, &m, cfg.clone(), Vec::new(), alerts.clone());
    let tracked = replay_tracked(&topo, &m, cfg, alerts.clone());
    let view = |incs: &[sift::incident::Incident]| -> Vec<(String, Vec<Fingerprint>)> {
        incs.iter()
            .map(|i| (i.id.clone(), i.alert_fingerprints.iter().cloned().collect()))
            .collect()
    };
    assert_eq!(view(&tracked.incidents), view(&plain.incidents));
    // Every firing event landed in an incident that is still listed (merges followed);
    // resolves land nowhere.
    let ids: HashSet<&str> = tracked.incidents.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(tracked.incident_of.len(), alerts.len());
    for (a, inc) in alerts.iter().zip(&tracked.incident_of) {
        match (a.status, inc) {
            (AlertStatus::Resolved, i) => assert!(i.is_none()),
            (AlertStatus::Firing, Some(id)) => assert!(ids.contains(id.as_str()), "{id}"),
            (AlertStatus::Firing, None) => {}
        }
    }
}

#[test]
fn with_no_graph_or_a_graph_about_other_types_the_harness_scenarios_correlate_identically() {
    use sift::causality::{Edge, Lag, Learned, Scope};
    use sift::correlate::CausalIndex;
    use std::sync::Arc;
    let scn = generate(2, EstateSize::Small);
    let alerts = parse_alerts(&scn.alerts).unwrap();
    let topo = Topology::from_file(&scn.cmdb);
    let m = CiMapper::default();
    let cfg = sift::correlate::CorrelateConfig::default();
    let json = |t: &TrackedReplay| {
        let incidents: Vec<_> = t
            .incidents
            .iter()
            .map(sift::view::IncidentView::of)
            .collect();
        serde_json::to_string(&(incidents, &t.incident_of)).unwrap()
    };
    let plain = json(&replay_tracked(&topo, &m, cfg.clone(), alerts.clone()));
    let labels = vec!["alertname".to_string()];
    let empty = Arc::new(CausalIndex::new(&Learned::default(), &labels));
    let elsewhere = Learned {
        edges: vec![Edge {
            cause: "NoSuchAlert".into(),
            effect: "NorThisOne".into(),
            score: 50.0,
            support: 500,
            expected: 1.0,
            q_value: 1e-9,
            lag_seconds: Lag {
                median: 300.0,
                p90: 900.0,
            },
            scope: Scope::Neighbour,
        }],
        ..Default::default()
    };
    let elsewhere = Arc::new(CausalIndex::new(&elsewhere, &labels));
    for g in [None, Some(empty), Some(elsewhere)] {
        let with = replay_tracked_with(&topo, &m, cfg.clone(), g, alerts.clone());
        assert_eq!(json(&with), plain);
    }
    // The split harness's "without" column is that run, on the second half.
    let r = learned::split_scenario(&scn, &cfg, &sift::causality::LearnConfig::default()).unwrap();
    assert!(r.without.f1 > 0.0 && r.with.f1 > 0.0);
}

/// `sift tune` on a world whose rules wait up to 15 minutes before firing: it finds holds
/// near the generator's `for:` (an overestimate stays within the 5-minute window, so no
/// alert's onset is moved out of its cause's reach), recommends them, and the backtest
/// against the true grouping shows them better than the current config. On the default
/// world (no `for:`) it recommends nothing.
#[test]
fn tune_finds_the_rules_slow_for_clauses_and_the_backtest_shows_the_gain() {
    let knobs = Knobs {
        lag: Lag::HeavyTail,
        for_max_min: 15,
        ..Knobs::default()
    };
    let truth_groups = |scn: &Scenario| {
        let mut g: BTreeMap<usize, Vec<Fingerprint>> = BTreeMap::new();
        for (fp, i) in &scn.truth.alerts {
            g.entry(*i).or_default().push(fp.clone());
        }
        g.into_values().collect::<Vec<_>>()
    };
    let scn = generate_with(2, EstateSize::Large, &knobs);
    let topo = Topology::from_file(&scn.cmdb);
    let alerts = parse_alerts(&scn.alerts).unwrap();
    let truth = truth_groups(&scn);
    let r = sift::tune::tune(
        &topo,
        &CiMapper::default(),
        &CorrelateConfig::default(),
        &alerts,
        Some(&truth),
    );
    assert!(
        !r.recommended_holds.is_empty(),
        "{}",
        sift::tune::render(&r)
    );
    for (name, hold) in &r.recommended_holds {
        let real = knobs.for_clause(scn.seed, name).num_seconds();
        assert!(*hold < real + 300, "{name}: {hold}s learned, for: {real}s");
    }
    let (now, tuned) = (&r.backtests[0], &r.backtests[1]);
    assert!(
        tuned.pair_f1.unwrap() > now.pair_f1.unwrap() + 0.05,
        "{}",
        sift::tune::render(&r)
    );

    let plain = generate(2, EstateSize::Large);
    let alerts = parse_alerts(&plain.alerts).unwrap();
    let topo = Topology::from_file(&plain.cmdb);
    let r = sift::tune::tune(
        &topo,
        &CiMapper::default(),
        &CorrelateConfig::default(),
        &alerts,
        None,
    );
    assert!(r.recommended_holds.is_empty(), "{}", sift::tune::render(&r));
}
