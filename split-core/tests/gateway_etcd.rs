//! `deployment.etcd` in config.yaml: TLS settings, credentials, and their field-path
//! errors.

use split_core::config::gateway::{ConfigProvider, EtcdTls, GatewayConfig};
use split_core::ConfigError;

fn parse(text: &str) -> Result<GatewayConfig, ConfigError> {
    GatewayConfig::from_yaml(text, &|_| None)
}

#[test]
fn tls_settings_are_read() {
    let cfg = parse(
        "deployment:\n  etcd:\n    host: [\"https://etcd:2379\"]\n    tls:\n      verify: true\n      ca_file: /etc/etcd/ca.pem\n      cert: /etc/etcd/client.pem\n      key: /etc/etcd/client-key.pem\n      sni: etcd.internal\n",
    )
    .expect("valid etcd tls");
    assert_eq!(cfg.provider, ConfigProvider::Etcd);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let etcd = cfg.etcd.expect("etcd");
    assert_eq!(
        etcd.tls,
        Some(EtcdTls {
            ca_file: Some("/etc/etcd/ca.pem".into()),
            cert: Some("/etc/etcd/client.pem".into()),
            key: Some("/etc/etcd/client-key.pem".into()),
            sni: Some("etcd.internal".into()),
        })
    );
}

#[test]
fn tls_errors_name_the_field() {
    let e = parse("deployment:\n  etcd:\n    tls:\n      verify: false\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.tls.verify");
    assert!(e.to_string().contains("ca_file"), "{e}");
    let e = parse("deployment:\n  etcd:\n    tls:\n      cert: /c.pem\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.tls.key");
    let e = parse("deployment:\n  etcd:\n    tls:\n      ca_file: 5\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.tls.ca_file");
    let e = parse("deployment:\n  etcd:\n    tls: yes\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.tls");
}

#[test]
fn unknown_tls_keys_warn_and_credentials_come_in_pairs() {
    let cfg = parse("deployment:\n  etcd:\n    tls:\n      foo: 1\n").expect("valid");
    assert_eq!(
        cfg.warnings,
        vec!["unknown key deployment.etcd.tls.foo, ignored".to_owned()]
    );
    let e = parse("deployment:\n  etcd:\n    user: root\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.password");
    let e = parse("deployment:\n  etcd:\n    password: \"x\"\n").unwrap_err();
    assert_eq!(e.path, "deployment.etcd.user");
}
