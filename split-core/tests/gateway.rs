//! `config.yaml` parsing: the guide's form, APISIX 3.x's form, precedence, env
//! substitution, provider selection, warnings and errors.

use std::net::SocketAddr;

use split_core::admin_auth::{Role, PLACEHOLDER_KEY};
use split_core::config::gateway::{
    ConfigProvider, DeploymentRole, GatewayConfig, DEFAULT_ADMIN_LISTEN,
    DEFAULT_MAX_BODY_FOR_MATCH, DEFAULT_NODE_LISTEN, DEFAULT_PROMETHEUS_ADDR,
};
use split_core::ConfigError;

/// The guide's "Set an Admin Key" snippet, byte for byte.
const GUIDE_KEY_SNIPPET: &str = r#"apisix:
  enable_admin: true            # Enable Admin API
  admin_key_required: true      # Reject unauthenticated Admin requests
  admin_key:
    - name: admin
      key: YOUR_ADMIN_KEY_HERE  # Generated admin key - you can replace this with a secure key as you wish
      role: admin
"#;

/// The guide's "Whitelist Management IPs" snippet, byte for byte.
const GUIDE_ALLOW_SNIPPET: &str = r#"admin:
  allow_admin:
    - 127.0.0.0/24   # Localhost & host network
    - 0.0.0.0/0      # Allow all (temporary/testing only)
"#;

const REAL_KEY: &str = "edd1c9f034335f136f87ad84b625c8f1edd1c9f0";

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
    GatewayConfig::from_yaml(text, &no_env)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("test CIDR")
}

#[test]
fn guide_snippets_with_a_real_key_parse() {
    assert_eq!(REAL_KEY.len(), 40);
    let text =
        format!("{GUIDE_KEY_SNIPPET}\n{GUIDE_ALLOW_SNIPPET}").replace(PLACEHOLDER_KEY, REAL_KEY);
    let cfg = parse(&text).expect("guide config with a real key");
    assert!(cfg.enable_admin);
    assert!(cfg.admin_key_required);
    assert_eq!(cfg.admin_keys.len(), 1);
    assert_eq!(cfg.admin_keys[0].name, "admin");
    assert_eq!(cfg.admin_keys[0].key, REAL_KEY);
    assert_eq!(cfg.admin_keys[0].role, Role::Admin);
    assert_eq!(
        cfg.allow_admin,
        Some(vec![net("127.0.0.0/24"), net("0.0.0.0/0")])
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(cfg.provider, ConfigProvider::Embedded);
    let auth = cfg.admin_auth();
    assert_eq!(auth.allow_all_entries(), vec![net("0.0.0.0/0")]);
    assert!(auth.required);
}

#[test]
fn guide_placeholder_is_refused_with_a_clear_message() {
    let e = parse(GUIDE_KEY_SNIPPET).unwrap_err();
    assert_eq!(e.path, "apisix.admin_key[0].key");
    assert!(e.message.contains(PLACEHOLDER_KEY), "{e}");
    assert!(e.message.contains("at least 32 characters"), "{e}");
}

#[test]
fn short_admin_key_is_refused() {
    let text = GUIDE_KEY_SNIPPET.replace(PLACEHOLDER_KEY, "tooshort123");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.path, "apisix.admin_key[0].key");
    assert!(e.message.contains("\"admin\""), "{e}");
    assert!(!e.to_string().contains("tooshort123"), "key leaked: {e}");
}

#[test]
fn apisix_3x_form() {
    let text = format!(
        r#"
deployment:
  role: traditional
  role_traditional:
    config_provider: etcd
  admin:
    admin_key_required: true
    admin_key:
      - name: admin
        key: {REAL_KEY}
        role: admin
      - name: viewer
        key: viewer-key
        role: viewer
    allow_admin:
      - 10.0.0.0/8
      - 192.168.1.7
    admin_listen:
      ip: 0.0.0.0
      port: 9280
    admin_api_version: v3
  etcd:
    host:
      - "http://etcd-1:2379"
      - "https://etcd-2:2379"
    prefix: /split
    timeout: 5
    user: root
    password: hunter2
apisix:
  node_listen: 9081
plugin_attr:
  prometheus:
    export_addr:
      ip: 0.0.0.0
      port: 9092
"#
    );
    let cfg = parse(&text).expect("3.x config");
    assert_eq!(cfg.admin_keys.len(), 2);
    assert_eq!(cfg.admin_keys[1].role, Role::Viewer);
    assert_eq!(
        cfg.allow_admin,
        Some(vec![net("10.0.0.0/8"), net("192.168.1.7/32")])
    );
    assert_eq!(cfg.admin_listen, Some(addr("0.0.0.0:9280")));
    assert_eq!(cfg.node_listen, vec![addr("0.0.0.0:9081")]);
    assert_eq!(cfg.prometheus_addr, Some(addr("0.0.0.0:9092")));
    assert_eq!(cfg.role, DeploymentRole::Traditional);
    assert_eq!(cfg.provider, ConfigProvider::Etcd);
    let etcd = cfg.etcd.clone().expect("etcd settings");
    assert_eq!(
        etcd.hosts,
        vec!["http://etcd-1:2379", "https://etcd-2:2379"]
    );
    assert_eq!(etcd.prefix, "/split");
    assert_eq!(etcd.timeout_secs, 5);
    assert_eq!(etcd.user.as_deref(), Some("root"));
    assert_eq!(etcd.password.as_deref(), Some("hunter2"));
    assert!(!format!("{etcd:?}").contains("hunter2"));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn deployment_form_wins_and_differences_warn() {
    let other = "0123456789abcdef0123456789abcdef-other";
    let text = format!(
        "apisix:\n  admin_key_required: false\n  admin_key:\n    - {{name: old, key: {other}, role: admin}}\n\
         admin:\n  allow_admin: [127.0.0.0/24]\n\
         deployment:\n  admin:\n    admin_key_required: true\n    admin_key:\n      - {{name: new, key: {REAL_KEY}, role: admin}}\n    allow_admin: [127.0.0.0/24]\n"
    );
    let cfg = parse(&text).expect("both forms");
    assert!(cfg.admin_key_required);
    assert_eq!(cfg.admin_keys[0].name, "new");
    assert_eq!(cfg.allow_admin, Some(vec![net("127.0.0.0/24")]));
    assert_eq!(
        cfg.warnings,
        vec![
            "apisix.admin_key_required is ignored: deployment.admin.admin_key_required is also set and takes precedence",
            "apisix.admin_key is ignored: deployment.admin.admin_key is also set and takes precedence",
        ]
    );
}

#[test]
fn identical_values_in_both_forms_are_silent() {
    let text = format!(
        "apisix:\n  admin_key:\n    - {{name: a, key: {REAL_KEY}, role: admin}}\n\
         deployment:\n  admin:\n    admin_key:\n      - {{name: a, key: {REAL_KEY}, role: admin}}\n"
    );
    let cfg = parse(&text).expect("identical forms");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(cfg.admin_keys.len(), 1);
}

#[test]
fn ignored_placeholder_in_the_losing_form_is_not_an_error() {
    // Only the effective key list is validated; the ignored one gets a warning.
    let text = format!(
        "{GUIDE_KEY_SNIPPET}deployment:\n  admin:\n    admin_key:\n      - {{name: a, key: {REAL_KEY}, role: admin}}\n"
    );
    let cfg = parse(&text).expect("deployment keys win");
    assert_eq!(cfg.admin_keys[0].key, REAL_KEY);
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    // But a placeholder in the winning form is refused with its path.
    let text = format!(
        "deployment:\n  admin:\n    admin_key:\n      - {{name: a, key: {PLACEHOLDER_KEY}}}\n"
    );
    assert_eq!(
        parse(&text).unwrap_err().path,
        "deployment.admin.admin_key[0].key"
    );
}

#[test]
fn env_substitution() {
    let env = |name: &str| match name {
        "ADMIN_KEY" => Some(REAL_KEY.to_owned()),
        "PORT" => Some("9082".to_owned()),
        _ => None,
    };
    let text = "apisix:\n  node_listen: ${{PORT}}\n  enable_admin: ${{ENABLE:=false}}\n  admin_key:\n    - name: admin\n      key: ${{ADMIN_KEY}}\n      role: admin\n";
    let cfg = GatewayConfig::from_yaml(text, &env).expect("substituted");
    assert_eq!(cfg.node_listen, vec![addr("0.0.0.0:9082")]);
    assert!(!cfg.enable_admin);
    assert_eq!(cfg.admin_keys[0].key, REAL_KEY);

    let e = GatewayConfig::from_yaml("apisix:\n  admin_key:\n    - key: ${{NOPE}}\n", &env)
        .unwrap_err();
    assert_eq!(e.path, "apisix.admin_key[0].key");
    assert!(e.message.contains("NOPE"), "{e}");
    // Comments are not substituted.
    GatewayConfig::from_yaml("# ${{NOPE}}\napisix:\n  enable_admin: true\n", &env)
        .expect("comment");
}

#[test]
fn bad_yaml_reports_the_line() {
    let e = parse("apisix:\n  enable_admin: true\n  admin_key: [\n").unwrap_err();
    assert!(e.message.contains("line"), "{e}");
    let e = parse("apisix:\n  a: 1\n   b: 2\n").unwrap_err();
    assert!(e.message.contains("line 3"), "{e}");
    let e = parse("- just\n- a list\n").unwrap_err();
    assert!(e.message.contains("mapping"), "{e}");
}

#[test]
fn empty_file_is_all_defaults() {
    for text in ["", "   \n\t\n", "# nothing here\n", "apisix:\n"] {
        let cfg = parse(text).expect("empty is valid");
        assert_eq!(cfg, GatewayConfig::default(), "{text:?}");
    }
    let cfg = GatewayConfig::default();
    assert!(cfg.enable_admin && cfg.admin_key_required);
    assert_eq!(cfg.node_listen_or_default(), vec![DEFAULT_NODE_LISTEN]);
    assert_eq!(cfg.admin_listen_or_default(), DEFAULT_ADMIN_LISTEN);
    assert_eq!(cfg.prometheus_addr_or_default(), DEFAULT_PROMETHEUS_ADDR);
    assert_eq!(cfg.max_body_for_match, DEFAULT_MAX_BODY_FOR_MATCH);
    assert_eq!(cfg.admin_auth().allow, vec![net("127.0.0.0/24")]);
}

#[test]
fn node_listen_forms() {
    let cfg = parse("apisix:\n  node_listen: [9080, 9081]\n").expect("list of ports");
    assert_eq!(
        cfg.node_listen,
        vec![addr("0.0.0.0:9080"), addr("0.0.0.0:9081")]
    );
    let cfg = parse("apisix:\n  node_listen:\n    - {ip: 127.0.0.1, port: 9080}\n    - port: 9443\n      enable_http2: true\n    - {ip: '::1', port: 9080}\n")
        .expect("list of ip/port");
    assert_eq!(
        cfg.node_listen,
        vec![
            addr("127.0.0.1:9080"),
            addr("0.0.0.0:9443"),
            addr("[::1]:9080")
        ]
    );
    assert_eq!(
        cfg.warnings,
        vec!["apisix.node_listen[1].enable_http2 is not supported by split, ignored"]
    );
    let e = parse("apisix:\n  node_listen: [9080, 9080]\n").unwrap_err();
    assert_eq!(e.path, "apisix.node_listen[1]");
    let e = parse("apisix:\n  node_listen: 70000\n").unwrap_err();
    assert_eq!(e.path, "apisix.node_listen");
    let e = parse("apisix:\n  node_listen: [{ip: nope, port: 1}]\n").unwrap_err();
    assert_eq!(e.path, "apisix.node_listen[0].ip");
    let e = parse("apisix:\n  node_listen: [{ip: 127.0.0.1}]\n").unwrap_err();
    assert_eq!(e.path, "apisix.node_listen[0].port");
}

#[test]
fn provider_selection() {
    let p = |t: &str| parse(t).map(|c| (c.role, c.provider, c.etcd.is_some(), c.warnings));
    assert_eq!(
        p("deployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: yaml\n")
            .unwrap(),
        (
            DeploymentRole::DataPlane,
            ConfigProvider::Yaml,
            false,
            vec![]
        )
    );
    assert_eq!(
        p("deployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: json\n")
            .unwrap(),
        (
            DeploymentRole::DataPlane,
            ConfigProvider::Json,
            false,
            vec![]
        )
    );
    // A data plane defaults to etcd, as in APISIX.
    assert_eq!(
        p("deployment:\n  role: data_plane\n").unwrap(),
        (
            DeploymentRole::DataPlane,
            ConfigProvider::Etcd,
            true,
            vec![]
        )
    );
    // etcd present → etcd; absent → embedded.
    assert_eq!(
        p("deployment:\n  etcd:\n    host: [\"http://127.0.0.1:2379\"]\n")
            .unwrap()
            .1,
        ConfigProvider::Etcd
    );
    assert_eq!(
        p("deployment:\n  role: traditional\n").unwrap().1,
        ConfigProvider::Embedded
    );
    // The explicit shorthand wins; an unused etcd block is reported.
    assert_eq!(
        p("deployment:\n  config_provider: embedded\n  etcd:\n    host: [\"http://x:2379\"]\n")
            .unwrap(),
        (
            DeploymentRole::Traditional,
            ConfigProvider::Embedded,
            false,
            vec!["deployment.etcd is not used with config provider embedded, ignored".to_owned()]
        )
    );
    // Conflicting explicit settings are an error.
    let e = p("deployment:\n  role: data_plane\n  config_provider: json\n  role_data_plane:\n    config_provider: yaml\n")
        .unwrap_err();
    assert_eq!(e.path, "deployment.config_provider");
    // A block for another role is ignored with a warning.
    let (_, provider, _, warnings) =
        p("deployment:\n  role: traditional\n  role_data_plane:\n    config_provider: yaml\n")
            .unwrap();
    assert_eq!(provider, ConfigProvider::Embedded);
    assert_eq!(
        warnings,
        vec!["deployment.role_data_plane is ignored: deployment.role is traditional"]
    );
    let e = p("deployment:\n  role: edge\n").unwrap_err();
    assert_eq!(e.path, "deployment.role");
    let e = p("deployment:\n  role_traditional:\n    config_provider: redis\n").unwrap_err();
    assert_eq!(e.path, "deployment.role_traditional.config_provider");
}

#[test]
fn etcd_defaults_and_errors() {
    let cfg = parse("deployment:\n  config_provider: etcd\n").expect("etcd defaults");
    let etcd = cfg.etcd.expect("etcd");
    assert_eq!(etcd.hosts, vec!["http://127.0.0.1:2379"]);
    assert_eq!(etcd.prefix, "/apisix");
    assert_eq!(etcd.timeout_secs, 30);
    let e = parse("deployment:\n  etcd:\n    host: [\"127.0.0.1:2379\"]\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.host[0]");
    let e = parse("deployment:\n  etcd:\n    prefix: apisix\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.prefix");
    let e = parse("deployment:\n  etcd:\n    password: 123456\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.password");
    assert!(!e.to_string().contains("123456"), "password leaked: {e}");
}

#[test]
fn unknown_and_unsupported_keys_warn_once_each() {
    let cfg = parse(
        "apisix:\n  foo: 1\n  ssl:\n    enable: true\nnginx_config:\n  worker_rlimit_nofile: 20480\nbar: x\n\
         plugin_attr:\n  log-rotate: {interval: 3600}\n  prometheus:\n    export_uri: /m\n",
    )
    .expect("warnings only");
    assert_eq!(
        cfg.warnings,
        vec![
            "unknown key bar, ignored",
            "nginx_config.worker_rlimit_nofile is not supported by split, ignored",
            "unknown key apisix.foo, ignored",
            "apisix.ssl is not supported by split, ignored",
            "plugin_attr.log-rotate is not supported by split, ignored",
            "plugin_attr.prometheus.export_uri is not supported by split, ignored",
        ]
    );
}

#[test]
fn nginx_error_log_level_is_read_and_checked() {
    use split_core::config::gateway::ErrorLogLevel;
    let cfg = parse("nginx_config:\n  error_log_level: notice\n").expect("valid");
    assert_eq!(cfg.error_log_level, Some(ErrorLogLevel::Notice));
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(parse("apisix: {}\n").expect("valid").error_log_level, None);
    let e = parse("nginx_config:\n  error_log_level: loud\n").unwrap_err();
    assert_eq!(e.path, "nginx_config.error_log_level");
    assert!(e.to_string().contains("loud"), "{e}");
    let e = parse("nginx_config:\n  error_log_level: 3\n").unwrap_err();
    assert_eq!(e.path, "nginx_config.error_log_level");
}

#[test]
fn nginx_cpu_affinity_is_read_and_checked() {
    let cfg = parse("nginx_config:\n  enable_cpu_affinity: true\n  worker_rlimit_nofile: 20480\n")
        .expect("valid");
    assert!(cfg.cpu_affinity);
    assert_eq!(
        cfg.warnings,
        vec!["nginx_config.worker_rlimit_nofile is not supported by split, ignored"]
    );
    let off = parse("nginx_config:\n  enable_cpu_affinity: false\n").expect("valid");
    assert!(!off.cpu_affinity);
    assert!(off.warnings.is_empty(), "{:?}", off.warnings);
    // Off unless asked for, as in APISIX 3.x.
    assert!(!parse("nginx_config: {}\n").expect("valid").cpu_affinity);
    assert!(!parse("").expect("valid").cpu_affinity);
    let e = parse("nginx_config:\n  enable_cpu_affinity: sure\n").unwrap_err();
    assert_eq!(e.path, "nginx_config.enable_cpu_affinity");
}

#[test]
fn nginx_worker_processes_is_auto_or_a_number() {
    let workers = |yaml: &str| parse(yaml).map(|c| c.worker_processes);
    assert_eq!(
        workers("nginx_config:\n  worker_processes: 3\n"),
        Ok(Some(3))
    );
    assert_eq!(
        workers("nginx_config:\n  worker_processes: auto\n"),
        Ok(None)
    );
    assert_eq!(workers("nginx_config: {}\n"), Ok(None));
    assert_eq!(workers(""), Ok(None));
    assert_eq!(
        workers("nginx_config:\n  worker_processes: 1024\n"),
        Ok(Some(split_core::config::gateway::MAX_WORKERS))
    );
    assert_eq!(
        workers("nginx_config:\n  worker_processes: \"4\"\n"),
        Ok(Some(4))
    );
    for bad in ["0", "-2", "1025", "1.5", "many", "\"0\"", "[2]"] {
        let e = parse(&format!("nginx_config:\n  worker_processes: {bad}\n")).unwrap_err();
        assert_eq!(e.path, "nginx_config.worker_processes", "{bad}");
        assert!(e.to_string().contains("auto or a number"), "{bad}: {e}");
    }
    let quiet = parse("nginx_config:\n  worker_processes: 2\n").expect("valid");
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
}

#[test]
fn type_errors_name_the_field() {
    let cases = [
        (
            "apisix:\n  enable_admin: yes please\n",
            "apisix.enable_admin",
        ),
        ("apisix: [1]\n", "apisix"),
        ("apisix:\n  admin_key: {name: a}\n", "apisix.admin_key"),
        (
            "apisix:\n  admin_key:\n    - name: a\n",
            "apisix.admin_key[0].key",
        ),
        (
            "apisix:\n  admin_key:\n    - key: 1234567890123456789012345678901234567890\n",
            "apisix.admin_key[0].key",
        ),
        (
            &format!("apisix:\n  admin_key:\n    - {{key: {REAL_KEY}, role: root}}\n"),
            "apisix.admin_key[0].role",
        ),
        (
            "admin:\n  allow_admin: [127.0.0.0/33]\n",
            "admin.allow_admin[0]",
        ),
        (
            "deployment:\n  admin:\n    admin_listen: {port: http}\n",
            "deployment.admin.admin_listen.port",
        ),
        (
            "deployment:\n  admin:\n    admin_api_version: v2\n",
            "deployment.admin.admin_api_version",
        ),
        (
            "apisix:\n  max_post_args_readable_size: -1\n",
            "apisix.max_post_args_readable_size",
        ),
    ];
    for (text, path) in cases {
        let e = parse(text).unwrap_err();
        assert_eq!(e.path, path, "{text:?}: {e}");
    }
}

#[test]
fn small_settings() {
    let cfg = parse("apisix:\n  max_post_args_readable_size: 4096\n").expect("size");
    assert_eq!(cfg.max_body_for_match, 4096);
    let cfg = parse("deployment:\n  admin:\n    admin_listen: {port: 9999}\n").expect("listen");
    assert_eq!(cfg.admin_listen, Some(addr("127.0.0.1:9999")));
    let cfg = parse("plugin_attr:\n  prometheus:\n    export_addr: {port: 0}\n").expect("prom");
    assert_eq!(cfg.prometheus_addr, Some(addr("127.0.0.1:0")));
    let cfg = parse("admin:\n  allow_admin: []\n").expect("explicit empty");
    assert_eq!(cfg.allow_admin, Some(vec![]));
    // APISIX 2.x's apisix.allow_admin is read; admin.allow_admin wins over it.
    let cfg = parse("apisix:\n  allow_admin: [10.0.0.0/8]\n").expect("2.x");
    assert_eq!(cfg.allow_admin, Some(vec![net("10.0.0.0/8")]));
    let cfg =
        parse("apisix:\n  allow_admin: [10.0.0.0/8]\nadmin:\n  allow_admin: [127.0.0.0/24]\n")
            .expect("both");
    assert_eq!(cfg.allow_admin, Some(vec![net("127.0.0.0/24")]));
    assert_eq!(cfg.warnings.len(), 1);
}
