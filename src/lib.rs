//! sift: alerts in, incidents out. The modules in pipeline order.

pub mod alert;
pub mod api;
pub mod causality;
pub mod cli;
pub mod cmdb;
pub mod config;
pub mod console;
pub mod correlate;
pub mod eval;
pub mod incident;
pub mod labels;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod problem;
pub mod replay;
pub mod sources;
pub mod store;
