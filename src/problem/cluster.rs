//! Clustering a history into problem candidates.
//!
//! Why DBSCAN: the number of problems is unknown and most incidents
//! are one-offs. A density method needs no cluster count, finds clusters of any shape
//! and leaves points in sparse regions as noise, which is exactly "not part of any
//! problem"; k-means or a Gaussian mixture would put every one-off into some cluster.
//! `min_pts` is the smallest problem (three incidents, as ITIL counts recurrence). It
//! is written out here (`dbscan`, the textbook algorithm over a neighbour relation)
//! rather than taken from linfa: the relation is not one metric. A record with codes
//! only (no title, no alertname) is compared with a worded one on its codes alone, and
//! such a mixed link makes a member, never a core point (see `cluster_report`).
//!
//! Blocking keeps it fast: each incident goes to the block of the CI it points at — the
//! upstream CI its title names when it names one (within `hops`), else its own CI;
//! incidents with no CI at all go to a block per signature. DBSCAN runs per block over
//! word vectors (see `features`), so it separates different failure modes on one CI and
//! drops unrelated one-offs. Then DBSCAN's border rule is carried along the topology: a
//! noise incident joins a problem rooted at its own CI or one it depends on when it is
//! within `eps` of the centroid of that problem's incidents (a dependent's incident that
//! describes the root's failure without naming the root). Clusters that end up with the
//! same suggested root and signature are one problem and are merged (DBSCAN splits a
//! problem worded in two unrelated ways). Blocks larger than `MAX_BLOCK` are split by
//! signature, then in time order, so one pathological CI cannot make a run quadratic in
//! the whole history.
//!
//! What words cannot join is looked for in time (`bursts`): noise incidents pointing at
//! one CI with one set of codes that come together in a burst window, weekly slot or
//! daily hour; their p-values are a second family in the false-discovery correction.
//! Once the candidates are known, one that recurs weekly, daily or in a burst takes the
//! leftover records carrying its codes that fall in its pattern (`in_pattern`): a record
//! that lost its CI or its text still has its category and its time.
//!
//! A candidate rooted at an application whose incidents recur in the pattern of a
//! candidate rooted at what it depends on, saying the same, folds into that one
//! (`downstream`).
//!
//! Per cluster: the suggested root CI is the CI most of its incidents point at (ties:
//! the one their titles name most, then the one with most incidents raised on it, then
//! the nearest), with a confidence; the
//! signature is the commonest signature of its incidents on that CI; the id is
//! `PRB` + seven digits of a hash of (root CI, signature), so the same problem gets the
//! same id in every run and on every machine. Pure; no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::features::{self, Features};
use super::{
    CiCount, Explanation, HistoryRecord, ProblemCandidate, ProblemConfig, ProblemStatus,
    SuggestedRootCause,
};
use super::{bursts, downstream, recurrence, significance};
use crate::cmdb::Topology;

/// Largest block DBSCAN sees at once (the linear neighbour search is quadratic in it).
pub const MAX_BLOCK: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid problems configuration: {0}")]
    Config(String),
}

/// The problem id for a (root CI, signature) pair: `PRB` + seven digits.
pub fn problem_id(root: Option<&str>, signature: &str) -> String {
    let key = format!("{}\u{0}{}", root.unwrap_or(""), signature.to_lowercase());
    format!("PRB{:07}", features::fnv1a(key.as_bytes()) % 10_000_000)
}

/// Clusters `records` into candidates (status `candidate`), most significant first.
pub fn cluster(
    records: &[HistoryRecord],
    topo: Option<&Topology>,
    cfg: &ProblemConfig,
) -> Result<Vec<ProblemCandidate>, ClusterError> {
    cluster_report(records, topo, cfg, &[]).map(|r| r.candidates)
}

/// What a clustering run found and what it could work with.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterReport {
    pub candidates: Vec<ProblemCandidate>,
    /// Per feature (`ci`, `title`, `alertnames`, `category`, ...): how many records have it.
    pub features: BTreeMap<String, usize>,
    /// Features present on at least 1% of the records: what clustering could use.
    pub features_used: Vec<String>,
    /// Clusters tested against their base rate.
    pub tested: usize,
    /// Clusters whose incidents the base rate explains (false-discovery rate above `fdr`).
    pub not_significant: usize,
    /// Clusters larger than `max_share` of the history that no split made small enough:
    /// a feature too generic to name a problem.
    pub too_broad: usize,
    /// The largest size a candidate may have.
    pub max_size: usize,
}

/// `cluster` with the problem manager's earlier decisions (`decided`: stored problems;
/// only accepted and rejected ones count): a cluster on the root and signature of a
/// rejected problem, or holding its incidents, is judged on the incidents the manager
/// has not seen, needs twice `min_pts` of them and must be `REJECTED_PENALTY` times as
/// significant; incidents like an accepted problem's (pointing at its root, as similar
/// to its incidents as they are to each other) join it even when too few to be a
/// cluster of their own.
pub fn cluster_report(
    records: &[HistoryRecord],
    topo: Option<&Topology>,
    cfg: &ProblemConfig,
    decided: &[ProblemCandidate],
) -> Result<ClusterReport, ClusterError> {
    check(cfg)?;
    let feats: Vec<Features> = records
        .iter()
        .map(|r| features::extract(r, topo, cfg.hops))
        .collect();
    let (df, n_docs) = features::document_frequencies(feats.iter());
    let vecs: Vec<Vec<(u16, f32)>> = feats
        .iter()
        .map(|f| features::vector(f, &df, n_docs))
        .collect();
    let keys: Vec<String> = feats.iter().map(block_key).collect();
    let mut blocks: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        blocks.entry(k.as_str()).or_default().push(i);
    }
    let mut clusters = dbscan_blocks(&blocks, records, &feats, &vecs, cfg);
    attach(&mut clusters, records, &feats, &vecs, cfg);
    let mut clusters = merge_same_problem(clusters, &feats);
    let index: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let accepted = absorb_into_accepted(&mut clusters, decided, &index, &feats, &vecs, cfg);
    // Bounded: a cluster larger than the cap is split by its exact coded signature;
    // parts still too large are a feature too generic to name a problem.
    let max_size = ((cfg.max_share * records.len() as f64).floor() as usize).max(MIN_CAP);
    let mut taken = vec![false; records.len()];
    for &i in clusters.iter().flatten() {
        taken[i] = true;
    }
    let (mut bounded, too_broad, freed) = bound(clusters, &accepted, &feats, max_size, cfg.min_pts);
    // A part of an over-broad cluster too small to be a cluster of its own is noise
    // again: as free as any to come together in time (see `bound`).
    for i in freed {
        taken[i] = false;
    }
    let rejected: Vec<&ProblemCandidate> = decided
        .iter()
        .filter(|p| p.status == ProblemStatus::Rejected)
        .collect();
    let rejected_ids: HashSet<&str> = rejected
        .iter()
        .flat_map(|p| p.incident_ids.iter().map(String::as_str))
        .collect();
    let block_size: HashMap<&str, usize> = blocks.iter().map(|(k, v)| (*k, v.len())).collect();
    let stride = (records.len() / SAMPLE).max(1);
    let min_sim = 1.0 - cfg.eps * cfg.eps / 2.0;
    let test_one = |c: &Vec<usize>, pre: Option<(f64, f64)>| -> Test {
        let root = suggest_root(c, &feats).map(|(r, _)| r);
        let scope = match &root {
            Some(r) => format!("ci:{r}"),
            None => commonest(c.iter().map(|&i| keys[i].as_str())),
        };
        let member: HashSet<usize> = c.iter().copied().collect();
        let scope_n = block_size.get(scope.as_str()).copied().unwrap_or(0)
            + c.iter().filter(|&&i| keys[i] != scope).count();
        let cen = centroid(c, &vecs);
        let mut sims: Vec<f64> = c
            .iter()
            .map(|&i| features::cosine(&vecs[i], &cen))
            .collect();
        sims.sort_by(f64::total_cmp);
        let thr = sims[sims.len() / 4].min(min_sim.max(0.05));
        let (mut hits, mut seen) = (0usize, 0usize);
        for i in (0..records.len()).step_by(stride) {
            if member.contains(&i) || keys[i] == scope {
                continue;
            }
            seen += 1;
            if features::cosine(&vecs[i], &cen) >= thr {
                hits += 1;
            }
        }
        let n = c.len();
        let lo = c
            .iter()
            .map(|&i| records[i].opened_at)
            .min()
            .unwrap_or_default();
        let hi = c
            .iter()
            .map(|&i| records[i].opened_at)
            .max()
            .unwrap_or_default();
        // The share of the scope's other volume that falls in the cluster's span (padded
        // half a day each side): under the null its look-alikes are spread in time as the
        // scope's other incidents are (histories are not uniform: an export's early years
        // are thin).
        let pad = chrono::Duration::hours(12);
        let others_in_span = blocks
            .get(scope.as_str())
            .map(|b| {
                b.iter()
                    .filter(|&&i| {
                        !member.contains(&i)
                            && records[i].opened_at >= lo - pad
                            && records[i].opened_at <= hi + pad
                    })
                    .count()
            })
            .unwrap_or(0);
        let others = scope_n.saturating_sub(n);
        let window = ((others_in_span as f64 + 1.0) / (others as f64 + 1.0)).min(1.0);
        let (expected, p_test) = if let Some(pre) = pre {
            pre
        } else if root.is_some() {
            // A CI: how many incidents this alike its volume brings, over the whole
            // history and over the cluster's own span.
            let rate = (hits as f64 + 0.5) / (seen as f64 + 1.0);
            let expected = scope_n as f64 * rate;
            let p_all = significance::poisson_sf(n, expected);
            let p_win = significance::poisson_sf(n, expected * window);
            (expected, (2.0 * p_all.min(p_win)).min(1.0))
        } else {
            // No CI: a service, location or category has no "elsewhere" to compare with,
            // so only a burst counts: the scope's incidents this alike over the whole
            // history, scaled to the cluster's span.
            let alike = blocks
                .get(scope.as_str())
                .map(|b| {
                    b.iter()
                        .filter(|&&i| features::cosine(&vecs[i], &cen) >= thr)
                        .count()
                })
                .unwrap_or(0)
                .max(n);
            let expected = alike as f64 * window;
            (expected, significance::poisson_sf(n, expected))
        };
        let mut sig_counts: HashMap<String, usize> = HashMap::new();
        for &i in c {
            *sig_counts
                .entry(features::normalise_alertname(&feats[i].signature))
                .or_default() += 1;
        }
        let mix = significance::effective_number(&sig_counts.values().copied().collect::<Vec<_>>());
        let signature = signature_of(c, &feats, root.as_deref());
        let was_rejected = rejected.iter().any(|p| {
            p.suggested_root_cause.ci_id == root
                && p.suggested_root_cause
                    .signature
                    .eq_ignore_ascii_case(&signature)
        }) || c
            .iter()
            .any(|&i| rejected_ids.contains(records[i].id.as_str()));
        // Mixed signatures need stronger evidence where words formed the cluster (generic
        // words can bridge two failures). A group found in time was formed on its CI,
        // codes and timing alone: a database's alert and its dependents' own symptom
        // alerts are the shape it looks for, and its scan is already paid for.
        let is_scan = pre.is_some();
        let mut p = if is_scan { p_test } else { p_test * mix };
        if was_rejected {
            // What the manager rejected is explained; only the incidents they have not
            // seen count, twice as many as a problem needs, and REJECTED_PENALTY times
            // as significant.
            let unseen = c
                .iter()
                .filter(|&&i| !rejected_ids.contains(records[i].id.as_str()))
                .count();
            p = if unseen < 2 * cfg.min_pts {
                1.0
            } else {
                significance::poisson_sf(unseen, expected) * mix * REJECTED_PENALTY
            };
        }
        let weak: Vec<String> = c
            .iter()
            .filter(|&&i| features::cosine(&vecs[i], &cen) < min_sim)
            .map(|&i| records[i].id.clone())
            .collect();
        Test {
            scope,
            scope_n,
            expected,
            p: p.min(1.0),
            mix,
            was_rejected,
            weak,
            shared: shared_atoms(c, &feats, &df),
        }
    };
    let mut tests: Vec<Test> = bounded.iter().map(|(c, _)| test_one(c, None)).collect();
    // What words could not join: noise incidents pointing at one CI with one set of codes
    // that come together in time (see `bursts`). They carry their own significance.
    let (found, burst_others) = bursts::find(records, &feats, &taken, cfg.min_pts);
    let mut scanned: HashMap<usize, (f64, f64)> = HashMap::new();
    for b in found {
        if b.members.len() <= max_size {
            scanned.insert(bounded.len(), (b.expected, b.p));
            tests.push(test_one(&b.members, Some((b.expected, b.p))));
            bounded.push((b.members, false));
        }
    }
    // Two families of tests, each corrected on its own (see `q_values`).
    let q = q_values(&tests, &scanned, &burst_others);
    let tested = tests.len();
    let mut kept: Vec<bool> = bounded
        .iter()
        .zip(&q)
        .map(|((_, acc), q)| *q <= cfg.fdr || *acc)
        .collect();
    let not_significant = kept.iter().filter(|k| !**k).count();
    // A candidate seen from downstream folds into its root's (see `downstream`): the
    // merged one carries the stronger significance of the two.
    let (mut q, mut tests) = (q, tests);
    let alike_tests = tests.len() - scanned.len();
    for (a, into) in downstream::fold(&bounded, &kept, records, &feats)
        .into_iter()
        .enumerate()
    {
        if let Some((b, moved)) = into {
            // What stays behind (not in the pattern) is a candidate of its own only when
            // it still has `min_pts` incidents and is significant on its own: the
            // evidence of the incidents that moved went with them. It is tested again as
            // alike incidents (its time pattern left with the moved ones); formed after
            // the fact, it gets no rank in the false-discovery correction, only the
            // Bonferroni bound over the family of alike clusters.
            if moved.is_empty() {
                continue;
            }
            bounded[a].0.retain(|i| !moved.contains(i));
            bounded[b].0.extend(moved);
            q[b] = q[b].min(q[a]);
            tests[b].p = tests[b].p.min(tests[a].p);
            if bounded[a].0.len() < cfg.min_pts {
                bounded[a].0.clear();
                kept[a] = false;
                continue;
            }
            let again = test_one(&bounded[a].0, None);
            let q_again = (again.p * alike_tests as f64).min(1.0);
            if q_again.max(q[a]) > cfg.fdr {
                bounded[a].0.clear();
                kept[a] = false;
            } else {
                q[a] = q_again.max(q[a]);
                tests[a] = again;
            }
        }
    }
    let extra = in_pattern(&bounded, &kept, records, &feats);
    let mut out: Vec<ProblemCandidate> = Vec::new();
    for ((((c, _), t), q), (kept, extra)) in
        bounded.iter().zip(tests).zip(q).zip(kept.iter().zip(extra))
    {
        if !kept {
            continue;
        }
        let mut c = c.clone();
        c.extend(extra);
        c.sort_unstable();
        let c = &c;
        let mut cand = candidate(c, records, &feats);
        cand.observed = c.len();
        cand.expected = (t.expected * 1000.0).round() / 1000.0;
        cand.p_value = t.p;
        cand.q_value = q;
        cand.explanation = Some(Explanation {
            scope: t.scope,
            scope_incidents: t.scope_n,
            shared_signature: t.shared,
            signatures_mixed: (t.mix * 100.0).round() / 100.0,
            weak_incidents: t.weak,
            rejected_before: t.was_rejected,
        });
        out.push(cand);
    }
    unique_ids_and_rank(&mut out);
    let (features, features_used) = feature_coverage(records);
    Ok(ClusterReport {
        candidates: out,
        features,
        features_used,
        tested,
        not_significant,
        too_broad,
        max_size,
    })
}

/// Refuses settings no clustering can run with.
fn check(cfg: &ProblemConfig) -> Result<(), ClusterError> {
    if !(cfg.eps.is_finite() && cfg.eps > 0.0) {
        return Err(ClusterError::Config(format!(
            "eps must be a positive number, not {}",
            cfg.eps
        )));
    }
    if cfg.min_pts < 2 {
        return Err(ClusterError::Config(format!(
            "min_pts must be at least 2, not {}",
            cfg.min_pts
        )));
    }
    if !(cfg.fdr > 0.0 && cfg.fdr <= 1.0) {
        return Err(ClusterError::Config(format!(
            "fdr must be in (0, 1], not {}",
            cfg.fdr
        )));
    }
    if !(cfg.max_share > 0.0 && cfg.max_share <= 1.0) {
        return Err(ClusterError::Config(format!(
            "max_share must be in (0, 1], not {}",
            cfg.max_share
        )));
    }
    Ok(())
}

/// DBSCAN per block (see the module docs): the clusters of alike incidents.
fn dbscan_blocks(
    blocks: &BTreeMap<&str, Vec<usize>>,
    records: &[HistoryRecord],
    feats: &[Features],
    vecs: &[Vec<(u16, f32)>],
    cfg: &ProblemConfig,
) -> Vec<Vec<usize>> {
    // A record with codes only (no title, no alertname) is compared with a worded one on
    // the codes it has (the worded one's vector restricted to them): its few dimensions
    // would otherwise keep it out of every neighbourhood of worded incidents.
    let worded: Vec<bool> = records
        .iter()
        .map(|r| r.title.is_some() || !r.alertnames.is_empty())
        .collect();
    let norm2: Vec<f64> = vecs
        .iter()
        .map(|v| v.iter().map(|&(_, w)| f64::from(w).powi(2)).sum())
        .collect();
    let eps2 = cfg.eps * cfg.eps;
    let near = |i: usize, j: usize| -> bool {
        if worded[i] == worded[j] {
            norm2[i] + norm2[j] - 2.0 * features::cosine(&vecs[i], &vecs[j]) <= eps2
        } else {
            let (c, w) = if worded[i] { (j, i) } else { (i, j) };
            !vecs[c].is_empty()
                && vecs[c]
                    .iter()
                    .all(|(d, _)| vecs[w].binary_search_by_key(d, |x| x.0).is_ok())
                && 2.0 - 2.0 * restricted_cosine(&vecs[c], &vecs[w]) <= eps2
        }
    };
    // Mixed links make members, not cores: a worded incident is a core point only with
    // another worded one among its neighbours, a codes-only one only on codes-only
    // neighbours. Otherwise one codes-only record sharing a common category with three
    // unrelated worded one-offs would make them a cluster.
    let core_ok = |i: usize, nb: &[usize]| -> bool {
        let same = nb.iter().filter(|&&j| worded[j] == worded[i]).count();
        if worded[i] {
            nb.len() >= cfg.min_pts && same >= 2
        } else {
            same >= cfg.min_pts
        }
    };
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for block in blocks.values() {
        for part in split_block(block.clone(), feats, records) {
            if part.len() < cfg.min_pts {
                continue;
            }
            let labels = dbscan(&part, cfg.min_pts, near, core_ok);
            let mut by_label: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (row, l) in labels.iter().enumerate() {
                if let Some(l) = l {
                    by_label.entry(*l).or_default().push(part[row]);
                }
            }
            clusters.extend(by_label.into_values().filter(|c| c.len() >= cfg.min_pts));
        }
    }
    clusters
}

/// Clusters with whether each is an accepted problem's.
type Bounded = Vec<(Vec<usize>, bool)>;

/// A cluster larger than `max_size` split by its exact set of words and codes; parts
/// still too large are dropped and counted (too broad). Accepted problems are never split.
/// With whether each is an accepted problem's, and the incidents of parts smaller than
/// `min_pts` (freed: a cluster that generic words chained past the cap may hide a
/// problem that only its timing shows, and those incidents are no cluster's any more).
fn bound(
    clusters: Vec<Vec<usize>>,
    accepted: &HashSet<usize>,
    feats: &[Features],
    max_size: usize,
    min_pts: usize,
) -> (Bounded, usize, Vec<usize>) {
    let mut too_broad = 0;
    let mut freed = Vec::new();
    let mut bounded: Vec<(Vec<usize>, bool)> = Vec::new();
    for (k, c) in clusters.into_iter().enumerate() {
        let is_accepted = accepted.contains(&k);
        if c.len() <= max_size || is_accepted {
            bounded.push((c, is_accepted));
            continue;
        }
        let mut parts: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
        for i in c {
            let mut key: Vec<&str> = feats[i].words.iter().map(String::as_str).collect();
            key.sort_unstable();
            key.dedup();
            parts.entry(key).or_default().push(i);
        }
        for p in parts.into_values() {
            if p.len() > max_size {
                too_broad += 1;
            } else if p.len() >= min_pts {
                bounded.push((p, false));
            } else {
                freed.extend(p);
            }
        }
    }
    (bounded, too_broad, freed)
}

/// Benjamini–Hochberg q-values, two families each corrected on its own: clusters of
/// alike incidents, and groups joined by codes and time alone (`scanned`, with
/// `burst_others`, the groups tested and not found). Pooled, the many strong clusters of
/// the first would lift a weak coincidence of the second over the bar.
fn q_values(
    tests: &[Test],
    scanned: &HashMap<usize, (f64, f64)>,
    burst_others: &[f64],
) -> Vec<f64> {
    let (mut p_alike, mut p_time): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for (k, t) in tests.iter().enumerate() {
        if scanned.contains_key(&k) {
            p_time.push(t.p);
        } else {
            p_alike.push(t.p);
        }
    }
    p_time.extend(burst_others);
    let (q_alike, q_time) = (significance::bh(&p_alike), significance::bh(&p_time));
    let (mut a, mut b) = (q_alike.into_iter(), q_time.into_iter());
    (0..tests.len())
        .map(|k| {
            let next = if scanned.contains_key(&k) {
                b.next()
            } else {
                a.next()
            };
            next.unwrap_or(1.0)
        })
        .collect()
}

/// Two clusters on the same (root, signature) would share an id: ids are kept unique and
/// deterministic by giving the bigger one the plain id. Then most significant first.
fn unique_ids_and_rank(out: &mut [ProblemCandidate]) {
    out.sort_by(|a, b| {
        a.id.cmp(&b.id)
            .then(b.incident_ids.len().cmp(&a.incident_ids.len()))
            .then(a.incident_ids.cmp(&b.incident_ids))
    });
    let mut used: HashSet<String> = HashSet::new();
    for c in out.iter_mut() {
        let mut id = c.id.clone();
        let mut k = 1u64;
        while used.contains(&id) {
            id = problem_id(
                c.suggested_root_cause.ci_id.as_deref(),
                &format!("{}#{k}", c.suggested_root_cause.signature),
            );
            k += 1;
        }
        used.insert(id.clone());
        c.id = id;
    }
    out.sort_by(|a, b| {
        a.q_value
            .total_cmp(&b.q_value)
            .then(a.p_value.total_cmp(&b.p_value))
            .then(b.score.total_cmp(&a.score))
            .then(a.id.cmp(&b.id))
    });
}

/// Records no candidate holds that fall in a candidate's recurring slot or burst window
/// with its codes: per cluster of `bounded`, the records it takes (see the module docs).
/// A record with a CI must point at the candidate's root; one pointing nowhere joins on
/// codes and time alone. A record that several candidates could take joins the one whose
/// root is nearest upstream of its CI, and none when that does not decide.
fn in_pattern(
    bounded: &[(Vec<usize>, bool)],
    kept: &[bool],
    records: &[HistoryRecord],
    feats: &[Features],
) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); bounded.len()];
    let mut held = vec![false; records.len()];
    // (cluster, root, codes most members carry, pattern)
    let mut pats: Vec<(usize, Option<String>, Vec<&str>, super::Recurrence)> = Vec::new();
    for (k, (c, _)) in bounded.iter().enumerate() {
        if !kept[k] {
            continue;
        }
        for &i in c {
            held[i] = true;
        }
        let rec = recurrence::analyse(&c.iter().map(|&i| records[i].opened_at).collect::<Vec<_>>());
        if rec.kind == recurrence::PatternKind::Irregular {
            continue;
        }
        let codes = majority_codes(c, feats);
        if codes.is_empty() {
            continue;
        }
        pats.push((k, suggest_root(c, feats).map(|(r, _)| r), codes, rec));
    }
    for (i, f) in feats.iter().enumerate() {
        if held[i] {
            continue;
        }
        let codes = bursts::codes(f);
        if codes.is_empty() {
            continue;
        }
        let t = records[i].opened_at;
        // (hops from the record's CI to the root, cluster); u32::MAX without a CI.
        let mut fits: Vec<(u32, usize)> = Vec::new();
        for (k, root, pc, rec) in &pats {
            if *pc != codes {
                continue;
            }
            let hops = match (&f.ci, root) {
                (None, _) => u32::MAX,
                (Some(_), Some(r)) => match f.neighbourhood.iter().find(|(c, _)| c == r) {
                    Some((_, h)) => *h,
                    None => continue,
                },
                (Some(_), None) => continue,
            };
            if fits_pattern(rec, t) {
                fits.push((hops, *k));
            }
        }
        fits.sort_unstable();
        match fits.as_slice() {
            [] => {}
            [(_, k)] => out[*k].push(i),
            [(h0, k), (h1, _), ..] if h0 < h1 => out[*k].push(i),
            _ => {}
        }
    }
    out
}

/// The codes (category, subcategory, symptom, closure code) more than half of `members`
/// carry, sorted.
pub(super) fn majority_codes<'a>(members: &[usize], feats: &'a [Features]) -> Vec<&'a str> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in members {
        for a in bursts::codes(&feats[i]) {
            *counts.entry(a).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, n)| n * 2 > members.len())
        .map(|(a, _)| a)
        .collect()
}

/// Whether `t` falls in the pattern `rec`: its weekday and hour within a week of its
/// first and last incident (weekly), its hour within a day of them (daily), where the
/// burst stays within `BURST_DAYS` (burst); never for an irregular one.
pub(super) fn fits_pattern(rec: &super::Recurrence, t: chrono::DateTime<chrono::Utc>) -> bool {
    let day = chrono::Duration::days(1);
    let week = chrono::Duration::days(7);
    let burst = chrono::Duration::days(recurrence::BURST_DAYS);
    match rec.kind {
        recurrence::PatternKind::Weekly => {
            recurrence::in_slot(rec, t) && t >= rec.first_seen - week && t <= rec.last_seen + week
        }
        recurrence::PatternKind::Daily => {
            recurrence::in_slot(rec, t) && t >= rec.first_seen - day && t <= rec.last_seen + day
        }
        recurrence::PatternKind::Burst => t >= rec.last_seen - burst && t <= rec.first_seen + burst,
        recurrence::PatternKind::Irregular => false,
    }
}

/// The cap on a candidate's size never goes below this many incidents: half a year of a
/// problem that recurs every few days is a problem, not a generic feature, however short
/// the history.
pub const MIN_CAP: usize = 50;

/// How many out-of-scope incidents the base rate of a cluster is estimated on (a
/// deterministic stride sample of the history).
const SAMPLE: usize = 4000;

/// How many times as significant a cluster must be to be proposed again after a
/// problem manager rejected its root and signature (or its incidents).
pub const REJECTED_PENALTY: f64 = 20.0;

struct Test {
    scope: String,
    scope_n: usize,
    expected: f64,
    p: f64,
    mix: f64,
    was_rejected: bool,
    weak: Vec<String>,
    shared: Vec<String>,
}

/// The block an incident's base rate and clustering belong to: the upstream CI its
/// title names, else its CI, else its service or location, else its signature.
fn block_key(f: &Features) -> String {
    match (&f.named, &f.ci, &f.scope) {
        (Some((named, _)), _, _) => format!("ci:{named}"),
        (None, Some(ci), _) => format!("ci:{ci}"),
        (None, None, Some(s)) => s.clone(),
        (None, None, None) => format!("sig:{}", f.signature.to_lowercase()),
    }
}

/// Words and coded values at least half of the members share, most specific first.
fn shared_atoms(members: &[usize], feats: &[Features], df: &HashMap<String, u32>) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for &i in members {
        let mut ws: Vec<&str> = feats[i].words.iter().map(String::as_str).collect();
        ws.sort_unstable();
        ws.dedup();
        for w in ws {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut shared: Vec<(&str, u32)> = counts
        .into_iter()
        .filter(|(_, c)| c * 2 >= members.len())
        .map(|(w, _)| (w, df.get(w).copied().unwrap_or(0)))
        .collect();
    shared.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
    shared
        .into_iter()
        .take(8)
        .map(|(w, _)| w.to_string())
        .collect()
}

fn feature_coverage(records: &[HistoryRecord]) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        let mut add = |k: &str, present: bool| {
            *m.entry(k.to_string()).or_default() += usize::from(present);
        };
        add("ci", r.ci.is_some());
        add("title", r.title.is_some());
        add("alertnames", !r.alertnames.is_empty());
        add("category", r.category.is_some());
        add("subcategory", r.subcategory.is_some());
        add("symptom", r.symptom.is_some());
        add("closure_code", r.closure_code.is_some());
        add("service", r.service.is_some());
        add("location", r.location.is_some());
        add("ci_class", r.ci_class.is_some());
        add("assignment_group", r.assignment_group.is_some());
    }
    let used = m
        .iter()
        .filter(|(_, n)| **n * 100 >= records.len().max(1))
        .map(|(k, _)| k.clone())
        .collect();
    (m, used)
}

/// Accepted problems take their stored incidents that are in this history, and every
/// incident not in a cluster that points at the problem's root and is as close to the
/// problem's incidents as `eps` asks; clusters holding an accepted problem's incidents
/// merge into it. Returns the indices (in `clusters`) of the accepted problems' clusters.
fn absorb_into_accepted(
    clusters: &mut Vec<Vec<usize>>,
    decided: &[ProblemCandidate],
    index: &HashMap<&str, usize>,
    feats: &[Features],
    vecs: &[Vec<(u16, f32)>],
    cfg: &ProblemConfig,
) -> HashSet<usize> {
    let min_sim = 1.0 - cfg.eps * cfg.eps / 2.0;
    let mut out = HashSet::new();
    for p in decided
        .iter()
        .filter(|p| p.status == ProblemStatus::Accepted)
    {
        let known: Vec<usize> = p
            .incident_ids
            .iter()
            .filter_map(|id| index.get(id.as_str()).copied())
            .collect();
        if known.is_empty() {
            continue;
        }
        let known_set: HashSet<usize> = known.iter().copied().collect();
        // Clusters sharing an incident with it fold into it.
        let mut members: Vec<usize> = known.clone();
        let mut keep: Vec<Vec<usize>> = Vec::new();
        for c in clusters.drain(..) {
            if c.iter().any(|i| known_set.contains(i)) {
                members.extend(c);
            } else {
                keep.push(c);
            }
        }
        *clusters = keep;
        let in_cluster: HashSet<usize> = clusters.iter().flatten().copied().collect();
        let cen = centroid(&known, vecs);
        let root = p.suggested_root_cause.ci_id.as_deref();
        for (i, f) in feats.iter().enumerate() {
            if in_cluster.contains(&i) || members.contains(&i) {
                continue;
            }
            let points = match root {
                Some(r) => f.neighbourhood.iter().any(|(c, _)| c == r),
                None => true,
            };
            if points && features::cosine(&vecs[i], &cen) >= min_sim {
                members.push(i);
            }
        }
        members.sort_unstable();
        members.dedup();
        out.insert(clusters.len());
        clusters.push(members);
    }
    out
}

/// The border rule of DBSCAN carried along the topology: an incident left as noise joins
/// the problem of a CI in its neighbourhood (itself or upstream) when it is within `eps`
/// of that problem's centroid (the mean of its incidents: a single look-alike member is
/// not enough, or generic symptoms would chain unrelated incidents in). An incident whose
/// title names the root, or that falls in the problem's weekly or daily slot, needs half
/// that similarity. This is how a dependent's incident that does not
/// name the root still lands on the root's problem. Judged against the clusters as
/// DBSCAN left them, so the result does not depend on the order of incidents.
fn attach(
    clusters: &mut [Vec<usize>],
    records: &[HistoryRecord],
    feats: &[Features],
    vecs: &[Vec<(u16, f32)>],
    cfg: &ProblemConfig,
) {
    let min_sim = 1.0 - cfg.eps * cfg.eps / 2.0;
    let mut in_cluster = vec![false; feats.len()];
    let mut by_root: HashMap<String, Vec<usize>> = HashMap::new();
    for (k, c) in clusters.iter().enumerate() {
        for &i in c {
            in_cluster[i] = true;
        }
        if let Some(root) = suggest_root(c, feats).map(|(r, _)| r) {
            by_root.entry(root).or_default().push(k);
        }
    }
    let centroids: Vec<Vec<(u16, f32)>> = clusters.iter().map(|c| centroid(c, vecs)).collect();
    let patterns: Vec<_> = clusters
        .iter()
        .map(|c| recurrence::analyse(&c.iter().map(|&i| records[i].opened_at).collect::<Vec<_>>()))
        .collect();
    let mut joins: Vec<(usize, usize)> = Vec::new();
    for (i, f) in feats.iter().enumerate() {
        if in_cluster[i] || vecs[i].is_empty() {
            continue;
        }
        // A record with codes only (no title, no alertname) has too few dimensions for a
        // cosine against a centroid of worded incidents: it joins a problem on its own CI
        // when its codes are the problem's codes (the centroid restricted to them points
        // the same way).
        let codes_only = records[i].title.is_none() && records[i].alertnames.is_empty();
        let mut best: Option<(f64, usize)> = None;
        for (ci, hop) in &f.neighbourhood {
            if codes_only && *hop == 0 {
                for &k in by_root.get(ci).map(Vec::as_slice).unwrap_or(&[]) {
                    let sim = restricted_cosine(&vecs[i], &centroids[k]);
                    if sim >= CODES_ONLY_SIM
                        && best.is_none_or(|(b, bk)| sim > b || (sim == b && k < bk))
                    {
                        best = Some((sim, k));
                    }
                }
            }
            // An incident that names the root says where it comes from, and one on a
            // dependent at the problem's weekly or daily slot fails when the problem
            // does: its words only have to pick which of that CI's problems, so half the
            // similarity will do.
            let named = f.named.as_ref().is_some_and(|(n, _)| n == ci);
            for &k in by_root.get(ci).map(Vec::as_slice).unwrap_or(&[]) {
                let sim = features::cosine(&vecs[i], &centroids[k]);
                let need = if named || recurrence::in_slot(&patterns[k], records[i].opened_at) {
                    min_sim / 2.0
                } else {
                    min_sim
                };
                if sim >= need && best.is_none_or(|(b, bk)| sim > b || (sim == b && k < bk)) {
                    best = Some((sim, k));
                }
            }
        }
        if let Some((_, k)) = best {
            joins.push((k, i));
        }
    }
    for (k, i) in joins {
        clusters[k].push(i);
    }
}

/// How closely a codes-only record's codes must match a problem's (see `attach`).
const CODES_ONLY_SIM: f64 = 0.9;

/// The cosine of `v` and `c` restricted to the dimensions `v` has.
fn restricted_cosine(v: &[(u16, f32)], c: &[(u16, f32)]) -> f64 {
    let (mut dot, mut cn) = (0.0f64, 0.0f64);
    let mut j = 0;
    for &(d, x) in v {
        while j < c.len() && c[j].0 < d {
            j += 1;
        }
        if j < c.len() && c[j].0 == d {
            dot += f64::from(x) * f64::from(c[j].1);
            cn += f64::from(c[j].1).powi(2);
        }
    }
    if cn == 0.0 { 0.0 } else { dot / cn.sqrt() }
}

/// DBSCAN over `part` (indices into the history) with the neighbour relation `near`
/// (symmetric; a point is its own neighbour): a label per position, `None` for noise. A
/// point with at least `min_pts` neighbours is a core point; a cluster is what its core
/// points reach, taking along the non-core neighbours (border points) they touch first.
fn dbscan(
    part: &[usize],
    min_pts: usize,
    near: impl Fn(usize, usize) -> bool,
    core_ok: impl Fn(usize, &[usize]) -> bool,
) -> Vec<Option<usize>> {
    let n = part.len();
    let mut nb: Vec<Vec<usize>> = (0..n).map(|a| vec![a]).collect();
    for a in 0..n {
        for b in a + 1..n {
            if near(part[a], part[b]) {
                nb[a].push(b);
                nb[b].push(a);
            }
        }
    }
    for l in &mut nb {
        l.sort_unstable();
    }
    let core: Vec<bool> = (0..n)
        .map(|a| {
            let ids: Vec<usize> = nb[a].iter().map(|&b| part[b]).collect();
            ids.len() >= min_pts && core_ok(part[a], &ids)
        })
        .collect();
    let mut label: Vec<Option<usize>> = vec![None; n];
    let mut queued = vec![false; n];
    let mut queue: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut next = 0;
    for i in 0..n {
        if label[i].is_some() || !core[i] {
            continue;
        }
        for &m in &nb[i] {
            if m != i && label[m].is_none() {
                queued[m] = true;
                queue.push_back(m);
            }
        }
        label[i] = Some(next);
        while let Some(c) = queue.pop_front() {
            queued[c] = false;
            let fresh: Vec<usize> = nb[c]
                .iter()
                .copied()
                .filter(|&m| m != c && label[m].is_none())
                .collect();
            label[c] = Some(next);
            if core[c] {
                for m in fresh {
                    if !queued[m] {
                        queued[m] = true;
                        queue.push_back(m);
                    }
                }
            }
        }
        next += 1;
    }
    label
}

/// The unit-length mean of the members' vectors, sparse.
fn centroid(members: &[usize], vecs: &[Vec<(u16, f32)>]) -> Vec<(u16, f32)> {
    let mut acc: BTreeMap<u16, f64> = BTreeMap::new();
    for &m in members {
        for &(d, w) in &vecs[m] {
            *acc.entry(d).or_default() += f64::from(w);
        }
    }
    let norm = acc.values().map(|w| w * w).sum::<f64>().sqrt();
    if norm == 0.0 {
        return Vec::new();
    }
    acc.into_iter()
        .map(|(d, w)| (d, (w / norm) as f32))
        .collect()
}

/// Clusters with the same suggested root and signature are one problem (and would get
/// one id): DBSCAN splits a problem whose incidents are worded in two unrelated ways.
fn merge_same_problem(clusters: Vec<Vec<usize>>, feats: &[Features]) -> Vec<Vec<usize>> {
    let mut by_key: BTreeMap<(Option<String>, String), Vec<usize>> = BTreeMap::new();
    for c in clusters {
        let root = suggest_root(&c, feats).map(|(r, _)| r);
        let sig = features::normalise_alertname(&signature_of(&c, feats, root.as_deref()));
        by_key.entry((root, sig)).or_default().extend(c);
    }
    by_key
        .into_values()
        .map(|mut c| {
            c.sort_unstable();
            c.dedup();
            c
        })
        .collect()
}

/// The commonest signature among the incidents raised on the root (all, when none is).
pub(super) fn signature_of(members: &[usize], feats: &[Features], root: Option<&str>) -> String {
    let on_root: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| root.is_some() && feats[i].ci.as_deref() == root)
        .collect();
    let from = if on_root.is_empty() {
        members
    } else {
        &on_root[..]
    };
    commonest(from.iter().map(|&i| feats[i].signature.as_str()))
}

/// The CI most of `members` point at (through the topology); ties to the one their
/// titles name most (incidents on an application that say "deadlocks on db-13" point a
/// problem manager at the database, not at the application they were raised on), then
/// the one most were raised on or name, then the nearest; with (support, named or on it).
pub(super) fn suggest_root(
    members: &[usize],
    feats: &[Features],
) -> Option<(String, (usize, usize))> {
    // support: incidents pointing at a CI; named: incidents whose title names it (an
    // upstream CI); direct: raised on it or naming it; hops: total distance.
    let mut stats: HashMap<&str, (usize, usize, usize, u64)> = HashMap::new();
    for &i in members {
        for (ci, hops) in &feats[i].neighbourhood {
            let e = stats.entry(ci.as_str()).or_default();
            e.0 += 1;
            let named = feats[i].named.as_ref().is_some_and(|(n, _)| n == ci);
            e.1 += usize::from(named);
            e.2 += usize::from(*hops == 0 || named);
            e.3 += u64::from(*hops);
        }
    }
    stats
        .iter()
        .max_by(|a, b| {
            (a.1.0, a.1.1, a.1.2)
                .cmp(&(b.1.0, b.1.1, b.1.2))
                .then(b.1.3.cmp(&a.1.3))
                .then(b.0.cmp(a.0))
        })
        .map(|(ci, s)| (ci.to_string(), (s.0, s.2)))
}

fn split_block(
    block: Vec<usize>,
    feats: &[Features],
    records: &[HistoryRecord],
) -> Vec<Vec<usize>> {
    if block.len() <= MAX_BLOCK {
        return vec![block];
    }
    let mut by_sig: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in block {
        by_sig
            .entry(feats[i].signature.to_lowercase())
            .or_default()
            .push(i);
    }
    let mut out = Vec::new();
    for mut part in by_sig.into_values() {
        if part.len() <= MAX_BLOCK {
            out.push(part);
        } else {
            part.sort_by_key(|&i| records[i].opened_at);
            out.extend(part.chunks(MAX_BLOCK).map(<[usize]>::to_vec));
        }
    }
    out
}

fn candidate(members: &[usize], records: &[HistoryRecord], feats: &[Features]) -> ProblemCandidate {
    let n = members.len();
    let root = suggest_root(members, feats);
    let confidence = match &root {
        Some((_, (support, direct))) => {
            let s = *support as f64 / n as f64;
            let d = *direct as f64 / n as f64;
            ((s * (0.5 + 0.5 * d)) * 100.0).round() / 100.0
        }
        None => 0.0,
    };
    let root_ci = root.map(|(c, _)| c);
    let signature = signature_of(members, feats, root_ci.as_deref());
    let mut ids: Vec<String> = members.iter().map(|&i| records[i].id.clone()).collect();
    ids.sort();
    let times: Vec<_> = members.iter().map(|&i| records[i].opened_at).collect();
    let rec = recurrence::analyse(&times);
    let mut hours_lost = 0.0;
    let mut raw = 0.0;
    for &i in members {
        let r = &records[i];
        let h = r
            .resolved_at
            .map(|e| (e - r.opened_at).num_seconds().max(0) as f64 / 3600.0)
            .unwrap_or(0.0);
        hours_lost += h;
        let w = f64::from(6 - r.priority.unwrap_or(3).clamp(1, 5)) / 5.0;
        raw += w * (1.0 + (1.0 + h).ln());
    }
    // ~10 priority-1 incidents of an hour each score about 0.8.
    let score = ((1.0 - (-raw / 10.0).exp()) * 1000.0).round() / 1000.0;
    let mut cis: HashMap<&str, usize> = HashMap::new();
    for &i in members {
        if let Some(c) = &feats[i].ci {
            *cis.entry(c.as_str()).or_default() += 1;
        }
    }
    let mut cis: Vec<CiCount> = cis
        .into_iter()
        .map(|(c, k)| CiCount {
            ci_id: c.to_string(),
            incidents: k,
        })
        .collect();
    cis.sort_by(|a, b| b.incidents.cmp(&a.incidents).then(a.ci_id.cmp(&b.ci_id)));
    let title = format!(
        "{}: {} recurs ({} incidents{})",
        root_ci.as_deref().unwrap_or("unknown CI"),
        signature,
        n,
        match rec.kind {
            recurrence::PatternKind::Irregular => String::new(),
            _ => format!(", {}", rec.pattern),
        }
    );
    ProblemCandidate {
        id: problem_id(root_ci.as_deref(), &signature),
        status: ProblemStatus::Candidate,
        title,
        incident_ids: ids,
        suggested_root_cause: SuggestedRootCause {
            ci_id: root_ci,
            signature,
            confidence,
        },
        recurrence: rec,
        score,
        cis,
        hours_lost: (hours_lost * 10.0).round() / 10.0,
        observed: n,
        expected: 0.0,
        p_value: 1.0,
        q_value: 1.0,
        explanation: None,
    }
}

/// The most frequent string, ties to the smallest.
fn commonest<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in items {
        *counts.entry(s).or_default() += 1;
    }
    counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(s, _)| s.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_look_like_problem_numbers() {
        let a = problem_id(Some("db-01"), "PostgresTooManyConnections");
        assert_eq!(a, problem_id(Some("db-01"), "PostgresTooManyConnections"));
        assert_ne!(a, problem_id(Some("db-02"), "PostgresTooManyConnections"));
        assert!(a.starts_with("PRB") && a.len() == 10);
        // Pinned: a stored accepted problem must keep its id across releases.
        assert_eq!(a, "PRB7821114");
    }

    /// An incident on `ci` `day` days in: worded (title and alertname) or codes only.
    fn rec(
        n: usize,
        ci: &str,
        day: i64,
        words: Option<(&str, &str)>,
        codes: (&str, &str),
    ) -> HistoryRecord {
        let t0: chrono::DateTime<chrono::Utc> = "2026-03-02T09:00:00Z".parse().unwrap();
        let opened = t0 + chrono::Duration::days(day) + chrono::Duration::minutes(n as i64);
        crate::problem::fixtures::record(
            n,
            opened,
            ci,
            words.map(|w| w.0),
            words.map(|w| w.1),
            codes,
        )
    }

    /// 60 unrelated one-offs on other CIs: the base rate every cluster is judged against.
    fn background() -> Vec<HistoryRecord> {
        let modes = [
            (
                "disk almost full",
                "HostDiskFull",
                "infrastructure",
                "storage",
            ),
            (
                "certificate expires soon",
                "CertExpiry",
                "security",
                "certificates",
            ),
            (
                "queue consumers lagging",
                "ConsumerLag",
                "middleware",
                "queues",
            ),
            ("login page slow", "LoginSlow", "application", "performance"),
            (
                "nightly export failed",
                "ExportFailed",
                "application",
                "batch",
            ),
            ("dns lookups failing", "DnsFailures", "network", "dns"),
        ];
        (0..60)
            .map(|k| {
                let (title, alert, cat, sub) = modes[k % modes.len()];
                rec(
                    1000 + k,
                    &format!("host-{k:02}"),
                    (k * 3) as i64 % 170,
                    Some((title, alert)),
                    (cat, sub),
                )
            })
            .collect()
    }

    #[test]
    fn a_problem_half_recorded_with_codes_only_is_found_whole() {
        // Two worded incidents and two with codes only, one failure on one database:
        // neither half alone is a problem (three incidents), together they are.
        let codes = ("database", "connections");
        let worded = Some((
            "too many connections, clients refused",
            "PostgresTooManyConnections",
        ));
        let mut h = background();
        h.push(rec(1, "db-01", 10, worded, codes));
        h.push(rec(2, "db-01", 40, worded, codes));
        h.push(rec(3, "db-01", 70, None, codes));
        h.push(rec(4, "db-01", 100, None, codes));
        let cands = cluster(&h, None, &ProblemConfig::default()).unwrap();
        let on_db: Vec<&ProblemCandidate> = cands
            .iter()
            .filter(|c| c.suggested_root_cause.ci_id.as_deref() == Some("db-01"))
            .collect();
        assert_eq!(on_db.len(), 1, "{cands:#?}");
        let mut ids = on_db[0].incident_ids.clone();
        ids.sort();
        assert_eq!(
            ids,
            ["INC0000001", "INC0000002", "INC0000003", "INC0000004"]
        );
    }

    #[test]
    fn codes_only_records_do_not_tie_unrelated_worded_one_offs_together() {
        // Three different one-offs on one app, all filed under application/performance,
        // and two records with only those codes: nothing recurs.
        let codes = ("application", "performance");
        let mut h = background();
        h.push(rec(
            1,
            "app-01",
            10,
            Some(("login page slow", "LoginSlow")),
            codes,
        ));
        h.push(rec(
            2,
            "app-01",
            50,
            Some(("report generation timeouts", "ReportTimeout")),
            codes,
        ));
        h.push(rec(
            3,
            "app-01",
            90,
            Some(("cache warmup takes minutes", "CacheWarmupSlow")),
            codes,
        ));
        h.push(rec(4, "app-01", 120, None, codes));
        h.push(rec(5, "app-01", 150, None, codes));
        // At different hours of the day: five incidents of one CI and codes at one hour
        // would be a daily pattern, whatever their words.
        for (k, r) in h.iter_mut().rev().take(5).enumerate() {
            r.opened_at += chrono::Duration::hours(5 * k as i64);
        }
        let cands = cluster(&h, None, &ProblemConfig::default()).unwrap();
        assert!(
            cands
                .iter()
                .all(|c| c.suggested_root_cause.ci_id.as_deref() != Some("app-01")),
            "{cands:#?}"
        );
    }

    #[test]
    fn records_without_ci_or_text_join_a_weekly_problem_in_its_slot_with_its_codes() {
        // Connection exhaustion on db-01 every Monday at 09:00 for eight weeks. Three more
        // Mondays at 09:00 were recorded with codes only and no CI: they are the problem's.
        // The same codes on a Tuesday, or other codes in the slot, are not.
        let codes = ("database", "connections");
        let worded = Some((
            "too many connections, clients refused",
            "PostgresTooManyConnections",
        ));
        let mut h = background();
        for (n, w) in [0, 1, 3, 5, 7, 8, 9, 10].into_iter().enumerate() {
            h.push(rec(1 + n, "db-01", w * 7 + 14, worded, codes));
        }
        let bare = |n: usize, day: i64, codes: (&str, &str)| {
            let mut r = rec(n, "x", day, None, codes);
            r.ci = None;
            r
        };
        for (n, w) in [(20, 2), (21, 4), (22, 6)] {
            h.push(bare(n, w * 7 + 14, codes));
        }
        h.push(bare(30, 5 * 7 + 15, codes));
        h.push(bare(31, 6 * 7 + 14, ("application", "batch")));
        let cands = cluster(&h, None, &ProblemConfig::default()).unwrap();
        let on_db: Vec<&ProblemCandidate> = cands
            .iter()
            .filter(|c| c.suggested_root_cause.ci_id.as_deref() == Some("db-01"))
            .collect();
        assert_eq!(on_db.len(), 1, "{cands:#?}");
        assert_eq!(on_db[0].recurrence.kind, recurrence::PatternKind::Weekly);
        let ids = &on_db[0].incident_ids;
        for n in [20, 21, 22] {
            assert!(ids.contains(&format!("INC{n:07}")), "{ids:?}");
        }
        for n in [30, 31] {
            assert!(!ids.contains(&format!("INC{n:07}")), "{ids:?}");
        }
        assert_eq!(ids.len(), 11);
    }

    #[test]
    fn dbscan_grows_clusters_from_core_points_and_leaves_noise() {
        // A chain 0-1-2-3 (each near the next) and a lone point 4; min_pts 2 (itself and one).
        let near = |a: usize, b: usize| a.abs_diff(b) == 1 && a.max(b) <= 3;
        let labels = dbscan(&[0, 1, 2, 3, 4], 2, near, |_, _| true);
        assert_eq!(labels, [Some(0), Some(0), Some(0), Some(0), None]);
        // With min_pts 3 only 1 and 2 are core; 0 and 3 are their border points.
        let labels = dbscan(&[0, 1, 2, 3, 4], 3, near, |_, _| true);
        assert_eq!(labels, [Some(0), Some(0), Some(0), Some(0), None]);
        // A point refused as a core by `core_ok` cannot start or grow a cluster.
        let labels = dbscan(&[0, 1, 2, 3, 4], 3, near, |i, _| i != 1 && i != 2);
        assert_eq!(labels, [None; 5]);
    }
}
