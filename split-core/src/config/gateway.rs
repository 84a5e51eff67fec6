//! `config.yaml`: the gateway's own settings, in both the guide's form
//! (`apisix.admin_key[]`, `apisix.admin_key_required`, `admin.allow_admin[]`) and APISIX
//! 3.x's (`deployment.admin.{admin_key_required, admin_key[], allow_admin[], admin_listen}`).
//!
//! `${{ENV}}` and `${{ENV:=default}}` are substituted through a caller-supplied lookup
//! (the core reads no environment). Unknown keys produce one warning each (returned, not
//! logged: the core does no IO).
//!
//! Decisions (documented here because they differ from, or refine, APISIX):
//! - **Both admin forms given**: each setting is taken from `deployment.admin` when it is
//!   set there, else from the guide's place. If both places set it to *different* values,
//!   the guide's one is ignored with a warning; identical values are silent.
//! - **Config provider**: `deployment.config_provider` (split's shorthand: `embedded`,
//!   `etcd`, `yaml`, `json`) wins, then `deployment.role_<role>.config_provider`; with
//!   neither, etcd is used when `deployment.etcd` is present or the role is `data_plane`
//!   (APISIX's default for a data plane), otherwise the embedded store.
//!   `deployment.etcd` is ignored with a warning when the provider is not etcd.
//! - **Body cap for `post_arg` matching**: `apisix.max_post_args_readable_size` when set;
//!   the default is 1 MiB ([`DEFAULT_MAX_BODY_FOR_MATCH`]), not APISIX's 64 MiB, because
//!   the proxy holds the body in memory while it matches.
//! - **Ports** may be 0 (the OS picks one; used by tests). `admin_listen.ip` defaults to
//!   `127.0.0.1`, `node_listen` items' `ip` to `0.0.0.0`.
//! - An empty (or comment-only) file is valid: every setting has its default.

mod nginx;
mod parser;
mod subst;
mod value;
pub(crate) mod yaml;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::admin_auth::{AdminAuth, AdminKey};
use crate::ConfigError;

pub use nginx::{ErrorLogLevel, MAX_WORKERS};
use parser::Parser;

/// Proxy listener when `apisix.node_listen` is not set.
pub const DEFAULT_NODE_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9080);
/// Admin listener when `deployment.admin.admin_listen` is not set.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9180);
/// Metrics listener when `plugin_attr.prometheus.export_addr` is not set.
pub const DEFAULT_PROMETHEUS_ADDR: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9091);
/// Default cap (bytes) on a body read for `post_arg` matching: 1 MiB.
pub const DEFAULT_MAX_BODY_FOR_MATCH: usize = 1 << 20;
/// Default etcd endpoint when etcd is the provider and no `host` is given.
pub const DEFAULT_ETCD_HOST: &str = "http://127.0.0.1:2379";

/// The `allow_admin` list that applies when none is configured: `[127.0.0.0/24]`.
pub fn default_allow_admin() -> Vec<ipnet::IpNet> {
    vec![ipnet::IpNet::V4(
        // 24 ≤ 32, so the prefix length is valid.
        ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 24).expect("/24 is a valid IPv4 prefix"),
    )]
}

/// `deployment.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeploymentRole {
    /// Proxy + Admin API (default).
    #[default]
    Traditional,
    /// Proxy only; config from a file or etcd.
    DataPlane,
    /// Admin API only.
    ControlPlane,
}

impl DeploymentRole {
    /// The config.yaml spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentRole::Traditional => "traditional",
            DeploymentRole::DataPlane => "data_plane",
            DeploymentRole::ControlPlane => "control_plane",
        }
    }
}

/// Where configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConfigProvider {
    /// Embedded redb store (default).
    #[default]
    Embedded,
    /// Declarative `apisix.yaml` (`config_provider: yaml`).
    Yaml,
    /// Declarative `apisix.json` (`config_provider: json`).
    Json,
    /// etcd (`deployment.etcd`).
    Etcd,
}

impl ConfigProvider {
    fn parse(s: &str, allow_embedded: bool) -> Option<ConfigProvider> {
        match s {
            "yaml" => Some(ConfigProvider::Yaml),
            "json" => Some(ConfigProvider::Json),
            "etcd" => Some(ConfigProvider::Etcd),
            "embedded" if allow_embedded => Some(ConfigProvider::Embedded),
            _ => None,
        }
    }

    /// The config.yaml spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConfigProvider::Embedded => "embedded",
            ConfigProvider::Yaml => "yaml",
            ConfigProvider::Json => "json",
            ConfigProvider::Etcd => "etcd",
        }
    }
}

/// `deployment.etcd`. `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EtcdSettings {
    /// `host[]` URLs.
    pub hosts: Vec<String>,
    /// Key prefix (default `/apisix`).
    pub prefix: String,
    /// Timeout seconds (default 30).
    pub timeout_secs: u64,
    /// `user`.
    pub user: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `tls`: how `https://` hosts are checked (`None`: the webpki roots, no client
    /// certificate).
    pub tls: Option<EtcdTls>,
}

/// `deployment.etcd.tls`. Certificate checks cannot be turned off (`verify: false` is
/// refused at parse time); trust a private CA with `ca_file` instead.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// `ca_file`: PEM file of the CA that signed the etcd server certificates (split's
    /// key; APISIX reads `apisix.ssl.ssl_trusted_certificate`).
    pub ca_file: Option<String>,
    /// `cert`: PEM client certificate file (with `key`).
    pub cert: Option<String>,
    /// `key`: PEM client private key file (with `cert`).
    pub key: Option<String>,
    /// `sni`: server name to verify instead of the URL's host.
    pub sni: Option<String>,
}

impl std::fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("hosts", &self.hosts)
            .field("prefix", &self.prefix)
            .field("timeout_secs", &self.timeout_secs)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

impl EtcdSettings {
    fn defaults() -> EtcdSettings {
        EtcdSettings {
            hosts: vec![DEFAULT_ETCD_HOST.to_owned()],
            prefix: "/apisix".to_owned(),
            timeout_secs: 30,
            user: None,
            password: None,
            tls: None,
        }
    }
}

/// Validated gateway settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// `apisix.enable_admin` (default true).
    pub enable_admin: bool,
    /// `admin_key_required` (default true).
    pub admin_key_required: bool,
    /// Admin keys (validated: no placeholder, admin keys ≥ 32 chars).
    pub admin_keys: Vec<AdminKey>,
    /// `allow_admin` CIDRs; `None` = unset (default `[127.0.0.0/24]` applies).
    pub allow_admin: Option<Vec<ipnet::IpNet>>,
    /// `admin_listen`, if set.
    pub admin_listen: Option<SocketAddr>,
    /// `apisix.node_listen`, if set (port or list of `{ip, port}`).
    pub node_listen: Vec<SocketAddr>,
    /// `plugin_attr.prometheus.export_addr`, if set.
    pub prometheus_addr: Option<SocketAddr>,
    /// `plugin_attr.opentelemetry`, if set.
    pub opentelemetry: Option<crate::config::plugins::OtelSettings>,
    /// `deployment.role`.
    pub role: DeploymentRole,
    /// Config provider.
    pub provider: ConfigProvider,
    /// `deployment.etcd`.
    pub etcd: Option<EtcdSettings>,
    /// `apisix.max_post_args_readable_size` / body cap for `post_arg` matching (bytes).
    pub max_body_for_match: usize,
    /// `nginx_config.error_log_level`, if set (the diagnostic log level).
    pub error_log_level: Option<ErrorLogLevel>,
    /// `nginx_config.enable_cpu_affinity`: pin each worker to its own CPU (default off).
    pub cpu_affinity: bool,
    /// `nginx_config.worker_processes` when a number (`None`: `auto` or unset, one
    /// worker per core).
    pub worker_processes: Option<usize>,
    /// One message per unknown key (`unknown key apisix.foo, ignored`).
    pub warnings: Vec<String>,
}

impl Default for GatewayConfig {
    /// The settings of an empty `config.yaml`.
    fn default() -> Self {
        GatewayConfig {
            enable_admin: true,
            admin_key_required: true,
            admin_keys: Vec::new(),
            allow_admin: None,
            admin_listen: None,
            node_listen: Vec::new(),
            prometheus_addr: None,
            opentelemetry: None,
            role: DeploymentRole::Traditional,
            provider: ConfigProvider::Embedded,
            etcd: None,
            max_body_for_match: DEFAULT_MAX_BODY_FOR_MATCH,
            error_log_level: None,
            cpu_affinity: false,
            worker_processes: None,
            warnings: Vec::new(),
        }
    }
}

impl GatewayConfig {
    /// Parses `config.yaml` text. `env` resolves `${{NAME}}` references.
    pub fn from_yaml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GatewayConfig, ConfigError> {
        let mut doc = yaml::parse(text)?;
        if doc.is_null() {
            return Ok(GatewayConfig::default());
        }
        subst::substitute(&mut doc, "", env)?;
        let root = value::as_map(&doc, "")?;
        Parser::default().run(root)
    }

    /// The Admin API policy: keys, `admin_key_required`, and `allow_admin` (or its
    /// default `[127.0.0.0/24]` when unset).
    pub fn admin_auth(&self) -> AdminAuth {
        AdminAuth {
            keys: self.admin_keys.clone(),
            required: self.admin_key_required,
            allow: self.allow_admin.clone().unwrap_or_else(default_allow_admin),
        }
    }

    /// Proxy listeners: `node_listen`, or [`DEFAULT_NODE_LISTEN`].
    pub fn node_listen_or_default(&self) -> Vec<SocketAddr> {
        if self.node_listen.is_empty() {
            vec![DEFAULT_NODE_LISTEN]
        } else {
            self.node_listen.clone()
        }
    }

    /// Admin listener: `admin_listen`, or [`DEFAULT_ADMIN_LISTEN`].
    pub fn admin_listen_or_default(&self) -> SocketAddr {
        self.admin_listen.unwrap_or(DEFAULT_ADMIN_LISTEN)
    }

    /// Metrics listener: `export_addr`, or [`DEFAULT_PROMETHEUS_ADDR`].
    pub fn prometheus_addr_or_default(&self) -> SocketAddr {
        self.prometheus_addr.unwrap_or(DEFAULT_PROMETHEUS_ADDR)
    }
}
