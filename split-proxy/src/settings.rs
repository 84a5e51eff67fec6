//! Effective settings of `serve`: command line flags over config.yaml over defaults,
//! resolved and validated before any port is bound (a failure is exit 64 with a one-line
//! reason naming the file).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use split_core::admin_auth::{AdminAuth, AdminKey, Role};
use split_core::config::gateway::{
    ConfigProvider, DeploymentRole, ErrorLogLevel, EtcdSettings, GatewayConfig,
};

use crate::cli::{Global, ServeArgs};

/// Default proxy listener.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9080);
/// Default Admin API listener.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9180);
/// Default metrics listener.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9091);

/// A configuration problem: `split-proxy: <path>: <reason>`, exit 64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    /// The file (or flag) at fault.
    pub path: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl Fatal {
    /// A problem with `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Fatal {
        Fatal {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Where routes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The embedded store in the data dir, written through the Admin API.
    Embedded,
    /// A declarative file; the Admin API is read-only.
    Standalone(PathBuf),
    /// etcd in APISIX's key layout, shared by many gateways (`--features etcd`).
    Etcd(EtcdSettings),
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config.yaml used, if any.
    pub config_path: Option<PathBuf>,
    /// Data dir.
    pub data_dir: PathBuf,
    /// Route source.
    pub source: Source,
    /// `deployment.role`: a data plane has no Admin API, a control plane no proxy port.
    pub role: DeploymentRole,
    /// Proxy listeners (empty for a control plane).
    pub listen: Vec<SocketAddr>,
    /// Admin listener; `None` when `enable_admin: false`.
    pub admin_listen: Option<SocketAddr>,
    /// Metrics listener.
    pub metrics_listen: SocketAddr,
    /// Admin auth policy.
    pub auth: AdminAuth,
    /// A key generated on this start (printed once).
    pub generated_key: Option<String>,
    /// Warnings to print at startup.
    pub warnings: Vec<String>,
    /// `plugin_attr.opentelemetry` (defaults when absent).
    pub opentelemetry: split_core::config::plugins::OtelSettings,
    /// config.yaml's `nginx_config.error_log_level`.
    pub error_log_level: Option<ErrorLogLevel>,
    /// Pin each worker to its own CPU: `--cpu-affinity` or config.yaml's
    /// `nginx_config.enable_cpu_affinity`.
    pub cpu_affinity: bool,
    /// Workers: `--workers`, else config.yaml's `nginx_config.worker_processes` when a
    /// number, else one per core.
    pub workers: usize,
}

/// Reads and validates config.yaml at `path`.
pub fn read_gateway_config(path: &Path) -> Result<GatewayConfig, Fatal> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Fatal::new(&shown, e.to_string()))?;
    GatewayConfig::from_yaml(&text, &|name| std::env::var(name).ok())
        .map_err(|e| Fatal::new(&shown, e.to_string()))
}

/// Resolves the settings of `serve`.
pub fn resolve(global: &Global, serve: &ServeArgs) -> Result<Settings, Fatal> {
    let gateway = match &global.config {
        Some(path) => Some(read_gateway_config(path)?),
        None => None,
    };
    let mut warnings: Vec<String> = gateway.iter().flat_map(|g| g.warnings.clone()).collect();
    let source = source(global, gateway.as_ref())?;

    let role = gateway
        .as_ref()
        .map_or(DeploymentRole::Traditional, |g| g.role);
    let listen = match (serve.listen, &gateway) {
        (Some(addr), _) => vec![addr],
        (None, Some(g)) if !g.node_listen.is_empty() => g.node_listen.clone(),
        _ => vec![DEFAULT_LISTEN],
    };
    let (listen, enable_admin) = crate::roles::apply(
        role,
        listen,
        gateway.as_ref().is_none_or(|g| g.enable_admin),
        serve,
        &mut warnings,
    );
    let admin_listen = enable_admin.then(|| {
        serve
            .admin_listen
            .or(gateway.as_ref().and_then(|g| g.admin_listen))
            .unwrap_or(DEFAULT_ADMIN_LISTEN)
    });
    let metrics_listen = serve
        .metrics_listen
        .or(gateway.as_ref().and_then(|g| g.prometheus_addr))
        .unwrap_or(DEFAULT_METRICS_LISTEN);

    let (auth, generated_key) = auth_from(gateway.as_ref(), &global.data_dir, enable_admin)?;
    if enable_admin {
        warnings.extend(auth_warnings(&auth, admin_listen));
    }
    Ok(Settings {
        config_path: global.config.clone(),
        data_dir: global.data_dir.clone(),
        source,
        role,
        listen,
        admin_listen,
        metrics_listen,
        auth,
        generated_key,
        warnings,
        opentelemetry: gateway
            .as_ref()
            .and_then(|g| g.opentelemetry.clone())
            .unwrap_or_default(),
        error_log_level: gateway.as_ref().and_then(|g| g.error_log_level),
        cpu_affinity: serve.cpu_affinity || gateway.as_ref().is_some_and(|g| g.cpu_affinity),
        workers: serve
            .workers
            .or(gateway.as_ref().and_then(|g| g.worker_processes))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
    })
}

fn source(global: &Global, gateway: Option<&GatewayConfig>) -> Result<Source, Fatal> {
    if let Some(file) = &global.standalone {
        return Ok(Source::Standalone(file.clone()));
    }
    let (Some(g), Some(config_path)) = (gateway, &global.config) else {
        return Ok(Source::Embedded);
    };
    let dir = config_path.parent().unwrap_or(Path::new("."));
    match g.provider {
        ConfigProvider::Embedded => Ok(Source::Embedded),
        ConfigProvider::Yaml => Ok(Source::Standalone(dir.join("apisix.yaml"))),
        ConfigProvider::Json => Ok(Source::Standalone(dir.join("apisix.json"))),
        // The parser always fills `etcd` for the etcd provider.
        ConfigProvider::Etcd => Ok(Source::Etcd(g.etcd.clone().unwrap_or_default())),
    }
}

/// The auth policy: configured keys, or a generated key when none is configured and
/// keys are required.
pub fn auth_from(
    gateway: Option<&GatewayConfig>,
    data_dir: &Path,
    enable_admin: bool,
) -> Result<(AdminAuth, Option<String>), Fatal> {
    let required = gateway.is_none_or(|g| g.admin_key_required);
    let mut keys: Vec<AdminKey> = gateway.map(|g| g.admin_keys.clone()).unwrap_or_default();
    let allow = gateway
        .and_then(|g| g.allow_admin.clone())
        .unwrap_or_else(default_allow);
    let mut generated = None;
    if enable_admin && required && keys.is_empty() {
        let (key, fresh) = crate::admin_key::load_or_generate(data_dir)
            .map_err(|reason| Fatal::new(data_dir.display().to_string(), reason))?;
        if fresh {
            generated = Some(key.clone());
        }
        keys.push(AdminKey {
            name: "admin".into(),
            key,
            role: Role::Admin,
        });
    }
    Ok((
        AdminAuth {
            keys,
            required,
            allow,
        },
        generated,
    ))
}

/// `allow_admin` default: `[127.0.0.0/24]`.
pub fn default_allow() -> Vec<ipnet::IpNet> {
    vec![ipnet::IpNet::V4(
        // A constant, valid prefix length.
        ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 24).unwrap_or_default(),
    )]
}

/// Loud warnings about an exposed Admin API.
pub fn auth_warnings(auth: &AdminAuth, admin_listen: Option<SocketAddr>) -> Vec<String> {
    let mut out = Vec::new();
    if !auth.required {
        out.push(
            "WARNING: admin_key_required is false: the Admin API accepts requests WITHOUT a key!"
                .to_owned(),
        );
    }
    for net in &auth.allow {
        if net.prefix_len() == 0 {
            out.push(format!(
                "WARNING: allow_admin contains {net}: the Admin API is open to every address!"
            ));
        }
    }
    if let Some(addr) = admin_listen {
        if !addr.ip().is_loopback() {
            out.push(format!(
                "WARNING: the Admin API listens on non-loopback address {addr}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(dir: &Path) -> Global {
        Global {
            config: None,
            data_dir: dir.join("data"),
            standalone: None,
            log_level: None,
        }
    }

    fn serve() -> ServeArgs {
        ServeArgs {
            listen: None,
            admin_listen: None,
            metrics_listen: None,
            connect_to: Vec::new(),
            ca_file: None,
            access_log: None,
            workers: None,
            cpu_affinity: false,
            grace: std::time::Duration::from_secs(30),
            max_body_size: 1024 * 1024,
        }
    }

    #[test]
    fn defaults_without_config_generate_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = resolve(&global(dir.path()), &serve()).unwrap();
        assert_eq!(s.listen, [DEFAULT_LISTEN]);
        assert_eq!(s.admin_listen, Some(DEFAULT_ADMIN_LISTEN));
        assert_eq!(s.metrics_listen, DEFAULT_METRICS_LISTEN);
        assert_eq!(s.source, Source::Embedded);
        assert!(s.auth.required);
        assert_eq!(s.auth.keys.len(), 1);
        assert_eq!(
            s.generated_key.as_deref(),
            Some(s.auth.keys[0].key.as_str())
        );
        assert_eq!(s.auth.allow, default_allow());
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        // Second start reuses the key and prints nothing.
        let again = resolve(&global(dir.path()), &serve()).unwrap();
        assert_eq!(again.generated_key, None);
        assert_eq!(again.auth.keys[0].key, s.auth.keys[0].key);
    }

    #[test]
    fn flags_win_and_standalone_flag_selects_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = global(dir.path());
        g.standalone = Some(dir.path().join("apisix.yaml"));
        let mut a = serve();
        a.listen = Some("127.0.0.1:1".parse().unwrap());
        a.admin_listen = Some("0.0.0.0:2".parse().unwrap());
        let s = resolve(&g, &a).unwrap();
        assert_eq!(s.listen, ["127.0.0.1:1".parse().unwrap()]);
        assert_eq!(s.source, Source::Standalone(dir.path().join("apisix.yaml")));
        assert!(
            s.warnings.iter().any(|w| w.contains("non-loopback")),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn allow_all_and_no_key_required_warn() {
        let auth = AdminAuth {
            keys: Vec::new(),
            required: false,
            allow: vec![
                "0.0.0.0/0".parse().unwrap(),
                "127.0.0.0/24".parse().unwrap(),
            ],
        };
        let w = auth_warnings(&auth, Some(DEFAULT_ADMIN_LISTEN));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("WITHOUT a key"));
        assert!(w[1].contains("0.0.0.0/0"));
    }

    #[test]
    fn unreadable_config_is_fatal_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = global(dir.path());
        g.config = Some(dir.path().join("missing.yaml"));
        let err = resolve(&g, &serve()).unwrap_err();
        assert!(err.path.ends_with("missing.yaml"), "{err}");
    }
}
