//! sift: alerts in, incidents out. The modules in pipeline order.

pub mod alert;
pub mod cmdb;
pub mod correlate;
pub mod eval;
pub mod incident;
pub mod replay;
pub mod sources;
