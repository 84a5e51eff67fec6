//! Seeded fault injection: whether the n-th chat request fails is a pure function of
//! (seed, n), so a run with the same seed and request order fails the same requests.

use split_core::select::mix64;

/// Injects failures at a fixed rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    /// Probability in [0, 1] that a request fails.
    pub rate: f64,
    /// Status of an injected failure (429, 500, 503, ...).
    pub status: u16,
    /// Seed.
    pub seed: u64,
}

impl FaultPlan {
    /// True when request number `n` (0-based, in arrival order) should fail.
    pub fn fails(&self, n: u64) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        if self.rate >= 1.0 {
            return true;
        }
        let x = mix64(mix64(self.seed) ^ n);
        // The top 53 bits as a uniform number in [0, 1).
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        u < self.rate
    }
}

/// The `Retry-After` header of an injected failure with `status`: `configured` seconds
/// (`--retry-after`) on every injected failure when set, else `1` on a 429 only (the
/// mock's long-standing default) and nothing otherwise.
pub fn retry_after_header(status: u16, configured: Option<u64>) -> Option<String> {
    match configured {
        Some(secs) => Some(secs.to_string()),
        None if status == 429 => Some("1".to_owned()),
        None => None,
    }
}

/// The one event of a stream whose first event is an error (`--first-event-error`), as
/// OpenAI-compatible providers send it when they fail after the 200 head: a `data:`
/// JSON object with a top-level `error`.
pub fn first_event_error(message: &str) -> String {
    let body = serde_json::json!({
        "error": {"message": message, "type": "server_error", "param": null, "code": null}
    });
    format!("data: {body}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_defaults_and_override() {
        assert_eq!(retry_after_header(429, None).as_deref(), Some("1"));
        assert_eq!(retry_after_header(503, None), None);
        assert_eq!(retry_after_header(429, Some(30)).as_deref(), Some("30"));
        assert_eq!(retry_after_header(503, Some(2)).as_deref(), Some("2"));
    }

    #[test]
    fn first_event_error_is_one_sse_event_with_an_error_object() {
        let event = first_event_error("overloaded");
        assert!(event.ends_with("\n\n") && event.starts_with("data: "));
        assert_eq!(event.matches("\n\n").count(), 1);
        let json: serde_json::Value =
            serde_json::from_str(event.trim_start_matches("data: ").trim()).unwrap();
        assert_eq!(json["error"]["message"], "overloaded");
    }

    #[test]
    fn rate_is_respected_and_seeded() {
        let plan = FaultPlan {
            rate: 0.1,
            status: 503,
            seed: 7,
        };
        let fails: Vec<bool> = (0..10_000).map(|n| plan.fails(n)).collect();
        let count = fails.iter().filter(|f| **f).count();
        // Binomial(10000, 0.1): sd = 30; ±5 sd.
        assert!((850..=1150).contains(&count), "{count}");
        let again: Vec<bool> = (0..10_000).map(|n| plan.fails(n)).collect();
        assert_eq!(fails, again);
        let other = FaultPlan { seed: 8, ..plan };
        let differs = (0..10_000).any(|n| other.fails(n) != plan.fails(n));
        assert!(differs);
    }

    #[test]
    fn edges() {
        let never = FaultPlan {
            rate: 0.0,
            status: 500,
            seed: 1,
        };
        let always = FaultPlan { rate: 1.0, ..never };
        assert!((0..1000).all(|n| !never.fails(n) && always.fails(n)));
    }
}
