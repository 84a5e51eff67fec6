//! ai-rate-limiting `policy: redis` against a real redis-server: one token budget shared
//! by two gateway processes in front of a `split-sim upstream` mock (deterministic
//! usage), the same check-then-charge semantics and headers as the local policy, edits
//! that keep or reset the budget, bad settings refused with the field, and Redis down
//! failing open with a warning and a counter.

mod common;

use std::time::Duration;

use common::fleet::Fleet;
use common::redis::RedisServer;
use common::Reply;
use http::Method;
use serde_json::{json, Value};
use split_sim::upstream::{spawn, RunningUpstream, UpstreamConfig};

const PASSWORD: &str = "ai-limit-redis-pass-do-not-log";
const JSON: (&str, &str) = ("content-type", "application/json");
const URI: &str = "/v1/chat/completions";

fn mock() -> RunningUpstream {
    spawn(UpstreamConfig {
        name: "llm".to_owned(),
        chunk_interval: Duration::from_millis(5),
        ..UpstreamConfig::default()
    })
    .expect("mock upstream")
}

fn chat() -> String {
    json!({"model": "gpt-4", "messages": [{"role": "user", "content": "ping pong"}]}).to_string()
}

/// Tokens one chat request costs (the mock's usage is deterministic).
async fn cost(fleet: &Fleet, up: &RunningUpstream) -> u64 {
    let direct = fleet
        .client
        .send(Method::POST, &format!("{}{URI}", up.url()), &[JSON], chat())
        .await;
    direct.json()["usage"]["total_tokens"]
        .as_u64()
        .expect("usage in the mock's reply")
}

/// A split route whose `ai-rate-limiting` uses `redis` plus `extra` fields.
fn route(up: &RunningUpstream, redis: &RedisServer, limit: u64, extra: Value) -> Value {
    let mut plugin = json!({
        "limit": limit, "time_window": 60, "policy": "redis",
        "redis_host": "127.0.0.1", "redis_port": redis.port,
        "redis_password": PASSWORD, "redis_timeout": 500,
        "rejected_msg": "token budget exhausted"
    });
    if let (Some(plugin), Value::Object(extra)) = (plugin.as_object_mut(), extra) {
        plugin.extend(extra);
    }
    let upstream = json!({"type": "roundrobin", "nodes": {up.addr().to_string(): 1}});
    json!({
        "uri": URI,
        "upstream": upstream,
        "plugins": {
            "ai-rate-limiting": plugin,
            "traffic-split": {"rules": [{"weighted_upstreams": [{"weight": 1}]}]}
        }
    })
}

fn header(reply: &Reply, name: &str) -> Option<u64> {
    reply.headers.get(name)?.to_str().ok()?.parse().ok()
}

async fn post(fleet: &Fleet, gateway: usize) -> Reply {
    let url = fleet.gateways[gateway].url(URI);
    fleet.client.send(Method::POST, &url, &[JSON], chat()).await
}

/// Waits (max 5 s) until Redis key `key` holds `want` tokens: the charge runs when the
/// response body has ended, after the client may already have the reply.
fn wait_charged(redis: &RedisServer, key: &str, want: i64) {
    let charged = common::wait_until(Duration::from_secs(5), || redis.get_int(key) == Some(want));
    assert!(charged, "{key} holds {:?}, want {want}", redis.get_int(key));
}

/// The one key matching `pattern`.
fn only_key(redis: &RedisServer, pattern: &str) -> String {
    let keys = redis.keys(pattern);
    assert_eq!(keys.len(), 1, "{pattern}: {keys:?}");
    keys[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_token_budget() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(2);
    let up = mock();
    let c = cost(&fleet, &up).await;
    // Room for 4 requests: the 4th sees 1 token left (allowed, and charged in full),
    // the 5th sees none and is refused.
    let limit = 3 * c + 1;
    let arm_limit = 1_000_000;
    let extra = json!({"instances": [{"name": "0", "limit": arm_limit, "time_window": 30}]});
    fleet
        .put_route("ai", &route(&up, &redis, limit, extra))
        .await;

    let mut replies = Vec::new();
    for i in 0..5u64 {
        let reply = post(&fleet, usize::try_from(i % 2).expect("0 or 1")).await;
        if reply.status == 200 {
            wait_charged(
                &redis,
                &only_key(&redis, "plugin-ai-rate-limiting:*:route"),
                i64::try_from((i + 1) * c).expect("small"),
            );
        }
        replies.push(reply);
    }
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429], "{}", replies[4].text());
    let remaining: Vec<Option<u64>> = replies
        .iter()
        .map(|r| header(r, "x-ai-ratelimit-remaining-route"))
        .collect();
    assert_eq!(
        remaining,
        [
            Some(limit),
            Some(limit - c),
            Some(limit - 2 * c),
            Some(1),
            Some(0)
        ]
    );
    let arm_remaining: Vec<Option<u64>> = replies
        .iter()
        .map(|r| header(r, "x-ai-ratelimit-remaining-0"))
        .collect();
    assert_eq!(
        arm_remaining,
        [
            Some(arm_limit),
            Some(arm_limit - c),
            Some(arm_limit - 2 * c),
            Some(arm_limit - 3 * c),
            Some(arm_limit - 4 * c)
        ]
    );
    for r in &replies {
        assert_eq!(header(r, "x-ai-ratelimit-limit-route"), Some(limit));
        assert_eq!(header(r, "x-ai-ratelimit-limit-0"), Some(arm_limit));
        let reset = header(r, "x-ai-ratelimit-reset-route").expect("reset header");
        assert!((55..=60).contains(&reset), "route reset {reset}");
        let reset = header(r, "x-ai-ratelimit-reset-0").expect("reset header");
        assert!((25..=30).contains(&reset), "arm reset {reset}");
    }
    assert_eq!(replies[4].json()["error_msg"], "token budget exhausted");
    assert_eq!(
        up.stats().requests,
        5,
        "the direct probe and 4 admitted requests; the refused one never reached it"
    );
    let arm_key = only_key(&redis, "plugin-ai-rate-limiting:*:0");
    assert_eq!(
        redis.get_int(&arm_key),
        Some(i64::try_from(4 * c).expect("small"))
    );
    for gw in &fleet.gateways {
        assert!(
            !gw.stderr().contains(PASSWORD),
            "the password is never logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrelated_edit_keeps_the_budget_and_a_plugin_edit_resets_it() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(2);
    let up = mock();
    let c = cost(&fleet, &up).await;
    let original = route(&up, &redis, c, json!({}));
    fleet.put_route("ai", &original).await;
    let first = post(&fleet, 0).await;
    assert_eq!(first.status, 200);
    assert_eq!(header(&first, "x-ai-ratelimit-remaining-route"), Some(c));
    let key = only_key(&redis, "plugin-ai-rate-limiting:*");
    wait_charged(&redis, &key, i64::try_from(c).expect("small"));
    assert_eq!(post(&fleet, 1).await.status, 429, "budget used up");

    // Route fields around the plugin change: same budget, still exhausted.
    let mut renamed = original.clone();
    renamed["name"] = json!("renamed");
    renamed["desc"] = json!("an edit that leaves ai-rate-limiting alone");
    fleet.put_route("ai", &renamed).await;
    let still = post(&fleet, 1).await;
    assert_eq!(still.status, 429, "{}", still.text());
    assert_eq!(header(&still, "x-ai-ratelimit-remaining-route"), Some(0));

    // The plugin itself changes: a fresh budget on both gateways.
    fleet
        .put_route("ai", &route(&up, &redis, c + 5, json!({})))
        .await;
    let fresh = post(&fleet, 0).await;
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    assert_eq!(
        header(&fresh, "x-ai-ratelimit-remaining-route"),
        Some(c + 5)
    );
    assert_eq!(redis.keys("plugin-ai-rate-limiting:*").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_consumer_budgets_are_separate_keys() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(1);
    let up = mock();
    let c = cost(&fleet, &up).await;
    let mut r = route(&up, &redis, c, json!({"per_consumer": true}));
    r["plugins"]["key-auth"] = json!({});
    fleet.put_route("ai", &r).await;
    let gw = &fleet.gateways[0];
    let admin = gw.admin.expect("admin listener");
    for (name, key) in [("alice", "alice-key"), ("bob", "bob-key")] {
        let reply = fleet
            .client
            .send(
                Method::PUT,
                &format!("http://{admin}/apisix/admin/consumers"),
                &[("x-api-key", common::fleet::ADMIN_KEY), JSON],
                json!({"username": name, "plugins": {"key-auth": {"key": key}}}).to_string(),
            )
            .await;
        assert!(matches!(reply.status, 200 | 201), "{}", reply.text());
    }
    let send = |key: &'static str| {
        let url = gw.url(URI);
        let client = &fleet.client;
        async move {
            client
                .send(Method::POST, &url, &[JSON, ("apikey", key)], chat())
                .await
        }
    };
    assert_eq!(send("alice-key").await.status, 200);
    let alice = only_key(&redis, "plugin-ai-rate-limiting:*:alice:route");
    wait_charged(&redis, &alice, i64::try_from(c).expect("small"));
    assert_eq!(send("alice-key").await.status, 429, "alice used hers");
    let bob = send("bob-key").await;
    assert_eq!(bob.status, 200, "bob has his own budget");
    assert_eq!(header(&bob, "x-ai-ratelimit-remaining-route"), Some(c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_with_a_warning_and_a_counter() {
    let mut redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(1);
    let up = mock();
    let c = cost(&fleet, &up).await;
    fleet
        .put_route("ai", &route(&up, &redis, c, json!({})))
        .await;
    assert_eq!(post(&fleet, 0).await.status, 200);
    let key = only_key(&redis, "plugin-ai-rate-limiting:*");
    wait_charged(&redis, &key, i64::try_from(c).expect("small"));
    assert_eq!(post(&fleet, 0).await.status, 429);

    redis.stop();
    for _ in 0..3 {
        let reply = post(&fleet, 0).await;
        assert_eq!(reply.status, 200, "fails open: {}", reply.text());
        assert_eq!(header(&reply, "x-ai-ratelimit-remaining-route"), None);
    }
    let gw = &fleet.gateways[0];
    let failures = |op: &'static str| async move {
        let text = gw.metrics_text().await;
        common::gateway::sample(
            &text,
            &format!(r#"split_llm_ratelimit_redis_failures_total{{route="ai",op="{op}"}}"#),
        )
    };
    assert_eq!(failures("check").await, Some(3.0));
    let mut charged = None;
    for _ in 0..50 {
        charged = failures("charge").await;
        if charged == Some(3.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(charged, Some(3.0), "every lost charge is counted");
    assert!(
        redis.failure_logged(gw, "ai-rate-limiting route ai"),
        "a warning names the redis target and the route:\n{}",
        gw.stderr()
    );
    assert!(!gw.stderr().contains(PASSWORD));

    // Back up (empty: nothing persisted): budgets are checked again after the backoff.
    redis.restart();
    let mut resumed = None;
    for _ in 0..50 {
        let reply = post(&fleet, 0).await;
        if header(&reply, "x-ai-ratelimit-remaining-route").is_some() {
            resumed = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("budgets are checked again once redis is back");
    assert_eq!(resumed.status, 200);
    assert_eq!(header(&resumed, "x-ai-ratelimit-remaining-route"), Some(c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_redis_settings_are_400_with_the_field() {
    let redis = RedisServer::start_with_password(PASSWORD);
    let fleet = Fleet::start(1);
    let up = mock();
    let cases = [
        (json!({"redis_port": 0}), "redis_port"),
        (json!({"redis_ssl": true}), "redis_ssl"),
        (json!({"policy": "redis-cluster"}), "policy"),
        (json!({"policy": "redis-sentinel"}), "policy"),
        (
            json!({"redis_cluster_nodes": ["127.0.0.1:7000"]}),
            "redis_cluster_nodes",
        ),
    ];
    for (extra, field) in cases {
        let (status, body) = fleet
            .try_put_route("bad", &route(&up, &redis, 10, extra))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains(&format!("plugins.ai-rate-limiting.{field}")),
            "{field}: {body}"
        );
        assert!(!body.contains(PASSWORD), "{body}");
    }
}
