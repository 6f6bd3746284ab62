//! Bursts along the topology: recurring failures whose incidents share nothing but a
//! coded category, a CI they all point at, and their timing.
//!
//! A small problem whose incidents are worded generically ("users report slow") and raised
//! on the dependents of the failing CI has no words for DBSCAN to join. What ties it
//! together is that the incidents point at one CI through the CMDB (raised on it or on CIs
//! depending on it within `hops`), carry the same codes (category, subcategory, symptom,
//! closure code) and come together in time: within one burst window, or in one weekly or
//! daily slot. This pass looks at the incidents clustering left as noise, groups them by
//! (CI pointed at, codes), and within each group finds the densest burst window, weekly
//! slot and daily hour. A group is looked for only on a CI that one of its incidents is
//! raised on or names: the CMDB path from an application to a database it uses is no
//! evidence by itself that the database failed. The signatures a group mixes are not held
//! against it (unlike a cluster of alike incidents): each team files under its own alert.
//!
//! Significance: under the null the group's incidents fall in time as the rest of the
//! history does, so business hours and thin early months are not mistaken for patterns.
//! A burst window's share is the other incidents' density over `WIDE` windows around it;
//! a weekly slot's is its weekday's share times its hour's (a history has a few
//! incidents per slot of 168: an emptier slot would make any three incidents in it look
//! like a pattern); a daily hour's is that hour's share. The tail is Poisson, and the
//! scan is paid for with a union bound: a burst window starts at one of the group's `n`
//! incidents (`n` looks), a weekly slot is one of 168, a daily hour one of 24, and the
//! best of the three scans is taken (three looks). The caller corrects these p-values for
//! false discoveries as a family of their own (every group tested, found or not), so an
//! unremarkable group is not proposed.
//!
//! What it must not do: look at incidents already in a cluster, join incidents without a
//! CI (nothing ties them to one), or do I/O. Pure.

use std::collections::{BTreeMap, HashSet};

use chrono::{Datelike, Timelike};

use super::HistoryRecord;
use super::features::Features;
use super::recurrence;
use super::significance::poisson_sf;

/// A group of noise incidents that point at `ci`, share codes and come together in time.
#[derive(Debug, Clone)]
pub struct Burst {
    /// Indices into the history, sorted.
    pub members: Vec<usize>,
    /// The CI they all point at.
    pub ci: String,
    /// Incidents the null puts in that window or slot.
    pub expected: f64,
    /// Significance after the union bound over the scans (not yet FDR-corrected).
    pub p: f64,
}

/// Coded atoms that say what failed (not where): the grouping key.
const WHAT: &[&str] = &["cat:", "sub:", "sym:", "close:"];

/// The coded atoms of an incident that say what failed, sorted and unique.
pub fn codes(f: &Features) -> Vec<&str> {
    let mut key: Vec<&str> = f
        .words
        .iter()
        .map(String::as_str)
        .filter(|w| WHAT.iter().any(|p| w.starts_with(p)))
        .collect();
    key.sort_unstable();
    key.dedup();
    key
}

/// The groups found (disjoint, most significant first) and the p-values of every other
/// group tested (for the false-discovery correction).
pub fn find(
    records: &[HistoryRecord],
    feats: &[Features],
    taken: &[bool],
    min_pts: usize,
) -> (Vec<Burst>, Vec<f64>) {
    let n_all = records.len();
    if n_all == 0 {
        return (Vec::new(), Vec::new());
    }
    // The whole history's time profile: the null.
    let mut all_times: Vec<i64> = records.iter().map(|r| r.opened_at.timestamp()).collect();
    all_times.sort_unstable();
    // Weekday and hour of day counts; a weekly slot's share is the product of its
    // weekday's and its hour's (a history holds a few incidents per slot of 168, too few
    // to estimate one slot's share from its own count: an empty slot would make any
    // three incidents in it look like a pattern).
    let mut wday = [1.0f64; 7];
    let mut day = [1.0f64; 24];
    for r in records {
        wday[r.opened_at.weekday().num_days_from_monday() as usize] += 1.0;
        day[r.opened_at.hour() as usize] += 1.0;
    }
    let window = recurrence::BURST_DAYS * 86_400;
    let (t_first, t_last) = (all_times[0], all_times[n_all - 1]);
    let count_between = |lo: i64, hi: i64| -> f64 {
        let a = all_times.partition_point(|&t| t < lo);
        let b = all_times.partition_point(|&t| t <= hi);
        (b - a) as f64
    };

    let mut groups: BTreeMap<(&str, String), Vec<usize>> = BTreeMap::new();
    for (i, f) in feats.iter().enumerate() {
        if taken[i] || f.ci.is_none() {
            continue;
        }
        let key = codes(f);
        if key.is_empty() {
            continue;
        }
        let key = key.join(" ");
        for (ci, _) in &f.neighbourhood {
            groups
                .entry((ci.as_str(), key.clone()))
                .or_default()
                .push(i);
        }
    }

    let mut found: Vec<(Burst, usize)> = Vec::new();
    let mut others: Vec<f64> = Vec::new();
    for ((ci, _), members) in groups {
        let n = members.len();
        if n < min_pts || !members.iter().any(|&i| names_or_raised_on(&feats[i], ci)) {
            continue;
        }
        let mut best: Option<(f64, f64, Vec<usize>)> = None;
        let mut consider = |p: f64, expected: f64, m: Vec<usize>| {
            if m.len() >= min_pts && best.as_ref().is_none_or(|b| p < b.0) {
                best = Some((p, expected, m));
            }
        };
        // Burst: the densest window starting at a member; given a member at its start,
        // the other n-1 fall in it with the window's share of the history.
        let mut by_time = members.clone();
        by_time.sort_by_key(|&i| records[i].opened_at);
        let ts: Vec<i64> = by_time
            .iter()
            .map(|&i| records[i].opened_at.timestamp())
            .collect();
        for j in 0..n {
            let end = ts.partition_point(|&t| t <= ts[j] + window);
            let k = end - j;
            if k < min_pts {
                continue;
            }
            // The share of the other incidents of the history in that window, from their
            // density over a span WIDE times as long around it (a window's own count is
            // too few to tell a quiet week from a thin month).
            let (lo, hi) = wide_span(ts[j], window, t_first, t_last);
            let in_wide = count_between(lo, hi) - group_between(&ts, lo, hi);
            let scale = window as f64 / (hi - lo).max(window) as f64;
            let others_in = in_wide.max(0.0) * scale;
            let share = (others_in + 1.0) / (n_all.saturating_sub(n) + 1) as f64;
            let expected = (n - 1) as f64 * share.min(1.0);
            let p = (n as f64 * poisson_sf(k - 1, expected)).min(1.0);
            consider(p, expected + 1.0, by_time[j..end].to_vec());
        }
        // Weekly slot and daily hour, each shared as the whole history's are.
        let mut slots: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut hours: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in &members {
            let t = records[i].opened_at;
            let h = t.hour() as usize;
            slots
                .entry(t.weekday().num_days_from_monday() as usize * 24 + h)
                .or_default()
                .push(i);
            hours.entry(h).or_default().push(i);
        }
        // The other incidents' weekday and hour counts (the group's own taken out).
        let (mut wd_o, mut h_o) = (wday, day);
        for &i in &members {
            let t = records[i].opened_at;
            wd_o[t.weekday().num_days_from_monday() as usize] -= 1.0;
            h_o[t.hour() as usize] -= 1.0;
        }
        let (wd_sum, h_sum): (f64, f64) = (wd_o.iter().sum(), h_o.iter().sum());
        for (s, m) in slots {
            let share = wd_o[s / 24] / wd_sum * h_o[s % 24] / h_sum;
            let expected = n as f64 * share;
            let p = (168.0 * poisson_sf(m.len(), expected)).min(1.0);
            consider(p, expected, m);
        }
        for (h, m) in hours {
            let expected = n as f64 * h_o[h] / h_sum;
            let p = (24.0 * poisson_sf(m.len(), expected)).min(1.0);
            consider(p, expected, m);
        }
        let Some((p, expected, mut m)) = best else {
            // Tested and found nothing: it still counts in the correction.
            others.push(1.0);
            continue;
        };
        m.sort_unstable();
        let on_it = m
            .iter()
            .filter(|&&i| feats[i].ci.as_deref() == Some(ci))
            .count();
        found.push((
            Burst {
                members: m,
                ci: ci.to_string(),
                expected,
                p: (3.0 * p).min(1.0),
            },
            on_it,
        ));
    }
    // One incident belongs to one group: the most significant first, then the one with
    // most incidents raised on its CI (the root rather than what it runs on).
    found.sort_by(|a, b| {
        a.0.p
            .total_cmp(&b.0.p)
            .then(b.0.members.len().cmp(&a.0.members.len()))
            .then(b.1.cmp(&a.1))
            .then(a.0.ci.cmp(&b.0.ci))
    });
    let mut used: HashSet<usize> = HashSet::new();
    let mut out = Vec::new();
    for (b, _) in found {
        if b.members.iter().any(|i| used.contains(i)) {
            others.push(b.p);
            continue;
        }
        used.extend(b.members.iter().copied());
        out.push(b);
    }
    (out, others)
}

/// Whether an incident is raised on `ci` or its title names it. A group is looked for
/// only on a CI at least one of its incidents says is involved: dependents of one
/// database all point at it through the CMDB, and their own one-offs coded alike would
/// otherwise make a "problem" of a CI nobody raised or named (a problem manager asks
/// "why the database, if no ticket mentions it?"). Which CI is tested does not depend on
/// the incidents' times, so the scan's significance stays as it is.
fn names_or_raised_on(f: &Features, ci: &str) -> bool {
    f.ci.as_deref() == Some(ci) || f.named.as_ref().is_some_and(|(n, _)| n == ci)
}

/// How many times a burst window's span the density of the other incidents is read over.
const WIDE: i64 = 5;

/// The span `WIDE` windows long centred on the window starting at `t`, kept inside the
/// history.
fn wide_span(t: i64, window: i64, first: i64, last: i64) -> (i64, i64) {
    let len = window * WIDE;
    let lo = (t + window / 2 - len / 2).max(first);
    let hi = (lo + len).min(last.max(lo + window));
    let lo = (hi - len).max(first).min(t);
    (lo, hi.max(t + window))
}

/// How many of the group's (sorted) times fall in `[lo, hi]`.
fn group_between(ts: &[i64], lo: i64, hi: i64) -> f64 {
    (ts.partition_point(|&t| t <= hi) - ts.partition_point(|&t| t < lo)) as f64
}

#[cfg(test)]
mod tests {
    use crate::cmdb::Topology;
    use crate::problem::{HistoryRecord, ProblemCandidate, ProblemConfig, cluster};

    /// db-01 with three applications depending on it, and twenty hosts.
    fn topo() -> Topology {
        crate::problem::fixtures::db_with_apps("db-01", &["orders-api", "billing-api", "stock-api"])
    }

    fn rec(
        n: usize,
        ci: &str,
        hours: i64,
        title: &str,
        alert: &str,
        codes: (&str, &str),
    ) -> HistoryRecord {
        crate::problem::fixtures::at_hours(
            "2026-03-02T00:00:00Z",
            n,
            ci,
            hours,
            title,
            alert,
            codes,
        )
    }

    /// 300 unrelated one-offs on the hosts over half a year, in various categories.
    fn background() -> Vec<HistoryRecord> {
        crate::problem::fixtures::background_on_hosts("2026-03-02T00:00:00Z")
    }

    fn on(cands: &[ProblemCandidate], ci: &str) -> Vec<ProblemCandidate> {
        cands
            .iter()
            .filter(|c| {
                c.suggested_root_cause.ci_id.as_deref() == Some(ci)
                    || c.cis.iter().any(|x| x.ci_id == ci)
            })
            .cloned()
            .collect()
    }

    #[test]
    fn a_generic_burst_on_a_database_and_its_dependents_is_one_candidate_naming_the_database() {
        // Connection exhaustion on db-01 over a day and a half: the database team and the
        // teams of three applications using it each file a ticket in their own words.
        let codes = ("database", "connections");
        let mut h = background();
        let day = 70 * 24;
        h.push(rec(
            1,
            "db-01",
            day,
            "db-01: users report slow",
            "PostgresSlow",
            codes,
        ));
        h.push(rec(
            2,
            "orders-api",
            day + 5,
            "orders-api: intermittent errors",
            "HighErrorRate",
            codes,
        ));
        h.push(rec(
            3,
            "billing-api",
            day + 11,
            "billing-api not working properly",
            "HighLatency",
            codes,
        ));
        h.push(rec(
            4,
            "db-01",
            day + 20,
            "db-01 degraded, performance issue",
            "DbDegraded",
            codes,
        ));
        h.push(rec(
            5,
            "stock-api",
            day + 30,
            "stock-api: errors reported",
            "Http5xx",
            codes,
        ));
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        let found = on(&cands, "db-01");
        assert_eq!(found.len(), 1, "{cands:#?}");
        assert_eq!(
            found[0].suggested_root_cause.ci_id.as_deref(),
            Some("db-01")
        );
        let mut ids = found[0].incident_ids.clone();
        ids.sort();
        assert_eq!(
            ids,
            [
                "INC0000001",
                "INC0000002",
                "INC0000003",
                "INC0000004",
                "INC0000005"
            ]
        );
    }

    #[test]
    fn a_busy_database_and_its_dependents_full_of_one_offs_are_not_a_problem() {
        // Twenty unrelated failures on db-01 and the applications using it over half a
        // year, under four coded categories: a busy corner of the estate, no recurrence.
        let codes = [
            ("application", "errors"),
            ("application", "performance"),
            ("database", "connections"),
            ("infrastructure", "storage"),
        ];
        let details = [
            "login page",
            "nightly export",
            "pdf invoices",
            "search results outdated",
            "mail relay",
            "ldap bind",
            "config drift",
            "backup window",
            "cron job",
            "dns lookups",
            "proxy authentication",
            "license server",
            "report queue",
            "file share",
            "partner api quota",
            "session store",
            "missing translations",
            "webhook delivery",
            "cache warmup",
            "audit log gap",
        ];
        let cis = ["db-01", "orders-api", "billing-api", "stock-api"];
        let mut h = background();
        for (k, d) in details.iter().enumerate() {
            let hours = (k as i64 * 211 + 7) % (180 * 24);
            let title = format!("{}: users report slow, {d}", cis[k % 4]);
            let alert: String = d
                .split(' ')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            h.push(rec(k + 1, cis[k % 4], hours, &title, &alert, codes[k % 4]));
        }
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        for ci in cis {
            assert!(on(&cands, ci).is_empty(), "{cands:#?}");
        }
    }

    #[test]
    fn unrelated_one_offs_on_a_database_and_its_dependents_are_not_a_problem() {
        // The same CIs and the same category, months apart at random hours: ordinary volume.
        let codes = ("database", "connections");
        let mut h = background();
        h.push(rec(
            1,
            "db-01",
            10 * 24 + 3,
            "db-01: users report slow",
            "PostgresSlow",
            codes,
        ));
        h.push(rec(
            2,
            "orders-api",
            45 * 24 + 14,
            "orders-api: intermittent errors",
            "HighErrorRate",
            codes,
        ));
        h.push(rec(
            3,
            "billing-api",
            80 * 24 + 9,
            "billing-api not working properly",
            "HighLatency",
            codes,
        ));
        h.push(rec(
            4,
            "db-01",
            120 * 24 + 22,
            "db-01 degraded, performance issue",
            "DbDegraded",
            codes,
        ));
        h.push(rec(
            5,
            "stock-api",
            160 * 24 + 6,
            "stock-api: errors reported",
            "Http5xx",
            codes,
        ));
        // And a busy day of unrelated failures on the same CIs: different categories.
        let day = 70 * 24;
        h.push(rec(
            6,
            "db-01",
            day,
            "db-01: backup late",
            "BackupLate",
            ("infrastructure", "backup"),
        ));
        h.push(rec(
            7,
            "orders-api",
            day + 3,
            "orders-api: pdf render errors",
            "PdfError",
            ("application", "errors"),
        ));
        h.push(rec(
            8,
            "billing-api",
            day + 6,
            "billing-api: ldap bind failed",
            "LdapBind",
            ("security", "authentication"),
        ));
        h.push(rec(
            9,
            "stock-api",
            day + 9,
            "stock-api: export failed",
            "ExportFailed",
            ("application", "batch"),
        ));
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        assert!(on(&cands, "db-01").is_empty(), "{cands:#?}");
        for a in ["orders-api", "billing-api", "stock-api"] {
            assert!(on(&cands, a).is_empty(), "{cands:#?}");
        }
    }

    /// Replication lag on db-01 at 10:00 on `days`, seen by the database team (the
    /// tickets `on_db`) and by the teams of the applications using it, each under its own
    /// alert and in generic words, all coded database / replication.
    fn daily_replication(days: &[i64], on_db: &[usize]) -> Vec<HistoryRecord> {
        let codes = ("database", "replication");
        let apps = ["orders-api", "billing-api", "stock-api"];
        let alerts = ["HighErrorRate", "HighLatency", "Http5xx"];
        let mut h = background();
        for (k, &day) in days.iter().enumerate() {
            let hours = day * 24 + 10;
            if on_db.contains(&k) {
                h.push(rec(
                    k + 1,
                    "db-01",
                    hours,
                    "db-01: users report slow",
                    "PostgresReplicationLag",
                    codes,
                ));
            } else {
                let app = apps[k % 3];
                let title = format!("{app}: intermittent errors, users report problems");
                h.push(rec(k + 1, app, hours, &title, alerts[k % 3], codes));
            }
        }
        h
    }

    #[test]
    fn a_daily_failure_seen_under_each_teams_own_alert_is_one_candidate_on_the_database() {
        // Four tickets over three weeks under four alertnames: a group found in time is
        // formed on its CI, codes and hour, so the mix of alerts (the shape it looks for)
        // costs it nothing.
        let h = daily_replication(&[40, 47, 53, 60], &[0]);
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        let found = on(&cands, "db-01");
        assert_eq!(found.len(), 1, "{cands:#?}");
        assert_eq!(
            found[0].suggested_root_cause.ci_id.as_deref(),
            Some("db-01")
        );
        assert_eq!(
            found[0].incident_ids.len(),
            4,
            "{:?}",
            found[0].incident_ids
        );
        assert!(found[0].q_value <= ProblemConfig::default().fdr);
    }

    #[test]
    fn dependents_alike_in_time_are_no_problem_of_a_ci_no_ticket_names() {
        // Seven such tickets, all on the applications and none naming db-01: the CMDB
        // path to the database alone does not make it a problem of the database.
        let h = daily_replication(&[40, 44, 49, 53, 58, 63, 68], &[]);
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        assert!(
            cands
                .iter()
                .all(|c| c.suggested_root_cause.ci_id.as_deref() != Some("db-01")),
            "{cands:#?}"
        );
    }

    #[test]
    fn a_weekly_failure_inside_a_chain_of_generic_tickets_too_broad_to_be_a_cluster_is_found() {
        // Fifty-six generic tickets on db-01 over half a year, all coded database /
        // maintenance, each titled with two of eight generic words: the words chain them
        // into one cluster larger than a candidate may be, and split by exact wording no
        // part has three. Six of them, every Thursday at 09:00, are one failure.
        let words = [
            "slow",
            "errors",
            "degraded",
            "intermittent",
            "timeouts",
            "unresponsive",
            "failing",
            "latency",
        ];
        let mut pairs = Vec::new();
        for a in 0..words.len() {
            for b in a + 1..words.len() {
                pairs.push((words[a], words[b]));
            }
        }
        let codes = ("database", "maintenance");
        let thursday_9 = 3 * 24 + 9;
        let weekly: Vec<usize> = (0..6).map(|w| 4 + w * 9).collect();
        let mut h = background();
        for k in 0..56 {
            let (a, b) = pairs[k % pairs.len()];
            let title = format!("db-01: {a}, {b}");
            let hours = if let Some(w) = weekly.iter().position(|&x| x == k) {
                thursday_9 + (6 + w as i64) * 7 * 24
            } else {
                let t = (k as i64 * 131 + 5) % (180 * 24);
                // Never on a Thursday at 09:00.
                if (t / 24) % 7 == 3 && t % 24 == 9 {
                    t + 5
                } else {
                    t
                }
            };
            h.push(rec(k + 1, "db-01", hours, &title, "DbMaintenance", codes));
        }
        let cands = cluster(&h, Some(&topo()), &ProblemConfig::default()).unwrap();
        let found = on(&cands, "db-01");
        assert_eq!(found.len(), 1, "{cands:#?}");
        let mut ids = found[0].incident_ids.clone();
        ids.sort();
        let want: Vec<String> = weekly.iter().map(|k| format!("INC{:07}", k + 1)).collect();
        assert_eq!(ids, want);
        assert_eq!(
            found[0].recurrence.kind,
            crate::problem::recurrence::PatternKind::Weekly
        );
    }
}
