//! The `plugins` object of routes, services, plugin_configs, consumers and global rules.
//!
//! Only plugins split implements are accepted; anything else is rejected with
//! `plugins.<name>: unknown plugin` (or `... is not supported yet`), never silently ignored.

use std::collections::BTreeMap;

use crate::config::traffic_split::TrafficSplit;
use crate::rewrite::Rewrite;
use crate::ConfigError;

/// Names of every plugin split accepts, with APISIX priority (higher runs first).
pub const KNOWN_PLUGINS: &[(&str, i32)] = &[
    ("proxy-rewrite", 1008),
    ("prometheus", 500),
    ("traffic-split", 966),
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
    /// Raw JSON of every accepted plugin, in name order (for export and for plugins whose
    /// runtime lives in the proxy).
    pub raw: BTreeMap<String, serde_json::Value>,
}

/// The route-level `prometheus` plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrometheusPlugin {
    /// Use the route name instead of its id as the `route` label.
    pub prefer_name: bool,
}

impl Plugins {
    /// Parses a `plugins` object; paths are relative to it (`traffic-split.rules[0]...`).
    pub fn from_json(value: &serde_json::Value) -> Result<Plugins, ConfigError> {
        let _ = value;
        todo!("config::plugins::Plugins::from_json")
    }
}
