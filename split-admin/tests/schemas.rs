//! The served JSON Schemas are the generated ones, and they agree with validation: they
//! accept the guide's bodies, valid fixtures and every corpus object validation accepts,
//! and reject what validation rejects for shape reasons.

mod common;
mod schema_check;

use common::*;
use serde_json::{json, Value};
use split_core::config::plugins::PluginScope;
use split_core::config::{schema, ResourceKind};
use split_core::snapshot::validate_object;

fn accepts(kind: ResourceKind, value: &Value) -> Result<(), String> {
    let root = schema::resource_schema(kind);
    schema_check::check(&root, &root, value)
}

/// Both the schema and validation accept `value`.
fn assert_valid(kind: ResourceKind, value: Value) {
    if let Err(e) = validate_object(kind, "1", &value) {
        panic!("fixture is not valid for {kind:?}: {e}\n{value}");
    }
    if let Err(e) = accepts(kind, &value) {
        panic!("schema of {kind:?} rejects a valid object: {e}\n{value}");
    }
}

/// Both the schema and validation reject `value`.
fn assert_invalid(kind: ResourceKind, value: Value) {
    assert!(
        validate_object(kind, "1", &value).is_err(),
        "fixture is valid for {kind:?}: {value}"
    );
    assert!(
        accepts(kind, &value).is_err(),
        "schema of {kind:?} accepts what validation rejects: {value}"
    );
}

fn upstream() -> Value {
    json!({"type": "roundrobin", "nodes": {"127.0.0.1:1980": 1}})
}

#[test]
fn the_guide_bodies_are_accepted() {
    for body in [GUIDE_V1, GUIDE_V2, GUIDE_SPLIT] {
        let value: Value = serde_json::from_str(body).expect("guide body is JSON");
        assert_valid(ResourceKind::Routes, value);
    }
}

#[test]
fn valid_fixtures_are_accepted() {
    use ResourceKind::*;
    assert_valid(Upstreams, upstream());
    assert_valid(
        Upstreams,
        json!({"id": 7, "name": "u", "type": "chash", "hash_on": "header", "key": "x-user",
               "nodes": [{"host": "10.0.0.1", "port": 443, "weight": 3, "priority": 1}],
               "scheme": "https", "pass_host": "rewrite", "upstream_host": "api.example.com",
               "timeout": {"connect": 1, "send": 2.5, "read": 30}, "retries": 1,
               "keepalive_pool": {"size": 10, "idle_timeout": 5, "requests": 100},
               "labels": {"env": "prod"}}),
    );
    assert_valid(
        Routes,
        json!({"uris": ["/a", "/b/*"], "methods": ["GET", "POST"], "hosts": ["*.example.com"],
               "vars": [["http_x_tier", "==", "pro"]], "priority": 2, "status": 0,
               "upstream_id": "u1", "filter_func": null}),
    );
    assert_valid(
        Routes,
        json!({"uri": "/chat/completions", "plugins": {
            "traffic-split": {"rules": [{
                "match": [{"vars": [["post_arg.model", "==", "gpt-4o"]]}],
                "weighted_upstreams": [
                    {"upstream": upstream(), "weight": 95, "name": "stable"},
                    {"upstream_id": "canary", "weight": 5, "rewrite": {
                        "regex_uri": ["^/chat/(.*)", "/v2/$1"],
                        "headers": {"set": {"x-arm": "canary"}, "remove": ["cookie"]},
                        "body": {"model": "gpt-4o-mini"}}},
                    {"weight": 0}
                ],
                "balancer": {"algorithm": "chash", "hash_on": "header", "key": "x-user"}
            }]},
            "proxy-rewrite": {"headers": {"x-old-style": "1"}},
            "key-auth": {"header": "x-api-key"},
            "limit-count": {"count": 10, "time_window": 60, "window_type": "sliding"},
            "api-breaker": {"break_response_code": 502, "fallback": "other_arms",
                            "unhealthy": {"http_statuses": [500, 503], "failures": 2}},
            "prometheus": {"prefer_name": true}
        }}),
    );
    assert_valid(
        Services,
        json!({"name": "s", "upstream": upstream(), "hosts": ["api.example.com"], "plugins": {}}),
    );
    assert_valid(
        Consumers,
        json!({"username": "jack", "plugins": {"key-auth": {"key": "secret"}}}),
    );
    assert_valid(
        PluginConfigs,
        json!({"plugins": {"proxy-rewrite": {"uri": "/x"}}}),
    );
    assert_valid(GlobalRules, json!({"plugins": {"prometheus": {}}}));
    assert_valid(
        Ssls,
        json!({"cert": "-----BEGIN CERTIFICATE-----", "key": "-----BEGIN KEY-----", "snis": ["a.com"]}),
    );
    assert_valid(Ssls, json!({"type": "client"}));
    assert_valid(PluginMetadata, json!({"log_format": {"host": "$host"}}));
}

#[test]
fn shape_errors_are_rejected_by_both() {
    use ResourceKind::*;
    let route = |extra: Value| {
        let mut r = json!({"uri": "/x", "upstream": upstream()});
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        r
    };
    let split = |rules: Value| route(json!({"plugins": {"traffic-split": {"rules": rules}}}));
    assert_invalid(Routes, route(json!({"nope": 1})));
    assert_invalid(Routes, route(json!({"uri": 5})));
    assert_invalid(Routes, route(json!({"uris": ["/y"]})));
    assert_invalid(Routes, json!({"upstream": upstream()}));
    assert_invalid(Routes, json!({"uri": "/x"}));
    assert_invalid(Routes, route(json!({"filter_func": "function() end"})));
    assert_invalid(Routes, route(json!({"methods": ["FETCH"]})));
    assert_invalid(Routes, route(json!({"id": "a b"})));
    assert_invalid(Routes, route(json!({"upstream_id": 0})));
    assert_invalid(Routes, route(json!({"plugins": {"no-such-plugin": {}}})));
    assert_invalid(Routes, route(json!({"plugins": {"limit-req": {}}})));
    assert_invalid(Routes, route(json!({"plugins": {"prometheus": {"x": 1}}})));
    assert_invalid(
        Routes,
        route(
            json!({"plugins": {"limit-count": {"count": 1, "time_window": 1, "policy": "redis-cluster"}}}),
        ),
    );
    assert_invalid(
        Routes,
        route(json!({"plugins": {"limit-count": {"count": 1}}})),
    );
    assert_invalid(
        Routes,
        route(json!({"plugins": {"api-breaker": {"unhealthy": {}}}})),
    );
    assert_invalid(
        Routes,
        split(json!([{"weight": 1, "upstream": upstream(), "extra": 1}])),
    );
    assert_invalid(
        Routes,
        split(json!([{"weight": -1, "upstream": upstream()}])),
    );
    assert_invalid(
        Routes,
        split(json!([{"weight": 1, "weighted_upstreams": [{"weight": 1}]}])),
    );
    assert_invalid(Routes, split(json!([{"weighted_upstreams": []}])));
    assert_invalid(
        Routes,
        split(json!([{"weighted_upstreams": [{"weight": 1, "rewrite": {"bogus": 1}}]}])),
    );
    assert_invalid(
        Routes,
        split(json!([{"weighted_upstreams": [{"weight": 1}], "balancer": {"algorithm": "ewma"}}])),
    );
    assert_invalid(Upstreams, json!({"type": "roundrobin"}));
    assert_invalid(Upstreams, json!({"type": "ewma", "nodes": {"a:1": 1}}));
    assert_invalid(Upstreams, json!({"nodes": {"a:1": -1}}));
    assert_invalid(
        Upstreams,
        json!({"nodes": [{"host": "a", "port": 70000, "weight": 1}]}),
    );
    assert_invalid(Upstreams, json!({"nodes": [{"host": "a", "port": 80}]}));
    assert_invalid(Upstreams, json!({"nodes": {"a:1": 1}, "checks": {}}));
    assert_invalid(Upstreams, json!({"nodes": {"a:1": 1}, "scheme": "grpc"}));
    assert_invalid(
        Upstreams,
        json!({"nodes": {"a:1": 1}, "timeout": {"connect": 1}}),
    );
    assert_invalid(Services, json!({"upstream": upstream(), "script": "x"}));
    assert_invalid(Consumers, json!({"plugins": {}}));
    assert_invalid(
        Consumers,
        json!({"username": "j", "plugins": {"limit-count": {"count": 1, "time_window": 1}}}),
    );
    assert_invalid(
        Consumers,
        json!({"username": "j", "plugins": {"key-auth": {}}}),
    );
    assert_invalid(Consumers, json!({"username": "j", "group_id": "g"}));
    assert_invalid(PluginConfigs, json!({"name": "p"}));
    assert_invalid(
        GlobalRules,
        json!({"plugins": {"traffic-split": {"rules": []}}}),
    );
    assert_invalid(Ssls, json!({"cert": "-----BEGIN CERTIFICATE-----"}));
    assert_invalid(
        Ssls,
        json!({"cert": "-----BEGIN C", "key": "-----BEGIN K", "snis": []}),
    );
    assert_invalid(PluginMetadata, json!([1]));
}

/// Never stricter than validation: every corpus object validation accepts (for any
/// kind) passes that kind's schema.
#[test]
fn every_object_validation_accepts_in_the_corpus_passes_the_schema() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/config_json");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("dir entry").path();
        let Ok(value) = serde_json::from_slice::<Value>(&std::fs::read(&path).expect("read"))
        else {
            continue;
        };
        for kind in ResourceKind::ALL {
            if validate_object(kind, "1", &value).is_ok() {
                if let Err(e) = accepts(kind, &value) {
                    panic!("{}: {kind:?} valid but the schema says {e}", path.display());
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} valid corpus objects");
}

#[tokio::test]
async fn the_admin_api_serves_the_generated_schemas() {
    let h = Harness::new();
    for kind in ResourceKind::ALL {
        for name in [kind.as_str(), kind.singular()] {
            let r = h.get(&format!("/apisix/admin/schema/{name}")).await;
            assert_eq!(r.status, 200, "{name}");
            assert_eq!(r.json, schema::resource_schema(kind), "{name}");
        }
    }
    for (name, _) in split_core::config::plugins::KNOWN_PLUGINS {
        let r = h.get(&format!("/apisix/admin/plugins/{name}")).await;
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(
            Some(r.json),
            schema::plugin_schema(name, PluginScope::Route)
        );
    }
    let r = h
        .get("/apisix/admin/plugins/key-auth?schema_type=consumer")
        .await;
    assert_eq!(
        Some(r.json),
        schema::plugin_schema("key-auth", PluginScope::Consumer)
    );
    let r = h.get("/apisix/admin/plugins/no-such-plugin").await;
    assert_eq!(r.status, 400);
    // The traffic-split schema describes both shapes.
    let ts = h.get("/apisix/admin/plugins/traffic-split").await.json;
    let arm = json!({"rules": [{"weight": 50, "upstream": upstream(), "rewrite": {"uri": "/v1"}}]});
    let rule = json!({"rules": [{"weighted_upstreams": [{"weight": 1}]}]});
    assert!(schema_check::check(&ts, &ts, &arm).is_ok());
    assert!(schema_check::check(&ts, &ts, &rule).is_ok());
    assert!(schema_check::check(&ts, &ts, &json!({"rules": [{"foo": 1}]})).is_err());
}
