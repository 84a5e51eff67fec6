//! Upstream objects (APISIX reference §2).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::checks::Checks;
use crate::config::fields::{self, RawTimeout};
use crate::ConfigError;

/// Upstream scheme. Only HTTP(S) is proxied; other APISIX schemes are rejected with a
/// clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `http` (default; default port 80).
    #[default]
    Http,
    /// `https` (default port 443).
    Https,
}

impl Scheme {
    /// Default port for the scheme.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Which Host header goes upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PassHost {
    /// `pass` (default): the client's Host.
    #[default]
    Pass,
    /// `node`: the picked node's host.
    Node,
    /// `rewrite`: `upstream_host` (required).
    Rewrite(String),
}

/// Where a `chash` key comes from (`hash_on` + `key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// `vars` (default) with an nginx/APISIX var name (`remote_addr`, `uri`, `arg_x`, ...).
    Vars(String),
    /// `header` with a header name.
    Header(String),
    /// `cookie` with a cookie name.
    Cookie(String),
    /// `consumer`: the authenticated consumer name.
    Consumer,
    /// `vars_combinations`: a template such as `$remote_addr$uri`.
    VarsCombinations(String),
}

/// Balancer type of an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Balancer {
    /// `roundrobin` (default).
    #[default]
    RoundRobin,
    /// `chash` with its key source.
    Chash(HashOn),
    /// `random` (extension; reproducible with `seed`).
    Random {
        /// Seed for the ChaCha stream.
        seed: u64,
    },
}

/// `timeout {connect, send, read}`; all three required when present, seconds > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    /// Connect timeout.
    pub connect: Duration,
    /// Send timeout.
    pub send: Duration,
    /// Read timeout.
    pub read: Duration,
}

/// `keepalive_pool {size=320, idle_timeout=60, requests=1000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepalivePool {
    /// Max idle connections per node.
    pub size: u32,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Max requests per connection.
    pub requests: u32,
}

impl Default for KeepalivePool {
    fn default() -> Self {
        KeepalivePool {
            size: 320,
            idle_timeout: Duration::from_secs(60),
            requests: 1000,
        }
    }
}

/// One upstream node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port (defaulted from the scheme when omitted).
    pub port: u16,
    /// Weight ≥ 0.
    pub weight: u32,
    /// Priority group; higher is tried first.
    pub priority: i32,
}

/// A validated upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Id when stored as a resource; `None` for inline upstreams.
    pub id: Option<String>,
    /// Optional name.
    pub name: Option<String>,
    /// Balancer over nodes.
    pub balancer: Balancer,
    /// Nodes in config order (map form: sorted by key for determinism).
    pub nodes: Vec<Node>,
    /// Scheme.
    pub scheme: Scheme,
    /// Host header policy.
    pub pass_host: PassHost,
    /// Timeouts, if configured.
    pub timeout: Option<Timeout>,
    /// Retries; `None` means APISIX's default `nodes - 1`.
    pub retries: Option<u32>,
    /// Total retry budget in seconds (0 = no limit).
    pub retry_timeout: Option<f64>,
    /// Keep-alive pool settings.
    pub keepalive_pool: KeepalivePool,
    /// Health checks (`checks`), if configured.
    pub checks: Option<Checks>,
}

impl Upstream {
    /// Parses and validates an upstream JSON object. Errors carry paths relative to the
    /// object (`nodes[0].port: ...`); callers add their prefix with `ConfigError::within`.
    pub fn from_json(value: &serde_json::Value) -> Result<Upstream, ConfigError> {
        let raw: RawUpstream = fields::from_value(value)?;
        raw.validate()
    }

    /// Renders the upstream as APISIX JSON (nodes in array form, defaults explicit).
    /// `Upstream::from_json(&u.to_json())` yields `u` again.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        if let Some(id) = &self.id {
            out.insert("id".into(), Value::from(id.as_str()));
        }
        if let Some(name) = &self.name {
            out.insert("name".into(), Value::from(name.as_str()));
        }
        match &self.balancer {
            Balancer::RoundRobin => {
                out.insert("type".into(), "roundrobin".into());
            }
            Balancer::Random { seed } => {
                out.insert("type".into(), "random".into());
                out.insert("seed".into(), Value::from(*seed));
            }
            Balancer::Chash(hash_on) => {
                out.insert("type".into(), "chash".into());
                let (on, key) = match hash_on {
                    HashOn::Vars(k) => ("vars", Some(k)),
                    HashOn::Header(k) => ("header", Some(k)),
                    HashOn::Cookie(k) => ("cookie", Some(k)),
                    HashOn::Consumer => ("consumer", None),
                    HashOn::VarsCombinations(k) => ("vars_combinations", Some(k)),
                };
                out.insert("hash_on".into(), on.into());
                if let Some(key) = key {
                    out.insert("key".into(), Value::from(key.as_str()));
                }
            }
        }
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "host": n.host, "port": n.port, "weight": n.weight, "priority": n.priority
                })
            })
            .collect();
        out.insert("nodes".into(), Value::Array(nodes));
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        out.insert("scheme".into(), scheme.into());
        match &self.pass_host {
            PassHost::Pass => {
                out.insert("pass_host".into(), "pass".into());
            }
            PassHost::Node => {
                out.insert("pass_host".into(), "node".into());
            }
            PassHost::Rewrite(host) => {
                out.insert("pass_host".into(), "rewrite".into());
                out.insert("upstream_host".into(), Value::from(host.as_str()));
            }
        }
        if let Some(t) = &self.timeout {
            out.insert(
                "timeout".into(),
                serde_json::json!({
                    "connect": t.connect.as_secs_f64(),
                    "send": t.send.as_secs_f64(),
                    "read": t.read.as_secs_f64(),
                }),
            );
        }
        if let Some(retries) = self.retries {
            out.insert("retries".into(), Value::from(retries));
        }
        if let Some(retry_timeout) = self.retry_timeout {
            out.insert("retry_timeout".into(), Value::from(retry_timeout));
        }
        let pool = &self.keepalive_pool;
        out.insert(
            "keepalive_pool".into(),
            serde_json::json!({
                "size": pool.size,
                "idle_timeout": pool.idle_timeout.as_secs_f64(),
                "requests": pool.requests,
            }),
        );
        if let Some(checks) = &self.checks {
            out.insert("checks".into(), checks.raw.clone());
        }
        Value::Object(out)
    }

    /// Effective retries: `retries` or `nodes - 1`.
    pub fn effective_retries(&self) -> u32 {
        self.retries.unwrap_or_else(|| {
            u32::try_from(self.nodes.len().saturating_sub(1)).unwrap_or(u32::MAX)
        })
    }
}

/// Upstream `type`s split implements.
pub const SUPPORTED_TYPES: &[&str] = &["roundrobin", "chash", "random"];

/// `hash_on` values.
pub const HASH_ON_VALUES: &[&str] = &["vars", "header", "cookie", "consumer", "vars_combinations"];

/// Variables `hash_on: vars` may name (besides `arg_*`), as APISIX's schema.
pub const HASH_ON_VARS: &[&str] = &[
    "uri",
    "server_name",
    "server_addr",
    "request_uri",
    "remote_port",
    "remote_addr",
    "query_string",
    "host",
    "hostname",
    "mqtt_client_id",
];

/// The upstream object exactly as APISIX v3 stores it.
#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "Upstream")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
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
        schemars(with = "Option<crate::config::schema::UpstreamType>")
    )]
    #[serde(rename = "type")]
    kind: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "crate::config::schema::Nodes"))]
    nodes: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::HashOnSource>")
    )]
    hash_on: Option<String>,
    key: Option<String>,
    seed: Option<u64>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::UpstreamScheme>")
    )]
    scheme: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::PassHostMode>")
    )]
    pass_host: Option<String>,
    upstream_host: Option<String>,
    timeout: Option<RawTimeout>,
    retries: Option<i64>,
    retry_timeout: Option<f64>,
    keepalive_pool: Option<RawKeepalivePool>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Checks>")
    )]
    checks: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    tls: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    service_name: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    discovery_type: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    discovery_args: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "KeepalivePool")
)]
#[serde(deny_unknown_fields)]
struct RawKeepalivePool {
    size: Option<i64>,
    idle_timeout: Option<f64>,
    requests: Option<i64>,
}

/// One node of the array form.
#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "Node")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    host: String,
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 65535)))]
    port: Option<i64>,
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    weight: i64,
    priority: Option<i64>,
    metadata: Option<Value>,
}

impl RawUpstream {
    fn validate(self) -> Result<Upstream, ConfigError> {
        let _ = (&self.create_time, &self.update_time);
        const DISCOVERY: &str = "service discovery is not supported yet; list the nodes";
        fields::reject_present(&self.service_name, "service_name", DISCOVERY)?;
        fields::reject_present(&self.discovery_type, "discovery_type", DISCOVERY)?;
        fields::reject_present(&self.discovery_args, "discovery_args", DISCOVERY)?;
        fields::reject_present(
            &self.tls,
            "tls",
            "upstream client certificates (tls) are not supported yet",
        )?;
        let id = self
            .id
            .as_ref()
            .map(|v| fields::parse_id(v, "id"))
            .transpose()?;
        fields::check_name(&self.name, "name")?;
        fields::check_desc(&self.desc, "desc")?;
        fields::check_labels(&self.labels, "labels")?;

        let scheme = match self.scheme.as_deref() {
            None | Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => {
                return Err(ConfigError::new(
                    "scheme",
                    format!("scheme `{other}` is not supported (supported: http, https)"),
                ))
            }
        };
        let balancer = self.balancer()?;
        let nodes = match &self.nodes {
            None => {
                return Err(ConfigError::new(
                    "nodes",
                    "is required (service discovery is not supported)",
                ))
            }
            Some(nodes) => parse_nodes(nodes, scheme)?,
        };
        let pass_host = match self.pass_host.as_deref() {
            None | Some("pass") => PassHost::Pass,
            Some("node") => PassHost::Node,
            Some("rewrite") => match &self.upstream_host {
                Some(host) => PassHost::Rewrite(host.clone()),
                None => {
                    return Err(ConfigError::new(
                        "upstream_host",
                        "is required when pass_host is `rewrite`",
                    ))
                }
            },
            Some(other) => {
                return Err(ConfigError::new(
                    "pass_host",
                    format!("must be one of pass, node, rewrite (got `{other}`)"),
                ))
            }
        };
        if let Some(host) = &self.upstream_host {
            fields::check_upstream_host(host, "upstream_host")?;
        }
        let timeout = self
            .timeout
            .as_ref()
            .map(|t| t.validate().map_err(|e| e.within("timeout")))
            .transpose()?;
        let retries = self
            .retries
            .map(|r| fields::non_negative_u32(r, "retries"))
            .transpose()?;
        if let Some(retry_timeout) = self.retry_timeout {
            fields::non_negative_seconds(retry_timeout, "retry_timeout")?;
        }
        let checks = self
            .checks
            .as_ref()
            .map(|c| Checks::from_json(c).map_err(|e| e.within("checks")))
            .transpose()?;
        let keepalive_pool = match &self.keepalive_pool {
            None => KeepalivePool::default(),
            Some(pool) => pool.validate().map_err(|e| e.within("keepalive_pool"))?,
        };
        Ok(Upstream {
            id,
            name: self.name,
            balancer,
            nodes,
            scheme,
            pass_host,
            timeout,
            retries,
            retry_timeout: self.retry_timeout,
            keepalive_pool,
            checks,
        })
    }

    fn balancer(&self) -> Result<Balancer, ConfigError> {
        let kind = self.kind.as_deref().unwrap_or("roundrobin");
        if self.seed.is_some() && kind != "random" {
            return Err(ConfigError::new("seed", "is only valid with type `random`"));
        }
        if let Some(hash_on) = &self.hash_on {
            if !HASH_ON_VALUES.contains(&hash_on.as_str()) {
                return Err(hash_on_error(hash_on));
            }
        }
        match kind {
            "roundrobin" => Ok(Balancer::RoundRobin),
            "random" => Ok(Balancer::Random {
                seed: self.seed.unwrap_or(0),
            }),
            "chash" => Ok(Balancer::Chash(parse_hash_on(
                self.hash_on.as_deref(),
                self.key.as_deref(),
            )?)),
            other => Err(ConfigError::new(
                "type",
                format!(
                    "unsupported type `{other}` (supported: {})",
                    SUPPORTED_TYPES.join(", ")
                ),
            )),
        }
    }
}

impl RawKeepalivePool {
    fn validate(&self) -> Result<KeepalivePool, ConfigError> {
        let defaults = KeepalivePool::default();
        let at_least_one = |v: Option<i64>, path: &str, default: u32| match v {
            None => Ok(default),
            Some(v) if v >= 1 => u32::try_from(v)
                .map_err(|_| ConfigError::new(path, format!("must be <= {}", u32::MAX))),
            Some(_) => Err(ConfigError::new(path, "must be >= 1")),
        };
        Ok(KeepalivePool {
            size: at_least_one(self.size, "size", defaults.size)?,
            idle_timeout: match self.idle_timeout {
                None => defaults.idle_timeout,
                Some(v) => fields::non_negative_seconds(v, "idle_timeout")?,
            },
            requests: at_least_one(self.requests, "requests", defaults.requests)?,
        })
    }
}

fn hash_on_error(got: &str) -> ConfigError {
    ConfigError::new(
        "hash_on",
        format!("must be one of {} (got `{got}`)", HASH_ON_VALUES.join(", ")),
    )
}

/// Validates `hash_on` (default `vars`) and `key` as APISIX does for `chash`; paths are
/// `hash_on` and `key` relative to the owning object.
pub(crate) fn parse_hash_on(
    hash_on: Option<&str>,
    key: Option<&str>,
) -> Result<HashOn, ConfigError> {
    let hash_on = hash_on.unwrap_or("vars");
    let require_key = || match key {
        Some(k) if !k.is_empty() => Ok(k.to_owned()),
        _ => Err(ConfigError::new("key", "missing key")),
    };
    let name_key = |k: String| {
        let valid = k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(k)
        } else {
            Err(ConfigError::new("key", "must match [a-zA-Z0-9-_]+"))
        }
    };
    match hash_on {
        "vars" => {
            let key = require_key()?;
            let valid = HASH_ON_VARS.contains(&key.as_str())
                || key.strip_prefix("arg_").is_some_and(|a| !a.is_empty());
            if !valid {
                return Err(ConfigError::new(
                    "key",
                    format!(
                        "`{key}` is not a supported var (supported: {}, arg_*)",
                        HASH_ON_VARS.join(", ")
                    ),
                ));
            }
            Ok(HashOn::Vars(key))
        }
        "header" => Ok(HashOn::Header(name_key(require_key()?)?)),
        "cookie" => Ok(HashOn::Cookie(name_key(require_key()?)?)),
        "consumer" => Ok(HashOn::Consumer),
        "vars_combinations" => Ok(HashOn::VarsCombinations(require_key()?)),
        other => Err(hash_on_error(other)),
    }
}

fn parse_nodes(value: &Value, scheme: Scheme) -> Result<Vec<Node>, ConfigError> {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|key| {
                    let path = format!("nodes[{}]", Value::String(key.clone()));
                    let (host, port) =
                        parse_host_port(key, scheme).map_err(|m| ConfigError::new(&path, m))?;
                    let weight = match map.get(key).and_then(Value::as_i64) {
                        Some(w) => fields::non_negative_u32(w, &path)?,
                        None => return Err(ConfigError::new(&path, "weight must be an integer")),
                    };
                    Ok(Node {
                        host,
                        port,
                        weight,
                        priority: 0,
                    })
                })
                .collect()
        }
        Value::Array(_) => {
            let raw: Vec<RawNode> = fields::from_value(value).map_err(|e| e.within("nodes"))?;
            raw.into_iter()
                .enumerate()
                .map(|(i, node)| {
                    node.validate(scheme)
                        .map_err(|e| e.within(&format!("nodes[{i}]")))
                })
                .collect()
        }
        _ => Err(ConfigError::new(
            "nodes",
            "expected an object {\"host:port\": weight} or an array of nodes",
        )),
    }
}

impl RawNode {
    fn validate(self, scheme: Scheme) -> Result<Node, ConfigError> {
        let _ = &self.metadata;
        let host = match self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
        {
            Some(inner) => inner.to_owned(),
            None => self.host.clone(),
        };
        check_node_host(&host).map_err(|m| ConfigError::new("host", m))?;
        let port = match self.port {
            None => scheme.default_port(),
            Some(p) => match u16::try_from(p) {
                Ok(p) if p >= 1 => p,
                _ => return Err(ConfigError::new("port", "must be 1 to 65535")),
            },
        };
        let priority = match self.priority {
            None => 0,
            Some(p) => {
                i32::try_from(p).map_err(|_| ConfigError::new("priority", "is out of range"))?
            }
        };
        Ok(Node {
            host,
            port,
            weight: fields::non_negative_u32(self.weight, "weight")?,
            priority,
        })
    }
}

/// Splits a map-form node key: `host:port`, `host` (scheme default port), `[v6]:port`,
/// `[v6]`. Bare IPv6 is rejected because `::1:80` is ambiguous.
fn parse_host_port(key: &str, scheme: Scheme) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = key.strip_prefix('[') {
        let (addr, tail) = rest
            .split_once(']')
            .ok_or_else(|| "invalid IPv6 literal (missing `]`)".to_owned())?;
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(format!("`{addr}` is not an IPv6 address"));
        }
        let port = match tail {
            "" => None,
            _ => Some(
                tail.strip_prefix(':')
                    .ok_or_else(|| "expected `:port` after `]`".to_owned())?,
            ),
        };
        (addr.to_owned(), port)
    } else {
        match key.matches(':').count() {
            0 => (key.to_owned(), None),
            1 => {
                // The count is 1, so split_once finds it.
                let (host, port) = key.split_once(':').unwrap_or((key, ""));
                check_node_host(host)?;
                (host.to_owned(), Some(port))
            }
            _ => return Err("IPv6 addresses must be written as `[addr]:port`".to_owned()),
        }
    };
    if !host.contains(':') {
        check_node_host(&host)?;
    }
    let port = match port {
        None => scheme.default_port(),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p >= 1 => p,
            _ => return Err(format!("invalid port `{p}` (must be 1 to 65535)")),
        },
    };
    Ok((host, port))
}

/// A node host: an IP literal or a DNS name of `[A-Za-z0-9._-]`.
fn check_node_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host must not be empty".to_owned());
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(format!("`{host}` is not a valid host name or IP address"))
    }
}
