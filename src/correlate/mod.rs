//! The pure correlation core: alert events in (in event-time order, or close to it),
//! decisions out. It owns the dedup state machine, the alert → incident placement and the
//! incident lifecycle driven by alerts.
//!
//! No I/O and no clock reads: time is the alerts' own timestamps plus the ticks a caller
//! sends. The daemon and `sift replay` drive this same code, which is what makes a replay
//! equal to living through the same alerts. The grouping policy lives in `policy.rs`, the
//! one place that decides which incident an alert joins.
//!
//! Layout, along the path of one alert:
//! - `config`: the settings; `records`: the alert record, outcomes, the change log.
//! - `engine`: the state (`Engine`), the read-only view the policy decides on, accessors,
//!   loading stored state, the change log, pruning.
//! - `dedup`: events in: first sight, re-sends, resolves, re-fires, maintenance hold-back.
//! - `policy`: where a new firing alert goes: a pure `place(view, …) -> Placement`.
//! - `apply`: applying a placement (open / reopen / join), and `roots`: the root changes
//!   it brings (reroot, merge, suspect, confirm) and the evidence paths.
//! - `lifecycle`: resolving, auto-resolve, flapping, reopening, ticks, operator patches.
//! - `enrichment`: typed accessors of every `Incident::enrichment` key the core writes
//!   (evidence paths, root support, kept apart, merged into, runbooks, changes...).
//! - `manual` (operator merge and split), `enrich`, `similar`, `sla`, `causal` (the
//!   learned causality graph placement consults); `ci_index`, `alert_map`, `schedule`
//!   (the state's indexes).
//!
//! Only `policy` decides grouping; the other parts apply or record decisions, and none of
//! them may read a clock or do I/O.

mod alert_map;
mod apply;
pub mod causal;
mod ci_index;
mod config;
mod dedup;
mod engine;
mod enrich;
mod enrichment;
mod lifecycle;
mod manual;
mod policy;
mod records;
mod roots;
mod schedule;
mod similar;
mod sla;

/// The core's hash maps: foldhash (seeded per process), several times faster than
/// SipHash on the short string keys the core hashes per alert.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use causal::{CausalIndex, LearnedLink};
pub use config::{AssignmentRule, CorrelateConfig};
pub use engine::Engine;
pub use manual::{EditError, EditKind, FeedbackPair, Label};
pub use policy::{Action, Placement};
pub use records::{AlertRecord, Changes, IncidentPatch, Outcome, PatchError, Persisted};
pub use sla::SlaTarget;

// Helpers the engine's parts share (`super::…` from `manual` and the tests).
use apply::set_related_count;
use engine::priority_of;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_causality;
#[cfg(test)]
mod tests_gaps;
#[cfg(test)]
mod tests_manual;
