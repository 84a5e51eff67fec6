//! Plugin configuration: defaults, error paths and messages, snapshot integration of
//! key-auth, limit-count and api-breaker.

mod snapshot_support;

use serde_json::json;
use snapshot_support::{compile, compile_err, Req};
use split_core::config::plugins::{
    BreakerFallback, LimitKeyType, Plugins, WindowType, KNOWN_PLUGINS,
};
use split_core::config::ResourceKind;
use split_core::key_auth::{authenticate, AuthOutcome, AuthReject, KeySource};

fn err(plugins: serde_json::Value) -> String {
    Plugins::from_json(&plugins)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn priorities_follow_apisix() {
    let prio = |n: &str| KNOWN_PLUGINS.iter().find(|(p, _)| *p == n).map(|(_, p)| *p);
    assert_eq!(prio("key-auth"), Some(2500));
    assert_eq!(prio("api-breaker"), Some(1005));
    assert_eq!(prio("limit-count"), Some(1002));
    assert_eq!(prio("traffic-split"), Some(966));
}

#[test]
fn limit_count_defaults() {
    let p = Plugins::from_json(&json!({"limit-count": {"count": 2, "time_window": 60}}))
        .expect("valid");
    let l = p.limit_count.expect("parsed");
    assert_eq!(l.count, 2);
    assert_eq!(l.time_window.as_secs(), 60);
    assert_eq!(l.key, LimitKeyType::Var("remote_addr".into()));
    assert_eq!(l.rejected_code, 503);
    assert!(l.show_limit_quota_header);
    assert_eq!(l.window_type, WindowType::Fixed);
    assert_eq!(l.rejected_body(), None);
    let p = Plugins::from_json(&json!({"limit-count": {
        "count": 1, "time_window": 1, "key": "", "rejected_msg": "slow down",
        "rejected_code": 429, "window_type": "sliding"}}))
    .expect("valid");
    let l = p.limit_count.expect("parsed");
    assert_eq!(l.key, LimitKeyType::Var("remote_addr".into()));
    assert_eq!(
        l.rejected_body().as_deref(),
        Some(r#"{"error_msg":"slow down"}"#)
    );
    assert_eq!(l.window_type, WindowType::Sliding);
}

#[test]
fn limit_count_errors_name_the_field() {
    let cases = [
        (json!({"time_window": 1}), "limit-count.count: is required"),
        (json!({"count": 0, "time_window": 1}), "limit-count.count: must be >= 1"),
        (json!({"count": 1}), "limit-count.time_window: is required"),
        (json!({"count": 1, "time_window": 0}), "limit-count.time_window: must be >= 1"),
        (
            json!({"count": 1, "time_window": 1, "rejected_code": 600}),
            "limit-count.rejected_code: must be 200 to 599",
        ),
        (
            json!({"count": 1, "time_window": 1, "policy": "redis-cluster", "redis_host": "r"}),
            "limit-count.policy: `redis-cluster` is not supported yet; use `local` or `redis`",
        ),
        (
            json!({"count": 1, "time_window": 1, "redis_host": "r"}),
            "limit-count.redis_host: is only used by policy redis",
        ),
        (
            json!({"count": 1, "time_window": 1, "key_type": "nope"}),
            "limit-count.key_type: must be one of var, var_combination, constant",
        ),
        (
            json!({"count": 1, "time_window": 1, "key_type": "var_combination", "key": "x"}),
            "limit-count.key: must reference at least one variable, e.g. `$remote_addr $http_x_user`",
        ),
        (
            json!({"count": 1, "time_window": 1, "key": "post_arg.model"}),
            "limit-count.key: request body variables are not supported as a limit key",
        ),
        (
            json!({"count": 1, "time_window": 1, "window_type": "rolling"}),
            "limit-count.window_type: must be `fixed` or `sliding`",
        ),
        (
            json!({"count": 1, "time_window": 1, "rejected_msg": ""}),
            "limit-count.rejected_msg: must not be empty",
        ),
    ];
    for (conf, want) in cases {
        assert_eq!(err(json!({"limit-count": conf})), want);
    }
    let e = Plugins::from_json(&json!({"limit-count": {"count": 1, "time_window": 1, "x": 1}}))
        .expect_err("unknown field");
    assert_eq!(e.path, "limit-count.x");
}

#[test]
fn limit_count_client_key() {
    let conf = |c: serde_json::Value| {
        Plugins::from_json(&json!({ "limit-count": c }))
            .expect("valid")
            .limit_count
            .expect("parsed")
    };
    let req = Req::new("GET", "/").header("x-user", "alice");
    let view = req.view();
    let by_header = conf(json!({"count": 1, "time_window": 1, "key": "http_x_user"}));
    assert_eq!(by_header.client_key(&view), "alice");
    let missing = conf(json!({"count": 1, "time_window": 1, "key": "http_x_other"}));
    assert_eq!(missing.client_key(&view), "127.0.0.1");
    let combo = conf(json!({"count": 1, "time_window": 1,
        "key_type": "var_combination", "key": "$remote_addr-$http_x_user"}));
    assert_eq!(combo.client_key(&view), "127.0.0.1-alice");
    let none = conf(json!({"count": 1, "time_window": 1,
        "key_type": "var_combination", "key": "$http_nope"}));
    assert_eq!(none.client_key(&view), "127.0.0.1");
    let constant =
        conf(json!({"count": 1, "time_window": 1, "key_type": "constant", "key": "all"}));
    assert_eq!(constant.client_key(&view), "all");
    // Same conf, different key order: same counters; groups share across routes.
    let reordered = conf(json!({"time_window": 1, "key": "http_x_user", "count": 1}));
    assert_eq!(by_header.state_key("r1"), reordered.state_key("r1"));
    assert_ne!(by_header.state_key("r1"), by_header.state_key("r2"));
    let grouped = conf(json!({"count": 1, "time_window": 1, "group": "g"}));
    assert_eq!(grouped.state_key("r1"), grouped.state_key("r2"));
}

#[test]
fn api_breaker_errors_name_the_field() {
    let cases = [
        (json!({}), "api-breaker.break_response_code: is required"),
        (
            json!({"break_response_code": 199}),
            "api-breaker.break_response_code: must be 200 to 599",
        ),
        (
            json!({"break_response_code": 502, "max_breaker_sec": 2}),
            "api-breaker.max_breaker_sec: must be >= 3",
        ),
        (
            json!({"break_response_code": 502, "unhealthy": {"http_statuses": [404]}}),
            "api-breaker.unhealthy.http_statuses[0]: must be 500 to 599",
        ),
        (
            json!({"break_response_code": 502, "unhealthy": {"http_statuses": [500, 500]}}),
            "api-breaker.unhealthy.http_statuses[1]: duplicate status",
        ),
        (
            json!({"break_response_code": 502, "unhealthy": {"failures": 0}}),
            "api-breaker.unhealthy.failures: must be >= 1",
        ),
        (
            json!({"break_response_code": 502, "healthy": {"http_statuses": [500]}}),
            "api-breaker.healthy.http_statuses[0]: must be 200 to 499",
        ),
        (
            json!({"break_response_code": 502, "healthy": {"http_statuses": []}}),
            "api-breaker.healthy.http_statuses: must not be empty",
        ),
        (
            json!({"break_response_code": 502,
                   "break_response_headers": [{"key": "x-a", "value": "1"}]}),
            "api-breaker.break_response_headers: are only sent with break_response_body; set a body or remove them",
        ),
        (
            json!({"break_response_code": 502, "break_response_body": "b",
                   "break_response_headers": [{"key": "bad header", "value": "1"}]}),
            "api-breaker.break_response_headers[0].key: must be a valid HTTP header name",
        ),
        (
            json!({"break_response_code": 502, "fallback": "retry"}),
            "api-breaker.fallback: must be `reject` or `other_arms`",
        ),
        (
            json!({"break_response_code": 502, "policy": "unhealthy-ratio"}),
            "api-breaker.policy: `unhealthy-ratio` is not supported yet; use `unhealthy-count`",
        ),
    ];
    for (conf, want) in cases {
        assert_eq!(err(json!({"api-breaker": conf})), want);
    }
    let p = Plugins::from_json(&json!({"api-breaker": {
        "break_response_code": 503, "fallback": "other_arms"}}))
    .expect("valid");
    assert_eq!(
        p.api_breaker.expect("parsed").fallback,
        BreakerFallback::OtherArms
    );
}

#[test]
fn key_auth_route_errors_and_defaults() {
    let p = Plugins::from_json(&json!({"key-auth": {}})).expect("valid");
    let k = p.key_auth_route.expect("parsed");
    assert_eq!(k.header.as_str(), "apikey");
    assert_eq!(k.query, "apikey");
    assert!(!k.hide_credentials);
    assert_eq!(k.challenge(), r#"apikey realm="key""#);
    assert!(
        p.raw.contains_key("key-auth"),
        "route key-auth holds no secret"
    );
    assert_eq!(
        err(json!({"key-auth": {"header": "a b"}})),
        "key-auth.header: must be a valid HTTP header name"
    );
    assert_eq!(
        err(json!({"key-auth": {"realm": "a\"b"}})),
        "key-auth.realm: must be 1 or more printable ASCII characters without `\"` or `\\`"
    );
    let hidden = Plugins::from_json(&json!({"key-auth": {"hide_credentials": true}}))
        .expect("hide_credentials: true is supported");
    assert!(hidden.key_auth_route.expect("parsed").hide_credentials);
    assert!(Plugins::from_json(&json!({"key-auth": {"hide_credentials": false}})).is_ok());
    assert_eq!(
        err(json!({"key-auth": {"anonymous_consumer": "a b"}})),
        "key-auth.anonymous_consumer: must be a consumer username (1 to 100 characters of [a-zA-Z0-9_-])"
    );
    let e = Plugins::from_json_in(
        &json!({"limit-count": {"count": 1, "time_window": 1}}),
        split_core::config::plugins::PluginScope::Consumer,
    )
    .expect_err("consumer scope");
    assert_eq!(
        e.to_string(),
        "limit-count: is not supported on consumers yet; configure it on the route"
    );
}

fn consumers_and_route(
    route_key_auth: serde_json::Value,
) -> Vec<(ResourceKind, &'static str, serde_json::Value)> {
    vec![
        (
            ResourceKind::Consumers,
            "alice",
            json!({"username": "alice", "plugins": {"key-auth": {"key": "alice-key-123"}}}),
        ),
        (
            ResourceKind::Consumers,
            "bob",
            json!({"username": "bob", "plugins": {"key-auth": {"key": "bob-key-456"}}}),
        ),
        (
            ResourceKind::Consumers,
            "guest",
            json!({"username": "guest"}),
        ),
        (
            ResourceKind::Routes,
            "1",
            json!({"uri": "/v1/*", "plugins": {"key-auth": route_key_auth},
                   "upstream": {"nodes": {"127.0.0.1:1980": 1}}}),
        ),
    ]
}

#[test]
fn key_auth_lookup_and_outcomes() {
    let snap = compile(consumers_and_route(json!({})));
    let index = &snap.consumers;
    assert_eq!(index.len(), 3);
    assert_eq!(
        index.lookup("alice-key-123").map(|c| c.username.as_str()),
        Some("alice")
    );
    assert_eq!(
        index.lookup("bob-key-456").map(|c| c.username.as_str()),
        Some("bob")
    );
    assert!(index.lookup("alice-key-12").is_none());
    assert!(index.lookup("").is_none());
    assert!(
        !format!("{index:?}").contains("alice-key"),
        "keys are never printed"
    );

    let route = snap.route("1").expect("route");
    let conf = route.plugins.key_auth_route.as_ref().expect("key-auth");
    let req = Req::new("GET", "/v1/x").header("apikey", "bob-key-456");
    match authenticate(conf, index, &req.view()) {
        AuthOutcome::Consumer { consumer, source } => {
            assert_eq!(consumer.username, "bob");
            assert_eq!(source, KeySource::Header);
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut req = Req::new("GET", "/v1/x");
    req.query = Some("apikey=alice-key-123".into());
    match authenticate(conf, index, &req.view()) {
        AuthOutcome::Consumer { consumer, source } => {
            assert_eq!(consumer.username, "alice");
            assert_eq!(source, KeySource::Query);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The header wins over the query, even when it is wrong.
    let mut req = Req::new("GET", "/v1/x").header("apikey", "nope");
    req.query = Some("apikey=alice-key-123".into());
    assert!(matches!(
        authenticate(conf, index, &req.view()),
        AuthOutcome::Reject(AuthReject::Invalid)
    ));
    let req = Req::new("GET", "/v1/x");
    let outcome = authenticate(conf, index, &req.view());
    assert!(matches!(outcome, AuthOutcome::Reject(AuthReject::Missing)));
    assert_eq!(
        AuthReject::Missing.body(),
        r#"{"message":"Missing API key in request"}"#
    );
    assert_eq!(
        AuthReject::Invalid.body(),
        r#"{"message":"Invalid API key in request"}"#
    );
}

#[test]
fn key_auth_anonymous_consumer() {
    let snap = compile(consumers_and_route(
        json!({"anonymous_consumer": "guest", "header": "x-key"}),
    ));
    let conf = snap
        .route("1")
        .and_then(|r| r.plugins.key_auth_route.as_ref())
        .expect("key-auth");
    let req = Req::new("GET", "/v1/x").header("apikey", "alice-key-123");
    match authenticate(conf, &snap.consumers, &req.view()) {
        AuthOutcome::Anonymous(c) => assert_eq!(c.username, "guest"),
        other => panic!("unexpected {other:?}"),
    }
    let e = compile_err(consumers_and_route(json!({"anonymous_consumer": "nobody"})));
    assert_eq!(e.id, "1");
    assert_eq!(
        e.error.to_string(),
        "plugins.key-auth.anonymous_consumer: consumer `nobody` does not exist"
    );
}

#[test]
fn plugins_refused_in_global_rules() {
    let e = compile_err(vec![(
        ResourceKind::GlobalRules,
        "1",
        json!({"plugins": {"limit-count": {"count": 1, "time_window": 1}}}),
    )]);
    assert_eq!(
        e.error.to_string(),
        "plugins.limit-count: is not supported in global rules yet; configure it on the route"
    );
}
