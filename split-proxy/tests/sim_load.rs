//! `split-sim load` (the guide's "send 100 test requests" step) against the real
//! gateway in front of `split-sim upstream`: exactly 50/50, read from the gateway's own
//! metrics, and confirmed by which mock path answered.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::gateway::start;
use serde_json::json;
use split_sim::load::{run_load, LoadConfig, Tolerance};
use split_sim::upstream::{spawn, UpstreamConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_load_sees_an_exact_50_50_split_through_the_gateway() {
    let mock = spawn(UpstreamConfig::default()).expect("mock upstream");
    let node = mock.addr().to_string();
    let up = json!({"type": "roundrobin", "nodes": {node: 1}});
    let doc = json!({"routes": [{
        "id": "aimlapi-split",
        "uri": "/chat/completions",
        "upstream": up,
        "plugins": {"traffic-split": {"rules": [
            {"weight": 50, "upstream": up, "rewrite": {"uri": "/v1/chat/completions"}},
            {"weight": 50, "upstream": up, "rewrite": {"uri": "/v2/chat/completions"}}
        ]}}
    }]});
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("apisix.json");
    std::fs::write(&file, doc.to_string()).expect("write config");
    let gw = start(
        dir.path(),
        &["--standalone", file.to_str().expect("utf-8 path")],
    );

    let cfg = LoadConfig {
        url: gw.url("/chat/completions"),
        method: http::Method::POST,
        body: Bytes::from_static(
            br#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#,
        ),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        requests: 100,
        concurrency: 8,
        timeout: Duration::from_secs(10),
        duration: Duration::from_secs(60),
        metrics_url: Some(format!("http://{}/apisix/prometheus/metrics", gw.metrics)),
        route: Some("aimlapi-split".to_owned()),
        expect: Some(vec![50, 50]),
        tolerance: Tolerance::Requests(0.0),
        ca_pem: None,
    };
    let report = run_load(&cfg).await.expect("load runs");

    assert_eq!(report.responses, 100, "every request answered: {report:?}");
    assert_eq!(report.statuses.get("200"), Some(&100));
    let accuracy = report.accuracy.expect("accuracy computed");
    assert_eq!(accuracy.source, "metrics");
    let hits: Vec<u64> = accuracy.arms.iter().map(|a| a.hits).collect();
    assert_eq!(hits, vec![50, 50]);
    assert!(accuracy.pass);
    let stats = mock.stats();
    assert_eq!(stats.paths.get("/v1/chat/completions"), Some(&50));
    assert_eq!(stats.paths.get("/v2/chat/completions"), Some(&50));
}
