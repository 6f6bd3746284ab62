//! Change records: what the change-management side of the ITSM suite says is being done to
//! a CI and when. A change with `maintenance: true` suppresses alerts on that CI, and on
//! everything that depends on it, inside [start, end]; every change is context for the
//! incidents on its CI.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub id: String,
    pub ci_id: String,
    #[serde(default)]
    pub summary: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub maintenance: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChangeError {
    #[error("change #{index} has an empty id")]
    EmptyId { index: usize },
    #[error("change {id}: end {end} is not after start {start}")]
    EndBeforeStart {
        id: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    #[error("change {id} names unknown CI {ci:?}")]
    UnknownCi { id: String, ci: String },
    #[error("change id {0:?} appears more than once")]
    DuplicateId(String),
}

/// Checks a batch of changes; `known` says whether a CI exists.
pub fn validate(changes: &[Change], known: impl Fn(&str) -> bool) -> Result<(), ChangeError> {
    let mut seen = std::collections::HashSet::new();
    for (index, c) in changes.iter().enumerate() {
        if c.id.trim().is_empty() {
            return Err(ChangeError::EmptyId { index });
        }
        if !seen.insert(c.id.as_str()) {
            return Err(ChangeError::DuplicateId(c.id.clone()));
        }
        if c.end <= c.start {
            return Err(ChangeError::EndBeforeStart {
                id: c.id.clone(),
                start: c.start,
                end: c.end,
            });
        }
        if !known(&c.ci_id) {
            return Err(ChangeError::UnknownCi {
                id: c.id.clone(),
                ci: c.ci_id.clone(),
            });
        }
    }
    Ok(())
}
