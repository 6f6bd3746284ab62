//! sift: alerts in, incidents out.
//!
//! The modules in pipeline order: an alert arrives in a wire format (`sources`) and
//! becomes one `Alert` (`alert`, `labels`); it is mapped to a CI of the CMDB (`cmdb`);
//! the pure correlation core places it in an incident (`correlate`, using `causality`'s
//! learned graph when there is one; `incident` is the ITIL record); the writer drives the
//! core and commits each batch (`pipeline`) to the store (`store`); changes go out as
//! webhooks (`outbox`; what users see of a record is its `view`); recurring incidents become problem candidates (`problem`). Around
//! it: the daemon assembled from these parts, with its one shutdown token (`app`), the
//! HTTP API and the console (`api`, `console`), the command line (`cli`),
//! configuration (`config`), metrics (`metrics`) and replay of recorded alerts (`replay`).
//! The evaluation harnesses, generators and probes are a crate of their own
//! (`crates/sift-eval`), built on this library and not part of it.
//!
//! The pipeline drawn, and where each kind of change goes: `docs/architecture.md`.

// In.
pub mod sources;

pub mod alert;

pub mod labels;

// Where an alert belongs.
pub mod cmdb;

// Grouping, and what it learns from history.
pub mod correlate;

pub mod causality;

pub mod incident;

// Durable.
pub mod pipeline;

pub mod store;

// Out.
pub mod view;

pub mod outbox;

pub mod delivery;

pub mod problem;

// Serving and operating it.
pub mod app;

pub mod api;

pub mod console;

pub mod cli;

pub mod config;

pub mod duration;

pub mod metrics;

pub mod replay;

// `sift tune`: the lags a history shows and the settings they recommend.
pub mod tune;

/// A small deterministic generator for tests that need generated input: `next(n)` is
/// uniform enough in `0..n` (xorshift64 over a multiplied seed, so nearby seeds give
/// unrelated sequences and seed 0 is not stuck at zero).
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move |n| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if n == 0 { 0 } else { state % n }
    }
}
