//! Prometheus metrics (`prometheus-client`), APISIX-compatible names plus split's own.
//!
//! `apisix_http_status` and `apisix_bandwidth` are counters in APISIX but keep their
//! names without the `_total` suffix the OpenMetrics encoder adds to counters, so they are
//! exposed as monotonically increasing gauges.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
    model: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    route: String,
    node: String,
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
    config_sync_ok: Gauge,
    config_revision: Gauge,
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let arm_requests = Family::<ArmLabels, Counter>::default();
        let http_status = Family::<StatusLabels, Gauge>::default();
        let latency = Family::<TypedLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let bandwidth = Family::<TypedLabels, Gauge>::default();
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        let llm_tokens = Family::<TokenLabels, Counter>::default();
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
            "LLM tokens from the responses' usage (type prompt|completion) per route and arm",
            llm_tokens.clone(),
        );
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
            registry,
            config_sync_ok,
            config_revision,
            arm_requests,
            http_status,
            latency,
            bandwidth,
            upstream_errors,
            llm_tokens,
        })
    }

    /// Sets `split_config_sync_ok` and `split_config_revision` (see `health.rs`).
    pub fn set_config_sync(&self, in_sync: bool, revision: u64) {
        self.config_sync_ok.set(i64::from(in_sync));
        self.config_revision
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
    }

    /// Counts one request routed to `arm` of `rule` on `route`.
    pub fn arm_request(&self, route: &str, rule: usize, arm: &str) {
        self.arm_requests
            .get_or_create(&ArmLabels {
                route: route.to_owned(),
                rule: rule.to_string(),
                arm: arm.to_owned(),
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
        let route = r.route_id.clone().unwrap_or_default();
        let service = r.service_id.clone().unwrap_or_default();
        let consumer = r.consumer.clone().unwrap_or_default();
        let node = r
            .upstream_addr
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        self.http_status
            .get_or_create(&StatusLabels {
                code: r.status.to_string(),
                route: route.clone(),
                matched_uri: r.matched_uri.clone().unwrap_or_default(),
                matched_host: r.matched_host.clone().unwrap_or_default(),
                service: service.clone(),
                consumer: consumer.clone(),
                node: node.clone(),
            })
            .inc();
        let typed = |t: &'static str| TypedLabels {
            r#type: t,
            route: route.clone(),
            service: service.clone(),
            consumer: consumer.clone(),
            node: node.clone(),
        };
        let total = millis(r.request_time);
        self.latency.get_or_create(&typed("request")).observe(total);
        if let Some(upstream) = r.upstream_latency {
            let upstream = millis(upstream);
            self.latency
                .get_or_create(&typed("upstream"))
                .observe(upstream);
            self.latency
                .get_or_create(&typed("apisix"))
                .observe((total - upstream).max(0.0));
        }
        self.bandwidth
            .get_or_create(&typed("ingress"))
            .inc_by(i64::try_from(r.bytes_received).unwrap_or(i64::MAX));
        self.bandwidth
            .get_or_create(&typed("egress"))
            .inc_by(i64::try_from(r.bytes_sent).unwrap_or(i64::MAX));
        let tokens = [
            ("prompt", r.prompt_tokens),
            ("completion", r.completion_tokens),
        ];
        for (kind, count) in tokens {
            if let Some(count) = count {
                self.llm_tokens
                    .get_or_create(&TokenLabels {
                        r#type: kind,
                        route: route.clone(),
                        arm: r.arm.clone().unwrap_or_default(),
                        model: r.model.clone().unwrap_or_default(),
                    })
                    .inc_by(count);
            }
        }
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
        rec.route_id = Some("r1".into());
        rec.matched_uri = Some("/x".into());
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
                r#"split_llm_tokens_total{type="prompt",route="r1",arm="1",model="gpt-4"} 10"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"split_llm_tokens_total{type="completion",route="r1",arm="1",model="gpt-4"} 14"#
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
