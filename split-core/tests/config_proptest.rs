//! Property tests of the config model: JSON round trips, map-order independence,
//! duplicate-arm detection, and "user input never panics".

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use split_core::config::route::Route;
use split_core::config::traffic_split::{ArmTarget, TrafficSplit};
use split_core::config::upstream::Upstream;
use split_core::config::ResourceKind;
use split_core::snapshot::validate_object;

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
    ]
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

prop_compose! {
    fn node()(host in host(), port in 1..=65535_u16, weight in 0..1000_u32, priority in -3..3_i32) -> (String, u16, u32, i32) {
        (host, port, weight, priority)
    }
}

/// A valid upstream object in either nodes form, with random optional fields.
fn upstream_json() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(node(), 0..6),
        any::<bool>(),
        0..3_u8,
        any::<u64>(),
        any::<bool>(),
        0..3_u8,
        prop::option::of((1..100_000_u64, 1..100_000_u64, 1..100_000_u64)),
        prop::option::of(0..10_u32),
    )
        .prop_map(
            |(nodes, map_form, kind, seed, https, pass, timeout, retries)| {
                let mut up = Map::new();
                if map_form {
                    let mut map = Map::new();
                    for (host, port, weight, _) in &nodes {
                        map.insert(format!("{}:{port}", bracketed(host)), json!(weight));
                    }
                    up.insert("nodes".into(), Value::Object(map));
                } else {
                    let list: Vec<Value> = nodes
                    .iter()
                    .map(|(h, p, w, pr)| json!({"host": h, "port": p, "weight": w, "priority": pr}))
                    .collect();
                    up.insert("nodes".into(), Value::Array(list));
                }
                match kind {
                    0 => {}
                    1 => {
                        up.insert("type".into(), "chash".into());
                        up.insert("hash_on".into(), "header".into());
                        up.insert("key".into(), "x-user".into());
                    }
                    _ => {
                        up.insert("type".into(), "random".into());
                        up.insert("seed".into(), json!(seed));
                    }
                }
                if https {
                    up.insert("scheme".into(), "https".into());
                }
                match pass {
                    0 => {}
                    1 => {
                        up.insert("pass_host".into(), "node".into());
                    }
                    _ => {
                        up.insert("pass_host".into(), "rewrite".into());
                        up.insert("upstream_host".into(), "api.example.com".into());
                    }
                }
                if let Some((c, s, r)) = timeout {
                    let secs = |ms: u64| ms as f64 / 1000.0;
                    up.insert(
                        "timeout".into(),
                        json!({"connect": secs(c), "send": secs(s), "read": secs(r)}),
                    );
                }
                if let Some(r) = retries {
                    up.insert("retries".into(), json!(r));
                }
                Value::Object(up)
            },
        )
}

/// Arbitrary JSON whose object keys come from real field names, so deep paths are hit.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("uri"),
        Just("uris"),
        Just("upstream"),
        Just("nodes"),
        Just("plugins"),
        Just("traffic-split"),
        Just("rules"),
        Just("weighted_upstreams"),
        Just("weight"),
        Just("upstream_id"),
        Just("match"),
        Just("vars"),
        Just("rewrite"),
        Just("headers"),
        Just("type"),
        Just("timeout"),
        Just("host"),
        Just("hosts"),
        Just("methods"),
        Just("proxy-rewrite"),
        Just("regex_uri"),
        Just("balancer"),
        Just("key"),
        Just("hash_on"),
        Just("username"),
        Just("key-auth"),
        Just("port"),
        Just("x"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("/v1"),
            Just("a:80"),
            Just("[::1]:80"),
            Just("chash"),
            Just("*"),
            Just("=="),
            Just("^(.*)$")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const KINDS: [ResourceKind; 8] = ResourceKind::ALL;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn upstream_json_round_trips(value in upstream_json()) {
        let parsed = Upstream::from_json(&value).map_err(|e| TestCaseError::fail(format!("{value}: {e}")))?;
        let again = Upstream::from_json(&parsed.to_json()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed, &again);
        let count = value["nodes"].as_array().map_or_else(|| value["nodes"].as_object().map_or(0, Map::len), Vec::len);
        prop_assert_eq!(parsed.nodes.len(), count);
    }

    #[test]
    fn map_nodes_are_sorted_and_order_independent(nodes in prop::collection::btree_map("[a-z]{1,8}:[1-9][0-9]{0,3}", 0..100_u32, 0..8)) {
        let forward: Map<String, Value> = nodes.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let backward: Map<String, Value> = nodes.iter().rev().map(|(k, v)| (k.clone(), json!(v))).collect();
        let a = Upstream::from_json(&json!({"nodes": forward})).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let b = Upstream::from_json(&json!({"nodes": backward})).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&a, &b);
        let keys: Vec<String> = a.nodes.iter().map(|n| format!("{}:{}", n.host, n.port)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        prop_assert_eq!(keys.len(), nodes.len());
        prop_assert_eq!(keys, sorted);
    }

    #[test]
    fn split_arms_keep_weights_and_duplicates_are_rejected(
        weights in prop::collection::vec(0..1000_u32, 1..20),
        dup in any::<prop::sample::Index>(),
    ) {
        let arms: Vec<Value> = weights.iter().enumerate()
            .map(|(i, w)| json!({"upstream_id": i + 1, "weight": w}))
            .collect();
        let split = TrafficSplit::from_json(&json!({"rules": [{"weighted_upstreams": arms}]}))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let rule = &split.rules[0];
        prop_assert_eq!(rule.arms.iter().map(|a| a.weight).collect::<Vec<_>>(), weights.clone());
        for (i, arm) in rule.arms.iter().enumerate() {
            prop_assert_eq!(&arm.target, &ArmTarget::UpstreamId((i + 1).to_string()));
        }
        let k = dup.index(arms.len());
        let mut with_dup = arms.clone();
        with_dup.push(json!({"upstream_id": (k + 1).to_string(), "weight": 5}));
        let err = TrafficSplit::from_json(&json!({"rules": [{"weighted_upstreams": with_dup}]})).unwrap_err();
        prop_assert_eq!(err.path, format!("rules[0].weighted_upstreams[{}]", arms.len()));
        let expected = format!("as rules[0].weighted_upstreams[{k}])");
        prop_assert!(err.message.contains(&expected), "{}", err.message);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arbitrary_json()) {
        for kind in KINDS {
            if let Err(e) = validate_object(kind, "1", &value) {
                prop_assert!(!e.message.is_empty());
            }
        }
        let _ = Route::from_json("1", &value);
        let _ = TrafficSplit::from_json(&value);
    }

    #[test]
    fn mutated_guide_route_never_panics(
        path in prop::collection::vec(prop_oneof![Just("upstream"), Just("plugins"), Just("traffic-split"), Just("rules"), Just("0"), Just("1"), Just("rewrite"), Just("nodes"), Just("weight"), Just("uri")], 0..6),
        replacement in arbitrary_json(),
    ) {
        let mut route = json!({
            "uri": "/chat/completions",
            "upstream": {"type": "roundrobin", "nodes": {"api.aimlapi.com:443": 1}, "scheme": "https", "pass_host": "node"},
            "plugins": {"traffic-split": {"rules": [
                {"weight": 50, "upstream": {"nodes": {"api.aimlapi.com:443": 1}}, "rewrite": {"uri": "/v1/chat/completions"}},
                {"weight": 50, "upstream": {"nodes": {"api.aimlapi.com:443": 1}}, "rewrite": {"uri": "/v2/chat/completions"}}
            ]}}
        });
        // Replace the deepest existing value along `path` (JSON pointer prefixes).
        for depth in (0..=path.len()).rev() {
            let pointer: String = path[..depth].iter().map(|s| format!("/{s}")).collect();
            if let Some(slot) = route.pointer_mut(&pointer) {
                *slot = replacement;
                break;
            }
        }
        let _ = validate_object(ResourceKind::Routes, "r", &route);
    }
}
