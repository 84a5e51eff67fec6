//! Redis-backed settings: limit-count `policy: redis` and traffic-split `ticket: redis`.

use std::time::Duration;

use serde_json::json;
use split_core::config::plugins::{LimitPolicy, Plugins};
use split_core::config::traffic_split::{TicketSource, TrafficSplit, DEFAULT_TICKET_BATCH};

fn err(v: serde_json::Value) -> String {
    Plugins::from_json(&v).expect_err("invalid").to_string()
}

#[test]
fn limit_count_policy_redis_with_apisix_defaults() {
    let p = Plugins::from_json(&json!({"limit-count": {
        "count": 2, "time_window": 10, "policy": "redis", "redis_host": "10.0.0.5",
        "redis_password": "pw", "redis_ssl_verify": false
    }}))
    .expect("valid");
    let l = p.limit_count.expect("parsed");
    let LimitPolicy::Redis(t) = &l.policy else {
        panic!("expected redis, got {:?}", l.policy);
    };
    assert_eq!(t.host, "10.0.0.5");
    assert_eq!(t.port, 6379);
    assert_eq!(t.database, 0);
    assert_eq!(t.timeout, Duration::from_millis(1000));
    assert_eq!(t.password.as_deref(), Some("pw"));
    assert_eq!(t.to_string(), "redis://10.0.0.5:6379/0");
    assert!(!format!("{l:?}").contains("\"pw\""), "{l:?}");

    let full = Plugins::from_json(&json!({"limit-count": {
        "count": 2, "time_window": 10, "policy": "redis", "redis_host": "r.local",
        "redis_port": 6380, "redis_username": "u", "redis_database": 3, "redis_timeout": 50
    }}))
    .expect("valid")
    .limit_count
    .expect("parsed");
    let LimitPolicy::Redis(t) = &full.policy else {
        panic!("expected redis");
    };
    assert_eq!(
        (t.port, t.username.as_deref(), t.database, t.timeout),
        (6380, Some("u"), 3, Duration::from_millis(50))
    );
    let local = Plugins::from_json(&json!({"limit-count": {"count": 1, "time_window": 1}}))
        .expect("valid")
        .limit_count
        .expect("parsed");
    assert_eq!(local.policy, LimitPolicy::Local);
}

#[test]
fn limit_count_redis_errors_name_the_field() {
    let base = |extra: serde_json::Value| {
        let mut conf = json!({"count": 1, "time_window": 1, "policy": "redis", "redis_host": "r"});
        if let (Some(c), serde_json::Value::Object(extra)) = (conf.as_object_mut(), extra) {
            c.extend(extra);
        }
        json!({ "limit-count": conf })
    };
    let cases = [
        (
            json!({"limit-count": {"count": 1, "time_window": 1, "policy": "redis"}}),
            "limit-count.redis_host: is required",
        ),
        (
            base(json!({"redis_port": 70000})),
            "limit-count.redis_port: must be 1 to 65535",
        ),
        (
            base(json!({"redis_timeout": 0})),
            "limit-count.redis_timeout: must be 1 to 3600000 (milliseconds)",
        ),
        (
            base(json!({"redis_database": -1})),
            "limit-count.redis_database: must be >= 0",
        ),
        (
            base(json!({"redis_ssl": true})),
            "limit-count.redis_ssl: TLS to redis is not supported yet; use a loopback or private redis",
        ),
        (
            base(json!({"keepalive_timeout": 1000})),
            "limit-count.keepalive_timeout: is not supported: split keeps one multiplexed connection per redis target",
        ),
        (
            base(json!({"redis_cluster_nodes": ["a:1"]})),
            "limit-count.redis_cluster_nodes: only used by policy redis-cluster, which is not supported yet",
        ),
        (
            json!({"limit-count": {"count": 1, "time_window": 1, "redis_ssl_verify": true}}),
            "limit-count.redis_ssl_verify: is only used by policy redis",
        ),
    ];
    for (conf, want) in cases {
        assert_eq!(err(conf), want);
    }
    let e = Plugins::from_json(&base(json!({"redis_port": "6379"}))).expect_err("string port");
    assert_eq!(e.path, "limit-count.redis_port");
}

#[test]
fn redis_key_is_stable_and_follows_the_plugin() {
    let conf = |count: u64| {
        Plugins::from_json(&json!({"limit-count": {
            "count": count, "time_window": 10, "policy": "redis", "redis_host": "r"
        }}))
        .expect("valid")
        .limit_count
        .expect("parsed")
    };
    let a = conf(2).redis_key("route-1", "1.2.3.4");
    assert!(a.starts_with("plugin-limit-count:"), "{a}");
    assert!(a.ends_with(":1.2.3.4"), "{a}");
    assert_eq!(
        a,
        conf(2).redis_key("route-1", "1.2.3.4"),
        "same config, same key"
    );
    assert_ne!(a, conf(3).redis_key("route-1", "1.2.3.4"), "plugin edit");
    assert_ne!(a, conf(2).redis_key("route-2", "1.2.3.4"), "other route");
}

#[test]
fn ticket_defaults_to_local_and_parses_redis() {
    let rules = json!([{"weighted_upstreams": [{"weight": 1}]}]);
    let local = TrafficSplit::from_json(&json!({ "rules": rules })).expect("valid");
    assert_eq!(local.ticket, TicketSource::Local);
    assert!(local.fleet_tickets().is_none());

    let redis = TrafficSplit::from_json(&json!({
        "rules": rules, "ticket": "redis", "redis": {"host": "127.0.0.1"}
    }))
    .expect("valid");
    let fleet = redis.fleet_tickets().expect("redis tickets");
    assert_eq!(fleet.batch, DEFAULT_TICKET_BATCH);
    assert_eq!(fleet.target.port, 6379);
    let one = TrafficSplit::from_json(&json!({
        "rules": rules, "ticket": "redis",
        "redis": {"host": "h", "port": 7000, "password": "p", "database": 2, "timeout": 20, "batch": 1}
    }))
    .expect("valid");
    let fleet = one.fleet_tickets().expect("redis tickets");
    assert_eq!(
        (fleet.batch, fleet.target.port, fleet.target.database),
        (1, 7000, 2)
    );
    // The rule's state key ignores the ticket source: switching keeps the local sequence.
    assert_eq!(local.rules[0].fingerprint, one.rules[0].fingerprint);
}

#[test]
fn ticket_errors_name_the_field() {
    let rules = json!([{"weighted_upstreams": [{"weight": 1}]}]);
    let cases = [
        (
            json!({"rules": rules, "ticket": "redis"}),
            "traffic-split.redis: is required with `ticket: \"redis\"` (at least `{\"host\": ...}`)",
        ),
        (
            json!({"rules": rules, "redis": {"host": "h"}}),
            "traffic-split.redis: is only used with `ticket: \"redis\"`",
        ),
        (
            json!({"rules": rules, "ticket": "etcd"}),
            "traffic-split.ticket: must be `local` or `redis`",
        ),
        (
            json!({"rules": rules, "ticket": "redis", "redis": {"host": "h", "batch": 0}}),
            "traffic-split.redis.batch: must be 1 to 10000",
        ),
        (
            json!({"rules": rules, "ticket": "redis", "redis": {"port": 1}}),
            "traffic-split.redis.host: is required",
        ),
        (
            json!({"rules": rules, "ticket": "redis", "redis": {"host": "h", "ssl": true}}),
            "traffic-split.redis.ssl: unknown field `ssl`, expected one of `host`, `port`, `username`, `password`, `database`, `timeout`, `batch`",
        ),
    ];
    for (conf, want) in cases {
        assert_eq!(err(json!({ "traffic-split": conf })), want);
    }
}
