//! Runtime state of the rate and failure plugins as plain values: time is a parameter
//! (`now`, a `Duration` since an epoch the caller chooses, monotonic), never read here.
//!
//! The proxy keeps one value per state key in its own (locked or sharded) map and calls
//! these methods under that lock; the simulator keeps them in a `HashMap`. Same code,
//! same answer.
//!
//! - [`FixedWindow`], [`SlidingWindow`]: `limit-count` counters ([`LimitDecision`]).
//! - [`TokenWindow`]: `ai-rate-limiting` token budgets ([`TokenDecision`]).
//! - [`Breaker`]: the `api-breaker` state machine ([`BreakerState`]).
//! - [`fallback_arm`]: the `other_arms` fallback of an open breaker.

mod breaker;
mod tokens;
mod window;

pub use breaker::{fallback_arm, Breaker, BreakerState};
pub use tokens::{TokenDecision, TokenWindow};
pub use window::{FixedWindow, LimitDecision, SlidingWindow, Window};
