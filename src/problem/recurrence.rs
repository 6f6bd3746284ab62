//! When a cluster's incidents happen: weekday and hour histograms (UTC), and a pattern.
//!
//! Rules, in order (each asks for at least three incidents):
//! - `burst`: everything within three days (one episode, not a recurrence);
//! - `weekly at <weekday> HH:00-HH+1:00 UTC`: at least 60% of the incidents, and at
//!   least three, in one
//!   (weekday, hour) slot and they span at least two weeks;
//! - `daily at HH:00-HH+1:00 UTC`: at least 60% (and three) in one hour of the day, on at least
//!   three different days;
//! - `irregular` otherwise.
//!
//! 60% of at least three incidents in one of 168 slots (or 24 hours) does not happen by
//! chance to random times (for six incidents, about one in a thousand for an hour of
//! the day), so a random history is called irregular. No I/O.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::Recurrence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatternKind {
    Weekly,
    Daily,
    Burst,
    Irregular,
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Share of incidents one slot must hold to call the pattern weekly or daily.
const SLOT_SHARE: f64 = 0.6;

fn slot_text(hour: usize) -> String {
    format!("{hour:02}:00-{:02}:00 UTC", (hour + 1) % 24)
}

/// Describes the recurrence of incidents opened at `times` (any order, at least one).
pub fn analyse(times: &[DateTime<Utc>]) -> Recurrence {
    let mut ts = times.to_vec();
    ts.sort();
    let mut weekdays = [0u32; 7];
    let mut hours = [0u32; 24];
    let mut week_slots = [0u32; 168];
    for t in &ts {
        let wd = t.weekday().num_days_from_monday() as usize;
        let h = t.hour() as usize;
        weekdays[wd] += 1;
        hours[h] += 1;
        week_slots[wd * 24 + h] += 1;
    }
    let n = ts.len();
    let first = ts.first().copied().unwrap_or_default();
    let last = ts.last().copied().unwrap_or_default();
    let mut gaps: Vec<f64> = ts
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds() as f64 / 3600.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let median = if gaps.is_empty() {
        0.0
    } else {
        gaps[gaps.len() / 2]
    };
    let need = (((n as f64) * SLOT_SHARE).ceil() as u32).max(3);
    let (best_week, best_week_n) = argmax(&week_slots);
    let (best_hour, best_hour_n) = argmax(&hours);
    let days: std::collections::HashSet<_> = ts.iter().map(|t| t.date_naive()).collect();
    let (kind, pattern) = if n < 3 {
        (PatternKind::Irregular, "irregular".to_string())
    } else if last - first <= Duration::days(3) {
        (PatternKind::Burst, "burst".to_string())
    } else if best_week_n >= need && last - first >= Duration::days(13) {
        (
            PatternKind::Weekly,
            format!(
                "weekly at {} {}",
                WEEKDAYS[best_week / 24],
                slot_text(best_week % 24)
            ),
        )
    } else if best_hour_n >= need && days.len() >= 3 {
        (
            PatternKind::Daily,
            format!("daily at {}", slot_text(best_hour)),
        )
    } else {
        (PatternKind::Irregular, "irregular".to_string())
    };
    Recurrence {
        count: n,
        first_seen: first,
        last_seen: last,
        pattern,
        kind,
        weekdays,
        hours,
        median_interval_hours: (median * 10.0).round() / 10.0,
    }
}

/// Whether `t` falls in the recurring slot of a weekly (its weekday and hour) or daily
/// (its hour) pattern; never for bursts and irregular ones.
pub fn in_slot(r: &Recurrence, t: DateTime<Utc>) -> bool {
    // A slot holding 60% of the incidents is also the busiest weekday and hour.
    let hour = argmax(&r.hours).0 == t.hour() as usize;
    match r.kind {
        PatternKind::Weekly => {
            hour && argmax(&r.weekdays).0 == t.weekday().num_days_from_monday() as usize
        }
        PatternKind::Daily => hour,
        PatternKind::Burst | PatternKind::Irregular => false,
    }
}

fn argmax(xs: &[u32]) -> (usize, u32) {
    xs.iter().enumerate().fold(
        (0, 0),
        |best, (i, &c)| if c > best.1 { (i, c) } else { best },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn mondays_at_eight_are_weekly() {
        // 2026-06-01 is a Monday.
        let start = at("2026-06-01T08:05:00Z");
        let mut times: Vec<_> = (0..8)
            .map(|w| start + Duration::weeks(w) + Duration::minutes(w * 6))
            .collect();
        times.push(at("2026-06-17T15:00:00Z")); // one off-pattern
        let r = analyse(&times);
        assert_eq!(r.kind, PatternKind::Weekly);
        assert_eq!(r.pattern, "weekly at Monday 08:00-09:00 UTC");
        assert_eq!(r.count, 9);
        assert_eq!(r.weekdays[0], 8);
        assert!(in_slot(&r, at("2026-09-07T08:59:00Z")));
        assert!(!in_slot(&r, at("2026-09-08T08:30:00Z")));
    }

    #[test]
    fn same_hour_on_different_days_is_daily() {
        let start = at("2026-06-01T02:30:00Z");
        let times: Vec<_> = (0..10).map(|d| start + Duration::days(d * 3)).collect();
        let r = analyse(&times);
        assert_eq!(r.pattern, "daily at 02:00-03:00 UTC");
    }

    #[test]
    fn close_together_is_a_burst() {
        let start = at("2026-06-01T02:30:00Z");
        let times: Vec<_> = (0..5).map(|h| start + Duration::hours(h * 7)).collect();
        assert_eq!(analyse(&times).kind, PatternKind::Burst);
    }

    #[test]
    fn random_times_are_irregular() {
        let start = at("2026-05-01T00:00:00Z");
        let mut irregular = 0;
        for seed in 0..200 {
            let mut below = crate::test_rng(seed);
            let n = 3 + below(10) as i64;
            let times: Vec<_> = (0..n)
                .map(|_| start + Duration::minutes(below(180 * 24 * 60 + 1) as i64))
                .collect();
            if analyse(&times).kind == PatternKind::Irregular {
                irregular += 1;
            }
        }
        assert!(
            irregular >= 195,
            "{irregular} of 200 random histories irregular"
        );
    }
}
