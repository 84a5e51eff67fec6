//! Route objects (APISIX reference §3).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::plugins::Plugins;
use crate::config::upstream::{Timeout, Upstream};
use crate::expr::Expr;
use crate::ConfigError;

/// HTTP methods a route may list.
pub const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "PURGE",
];

/// The route's own upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamRef {
    /// `upstream_id`.
    Id(String),
    /// Inline `upstream`.
    Inline(Arc<Upstream>),
}

/// A validated route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Id (from the path or body; numbers become their decimal string).
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// `uri` or `uris`: exact paths, or raw prefixes ending in `*`.
    pub uris: Vec<String>,
    /// Allowed methods (upper case); empty = any.
    pub methods: Vec<http::Method>,
    /// `host` or `hosts`, lower-cased; `*.x.com` wildcards allowed; empty = any.
    pub hosts: Vec<String>,
    /// `remote_addr` or `remote_addrs` as CIDRs; empty = any.
    pub remote_addrs: Vec<ipnet::IpNet>,
    /// `vars` expression.
    pub vars: Option<Expr>,
    /// Priority among routes with the identical path string.
    pub priority: i64,
    /// `status`: false removes the route from the router.
    pub enabled: bool,
    /// Own upstream.
    pub upstream: Option<UpstreamRef>,
    /// `service_id`.
    pub service_id: Option<String>,
    /// `plugin_config_id`.
    pub plugin_config_id: Option<String>,
    /// Route `timeout` (overrides the upstream's).
    pub timeout: Option<Timeout>,
    /// Plugins.
    pub plugins: Plugins,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl Route {
    /// Parses and validates a route JSON object stored under `id`. Reference checks
    /// (dangling `upstream_id` ...) happen at snapshot compile time, not here.
    pub fn from_json(id: &str, value: &serde_json::Value) -> Result<Route, ConfigError> {
        let _ = (id, value);
        todo!("config::route::Route::from_json")
    }
}
