//! # split-core
//!
//! The pure decision core of the `split` gateway. Given validated configuration and a
//! description of one request, it decides which route matches, which traffic-split arm and
//! upstream node serve it, and how the request is rewritten.
//!
//! ## Contract
//! - **No IO**: no sockets, no files, no tokio, no hyper.
//! - **No clock**: time is a parameter (`now`) wherever it matters.
//! - **No global RNG**: randomness is a seed or an explicit RNG argument.
//! - **No locks**: the proxy owns shared mutable state (atomic tickets); the core is
//!   immutable snapshots plus pure functions.
//!
//! `clippy.toml` in this crate enforces the contract with `disallowed-methods` and
//! `disallowed-types`.
//!
//! A panic is a bug; user input never panics; every `unwrap`/`expect` has a comment saying
//! why it cannot fail.
//!
//! ## Layout
//! - [`error`]: [`ConfigError`], the field-path error every validation returns.
//! - [`config`]: raw serde types → validated domain types (`TryFrom`) for routes,
//!   upstreams, services, consumers and plugin configs; `config.yaml`; standalone files.
//! - [`expr`]: the lua-resty-expr language used by `vars`.
//! - [`request`]: the view of one request the core decides on, and variable lookup.
//! - [`matcher`]: the route table (exact > longest prefix > priority).
//! - [`select`]: weighted selection (roundrobin schedule, seeded random, weighted
//!   rendezvous chash).
//! - [`rewrite`]: uri / regex_uri / headers / JSON body rewrites, `pass_host`.
//! - [`snapshot`]: a compiled, immutable configuration that answers "where does this
//!   request go".
//! - [`admin_auth`]: Admin API token extraction, constant-time check, roles, CIDR allow-list.
//! - [`key_auth`]: consumers by API key (constant-time), the route-side `key-auth` decision.
//! - [`secret`]: `$env://NAME` references in header values, masking for Admin API reads.
//! - [`fallback`]: retry on another arm (429/5xx/connect/SSE error), `Retry-After`.
//! - [`health`]: upstream node health from active probes and real responses.
//! - [`stats`]: sample ratio mismatch (chi-square of arm counts against weights).
//! - [`limits`]: `limit-count` windows, token budgets and the `api-breaker` state machine,
//!   time as `now`.
//! - [`llm`]: token `usage` from JSON and SSE responses, `include_usage` requests.
//! - [`guard`]: the canary guardrail's configuration and window statistics.
//! - [`json_scan`]: the allocation-free fast path of the `model` and `usage` reads.
//! - [`word_hash`]: the fast unkeyed hasher of maps keyed by configured values.
//! - [`wire`]: HTTP/1.1 request and response heads and bodies parsed from bytes (the
//!   proxy's server and upstream client do the IO).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin_auth;
pub mod config;
pub mod error;
pub mod expr;
pub mod fallback;
pub mod guard;
pub mod health;
pub mod json_scan;
pub mod key_auth;
pub mod limits;
pub mod llm;
pub mod matcher;
pub mod request;
pub mod rewrite;
pub mod secret;
pub mod select;
pub mod snapshot;
pub mod stats;
pub mod wire;
pub mod word_hash;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use error::ConfigError;
