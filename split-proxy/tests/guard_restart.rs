//! A tripped canary stays tripped across a restart: the gateway persists guard trips in
//! its data dir, and a new process on the same data dir keeps the canary at weight 0,
//! shows the trip (with its original `since`) and exports `split_guard_tripped` until an
//! operator clears it.

mod common;

use std::time::Duration;

use common::gateway::{sample, start, Gateway};
use common::{wait_until, Client};
use http::Method;
use serde_json::{json, Value};
use split_sim::upstream::{spawn, FaultPlan, RunningUpstream, UpstreamConfig};

const JSON: (&str, &str) = ("content-type", "application/json");
const CHAT: &str = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;
const TRIPPED: &str = r#"split_guard_tripped{route="g",rule="0",arm="canary"}"#;

fn mock(name: &str, fail_rate: f64) -> RunningUpstream {
    spawn(UpstreamConfig {
        name: name.to_owned(),
        fault: FaultPlan {
            rate: fail_rate,
            status: 503,
            seed: 1,
        },
        ..UpstreamConfig::default()
    })
    .expect("mock upstream")
}

/// Starts a gateway on the data dir `dir/data` (embedded store), with an access log.
fn gateway(dir: &std::path::Path, key: &str) -> Gateway {
    let config = common::gateway::write_admin_config(dir, key);
    let log = dir.join("access.log");
    start(
        dir,
        &[
            "-c",
            &config,
            "--access-log",
            log.to_str().expect("utf-8 path"),
        ],
    )
}

/// Route `g`: a guarded 3:1 split between `stable` and `canary` (trips at an error
/// rate over 0.5 after 3 requests).
fn guarded_route(stable: &RunningUpstream, canary: &RunningUpstream) -> Value {
    json!({
        "uri": "/v1/chat/completions",
        "plugins": {"traffic-split": {"rules": [{
            "guard": {"max_error_rate": 0.5, "min_requests": 3, "window": 60},
            "weighted_upstreams": [
                {"name": "stable", "weight": 3,
                 "upstream": {"nodes": {stable.addr().to_string(): 1}}},
                {"name": "canary", "weight": 1,
                 "upstream": {"nodes": {canary.addr().to_string(): 1}}}
            ]
        }]}}
    })
}

/// The new process logged that it restored a trip.
fn assert_restored(gw: &Gateway) {
    assert!(
        gw.stderr().contains("canary guardrail trip restored"),
        "{}",
        gw.stderr()
    );
}

fn logged(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("access.log"))
        .map(|t| t.matches('\n').count())
        .unwrap_or(0)
}

/// Sends `n` chat requests one by one, each settled (logged) before the next.
async fn send(client: &Client, gw: &Gateway, n: usize) {
    for _ in 0..n {
        let before = logged(&gw.dir);
        client
            .send(Method::POST, &gw.url("/v1/chat/completions"), &[JSON], CHAT)
            .await;
        assert!(
            wait_until(Duration::from_secs(10), || logged(&gw.dir) > before),
            "request not logged"
        );
    }
}

async fn guard_view(client: &Client, gw: &Gateway, key: &str) -> Value {
    let admin = gw.admin.expect("admin listener");
    let r = client
        .send(
            Method::GET,
            &format!("http://{admin}/apisix/admin/routes/g/guard"),
            &[("x-api-key", key)],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tripped_canary_stays_tripped_after_a_restart_until_cleared() {
    let stable = mock("stable", 0.0);
    let canary = mock("canary", 1.0);
    let key = "r".repeat(40);
    let dir = tempfile::tempdir().expect("tempdir");
    let client = Client::new();
    let gw = gateway(dir.path(), &key);
    let admin = gw.admin.expect("admin listener");
    let route = guarded_route(&stable, &canary);
    let put = client
        .send(
            Method::PUT,
            &format!("http://{admin}/apisix/admin/routes/g"),
            &[("x-api-key", key.as_str()), JSON],
            route.to_string(),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text());

    // 3:1 → the canary gets 3 of the first 12 requests, all 503: tripped.
    send(&client, &gw, 12).await;
    assert_eq!(canary.stats().requests, 3);
    let view = guard_view(&client, &gw, &key).await;
    assert_eq!(view["tripped"][0]["arm"], "canary", "{view}");
    let since = view["tripped"][0]["since"].clone();
    assert!(since.as_u64().is_some_and(|s| s > 0), "{view}");
    let file = dir.path().join("data").join("guard-trips.json");
    assert!(file.exists(), "trip persisted in the data dir");

    // Kill (no graceful shutdown) and start again on the same data dir.
    drop(gw);
    let gw = gateway(dir.path(), &key);
    assert_restored(&gw);
    let view = guard_view(&client, &gw, &key).await;
    assert_eq!(view["tripped"][0]["arm"], "canary", "{view}");
    assert_eq!(view["tripped"][0]["since"], since, "original trip time");
    assert!(view["tripped"][0]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("error rate")));
    let text = gw.metrics_text().await;
    assert_eq!(sample(&text, TRIPPED), Some(1.0), "{text}");
    send(&client, &gw, 16).await;
    assert_eq!(
        canary.stats().requests,
        3,
        "a tripped canary gets no traffic after a restart"
    );
    assert_eq!(stable.stats().requests, 9 + 16);

    // Cleared by the operator: the canary gets its share again, and stays cleared after
    // another restart.
    let cleared = client
        .send(
            Method::DELETE,
            &format!("http://{}/apisix/admin/routes/g/guard", gw.admin.unwrap()),
            &[("x-api-key", key.as_str())],
            "",
        )
        .await;
    assert_eq!(cleared.status, 200);
    assert_eq!(cleared.json()["cleared"][0]["arm"], "canary");
    let text = gw.metrics_text().await;
    assert_eq!(sample(&text, TRIPPED), Some(0.0), "{text}");
    drop(gw);
    let gw = gateway(dir.path(), &key);
    assert_eq!(guard_view(&client, &gw, &key).await["tripped"], json!([]));
    let text = gw.metrics_text().await;
    assert_eq!(sample(&text, TRIPPED), None, "{text}");
    send(&client, &gw, 8).await;
    assert_eq!(canary.stats().requests, 3 + 2, "2 of 8 after clearing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_gateway_keeps_its_trips_in_the_data_dir() {
    let stable = mock("stable", 0.0);
    let canary = mock("canary", 1.0);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("apisix.json");
    let mut route = guarded_route(&stable, &canary);
    route["id"] = json!("g");
    let doc = json!({ "routes": [route] });
    std::fs::write(&file, doc.to_string()).expect("write apisix.json");
    let log = dir.path().join("access.log");
    let args = [
        "--standalone",
        file.to_str().expect("utf-8 path"),
        "--access-log",
        log.to_str().expect("utf-8 path"),
    ];
    let client = Client::new();
    let gw = start(dir.path(), &args);
    send(&client, &gw, 12).await;
    assert_eq!(canary.stats().requests, 3, "3:1 over 12, all 503: tripped");
    let text = gw.metrics_text().await;
    assert_eq!(sample(&text, TRIPPED), Some(1.0), "{text}");

    drop(gw);
    let gw = start(dir.path(), &args);
    assert_restored(&gw);
    let text = gw.metrics_text().await;
    assert_eq!(sample(&text, TRIPPED), Some(1.0), "{text}");
    send(&client, &gw, 8).await;
    assert_eq!(
        canary.stats().requests,
        3,
        "the restored trip keeps the canary at 0"
    );
    assert_eq!(stable.stats().requests, 9 + 8);
}
