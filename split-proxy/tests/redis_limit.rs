//! limit-count `policy: redis` against a real redis-server: one limit shared by two
//! gateway processes, quota headers from Redis' answer, counters that survive unrelated
//! edits, sliding windows, and `allow_degradation` with Redis stopped.

mod common;

use std::time::Duration;

use common::fleet::Fleet;
use common::redis::RedisServer;
use common::Reply;
use serde_json::{json, Value};

const PASSWORD: &str = "redis-test-pass-do-not-log";

fn limited_route(uri: &str, node: &str, redis: &RedisServer, extra: Value) -> Value {
    let mut limit = json!({
        "count": 5, "time_window": 60, "policy": "redis",
        "redis_host": "127.0.0.1", "redis_port": redis.port,
        "redis_password": PASSWORD, "redis_timeout": 500,
        "rejected_code": 429, "rejected_msg": "slow down"
    });
    if let (Some(limit), Value::Object(extra)) = (limit.as_object_mut(), extra) {
        limit.extend(extra);
    }
    json!({
        "uri": uri,
        "upstream": {"type": "roundrobin", "nodes": {node: 1}},
        "plugins": {"limit-count": limit}
    })
}

fn header(reply: &Reply, name: &str) -> Option<u64> {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Sends `n` requests to `uri`, alternating between the gateways; returns the replies.
async fn alternate(fleet: &Fleet, uri: &str, n: usize) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(n);
    for i in 0..n {
        replies.push(fleet.get(i % fleet.gateways.len(), uri).await);
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit_with_quota_headers() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(2);
    let route = limited_route("/limited", &fleet.mock.node(), &redis, json!({}));
    fleet.put_route("lim", &route).await;

    let replies = alternate(&fleet, "/limited", 12).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 429, 429],
        "exactly 5 pass across both gateways"
    );
    let remaining: Vec<u64> = replies
        .iter()
        .map(|r| header(r, "x-ratelimit-remaining").expect("remaining header"))
        .collect();
    assert_eq!(remaining, [4, 3, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    for r in &replies {
        assert_eq!(header(r, "x-ratelimit-limit"), Some(5));
        let reset = header(r, "x-ratelimit-reset").expect("reset header");
        assert!((55..=60).contains(&reset), "reset {reset}");
    }
    assert_eq!(replies[5].json()["error_msg"], "slow down");
    assert_eq!(fleet.mock.count("/limited"), 5);

    let keys = redis.keys("plugin-limit-count:*");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(":127.0.0.1"), "{keys:?}");
    assert_eq!(redis.get_int(&keys[0]), Some(5), "rejections do not count");
    for gw in &fleet.gateways {
        assert!(
            !gw.stderr().contains(PASSWORD),
            "the password never reaches a log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_survive_an_unrelated_edit_and_reset_on_a_plugin_edit() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(2);
    let node = fleet.mock.node();
    let route = limited_route("/limited", &node, &redis, json!({}));
    fleet.put_route("lim", &route).await;
    let first: Vec<u16> = alternate(&fleet, "/limited", 3)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(first, [200, 200, 200]);

    // Same plugin, other route fields changed, plus a new route: the counter goes on.
    let mut edited = route.clone();
    edited["name"] = json!("renamed");
    edited["desc"] = json!("an edit that leaves limit-count alone");
    fleet.put_route("lim", &edited).await;
    fleet
        .put_route(
            "other",
            &json!({"uri": "/other", "upstream": {"nodes": {node.as_str(): 1}}}),
        )
        .await;
    let after: Vec<u16> = alternate(&fleet, "/limited", 4)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(after, [200, 200, 429, 429], "2 left of 5 after the edit");

    // Changing the plugin (count 5 → 6) starts a new counter, as in APISIX.
    let changed = limited_route("/limited", &node, &redis, json!({"count": 6}));
    fleet.put_route("lim", &changed).await;
    let fresh = fleet.get(1, "/limited").await;
    assert_eq!(fresh.status, 200);
    assert_eq!(header(&fresh, "x-ratelimit-remaining"), Some(5));
    assert_eq!(redis.keys("plugin-limit-count:*").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_window_is_shared_too() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(2);
    let route = limited_route(
        "/sliding",
        &fleet.mock.node(),
        &redis,
        json!({"count": 3, "window_type": "sliding", "key_type": "constant", "key": "all"}),
    );
    fleet.put_route("slide", &route).await;
    let replies = alternate(&fleet, "/sliding", 5).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let remaining: Vec<Option<u64>> = replies
        .iter()
        .map(|r| header(r, "x-ratelimit-remaining"))
        .collect();
    assert_eq!(remaining, [Some(2), Some(1), Some(0), Some(0), Some(0)]);
    let reset = header(&replies[0], "x-ratelimit-reset").expect("reset");
    assert!((59..=60).contains(&reset), "reset {reset}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_or_500_by_allow_degradation() {
    let mut redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(1);
    let node = fleet.mock.node();
    let open = limited_route("/open", &node, &redis, json!({"allow_degradation": true}));
    let closed = limited_route("/closed", &node, &redis, json!({}));
    fleet.put_route("open", &open).await;
    fleet.put_route("closed", &closed).await;
    assert_eq!(fleet.get(0, "/open").await.status, 200);
    assert_eq!(fleet.get(0, "/closed").await.status, 200);

    redis.stop();
    let open_reply = fleet.get(0, "/open").await;
    assert_eq!(open_reply.status, 200, "fails open: {}", open_reply.text());
    assert_eq!(header(&open_reply, "x-ratelimit-remaining"), None);
    let closed_reply = fleet.get(0, "/closed").await;
    assert_eq!(closed_reply.status, 500);
    assert_eq!(closed_reply.json()["error_msg"], "failed to limit count");
    let gw = &fleet.gateways[0];
    assert!(
        redis.failure_logged(gw, ""),
        "a log line names the redis target:\n{}",
        gw.stderr()
    );
    assert!(!gw.stderr().contains(PASSWORD));

    // Back up (empty: nothing persisted): counting resumes after the short backoff.
    redis.restart();
    let mut resumed = None;
    for _ in 0..50 {
        let reply = fleet.get(0, "/closed").await;
        if reply.status == 200 {
            resumed = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("limit-count recovers once redis is back");
    assert_eq!(header(&resumed, "x-ratelimit-remaining"), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_redis_settings_are_400_with_the_field() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(1);
    let node = fleet.mock.node();
    let cases = [
        (json!({"redis_port": 0}), "redis_port"),
        (json!({"redis_ssl": true}), "redis_ssl"),
        (json!({"policy": "redis-cluster"}), "policy"),
        (json!({"keepalive_pool": 10}), "keepalive_pool"),
    ];
    for (extra, field) in cases {
        let route = limited_route("/bad", &node, &redis, extra);
        let (status, body) = fleet.try_put_route("bad", &route).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains(&format!("plugins.limit-count.{field}")),
            "{field}: {body}"
        );
    }
}
