//! Upstream objects (APISIX reference §2).

use std::time::Duration;

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
}

impl Upstream {
    /// Parses and validates an upstream JSON object. Errors carry paths relative to the
    /// object (`nodes[0].port: ...`); callers add their prefix with `ConfigError::within`.
    pub fn from_json(value: &serde_json::Value) -> Result<Upstream, ConfigError> {
        let _ = value;
        todo!("config::upstream::Upstream::from_json")
    }

    /// Effective retries: `retries` or `nodes - 1`.
    pub fn effective_retries(&self) -> u32 {
        self.retries
            .unwrap_or_else(|| u32::try_from(self.nodes.len().saturating_sub(1)).unwrap_or(u32::MAX))
    }
}
