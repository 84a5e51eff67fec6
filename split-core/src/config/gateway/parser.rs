//! The `config.yaml` walker: reads every known setting from both admin forms, applies
//! precedence, and collects one warning per unknown or unsupported key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::{Map, Value};

use super::value::{allow_list, as_bool, as_list, as_map, as_port, as_str, as_u64, get, section};
use super::{
    ConfigProvider, DeploymentRole, EtcdSettings, EtcdTls, GatewayConfig, DEFAULT_ADMIN_LISTEN,
    DEFAULT_PROMETHEUS_ADDR,
};
use crate::admin_auth::{validate_keys, AdminKey, Role};
use crate::error::{index, join};
use crate::ConfigError;

const TOP_KNOWN: &[&str] = &[
    "apisix",
    "deployment",
    "admin",
    "plugin_attr",
    "nginx_config",
];
const TOP_UNSUPPORTED: &[&str] = &[
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
const ETCD_KNOWN: &[&str] = &["host", "prefix", "timeout", "user", "password", "tls"];
const ETCD_TLS_KNOWN: &[&str] = &["verify", "ca_file", "cert", "key", "sni"];
const ETCD_UNSUPPORTED: &[&str] = &[
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
pub(super) struct Parser {
    warnings: Vec<String>,
}

impl Parser {
    pub(super) fn run(mut self, root: &Map<String, Value>) -> Result<GatewayConfig, ConfigError> {
        self.check_keys(root, "", TOP_KNOWN, TOP_UNSUPPORTED);
        let mut cfg = GatewayConfig::default();
        let mut guide = AdminForm::default();
        let mut deploy = AdminForm::default();

        if let Some(nginx) = section(root, "nginx_config", "nginx_config")? {
            let nginx = super::nginx::nginx_config(nginx, &mut self.warnings)?;
            cfg.error_log_level = nginx.error_log_level;
            cfg.cpu_affinity = nginx.enable_cpu_affinity;
            cfg.worker_processes = nginx.worker_processes;
        }
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
        if let Some(tls) = section(m, "tls", "deployment.etcd.tls")? {
            s.tls = Some(self.etcd_tls(tls)?);
        }
        if s.user.is_some() != s.password.is_some() {
            let missing = if s.user.is_some() { "password" } else { "user" };
            return Err(ConfigError::new(
                format!("deployment.etcd.{missing}"),
                "is required when the other of user/password is set",
            ));
        }
        Ok(s)
    }

    fn etcd_tls(&mut self, m: &Map<String, Value>) -> Result<EtcdTls, ConfigError> {
        let path = "deployment.etcd.tls";
        self.check_keys(m, path, ETCD_TLS_KNOWN, &[]);
        if let Some(v) = get(m, "verify") {
            let p = join(path, "verify");
            if !as_bool(v, &p)? {
                return Err(ConfigError::new(
                    p,
                    "false is not supported: split always checks the etcd certificate; \
                     set deployment.etcd.tls.ca_file to trust your etcd CA",
                ));
            }
        }
        let file = |key: &str| -> Result<Option<String>, ConfigError> {
            match get(m, key) {
                None => Ok(None),
                Some(v) => {
                    let p = join(path, key);
                    let s = as_str(v, &p)?;
                    if s.is_empty() {
                        return Err(ConfigError::new(p, "must be a file path"));
                    }
                    Ok(Some(s.to_owned()))
                }
            }
        };
        let tls = EtcdTls {
            ca_file: file("ca_file")?,
            cert: file("cert")?,
            key: file("key")?,
            sni: file("sni")?,
        };
        if tls.cert.is_some() != tls.key.is_some() {
            let missing = if tls.cert.is_some() { "key" } else { "cert" };
            return Err(ConfigError::new(
                join(path, missing),
                "is required when the other of cert/key is set",
            ));
        }
        Ok(tls)
    }

    fn plugin_attr(
        &mut self,
        attr: &Map<String, Value>,
        cfg: &mut GatewayConfig,
    ) -> Result<(), ConfigError> {
        for key in attr.keys() {
            if key != "prometheus" && key != "opentelemetry" {
                self.warnings.push(format!(
                    "plugin_attr.{key} is not supported by split, ignored"
                ));
            }
        }
        if let Some(otel) = get(attr, "opentelemetry") {
            let settings = crate::config::plugins::OtelSettings::from_json(otel)
                .map_err(|e| e.within("plugin_attr.opentelemetry"))?;
            cfg.opentelemetry = Some(settings);
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
