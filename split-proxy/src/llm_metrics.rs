//! LLM metric families: time to first token and generation speed per route and arm, the
//! canary guardrail's trip state, and ai-rate-limiting `policy: redis` failures (requests
//! let through, usage not charged).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metric_cache::{HandleCache, Labels};
use crate::record::RequestRecord;

/// Time to first token buckets, seconds.
const TTFT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0,
];
/// Generation speed buckets, tokens per second.
const TPS_BUCKETS: [f64; 12] = [
    1.0, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 250.0, 500.0, 1000.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteArm {
    route: String,
    arm: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuardLabels {
    route: String,
    rule: String,
    arm: String,
}

fn ttft_histogram() -> Histogram {
    Histogram::new(TTFT_BUCKETS.into_iter())
}

fn tps_histogram() -> Histogram {
    Histogram::new(TPS_BUCKETS.into_iter())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RedisFailureLabels {
    route: String,
    op: String,
}

type Histograms = Family<RouteArm, Histogram, fn() -> Histogram>;

/// The LLM families.
pub struct LlmMetrics {
    ttft: Histograms,
    tokens_per_second: Histograms,
    /// Handles of the two histograms by (route, arm), so a finished request neither
    /// builds owned labels nor takes a family's lock (see [`HandleCache`]).
    ttft_cache: HandleCache<Labels<2>, Histogram>,
    tps_cache: HandleCache<Labels<2>, Histogram>,
    guard_tripped: Family<GuardLabels, Gauge>,
    ratelimit_redis_failures: Family<RedisFailureLabels, Counter>,
}

impl LlmMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> LlmMetrics {
        let ttft = Histograms::new_with_constructor(ttft_histogram);
        let tokens_per_second = Histograms::new_with_constructor(tps_histogram);
        let guard_tripped = Family::<GuardLabels, Gauge>::default();
        registry.register(
            "split_llm_time_to_first_token_seconds",
            "Time from the request to the first server-sent event of a streamed LLM reply",
            ttft.clone(),
        );
        registry.register(
            "split_llm_tokens_per_second",
            "Completion tokens per second of generation (after the first token for streams)",
            tokens_per_second.clone(),
        );
        registry.register(
            "split_guard_tripped",
            "1 while the canary guardrail holds an arm at weight 0, 0 once cleared",
            guard_tripped.clone(),
        );
        let ratelimit_redis_failures = Family::<RedisFailureLabels, Counter>::default();
        registry.register(
            "split_llm_ratelimit_redis_failures",
            "ai-rate-limiting policy redis calls that failed: op=check let the request \
             through unchecked (fail open), op=charge lost the request's usage",
            ratelimit_redis_failures.clone(),
        );
        LlmMetrics {
            ttft,
            tokens_per_second,
            ttft_cache: HandleCache::default(),
            tps_cache: HandleCache::default(),
            guard_tripped,
            ratelimit_redis_failures,
        }
    }

    /// Records the LLM figures of a finished request.
    pub fn finish(&self, r: &RequestRecord) {
        let route = r.route_id().unwrap_or_default();
        let arm = r.arm.as_deref().unwrap_or_default();
        let observe = |cache: &HandleCache<Labels<2>, Histogram>, family: &Histograms, value| {
            cache.with(
                &(route, arm),
                |k| k.matches([route, arm]),
                || {
                    let labels = RouteArm {
                        route: route.to_owned(),
                        arm: arm.to_owned(),
                    };
                    let histogram = family.get_or_create(&labels).clone();
                    (Labels::new([route, arm]), histogram)
                },
                |histogram| histogram.observe(value),
            )
        };
        if let Some(ttft) = r.ttft {
            observe(&self.ttft_cache, &self.ttft, ttft.as_secs_f64());
        }
        if let Some(tps) = tokens_per_second(r) {
            observe(&self.tps_cache, &self.tokens_per_second, tps);
        }
    }

    /// Sets `split_guard_tripped{route,rule,arm}`.
    pub fn set_guard(&self, route: &str, rule: usize, arm: &str, tripped: bool) {
        self.guard_tripped
            .get_or_create(&GuardLabels {
                route: route.to_owned(),
                rule: rule.to_string(),
                arm: arm.to_owned(),
            })
            .set(i64::from(tripped));
    }
}

impl LlmMetrics {
    /// Counts one failed ai-rate-limiting Redis call (`op` = `check` or `charge`) of
    /// route `route`: `split_llm_ratelimit_redis_failures_total{route,op}`.
    pub fn ratelimit_redis_failed(&self, route: &str, op: &str) {
        self.ratelimit_redis_failures
            .get_or_create(&RedisFailureLabels {
                route: route.to_owned(),
                op: op.to_owned(),
            })
            .inc();
    }
}

/// Completion tokens over the generation time: from the first token to the end for a
/// stream, the whole upstream time otherwise. `None` without tokens or time.
fn tokens_per_second(r: &RequestRecord) -> Option<f64> {
    let tokens = r.completion_tokens.filter(|t| *t > 0)?;
    let generation = match r.ttft {
        Some(ttft) => r.request_time.saturating_sub(ttft),
        None => r.request_time,
    };
    let secs = generation.as_secs_f64();
    (secs > 0.0).then(|| tokens as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn speed_uses_the_generation_time() {
        let uri: http::Uri = "/x".parse().unwrap();
        let mut r = RequestRecord::new("127.0.0.1".parse().unwrap(), &http::Method::POST, &uri);
        r.completion_tokens = Some(10);
        r.request_time = Duration::from_secs(3);
        r.upstream_latency = Some(Duration::from_millis(10));
        assert_eq!(tokens_per_second(&r), Some(10.0 / 3.0));
        r.ttft = Some(Duration::from_secs(1));
        assert_eq!(tokens_per_second(&r), Some(5.0));
        r.completion_tokens = Some(0);
        assert_eq!(tokens_per_second(&r), None);
    }

    #[test]
    fn finished_requests_land_in_their_route_and_arm_series() {
        let mut registry = Registry::default();
        let m = LlmMetrics::register(&mut registry);
        let uri: http::Uri = "/x".parse().unwrap();
        let mut r = RequestRecord::new("127.0.0.1".parse().unwrap(), &http::Method::POST, &uri);
        let route = serde_json::json!({"uri": "/x", "upstream_id": "1"});
        let route = split_core::config::route::Route::from_json("r1", &route).unwrap();
        r.route = Some(std::sync::Arc::new(route));
        r.arm = Some("a".into());
        r.ttft = Some(Duration::from_millis(20));
        r.request_time = Duration::from_secs(1);
        r.completion_tokens = Some(10);
        m.finish(&r);
        m.finish(&r);
        r.arm = Some("b".into());
        m.finish(&r);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for (family, arm, count) in [
            ("split_llm_time_to_first_token_seconds", "a", 2),
            ("split_llm_time_to_first_token_seconds", "b", 1),
            ("split_llm_tokens_per_second", "a", 2),
            ("split_llm_tokens_per_second", "b", 1),
        ] {
            let line = format!("{family}_count{{route=\"r1\",arm=\"{arm}\"}} {count}");
            assert!(text.contains(&line), "{line} missing in:\n{text}");
        }
    }
}
