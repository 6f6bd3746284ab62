//! Candidates seen from downstream: one failure of a database recorded partly on the
//! database and partly on the applications using it can come out of clustering as two
//! candidates, one rooted at the database (its own alerts, its own words) and one rooted
//! at an application (timeouts, slow responses: the symptom the application's team saw).
//! A problem manager wants one candidate, rooted at the database.
//!
//! Rule: candidate A folds into candidate B when B's root is upstream of most of A's
//! incidents (they depend on it within `hops`), A says what B says (the codes most of
//! their incidents carry are the same, or their signatures are), and most of A's
//! incidents fall in B's recurring pattern (its weekly slot, daily hour or burst window;
//! an irregular B takes nothing: without a pattern, a shared category on a shared
//! dependency is no evidence). Several such B: the nearest upstream, then the larger.
//! Two candidates with one root (a group found in time beside the cluster of alike
//! incidents on that CI) fold the same way, the smaller into the larger.
//! Accepted problems neither fold nor take (their ids are the manager's).
//!
//! What it must not do: fold a candidate into one downstream of it (the topology only
//! points upstream), or do I/O. Pure.

use super::HistoryRecord;
use super::cluster::{fits_pattern, majority_codes, signature_of, suggest_root};
use super::features::{Features, normalise_alertname};
use super::recurrence;
use chrono::{DateTime, Utc};

/// Per cluster of `bounded`, the cluster it folds into (chains followed to their end)
/// and the incidents that go: those in that cluster's pattern (the others were the
/// folded cluster's only through its own shape); `None` when it stays. Only clusters
/// with `kept` true take part.
pub fn fold(
    bounded: &[(Vec<usize>, bool)],
    kept: &[bool],
    records: &[HistoryRecord],
    feats: &[Features],
) -> Vec<Option<(usize, Vec<usize>)>> {
    struct Info<'a> {
        root: String,
        codes: Vec<&'a str>,
        signature: String,
        rec: super::Recurrence,
    }
    let info: Vec<Option<Info>> = bounded
        .iter()
        .enumerate()
        .map(|(k, (c, accepted))| {
            if !kept[k] || *accepted || c.is_empty() {
                return None;
            }
            let root = suggest_root(c, feats)?.0;
            let times: Vec<_> = c.iter().map(|&i| records[i].opened_at).collect();
            Some(Info {
                codes: majority_codes(c, feats),
                signature: normalise_alertname(&signature_of(c, feats, Some(&root))),
                rec: recurrence::analyse(&times),
                root,
            })
        })
        .collect();
    let mut into: Vec<Option<usize>> = vec![None; bounded.len()];
    let mut moved: Vec<Vec<usize>> = vec![Vec::new(); bounded.len()];
    for (a, ia) in info.iter().enumerate() {
        let Some(ia) = ia else { continue };
        let members = &bounded[a].0;
        let n = members.len();
        // (hops from A's incidents to B's root, B larger first, B)
        let mut best: Option<(u64, std::cmp::Reverse<usize>, usize)> = None;
        for (b, ib) in info.iter().enumerate() {
            let Some(ib) = ib else { continue };
            // One root: the smaller folds into the larger (a group found in time beside
            // the cluster of alike incidents on the same CI is the same failure when it
            // says the same and recurs in its pattern).
            let same_root = ib.root == ia.root;
            let smaller = (n, std::cmp::Reverse(a)) < (bounded[b].0.len(), std::cmp::Reverse(b));
            if a == b
                || (same_root && !smaller)
                || ib.rec.kind == recurrence::PatternKind::Irregular
            {
                continue;
            }
            let same_what =
                (!ia.codes.is_empty() && ia.codes == ib.codes) || ia.signature == ib.signature;
            if !same_what {
                continue;
            }
            let (mut pointing, mut hops) = (0usize, 0u64);
            for &i in members {
                if let Some((_, h)) = feats[i].neighbourhood.iter().find(|(c, _)| *c == ib.root) {
                    pointing += 1;
                    hops += u64::from(*h);
                }
            }
            // Upstream of most of A's incidents, and strictly upstream (not A's own CI
            // for most of them: then B would be rooted below A, or beside it).
            if pointing * 2 <= n || (hops == 0 && !same_root) {
                continue;
            }
            let on_time = members
                .iter()
                .filter(|&&i| in_pattern(&ib.rec, records[i].opened_at))
                .count();
            if on_time * 2 <= n {
                continue;
            }
            let key = (hops, std::cmp::Reverse(bounded[b].0.len()), b);
            if best.as_ref().is_none_or(|x| key < *x) {
                best = Some(key);
            }
        }
        if let Some((_, _, b)) = best {
            into[a] = Some(b);
            let rec = &info[b].as_ref().expect("a target has its pattern").rec;
            moved[a] = members
                .iter()
                .copied()
                .filter(|&i| in_pattern(rec, records[i].opened_at))
                .collect();
        }
    }
    // Follow chains (an application's candidate into its database's, the database's into
    // its host's) to the end; a cycle (a topology loop) stays where it is.
    let end = |a: usize| -> Option<usize> {
        let mut at = into[a]?;
        for _ in 0..into.len() {
            match into[at] {
                Some(next) if next != a => at = next,
                Some(_) => return None,
                None => return Some(at),
            }
        }
        None
    };
    (0..into.len())
        .map(|a| end(a).map(|b| (b, std::mem::take(&mut moved[a]))))
        .collect()
}

/// In B's pattern: its weekly slot or daily hour (however long before or after B's own
/// incidents: A recurs there too), or its burst window.
fn in_pattern(rec: &super::Recurrence, t: DateTime<Utc>) -> bool {
    match rec.kind {
        recurrence::PatternKind::Weekly | recurrence::PatternKind::Daily => {
            recurrence::in_slot(rec, t)
        }
        _ => fits_pattern(rec, t),
    }
}

#[cfg(test)]
mod tests {
    use crate::cmdb::Topology;
    use crate::problem::{HistoryRecord, ProblemCandidate, ProblemConfig, cluster};

    /// db-21 with two applications depending on it, and twenty hosts.
    fn topo() -> Topology {
        crate::problem::fixtures::db_with_apps("db-21", &["stock-api", "orders-api"])
    }

    /// An incident `hours` after Sunday 2026-03-01 05:00 UTC.
    fn rec(
        n: usize,
        ci: &str,
        hours: i64,
        title: &str,
        alert: &str,
        codes: (&str, &str),
    ) -> HistoryRecord {
        crate::problem::fixtures::at_hours(
            "2026-03-01T05:00:00Z",
            n,
            ci,
            hours,
            title,
            alert,
            codes,
        )
    }

    /// 300 unrelated one-offs on the hosts over half a year.
    fn background() -> Vec<HistoryRecord> {
        crate::problem::fixtures::background_on_hosts("2026-03-01T05:00:00Z")
    }

    fn rooted<'a>(cands: &'a [ProblemCandidate], ci: &str) -> Vec<&'a ProblemCandidate> {
        cands
            .iter()
            .filter(|c| c.suggested_root_cause.ci_id.as_deref() == Some(ci))
            .collect()
    }

    const WEEK: i64 = 7 * 24;

    /// Slow queries on db-21 every Sunday at 05:00: the database's own alerts three
    /// Sundays, the stock application's timeouts four others.
    fn slow_sundays(app_hours: i64, app_codes: (&str, &str)) -> Vec<HistoryRecord> {
        let codes = ("database", "performance");
        let mut h = background();
        for (n, w) in [0, 3, 5].into_iter().enumerate() {
            let title = [
                "db-21: query latency high",
                "db-21 queries timing out",
                "db-21: slow queries, query latency high",
            ][n];
            h.push(rec(
                1 + n,
                "db-21",
                w * WEEK,
                title,
                "PostgresSlowQueries",
                codes,
            ));
        }
        for (n, w) in [1, 2, 4, 6].into_iter().enumerate() {
            let title = [
                "stock-api: slow responses, timeouts",
                "[stock-api] slow responses and timeouts",
                "stock-api timeouts, slow responses",
                "stock-api: timeouts to backend, slow responses",
            ][n];
            h.push(rec(
                10 + n,
                "stock-api",
                w * WEEK + app_hours,
                title,
                "HighLatency",
                app_codes,
            ));
        }
        h
    }

    #[test]
    fn an_application_failing_in_its_databases_slot_is_the_databases_problem() {
        let h = slow_sundays(0, ("database", "performance"));
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        assert!(rooted(&cands, "stock-api").is_empty(), "{cands:#?}");
        let db = rooted(&cands, "db-21");
        assert_eq!(db.len(), 1, "{cands:#?}");
        assert_eq!(db[0].incident_ids.len(), 7, "{:?}", db[0].incident_ids);
        assert_eq!(
            db[0].recurrence.kind,
            crate::problem::recurrence::PatternKind::Weekly
        );
    }

    #[test]
    fn an_application_problem_of_its_own_stays_its_own() {
        // The same application incidents on Wednesdays at 14:00 under application codes:
        // not in the database's slot, not what the database says.
        let h = slow_sundays(3 * 24 + 9, ("application", "performance"));
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        assert_eq!(rooted(&cands, "stock-api").len(), 1, "{cands:#?}");
        assert_eq!(rooted(&cands, "db-21").len(), 1, "{cands:#?}");
    }

    #[test]
    fn incidents_on_an_application_naming_its_database_are_rooted_at_the_database() {
        // Deadlocks on db-21 reported only by the stock application's team, every ticket
        // naming the database: the root is the database, not where they were raised.
        let codes = ("database", "locking");
        let mut h = background();
        for (n, d) in [10, 40, 75, 110].into_iter().enumerate() {
            let title = [
                "stock-api: errors calling dependency (deadlocks detected on db-21)",
                "stock-api timeouts to backend, deadlocks detected on db-21",
                "[stock-api] deadlocks detected on db-21, errors",
                "stock-api: errors, deadlocks detected on db-21",
            ][n];
            h.push(rec(
                1 + n,
                "stock-api",
                d * 24 + 9,
                title,
                "HighErrorRate",
                codes,
            ));
        }
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        assert!(rooted(&cands, "stock-api").is_empty(), "{cands:#?}");
        let db = rooted(&cands, "db-21");
        assert_eq!(db.len(), 1, "{cands:#?}");
        assert_eq!(db[0].incident_ids.len(), 4);
    }

    #[test]
    fn a_group_in_time_beside_a_cluster_on_the_same_root_is_one_candidate() {
        // Vacuum stuck on db-21 every Sunday at 05:00 for ten weeks: the first four
        // Sundays the database's own alert in the database team's words (alike: one
        // cluster), the next six generic tickets on the database and its applications
        // under the same codes (found in time). One failure, one candidate.
        let codes = ("database", "maintenance");
        let mut h = background();
        for w in 0..4 {
            h.push(rec(
                1 + w as usize,
                "db-21",
                w * WEEK,
                "autovacuum stuck on db-21, table bloat growing",
                "PostgresVacuumStuck",
                codes,
            ));
        }
        let generic = [
            ("db-21", "db-21: users report slow", "DbSlow"),
            (
                "stock-api",
                "stock-api: intermittent errors",
                "HighErrorRate",
            ),
            ("db-21", "db-21 degraded, performance issue", "DbDegraded"),
            (
                "orders-api",
                "orders-api not working properly",
                "HighLatency",
            ),
            ("db-21", "db-21: high response time", "DbSlow"),
            ("stock-api", "stock-api: errors reported", "Http5xx"),
        ];
        for (k, (ci, title, alert)) in generic.into_iter().enumerate() {
            h.push(rec(10 + k, ci, (4 + k as i64) * WEEK, title, alert, codes));
        }
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        let db = rooted(&cands, "db-21");
        assert_eq!(db.len(), 1, "{cands:#?}");
        assert_eq!(db[0].incident_ids.len(), 10, "{:?}", db[0].incident_ids);
        assert!(rooted(&cands, "stock-api").is_empty(), "{cands:#?}");
        assert!(rooted(&cands, "orders-api").is_empty(), "{cands:#?}");
    }

    #[test]
    fn what_stays_behind_after_a_fold_is_proposed_only_on_its_own_evidence() {
        // The stock application's slow responses: four in db-21's Sunday slot (they fold
        // into the database's problem) and three on Wednesdays, worded as thirty tickets
        // on the hosts are worded. Once the four have gone, the three are what any CI
        // sees: no candidate of their own.
        let codes = ("database", "performance");
        let mut h = slow_sundays(0, codes);
        for (n, w) in [1, 3, 5].into_iter().enumerate() {
            h.push(rec(
                20 + n,
                "stock-api",
                w * WEEK + 3 * 24 + 2 + 3 * n as i64,
                "stock-api: slow responses, timeouts",
                "HighLatency",
                codes,
            ));
        }
        for k in 0..30 {
            let host = format!("host-{:02}", k % 20);
            h.push(rec(
                100 + k,
                &host,
                (k as i64 * 139 + 11) % (180 * 24),
                &format!("{host}: slow responses, timeouts"),
                "HighLatency",
                codes,
            ));
        }
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        let db = rooted(&cands, "db-21");
        assert_eq!(db.len(), 1, "{cands:#?}");
        assert!(db[0].incident_ids.len() >= 7, "{:?}", db[0].incident_ids);
        assert!(rooted(&cands, "stock-api").is_empty(), "{cands:#?}");
    }
}
