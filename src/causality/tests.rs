use super::*;

/// A deterministic stream of uniform numbers in [0, 1) (no dependency on a RNG crate).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn topo(relations: &[(&str, &str)], cis: &[&str]) -> Topology {
    let doc = crate::cmdb::CmdbFile {
        cis: cis
            .iter()
            .map(|id| crate::cmdb::Ci {
                id: id.to_string(),
                name: None,
                ci_type: None,
                criticality: Default::default(),
                owner_group: None,
                aliases: Vec::new(),
                attributes: Default::default(),
            })
            .collect(),
        relations: relations
            .iter()
            .map(|(s, t)| crate::cmdb::Relation {
                source: s.to_string(),
                target: t.to_string(),
                rel_type: "depends_on".into(),
            })
            .collect(),
    };
    Topology::from_file(&doc)
}

/// Thirty app/host pairs over thirty days. On each host `NodeDown` happens now and then
/// and brings `PodCrashLooping` on its app 20-60 s later, which brings `ErrorBudgetBurn`
/// on the same app 60-120 s after that (a chain). `DiskFull` on hosts and `CertExpiry`
/// on apps happen on their own, at similar rates: an independent pair on linked CIs.
fn synthetic() -> (Topology, History) {
    let mut cis = Vec::new();
    let mut rels = Vec::new();
    for i in 0..30 {
        cis.push(format!("app-{i}"));
        cis.push(format!("host-{i}"));
    }
    for i in 0..30 {
        rels.push((format!("app-{i}"), format!("host-{i}")));
    }
    let ci_refs: Vec<&str> = cis.iter().map(String::as_str).collect();
    let rel_refs: Vec<(&str, &str)> = rels.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let t = topo(&rel_refs, &ci_refs);
    let mut h = History::new().with_topology(&t);
    let mut r = Lcg(7);
    let days = 30 * 86_400;
    for i in 0..30 {
        let host = format!("host-{i}");
        let app = format!("app-{i}");
        for _ in 0..8 {
            let t0 = (r.next() * days as f64) as i64;
            h.push("NodeDown", &host, t0);
            let t1 = t0 + 20 + (r.next() * 40.0) as i64;
            // The chain does not always complete: effects are likely, not certain.
            if r.next() < 0.8 {
                h.push("PodCrashLooping", &app, t1);
                if r.next() < 0.8 {
                    h.push("ErrorBudgetBurn", &app, t1 + 60 + (r.next() * 60.0) as i64);
                }
            }
        }
        for _ in 0..8 {
            h.push("DiskFull", &host, (r.next() * days as f64) as i64);
            h.push("CertExpiry", &app, (r.next() * days as f64) as i64);
        }
    }
    (t, h)
}

fn has(l: &Learned, cause: &str, effect: &str) -> bool {
    l.edges
        .iter()
        .any(|e| e.cause == cause && e.effect == effect)
}

#[test]
fn a_known_chain_is_found_and_an_independent_pair_is_not() {
    let (_, h) = synthetic();
    let l = learn(&h, &LearnConfig::default()).unwrap();
    assert!(has(&l, "NodeDown", "PodCrashLooping"), "{:#?}", l.edges);
    assert!(
        has(&l, "PodCrashLooping", "ErrorBudgetBurn"),
        "{:#?}",
        l.edges
    );
    for e in &l.edges {
        // Nothing involving the independent types, and nothing pointing backwards.
        assert!(
            !["DiskFull", "CertExpiry"].contains(&e.cause.as_str())
                && !["DiskFull", "CertExpiry"].contains(&e.effect.as_str()),
            "{e:?}"
        );
        assert_ne!(e.effect, "NodeDown", "{e:?}");
    }
    let first = l
        .edges
        .iter()
        .find(|e| e.cause == "NodeDown" && e.effect == "PodCrashLooping")
        .unwrap();
    assert_eq!(first.scope, Scope::Neighbour);
    // Lags were 20-60 s: the median is reported within a histogram bin of that.
    assert!(
        (20.0..=70.0).contains(&first.lag_seconds.median),
        "{first:?}"
    );
    assert!(first.support >= 150 && first.score > 10.0, "{first:?}");
    let second = l
        .edges
        .iter()
        .find(|e| e.cause == "PodCrashLooping" && e.effect == "ErrorBudgetBurn")
        .unwrap();
    assert_eq!(second.scope, Scope::SameCi);
}

#[test]
fn order_of_arrival_and_resends_do_not_change_what_is_learned() {
    let (_, h) = synthetic();
    let l = learn(&h, &LearnConfig::default()).unwrap();
    let mut shuffled = History {
        occ: h.occ.iter().rev().copied().collect(),
        types: h.types.clone(),
        type_ix: h.type_ix.clone(),
        cis: h.cis.clone(),
        ci_ix: h.ci_ix.clone(),
        neighbours: h.neighbours.clone(),
        upstream: h.upstream.clone(),
        unusable: 0,
    };
    // Every occurrence sent twice (a re-send has the same type, CI and start).
    let again = shuffled.occ.clone();
    shuffled.occ.extend(again);
    let l2 = learn(&shuffled, &LearnConfig::default()).unwrap();
    assert_eq!(l.edges, l2.edges);
}

#[test]
fn tiny_or_single_type_histories_learn_nothing_and_say_why() {
    let l = learn(&History::new(), &LearnConfig::default()).unwrap();
    assert!(l.edges.is_empty());
    assert!(l.summary.note.as_deref().unwrap().contains("no usable"));

    let mut h = History::new();
    for i in 0..100 {
        h.push("OnlyOne", "host-1", i * 60);
    }
    let l = learn(&h, &LearnConfig::default()).unwrap();
    assert!(l.edges.is_empty());
    assert!(
        l.summary.note.as_deref().unwrap().contains("no pair"),
        "{:?}",
        l.summary
    );

    let mut h = History::new();
    h.push("A", "host-1", 0);
    h.push("B", "host-1", 10);
    let l = learn(&h, &LearnConfig::default()).unwrap();
    assert!(l.edges.is_empty());
    assert_eq!(l.summary.dropped_types, 2);
}

#[test]
fn without_relations_only_same_ci_pairs_are_learned() {
    let (_, h) = synthetic();
    let flat = History {
        neighbours: vec![Vec::new(); h.cis.len()],
        ..h
    };
    let l = learn(&flat, &LearnConfig::default()).unwrap();
    // NodeDown (host) and PodCrashLooping (app) never share a CI any more.
    assert!(!has(&l, "NodeDown", "PodCrashLooping"));
    assert!(has(&l, "PodCrashLooping", "ErrorBudgetBurn"));
    assert!(l.edges.iter().all(|e| e.scope == Scope::SameCi));
}

#[test]
fn a_hundred_thousand_alert_names_keep_the_most_frequent_and_count_the_rest() {
    let (_, mut h) = synthetic();
    for i in 0..100_000i64 {
        // Unique names: what a templated message in the alert name does.
        h.push(&format!("Junk {i}"), &format!("host-{}", i % 30), i * 7);
    }
    let cfg = LearnConfig {
        max_types: 5,
        ..Default::default()
    };
    let l = learn(&h, &cfg).unwrap();
    assert_eq!(l.summary.types, 5);
    assert_eq!(l.summary.dropped_types, 100_000);
    assert_eq!(l.summary.dropped_occurrences, 100_000);
    assert!(has(&l, "NodeDown", "PodCrashLooping"));
}

#[test]
fn clock_jumps_far_from_the_rest_do_not_make_everything_causal() {
    let (_, mut h) = synthetic();
    // A sender with a clock ten years off: the span grows, so rates fall and every
    // pair looks rarer by chance; the independent pair must still not pass.
    h.push("DiskFull", "host-1", 10 * 365 * 86_400);
    h.push("CertExpiry", "app-1", -10 * 365 * 86_400);
    let l = learn(&h, &LearnConfig::default()).unwrap();
    assert!(has(&l, "NodeDown", "PodCrashLooping"));
    assert!(
        !l.edges
            .iter()
            .any(|e| e.cause == "DiskFull" || e.cause == "CertExpiry"),
        "{:#?}",
        l.edges
    );
}

#[test]
fn bad_settings_are_refused_by_name() {
    let bad = LearnConfig {
        fdr: 0.0,
        ..Default::default()
    };
    assert_eq!(
        learn(&History::new(), &bad).unwrap_err(),
        LearnError::Fdr(0.0)
    );
    let bad = LearnConfig {
        window_s: 0,
        ..Default::default()
    };
    assert!(bad.validate().unwrap_err().to_string().contains("window_s"));
}

#[test]
fn alerts_become_occurrences_on_their_ci_or_their_host_or_are_counted_unusable() {
    let t = topo(&[("app-1", "host-1")], &["app-1", "host-1"]);
    let mapper = CiMapper::default();
    let cfg = LearnConfig::default();
    let alert = |labels: &[(&str, &str)], status: AlertStatus| {
        let mut l = crate::alert::Labels::new();
        for (k, v) in labels {
            l.insert(k.to_string(), v.to_string());
        }
        Alert {
            fingerprint: crate::alert::Fingerprint::of_labels(&l),
            status,
            labels: l,
            annotations: Default::default(),
            starts_at: chrono::DateTime::from_timestamp(1_000, 0).unwrap(),
            ends_at: None,
            generator_url: None,
            source: crate::alert::Source::Replay,
        }
    };
    let mut h = History::new().with_topology(&t);
    let firing = AlertStatus::Firing;
    h.push_alert(
        &t,
        &mapper,
        &cfg,
        &alert(&[("alertname", "A"), ("ci", "app-1")], firing),
    );
    h.push_alert(
        &t,
        &mapper,
        &cfg,
        &alert(&[("alertname", "B"), ("instance", "db-9:9100")], firing),
    );
    // No host, only a job: no place to put it.
    h.push_alert(
        &t,
        &mapper,
        &cfg,
        &alert(&[("alertname", "C"), ("job", "nms")], firing),
    );
    // No alert name: no type.
    h.push_alert(&t, &mapper, &cfg, &alert(&[("ci", "app-1")], firing));
    // A resolve is not an occurrence.
    h.push_alert(
        &t,
        &mapper,
        &cfg,
        &alert(
            &[("alertname", "A"), ("ci", "app-1")],
            AlertStatus::Resolved,
        ),
    );
    let got: Vec<(String, String, i64)> = h
        .occ
        .iter()
        .map(|&(k, c, at)| (h.types[k as usize].clone(), h.cis[c as usize].clone(), at))
        .collect();
    assert_eq!(
        got,
        [
            ("A".to_string(), "app-1".to_string(), 1_000),
            ("B".to_string(), "db-9".to_string(), 1_000)
        ]
    );
    assert_eq!(h.unusable, 2);
}
