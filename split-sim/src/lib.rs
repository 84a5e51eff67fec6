//! split-sim: offline simulation of traffic splits with the gateway's own decision code,
//! a live load check against a running gateway, and an OpenAI-compatible mock upstream.
//!
//! - [`upstream`]: the mock LLM server (`split-sim upstream`).
//! - [`units`]: duration and count parsing for the CLI.

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod load;
pub mod replay;
pub mod run;
pub mod stats;
pub mod units;
pub mod upstream;
