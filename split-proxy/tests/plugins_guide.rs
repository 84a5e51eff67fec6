//! key-auth, limit-count and api-breaker on the real binary (standalone config).

mod common;

use common::gateway::start;
use common::{Client, Mock};
use http::Method;
use serde_json::json;

fn config(node: &str) -> serde_json::Value {
    let up = json!({"type": "roundrobin", "nodes": {node: 1}});
    let split = |fallback: &str| {
        json!({
            "api-breaker": {
                "break_response_code": 502,
                "break_response_body": "canary down",
                "break_response_headers": [{"key": "x-breaker", "value": "open"}],
                "unhealthy": {"http_statuses": [500], "failures": 2},
                "fallback": fallback
            },
            "traffic-split": {"rules": [{"weighted_upstreams": [
                {"weight": 1, "upstream": up, "name": "stable"},
                {"weight": 1, "upstream": up, "name": "canary"}
            ]}]},
            "proxy-rewrite": {"uri": "/ok"}
        })
    };
    json!({
        "consumers": [
            {"username": "alice", "plugins": {"key-auth": {"key": "alice-secret-key"}}}
        ],
        "routes": [
            {"id": "auth", "uri": "/auth", "upstream": up,
             "plugins": {"key-auth": {}}},
            {"id": "limited", "uri": "/limited", "upstream": up,
             "plugins": {"limit-count": {"count": 2, "time_window": 60,
                                          "rejected_code": 429, "rejected_msg": "slow down"}}},
            {"id": "reject", "uri": "/reject", "upstream": up, "plugins": split("reject")},
            {"id": "other", "uri": "/other", "upstream": up, "plugins": split("other_arms")}
        ]
    })
}

/// Arm 1 (canary) gets a failing path: the arm rewrite overrides the route's.
fn with_failing_canary(mut v: serde_json::Value) -> serde_json::Value {
    for route in v["routes"].as_array_mut().into_iter().flatten() {
        if let Some(arms) = route.pointer_mut("/plugins/traffic-split/rules/0/weighted_upstreams/1")
        {
            arms["rewrite"] = json!({"uri": "/status/500"});
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_auth_limit_count_and_breaker() {
    let mock = Mock::http("llm");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("apisix.json");
    let conf = with_failing_canary(config(&mock.node()));
    std::fs::write(&file, conf.to_string()).expect("write config");
    let gw = start(
        dir.path(),
        &["--standalone", file.to_str().expect("utf-8 path")],
    );
    let client = Client::new();

    // key-auth
    let r = client.get(&gw.url("/auth")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), r#"{"message":"Missing API key in request"}"#);
    assert_eq!(r.headers["www-authenticate"], r#"apikey realm="key""#);
    let r = client
        .send(Method::GET, &gw.url("/auth"), &[("apikey", "wrong")], "")
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.text(), r#"{"message":"Invalid API key in request"}"#);
    let r = client
        .send(
            Method::GET,
            &gw.url("/auth"),
            &[("apikey", "alice-secret-key")],
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let r = client.get(&gw.url("/auth?apikey=alice-secret-key")).await;
    assert_eq!(r.status, 200);
    assert!(
        !gw.stderr().contains("alice-secret-key"),
        "keys are never logged"
    );

    // limit-count: 2 per minute, then 429 with the quota headers.
    for remaining in ["1", "0"] {
        let r = client.get(&gw.url("/limited")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["x-ratelimit-limit"], "2");
        assert_eq!(r.headers["x-ratelimit-remaining"], remaining);
        assert_eq!(r.headers["x-ratelimit-reset"], "60");
    }
    let r = client.get(&gw.url("/limited")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), r#"{"error_msg":"slow down"}"#);
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");

    // api-breaker, fallback reject: the canary trips after 2 failures, stable keeps going.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = client.get(&gw.url("/reject")).await;
        if r.status == 502 {
            assert_eq!(r.text(), "canary down");
            assert_eq!(r.headers["x-breaker"], "open");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, vec![200, 500, 200, 500, 200, 502, 200, 502]);

    // fallback other_arms: once open, canary traffic goes to stable.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(client.get(&gw.url("/other")).await.status);
    }
    assert_eq!(statuses, vec![200, 500, 200, 500, 200, 200, 200, 200]);
    assert_eq!(mock.count("/status/500"), 4);
}
