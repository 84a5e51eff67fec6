//! Token accounting, token budgets and the canary guardrail, end to end: the real
//! `split-proxy` binary in front of `split-sim upstream` mocks.

mod common;

use std::path::Path;
use std::time::Duration;

use common::gateway::{start, Gateway};
use common::{wait_until, Client};
use http::Method;
use serde_json::{json, Value};
use split_sim::upstream::{spawn, FaultPlan, RunningUpstream, UpstreamConfig};

const JSON: (&str, &str) = ("content-type", "application/json");

fn mock(name: &str, fail_rate: f64) -> RunningUpstream {
    spawn(UpstreamConfig {
        name: name.to_owned(),
        chunk_interval: Duration::from_millis(5),
        fault: FaultPlan {
            rate: fail_rate,
            status: 503,
            seed: 1,
        },
        ..UpstreamConfig::default()
    })
    .expect("mock upstream")
}

fn upstream(mock: &RunningUpstream) -> Value {
    json!({"type": "roundrobin", "nodes": {mock.addr().to_string(): 1}})
}

/// Starts a gateway serving the standalone JSON document `doc`, with an access log.
fn standalone(dir: &Path, doc: &Value) -> Gateway {
    let file = dir.join("apisix.json");
    std::fs::write(&file, doc.to_string()).expect("write config");
    let log = dir.join("access.log");
    start(
        dir,
        &[
            "--standalone",
            file.to_str().expect("utf-8 path"),
            "--access-log",
            log.to_str().expect("utf-8 path"),
        ],
    )
}

/// The complete lines of the access log (a line still being written is left out).
fn access_log(gw: &Gateway) -> Vec<Value> {
    let text = std::fs::read_to_string(gw.dir.join("access.log")).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect()
}

/// Waits until the access log has `n` lines (the request is settled when its line is
/// written: tokens charged, guard told).
fn wait_logged(gw: &Gateway, n: usize) {
    assert!(
        wait_until(Duration::from_secs(10), || access_log(gw).len() >= n),
        "expected {n} access log lines, got {:?}",
        access_log(gw)
    );
}

/// Sum of the samples of `name` whose labels include every `(label, value)` of `want`.
fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let ok = want
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.trim().parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// The usage a client saw: the JSON body's, or the last SSE chunk's with usage.
fn usage_seen(body: &str) -> Option<(u64, u64)> {
    let pick = |v: &Value| {
        let u = v.get("usage")?;
        Some((
            u["prompt_tokens"].as_u64()?,
            u["completion_tokens"].as_u64()?,
        ))
    };
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return pick(&v);
    }
    body.lines()
        .rev()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| pick(&v))
}

fn chat(stream: bool) -> String {
    json!({"model": "gpt-4", "stream": stream,
           "messages": [{"role": "user", "content": "ping pong one two"}]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_per_arm_and_consumer_from_json_and_sse() {
    let up = mock("llm", 0.0);
    let doc = json!({
        "consumers": [
            {"username": "alice", "plugins": {"key-auth": {"key": "alice-key"}}},
            {"username": "bob", "plugins": {"key-auth": {"key": "bob-key"}}}
        ],
        "routes": [{
            "id": "llm",
            "uri": "/v1/chat/completions",
            "plugins": {
                "key-auth": {},
                "traffic-split": {"rules": [{"weighted_upstreams": [
                    {"name": "a", "weight": 1, "upstream": upstream(&up),
                     "llm": {"include_usage": true},
                     "rewrite": {"body": {"model": "model-a"}}},
                    {"name": "b", "weight": 1, "upstream": upstream(&up),
                     "rewrite": {"body": {"model": "model-b"}}}
                ]}]}
            }
        }]
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = standalone(dir.path(), &doc);
    let client = Client::new();
    let url = gw.url("/v1/chat/completions");

    // (consumer, arm) -> (prompt, completion) the client saw; arms alternate a, b.
    let mut seen: std::collections::BTreeMap<(&str, &str), (u64, u64)> = Default::default();
    let mut streams_with_usage = std::collections::BTreeMap::new();
    let plan = [("alice", false), ("bob", true)];
    let mut n = 0;
    for (consumer, stream) in plan {
        for i in 0..4 {
            let key = format!("{consumer}-key");
            let reply = client
                .send(Method::POST, &url, &[JSON, ("apikey", &key)], chat(stream))
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            n += 1;
            wait_logged(&gw, n);
            let arm = if i % 2 == 0 { "a" } else { "b" };
            let text = reply.text();
            // The mock echoes the model it got: the arm's rewrite.
            assert!(
                text.contains(&format!("\"model\":\"model-{arm}\"")),
                "{text}"
            );
            if let Some((p, c)) = usage_seen(&text) {
                let e = seen.entry((consumer, arm)).or_default();
                e.0 += p;
                e.1 += c;
            }
            if stream {
                *streams_with_usage.entry(arm).or_insert(0) +=
                    usize::from(usage_seen(&text).is_some());
            }
        }
    }
    // include_usage is injected for arm a only: only its streams carry usage.
    assert_eq!(streams_with_usage.get("a"), Some(&2));
    assert_eq!(streams_with_usage.get("b"), Some(&0));

    let metrics = gw.metrics_text().await;
    for consumer in ["alice", "bob"] {
        for arm in ["a", "b"] {
            let (p, c) = seen.get(&(consumer, arm)).copied().unwrap_or_default();
            let labels = |t| {
                [
                    ("route", "llm"),
                    ("arm", arm),
                    ("consumer", consumer),
                    ("type", t),
                ]
            };
            let name = "split_llm_tokens_total";
            assert_eq!(
                metric_sum(&metrics, name, &labels("prompt")),
                p as f64,
                "{consumer}/{arm}\n{metrics}"
            );
            assert_eq!(
                metric_sum(&metrics, name, &labels("completion")),
                c as f64,
                "{consumer}/{arm}"
            );
        }
    }
    assert!(seen[&("alice", "a")].0 > 0 && seen[&("bob", "a")].1 > 0);
    assert!(!seen.contains_key(&("bob", "b")));

    // TTFT for every stream (2 per arm); speed for every reply with completion tokens.
    let ttft = "split_llm_time_to_first_token_seconds_count";
    let tps = "split_llm_tokens_per_second_count";
    for (arm, streams, with_tokens) in [("a", 2.0, 4.0), ("b", 2.0, 2.0)] {
        let labels = [("route", "llm"), ("arm", arm)];
        assert_eq!(metric_sum(&metrics, ttft, &labels), streams, "{metrics}");
        assert_eq!(metric_sum(&metrics, tps, &labels), with_tokens, "{metrics}");
    }

    // Access log: model, tokens, and ttft_ms for streams only.
    let lines = access_log(&gw);
    assert_eq!(lines.len(), 8);
    for (i, line) in lines.iter().enumerate() {
        let stream = i >= 4;
        assert_eq!(line["model"], "gpt-4", "{line}");
        assert_eq!(line["ttft_ms"].is_number(), stream, "{line}");
        let has_usage = !stream || line["arm"] == "a";
        assert_eq!(line["prompt_tokens"].is_u64(), has_usage, "{line}");
        assert_eq!(line["completion_tokens"].is_u64(), has_usage, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_budget_refuses_once_exhausted_with_headers() {
    let up = mock("budget", 0.0);
    // What one request costs (the mock's usage is deterministic).
    let client = Client::new();
    let direct = client
        .send(
            Method::POST,
            &format!("{}/v1/chat/completions", up.url()),
            &[JSON],
            chat(false),
        )
        .await;
    let total = direct.json()["usage"]["total_tokens"]
        .as_u64()
        .expect("usage");
    let doc = json!({"routes": [{
        "id": "b",
        "uri": "/v1/chat/completions",
        "upstream": upstream(&up),
        "plugins": {
            "ai-rate-limiting": {
                "limit": total + 1, "time_window": 60,
                "instances": [{"name": "0", "limit": 1_000_000, "time_window": 60}],
                "rejected_msg": "token budget exhausted"
            },
            "traffic-split": {"rules": [{"weighted_upstreams": [{"weight": 1}]}]}
        }
    }]});
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = standalone(dir.path(), &doc);
    let url = gw.url("/v1/chat/completions");
    let header = |r: &common::Reply, name: &str| -> Option<u64> {
        r.headers.get(name)?.to_str().ok()?.parse().ok()
    };

    let first = client.send(Method::POST, &url, &[JSON], chat(false)).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        header(&first, "x-ai-ratelimit-limit-route"),
        Some(total + 1)
    );
    assert_eq!(
        header(&first, "x-ai-ratelimit-remaining-route"),
        Some(total + 1)
    );
    let reset = header(&first, "x-ai-ratelimit-reset-route").expect("reset header");
    assert!((1..=60).contains(&reset), "{reset}");
    assert_eq!(header(&first, "x-ai-ratelimit-limit-0"), Some(1_000_000));
    wait_logged(&gw, 1);

    // One token left: the request that crosses the budget still succeeds.
    let second = client.send(Method::POST, &url, &[JSON], chat(false)).await;
    assert_eq!(second.status, 200);
    assert_eq!(header(&second, "x-ai-ratelimit-remaining-route"), Some(1));
    assert_eq!(
        header(&second, "x-ai-ratelimit-remaining-0"),
        Some(1_000_000 - total)
    );
    wait_logged(&gw, 2);

    let third = client.send(Method::POST, &url, &[JSON], chat(false)).await;
    assert_eq!(third.status, 429, "{}", third.text());
    assert_eq!(third.json()["error_msg"], "token budget exhausted");
    assert_eq!(header(&third, "x-ai-ratelimit-remaining-route"), Some(0));
    assert_eq!(
        up.stats().requests,
        3,
        "the refused request never reached the upstream"
    );
}

fn admin_config(key: &str) -> String {
    common::gateway::admin_yaml(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_trips_the_canary_until_an_operator_clears_it() {
    let stable = mock("stable", 0.0);
    let canary = mock("canary", 1.0);
    let key = "k".repeat(40);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, admin_config(&key)).expect("write config");
    let log = dir.path().join("access.log");
    let gw = start(
        dir.path(),
        &[
            "-c",
            config.to_str().unwrap(),
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    let client = Client::new();
    let admin = format!("http://{}/apisix/admin", gw.admin.expect("admin listener"));
    let auth = [("x-api-key", key.as_str()), JSON];
    let route = |desc: &str| {
        json!({
            "uri": "/v1/chat/completions",
            "desc": desc,
            "plugins": {"traffic-split": {"rules": [{
                "guard": {"max_error_rate": 0.5, "min_requests": 3, "window": 60},
                "weighted_upstreams": [
                    {"name": "stable", "weight": 3, "upstream": upstream(&stable)},
                    {"name": "canary", "weight": 1, "upstream": upstream(&canary)}
                ]
            }]}}
        })
        .to_string()
    };
    let put = client
        .send(
            Method::PUT,
            &format!("{admin}/routes/g"),
            &auth,
            route("v1"),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    let url = gw.url("/v1/chat/completions");

    // 3:1 → the canary gets 3 of the first 12 requests, all 503: tripped.
    let mut n = 0;
    for _ in 0..12 {
        client.send(Method::POST, &url, &[JSON], chat(false)).await;
        n += 1;
        wait_logged(&gw, n);
    }
    assert_eq!(canary.stats().requests, 3);
    let metrics = gw.metrics_text().await;
    assert_eq!(
        metric_sum(
            &metrics,
            "split_guard_tripped",
            &[("route", "g"), ("rule", "0"), ("arm", "canary")]
        ),
        1.0,
        "{metrics}"
    );
    assert!(
        gw.stderr().contains("canary guardrail tripped"),
        "{}",
        gw.stderr()
    );
    let view = client
        .send(Method::GET, &format!("{admin}/routes/g/guard"), &auth, "")
        .await;
    assert_eq!(view.status, 200);
    let view = view.json();
    assert_eq!(view["tripped"][0]["arm"], "canary", "{view}");
    assert!(view["tripped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("error rate"));
    // The guard view needs the admin key.
    let anon = client
        .send(Method::GET, &format!("{admin}/routes/g/guard"), &[], "")
        .await;
    assert_eq!(anon.status, 401);

    // An edit that keeps the rule keeps the override; everything goes to stable.
    let put = client
        .send(
            Method::PUT,
            &format!("{admin}/routes/g"),
            &auth,
            route("v2"),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    for _ in 0..8 {
        let r = client.send(Method::POST, &url, &[JSON], chat(false)).await;
        assert_eq!(r.status, 200);
        n += 1;
        wait_logged(&gw, n);
    }
    assert_eq!(
        canary.stats().requests,
        3,
        "a tripped canary gets no traffic"
    );

    // Cleared by the operator: the canary gets its share again.
    let cleared = client
        .send(
            Method::DELETE,
            &format!("{admin}/routes/g/guard"),
            &auth,
            "",
        )
        .await;
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.json()["cleared"][0]["arm"], "canary");
    let metrics = gw.metrics_text().await;
    assert_eq!(
        metric_sum(
            &metrics,
            "split_guard_tripped",
            &[("route", "g"), ("arm", "canary")]
        ),
        0.0
    );
    for _ in 0..8 {
        client.send(Method::POST, &url, &[JSON], chat(false)).await;
        n += 1;
        wait_logged(&gw, n);
    }
    assert_eq!(canary.stats().requests, 5, "2 of 8 after clearing");
    let view = client
        .send(Method::GET, &format!("{admin}/routes/g/guard"), &auth, "")
        .await;
    assert_eq!(view.json()["tripped"], json!([]));
}
