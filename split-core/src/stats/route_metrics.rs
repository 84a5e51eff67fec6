//! What the `prometheus` plugin decides for one route, computed once per snapshot so the
//! request path builds no label strings:
//!
//! - APISIX exports a route's request metrics (`apisix_http_status`,
//!   `apisix_http_latency`, `apisix_bandwidth`) only when the `prometheus` plugin runs
//!   for it: on the route (or its service / plugin_config), or in a global rule.
//!   split's own accounting (`split_*`) is always on.
//! - `prefer_name: true` labels the route by its `name` instead of its id.

use std::sync::Arc;

use crate::config::plugins::Plugins;
use crate::config::route::Route;

/// Per-route metric settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMetrics {
    /// Export the APISIX request metrics for this route.
    pub export: bool,
    /// The `route` label: the id, or the name with `prefer_name`.
    pub label: Arc<str>,
}

impl RouteMetrics {
    /// The settings of `route` with merged `plugins`; `global` is true when a global
    /// rule enables `prometheus`.
    pub fn new(route: &Route, plugins: &Plugins, global: bool) -> RouteMetrics {
        let prefer_name = plugins.prometheus.is_some_and(|p| p.prefer_name);
        let label = match (&route.name, prefer_name) {
            (Some(name), true) => name.as_str(),
            _ => route.id.as_str(),
        };
        RouteMetrics {
            export: global || plugins.prometheus.is_some(),
            label: Arc::from(label),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn route(v: serde_json::Value) -> Route {
        Route::from_json("r1", &v).unwrap()
    }

    #[test]
    fn plugin_toggles_export_and_prefer_name_the_label() {
        let plain = route(json!({"uri": "/x", "name": "chat", "upstream": {"nodes": {"a:80": 1}}}));
        let m = RouteMetrics::new(&plain, &plain.plugins, false);
        assert_eq!((m.export, &*m.label), (false, "r1"));
        assert!(RouteMetrics::new(&plain, &plain.plugins, true).export);
        let named = route(
            json!({"uri": "/x", "name": "chat", "upstream": {"nodes": {"a:80": 1}},
            "plugins": {"prometheus": {"prefer_name": true}}}),
        );
        let m = RouteMetrics::new(&named, &named.plugins, false);
        assert_eq!((m.export, &*m.label), (true, "chat"));
        let unnamed = route(json!({"uri": "/x", "upstream": {"nodes": {"a:80": 1}},
            "plugins": {"prometheus": {"prefer_name": true}}}));
        assert_eq!(
            &*RouteMetrics::new(&unnamed, &unnamed.plugins, false).label,
            "r1"
        );
    }
}
