//! The canary guardrail: a split rule's optional `guard {max_error_rate,
//! max_ttft_p95_ms, min_requests, window}`.
//!
//! The proxy records every finished request of a guarded rule per arm; when a canary arm
//! (any arm but the primary, see [`primary_arm`]) breaks the guard over the last
//! `window`, the proxy trips it: its weight is treated as 0 until an operator clears the
//! override. This module holds the configuration and the pure window statistics; time is
//! a parameter.

mod config;
mod window;

pub use config::Guard;
pub use window::{primary_arm, ArmHealth, Breach, Outcome, Verdict, MAX_SAMPLES};
