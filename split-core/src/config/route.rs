//! Route objects (APISIX reference §3).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields::{self, RawTimeout};
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

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema), schemars(rename = "Route", transform = crate::config::schema::route_rules))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
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
    uri: Option<String>,
    uris: Option<Vec<String>>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Methods>")
    )]
    methods: Option<Vec<String>>,
    host: Option<String>,
    hosts: Option<Vec<String>>,
    remote_addr: Option<String>,
    remote_addrs: Option<Vec<String>>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Vars>")
    )]
    vars: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    filter_func: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    script: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    script_id: Option<Value>,
    priority: Option<i64>,
    status: Option<i64>,
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
        schemars(with = "Option<crate::config::schema::Id>")
    )]
    service_id: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Id>")
    )]
    plugin_config_id: Option<Value>,
    timeout: Option<RawTimeout>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::RoutePlugins>")
    )]
    plugins: Option<Value>,
    enable_websocket: Option<bool>,
}

impl Route {
    /// Parses and validates a route JSON object stored under `id`. Reference checks
    /// (dangling `upstream_id` ...) happen at snapshot compile time, not here.
    pub fn from_json(id: &str, value: &serde_json::Value) -> Result<Route, ConfigError> {
        let raw: RawRoute = fields::from_value(value)?;
        let _ = (&raw.create_time, &raw.update_time, raw.enable_websocket);
        const LUA: &str = "Lua functions are not supported";
        fields::reject_present(&raw.filter_func, "filter_func", LUA)?;
        fields::reject_present(&raw.script, "script", LUA)?;
        fields::reject_present(&raw.script_id, "script_id", LUA)?;
        if let Some(body_id) = &raw.id {
            fields::parse_id(body_id, "id")?;
        }
        fields::check_name(&raw.name, "name")?;
        fields::check_desc(&raw.desc, "desc")?;
        let labels = fields::check_labels(&raw.labels, "labels")?;

        let uris = match (raw.uri, raw.uris) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "uris",
                    "`uri` and `uris` are mutually exclusive",
                ))
            }
            (Some(uri), None) => {
                check_uri(&uri, "uri")?;
                vec![uri]
            }
            (None, Some(uris)) => {
                if uris.is_empty() {
                    return Err(ConfigError::new("uris", "must not be empty"));
                }
                for (i, uri) in uris.iter().enumerate() {
                    let path = format!("uris[{i}]");
                    check_uri(uri, &path)?;
                    if uris[..i].contains(uri) {
                        return Err(ConfigError::new(path, format!("duplicate uri `{uri}`")));
                    }
                }
                uris
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "uri",
                    "one of `uri` or `uris` is required",
                ))
            }
        };
        let methods = parse_methods(raw.methods.as_deref().unwrap_or_default())?;
        let hosts = match (raw.host, raw.hosts) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "hosts",
                    "`host` and `hosts` are mutually exclusive",
                ))
            }
            (Some(host), None) => vec![parse_host(&host, "host")?],
            (None, Some(hosts)) => parse_hosts(&hosts, "hosts")?,
            (None, None) => Vec::new(),
        };
        let remote_addrs = match (raw.remote_addr, raw.remote_addrs) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "remote_addrs",
                    "`remote_addr` and `remote_addrs` are mutually exclusive",
                ))
            }
            (Some(addr), None) => vec![parse_cidr(&addr, "remote_addr")?],
            (None, Some(addrs)) => addrs
                .iter()
                .enumerate()
                .map(|(i, a)| parse_cidr(a, &format!("remote_addrs[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
            (None, None) => Vec::new(),
        };
        let vars = raw
            .vars
            .as_ref()
            .map(|v| {
                Expr::compile(v).map_err(|e| {
                    ConfigError::new(
                        "vars",
                        format!("failed to validate the 'vars' expression: {e}"),
                    )
                })
            })
            .transpose()?;
        let enabled = match raw.status {
            None | Some(1) => true,
            Some(0) => false,
            Some(_) => return Err(ConfigError::new("status", "must be 0 or 1")),
        };
        let upstream = match (&raw.upstream_id, &raw.upstream) {
            (Some(id), _) => Some(UpstreamRef::Id(fields::parse_id(id, "upstream_id")?)),
            (None, Some(up)) => Some(UpstreamRef::Inline(Arc::new(
                Upstream::from_json(up).map_err(|e| e.within("upstream"))?,
            ))),
            (None, None) => None,
        };
        // APISIX resolves `upstream_id` over an inline `upstream`; still validate both.
        if let (Some(_), Some(up)) = (&raw.upstream_id, &raw.upstream) {
            Upstream::from_json(up).map_err(|e| e.within("upstream"))?;
        }
        let service_id = raw
            .service_id
            .as_ref()
            .map(|v| fields::parse_id(v, "service_id"))
            .transpose()?;
        let plugin_config_id = raw
            .plugin_config_id
            .as_ref()
            .map(|v| fields::parse_id(v, "plugin_config_id"))
            .transpose()?;
        let timeout = raw
            .timeout
            .as_ref()
            .map(|t| t.validate().map_err(|e| e.within("timeout")))
            .transpose()?;
        let plugins = match &raw.plugins {
            None => Plugins::default(),
            Some(p) => Plugins::from_json(p).map_err(|e| e.within("plugins"))?,
        };
        if raw.plugins.is_none()
            && upstream.is_none()
            && service_id.is_none()
            && plugin_config_id.is_none()
        {
            return Err(ConfigError::new(
                "",
                "at least one of plugins, upstream, upstream_id, service_id or \
                 plugin_config_id is required",
            ));
        }
        Ok(Route {
            id: id.to_owned(),
            name: raw.name,
            uris,
            methods,
            hosts,
            remote_addrs,
            vars,
            priority: raw.priority.unwrap_or(0),
            enabled,
            upstream,
            service_id,
            plugin_config_id,
            timeout,
            plugins,
            labels,
        })
    }
}

fn check_uri(uri: &str, path: &str) -> Result<(), ConfigError> {
    if uri.is_empty() || uri.len() > 4096 {
        return Err(ConfigError::new(path, "must be 1 to 4096 characters"));
    }
    if !uri.starts_with('/') && uri != "*" {
        return Err(ConfigError::new(path, "must start with `/`"));
    }
    Ok(())
}

fn parse_methods(methods: &[String]) -> Result<Vec<http::Method>, ConfigError> {
    let mut out: Vec<http::Method> = Vec::with_capacity(methods.len());
    for (i, m) in methods.iter().enumerate() {
        let path = format!("methods[{i}]");
        if !METHODS.contains(&m.as_str()) {
            return Err(ConfigError::new(
                path,
                format!("`{m}` is not one of {}", METHODS.join(", ")),
            ));
        }
        // Cannot fail for METHODS entries; mapped to an error anyway rather than unwrapped.
        let method = http::Method::from_bytes(m.as_bytes())
            .map_err(|_| ConfigError::new(&path, "invalid method"))?;
        if out.contains(&method) {
            return Err(ConfigError::new(path, format!("duplicate method `{m}`")));
        }
        out.push(method);
    }
    Ok(out)
}

/// Shared with services: a list of host patterns, non-empty and unique.
pub(crate) fn parse_hosts(hosts: &[String], path: &str) -> Result<Vec<String>, ConfigError> {
    if hosts.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    let mut out: Vec<String> = Vec::with_capacity(hosts.len());
    for (i, host) in hosts.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let host = parse_host(host, &item)?;
        if out.contains(&host) {
            return Err(ConfigError::new(item, format!("duplicate host `{host}`")));
        }
        out.push(host);
    }
    Ok(out)
}

/// A host pattern: `^\*$|^\*?[0-9a-zA-Z-._\[\]:]+$`, lower-cased.
fn parse_host(host: &str, path: &str) -> Result<String, ConfigError> {
    let rest = host.strip_prefix('*').unwrap_or(host);
    let valid = host == "*"
        || (!rest.is_empty()
            && rest.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
            }));
    if !valid {
        return Err(ConfigError::new(
            path,
            format!("`{host}` is not a valid host (pattern ^\\*?[0-9a-zA-Z-._\\[\\]:]+$)"),
        ));
    }
    Ok(host.to_ascii_lowercase())
}

fn parse_cidr(text: &str, path: &str) -> Result<ipnet::IpNet, ConfigError> {
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    Err(ConfigError::new(
        path,
        format!("`{text}` is not an IP address or CIDR"),
    ))
}
