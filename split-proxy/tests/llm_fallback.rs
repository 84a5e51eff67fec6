//! LLM fallback and upstream keys against the real binary: `$env://` key injection
//! (seen upstream, never in the access log or an admin GET), `hide_credentials`, a
//! missing variable (502), fallback on 429 with exact counts, `Retry-After` skip
//! windows, connect errors, an error in the first SSE event, errors after the commit,
//! fallback off, and an exhausted budget.

mod common;

use std::time::Duration;

use common::gateway::{sample, start, start_with_env, Gateway};
use common::{wait_until, Client, Mock};
use http::Method;
use serde_json::{json, Value};
use split_sim::upstream::{spawn, RunningUpstream, UpstreamConfig};

const ADMIN_KEY: &str = "fallback-test-admin-key-0123456789abcdef";
const SECRET: &str = "sk-provider-secret-value-42";
const CHAT: &str = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;
const CHAT_STREAM: &str =
    r#"{"model":"gpt-4","stream":true,"messages":[{"role":"user","content":"ping"}]}"#;

fn json_ct() -> [(&'static str, &'static str); 1] {
    [("content-type", "application/json")]
}

/// A gateway serving `routes` (and `consumers`) from a standalone file, with an access log.
fn standalone(dir: &std::path::Path, doc: &Value) -> Gateway {
    let file = dir.join("apisix.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let log = dir.join("access.log");
    start(
        dir,
        &[
            "--standalone",
            file.to_str().unwrap(),
            "--access-log",
            log.to_str().unwrap(),
        ],
    )
}

/// The access log lines once there are at least `n`.
fn log_lines(dir: &std::path::Path, n: usize) -> Vec<Value> {
    let path = dir.join("access.log");
    let complete = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&path)
            .map(|t| t.matches('\n').count() >= n)
            .unwrap_or(false)
    });
    assert!(complete, "access log has fewer than {n} lines");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sim(config: UpstreamConfig) -> RunningUpstream {
    spawn(config).expect("split-sim upstream")
}

fn node_of(addr: std::net::SocketAddr) -> Value {
    json!({"type": "roundrobin", "nodes": {addr.to_string(): 1}})
}

/// POSTs the chat body as JSON to `path`.
async fn post_chat(client: &Client, gw: &Gateway, path: &str) -> common::Reply {
    client
        .send(Method::POST, &gw.url(path), &json_ct(), CHAT)
        .await
}

/// PUTs `body` to the Admin API at `path`, asserting 201 Created.
async fn put_created(client: &Client, gw: &Gateway, path: &str, body: &Value) {
    let r = admin(client, gw, Method::PUT, path, body).await;
    assert_eq!(r.status, 201, "PUT {path}: {}", r.text());
}

async fn admin(
    client: &Client,
    gw: &Gateway,
    method: Method,
    path: &str,
    body: &Value,
) -> common::Reply {
    let url = format!("http://{}/apisix/admin/{path}", gw.admin.unwrap());
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    client
        .send(method, &url, &[("X-API-KEY", ADMIN_KEY)], body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_key_reaches_upstream_and_never_the_log_or_admin_get() {
    let mock = Mock::http("provider");
    let up = json!({"nodes": {mock.node(): 1}});
    let dir = tempfile::tempdir().unwrap();
    let config = common::gateway::write_admin_config(dir.path(), ADMIN_KEY);
    let log = dir.path().join("access.log");
    let gw = start_with_env(
        dir.path(),
        &["-c", &config, "--access-log", log.to_str().unwrap()],
        &[("SPLIT_TEST_PROVIDER_KEY", SECRET)],
    );
    let client = Client::new();
    let r = admin(
        &client,
        &gw,
        Method::PUT,
        "consumers",
        &json!({"username": "alice", "plugins": {"key-auth": {"key": "client-key-1"}}}),
    )
    .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let route = json!({
        "uri": "/chat/completions",
        "plugins": {
            "key-auth": {"hide_credentials": true},
            "traffic-split": {"rules": [{"weighted_upstreams": [{
                "upstream": up, "weight": 1, "name": "provider",
                "rewrite": {"headers": {"set": {"Authorization": "Bearer $env://SPLIT_TEST_PROVIDER_KEY"}}}
            }]}]}
        },
        "upstream": up
    });
    put_created(&client, &gw, "routes/keyed", &route).await;
    let literal = json!({
        "uri": "/literal",
        "plugins": {"proxy-rewrite": {"headers": {"Authorization": "Bearer sk-literal-stored"}}},
        "upstream": up
    });
    put_created(&client, &gw, "routes/literal", &literal).await;
    let missing = json!({
        "uri": "/missing",
        "plugins": {"proxy-rewrite": {"headers": {"Authorization": "Bearer $env://SPLIT_TEST_UNSET_KEY"}}},
        "upstream": up
    });
    let r = admin(&client, &gw, Method::PUT, "routes/missing", &missing).await;
    assert_eq!(
        r.status,
        201,
        "a missing variable is accepted at write time: {}",
        r.text()
    );

    // Header key: checked, removed, and the provider key injected.
    let r = client
        .send(
            Method::POST,
            &gw.url("/chat/completions?x=1"),
            &[
                ("content-type", "application/json"),
                ("apikey", "client-key-1"),
            ],
            CHAT,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hit = mock.hits().pop().unwrap();
    assert_eq!(hit.headers["authorization"], format!("Bearer {SECRET}"));
    assert!(hit.headers.get("apikey").is_none(), "client key forwarded");
    assert_eq!(hit.uri, "/chat/completions?x=1");

    // Query key: removed from the upstream query, other arguments kept.
    let r = post_chat(&client, &gw, "/chat/completions?apikey=client-key-1&x=2").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hit = mock.hits().pop().unwrap();
    assert_eq!(hit.uri, "/chat/completions?x=2");
    assert_eq!(hit.headers["authorization"], format!("Bearer {SECRET}"));

    // Still refused without a key.
    let r = post_chat(&client, &gw, "/chat/completions").await;
    assert_eq!(r.status, 401);

    // A variable that is not set: 502 naming the reference, nothing sent upstream.
    let before = mock.hits().len();
    let r = post_chat(&client, &gw, "/missing").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"error_msg": "secret $env://SPLIT_TEST_UNSET_KEY is not set"})
    );
    assert_eq!(mock.hits().len(), before);
    assert!(
        wait_until(Duration::from_secs(5), || gw
            .stderr()
            .contains("SPLIT_TEST_UNSET_KEY")),
        "a log line names the variable"
    );

    // Admin GET: the reference as stored, a literal credential masked.
    let r = admin(&client, &gw, Method::GET, "routes/keyed", &Value::Null).await;
    let text = r.text();
    assert!(
        text.contains("Bearer $env://SPLIT_TEST_PROVIDER_KEY"),
        "{text}"
    );
    assert!(!text.contains(SECRET));
    let r = admin(&client, &gw, Method::GET, "routes/literal", &Value::Null).await;
    assert_eq!(
        r.json()["value"]["plugins"]["proxy-rewrite"]["headers"]["Authorization"],
        "******"
    );
    let r = admin(&client, &gw, Method::GET, "routes", &Value::Null).await;
    assert!(!r.text().contains("sk-literal-stored"));

    let lines = log_lines(dir.path(), 4);
    let all = lines.iter().map(Value::to_string).collect::<String>();
    assert!(!all.contains(SECRET), "secret in the access log");
    assert!(!gw.stderr().contains(SECRET), "secret in the gateway log");
    let metrics = gw.metrics_text().await;
    assert!(!metrics.contains(SECRET));
}

/// Two arms on one mock: `a` answers `a_path`, `b` answers `/ok`.
fn two_arm_route(mock: &Mock, a_path: &str, fallback: Option<Value>) -> Value {
    let up = json!({"nodes": {mock.node(): 1}});
    let mut split = json!({"rules": [{"weighted_upstreams": [
        {"upstream": up, "weight": 1, "name": "a", "rewrite": {"uri": a_path}},
        {"upstream": up, "weight": 1, "name": "b", "rewrite": {"uri": "/ok"}}
    ]}]});
    if let Some(f) = fallback {
        split["fallback"] = f;
    }
    json!({"routes": [{"id": "llm", "uri": "/chat", "upstream": up,
                       "plugins": {"traffic-split": split}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_429_on_one_arm_is_served_by_the_other_with_exact_counts() {
    let mock = Mock::http("m");
    let dir = tempfile::tempdir().unwrap();
    let gw = standalone(
        dir.path(),
        &two_arm_route(&mock, "/status/429", Some(json!({"on": [429, 503]}))),
    );
    let client = Client::new();
    for _ in 0..20 {
        let r = post_chat(&client, &gw, "/chat").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The split picks `a` for exactly 10 of 20; each of those went to `b` as well.
    assert_eq!(mock.count("/status/429"), 10);
    assert_eq!(mock.count("/ok"), 20);
    // Every try carried the whole body.
    assert!(mock.hits().iter().all(|h| &h.body[..] == CHAT.as_bytes()));
    let m = gw.metrics_text().await;
    assert_eq!(
        sample(
            &m,
            r#"split_llm_fallbacks_total{route="llm",rule="0",from_arm="a",to_arm="b",reason="http_429"}"#
        ),
        Some(10.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            r#"split_arm_requests_total{route="llm",rule="0",arm="b"}"#
        ),
        Some(20.0)
    );
    assert_eq!(
        sample(
            &m,
            r#"split_arm_requests_total{route="llm",rule="0",arm="a"}"#
        ),
        None
    );
    let lines = log_lines(dir.path(), 20);
    assert!(lines.iter().all(|l| l["arm"] == "b" && l["status"] == 200));
    let moved = lines.iter().filter(|l| l["fallback_from"] == "a").count();
    assert_eq!(moved, 10);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.get("fallback_from").is_none())
            .count(),
        10,
        "lines without a fallback have no fallback_from key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_off_keeps_the_old_behaviour() {
    let mock = Mock::http("m");
    let dir = tempfile::tempdir().unwrap();
    let gw = standalone(dir.path(), &two_arm_route(&mock, "/status/429", None));
    let client = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = post_chat(&client, &gw, "/chat").await;
        statuses.push(r.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 5);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5);
    assert_eq!(mock.count("/status/429"), 5);
    assert_eq!(mock.count("/ok"), 5);
    let m = gw.metrics_text().await;
    assert!(!m.contains("split_llm_fallbacks_total{"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_skips_the_arm_until_it_expires() {
    let limited = sim(UpstreamConfig {
        name: "limited".into(),
        fault: split_sim::upstream::FaultPlan {
            rate: 1.0,
            status: 429,
            seed: 0,
        },
        retry_after: Some(2),
        ..UpstreamConfig::default()
    });
    let healthy = sim(UpstreamConfig {
        name: "healthy".into(),
        ..UpstreamConfig::default()
    });
    let doc = json!({"routes": [{"id": "llm", "uri": "/v1/chat/completions",
    "plugins": {"traffic-split": {"fallback": {}, "rules": [{"weighted_upstreams": [
        {"upstream": node_of(limited.addr()), "weight": 1, "name": "a"},
        {"upstream": node_of(healthy.addr()), "weight": 1, "name": "b"}
    ]}]}}}]});
    let dir = tempfile::tempdir().unwrap();
    let gw = standalone(dir.path(), &doc);
    let client = Client::new();
    let send = || async {
        let r = post_chat(&client, &gw, "/v1/chat/completions").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.headers["x-split-mock"], "healthy");
    };
    let started = std::time::Instant::now();
    for _ in 0..10 {
        send().await;
    }
    // Only the first pick of `a` reached it; the 429's Retry-After: 2 skips it after.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "test too slow to check the window"
    );
    assert_eq!(limited.stats().requests, 1);
    assert_eq!(healthy.stats().requests, 10);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..2 {
        send().await;
    }
    assert_eq!(
        limited.stats().requests,
        2,
        "tried again once the window ended"
    );
    let m = gw.metrics_text().await;
    let skipped = sample(
        &m,
        r#"split_llm_fallbacks_total{route="llm",rule="0",from_arm="a",to_arm="b",reason="retry_after"}"#,
    );
    assert_eq!(skipped, Some(4.0), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_goes_to_the_other_arm() {
    let mock = Mock::http("m");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let doc = json!({"routes": [{"id": "llm", "uri": "/chat",
    "plugins": {"traffic-split": {"fallback": {"max_retries": 1}, "rules": [{"weighted_upstreams": [
        {"upstream": node_of(closed), "weight": 1, "name": "down"},
        {"upstream": {"nodes": {mock.node(): 1}}, "weight": 1, "name": "up"}
    ]}]}}}]});
    let dir = tempfile::tempdir().unwrap();
    let gw = standalone(dir.path(), &doc);
    let client = Client::new();
    for _ in 0..6 {
        let r = post_chat(&client, &gw, "/chat").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(mock.count("/chat"), 6);
    let m = gw.metrics_text().await;
    assert_eq!(
        sample(
            &m,
            r#"split_llm_fallbacks_total{route="llm",rule="0",from_arm="down",to_arm="up",reason="connect"}"#
        ),
        Some(3.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_in_the_first_sse_event_falls_back_to_a_clean_stream() {
    let broken = sim(UpstreamConfig {
        name: "broken".into(),
        first_event_error: true,
        ..UpstreamConfig::default()
    });
    let healthy = sim(UpstreamConfig {
        name: "healthy".into(),
        chunk_interval: Duration::from_millis(5),
        ..UpstreamConfig::default()
    });
    let doc = json!({"routes": [{"id": "llm", "uri": "/v1/chat/completions",
    "plugins": {"traffic-split": {"fallback": {"sse_peek_ms": 5000}, "rules": [{"weighted_upstreams": [
        {"upstream": node_of(broken.addr()), "weight": 1, "name": "a"},
        {"upstream": node_of(healthy.addr()), "weight": 1, "name": "b"}
    ]}]}}}]});
    let dir = tempfile::tempdir().unwrap();
    let gw = standalone(dir.path(), &doc);
    let client = Client::new();
    for _ in 0..4 {
        let r = client
            .send(
                Method::POST,
                &gw.url("/v1/chat/completions"),
                &json_ct(),
                CHAT_STREAM,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["x-split-mock"], "healthy");
        let text = r.text();
        assert!(!text.contains("\"error\""), "{text}");
        assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        assert!(text.contains("chat.completion.chunk"), "{text}");
    }
    assert_eq!(broken.stats().requests, 2);
    assert_eq!(healthy.stats().requests, 4);
    let m = gw.metrics_text().await;
    assert_eq!(
        sample(
            &m,
            r#"split_llm_fallbacks_total{route="llm",rule="0",from_arm="a",to_arm="b",reason="sse_error"}"#
        ),
        Some(2.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_after_the_commit_pass_through_and_are_counted() {
    let resetting = |name: &str| {
        sim(UpstreamConfig {
            name: name.into(),
            reset_after_chunks: Some(2),
            chunk_interval: Duration::from_millis(5),
            ..UpstreamConfig::default()
        })
    };
    let (a, b) = (resetting("a"), resetting("b"));
    let doc = json!({"routes": [{"id": "llm", "uri": "/v1/chat/completions",
    "plugins": {"traffic-split": {"fallback": {}, "rules": [{"weighted_upstreams": [
        {"upstream": node_of(a.addr()), "weight": 1, "name": "a"},
        {"upstream": node_of(b.addr()), "weight": 1, "name": "b"}
    ]}]}}}]});
    let dir = tempfile::tempdir().unwrap();
    let gw = standalone(dir.path(), &doc);
    let client = Client::new();
    let r = client
        .try_send(
            Method::POST,
            &gw.url("/v1/chat/completions"),
            &json_ct(),
            CHAT_STREAM,
        )
        .await;
    assert!(r.is_err(), "the client sees the broken stream: {r:?}");
    assert_eq!(
        a.stats().requests + b.stats().requests,
        1,
        "no fallback after the commit"
    );
    let mut m = String::new();
    for _ in 0..50 {
        m = gw.metrics_text().await;
        let counted = ["a", "b"].iter().any(|arm| {
            sample(
                &m,
                &format!(
                    r#"split_llm_post_commit_errors_total{{route="llm",rule="0",arm="{arm}",kind="stream_error"}}"#
                ),
            ) == Some(1.0)
        });
        if counted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("post-commit error not counted: {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_returns_the_last_error() {
    // Both arms fail: with max_retries 1 the client gets the second arm's answer.
    let mock = Mock::http("m");
    let up = json!({"nodes": {mock.node(): 1}});
    let both = json!({"routes": [{"id": "llm", "uri": "/chat", "upstream": up,
    "plugins": {"traffic-split": {"fallback": {"max_retries": 1}, "rules": [{"weighted_upstreams": [
        {"upstream": up, "weight": 1, "name": "a", "rewrite": {"uri": "/status/503"}},
        {"upstream": up, "weight": 1, "name": "b", "rewrite": {"uri": "/status/502"}}
    ]}]}}}]});
    let dir = tempfile::tempdir().unwrap();
    let gw = standalone(dir.path(), &both);
    let client = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = post_chat(&client, &gw, "/chat").await;
        assert_eq!(r.json()["mock"], "m", "the upstream's own body");
        statuses.push(r.status);
    }
    assert_eq!(mock.count("/status/503"), 2);
    assert_eq!(mock.count("/status/502"), 2);
    // Each request got the answer of the arm it tried last.
    let lines = log_lines(dir.path(), 2);
    for (line, status) in lines.iter().zip(&statuses) {
        let (served, from) = (line["arm"].as_str().unwrap(), &line["fallback_from"]);
        let want = if served == "a" { 503 } else { 502 };
        assert_eq!(*status, want, "{line}");
        assert_ne!(from.as_str(), Some(served), "{line}");
        assert!(from.is_string(), "{line}");
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [502, 503]);

    // A budget shorter than the first answer: no second try.
    let slow = sim(UpstreamConfig {
        name: "slow".into(),
        latency: Duration::from_millis(300),
        fault: split_sim::upstream::FaultPlan {
            rate: 1.0,
            status: 503,
            seed: 0,
        },
        ..UpstreamConfig::default()
    });
    let spare = sim(UpstreamConfig {
        name: "spare".into(),
        ..UpstreamConfig::default()
    });
    let doc = json!({"routes": [{"id": "budget", "uri": "/v1/chat/completions",
    "plugins": {"traffic-split": {"fallback": {"budget_ms": 100, "max_retries": 1}, "rules": [{"weighted_upstreams": [
        {"upstream": node_of(slow.addr()), "weight": 1, "name": "a"},
        {"upstream": node_of(spare.addr()), "weight": 1, "name": "b"}
    ]}]}}}]});
    let dir = tempfile::tempdir().unwrap();
    let gw = standalone(dir.path(), &doc);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = post_chat(&client, &gw, "/v1/chat/completions").await;
        statuses.push(r.status);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 503],
        "the slow arm's 503 came after the budget"
    );
    assert_eq!(slow.stats().requests, 1);
    assert_eq!(spare.stats().requests, 1);
}
