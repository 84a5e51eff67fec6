//! Statistics over what the gateway observed, computed on demand (at scrape time) from
//! plain counts: no clock, no state.
//!
//! - [`fit`]: expected counts and the chi-square goodness-of-fit test.
//! - [`srm`]: sample ratio mismatch of a split rule (chi-square of observed arm counts
//!   against the configured weights).
//! - [`route_metrics`]: what the `prometheus` plugin decides per route (export, label).

pub mod fit;
pub mod route_metrics;
pub mod srm;
