//! The split is exact across worker threads and concurrent clients; built-in responses
//! (404, 503) and every listener carry `Server: split/<version>`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::gateway::{sample, start};
use common::{Client, Mock};
use http::Method;
use serde_json::json;

fn split_route(node: &str) -> serde_json::Value {
    let up = json!({"type": "roundrobin", "nodes": {node: 1}});
    json!({
        "routes": [
            {
                "id": "split",
                "uri": "/chat/completions",
                "upstream": up,
                "plugins": {"prometheus": {}, "traffic-split": {"rules": [
                    {"weight": 70, "upstream": up, "rewrite": {"uri": "/v1/chat/completions"}},
                    {"weight": 30, "upstream": up, "rewrite": {"uri": "/v2/chat/completions"}}
                ]}}
            },
            {
                "id": "noup",
                "uri": "/noup",
                "plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [{"weight": 1}]}]}}
            }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_is_exact_over_1000_requests_from_64_clients() {
    let mock = Mock::http("llm");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.json");
    std::fs::write(&file, split_route(&mock.node()).to_string()).unwrap();
    let gw = start(dir.path(), &["--standalone", file.to_str().unwrap()]);

    let url = gw.url("/chat/completions");
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (url, next) = (url.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let client = Client::new();
            let mut statuses = Vec::new();
            while next.fetch_add(1, Ordering::SeqCst) < 1000 {
                let body = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;
                let reply = client
                    .send(
                        Method::POST,
                        &url,
                        &[("content-type", "application/json")],
                        body,
                    )
                    .await;
                statuses.push(reply.status);
            }
            statuses
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap().into_iter().filter(|s| *s == 200).count();
    }
    assert_eq!(ok, 1000);
    assert_eq!(mock.count("/v1/chat/completions"), 700);
    assert_eq!(mock.count("/v2/chat/completions"), 300);

    let text = gw.metrics_text().await;
    let arm = |a: &str| {
        sample(
            &text,
            &format!(r#"split_arm_requests_total{{route="split",rule="0",arm="{a}"}}"#),
        )
    };
    assert_eq!(arm("0"), Some(700.0), "{text}");
    assert_eq!(arm("1"), Some(300.0), "{text}");
    let node = mock.addr.ip().to_string();
    let status = sample(
        &text,
        &format!(
            r#"apisix_http_status{{code="200",route="split",matched_uri="/chat/completions",matched_host="",service="",consumer="",node="{node}"}}"#
        ),
    );
    assert_eq!(status, Some(1000.0), "{text}");
    let latency_count = sample(
        &text,
        &format!(
            r#"apisix_http_latency_count{{type="request",route="split",service="",consumer="",node="{node}"}}"#
        ),
    );
    assert_eq!(latency_count, Some(1000.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_responses_are_json_with_server_header() {
    let mock = Mock::http("llm");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.json");
    std::fs::write(&file, split_route(&mock.node()).to_string()).unwrap();
    let gw = start(dir.path(), &["--standalone", file.to_str().unwrap()]);
    let client = Client::new();

    let r = client.get(&gw.url("/nothing/here")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), r#"{"error_msg":"404 Route Not Found"}"#);
    assert!(r.headers["server"].to_str().unwrap().starts_with("split/"));

    let r = client.get(&gw.url("/noup")).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!({"error_msg": "missing upstream configuration in Route or Service"})
    );
    assert!(r.headers["server"].to_str().unwrap().starts_with("split/"));

    // Proxied responses carry it too (replacing the upstream's).
    let r = client
        .send(Method::HEAD, &gw.url("/chat/completions"), &[], "")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.headers["server"].to_str().unwrap().starts_with("split/"));

    let r = client.get(&format!("http://{}/metrics", gw.metrics)).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["server"].to_str().unwrap().starts_with("split/"));
    assert!(r.text().contains("split_arm_requests_total"));

    // Title case on the wire for HTTP/1.1.
    let raw = common::raw_request(
        gw.proxy,
        b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
    assert!(raw.contains("\r\nServer: split/"), "{raw}");
    assert!(raw.contains("\r\nContent-Type: application/json"), "{raw}");
}
