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

mod subst;
pub(crate) mod yaml;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::{Map, Value};

use crate::admin_auth::{validate_keys, AdminAuth, AdminKey, Role};
use crate::error::{index, join};
use crate::ConfigError;

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
}

impl std::fmt::Debug for EtcdSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSettings")
            .field("hosts", &self.hosts)
            .field("prefix", &self.prefix)
            .field("timeout_secs", &self.timeout_secs)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
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
            role: DeploymentRole::Traditional,
            provider: ConfigProvider::Embedded,
            etcd: None,
            max_body_for_match: DEFAULT_MAX_BODY_FOR_MATCH,
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
        let root = as_map(&doc, "")?;
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

const TOP_KNOWN: &[&str] = &["apisix", "deployment", "admin", "plugin_attr"];
const TOP_UNSUPPORTED: &[&str] = &[
    "nginx_config",
    "plugins",
    "stream_plugins",
    "wasm",
    "discovery",
    "graphql",
    "ext-plugin",
    "xrpc",
    "etcd",
];
const APISIX_KNOWN: &[&str] = &[
    "enable_admin",
    "admin_key_required",
    "admin_key",
    "allow_admin",
    "node_listen",
    "max_post_args_readable_size",
];
const APISIX_UNSUPPORTED: &[&str] = &[
    "ssl",
    "enable_ipv6",
    "enable_http2",
    "enable_reuseport",
    "proxy_mode",
    "stream_proxy",
    "router",
    "enable_control",
    "control",
    "proxy_cache",
    "proxy_protocol",
    "delete_uri_tail_slash",
    "normalize_uri_like_servlet",
    "enable_server_tokens",
    "enable_resolv_search_opt",
    "show_upstream_status_in_response_header",
    "extra_lua_path",
    "extra_lua_cpath",
    "lua_module_hook",
    "dns_resolver",
    "dns_resolver_valid",
    "resolver_timeout",
    "id",
    "events",
    "disable_sync_configuration_during_start",
    "data_encryption",
    "tracing",
    "status",
    "enable_dev_mode",
    "admin_listen",
];
const DEPLOYMENT_KNOWN: &[&str] = &[
    "role",
    "role_traditional",
    "role_data_plane",
    "role_control_plane",
    "admin",
    "etcd",
    "config_provider",
];
const DEPLOYMENT_UNSUPPORTED: &[&str] = &["certs", "fallback_cp"];
const ADMIN_KNOWN: &[&str] = &[
    "admin_key_required",
    "admin_key",
    "allow_admin",
    "admin_listen",
    "admin_api_version",
];
const ADMIN_UNSUPPORTED: &[&str] = &[
    "enable_admin_cors",
    "https_admin",
    "admin_api_mtls",
    "enable_admin_ui",
];
const ETCD_KNOWN: &[&str] = &["host", "prefix", "timeout", "user", "password"];
const ETCD_UNSUPPORTED: &[&str] = &[
    "tls",
    "startup_retry",
    "watch_timeout",
    "resync_delay",
    "health_check_timeout",
    "use_grpc",
];

/// The settings of one of the two admin forms, before precedence is applied.
#[derive(Default)]
struct AdminForm {
    required: Option<(bool, String)>,
    keys: Option<(Vec<AdminKey>, String)>,
    allow: Option<(Vec<ipnet::IpNet>, String)>,
}

#[derive(Default)]
struct Parser {
    warnings: Vec<String>,
}

impl Parser {
    fn run(mut self, root: &Map<String, Value>) -> Result<GatewayConfig, ConfigError> {
        self.check_keys(root, "", TOP_KNOWN, TOP_UNSUPPORTED);
        let mut cfg = GatewayConfig::default();
        let mut guide = AdminForm::default();
        let mut deploy = AdminForm::default();

        if let Some(apisix) = section(root, "apisix", "apisix")? {
            self.check_keys(apisix, "apisix", APISIX_KNOWN, APISIX_UNSUPPORTED);
            if let Some(v) = get(apisix, "enable_admin") {
                cfg.enable_admin = as_bool(v, "apisix.enable_admin")?;
            }
            self.admin_settings(apisix, "apisix", &mut guide)?;
            if let Some(v) = get(apisix, "node_listen") {
                cfg.node_listen = self.node_listen(v, "apisix.node_listen")?;
            }
            if let Some(v) = get(apisix, "max_post_args_readable_size") {
                let path = "apisix.max_post_args_readable_size";
                let n = as_u64(v, path)?;
                cfg.max_body_for_match = usize::try_from(n)
                    .map_err(|_| ConfigError::new(path, "is too large for this platform"))?;
            }
        }
        if let Some(admin) = section(root, "admin", "admin")? {
            self.check_keys(admin, "admin", &["allow_admin"], &[]);
            // The guide's `admin.allow_admin` is preferred over APISIX 2.x's
            // `apisix.allow_admin` when both are given.
            let mut top = AdminForm::default();
            self.admin_settings(admin, "admin", &mut top)?;
            if top.allow.is_some() {
                if let (Some((old, old_path)), Some((new, new_path))) = (&guide.allow, &top.allow) {
                    if old != new {
                        self.warnings.push(format!(
                            "{old_path} is ignored: {new_path} is also set and takes precedence"
                        ));
                    }
                }
                guide.allow = top.allow;
            }
        }
        if let Some(deployment) = section(root, "deployment", "deployment")? {
            self.deployment(deployment, &mut cfg, &mut deploy)?;
        }
        if let Some(attr) = section(root, "plugin_attr", "plugin_attr")? {
            self.plugin_attr(attr, &mut cfg)?;
        }

        if let Some(required) = self.prefer(deploy.required, guide.required) {
            cfg.admin_key_required = required;
        }
        if let Some((keys, path)) = self.prefer_with_path(deploy.keys, guide.keys) {
            validate_keys(&keys).map_err(|e| e.within(&path))?;
            cfg.admin_keys = keys;
        }
        cfg.allow_admin = self.prefer(deploy.allow, guide.allow);
        cfg.warnings = self.warnings;
        Ok(cfg)
    }

    /// Takes the 3.x value if set, else the guide's; warns when both differ.
    fn prefer<T: PartialEq>(
        &mut self,
        new: Option<(T, String)>,
        legacy: Option<(T, String)>,
    ) -> Option<T> {
        self.prefer_with_path(new, legacy).map(|(v, _)| v)
    }

    fn prefer_with_path<T: PartialEq>(
        &mut self,
        new: Option<(T, String)>,
        legacy: Option<(T, String)>,
    ) -> Option<(T, String)> {
        match (new, legacy) {
            (Some(n), Some(l)) => {
                if n.0 != l.0 {
                    self.warnings.push(format!(
                        "{} is ignored: {} is also set and takes precedence",
                        l.1, n.1
                    ));
                }
                Some(n)
            }
            (n, l) => n.or(l),
        }
    }

    /// Reads `admin_key_required`, `admin_key` and `allow_admin` from one place.
    fn admin_settings(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        out: &mut AdminForm,
    ) -> Result<(), ConfigError> {
        if let Some(v) = get(map, "admin_key_required") {
            let p = join(path, "admin_key_required");
            out.required = Some((as_bool(v, &p)?, p));
        }
        if let Some(v) = get(map, "admin_key") {
            let p = join(path, "admin_key");
            out.keys = Some((self.admin_keys(v, &p)?, p));
        }
        if let Some(v) = get(map, "allow_admin") {
            let p = join(path, "allow_admin");
            out.allow = Some((allow_list(v, &p)?, p));
        }
        Ok(())
    }

    fn admin_keys(&mut self, v: &Value, path: &str) -> Result<Vec<AdminKey>, ConfigError> {
        let mut keys = Vec::new();
        for (i, item) in as_list(v, path)?.iter().enumerate() {
            let p = index(path, i);
            let m = as_map(item, &p)?;
            self.check_keys(m, &p, &["name", "key", "role"], &[]);
            let name = match get(m, "name") {
                Some(n) => as_str(n, &join(&p, "name"))?.to_owned(),
                None => String::new(),
            };
            let key_path = join(&p, "key");
            let key = match get(m, "key") {
                Some(Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(ConfigError::new(
                        key_path,
                        "must be a string (quote the key in YAML)",
                    ))
                }
                None => {
                    return Err(ConfigError::new(
                        key_path,
                        "is required: set a random key of at least 32 characters",
                    ))
                }
            };
            let role = match get(m, "role") {
                Some(r) => {
                    let rp = join(&p, "role");
                    let s = as_str(r, &rp)?;
                    Role::parse(s).ok_or_else(|| {
                        ConfigError::new(rp, format!("must be admin or viewer, got {s:?}"))
                    })?
                }
                None => Role::Admin,
            };
            keys.push(AdminKey { name, key, role });
        }
        Ok(keys)
    }

    fn node_listen(&mut self, v: &Value, path: &str) -> Result<Vec<SocketAddr>, ConfigError> {
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let addrs = match v {
            Value::Number(_) => vec![SocketAddr::new(unspecified, as_port(v, path)?)],
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = index(path, i);
                    let addr = match item {
                        Value::Number(_) => SocketAddr::new(unspecified, as_port(item, &p)?),
                        Value::Object(m) => {
                            self.check_keys(
                                m,
                                &p,
                                &["ip", "port"],
                                &["enable_http2", "enable_http3"],
                            );
                            self.socket_addr(m, &p, unspecified, None)?
                        }
                        _ => return Err(ConfigError::new(p, "must be a port or {ip, port}")),
                    };
                    if let Some(j) = out.iter().position(|a| *a == addr) {
                        return Err(ConfigError::new(p, format!("duplicates [{j}] ({addr})")));
                    }
                    out.push(addr);
                }
                out
            }
            _ => {
                return Err(ConfigError::new(
                    path,
                    "must be a port or a list of ports or {ip, port}",
                ))
            }
        };
        Ok(addrs)
    }

    /// `{ip, port}` with defaults; `default_port: None` makes `port` required.
    fn socket_addr(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        default_ip: IpAddr,
        default_port: Option<u16>,
    ) -> Result<SocketAddr, ConfigError> {
        let ip = match get(m, "ip") {
            Some(v) => {
                let p = join(path, "ip");
                let s = as_str(v, &p)?;
                let s = s
                    .strip_prefix('[')
                    .and_then(|x| x.strip_suffix(']'))
                    .unwrap_or(s);
                s.parse::<IpAddr>()
                    .map_err(|_| ConfigError::new(p, format!("{s:?} is not an IP address")))?
            }
            None => default_ip,
        };
        let port = match (get(m, "port"), default_port) {
            (Some(v), _) => as_port(v, &join(path, "port"))?,
            (None, Some(d)) => d,
            (None, None) => return Err(ConfigError::new(join(path, "port"), "is required")),
        };
        Ok(SocketAddr::new(ip, port))
    }

    fn deployment(
        &mut self,
        d: &Map<String, Value>,
        cfg: &mut GatewayConfig,
        admin_form: &mut AdminForm,
    ) -> Result<(), ConfigError> {
        self.check_keys(d, "deployment", DEPLOYMENT_KNOWN, DEPLOYMENT_UNSUPPORTED);
        if let Some(v) = get(d, "role") {
            let s = as_str(v, "deployment.role")?;
            cfg.role = match s {
                "traditional" => DeploymentRole::Traditional,
                "data_plane" => DeploymentRole::DataPlane,
                "control_plane" => DeploymentRole::ControlPlane,
                _ => {
                    return Err(ConfigError::new(
                        "deployment.role",
                        format!("must be traditional, data_plane or control_plane, got {s:?}"),
                    ))
                }
            };
        }
        if let Some(admin) = section(d, "admin", "deployment.admin")? {
            self.check_keys(admin, "deployment.admin", ADMIN_KNOWN, ADMIN_UNSUPPORTED);
            self.admin_settings(admin, "deployment.admin", admin_form)?;
            if let Some(v) = get(admin, "admin_listen") {
                let p = "deployment.admin.admin_listen";
                let m = as_map(v, p)?;
                self.check_keys(m, p, &["ip", "port"], &[]);
                cfg.admin_listen =
                    Some(self.socket_addr(m, p, DEFAULT_ADMIN_LISTEN.ip(), Some(9180))?);
            }
            if let Some(v) = get(admin, "admin_api_version") {
                let p = "deployment.admin.admin_api_version";
                if as_str(v, p)? != "v3" {
                    return Err(ConfigError::new(p, "only v3 is supported"));
                }
            }
        }

        // Provider: explicit shorthand > the active role's block > etcd presence.
        let explicit = match get(d, "config_provider") {
            Some(v) => {
                let p = "deployment.config_provider";
                let s = as_str(v, p)?;
                Some(ConfigProvider::parse(s, true).ok_or_else(|| {
                    ConfigError::new(
                        p,
                        format!("must be embedded, etcd, yaml or json, got {s:?}"),
                    )
                })?)
            }
            None => None,
        };
        let mut from_role = None;
        for role in [
            DeploymentRole::Traditional,
            DeploymentRole::DataPlane,
            DeploymentRole::ControlPlane,
        ] {
            let key = format!("role_{}", role.as_str());
            let path = format!("deployment.{key}");
            let Some(block) = section(d, &key, &path)? else {
                continue;
            };
            if role != cfg.role {
                self.warnings.push(format!(
                    "{path} is ignored: deployment.role is {}",
                    cfg.role.as_str()
                ));
                continue;
            }
            self.check_keys(block, &path, &["config_provider"], &[]);
            if let Some(v) = get(block, "config_provider") {
                let p = join(&path, "config_provider");
                let s = as_str(v, &p)?;
                let provider = ConfigProvider::parse(s, false).ok_or_else(|| {
                    ConfigError::new(&p, format!("must be etcd, yaml or json, got {s:?}"))
                })?;
                from_role = Some((provider, p));
            }
        }
        let etcd_block = section(d, "etcd", "deployment.etcd")?;
        cfg.provider = match (explicit, from_role) {
            (Some(e), Some((r, rp))) if e != r => {
                return Err(ConfigError::new(
                    "deployment.config_provider",
                    format!("{} conflicts with {rp}: {}", e.as_str(), r.as_str()),
                ))
            }
            (Some(e), _) => e,
            (None, Some((r, _))) => r,
            (None, None) if etcd_block.is_some() || cfg.role == DeploymentRole::DataPlane => {
                ConfigProvider::Etcd
            }
            (None, None) => ConfigProvider::Embedded,
        };
        match (&cfg.provider, etcd_block) {
            (ConfigProvider::Etcd, block) => cfg.etcd = Some(self.etcd(block)?),
            (other, Some(_)) => self.warnings.push(format!(
                "deployment.etcd is not used with config provider {}, ignored",
                other.as_str()
            )),
            (_, None) => {}
        }
        Ok(())
    }

    fn etcd(&mut self, block: Option<&Map<String, Value>>) -> Result<EtcdSettings, ConfigError> {
        let mut s = EtcdSettings::defaults();
        let Some(m) = block else {
            return Ok(s);
        };
        self.check_keys(m, "deployment.etcd", ETCD_KNOWN, ETCD_UNSUPPORTED);
        if let Some(v) = get(m, "host") {
            let p = "deployment.etcd.host";
            let hosts: Vec<(String, String)> = match v {
                Value::String(h) => vec![(h.clone(), p.to_owned())],
                _ => as_list(v, p)?
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let hp = index(p, i);
                        as_str(h, &hp).map(|h| (h.to_owned(), hp))
                    })
                    .collect::<Result<_, _>>()?,
            };
            if hosts.is_empty() {
                return Err(ConfigError::new(p, "must list at least one etcd URL"));
            }
            for (h, hp) in &hosts {
                if !(h.starts_with("http://") || h.starts_with("https://"))
                    || h.len() <= "https://".len()
                {
                    return Err(ConfigError::new(
                        hp,
                        format!("{h:?} must be a URL such as http://127.0.0.1:2379"),
                    ));
                }
            }
            s.hosts = hosts.into_iter().map(|(h, _)| h).collect();
        }
        if let Some(v) = get(m, "prefix") {
            let p = "deployment.etcd.prefix";
            let prefix = as_str(v, p)?;
            if !prefix.starts_with('/') {
                return Err(ConfigError::new(p, format!("{prefix:?} must start with /")));
            }
            s.prefix = prefix.to_owned();
        }
        if let Some(v) = get(m, "timeout") {
            let p = "deployment.etcd.timeout";
            s.timeout_secs = as_u64(v, p)?;
            if s.timeout_secs == 0 {
                return Err(ConfigError::new(p, "must be > 0 seconds"));
            }
        }
        if let Some(v) = get(m, "user") {
            s.user = Some(as_str(v, "deployment.etcd.user")?.to_owned());
        }
        if let Some(v) = get(m, "password") {
            // Never echo the value: it is a secret.
            let Value::String(pw) = v else {
                return Err(ConfigError::new(
                    "deployment.etcd.password",
                    "must be a string (quote it in YAML)",
                ));
            };
            s.password = Some(pw.clone());
        }
        Ok(s)
    }

    fn plugin_attr(
        &mut self,
        attr: &Map<String, Value>,
        cfg: &mut GatewayConfig,
    ) -> Result<(), ConfigError> {
        for key in attr.keys() {
            if key != "prometheus" {
                self.warnings.push(format!(
                    "plugin_attr.{key} is not supported by split, ignored"
                ));
            }
        }
        let Some(prom) = section(attr, "prometheus", "plugin_attr.prometheus")? else {
            return Ok(());
        };
        self.check_keys(
            prom,
            "plugin_attr.prometheus",
            &["export_addr"],
            &[
                "export_uri",
                "metric_prefix",
                "enable_export_server",
                "default_buckets",
                "metrics",
                "expire",
                "refresh_interval",
            ],
        );
        if let Some(v) = get(prom, "export_addr") {
            let p = "plugin_attr.prometheus.export_addr";
            let m = as_map(v, p)?;
            self.check_keys(m, p, &["ip", "port"], &[]);
            cfg.prometheus_addr = Some(self.socket_addr(
                m,
                p,
                DEFAULT_PROMETHEUS_ADDR.ip(),
                Some(DEFAULT_PROMETHEUS_ADDR.port()),
            )?);
        }
        Ok(())
    }

    /// One warning per key that is not in `known`; keys in `unsupported` are APISIX
    /// settings split knows but does not implement.
    fn check_keys(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        known: &[&str],
        unsupported: &[&str],
    ) {
        for key in map.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let full = join(path, key);
            if unsupported.contains(&key.as_str()) {
                self.warnings
                    .push(format!("{full} is not supported by split, ignored"));
            } else {
                self.warnings.push(format!("unknown key {full}, ignored"));
            }
        }
    }
}

/// A present, non-null value (YAML `key:` with nothing after it is null = unset).
fn get<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// A sub-mapping, or `None` when absent or null.
fn section<'v>(
    map: &'v Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'v Map<String, Value>>, ConfigError> {
    get(map, key).map(|v| as_map(v, path)).transpose()
}

fn as_map<'v>(v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, ConfigError> {
    v.as_object()
        .ok_or_else(|| ConfigError::new(path, format!("must be a mapping, got {}", kind(v))))
}

fn as_list<'v>(v: &'v Value, path: &str) -> Result<&'v Vec<Value>, ConfigError> {
    v.as_array()
        .ok_or_else(|| ConfigError::new(path, format!("must be a list, got {}", kind(v))))
}

fn as_str<'v>(v: &'v Value, path: &str) -> Result<&'v str, ConfigError> {
    v.as_str()
        .ok_or_else(|| ConfigError::new(path, format!("must be a string, got {}", kind(v))))
}

fn as_bool(v: &Value, path: &str) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| ConfigError::new(path, format!("must be true or false, got {}", kind(v))))
}

fn as_u64(v: &Value, path: &str) -> Result<u64, ConfigError> {
    v.as_u64().ok_or_else(|| {
        ConfigError::new(
            path,
            format!("must be a non-negative integer, got {}", kind(v)),
        )
    })
}

fn as_port(v: &Value, path: &str) -> Result<u16, ConfigError> {
    let n = as_u64(v, path)?;
    u16::try_from(n)
        .map_err(|_| ConfigError::new(path, format!("port {n} is out of range 0-65535")))
}

/// `allow_admin`: CIDRs or plain addresses (a plain address is a /32 or /128).
fn allow_list(v: &Value, path: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    as_list(v, path)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = index(path, i);
            let s = as_str(item, &p)?.trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::new(p, format!("{s:?} is not a CIDR or IP address")))
        })
        .collect()
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}
