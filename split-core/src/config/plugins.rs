//! The `plugins` object of routes, services, plugin_configs, consumers and global rules.
//!
//! Only plugins split implements are accepted; anything else is rejected with
//! `plugins.<name>: unknown plugin` (or `... is not supported yet`), never silently ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::config::traffic_split::TrafficSplit;
use crate::rewrite::Rewrite;
use crate::ConfigError;

mod ai_rate_limiting;
mod api_breaker;
mod key_auth;
mod limit_count;
mod opentelemetry;

pub use ai_rate_limiting::{AiRateLimiting, ArmBudget, LimitStrategy, TokenBudget};
pub use api_breaker::{ApiBreaker, BreakHeader, BreakerFallback, BreakerKey};
pub use key_auth::KeyAuthRoute;
pub use limit_count::{LimitCount, LimitKeyType, LimitPolicy, LimitStateKey, WindowType};
pub use opentelemetry::{OpenTelemetry, OtelSettings, RootSampler, Sampler, TraceIdSource};
#[cfg(feature = "schema")]
pub(crate) use {
    ai_rate_limiting::RawAiRateLimiting, api_breaker::RawApiBreaker, key_auth::RawKeyAuthRoute,
    limit_count::RawLimitCount, opentelemetry::RawPlugin as RawOpenTelemetry,
};

/// Plugins that only act on routes (through the route's merged plugins): refused on
/// consumers, where split would otherwise ignore them.
pub(crate) const ROUTE_ONLY: &[&str] = &["api-breaker", "limit-count", "ai-rate-limiting"];

/// Names of every plugin split accepts, with APISIX priority (higher runs first).
pub const KNOWN_PLUGINS: &[(&str, i32)] = &[
    ("opentelemetry", 12009),
    ("key-auth", 2500),
    ("ai-rate-limiting", 1030),
    ("proxy-rewrite", 1008),
    ("api-breaker", 1005),
    ("limit-count", 1002),
    ("traffic-split", 966),
    ("prometheus", 500),
];

/// Validated plugins of one object.
#[derive(Debug, Clone, Default)]
pub struct Plugins {
    /// `traffic-split`.
    pub traffic_split: Option<TrafficSplit>,
    /// `proxy-rewrite` (uri, regex_uri, host, headers).
    pub proxy_rewrite: Option<Rewrite>,
    /// `prometheus` present (per-route metrics toggle; `prefer_name`).
    pub prometheus: Option<PrometheusPlugin>,
    /// `key-auth` of a consumer (its key); only consumers accept it.
    pub key_auth: Option<KeyAuth>,
    /// `key-auth` of a route: where the key is read, how a miss is answered.
    pub key_auth_route: Option<KeyAuthRoute>,
    /// `limit-count`.
    pub limit_count: Option<LimitCount>,
    /// `api-breaker`.
    pub api_breaker: Option<ApiBreaker>,
    /// `ai-rate-limiting`.
    pub ai_rate_limiting: Option<AiRateLimiting>,
    /// `opentelemetry`.
    pub opentelemetry: Option<OpenTelemetry>,
    /// Raw JSON of every accepted plugin except a consumer's `key-auth`, in name order (for export and for plugins whose
    /// runtime lives in the proxy).
    pub raw: BTreeMap<String, serde_json::Value>,
}

/// A consumer's `key-auth {key}`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyAuth {
    /// The API key (non-empty).
    pub key: String,
}

impl std::fmt::Debug for KeyAuth {
    // Keys are secrets: never print them in logs or errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyAuth { key: <redacted> }")
    }
}

/// Known APISIX plugins split does not implement yet: `plugins.<name>: plugin not
/// supported yet` (anything else is `unknown plugin`).
pub const NOT_YET_SUPPORTED: &[&str] = &[
    "basic-auth",
    "jwt-auth",
    "hmac-auth",
    "ldap-auth",
    "openid-connect",
    "authz-keycloak",
    "authz-casdoor",
    "authz-casbin",
    "wolf-rbac",
    "forward-auth",
    "opa",
    "multi-auth",
    "consumer-restriction",
    "limit-req",
    "limit-conn",
    "ai-proxy",
    "ai-proxy-multi",
    "ai-prompt-template",
    "ai-prompt-decorator",
    "ai-prompt-guard",
    "ai-content-moderation",
    "ai-rag",
    "ai-request-rewrite",
    "ai-aws-content-moderation",
    "zipkin",
    "skywalking",
    "skywalking-logger",
    "datadog",
    "cors",
    "ip-restriction",
    "ua-restriction",
    "referer-restriction",
    "uri-blocker",
    "csrf",
    "request-validation",
    "request-id",
    "real-ip",
    "redirect",
    "response-rewrite",
    "echo",
    "fault-injection",
    "mocking",
    "gzip",
    "brotli",
    "client-control",
    "proxy-cache",
    "proxy-mirror",
    "proxy-control",
    "grpc-transcode",
    "grpc-web",
    "degraphql",
    "body-transformer",
    "workflow",
    "serverless-pre-function",
    "serverless-post-function",
    "ext-plugin-pre-req",
    "ext-plugin-post-req",
    "ext-plugin-post-resp",
    "http-logger",
    "file-logger",
    "tcp-logger",
    "udp-logger",
    "kafka-logger",
    "rocketmq-logger",
    "syslog",
    "loki-logger",
    "elasticsearch-logger",
    "clickhouse-logger",
    "google-cloud-logging",
    "splunk-hec-logging",
    "sls-logger",
    "tencent-cloud-cls",
    "error-log-logger",
    "public-api",
    "node-status",
    "server-info",
    "batch-requests",
    "attach-consumer-label",
    "inspect",
    "gm",
    "chaitin-waf",
    "cas-auth",
    "traffic-label",
];

/// Where a `plugins` object sits: only consumers carry `key-auth` credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginScope {
    /// Routes, services, plugin_configs, global_rules.
    Route,
    /// Consumers.
    Consumer,
}

/// The route-level `prometheus` plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrometheusPlugin {
    /// Use the route name instead of its id as the `route` label.
    pub prefer_name: bool,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "Prometheus")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrometheus {
    prefer_name: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "ConsumerKeyAuth")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeyAuth {
    key: String,
}

impl Plugins {
    /// Parses a `plugins` object; paths are relative to it (`traffic-split.rules[0]...`).
    pub fn from_json(value: &serde_json::Value) -> Result<Plugins, ConfigError> {
        Plugins::from_json_in(value, PluginScope::Route)
    }

    /// Parses a `plugins` object of an object in `scope`.
    pub fn from_json_in(value: &Value, scope: PluginScope) -> Result<Plugins, ConfigError> {
        let Value::Object(map) = value else {
            return Err(ConfigError::new(
                "",
                "expected an object of plugin name → config",
            ));
        };
        let mut plugins = Plugins::default();
        for (name, conf) in map {
            plugins.add(name, conf, scope).map_err(|e| e.within(name))?;
            // Consumer credentials stay out of `raw` so no Debug print or export of the
            // plugins can leak them; the typed `key_auth` holds the key.
            if !(name == "key-auth" && scope == PluginScope::Consumer) {
                plugins.raw.insert(name.clone(), conf.clone());
            }
        }
        Ok(plugins)
    }

    fn add(&mut self, name: &str, conf: &Value, scope: PluginScope) -> Result<(), ConfigError> {
        let handled = KNOWN_PLUGINS.iter().any(|(n, _)| *n == name);
        if handled && !conf.is_object() {
            return Err(ConfigError::new("", "plugin config must be an object"));
        }
        if scope == PluginScope::Consumer && ROUTE_ONLY.contains(&name) {
            return Err(ConfigError::new(
                "",
                "is not supported on consumers yet; configure it on the route",
            ));
        }
        match (name, scope) {
            ("traffic-split", _) => self.traffic_split = Some(TrafficSplit::from_json(conf)?),
            ("proxy-rewrite", _) => {
                self.proxy_rewrite = Some(crate::config::proxy_rewrite::parse_proxy_rewrite(conf)?);
            }
            ("prometheus", _) => {
                let raw: RawPrometheus = fields::from_value(conf)?;
                self.prometheus = Some(PrometheusPlugin {
                    prefer_name: raw.prefer_name.unwrap_or(false),
                });
            }
            ("key-auth", PluginScope::Consumer) => {
                let raw: RawKeyAuth = fields::from_value(conf)?;
                if raw.key.is_empty() {
                    return Err(ConfigError::new("key", "must not be empty"));
                }
                self.key_auth = Some(KeyAuth { key: raw.key });
            }
            ("key-auth", PluginScope::Route) => {
                self.key_auth_route = Some(KeyAuthRoute::from_json(conf)?);
            }
            ("limit-count", _) => self.limit_count = Some(LimitCount::from_json(conf)?),
            ("api-breaker", _) => self.api_breaker = Some(ApiBreaker::from_json(conf)?),
            ("ai-rate-limiting", _) => {
                self.ai_rate_limiting = Some(AiRateLimiting::from_json(conf)?);
            }
            ("opentelemetry", PluginScope::Route) => {
                self.opentelemetry = Some(OpenTelemetry::from_json(conf)?);
            }
            ("opentelemetry", PluginScope::Consumer) => {
                return Err(ConfigError::new(
                    "",
                    "is not supported on consumers yet; configure it on the route",
                ));
            }
            (name, _) if NOT_YET_SUPPORTED.contains(&name) => {
                return Err(ConfigError::new("", "plugin not supported yet"));
            }
            _ => return Err(ConfigError::new("", "unknown plugin")),
        }
        Ok(())
    }

    /// Layers `higher` over `self` by plugin name (service < plugin_config < route): a
    /// plugin present in `higher` replaces the same plugin of `self`.
    #[must_use]
    pub fn merged_with(&self, higher: &Plugins) -> Plugins {
        let mut raw = self.raw.clone();
        raw.extend(higher.raw.iter().map(|(k, v)| (k.clone(), v.clone())));
        Plugins {
            traffic_split: higher
                .traffic_split
                .clone()
                .or_else(|| self.traffic_split.clone()),
            proxy_rewrite: higher
                .proxy_rewrite
                .clone()
                .or_else(|| self.proxy_rewrite.clone()),
            prometheus: higher.prometheus.or(self.prometheus),
            key_auth: higher.key_auth.clone().or_else(|| self.key_auth.clone()),
            key_auth_route: higher
                .key_auth_route
                .clone()
                .or_else(|| self.key_auth_route.clone()),
            limit_count: higher
                .limit_count
                .clone()
                .or_else(|| self.limit_count.clone()),
            api_breaker: higher
                .api_breaker
                .clone()
                .or_else(|| self.api_breaker.clone()),
            ai_rate_limiting: higher
                .ai_rate_limiting
                .clone()
                .or_else(|| self.ai_rate_limiting.clone()),
            opentelemetry: higher
                .opentelemetry
                .clone()
                .or_else(|| self.opentelemetry.clone()),
            raw,
        }
    }

    /// True if no plugin is configured.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty() && self.key_auth.is_none()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unknown_and_unsupported_plugins() {
        let err = Plugins::from_json(&json!({"limit-req": {"rate": 1}})).unwrap_err();
        assert_eq!(err.to_string(), "limit-req: plugin not supported yet");
        let err = Plugins::from_json(&json!({"key-auth": {"nope": 1}})).unwrap_err();
        assert_eq!(err.path, "key-auth.nope");
        let err = Plugins::from_json(&json!({"no-such-plugin": {}})).unwrap_err();
        assert_eq!(err.to_string(), "no-such-plugin: unknown plugin");
        let err = Plugins::from_json(&json!([])).unwrap_err();
        assert!(err.message.contains("expected an object"));
        let err = Plugins::from_json(&json!({"prometheus": 1})).unwrap_err();
        assert_eq!(err.path, "prometheus");
        let err = Plugins::from_json(&json!({"prometheus": {"x": 1}})).unwrap_err();
        assert_eq!(err.path, "prometheus.x");
    }

    #[test]
    fn consumer_key_auth() {
        let p = Plugins::from_json_in(&json!({"key-auth": {"key": "k1"}}), PluginScope::Consumer)
            .unwrap();
        assert_eq!(p.key_auth.as_ref().map(|k| k.key.as_str()), Some("k1"));
        assert!(!format!("{p:?}").contains("k1"), "keys must not be printed");
        let err = Plugins::from_json_in(&json!({"key-auth": {"key": ""}}), PluginScope::Consumer)
            .unwrap_err();
        assert_eq!(err.to_string(), "key-auth.key: must not be empty");
    }

    #[test]
    fn merge_prefers_higher() {
        let low = Plugins::from_json(&json!({"prometheus": {}, "proxy-rewrite": {"uri": "/low"}}))
            .unwrap();
        let high = Plugins::from_json(&json!({"proxy-rewrite": {"uri": "/high"}})).unwrap();
        let merged = low.merged_with(&high);
        assert_eq!(merged.proxy_rewrite.unwrap().uri.as_deref(), Some("/high"));
        assert!(merged.prometheus.is_some());
        assert_eq!(merged.raw.len(), 2);
        assert_eq!(merged.raw["proxy-rewrite"]["uri"], "/high");
    }
}
