//! Schema checks of single objects, including the kinds split stores but does not model
//! in depth yet.
//!
//! - `plugin_configs`: `{id?, name?, desc?, labels?, plugins (required), create_time?,
//!   update_time?}`; plugins fully validated (they are merged into routes).
//! - `global_rules`: `{id?, plugins (required), create_time?, update_time?}`; plugins
//!   validated. `traffic-split`, `proxy-rewrite`, `key-auth`, `limit-count`, `api-breaker` and `opentelemetry` are rejected there (they only act
//!   per route in split); `prometheus` is accepted.
//! - `ssls` (stored, not served yet): a JSON object; `cert` and `key` are required PEM
//!   strings unless `type` is `client`; `sni` a string, `snis` a list of strings. Other
//!   keys of APISIX's SSL schema are accepted unchecked.
//! - `plugin_metadata`: a JSON object (content unchecked); the id must be a plugin name
//!   (`[a-z0-9-]+`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::config::consumer::Consumer;
use crate::config::fields;
use crate::config::plugins::Plugins;
use crate::config::route::Route;
use crate::config::service::Service;
use crate::config::upstream::Upstream;
use crate::config::ResourceKind;
use crate::ConfigError;

/// Validates one object of `kind` on its own (schema only, no references); the Admin
/// API's first check on a write.
pub fn validate_object(
    kind: ResourceKind,
    id: &str,
    value: &serde_json::Value,
) -> Result<(), ConfigError> {
    match kind {
        ResourceKind::Routes => Route::from_json(id, value).map(drop),
        ResourceKind::Upstreams => Upstream::from_json(value).map(drop),
        ResourceKind::Services => Service::from_json(id, value).map(drop),
        ResourceKind::Consumers => Consumer::from_json(value).map(drop),
        ResourceKind::PluginConfigs => parse_plugin_config(value).map(drop),
        ResourceKind::GlobalRules => parse_global_rule(value).map(drop),
        ResourceKind::Ssls => check_ssl(value),
        ResourceKind::PluginMetadata => check_plugin_metadata(id, value),
    }
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "PluginConfig")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPluginConfig {
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
        schemars(with = "crate::config::schema::RoutePlugins")
    )]
    plugins: Value,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "GlobalRule")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobalRule {
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Id>")
    )]
    id: Option<Value>,
    create_time: Option<Value>,
    update_time: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "crate::config::schema::GlobalRulePlugins")
    )]
    plugins: Value,
}

/// Parses a plugin_config; returns its plugins.
pub(crate) fn parse_plugin_config(value: &Value) -> Result<Plugins, ConfigError> {
    let raw: RawPluginConfig = fields::from_value(value)?;
    let _ = (&raw.create_time, &raw.update_time);
    if let Some(id) = &raw.id {
        fields::parse_id(id, "id")?;
    }
    fields::check_name(&raw.name, "name")?;
    fields::check_desc(&raw.desc, "desc")?;
    fields::check_labels(&raw.labels, "labels")?;
    Plugins::from_json(&raw.plugins).map_err(|e| e.within("plugins"))
}

/// Plugins refused in global rules: they only act per route in split.
pub(crate) const GLOBAL_RULE_REFUSED: &[&str] = &[
    "traffic-split",
    "proxy-rewrite",
    "key-auth",
    "limit-count",
    "api-breaker",
    "opentelemetry",
];

/// Parses a global rule; returns its plugins.
pub(crate) fn parse_global_rule(value: &Value) -> Result<Plugins, ConfigError> {
    let raw: RawGlobalRule = fields::from_value(value)?;
    let _ = (&raw.create_time, &raw.update_time);
    if let Some(id) = &raw.id {
        fields::parse_id(id, "id")?;
    }
    let plugins = Plugins::from_json(&raw.plugins).map_err(|e| e.within("plugins"))?;
    for &name in GLOBAL_RULE_REFUSED {
        if plugins.raw.contains_key(name) {
            return Err(ConfigError::new(
                format!("plugins.{name}"),
                "is not supported in global rules yet; configure it on the route",
            ));
        }
    }
    Ok(plugins)
}

fn check_ssl(value: &Value) -> Result<(), ConfigError> {
    let Value::Object(map) = value else {
        return Err(ConfigError::new("", "expected an object"));
    };
    let is_client = map.get("type").and_then(Value::as_str) == Some("client");
    for field in ["cert", "key"] {
        match map.get(field) {
            Some(Value::String(pem)) if pem.contains("-----BEGIN") => {}
            Some(_) => return Err(ConfigError::new(field, "expected a PEM string")),
            None if is_client => {}
            None => return Err(ConfigError::new(field, "is required")),
        }
    }
    if let Some(sni) = map.get("sni") {
        if sni.as_str().is_none_or(str::is_empty) {
            return Err(ConfigError::new("sni", "expected a non-empty string"));
        }
    }
    if let Some(snis) = map.get("snis") {
        let valid = snis.as_array().is_some_and(|list| {
            !list.is_empty()
                && list
                    .iter()
                    .all(|s| s.as_str().is_some_and(|s| !s.is_empty()))
        });
        if !valid {
            return Err(ConfigError::new(
                "snis",
                "expected a non-empty list of non-empty strings",
            ));
        }
    }
    Ok(())
}

fn check_plugin_metadata(id: &str, value: &Value) -> Result<(), ConfigError> {
    let valid_name = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid_name {
        return Err(ConfigError::new("id", "must be a plugin name ([a-z0-9-]+)"));
    }
    if !value.is_object() {
        return Err(ConfigError::new("", "expected an object"));
    }
    Ok(())
}
