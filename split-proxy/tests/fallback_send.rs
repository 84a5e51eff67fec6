//! Routes with `traffic-split.fallback` send each try the way the direct path sends a
//! request: the node plan skips nodes the passive health checks found unhealthy, and
//! upstream errors carry the `prometheus` plugin's route label (`prefer_name`).

mod common;

use std::time::Duration;

use common::gateway::{sample, start_standalone, Gateway};
use common::{wait_until, Client};
use http::Method;
use serde_json::json;
use split_sim::upstream::{spawn, FaultPlan, RunningUpstream, UpstreamConfig};

const CHAT: &str = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;
const JSON: (&str, &str) = ("content-type", "application/json");

/// A `split-sim` upstream answering `status` to `fail_rate` of the chat requests.
fn sim(name: &str, fail_rate: f64, status: u16) -> RunningUpstream {
    spawn(UpstreamConfig {
        name: name.to_owned(),
        fault: FaultPlan {
            rate: fail_rate,
            status,
            seed: 1,
        },
        ..UpstreamConfig::default()
    })
    .expect("split-sim upstream")
}

/// A port on 127.0.0.1 with nothing listening (bound, read, released).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Polls the metrics (max 10 s) until `line` has a value that `ok` accepts.
async fn wait_metric(gw: &Gateway, line: &str, ok: impl Fn(Option<f64>) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = gw.metrics_text().await;
        if ok(sample(&text, line)) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn chat(client: &Client, gw: &Gateway, n: usize) -> Vec<u16> {
    let mut statuses = Vec::with_capacity(n);
    for _ in 0..n {
        let r = client
            .send(Method::POST, &gw.url("/v1/chat/completions"), &[JSON], CHAT)
            .await;
        statuses.push(r.status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_checks_take_a_failing_node_out_of_a_fallback_route() {
    let good = sim("good", 0.0, 500);
    let bad = sim("bad", 1.0, 500);
    // Active probes are required: TCP probes of a closed port, rarely, far from their
    // limit. A failed probe never resets the passive HTTP failure count (a successful
    // one would, racing with the traffic); what takes `bad` out is the passive check on
    // the 500s of real traffic.
    let checks = json!({
        "active": {
            "type": "tcp",
            "port": dead_port(),
            "healthy": {"interval": 300, "successes": 1},
            "unhealthy": {"interval": 300, "tcp_failures": 254}
        },
        "passive": {"unhealthy": {"http_statuses": [500], "http_failures": 2}}
    });
    let checked = json!({
        "type": "roundrobin",
        "nodes": {good.addr().to_string(): 1, bad.addr().to_string(): 1},
        "checks": checks
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_standalone(
        dir.path(),
        &json!({"routes": [{
            "id": "fb",
            "uri": "/v1/chat/completions",
            "upstream": {"nodes": {good.addr().to_string(): 1}},
            "plugins": {"traffic-split": {
                "fallback": {"on": [429]},
                "rules": [{"weighted_upstreams": [
                    {"name": "main", "weight": 1, "upstream": checked}
                ]}]
            }}
        }]}),
    );
    let status_line = format!(
        r#"apisix_upstream_status{{name="/apisix/routes/fb#traffic-split/0/0",ip="127.0.0.1",port="{}"}}"#,
        bad.addr().port()
    );
    let text = wait_metric(&gw, &status_line, |v| v == Some(1.0)).await;
    assert_eq!(
        sample(&text, &status_line),
        Some(1.0),
        "checks tracked: {text}"
    );

    let client = Client::new();
    // Round robin: `bad` answers every other request; its second 500 trips it.
    let statuses = chat(&client, &gw, 4).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(bad.stats().requests, 2);
    let text = gw.metrics_text().await;
    assert_eq!(sample(&text, &status_line), Some(0.0), "{text}");
    // The log line reaches the test through a pipe and a reader thread.
    assert!(
        wait_until(Duration::from_secs(10), || gw
            .stderr()
            .contains("upstream node is unhealthy")),
        "{}",
        gw.stderr()
    );
    // Out of the plan: every later request goes to `good`.
    let statuses = chat(&client, &gw, 8).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        bad.stats().requests,
        2,
        "the unhealthy node gets no traffic"
    );
    assert_eq!(good.stats().requests, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_of_a_fallback_route_carry_the_prometheus_route_label() {
    let live = sim("live", 0.0, 500);
    let dead = format!("127.0.0.1:{}", dead_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = start_standalone(
        dir.path(),
        &json!({"routes": [{
            "id": "fb-id",
            "name": "chat-route",
            "uri": "/v1/chat/completions",
            "upstream": {"nodes": {live.addr().to_string(): 1}},
            "plugins": {
                "prometheus": {"prefer_name": true},
                "traffic-split": {
                    "fallback": {"max_retries": 1},
                    "rules": [{"weighted_upstreams": [
                        {"name": "dead", "weight": 1, "upstream": {"nodes": {dead.clone(): 1}}},
                        {"name": "live", "weight": 1,
                         "upstream": {"nodes": {live.addr().to_string(): 1}}}
                    ]}]
                }
            }
        }]}),
    );
    let client = Client::new();
    // Half the picks land on the dead arm; each of those moves to `live`.
    let statuses = chat(&client, &gw, 4).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(live.stats().requests, 4);
    let arm_line = r#"split_arm_requests_total{route="chat-route",rule="0",arm="live"}"#;
    let text = wait_metric(&gw, arm_line, |v| v == Some(4.0)).await;
    let named = format!(
        r#"split_upstream_errors_total{{route="chat-route",node="{dead}",kind="connect"}}"#
    );
    assert_eq!(sample(&text, &named), Some(2.0), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("split_upstream_errors_total{route=\"fb-id\"")),
        "labelled by the route name, not the id: {text}"
    );
    assert_eq!(sample(&text, arm_line), Some(4.0), "{text}");
}
