//! Merging a fresh clustering run with what a problem manager already decided.
//!
//! - An accepted problem keeps its id and status for ever; a new cluster that shares an
//!   incident with it joins it (its incident list becomes the union; the evidence —
//!   root cause, recurrence, score — is the new run's, over the lookback window).
//! - A rejected problem is kept as it is, and a new cluster that shares incidents with it
//!   is proposed again only when it has at least `min_pts` incidents the manager has not
//!   seen in the rejected one (enough new evidence to be a problem on its own).
//! - Everything else is a fresh candidate, replacing the previous run's candidates. A
//!   fresh candidate never takes the id of a decided problem.
//!
//! Pure; no I/O.

use std::collections::HashSet;

use super::cluster::problem_id;
use super::{ProblemCandidate, ProblemStatus};

/// `fresh`: this run's clusters; `decided`: stored accepted and rejected problems. Returns
/// every problem to store: the decided ones (accepted ones possibly grown) and the new
/// candidates.
pub fn reconcile(
    fresh: Vec<ProblemCandidate>,
    decided: Vec<ProblemCandidate>,
    min_pts: usize,
) -> Vec<ProblemCandidate> {
    let mut decided: Vec<ProblemCandidate> = decided
        .into_iter()
        .filter(|p| p.status != ProblemStatus::Candidate)
        .collect();
    let sets: Vec<HashSet<String>> = decided
        .iter()
        .map(|p| p.incident_ids.iter().cloned().collect())
        .collect();
    let mut taken: HashSet<String> = decided.iter().map(|p| p.id.clone()).collect();
    let mut out_fresh = Vec::new();
    for c in fresh {
        let overlaps: Vec<(usize, usize)> = sets
            .iter()
            .enumerate()
            .map(|(k, s)| (k, c.incident_ids.iter().filter(|i| s.contains(*i)).count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        let accepted = overlaps
            .iter()
            .filter(|(k, _)| decided[*k].status == ProblemStatus::Accepted)
            .max_by_key(|(k, n)| (*n, std::cmp::Reverse(*k)));
        if let Some(&(k, _)) = accepted {
            let a = &mut decided[k];
            let mut ids: Vec<String> = a
                .incident_ids
                .iter()
                .chain(c.incident_ids.iter())
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            ids.sort();
            let (id, status) = (a.id.clone(), a.status);
            *a = ProblemCandidate {
                id,
                status,
                incident_ids: ids,
                ..c
            };
            continue;
        }
        let unseen = c
            .incident_ids
            .iter()
            .filter(|i| !overlaps.iter().any(|(k, _)| sets[*k].contains(*i)))
            .count();
        if !overlaps.is_empty() && unseen < min_pts {
            continue;
        }
        let mut c = c;
        let mut k = 1u64;
        while taken.contains(&c.id) {
            c.id = problem_id(
                c.suggested_root_cause.ci_id.as_deref(),
                &format!("{}#{k}", c.suggested_root_cause.signature),
            );
            k += 1;
        }
        taken.insert(c.id.clone());
        out_fresh.push(c);
    }
    decided.extend(out_fresh);
    decided
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::SuggestedRootCause;
    use crate::problem::recurrence::analyse;

    fn cand(id: &str, status: ProblemStatus, incs: &[&str]) -> ProblemCandidate {
        ProblemCandidate {
            id: id.into(),
            status,
            title: id.into(),
            incident_ids: incs.iter().map(|s| s.to_string()).collect(),
            suggested_root_cause: SuggestedRootCause {
                ci_id: Some("db-01".into()),
                signature: id.into(),
                confidence: 1.0,
            },
            recurrence: analyse(&["2026-06-01T00:00:00Z".parse().unwrap()]),
            score: 0.5,
            cis: vec![],
            hours_lost: 0.0,
            observed: incs.len(),
            expected: 0.0,
            p_value: 1.0,
            q_value: 1.0,
            explanation: None,
        }
    }

    #[test]
    fn accepted_grows_under_its_id_and_rejected_stays_gone() {
        let decided = vec![
            cand("PRB1", ProblemStatus::Accepted, &["a", "b", "c"]),
            cand("PRB2", ProblemStatus::Rejected, &["x", "y", "z"]),
        ];
        let fresh = vec![
            cand("PRB9", ProblemStatus::Candidate, &["a", "b", "c", "d"]),
            cand("PRB2", ProblemStatus::Candidate, &["x", "y", "z", "w"]),
            cand("PRB3", ProblemStatus::Candidate, &["p", "q", "r"]),
        ];
        let out = reconcile(fresh, decided, 3);
        let ids: Vec<_> = out.iter().map(|p| (p.id.as_str(), p.status)).collect();
        assert_eq!(
            ids,
            [
                ("PRB1", ProblemStatus::Accepted),
                ("PRB2", ProblemStatus::Rejected),
                ("PRB3", ProblemStatus::Candidate)
            ]
        );
        assert_eq!(out[0].incident_ids, ["a", "b", "c", "d"]);
        assert_eq!(out[1].incident_ids, ["x", "y", "z"]);
    }

    #[test]
    fn enough_new_evidence_is_proposed_again_under_a_new_id() {
        let decided = vec![cand("PRB2", ProblemStatus::Rejected, &["x", "y", "z"])];
        let fresh = vec![cand(
            "PRB2",
            ProblemStatus::Candidate,
            &["x", "y", "z", "u", "v", "w"],
        )];
        let out = reconcile(fresh, decided, 3);
        assert_eq!(out.len(), 2);
        assert_ne!(out[1].id, "PRB2");
        assert_eq!(out[1].status, ProblemStatus::Candidate);
    }
}
