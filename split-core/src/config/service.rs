//! Service objects: shared upstream + plugins for routes that reference them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::config::plugins::Plugins;
use crate::config::route::{parse_hosts, UpstreamRef};
use crate::config::upstream::Upstream;
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

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "Service")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Id>")
    )]
    id: Option<Value>,
    create_time: Option<Value>,
    update_time: Option<Value>,
    name: Option<String>,
    desc: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::upstream::RawUpstream>")
    )]
    upstream: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Id>")
    )]
    upstream_id: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::RoutePlugins>")
    )]
    plugins: Option<Value>,
    hosts: Option<Vec<String>>,
    enable_websocket: Option<bool>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    script: Option<Value>,
}

impl Service {
    /// Parses a service JSON object.
    pub fn from_json(id: &str, value: &serde_json::Value) -> Result<Arc<Service>, ConfigError> {
        let raw: RawService = fields::from_value(value)?;
        let _ = (&raw.create_time, &raw.update_time, raw.enable_websocket);
        fields::reject_present(&raw.script, "script", "Lua functions are not supported")?;
        if let Some(body_id) = &raw.id {
            fields::parse_id(body_id, "id")?;
        }
        fields::check_name(&raw.name, "name")?;
        fields::check_desc(&raw.desc, "desc")?;
        fields::check_labels(&raw.labels, "labels")?;
        let upstream = match (&raw.upstream_id, &raw.upstream) {
            (Some(id), _) => Some(UpstreamRef::Id(fields::parse_id(id, "upstream_id")?)),
            (None, Some(up)) => Some(UpstreamRef::Inline(Arc::new(
                Upstream::from_json(up).map_err(|e| e.within("upstream"))?,
            ))),
            (None, None) => None,
        };
        if let (Some(_), Some(up)) = (&raw.upstream_id, &raw.upstream) {
            Upstream::from_json(up).map_err(|e| e.within("upstream"))?;
        }
        let plugins = match &raw.plugins {
            None => Plugins::default(),
            Some(p) => Plugins::from_json(p).map_err(|e| e.within("plugins"))?,
        };
        let hosts = match &raw.hosts {
            None => Vec::new(),
            Some(h) => parse_hosts(h, "hosts")?,
        };
        Ok(Arc::new(Service {
            id: id.to_owned(),
            name: raw.name,
            upstream,
            plugins,
            hosts,
        }))
    }
}
