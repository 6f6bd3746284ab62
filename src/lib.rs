//! sift: alerts in, incidents out.
//!
//! The modules in pipeline order: an alert arrives in a wire format (`sources`) and
//! becomes one `Alert` (`alert`, `labels`); it is mapped to a CI of the CMDB (`cmdb`);
//! the pure correlation core places it in an incident (`correlate`, using `causality`'s
//! learned graph when there is one; `incident` is the ITIL record); the writer drives the
//! core and commits each batch (`pipeline`) to the store (`store`); changes go out as
//! webhooks (`outbox`); recurring incidents become problem candidates (`problem`). Around
//! it: the daemon assembled from these parts, with its one shutdown token (`app`), the
//! HTTP API and the console (`api`, `console`), the command line (`cli`),
//! configuration (`config`), metrics (`metrics`), replay of recorded alerts (`replay`) and
//! the evaluation harnesses (`eval`).
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

pub mod eval;
