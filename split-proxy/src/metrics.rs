//! Prometheus metrics (`prometheus-client`), APISIX-compatible names plus split's own.
//!
//! `apisix_http_status` and `apisix_bandwidth` are counters in APISIX but keep their
//! names without the `_total` suffix the OpenMetrics encoder adds to counters, so they are
//! exposed as monotonically increasing gauges.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::metric_cache::{HandleCache, Labels};
use crate::record::{millis, RequestRecord};

/// Latency buckets in ms (APISIX's).
const LATENCY_BUCKETS: [f64; 15] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 30000.0,
    60000.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArmLabels {
    route: String,
    rule: String,
    arm: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    route: String,
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    code: String,
    route: String,
    matched_uri: String,
    matched_host: String,
    service: String,
    consumer: String,
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypedLabels {
    r#type: &'static str,
    route: String,
    service: String,
    consumer: String,
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    r#type: &'static str,
    route: String,
    arm: String,
    consumer: String,
    model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    route: String,
    node: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    route: String,
    rule: String,
    from_arm: String,
    to_arm: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PostCommitLabels {
    route: String,
    rule: String,
    arm: String,
    kind: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.into_iter())
}

/// The gateway's metric families and their registry.
pub struct Metrics {
    registry: Registry,
    arm_requests: Family<ArmLabels, Counter>,
    http_status: Family<StatusLabels, Gauge>,
    latency: Family<TypedLabels, Histogram, fn() -> Histogram>,
    bandwidth: Family<TypedLabels, Gauge>,
    upstream_errors: Family<ErrorLabels, Counter>,
    llm_tokens: Family<TokenLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    post_commit_errors: Family<PostCommitLabels, Counter>,
    ticket_fallbacks: Family<RuleLabels, Counter>,
    /// TTFT, tokens/s and guard families.
    pub llm: crate::llm_metrics::LlmMetrics,
    /// By rule and (route, arm).
    arm_cache: HandleCache<(usize, Labels<2>), Counter>,
    request_cache: HandleCache<OwnedRequestKey, RequestSeries>,
    /// By type and (route, arm, consumer, model).
    token_cache: HandleCache<(&'static str, Labels<4>), Counter>,
    config_sync_ok: Gauge,
    config_revision: Gauge,
}

/// The labels of a finished request, borrowed from its record.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
struct RequestKey<'a> {
    code: u16,
    route: &'a str,
    matched_uri: &'a str,
    matched_host: &'a str,
    service: &'a str,
    consumer: &'a str,
    node: Option<IpAddr>,
}

/// [`RequestKey`], owned: its five strings packed in one allocation.
struct OwnedRequestKey {
    code: u16,
    node: Option<IpAddr>,
    text: Labels<5>,
}

impl<'a> RequestKey<'a> {
    fn texts(&self) -> [&'a str; 5] {
        [
            self.route,
            self.matched_uri,
            self.matched_host,
            self.service,
            self.consumer,
        ]
    }
}

impl OwnedRequestKey {
    fn new(key: &RequestKey<'_>) -> OwnedRequestKey {
        OwnedRequestKey {
            code: key.code,
            node: key.node,
            text: Labels::new(key.texts()),
        }
    }

    fn matches(&self, key: &RequestKey<'_>) -> bool {
        self.code == key.code && self.node == key.node && self.text.matches(key.texts())
    }
}

/// The metric handles one finished request updates, shared with their families.
struct RequestSeries {
    status: Gauge,
    request: Histogram,
    upstream: OnceLock<Histogram>,
    apisix: OnceLock<Histogram>,
    ingress: Gauge,
    egress: Gauge,
    /// The labels of the typed families (`type` filled in per series).
    typed: TypedLabels,
}

impl Metrics {
    /// Registers every family.
    #[cfg(test)]
    pub fn new() -> Arc<Metrics> {
        Metrics::with_collectors(Vec::new())
    }

    /// Registers every family plus `collectors`, which compute metrics at scrape time.
    pub fn with_collectors(
        collectors: Vec<Box<dyn prometheus_client::collector::Collector>>,
    ) -> Arc<Metrics> {
        let mut registry = Registry::default();
        for collector in collectors {
            registry.register_collector(collector);
        }
        let arm_requests = Family::<ArmLabels, Counter>::default();
        let http_status = Family::<StatusLabels, Gauge>::default();
        let latency = Family::<TypedLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let bandwidth = Family::<TypedLabels, Gauge>::default();
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        let llm_tokens = Family::<TokenLabels, Counter>::default();
        let ticket_fallbacks = Family::<RuleLabels, Counter>::default();
        registry.register(
            "split_ticket_fallback",
            "traffic-split `ticket: redis` tickets taken locally because redis failed",
            ticket_fallbacks.clone(),
        );
        registry.register(
            "split_arm_requests",
            "Requests per traffic-split arm (rule and arm are 0-based indexes or the arm name)",
            arm_requests.clone(),
        );
        registry.register(
            "apisix_http_status",
            "HTTP status codes per service in APISIX",
            http_status.clone(),
        );
        registry.register(
            "apisix_http_latency",
            "HTTP request latency in milliseconds per service in APISIX",
            latency.clone(),
        );
        registry.register(
            "apisix_bandwidth",
            "Total bandwidth in bytes consumed per service in APISIX",
            bandwidth.clone(),
        );
        registry.register(
            "split_upstream_errors",
            "Upstream failures by node and kind (dns, connect, timeout, tls, http)",
            upstream_errors.clone(),
        );
        registry.register(
            "split_llm_tokens",
            "LLM tokens from the responses' usage (type prompt|completion) per route, arm, model and consumer",
            llm_tokens.clone(),
        );
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "split_llm_fallbacks",
            "Requests moved to another arm of their split rule (reason connect, timeout, http_<status>, sse_error)",
            fallbacks.clone(),
        );
        let post_commit_errors = Family::<PostCommitLabels, Counter>::default();
        registry.register(
            "split_llm_post_commit_errors",
            "Errors after a fallback route committed its response (kind sse_error, stream_error)",
            post_commit_errors.clone(),
        );
        let llm = crate::llm_metrics::LlmMetrics::register(&mut registry);
        let config_sync_ok = Gauge::default();
        let config_revision = Gauge::default();
        registry.register(
            "split_config_sync_ok",
            "1 while the configuration source is in sync (etcd reachable and watched), else 0",
            config_sync_ok.clone(),
        );
        registry.register(
            "split_config_revision",
            "Revision of the configuration being served",
            config_revision.clone(),
        );
        Arc::new(Metrics {
            fallbacks,
            post_commit_errors,
            registry,
            config_sync_ok,
            config_revision,
            arm_requests,
            http_status,
            latency,
            bandwidth,
            upstream_errors,
            llm_tokens,
            ticket_fallbacks,
            llm,
            arm_cache: HandleCache::default(),
            request_cache: HandleCache::default(),
            token_cache: HandleCache::default(),
        })
    }

    /// Counts one `ticket: redis` ticket of `rule` on `route` taken locally.
    pub fn ticket_fallback(&self, route: &str, rule: &str) {
        self.ticket_fallbacks
            .get_or_create(&RuleLabels {
                route: route.to_owned(),
                rule: rule.to_owned(),
            })
            .inc();
    }

    /// Sets `split_config_sync_ok` and `split_config_revision` (see `health.rs`).
    pub fn set_config_sync(&self, in_sync: bool, revision: u64) {
        self.config_sync_ok.set(i64::from(in_sync));
        self.config_revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    /// Counts one request routed to `arm` of `rule` on `route`.
    pub fn arm_request(&self, route: &str, rule: usize, arm: &str) {
        self.arm_cache.with(
            &(route, rule, arm),
            |k| k.0 == rule && k.1.matches([route, arm]),
            || {
                let labels = ArmLabels {
                    route: route.to_owned(),
                    rule: rule.to_string(),
                    arm: arm.to_owned(),
                };
                let counter = self.arm_requests.get_or_create(&labels).clone();
                ((rule, Labels::new([route, arm])), counter)
            },
            |counter| counter.inc(),
        );
    }

    /// Counts one request moved from arm `from` to arm `to` of `rule` for `reason`.
    pub fn fallback(&self, route: &str, rule: usize, from: &str, to: &str, reason: &str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                route: route.to_owned(),
                rule: rule.to_string(),
                from_arm: from.to_owned(),
                to_arm: to.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one error passed through after the response was committed.
    pub fn post_commit_error(&self, route: &str, rule: usize, arm: &str, kind: &str) {
        self.post_commit_errors
            .get_or_create(&PostCommitLabels {
                route: route.to_owned(),
                rule: rule.to_string(),
                arm: arm.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts one failed attempt against an upstream node.
    pub fn upstream_error(&self, route: &str, node: &str, kind: &str) {
        self.upstream_errors
            .get_or_create(&ErrorLabels {
                route: route.to_owned(),
                node: node.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records a finished request.
    pub fn finish(&self, r: &RequestRecord) {
        // The `prometheus` plugin's label (`prefer_name`) and toggle: APISIX's request
        // metrics only for routes it is enabled on; split's own families always.
        let route: &str = match &r.route_metrics {
            Some(m) => &m.label,
            None => r.route_id().unwrap_or_default(),
        };
        let export = r.route_metrics.as_ref().is_none_or(|m| m.export);
        if export {
            self.apisix_request(r, route);
        }
        let consumer = r.consumer.as_deref().unwrap_or_default();
        let tokens = [
            ("prompt", r.prompt_tokens),
            ("completion", r.completion_tokens),
        ];
        for (kind, count) in tokens {
            if let Some(count) = count {
                let arm = r.arm.as_deref().unwrap_or_default();
                let model = r.model.as_deref().unwrap_or_default();
                self.token_cache.with(
                    &(kind, route, arm, consumer, model),
                    |k| k.0 == kind && k.1.matches([route, arm, consumer, model]),
                    || {
                        let labels = TokenLabels {
                            r#type: kind,
                            route: route.to_owned(),
                            arm: arm.to_owned(),
                            consumer: consumer.to_owned(),
                            model: model.to_owned(),
                        };
                        let counter = self.llm_tokens.get_or_create(&labels).clone();
                        ((kind, Labels::new([route, arm, consumer, model])), counter)
                    },
                    |counter| counter.inc_by(count),
                );
            }
        }
        self.llm.finish(r);
    }

    /// `apisix_http_status`, `apisix_http_latency`, `apisix_bandwidth` of one request.
    fn apisix_request(&self, r: &RequestRecord, route: &str) {
        let key = RequestKey {
            code: r.status,
            route,
            matched_uri: r.matched_uri().unwrap_or_default(),
            matched_host: r.matched_host().unwrap_or_default(),
            service: r.service_id().unwrap_or_default(),
            consumer: r.consumer.as_deref().unwrap_or_default(),
            node: r.upstream_addr.map(|a| a.ip()),
        };
        self.request_cache.with(
            &key,
            |k| k.matches(&key),
            || (OwnedRequestKey::new(&key), self.request_series(&key)),
            |series| self.observe_request(series, r),
        );
    }

    /// Counts one request `r` in its series.
    fn observe_request(&self, series: &RequestSeries, r: &RequestRecord) {
        series.status.inc();
        let total = millis(r.request_time);
        series.request.observe(total);
        if let Some(upstream) = r.upstream_latency {
            let upstream = millis(upstream);
            let typed = &series.typed;
            series
                .upstream
                .get_or_init(|| self.latency_of(typed, "upstream"))
                .observe(upstream);
            series
                .apisix
                .get_or_init(|| self.latency_of(typed, "apisix"))
                .observe((total - upstream).max(0.0));
        }
        series
            .ingress
            .inc_by(i64::try_from(r.bytes_received).unwrap_or(i64::MAX));
        series
            .egress
            .inc_by(i64::try_from(r.bytes_sent).unwrap_or(i64::MAX));
    }

    /// The handles of a label set seen for the first time (`upstream` and `apisix`
    /// latencies are created on first use, as before, so local answers do not show them).
    fn request_series(&self, key: &RequestKey<'_>) -> RequestSeries {
        let node = key.node.map(|ip| ip.to_string()).unwrap_or_default();
        let status = self
            .http_status
            .get_or_create(&StatusLabels {
                code: key.code.to_string(),
                route: key.route.to_owned(),
                matched_uri: key.matched_uri.to_owned(),
                matched_host: key.matched_host.to_owned(),
                service: key.service.to_owned(),
                consumer: key.consumer.to_owned(),
                node: node.clone(),
            })
            .clone();
        let typed = TypedLabels {
            r#type: "",
            route: key.route.to_owned(),
            service: key.service.to_owned(),
            consumer: key.consumer.to_owned(),
            node,
        };
        let gauge = |t: &'static str| {
            let labels = TypedLabels {
                r#type: t,
                ..typed.clone()
            };
            self.bandwidth.get_or_create(&labels).clone()
        };
        RequestSeries {
            status,
            request: self.latency_of(&typed, "request"),
            upstream: OnceLock::new(),
            apisix: OnceLock::new(),
            ingress: gauge("ingress"),
            egress: gauge("egress"),
            typed,
        }
    }

    fn latency_of(&self, typed: &TypedLabels, t: &'static str) -> Histogram {
        let labels = TypedLabels {
            r#type: t,
            ..typed.clone()
        };
        self.latency.get_or_create(&labels).clone()
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_contract_names_and_labels() {
        let m = Metrics::new();
        m.arm_request("r1", 0, "1");
        m.arm_request("r1", 0, "1");
        m.upstream_error("r1", "127.0.0.1:1", "connect");
        let uri: http::Uri = "/x".parse().unwrap();
        let mut rec = RequestRecord::new("127.0.0.1".parse().unwrap(), &http::Method::GET, &uri);
        rec.status = 200;
        let route = serde_json::json!({"uri": "/x", "upstream_id": "1"});
        let route = split_core::config::route::Route::from_json("r1", &route).unwrap();
        rec.route = Some(std::sync::Arc::new(route));
        rec.upstream_addr = Some("10.0.0.2:443".parse().unwrap());
        rec.upstream_latency = Some(std::time::Duration::from_millis(3));
        rec.request_time = std::time::Duration::from_millis(4);
        rec.bytes_sent = 10;
        rec.arm = Some("1".into());
        rec.model = Some("gpt-4".into());
        rec.prompt_tokens = Some(5);
        rec.completion_tokens = Some(7);
        m.finish(&rec);
        m.finish(&rec);
        let text = m.encode();
        assert!(
            text.contains(r#"split_arm_requests_total{route="r1",rule="0",arm="1"} 2"#),
            "{text}"
        );
        assert!(text.contains(
            r#"apisix_http_status{code="200",route="r1",matched_uri="/x",matched_host="",service="",consumer="",node="10.0.0.2"} 2"#
        ), "{text}");
        assert!(text.contains(r#"apisix_bandwidth{type="egress",route="r1",service="",consumer="",node="10.0.0.2"} 20"#), "{text}");
        assert!(
            text.contains(
                r#"split_llm_tokens_total{type="prompt",route="r1",arm="1",consumer="",model="gpt-4"} 10"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"split_llm_tokens_total{type="completion",route="r1",arm="1",consumer="",model="gpt-4"} 14"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"apisix_http_latency_bucket{le="5.0",type="upstream""#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"split_upstream_errors_total{route="r1",node="127.0.0.1:1",kind="connect"} 1"#
            ),
            "{text}"
        );
    }
}
