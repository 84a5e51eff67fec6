//! The guide's route bodies parse into the intended domain values; the split route is ONE
//! rule with two 50/50 arms, each with its own rewrite.

mod guide_bodies;

use split_core::config::route::{Route, UpstreamRef};
use split_core::config::traffic_split::{ArmBalancer, ArmTarget};
use split_core::config::upstream::{Balancer, PassHost, Scheme};
use split_core::config::ResourceKind;
use split_core::snapshot::validate_object;

fn parse(id: &str, body: &str) -> Route {
    let value: serde_json::Value = serde_json::from_str(body).expect("the guide's JSON is valid");
    validate_object(ResourceKind::Routes, id, &value).expect("validates");
    Route::from_json(id, &value).expect("parses")
}

#[test]
fn guide_v1_and_v2_routes() {
    for (id, body, uri) in [
        ("test-v1", guide_bodies::TEST_V1, "/test/v1"),
        ("test-v2", guide_bodies::TEST_V2, "/test/v2"),
    ] {
        let route = parse(id, body);
        assert_eq!(route.id, id);
        assert_eq!(route.uris, vec![uri.to_owned()]);
        assert!(route.enabled);
        assert!(route.methods.is_empty() && route.hosts.is_empty());
        let Some(UpstreamRef::Inline(up)) = &route.upstream else {
            panic!("inline upstream expected: {:?}", route.upstream);
        };
        assert_eq!(up.balancer, Balancer::RoundRobin);
        assert_eq!(up.scheme, Scheme::Https);
        assert_eq!(up.pass_host, PassHost::Node);
        assert_eq!(up.nodes.len(), 1);
        assert_eq!(up.nodes[0].host, "api.aimlapi.com");
        assert_eq!(up.nodes[0].port, 443);
        assert_eq!(up.nodes[0].weight, 1);
        assert_eq!(up.effective_retries(), 0);
        assert!(route.plugins.traffic_split.is_none());
    }
}

#[test]
fn guide_split_route_is_one_rule_with_two_arms() {
    let route = parse("aimlapi-split", guide_bodies::AIMLAPI_SPLIT);
    assert_eq!(route.uris, vec!["/chat/completions".to_owned()]);
    let split = route
        .plugins
        .traffic_split
        .as_ref()
        .expect("traffic-split parsed");
    assert_eq!(
        split.rules.len(),
        1,
        "the shorthand items are arms of one rule"
    );
    let rule = &split.rules[0];
    assert!(rule.matches.is_empty());
    assert_eq!(rule.balancer, ArmBalancer::RoundRobin);
    assert_eq!(rule.arms.len(), 2);
    let uris: Vec<Option<&str>> = rule
        .arms
        .iter()
        .map(|a| a.rewrite.as_ref().and_then(|r| r.uri.as_deref()))
        .collect();
    assert_eq!(
        uris,
        vec![Some("/v1/chat/completions"), Some("/v2/chat/completions")]
    );
    for (i, arm) in rule.arms.iter().enumerate() {
        assert_eq!(arm.weight, 50);
        assert_eq!(arm.name, None);
        assert_eq!(arm.path, format!("rules[{i}]"));
        let ArmTarget::Inline(up) = &arm.target else {
            panic!("inline arm upstream expected");
        };
        assert_eq!(up.scheme, Scheme::Https);
        assert_eq!(up.pass_host, PassHost::Node);
        assert_eq!(
            (up.nodes[0].host.as_str(), up.nodes[0].port),
            ("api.aimlapi.com", 443)
        );
    }
    assert_ne!(rule.arms[0].id, rule.arms[1].id);
    assert!(route.plugins.raw.contains_key("traffic-split"));
}

#[test]
fn rule_fingerprint_ignores_route_fields_but_not_arms() {
    let base: serde_json::Value = serde_json::from_str(guide_bodies::AIMLAPI_SPLIT).unwrap();
    let fingerprint = |v: &serde_json::Value| {
        Route::from_json("r", v)
            .unwrap()
            .plugins
            .traffic_split
            .unwrap()
            .rules[0]
            .fingerprint
    };
    let mut moved = base.clone();
    moved["uri"] = "/v1/chat/completions".into();
    moved["name"] = "renamed".into();
    assert_eq!(fingerprint(&base), fingerprint(&moved));
    let mut reweighted = base.clone();
    reweighted["plugins"]["traffic-split"]["rules"][0]["weight"] = 80.into();
    assert_ne!(fingerprint(&base), fingerprint(&reweighted));
}
