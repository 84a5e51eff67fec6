//! `guard` of a traffic-split rule.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::ConfigError;

/// A validated `guard`.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    /// Largest share of failed requests (status >= 500), 0..=1.
    pub max_error_rate: Option<f64>,
    /// Largest 95th percentile of the time to first token, in ms.
    pub max_ttft_p95_ms: Option<u64>,
    /// Requests an arm must have in the window before it can be judged (default 20).
    pub min_requests: u64,
    /// Length of the sliding window (whole seconds, default 60).
    pub window: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuard {
    max_error_rate: Option<f64>,
    max_ttft_p95_ms: Option<i64>,
    min_requests: Option<i64>,
    window: Option<i64>,
}

/// Default `min_requests`.
const MIN_REQUESTS: u64 = 20;
/// Default `window` in seconds.
const WINDOW_SECS: u64 = 60;

impl Guard {
    /// Parses a `guard` object; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<Guard, ConfigError> {
        if !value.is_object() {
            return Err(ConfigError::new("", "expected an object"));
        }
        let raw: RawGuard = fields::from_value(value)?;
        if let Some(rate) = raw.max_error_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::new(
                    "max_error_rate",
                    "must be between 0 and 1",
                ));
            }
        }
        let max_ttft_p95_ms = match raw.max_ttft_p95_ms {
            None => None,
            Some(ms) if ms < 1 => {
                return Err(ConfigError::new("max_ttft_p95_ms", "must be >= 1"));
            }
            Some(ms) => Some(ms.unsigned_abs()),
        };
        if raw.max_error_rate.is_none() && max_ttft_p95_ms.is_none() {
            return Err(ConfigError::new(
                "",
                "needs max_error_rate or max_ttft_p95_ms (or both)",
            ));
        }
        let min_requests = match raw.min_requests {
            None => MIN_REQUESTS,
            Some(n) if n < 1 => return Err(ConfigError::new("min_requests", "must be >= 1")),
            Some(n) => n.unsigned_abs(),
        };
        let window = match raw.window {
            None => Duration::from_secs(WINDOW_SECS),
            Some(w) if !(1..=86_400).contains(&w) => {
                return Err(ConfigError::new("window", "must be 1 to 86400 seconds"));
            }
            Some(w) => Duration::from_secs(w.unsigned_abs()),
        };
        Ok(Guard {
            max_error_rate: raw.max_error_rate,
            max_ttft_p95_ms,
            min_requests,
            window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_errors() {
        let g = Guard::from_json(&json!({"max_error_rate": 0.1})).unwrap();
        assert_eq!(g.min_requests, 20);
        assert_eq!(g.window, Duration::from_secs(60));
        assert_eq!(g.max_ttft_p95_ms, None);
        let cases = [
            (json!({}), ""),
            (json!({"max_error_rate": 1.5}), "max_error_rate"),
            (json!({"max_ttft_p95_ms": 0}), "max_ttft_p95_ms"),
            (
                json!({"max_error_rate": 0.1, "min_requests": 0}),
                "min_requests",
            ),
            (json!({"max_error_rate": 0.1, "window": 0}), "window"),
            (json!({"max_error_rate": 0.1, "nope": 1}), "nope"),
            (json!({"max_error_rate": "x"}), "max_error_rate"),
        ];
        for (value, path) in cases {
            let err = Guard::from_json(&value).unwrap_err();
            assert_eq!(err.path, path, "{value}: {err}");
        }
        assert!(Guard::from_json(&json!([])).is_err());
    }

    #[test]
    fn traffic_split_paths_name_the_rule_and_arm() {
        use crate::config::traffic_split::TrafficSplit;
        let arm = json!({"weight": 1, "upstream_id": "u1"});
        let err = TrafficSplit::from_json(&json!({"rules": [{
            "weighted_upstreams": [arm],
            "guard": {"max_error_rate": 2}
        }]}))
        .unwrap_err();
        assert_eq!(err.path, "rules[0].guard.max_error_rate");
        let err = TrafficSplit::from_json(&json!({"rules": [{"weighted_upstreams": [
            {"weight": 1, "upstream_id": "u1", "llm": {"include_usage": 1}}
        ]}]}))
        .unwrap_err();
        assert_eq!(err.path, "rules[0].weighted_upstreams[0].llm.include_usage");
        let ok = TrafficSplit::from_json(&json!({"rules": [{
            "weighted_upstreams": [{"weight": 1, "upstream_id": "u1", "llm": {"include_usage": true}}],
            "guard": {"max_ttft_p95_ms": 800}
        }]}))
        .unwrap();
        assert!(ok.rules[0].arms[0].llm.include_usage);
        assert_eq!(
            ok.rules[0].guard.as_ref().and_then(|g| g.max_ttft_p95_ms),
            Some(800)
        );
    }
}
