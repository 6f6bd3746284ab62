//! `Dur`: a duration as configuration and the API write it (`500ms`, `30s`, `5m`, `2h`,
//! `1d`), parsed once at the edge.
//!
//! A leaf: it imports nothing of sift, so every module that takes a duration setting
//! (config, outbox, sources) can use it without importing the configuration.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written with a unit: `500ms`, `30s`, `5m`, `2h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub chrono::Duration);

impl Dur {
    pub const fn secs(s: i64) -> Self {
        Dur(chrono::Duration::seconds(s))
    }
    pub fn std(self) -> std::time::Duration {
        self.0.to_std().unwrap_or_default()
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: i64 = num.parse().map_err(|_| {
            format!("invalid duration {s:?}: expected a number and a unit, like 30s or 5m")
        })?;
        let ms = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if n == 0 => 0,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unit must be ms, s, m, h or d"
                ));
            }
        };
        // Bounded, so that event time plus any window stays a date: past chrono's range a
        // sum would panic in the core.
        const MAX_DAYS: i64 = 3_650_000;
        if n.saturating_mul(ms) > MAX_DAYS * 86_400_000 {
            return Err(format!(
                "invalid duration {s:?}: at most {MAX_DAYS}d (10,000 years)"
            ));
        }
        Ok(Dur(chrono::Duration::milliseconds(n * ms)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.num_milliseconds();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms != 0 && ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A correlation window: a duration, or `auto` (learned from history; see
/// `causality::lags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSetting {
    Auto,
    Fixed(Dur),
}

impl Serialize for WindowSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            WindowSetting::Auto => s.serialize_str("auto"),
            WindowSetting::Fixed(d) => d.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for WindowSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "auto" {
            return Ok(WindowSetting::Auto);
        }
        Dur::parse(&s)
            .map(WindowSetting::Fixed)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"auto\"")))
    }
}
