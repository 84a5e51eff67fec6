//! `config.yaml`: the gateway's own settings, in both the guide's form
//! (`apisix.admin_key[]`, `apisix.admin_key_required`, `admin.allow_admin[]`) and APISIX
//! 3.x's (`deployment.admin.{admin_key_required, admin_key[], allow_admin[], admin_listen}`).
//!
//! `${{ENV}}` and `${{ENV:=default}}` are substituted through a caller-supplied lookup
//! (the core reads no environment). Unknown keys produce one warning each (returned, not
//! logged: the core does no IO).

use std::net::SocketAddr;

use crate::admin_auth::AdminKey;
use crate::ConfigError;

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

/// `deployment.etcd`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// `deployment.role`.
    pub role: DeploymentRole,
    /// Config provider.
    pub provider: ConfigProvider,
    /// `deployment.etcd`.
    pub etcd: Option<EtcdSettings>,
    /// `apisix.max_post_args_readable_size` / body cap for `post_arg` matching (bytes).
    pub max_body_for_match: usize,
    /// One message per unknown key (`unknown key apisix.foo, ignored`).
    pub warnings: Vec<String>,
}

impl GatewayConfig {
    /// Parses `config.yaml` text. `env` resolves `${{NAME}}` references.
    pub fn from_yaml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<GatewayConfig, ConfigError> {
        let _ = (text, env);
        todo!("config::gateway::GatewayConfig::from_yaml")
    }
}
