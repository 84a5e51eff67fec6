//! `CompiledUpstream::plan`: retry order over priority groups, zero weights, retries.

use std::sync::Arc;

use serde_json::json;

use super::build::compile_upstream;
use super::{CompiledUpstream, UpstreamKey};
use crate::config::upstream::Upstream;

fn upstream(value: serde_json::Value) -> Arc<CompiledUpstream> {
    let up = Upstream::from_json(&value).expect("valid upstream");
    compile_upstream(Arc::new(up), UpstreamKey(0))
}

fn hosts(up: &CompiledUpstream, plan: &[usize]) -> Vec<String> {
    plan.iter()
        .map(|&i| up.upstream.nodes[i].host.clone())
        .collect()
}

#[test]
fn empty_nodes_give_an_empty_plan() {
    let up = upstream(json!({"nodes": {}}));
    assert!(up.plan(0, None).is_empty());
    assert!(up.plan(7, Some(b"k")).is_empty());
}

#[test]
fn pick_first_then_group_in_config_order_then_lower_priority() {
    let up = upstream(json!({"nodes": [
        {"host": "a", "weight": 1, "priority": 1},
        {"host": "low1", "weight": 1, "priority": -1},
        {"host": "b", "weight": 1, "priority": 1},
        {"host": "c", "weight": 1, "priority": 1},
        {"host": "mid", "weight": 1},
    ], "retries": 10}));
    let mut firsts = Vec::new();
    for ticket in 0..3 {
        let plan = up.plan(ticket, None);
        let h = hosts(&up, &plan);
        assert_eq!(h.len(), 5);
        firsts.push(h[0].clone());
        let rest: Vec<String> = ["a", "b", "c"]
            .into_iter()
            .filter(|x| *x != h[0])
            .map(str::to_owned)
            .collect();
        assert_eq!(
            &h[1..3],
            rest.as_slice(),
            "rest of the top group in config order"
        );
        assert_eq!(&h[3..], &["mid".to_owned(), "low1".to_owned()]);
    }
    firsts.sort();
    assert_eq!(
        firsts,
        vec!["a", "b", "c"],
        "three tickets pick each equal-weight node once"
    );
}

#[test]
fn default_retries_try_every_node_once_and_retries_cap_the_plan() {
    let three = json!({"127.0.0.1:1": 1, "127.0.0.1:2": 1, "127.0.0.1:3": 1});
    let up = upstream(json!({"nodes": three}));
    assert_eq!(up.plan(0, None).len(), 3);
    let up = upstream(json!({"nodes": three, "retries": 0}));
    assert_eq!(up.plan(0, None).len(), 1);
    let up = upstream(json!({"nodes": three, "retries": 1}));
    let plan = up.plan(5, None);
    assert_eq!(plan.len(), 2);
    assert_ne!(plan[0], plan[1]);
}

#[test]
fn zero_weight_nodes_are_skipped_unless_all_are_zero() {
    let up = upstream(json!({"nodes": {"a:80": 0, "b:80": 2, "c:80": 0}}));
    for ticket in 0..10 {
        assert_eq!(hosts(&up, &up.plan(ticket, None)), vec!["b"]);
    }
    let up = upstream(json!({"nodes": {"a:80": 0, "b:80": 0}}));
    let firsts: Vec<String> = (0..4)
        .map(|t| hosts(&up, &up.plan(t, None))[0].clone())
        .collect();
    assert_eq!(
        firsts.iter().filter(|h| *h == "a").count(),
        2,
        "all-zero nodes alternate: {firsts:?}"
    );
    assert_eq!(up.plan(0, None).len(), 2);
}

#[test]
fn weighted_picks_are_exact_per_window() {
    let up = upstream(json!({"nodes": {"a:80": 3, "b:80": 1}}));
    let mut counts = [0_usize; 2];
    for ticket in 0..400 {
        counts[up.plan(ticket, None)[0]] += 1;
    }
    assert_eq!(counts, [300, 100]);
}

#[test]
fn chash_plans_are_sticky_per_key() {
    let up = upstream(
        json!({"type": "chash", "hash_on": "header", "key": "x-user",
        "nodes": {"a:80": 1, "b:80": 1, "c:80": 1}}),
    );
    for user in ["alice", "bob", "carol", "dave"] {
        let first = up.plan(0, Some(user.as_bytes()));
        for ticket in 1..20 {
            assert_eq!(up.plan(ticket, Some(user.as_bytes())), first, "{user}");
        }
        assert_eq!(first.len(), 3);
    }
}

#[test]
fn random_plans_are_reproducible() {
    let a = upstream(json!({"type": "random", "seed": 42, "nodes": {"a:80": 1, "b:80": 1}}));
    let b = upstream(json!({"type": "random", "seed": 42, "nodes": {"a:80": 1, "b:80": 1}}));
    for ticket in 0..50 {
        assert_eq!(a.plan(ticket, None), b.plan(ticket, None));
    }
}

#[test]
fn host_headers_follow_pass_host() {
    let nodes = json!({"api.example.com:80": 1, "[::1]:8080": 1, "10.0.0.1:443": 1});
    let node = upstream(json!({"nodes": nodes.clone(), "pass_host": "node"}));
    let by_host = |up: &CompiledUpstream, host: &str, client: Option<&'static str>| {
        let i = up
            .upstream
            .nodes
            .iter()
            .position(|n| n.host == host)
            .expect("node");
        up.host_header(i, client).to_owned()
    };
    // The scheme's default port is left out; IPv6 goes in brackets.
    assert_eq!(
        by_host(&node, "api.example.com", Some("c")),
        "api.example.com"
    );
    assert_eq!(by_host(&node, "::1", Some("c")), "[::1]:8080");
    assert_eq!(by_host(&node, "10.0.0.1", None), "10.0.0.1:443");
    // The shared names are the nodes' hosts as configured, by node index.
    let names: Vec<&str> = node.node_names.iter().map(|n| &**n).collect();
    let hosts: Vec<&str> = node
        .upstream
        .nodes
        .iter()
        .map(|n| n.host.as_str())
        .collect();
    assert_eq!(names, hosts);
    assert_eq!(names.len(), 3);
    let tls = upstream(json!({"nodes": nodes.clone(), "pass_host": "node", "scheme": "https"}));
    assert_eq!(by_host(&tls, "10.0.0.1", None), "10.0.0.1");
    assert_eq!(by_host(&tls, "api.example.com", None), "api.example.com:80");

    // `pass` keeps the client's Host, or falls back to the node's without one.
    let pass = upstream(json!({"nodes": nodes.clone()}));
    assert_eq!(
        by_host(&pass, "::1", Some("client.test:9080")),
        "client.test:9080"
    );
    assert_eq!(by_host(&pass, "::1", None), "[::1]:8080");

    let rewrite =
        upstream(json!({"nodes": nodes, "pass_host": "rewrite", "upstream_host": "llm.test"}));
    assert_eq!(by_host(&rewrite, "::1", Some("c")), "llm.test");

    // An index past the nodes never panics.
    assert_eq!(node.host_header(99, Some("c")), "");
    assert_eq!(pass.host_header(99, Some("c")), "c");
}
