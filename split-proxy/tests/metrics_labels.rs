//! The `prometheus` plugin (toggle and `prefer_name`), consumer labels, and the sample
//! ratio mismatch gauge `split_srm_p_value{route,rule}` against the real binary.

mod common;

use std::time::Duration;

use common::gateway::{sample, start, Gateway};
use common::{Client, Mock};
use http::Method;
use serde_json::{json, Value};

/// A route whose rule sends a sticky `x-user` to one of two arms, weights `wa:wb`.
fn sticky_route(id: &str, a: &Mock, b: &Mock, wa: u32, wb: u32) -> Value {
    json!({
        "id": id,
        "uri": format!("/{id}"),
        "plugins": {"traffic-split": {"rules": [{
            "balancer": {"algorithm": "chash", "hash_on": "header", "key": "x-user"},
            "weighted_upstreams": [
                {"name": "a", "weight": wa, "upstream": {"nodes": {a.node(): 1}}},
                {"name": "b", "weight": wb, "upstream": {"nodes": {b.node(): 1}}}
            ]
        }]}}
    })
}

fn write(path: &std::path::Path, routes: Vec<Value>) {
    // Write to a temp file and rename, so the poller never reads half a document.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json!({ "routes": routes }).to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn get(client: &Client, gw: &Gateway, path: &str, user: &str) -> u16 {
    client
        .send(Method::GET, &gw.url(path), &[("x-user", user)], "")
        .await
        .status
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.max(1e-12))
}

async fn wait_metric(gw: &Gateway, prefix: &str, want: impl Fn(Option<f64>) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = gw.metrics_text().await;
        if want(sample(&text, prefix)) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srm_gauge_resets_on_weight_change_only() {
    let (a, b) = (Mock::http("a"), Mock::http("b"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.json");
    write(&file, vec![sticky_route("srm", &a, &b, 1, 1)]);
    let gw = start(dir.path(), &["--standalone", file.to_str().unwrap()]);
    let client = Client::new();
    let gauge = r#"split_srm_p_value{route="srm",rule="0"}"#;

    let text = gw.metrics_text().await;
    assert_eq!(
        sample(&text, gauge),
        Some(1.0),
        "no traffic yet: no mismatch\n{text}"
    );
    for _ in 0..10 {
        assert_eq!(get(&client, &gw, "/srm", "alice").await, 200);
    }
    // One sticky user: 10/0 against 1:1 → χ² = 10, p = erfc(√5).
    let text = gw.metrics_text().await;
    assert!(
        close(sample(&text, gauge), 0.001_565_402_258_002_548_8),
        "{text}"
    );

    // An unrelated edit (another route) keeps the counts.
    write(
        &file,
        vec![
            sticky_route("srm", &a, &b, 1, 1),
            sticky_route("other", &a, &b, 1, 1),
        ],
    );
    let other = r#"split_srm_p_value{route="other",rule="0"}"#;
    let text = wait_metric(&gw, other, |v| v.is_some()).await;
    assert_eq!(sample(&text, other), Some(1.0), "{text}");
    assert!(
        close(sample(&text, gauge), 0.001_565_402_258_002_548_8),
        "{text}"
    );

    // A weight change starts over.
    write(
        &file,
        vec![
            sticky_route("srm", &a, &b, 3, 1),
            sticky_route("other", &a, &b, 1, 1),
        ],
    );
    let text = wait_metric(&gw, gauge, |v| v == Some(1.0)).await;
    assert_eq!(sample(&text, gauge), Some(1.0), "{text}");
    let arm_a = r#"split_arm_requests_total{route="srm",rule="0",arm="a"}"#;
    let a_before = sample(&text, arm_a).unwrap_or(0.0);
    for _ in 0..4 {
        assert_eq!(get(&client, &gw, "/srm", "alice").await, 200);
    }
    let text = gw.metrics_text().await;
    // The sticky hash over the new weights may move alice to either arm; what counts
    // is where her 4 new requests went.
    let to_a = sample(&text, arm_a).unwrap_or(0.0) - a_before;
    // 4/0 against 3:1 → χ² = 4/3, p = erfc(√(2/3)); 0/4 → χ² = 12, p = erfc(√6).
    let want = match to_a {
        4.0 => 0.248_213_078_989_923_62,
        0.0 => 0.000_532_005_505_139_250_3,
        other => panic!("a sticky user split her requests ({other} of 4 on a)\n{text}"),
    };
    assert!(close(sample(&text, gauge), want), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_plugin_toggles_apisix_metrics_and_prefers_names() {
    let mock = Mock::http("llm");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.json");
    let up = json!({"nodes": {mock.node(): 1}});
    std::fs::write(
        &file,
        json!({
            "routes": [
                {"id": "r-named", "name": "chat", "uri": "/named", "upstream": up,
                 "plugins": {"prometheus": {"prefer_name": true},
                             "traffic-split": {"rules": [{"weighted_upstreams": [{"weight": 1}]}]}}},
                {"id": "r-plain", "uri": "/plain", "upstream": up,
                 "plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [{"weight": 1}]}]}}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let gw = start(dir.path(), &["--standalone", file.to_str().unwrap()]);
    let client = Client::new();
    for path in ["/named", "/plain"] {
        let body = r#"{"model":"gpt-4","messages":[]}"#;
        let r = client
            .send(
                Method::POST,
                &gw.url(path),
                &[("content-type", "application/json")],
                body,
            )
            .await;
        assert_eq!(r.status, 200);
    }
    // The body's end records the request; give the recorder a moment.
    let text = wait_metric(
        &gw,
        r#"split_arm_requests_total{route="r-plain",rule="0",arm="0"}"#,
        |v| v == Some(1.0),
    )
    .await;
    let node = mock.addr.ip().to_string();
    // With the plugin: APISIX metrics, labelled by name.
    let status = format!(
        r#"apisix_http_status{{code="200",route="chat",matched_uri="/named",matched_host="",service="",consumer="",node="{node}"}}"#
    );
    assert_eq!(sample(&text, &status), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"split_arm_requests_total{route="chat",rule="0",arm="0"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"split_srm_p_value{route="chat",rule="0"}"#),
        Some(1.0)
    );
    // Without it: split's own accounting only (as APISIX, no apisix_* series).
    assert!(!text.contains(r#"route="r-plain",matched_uri"#), "{text}");
    assert!(!text.contains(r#"apisix_http_latency_count{type="request",route="r-plain""#));
    assert_eq!(
        sample(
            &text,
            r#"split_arm_requests_total{route="r-plain",rule="0",arm="0"}"#
        ),
        Some(1.0)
    );
    // Token counters carry the consumer label (empty without key-auth).
    assert!(
        text.contains(r#"split_llm_tokens_total{type="completion",route="r-plain",arm="0",consumer="",model="gpt-4"}"#),
        "{text}"
    );
}
