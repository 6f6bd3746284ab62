//! Hand-drawn histories for the problem module's tests: a small CMDB, one incident
//! record, and a background of unrelated one-offs that every test's clusters are judged against.
//! Test code only.

use super::HistoryRecord;
use crate::cmdb::{CmdbFile, Topology};
use chrono::{DateTime, Utc};

/// A database `db` with `apps` depending on it, and twenty hosts `host-00`..`host-19`.
pub fn db_with_apps(db: &str, apps: &[&str]) -> Topology {
    let mut y = format!("cis:\n - {{id: {db}}}\n");
    for a in apps {
        y.push_str(&format!(" - {{id: {a}}}\n"));
    }
    for k in 0..20 {
        y.push_str(&format!(" - {{id: host-{k:02}}}\n"));
    }
    y.push_str("relations:\n");
    for a in apps {
        y.push_str(&format!(
            " - {{source: {a}, target: {db}, type: depends_on}}\n"
        ));
    }
    Topology::from_file(&CmdbFile::parse(&y).expect("a test CMDB"))
}

/// An incident with a CI, a category and subcategory, priority 3, and nothing else
/// but what is given.
pub fn record(
    n: usize,
    opened_at: DateTime<Utc>,
    ci: &str,
    title: Option<&str>,
    alert: Option<&str>,
    codes: (&str, &str),
) -> HistoryRecord {
    HistoryRecord {
        id: format!("INC{n:07}"),
        opened_at,
        resolved_at: None,
        ci: Some(ci.into()),
        title: title.map(str::to_string),
        alertnames: alert.map(|a| vec![a.to_string()]).unwrap_or_default(),
        category: Some(codes.0.into()),
        subcategory: Some(codes.1.into()),
        symptom: None,
        assignment_group: None,
        priority: Some(3),
        resolution_note: None,
        location: None,
        service: None,
        ci_class: None,
        closure_code: None,
        known_error: None,
    }
}

/// Incident `n`, `hours` after `t0` (plus `n % 50` minutes, so no two share a minute).
pub fn at_hours(
    t0: &str,
    n: usize,
    ci: &str,
    hours: i64,
    title: &str,
    alert: &str,
    codes: (&str, &str),
) -> HistoryRecord {
    let t0: DateTime<Utc> = t0.parse().expect("a test's start time");
    let opened = t0 + chrono::Duration::hours(hours) + chrono::Duration::minutes((n % 50) as i64);
    record(n, opened, ci, Some(title), Some(alert), codes)
}

/// 300 unrelated one-offs on `host-00`..`host-19` over half a year from `t0`, in six
/// categories.
pub fn background_on_hosts(t0: &str) -> Vec<HistoryRecord> {
    let modes = [
        (
            "disk almost full",
            "HostDiskFull",
            ("infrastructure", "storage"),
        ),
        (
            "certificate expires soon",
            "CertExpiry",
            ("security", "certificates"),
        ),
        (
            "queue consumers lagging",
            "ConsumerLag",
            ("middleware", "queues"),
        ),
        (
            "login page slow",
            "LoginSlow",
            ("application", "performance"),
        ),
        ("dns lookups failing", "DnsFailures", ("network", "dns")),
        (
            "too many connections",
            "TooManyConnections",
            ("database", "connections"),
        ),
    ];
    (0..300)
        .map(|k| {
            let (title, alert, codes) = modes[k % modes.len()];
            let ci = format!("host-{:02}", k % 20);
            at_hours(
                t0,
                1000 + k,
                &ci,
                (k as i64 * 97) % (180 * 24),
                title,
                alert,
                codes,
            )
        })
        .collect()
}
