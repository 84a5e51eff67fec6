//! `Snapshot::compile`: reference resolution, dangling references, plugin merge, shared
//! upstreams, rule keys, route table membership.

mod guide_bodies;
mod snapshot_support;

use std::sync::Arc;

use serde_json::{json, Value};
use snapshot_support::{compile, compile_err, Req};
use split_core::config::ResourceKind::{self, *};
use split_core::snapshot::{Lookup, Snapshot};

fn guide() -> Vec<(ResourceKind, &'static str, Value)> {
    let parse = |s: &str| serde_json::from_str::<Value>(s).expect("the guide's JSON is valid");
    vec![
        (Routes, "test-v1", parse(guide_bodies::TEST_V1)),
        (Routes, "test-v2", parse(guide_bodies::TEST_V2)),
        (Routes, "aimlapi-split", parse(guide_bodies::AIMLAPI_SPLIT)),
    ]
}

fn found<'s>(snapshot: &'s Snapshot, req: &Req) -> Option<&'s str> {
    match snapshot.find(&req.view()) {
        Lookup::Found(route) => Some(route.route.id.as_str()),
        Lookup::NotFound => None,
        Lookup::NeedBody => panic!("no route reads the body"),
    }
}

#[test]
fn guide_routes_compile_and_are_found() {
    let snapshot = compile(guide());
    assert_eq!(snapshot.routes.len(), 3);
    assert_eq!(
        found(&snapshot, &Req::new("POST", "/chat/completions")),
        Some("aimlapi-split")
    );
    assert_eq!(
        found(&snapshot, &Req::new("GET", "/test/v1")),
        Some("test-v1")
    );
    assert_eq!(
        found(&snapshot, &Req::new("GET", "/test/v2")),
        Some("test-v2")
    );
    assert_eq!(found(&snapshot, &Req::new("GET", "/test/v3")), None);
    let split = snapshot.route("aimlapi-split").expect("compiled");
    assert_eq!(split.rules.len(), 1);
    assert_eq!(split.rules[0].arms.len(), 2);
    assert_eq!(split.rules[0].weights, vec![50, 50]);
    let labels: Vec<&str> = split.rules[0].arms.iter().map(|a| &*a.label).collect();
    assert_eq!(labels, vec!["0", "1"]);
    assert!(
        split.upstream.is_some(),
        "the route's own upstream is compiled"
    );
    for arm in &split.rules[0].arms {
        let up = arm.upstream.as_ref().expect("inline arm upstream");
        assert_eq!(up.plan(0, None), vec![0]);
    }
    assert_ne!(
        split.rules[0].arms[0].upstream.as_ref().unwrap().key,
        split.rules[0].arms[1].upstream.as_ref().unwrap().key
    );
}

/// (objects, failing kind, failing id, field path, message)
type DanglingCase = (
    Vec<(ResourceKind, &'static str, Value)>,
    ResourceKind,
    &'static str,
    &'static str,
    &'static str,
);

#[test]
fn dangling_references_name_route_and_field() {
    let up = json!({"nodes": {"127.0.0.1:80": 1}});
    let cases: Vec<DanglingCase> = vec![
        (
            vec![(Routes, "r1", json!({"uri": "/a", "upstream_id": 99}))],
            Routes,
            "r1",
            "upstream_id",
            "failed to fetch upstream info by upstream id [99], response code: 404",
        ),
        (
            vec![(Routes, "r1", json!({"uri": "/a", "service_id": "s9"}))],
            Routes,
            "r1",
            "service_id",
            "failed to fetch service info by service id [s9], response code: 404",
        ),
        (
            vec![(Routes, "r1", json!({"uri": "/a", "plugin_config_id": 7}))],
            Routes,
            "r1",
            "plugin_config_id",
            "failed to fetch plugin config info by plugin config id [7], response code: 404",
        ),
        (
            vec![
                (Upstreams, "1", up.clone()),
                (
                    Routes,
                    "r1",
                    json!({"uri": "/a", "upstream_id": 1, "plugins": {"traffic-split": {"rules": [
                        {"weighted_upstreams": [{"upstream_id": 1, "weight": 1}, {"upstream_id": 2, "weight": 1}]}
                    ]}}}),
                ),
            ],
            Routes,
            "r1",
            "plugins.traffic-split.rules[0].weighted_upstreams[1].upstream_id",
            "failed to fetch upstream info by upstream id [2], response code: 404",
        ),
        (
            vec![(
                Routes,
                "r1",
                json!({"uri": "/a", "plugins": {"traffic-split": {"rules": [
                    {"weight": 1, "upstream": {"nodes": {"a:80": 1}}}, {"weight": 1, "upstream_id": "gone"}
                ]}}}),
            )],
            Routes,
            "r1",
            "plugins.traffic-split.rules[1].upstream_id",
            "failed to fetch upstream info by upstream id [gone], response code: 404",
        ),
        (
            vec![(Services, "s1", json!({"upstream_id": 5}))],
            Services,
            "s1",
            "upstream_id",
            "failed to fetch upstream info by upstream id [5], response code: 404",
        ),
        (
            vec![(
                PluginConfigs,
                "pc",
                json!({"plugins": {"traffic-split": {"rules": [
                    {"weighted_upstreams": [{"upstream_id": 3}]}
                ]}}}),
            )],
            PluginConfigs,
            "pc",
            "plugins.traffic-split.rules[0].weighted_upstreams[0].upstream_id",
            "failed to fetch upstream info by upstream id [3], response code: 404",
        ),
    ];
    for (objects, kind, id, path, message) in cases {
        let err = compile_err(objects);
        assert_eq!(
            (err.kind, err.id.as_str(), err.error.path.as_str()),
            (kind, id, path),
            "{err}"
        );
        assert_eq!(err.error.message, message);
    }
}

#[test]
fn invalid_objects_of_every_kind_fail_compile_with_their_kind() {
    let cases = [
        (Upstreams, json!({"nodes": {"a:80": -1}})),
        (Services, json!({"foo": 1})),
        (PluginConfigs, json!({"plugins": {"nope": {}}})),
        (Consumers, json!({"username": "x y"})),
        (GlobalRules, json!({})),
        (Ssls, json!({"cert": "x"})),
        (PluginMetadata, json!(5)),
        (Routes, json!({"uri": "/a"})),
    ];
    for (kind, value) in cases {
        let err = compile_err(vec![(kind, "bad", value)]);
        assert_eq!((err.kind, err.id.as_str()), (kind, "bad"), "{err}");
    }
}

#[test]
fn consumers_must_match_their_id_and_have_unique_keys() {
    let err = compile_err(vec![(Consumers, "jack", json!({"username": "jill"}))]);
    assert_eq!(err.error.path, "username");
    let err = compile_err(vec![
        (
            Consumers,
            "a",
            json!({"username": "a", "plugins": {"key-auth": {"key": "k"}}}),
        ),
        (
            Consumers,
            "b",
            json!({"username": "b", "plugins": {"key-auth": {"key": "k"}}}),
        ),
    ]);
    assert_eq!(
        (err.id.as_str(), err.error.path.as_str()),
        ("b", "plugins.key-auth.key")
    );
    assert!(err.error.message.contains("consumer `a`"), "{err}");
    assert!(
        !err.to_string().contains(": k"),
        "the key itself is not printed: {err}"
    );
}

#[test]
fn route_upstream_resolution_order() {
    let snapshot = compile(vec![
        (Upstreams, "u1", json!({"nodes": {"10.0.0.1:80": 1}})),
        (
            Services,
            "s1",
            json!({"upstream": {"nodes": {"10.0.0.3:80": 1}}}),
        ),
        (
            Routes,
            "by-id",
            json!({"uri": "/a", "upstream_id": "u1", "upstream": {"nodes": {"10.0.0.2:80": 1}}}),
        ),
        (
            Routes,
            "inline",
            json!({"uri": "/b", "upstream": {"nodes": {"10.0.0.2:80": 1}}, "service_id": "s1"}),
        ),
        (Routes, "service", json!({"uri": "/c", "service_id": "s1"})),
        (Routes, "none", json!({"uri": "/d", "plugins": {}})),
        (Routes, "shared", json!({"uri": "/e", "upstream_id": "u1"})),
    ]);
    let host = |id: &str| {
        snapshot
            .route(id)
            .unwrap()
            .upstream
            .as_ref()
            .map(|u| u.upstream.nodes[0].host.clone())
    };
    assert_eq!(host("by-id").as_deref(), Some("10.0.0.1"));
    assert_eq!(host("inline").as_deref(), Some("10.0.0.2"));
    assert_eq!(host("service").as_deref(), Some("10.0.0.3"));
    assert_eq!(host("none"), None);
    let shared = &snapshot.upstreams["u1"];
    assert!(Arc::ptr_eq(
        shared,
        snapshot.route("by-id").unwrap().upstream.as_ref().unwrap()
    ));
    assert!(Arc::ptr_eq(
        shared,
        snapshot.route("shared").unwrap().upstream.as_ref().unwrap()
    ));
    assert_eq!(shared.upstream.id.as_deref(), Some("u1"));
}

#[test]
fn plugins_merge_service_then_plugin_config_then_route() {
    let rewrite = |uri: &str| json!({"proxy-rewrite": {"uri": uri}});
    let snapshot = compile(vec![
        (
            Services,
            "s",
            json!({"plugins": {"proxy-rewrite": {"uri": "/svc"}, "prometheus": {}}, "upstream": {"nodes": {"a:80": 1}}}),
        ),
        (PluginConfigs, "pc", json!({"plugins": rewrite("/pc")})),
        (Routes, "svc-only", json!({"uri": "/1", "service_id": "s"})),
        (
            Routes,
            "with-pc",
            json!({"uri": "/2", "service_id": "s", "plugin_config_id": "pc"}),
        ),
        (
            Routes,
            "own",
            json!({"uri": "/3", "service_id": "s", "plugin_config_id": "pc", "plugins": rewrite("/own")}),
        ),
    ]);
    let uri = |id: &str| {
        let route = snapshot.route(id).unwrap();
        assert!(
            route.plugins.prometheus.is_some(),
            "service plugins are inherited by {id}"
        );
        route
            .plugins
            .proxy_rewrite
            .as_ref()
            .and_then(|r| r.uri.clone())
    };
    assert_eq!(uri("svc-only").as_deref(), Some("/svc"));
    assert_eq!(uri("with-pc").as_deref(), Some("/pc"));
    assert_eq!(uri("own").as_deref(), Some("/own"));
}

#[test]
fn service_split_uses_the_route_upstream_for_weight_only_arms() {
    let snapshot = compile(vec![
        (Upstreams, "canary", json!({"nodes": {"10.0.0.9:80": 1}})),
        (
            Services,
            "s",
            json!({"plugins": {"traffic-split": {"rules": [
                {"weighted_upstreams": [{"upstream_id": "canary", "weight": 1}, {"weight": 3}]}
            ]}}}),
        ),
        (
            Routes,
            "r",
            json!({"uri": "/x", "service_id": "s", "upstream": {"nodes": {"10.0.0.1:80": 1}}}),
        ),
    ]);
    let route = snapshot.route("r").unwrap();
    let arms = &route.rules[0].arms;
    assert_eq!(
        arms[0].upstream.as_ref().unwrap().upstream.nodes[0].host,
        "10.0.0.9"
    );
    assert!(Arc::ptr_eq(
        arms[1].upstream.as_ref().unwrap(),
        route.upstream.as_ref().unwrap()
    ));
}

#[test]
fn disabled_routes_compile_but_are_not_routed() {
    let snapshot = compile(vec![(
        Routes,
        "off",
        json!({"uri": "/x", "status": 0, "upstream": {"nodes": {"a:80": 1}}}),
    )]);
    assert!(snapshot.route("off").is_some());
    assert_eq!(found(&snapshot, &Req::new("GET", "/x")), None);
}

#[test]
fn service_hosts_apply_when_the_route_has_none() {
    let snapshot = compile(vec![
        (
            Services,
            "s",
            json!({"hosts": ["api.example.com"], "upstream": {"nodes": {"a:80": 1}}}),
        ),
        (Routes, "r", json!({"uri": "/x", "service_id": "s"})),
    ]);
    assert_eq!(
        found(&snapshot, &Req::new("GET", "/x").host("api.example.com")),
        Some("r")
    );
    assert_eq!(
        found(&snapshot, &Req::new("GET", "/x").host("other.example.com")),
        None
    );
}

#[test]
fn rule_keys_survive_unrelated_edits_only() {
    let route = |uri: &str, weight: u32| {
        json!({"uri": uri, "upstream": {"nodes": {"a:80": 1}}, "plugins": {"traffic-split": {"rules": [
            {"match": [], "weighted_upstreams": [{"upstream": {"nodes": {"b:80": 1}}, "weight": weight}, {"weight": 1}]},
            {"weighted_upstreams": [{"upstream": {"nodes": {"b:80": 1}}, "weight": weight}, {"weight": 1}]}
        ]}}})
    };
    let keys = |objects| {
        let snapshot = compile(objects);
        snapshot
            .routes
            .iter()
            .map(|r| r.rules.iter().map(|x| x.key).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let base = keys(vec![
        (Routes, "r1", route("/a", 1)),
        (Routes, "r2", route("/a", 1)),
    ]);
    assert_ne!(base[0][0], base[0][1], "rule index is part of the key");
    assert_ne!(base[0], base[1], "route id is part of the key");
    let moved = keys(vec![
        (Routes, "r1", route("/moved", 1)),
        (Routes, "r2", route("/a", 1)),
    ]);
    assert_eq!(base, moved, "editing the uri keeps every rule key");
    let reweighted = keys(vec![
        (Routes, "r1", route("/a", 2)),
        (Routes, "r2", route("/a", 1)),
    ]);
    assert_ne!(base[0][0], reweighted[0][0]);
    assert_eq!(base[1], reweighted[1]);
}

#[test]
fn named_arms_label_metrics() {
    let snapshot = compile(vec![(
        Routes,
        "r",
        json!({"uri": "/x", "upstream": {"nodes": {"a:80": 1}}, "plugins": {"traffic-split": {"rules": [
            {"weighted_upstreams": [{"name": "stable", "weight": 9}, {"name": "canary", "weight": 1, "upstream": {"nodes": {"b:80": 1}}}]}
        ]}}}),
    )]);
    let labels: Vec<&str> = snapshot.routes[0].rules[0]
        .arms
        .iter()
        .map(|a| &*a.label)
        .collect();
    assert_eq!(labels, vec!["stable", "canary"]);
}

#[test]
fn empty_set_and_empty_snapshot_route_nothing() {
    let snapshot = compile(Vec::new());
    assert_eq!(found(&snapshot, &Req::new("GET", "/")), None);
    assert_eq!(found(&Snapshot::empty(), &Req::new("GET", "/")), None);
}

#[test]
fn referrers_find_every_kind_of_reference() {
    use split_core::snapshot::{referrers, Referrer};
    let set = snapshot_support::set(vec![
        (Upstreams, "1", json!({"nodes": {"a:80": 1}})),
        (Upstreams, "2", json!({"nodes": {"b:80": 1}})),
        (Services, "s", json!({"upstream_id": 1})),
        (
            PluginConfigs,
            "pc",
            json!({"plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [{"upstream_id": 2}]}]}}}),
        ),
        (Routes, "direct", json!({"uri": "/a", "upstream_id": 1})),
        (
            Routes,
            "split",
            json!({"uri": "/b", "upstream_id": 2, "service_id": "s", "plugin_config_id": "pc",
            "plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [{"upstream_id": 1}]}]}}}),
        ),
        (
            Routes,
            "other",
            json!({"uri": "/c", "upstream": {"nodes": {"c:80": 1}}}),
        ),
    ]);
    let r = |kind, id: &str, via_plugin| Referrer {
        kind,
        id: id.to_owned(),
        via_plugin,
    };
    assert_eq!(
        referrers(&set, Upstreams, "1"),
        vec![
            r(Routes, "direct", false),
            r(Routes, "split", true),
            r(Services, "s", false)
        ]
    );
    assert_eq!(
        referrers(&set, Upstreams, "2"),
        vec![r(Routes, "split", false), r(PluginConfigs, "pc", true)]
    );
    assert_eq!(
        referrers(&set, Services, "s"),
        vec![r(Routes, "split", false)]
    );
    assert_eq!(
        referrers(&set, PluginConfigs, "pc"),
        vec![r(Routes, "split", false)]
    );
    assert!(referrers(&set, Upstreams, "3").is_empty());
    assert!(referrers(&set, Routes, "direct").is_empty());
    assert_eq!(
        r(Routes, "1", false).delete_error(Upstreams),
        "can not delete this upstream, route [1] is still using it now"
    );
    assert_eq!(
        r(Routes, "1", true).delete_error(Upstreams),
        "can not delete this upstream, plugin in route [1] is still using it now"
    );
    assert!(Snapshot::compile(set).is_ok());
}
