//! Clustering a history into problem candidates.
//!
//! Why DBSCAN (linfa-clustering): the number of problems is unknown and most incidents
//! are one-offs. A density method needs no cluster count, finds clusters of any shape
//! and leaves points in sparse regions as noise, which is exactly "not part of any
//! problem"; k-means or a Gaussian mixture would put every one-off into some cluster.
//! `min_pts` is the smallest problem (three incidents, as ITIL counts recurrence).
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
//! Per cluster: the suggested root CI is the CI most of its incidents point at (ties:
//! the one with most incidents raised on it, then the nearest), with a confidence; the
//! signature is the commonest signature of its incidents on that CI; the id is
//! `PRB` + seven digits of a hash of (root CI, signature), so the same problem gets the
//! same id in every run and on every machine. Pure; no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use linfa::prelude::ParamGuard;
use linfa::traits::Transformer;
use linfa_clustering::Dbscan;
use linfa_nn::CommonNearestNeighbour;
use linfa_nn::distance::L2Dist;
use ndarray::Array2;

use super::features::{self, DIMS, Features};
use super::recurrence;
use super::{
    CiCount, HistoryRecord, ProblemCandidate, ProblemConfig, ProblemStatus, SuggestedRootCause,
};
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

/// Clusters `records` into candidates (status `candidate`), highest score first.
pub fn cluster(
    records: &[HistoryRecord],
    topo: Option<&Topology>,
    cfg: &ProblemConfig,
) -> Result<Vec<ProblemCandidate>, ClusterError> {
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
    let feats: Vec<Features> = records
        .iter()
        .map(|r| features::extract(r, topo, cfg.hops))
        .collect();
    let (df, n_docs) = features::document_frequencies(feats.iter());
    let vecs: Vec<Vec<(u16, f32)>> = feats
        .iter()
        .map(|f| features::vector(f, &df, n_docs))
        .collect();
    let mut blocks: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, f) in feats.iter().enumerate() {
        let key = match (&f.named, &f.ci) {
            (Some((named, _)), _) => format!("ci:{named}"),
            (None, Some(ci)) => format!("ci:{ci}"),
            (None, None) => format!("sig:{}", f.signature.to_lowercase()),
        };
        blocks.entry(key).or_default().push(i);
    }
    let params = Dbscan::params_with(cfg.min_pts, L2Dist, CommonNearestNeighbour::LinearSearch)
        .tolerance(cfg.eps)
        .check()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for block in blocks.into_values() {
        for part in split_block(block, &feats, records) {
            if part.len() < cfg.min_pts {
                continue;
            }
            let mut x = Array2::<f64>::zeros((part.len(), DIMS));
            for (row, &i) in part.iter().enumerate() {
                for &(col, val) in &vecs[i] {
                    x[[row, usize::from(col)]] = f64::from(val);
                }
            }
            let labels = params.transform(&x);
            let mut by_label: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for (row, l) in labels.iter().enumerate() {
                if let Some(l) = l {
                    by_label.entry(*l).or_default().push(part[row]);
                }
            }
            clusters.extend(by_label.into_values().filter(|c| c.len() >= cfg.min_pts));
        }
    }
    attach(&mut clusters, records, &feats, &vecs, cfg);
    let clusters = merge_same_problem(clusters, &feats);
    let mut out: Vec<ProblemCandidate> = clusters
        .iter()
        .map(|c| candidate(c, records, &feats))
        .collect();
    // Two clusters on the same (root, signature) would share an id: keep ids unique and
    // deterministic by giving the bigger one the plain id.
    out.sort_by(|a, b| {
        a.id.cmp(&b.id)
            .then(b.incident_ids.len().cmp(&a.incident_ids.len()))
            .then(a.incident_ids.cmp(&b.incident_ids))
    });
    let mut used: HashSet<String> = HashSet::new();
    for c in &mut out {
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
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
    Ok(out)
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
        let mut best: Option<(f64, usize)> = None;
        for (ci, _) in &f.neighbourhood {
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
        let sig = signature_of(&c, feats, root.as_deref()).to_lowercase();
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
fn signature_of(members: &[usize], feats: &[Features], root: Option<&str>) -> String {
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

/// The CI most of `members` point at (through the topology), ties to the one most of
/// them name or were raised on, then the nearest; with (support, named or on it).
fn suggest_root(members: &[usize], feats: &[Features]) -> Option<(String, (usize, usize))> {
    // support: incidents pointing at a CI; direct: incidents raised on it or naming it;
    // hops: total distance.
    let mut stats: HashMap<&str, (usize, usize, u64)> = HashMap::new();
    for &i in members {
        for (ci, hops) in &feats[i].neighbourhood {
            let e = stats.entry(ci.as_str()).or_default();
            e.0 += 1;
            let named = feats[i].named.as_ref().is_some_and(|(n, _)| n == ci);
            e.1 += usize::from(*hops == 0 || named);
            e.2 += u64::from(*hops);
        }
    }
    stats
        .iter()
        .max_by(|a, b| {
            (a.1.0, a.1.1)
                .cmp(&(b.1.0, b.1.1))
                .then(b.1.2.cmp(&a.1.2))
                .then(b.0.cmp(a.0))
        })
        .map(|(ci, s)| (ci.to_string(), (s.0, s.1)))
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
}
