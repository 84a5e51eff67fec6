//! traffic-split `ticket: redis` against a real redis-server: two gateways walk one
//! rule's schedule together (exact with batch 1, within the batch per gateway with
//! batch K), and a Redis outage falls back to the local ticket.

mod common;

use std::time::Duration;

use common::fleet::Fleet;
use common::redis::RedisServer;
use serde_json::{json, Value};

fn split_route(node: &str, redis: &RedisServer, weights: [u32; 2], batch: u32) -> Value {
    let up = json!({"type": "roundrobin", "nodes": {node: 1}});
    json!({
        "uri": "/chat/completions",
        "upstream": up,
        "plugins": {"traffic-split": {
            "ticket": "redis",
            "redis": {"host": "127.0.0.1", "port": redis.port, "timeout": 500, "batch": batch},
            "rules": [{"weighted_upstreams": [
                {"weight": weights[0], "upstream": up, "rewrite": {"uri": "/v1/chat/completions"}},
                {"weight": weights[1], "upstream": up, "rewrite": {"uri": "/v2/chat/completions"}}
            ]}]
        }}
    })
}

/// Sends `n` requests: every third to gateway 0, the others to gateway 1 (67 / 133 for
/// 200), so per-gateway exact splits alone would not add up to an exact fleet split.
async fn uneven(fleet: &Fleet, n: usize) {
    for i in 0..n {
        let gw = usize::from(i % 3 != 0);
        let reply = fleet.get(gw, "/chat/completions").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_1_splits_200_requests_over_two_gateways_exactly_100_100() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(2);
    fleet
        .put_route("split", &split_route(&fleet.mock.node(), &redis, [1, 1], 1))
        .await;
    uneven(&fleet, 200).await;
    assert_eq!(fleet.mock.count("/v1/"), 100);
    assert_eq!(fleet.mock.count("/v2/"), 100);
    let arm = |a: &str| format!(r#"split_arm_requests_total{{route="split",rule="0",arm="{a}"}}"#);
    assert_eq!(fleet.metric_sum(&arm("0")).await, 100.0);
    assert_eq!(fleet.metric_sum(&arm("1")).await, 100.0);
    let keys = redis.keys("split:ticket:split:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(redis.get_int(&keys[0]), Some(200), "one ticket per request");
    let fallbacks = r#"split_ticket_fallback_total{route="split",rule="0"}"#;
    assert_eq!(fleet.metric_sum(fallbacks).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_k_deviates_at_most_k_per_gateway() {
    const K: u32 = 16;
    let redis = RedisServer::start();
    let fleet = Fleet::start(2);
    fleet
        .put_route("split", &split_route(&fleet.mock.node(), &redis, [3, 1], K))
        .await;
    uneven(&fleet, 200).await;
    let (v1, v2) = (fleet.mock.count("/v1/"), fleet.mock.count("/v2/"));
    assert_eq!(v1 + v2, 200);
    let bound = 2 * K as usize;
    assert!(
        v1.abs_diff(150) <= bound,
        "v1 {v1} (expected 150 ± {bound})"
    );
    assert!(v2.abs_diff(50) <= bound, "v2 {v2} (expected 50 ± {bound})");
    let keys = redis.keys("split:ticket:split:*");
    let reserved = redis.get_int(&keys[0]).expect("counter") as u64;
    assert_eq!(reserved % u64::from(K), 0, "whole batches");
    assert!(
        (200..=200 + 2 * u64::from(K)).contains(&reserved),
        "reserved {reserved}: at most one open batch per gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_to_local_tickets_and_recovers() {
    let mut redis = RedisServer::start();
    let fleet = Fleet::start(1);
    fleet
        .put_route("split", &split_route(&fleet.mock.node(), &redis, [1, 1], 1))
        .await;
    uneven_single(&fleet, 4).await;
    redis.stop();
    uneven_single(&fleet, 20).await;
    // The local ticket is exact per process: 20 fallbacks → 10/10 on top of 2/2.
    assert_eq!(fleet.mock.count("/v1/"), 12);
    assert_eq!(fleet.mock.count("/v2/"), 12);
    let fallbacks = r#"split_ticket_fallback_total{route="split",rule="0"}"#;
    assert_eq!(fleet.metric_sum(fallbacks).await, 20.0);
    let gw = &fleet.gateways[0];
    assert!(redis.failure_logged(gw, ""), "{}", gw.stderr());

    // Redis back (empty): tickets come from it again after the short backoff.
    redis.restart();
    let key_back = async {
        for _ in 0..50 {
            uneven_single(&fleet, 1).await;
            if !redis.keys("split:ticket:split:*").is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(key_back.await, "ticket: redis resumes once redis is back");
}

async fn uneven_single(fleet: &Fleet, n: usize) {
    for _ in 0..n {
        let reply = fleet.get(0, "/chat/completions").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_settings_are_validated() {
    let redis = RedisServer::start();
    let fleet = Fleet::start(1);
    let node = fleet.mock.node();
    let mut missing = split_route(&node, &redis, [1, 1], 1);
    missing["plugins"]["traffic-split"]
        .as_object_mut()
        .expect("object")
        .remove("redis");
    let mut bad_batch = split_route(&node, &redis, [1, 1], 1);
    bad_batch["plugins"]["traffic-split"]["redis"]["batch"] = json!(0);
    let mut bad_ticket = split_route(&node, &redis, [1, 1], 1);
    bad_ticket["plugins"]["traffic-split"]["ticket"] = json!("etcd");
    for (route, path) in [
        (missing, "plugins.traffic-split.redis"),
        (bad_batch, "plugins.traffic-split.redis.batch"),
        (bad_ticket, "plugins.traffic-split.ticket"),
    ] {
        let (status, body) = fleet.try_put_route("bad", &route).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(path), "{path}: {body}");
    }
}
