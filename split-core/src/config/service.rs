//! Service objects: shared upstream + plugins for routes that reference them.

use std::sync::Arc;

use crate::config::plugins::Plugins;
use crate::config::route::UpstreamRef;
use crate::ConfigError;

/// A validated service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Id.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Upstream.
    pub upstream: Option<UpstreamRef>,
    /// Plugins (route plugins of the same name win).
    pub plugins: Plugins,
    /// Hosts (used when the route has none).
    pub hosts: Vec<String>,
}

impl Service {
    /// Parses a service JSON object.
    pub fn from_json(id: &str, value: &serde_json::Value) -> Result<Arc<Service>, ConfigError> {
        let _ = (id, value);
        todo!("config::service::Service::from_json")
    }
}
