//! `CompiledRoute::decide`: rule matching, arm selection, tickets, rewrites, upstreams.

mod guide_bodies;
mod snapshot_support;

use std::sync::Arc;

use serde_json::{json, Value};
use snapshot_support::{compile, Req};
use split_core::config::ResourceKind::{self, *};
use split_core::request::VarError;
use split_core::snapshot::{CompiledRoute, Decision, RuleKey, Snapshot};

fn guide() -> Snapshot {
    let parse = |s: &str| serde_json::from_str::<Value>(s).expect("the guide's JSON is valid");
    compile(vec![
        (Routes, "test-v1", parse(guide_bodies::TEST_V1)),
        (Routes, "test-v2", parse(guide_bodies::TEST_V2)),
        (Routes, "aimlapi-split", parse(guide_bodies::AIMLAPI_SPLIT)),
    ])
}

/// Decides with a fixed ticket and returns the decision and how often a ticket was taken.
fn decide<'s>(route: &'s CompiledRoute, req: &Req, ticket: u64) -> (Decision<'s>, Vec<RuleKey>) {
    let mut taken = Vec::new();
    let decision = route
        .decide(&req.view(), &mut |key| {
            taken.push(key);
            ticket
        })
        .expect("no body needed");
    (decision, taken)
}

fn single(objects: Vec<(ResourceKind, &str, Value)>) -> Snapshot {
    compile(objects)
}

fn node_host(d: &Decision<'_>) -> Option<String> {
    d.upstream.map(|u| u.upstream.nodes[0].host.clone())
}

#[test]
fn guide_split_is_exactly_fifty_fifty_over_100_requests() {
    let snapshot = guide();
    let route = snapshot.route("aimlapi-split").expect("compiled");
    let req = Req::new("POST", "/chat/completions").header("content-type", "application/json");
    let mut counts = [0_usize; 2];
    for ticket in 0..100 {
        let (d, taken) = decide(route, &req, ticket);
        assert_eq!(
            taken,
            vec![route.rules[0].key],
            "one ticket per request, from the rule"
        );
        let arm = d.arm.expect("an arm is picked");
        counts[arm] += 1;
        assert_eq!(d.rule, Some(0));
        assert_eq!(d.arm_label.map(|l| &**l), Some(arm.to_string().as_str()));
        let uris: Vec<Option<&str>> = d.rewrites.iter().map(|r| r.uri.as_deref()).collect();
        let expected = format!("/v{}/chat/completions", arm + 1);
        assert_eq!(uris, vec![Some(expected.as_str())]);
        let arm_upstream = route.rules[0].arms[arm].upstream.as_ref().unwrap();
        assert!(Arc::ptr_eq(d.upstream.unwrap(), arm_upstream));
        assert_eq!(node_host(&d).as_deref(), Some("api.aimlapi.com"));
    }
    assert_eq!(counts, [50, 50]);
}

#[test]
fn canary_80_20_is_exact_in_every_window_of_5() {
    let snapshot = single(vec![(
        Routes,
        "r",
        json!({"uri": "/x", "upstream": {"nodes": {"stable:80": 1}},
        "plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [
            {"weight": 80}, {"name": "canary", "weight": 20, "upstream": {"nodes": {"canary:80": 1}}}
        ]}]}}}),
    )]);
    let route = &snapshot.routes[0];
    let req = Req::new("GET", "/x");
    let picks: Vec<usize> = (0..1000)
        .map(|t| decide(route, &req, t).0.arm.unwrap())
        .collect();
    for window in picks.windows(5) {
        assert_eq!(window.iter().filter(|a| **a == 1).count(), 1, "{window:?}");
    }
    let (d, _) = decide(
        route,
        &req,
        picks.iter().position(|a| *a == 1).unwrap() as u64,
    );
    assert_eq!(d.arm_label.map(|l| &**l), Some("canary"));
    assert_eq!(node_host(&d).as_deref(), Some("canary"));
    let (d, _) = decide(
        route,
        &req,
        picks.iter().position(|a| *a == 0).unwrap() as u64,
    );
    assert_eq!(d.arm_label.map(|l| &**l), Some("0"));
    assert_eq!(
        node_host(&d).as_deref(),
        Some("stable"),
        "weight-only arm = route upstream"
    );
}

#[test]
fn no_matching_rule_uses_the_route_upstream_without_a_ticket() {
    let snapshot = single(vec![
        (Upstreams, "canary", json!({"nodes": {"canary:80": 1}})),
        (
            Routes,
            "r",
            json!({"uri": "/x", "upstream": {"nodes": {"stable:80": 1}},
            "plugins": {
                "proxy-rewrite": {"headers": {"X-Via": "split"}},
                "traffic-split": {"rules": [{"match": [{"vars": [["http_x-canary", "==", "1"]]}],
                    "weighted_upstreams": [{"upstream_id": "canary", "rewrite": {"uri": "/canary"}}]}]}
            }}),
        ),
    ]);
    let route = &snapshot.routes[0];
    let (d, taken) = decide(route, &Req::new("GET", "/x"), 0);
    assert!(taken.is_empty());
    assert_eq!((d.rule, d.arm, d.arm_label), (None, None, None));
    assert_eq!(node_host(&d).as_deref(), Some("stable"));
    assert_eq!(d.rewrites.len(), 1, "only the route's proxy-rewrite");
    assert_eq!(d.rewrites[0].headers.set.len(), 1);

    let (d, taken) = decide(route, &Req::new("GET", "/x").header("x-canary", "1"), 0);
    assert_eq!(taken.len(), 1);
    assert_eq!((d.rule, d.arm), (Some(0), Some(0)));
    assert_eq!(node_host(&d).as_deref(), Some("canary"));
    assert_eq!(
        d.rewrites.len(),
        2,
        "route proxy-rewrite, then the arm's rewrite"
    );
    assert_eq!(d.rewrites[0].headers.set.len(), 1);
    assert_eq!(d.rewrites[1].uri.as_deref(), Some("/canary"));
}

#[test]
fn first_matching_rule_wins_and_match_entries_are_ored() {
    let arm = |host: &str| json!([{"upstream": {"nodes": {format!("{host}:80"): 1}}}]);
    let snapshot = single(vec![(
        Routes,
        "r",
        json!({"uri": "/x", "upstream": {"nodes": {"route:80": 1}},
        "plugins": {"traffic-split": {"rules": [
            {"match": [{"vars": [["http_x-a", "==", "1"]]}, {"vars": [["http_x-b", "==", "1"]]}], "weighted_upstreams": arm("ab")},
            {"match": [{"vars": [["http_x-a", "==", "1"]]}], "weighted_upstreams": arm("a-only")},
            {"match": [{"vars": [["route_id", "==", "r"]]}], "weighted_upstreams": arm("by-route-id")}
        ]}}}),
    )]);
    let route = &snapshot.routes[0];
    let host = |req: Req| node_host(&decide(route, &req, 0).0);
    assert_eq!(
        host(Req::new("GET", "/x").header("x-a", "1")).as_deref(),
        Some("ab")
    );
    assert_eq!(
        host(Req::new("GET", "/x").header("x-b", "1")).as_deref(),
        Some("ab")
    );
    assert_eq!(
        host(Req::new("GET", "/x")).as_deref(),
        Some("by-route-id"),
        "route_id is this route's id"
    );
}

#[test]
fn empty_match_list_is_a_catch_all_even_after_a_failed_rule() {
    // Deliberate difference from APISIX, whose "passed" flag makes `match: []` match only
    // as the first rule.
    let snapshot = single(vec![(
        Routes,
        "r",
        json!({"uri": "/x", "upstream": {"nodes": {"route:80": 1}},
        "plugins": {"traffic-split": {"rules": [
            {"match": [{"vars": [["http_x-a", "==", "1"]]}], "weighted_upstreams": [{"upstream": {"nodes": {"a:80": 1}}}]},
            {"match": [], "weighted_upstreams": [{"upstream": {"nodes": {"b:80": 1}}}]}
        ]}}}),
    )]);
    let (d, _) = decide(&snapshot.routes[0], &Req::new("GET", "/x"), 0);
    assert_eq!(d.rule, Some(1));
    assert_eq!(node_host(&d).as_deref(), Some("b"));
}

#[test]
fn route_arm_without_any_upstream_decides_none() {
    let snapshot = single(vec![(
        Routes,
        "r",
        json!({"uri": "/x",
        "plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [{"weight": 1}]}]}}}),
    )]);
    let (d, _) = decide(&snapshot.routes[0], &Req::new("GET", "/x"), 3);
    assert_eq!(d.arm, Some(0));
    assert!(d.upstream.is_none(), "503 missing upstream configuration");
}

#[test]
fn chash_arms_stick_to_the_key_and_take_no_ticket() {
    let snapshot = single(vec![(
        Routes,
        "r",
        json!({"uri": "/x", "upstream": {"nodes": {"route:80": 1}},
        "plugins": {"traffic-split": {"rules": [{
            "balancer": {"algorithm": "chash", "hash_on": "header", "key": "x-user"},
            "weighted_upstreams": [{"weight": 1}, {"weight": 1, "upstream": {"nodes": {"b:80": 1}}}]
        }]}}}),
    )]);
    let route = &snapshot.routes[0];
    let mut seen = [0_usize; 2];
    for user in 0..200 {
        let req = Req::new("GET", "/x").header("x-user", &format!("user-{user}"));
        let (first, taken) = decide(route, &req, 0);
        assert!(taken.is_empty(), "a keyed chash pick needs no ticket");
        for ticket in 1..4 {
            assert_eq!(decide(route, &req, ticket).0.arm, first.arm);
        }
        seen[first.arm.unwrap()] += 1;
    }
    assert!(seen[0] > 50 && seen[1] > 50, "both arms get keys: {seen:?}");
    let (_, taken) = decide(route, &Req::new("GET", "/x"), 0);
    assert_eq!(
        taken.len(),
        1,
        "no key: round-robin fallback takes a ticket"
    );
}

#[test]
fn random_arms_are_reproducible_for_a_seed() {
    let route = |seed: u64| {
        single(vec![(
            Routes,
            "r",
            json!({"uri": "/x", "upstream": {"nodes": {"route:80": 1}},
            "plugins": {"traffic-split": {"rules": [{
                "balancer": {"algorithm": "random", "seed": seed},
                "weighted_upstreams": [{"weight": 1}, {"weight": 1, "upstream": {"nodes": {"b:80": 1}}}]
            }]}}}),
        )])
    };
    let (a, b) = (route(7), route(7));
    let req = Req::new("GET", "/x");
    let picks = |s: &Snapshot| {
        (0..64)
            .map(|t| decide(&s.routes[0], &req, t).0.arm.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(picks(&a), picks(&b));
    assert!(picks(&a).contains(&0) && picks(&a).contains(&1));
}

#[test]
fn body_vars_ask_for_the_body() {
    let snapshot = single(vec![(
        Routes,
        "r",
        json!({"uri": "/v1/chat/completions", "upstream": {"nodes": {"route:80": 1}},
        "plugins": {"traffic-split": {"rules": [{"match": [{"vars": [["post_arg.model", "==", "gpt-4o"]]}],
            "weighted_upstreams": [{"upstream": {"nodes": {"gpt4o:80": 1}}}]}]}}}),
    )]);
    let route = &snapshot.routes[0];
    let mut req =
        Req::new("POST", "/v1/chat/completions").header("content-type", "application/json");
    let result = route.decide(&req.view(), &mut |_| 0);
    assert!(matches!(result, Err(VarError::NeedBody)));
    req.body = Some(br#"{"model":"gpt-4o","messages":[]}"#.to_vec());
    assert_eq!(
        node_host(&decide(route, &req, 0).0).as_deref(),
        Some("gpt4o")
    );
    req.body = Some(br#"{"model":"gpt-4","messages":[]}"#.to_vec());
    assert_eq!(
        node_host(&decide(route, &req, 0).0).as_deref(),
        Some("route")
    );
}

#[test]
fn chash_weight_change_moves_keys_only_towards_the_changed_arm() {
    let route = |c_weight: u32| {
        single(vec![(
            Routes,
            "r",
            json!({"uri": "/x", "upstream": {"nodes": {"route:80": 1}},
            "plugins": {"traffic-split": {"rules": [{
                "balancer": {"algorithm": "chash", "hash_on": "header", "key": "x-user"},
                "weighted_upstreams": [
                    {"name": "a", "weight": 1},
                    {"name": "b", "weight": 1, "upstream": {"nodes": {"b:80": 1}}},
                    {"name": "c", "weight": c_weight, "upstream": {"nodes": {"c:80": 1}}}
                ]
            }]}}}),
        )])
    };
    let (before, after) = (route(1), route(3));
    let mut moved = 0;
    for user in 0..1000 {
        let req = Req::new("GET", "/x").header("x-user", &format!("u{user}"));
        let old = decide(&before.routes[0], &req, 0).0.arm.unwrap();
        let new = decide(&after.routes[0], &req, 0).0.arm.unwrap();
        if old != new {
            moved += 1;
            assert_eq!(
                new, 2,
                "user {user} moved from arm {old} to {new}, not to the heavier arm"
            );
        }
    }
    // Ideal share moved: 3/5 - 1/3 = 4/15 of the keys (~267 of 1000).
    assert!((180..360).contains(&moved), "moved {moved}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// For any weights, decisions over one period of tickets give exactly `w_i / gcd`
    /// picks per arm (zero-weight arms none, unless all are zero).
    #[test]
    fn decisions_are_exact_per_period(weights in proptest::collection::vec(0..40_u32, 1..6), offset in 0..1000_u64) {
        let arms: Vec<Value> = weights.iter().enumerate()
            .map(|(i, w)| json!({"weight": w, "upstream": {"nodes": {format!("n{i}:80"): 1}}}))
            .collect();
        let snapshot = single(vec![(Routes, "r", json!({"uri": "/x",
            "plugins": {"traffic-split": {"rules": [{"weighted_upstreams": arms}]}}}))]);
        let route = &snapshot.routes[0];
        let effective: Vec<u64> = if weights.iter().all(|w| *w == 0) {
            vec![1; weights.len()]
        } else {
            weights.iter().map(|w| u64::from(*w)).collect()
        };
        let gcd = effective.iter().copied().filter(|w| *w > 0).fold(0, gcd);
        let period: u64 = effective.iter().map(|w| w / gcd).sum();
        let req = Req::new("GET", "/x");
        let mut counts = vec![0_u64; weights.len()];
        for ticket in offset..offset + period {
            counts[decide(route, &req, ticket).0.arm.unwrap()] += 1;
        }
        let expected: Vec<u64> = effective.iter().map(|w| w / gcd).collect();
        proptest::prop_assert_eq!(counts, expected);
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[test]
fn guide_end_to_end_find_decide_rewrite_plan() {
    let snapshot = guide();
    let req = Req::new("POST", "/chat/completions");
    let split_core::snapshot::Lookup::Found(route) = snapshot.find(&req.view()) else {
        panic!("the split route is found");
    };
    let mut paths = Vec::new();
    for ticket in 0..4 {
        let (d, _) = decide(route, &req, ticket);
        let mut path = req.path.clone();
        for rewrite in &d.rewrites {
            if let Some(p) = rewrite.apply_uri(&path, None) {
                path = p;
            }
        }
        let upstream = d.upstream.expect("arm upstream");
        let plan = upstream.plan(ticket, None);
        let node = &upstream.upstream.nodes[plan[0]];
        paths.push(format!("{}:{}{path}", node.host, node.port));
    }
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "api.aimlapi.com:443/v1/chat/completions",
            "api.aimlapi.com:443/v1/chat/completions",
            "api.aimlapi.com:443/v2/chat/completions",
            "api.aimlapi.com:443/v2/chat/completions",
        ]
    );
}
