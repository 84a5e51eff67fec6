//! Configuration model: raw serde types (`deny_unknown_fields`) → validated domain types.
//!
//! Every resource has a raw form that mirrors the APISIX v3 JSON exactly and a domain form
//! produced by `TryFrom`/`parse_*` functions that return [`ConfigError`](crate::ConfigError)
//! with the field path. The proxy and admin only ever see domain types.
//!
//! - [`upstream`]: Upstream (nodes map/array, type, hash_on/key, scheme, pass_host,
//!   timeout, retries, keepalive_pool).
//! - [`route`]: Route (uri/uris, methods, host/hosts, remote_addrs, vars, priority,
//!   status, upstream/upstream_id/service_id, plugins, timeout).
//! - [`plugins`]: the route `plugins` object; known plugins only.
//! - [`traffic_split`]: the `traffic-split` plugin in both the APISIX schema and the
//!   guide's shorthand.
//! - [`checks`]: upstream `checks` (active and passive health checks).
//! - [`service`], [`consumer`]: Service and Consumer.
//! - [`proxy_rewrite`]: the `proxy-rewrite` plugin and per-arm rewrites.
//! - [`redis_target`]: a Redis server for counters shared by several gateways.
//! - [`fields`]: shared field parsers (paths, ids, labels, timeouts, canonical JSON).
//! - [`gateway`]: `config.yaml` in both the guide's and the APISIX 3.x form.
//! - [`standalone`]: declarative `apisix.yaml` / JSON documents.
//! - `schema` (feature `schema`): JSON Schemas generated from the raw types.
//! - [`ResourceKind`]: the Admin API resource kinds.

pub mod checks;
pub mod consumer;
pub mod fallback;
pub mod fields;
pub mod gateway;
pub mod plugins;
pub mod proxy_rewrite;
pub mod redis_target;
pub mod route;
#[cfg(feature = "schema")]
pub mod schema;
pub mod service;
pub mod standalone;
pub mod traffic_split;
pub mod upstream;

/// Admin API resource kinds (path segment under `/apisix/admin/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// `routes`
    Routes,
    /// `upstreams`
    Upstreams,
    /// `services`
    Services,
    /// `consumers` (keyed by `username`)
    Consumers,
    /// `global_rules`
    GlobalRules,
    /// `plugin_configs`
    PluginConfigs,
    /// `ssls`
    Ssls,
    /// `plugin_metadata` (keyed by plugin name)
    PluginMetadata,
}

impl ResourceKind {
    /// All kinds, in dependency order (referenced kinds first).
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::Upstreams,
        ResourceKind::Services,
        ResourceKind::PluginConfigs,
        ResourceKind::Consumers,
        ResourceKind::Ssls,
        ResourceKind::GlobalRules,
        ResourceKind::PluginMetadata,
        ResourceKind::Routes,
    ];

    /// The path segment, e.g. `routes`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Routes => "routes",
            ResourceKind::Upstreams => "upstreams",
            ResourceKind::Services => "services",
            ResourceKind::Consumers => "consumers",
            ResourceKind::GlobalRules => "global_rules",
            ResourceKind::PluginConfigs => "plugin_configs",
            ResourceKind::Ssls => "ssls",
            ResourceKind::PluginMetadata => "plugin_metadata",
        }
    }

    /// Parses a path segment.
    pub fn parse(s: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The singular used in APISIX messages (`route`, `upstream`, ...).
    pub fn singular(self) -> &'static str {
        match self {
            ResourceKind::Routes => "route",
            ResourceKind::Upstreams => "upstream",
            ResourceKind::Services => "service",
            ResourceKind::Consumers => "consumer",
            ResourceKind::GlobalRules => "global_rule",
            ResourceKind::PluginConfigs => "plugin_config",
            ResourceKind::Ssls => "ssl",
            ResourceKind::PluginMetadata => "plugin_metadata",
        }
    }
}
