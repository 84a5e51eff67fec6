//! `traffic-split.fallback`: retry a failed request on another arm of the same rule.
//!
//! ```json
//! "traffic-split": {
//!   "fallback": {"on": [429, 500, 502, 503, 504], "max_retries": 1, "budget_ms": 30000,
//!                "sse_peek": true, "sse_peek_bytes": 65536, "sse_peek_ms": 10000},
//!   "rules": [...]
//! }
//! ```
//!
//! - `on`: upstream statuses that fall back (429 and 500..=599; default
//!   `[429, 500, 502, 503, 504]`). A connect error or a timeout before the response
//!   head always falls back.
//! - `max_retries`: further arms tried after the first (1..=19, default 1).
//! - `budget_ms`: no new attempt starts once this much time has passed since the first
//!   (1..=600000, default 30000); an attempt in flight keeps its own timeouts.
//! - `sse_peek` (default true): for `text/event-stream` answers, read the first event
//!   (at most `sse_peek_bytes`, default 65536, for at most `sse_peek_ms`, default 10000)
//!   before committing; an error event falls back like a 5xx.
//!
//! No `fallback` key means no fallback (the behaviour of a plain split).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::ConfigError;

/// Statuses that fall back when `on` is not given.
pub const DEFAULT_ON: [u16; 5] = [429, 500, 502, 503, 504];

/// Most arms beyond the first that one request may try (a rule has at most 20 arms).
pub const MAX_RETRIES: u32 = 19;

/// A validated fallback policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// Upstream statuses that fall back, sorted and unique.
    pub on: Vec<u16>,
    /// Further arms tried after the first.
    pub max_retries: u32,
    /// No new attempt starts after this much time since the first.
    pub budget: Duration,
    /// Peek the first SSE event before committing the response.
    pub sse_peek: bool,
    /// Most bytes read while peeking.
    pub sse_peek_bytes: usize,
    /// Longest wait for the first event while peeking.
    pub sse_peek_timeout: Duration,
}

impl Default for Fallback {
    fn default() -> Self {
        Fallback {
            on: DEFAULT_ON.to_vec(),
            max_retries: 1,
            budget: Duration::from_secs(30),
            sse_peek: true,
            sse_peek_bytes: 64 * 1024,
            sse_peek_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFallback {
    on: Option<Vec<i64>>,
    max_retries: Option<i64>,
    budget_ms: Option<i64>,
    sse_peek: Option<bool>,
    sse_peek_bytes: Option<i64>,
    sse_peek_ms: Option<i64>,
}

fn in_range(value: i64, lo: i64, hi: i64, path: &str) -> Result<u64, ConfigError> {
    if value < lo || value > hi {
        return Err(ConfigError::new(
            path,
            format!("must be between {lo} and {hi} (got {value})"),
        ));
    }
    u64::try_from(value).map_err(|_| ConfigError::new(path, "must not be negative"))
}

impl Fallback {
    /// Parses the `fallback` object; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<Fallback, ConfigError> {
        let raw: RawFallback = fields::from_value(value)?;
        let mut conf = Fallback::default();
        if let Some(on) = raw.on {
            if on.is_empty() {
                return Err(ConfigError::new("on", "must list at least one status"));
            }
            let mut statuses = Vec::with_capacity(on.len());
            for (i, status) in on.into_iter().enumerate() {
                let path = format!("on[{i}]");
                let valid = status == 429 || (500..=599).contains(&status);
                if !valid {
                    return Err(ConfigError::new(
                        path,
                        format!("must be 429 or 500..=599 (got {status})"),
                    ));
                }
                // In range above, so it fits.
                statuses.push(u16::try_from(status).unwrap_or(500));
            }
            statuses.sort_unstable();
            statuses.dedup();
            conf.on = statuses;
        }
        if let Some(n) = raw.max_retries {
            let n = in_range(n, 1, i64::from(MAX_RETRIES), "max_retries")?;
            conf.max_retries = u32::try_from(n).unwrap_or(MAX_RETRIES);
        }
        if let Some(ms) = raw.budget_ms {
            conf.budget = Duration::from_millis(in_range(ms, 1, 600_000, "budget_ms")?);
        }
        if let Some(peek) = raw.sse_peek {
            conf.sse_peek = peek;
        }
        if let Some(bytes) = raw.sse_peek_bytes {
            let bytes = in_range(bytes, 64, 1 << 20, "sse_peek_bytes")?;
            conf.sse_peek_bytes = usize::try_from(bytes).unwrap_or(1 << 20);
        }
        if let Some(ms) = raw.sse_peek_ms {
            conf.sse_peek_timeout = Duration::from_millis(in_range(ms, 1, 600_000, "sse_peek_ms")?);
        }
        Ok(conf)
    }

    /// True when an upstream answer with `status` falls back.
    pub fn falls_back_on(&self, status: u16) -> bool {
        self.on.binary_search(&status).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let d = Fallback::from_json(&json!({})).unwrap();
        assert_eq!(d, Fallback::default());
        assert!(d.falls_back_on(429) && d.falls_back_on(503) && !d.falls_back_on(501));
        let c = Fallback::from_json(&json!({
            "on": [503, 429, 503], "max_retries": 3, "budget_ms": 500,
            "sse_peek": false, "sse_peek_bytes": 1024, "sse_peek_ms": 250
        }))
        .unwrap();
        assert_eq!(c.on, [429, 503]);
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.budget, Duration::from_millis(500));
        assert!(!c.sse_peek);
        assert_eq!(c.sse_peek_bytes, 1024);
        assert_eq!(c.sse_peek_timeout, Duration::from_millis(250));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({"on": []}), "on", "at least one"),
            (json!({"on": [429, 404]}), "on[1]", "429 or 500..=599"),
            (json!({"max_retries": 0}), "max_retries", "between 1 and 19"),
            (
                json!({"max_retries": 20}),
                "max_retries",
                "between 1 and 19",
            ),
            (json!({"budget_ms": 0}), "budget_ms", "between"),
            (json!({"sse_peek_bytes": 1}), "sse_peek_bytes", "between"),
            (json!({"sse_peek_ms": -1}), "sse_peek_ms", "between"),
            (json!({"retries": 1}), "retries", "unknown field"),
            (json!({"on": "429"}), "on", ""),
        ];
        for (value, path, message) in cases {
            let err = Fallback::from_json(&value).unwrap_err();
            assert_eq!(err.path, path, "{value}: {err}");
            assert!(err.message.contains(message), "{value}: {err}");
        }
    }
}
