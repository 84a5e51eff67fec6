//! The `opentelemetry` plugin against the real binary and a local OTLP/HTTP receiver
//! that decodes `ExportTraceServiceRequest` protobufs: spans carry route, split rule,
//! arm, upstream, status and LLM attributes; `traceparent` is accepted and propagated;
//! an always-off sampler exports nothing; a dead collector never slows requests.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gateway::{sample, start, Gateway};
use common::server::{respond, TestServer};
use common::{Client, Mock};
use http::Method;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;

/// A local OTLP/HTTP receiver on 127.0.0.1:0.
struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    _server: TestServer,
}

impl Receiver {
    fn start() -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&requests);
        let server = TestServer::start(move |req| {
            let store = Arc::clone(&store);
            Box::pin(async move {
                let ok = req.uri().path() == "/v1/traces"
                    && req.headers()["content-type"] == "application/x-protobuf";
                let body = req.into_body().collect().await.map(|b| b.to_bytes());
                let decoded = body
                    .ok()
                    .and_then(|b| ExportTraceServiceRequest::decode(b).ok());
                match (ok, decoded) {
                    (true, Some(request)) => {
                        store.lock().unwrap().push(request);
                        respond(200, b"")
                    }
                    _ => respond(400, b""),
                }
            })
        });
        Receiver {
            addr: server.addr,
            requests,
            _server: server,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    /// Waits up to 10 s for at least `n` spans.
    fn wait_spans(&self, n: usize) -> Vec<Span> {
        common::wait_until(Duration::from_secs(10), || self.spans().len() >= n);
        self.spans()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue::StringValue(s.to_owned()))
}

/// Starts the gateway with a collector at `collector` and the traced/untraced routes.
fn gateway(collector: SocketAddr, mock: &Mock) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "plugin_attr:\n  opentelemetry:\n    collector:\n      address: {collector}\n      request_timeout: 1\n    batch_span_processor:\n      batch_timeout: 0.1\n      max_export_batch_size: 4\n    resource:\n      service.name: split-test\n"
        ),
    )
    .unwrap();
    let up = json!({"nodes": {mock.node(): 1}});
    let split = json!({"rules": [{"weighted_upstreams": [{"name": "main", "weight": 1}]}]});
    let routes = json!({"routes": [
        {"id": "traced", "uri": "/traced", "upstream": up, "plugins": {
            "opentelemetry": {"sampler": {"name": "always_on"}, "additional_attributes": ["http_x_user"]},
            "traffic-split": split
        }},
        {"id": "untraced", "uri": "/untraced", "upstream": up, "plugins": {
            "opentelemetry": {"sampler": {"name": "always_off"}}
        }}
    ]});
    let file = dir.path().join("apisix.json");
    std::fs::write(&file, routes.to_string()).unwrap();
    let gw = start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--standalone",
            file.to_str().unwrap(),
        ],
    );
    (gw, dir)
}

/// The `traceparent` the upstream received on its last request to `path`.
fn upstream_traceparent(mock: &Mock, path: &str) -> (String, String, String) {
    let hit = mock
        .hits()
        .into_iter()
        .rev()
        .find(|h| h.uri.starts_with(path))
        .expect("upstream hit");
    let tp = hit.headers["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[0], "00");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_carry_split_and_llm_attributes_and_traceparent_propagates() {
    let receiver = Receiver::start();
    let mock = Mock::http("llm");
    let (gw, _dir) = gateway(receiver.addr, &mock);
    let client = Client::new();

    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = r#"{"model":"gpt-4","messages":[{"role":"user","content":"hi"}]}"#;
    let wall_ns = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    };
    let sent_ns = wall_ns();
    let r = client
        .send(
            Method::POST,
            &gw.url("/traced"),
            &[
                ("content-type", "application/json"),
                ("traceparent", incoming),
                ("x-user", "alice"),
            ],
            body,
        )
        .await;
    let received_ns = wall_ns();
    assert_eq!(r.status, 200);
    let (trace, span, flags) = upstream_traceparent(&mock, "/traced");
    assert_eq!(
        trace, "4bf92f3577b34da6a3ce929d0e0e4736",
        "same trace upstream"
    );
    assert_ne!(span, "00f067aa0ba902b7", "a new span id upstream");
    assert_eq!(flags, "01");

    let spans = receiver.wait_spans(1);
    assert_eq!(spans.len(), 1, "{spans:?}");
    let s = &spans[0];
    assert_eq!(hex(&s.trace_id), trace);
    assert_eq!(
        hex(&s.span_id),
        span,
        "the upstream's parent is the gateway span"
    );
    assert_eq!(hex(&s.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(s.name, "POST /traced");
    assert!(s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano > 0);
    // The span lies within the client's exchange (a millisecond of slack for the
    // clocks' reads).
    let slack = 1_000_000;
    assert!(
        s.start_time_unix_nano + slack >= sent_ns && s.end_time_unix_nano <= received_ns + slack,
        "span {}..{}, client {sent_ns}..{received_ns}",
        s.start_time_unix_nano,
        s.end_time_unix_nano
    );
    assert_eq!(attr(s, "apisix.route_id"), text("traced"));
    assert_eq!(attr(s, "split.rule"), Some(AnyValue::IntValue(0)));
    assert_eq!(attr(s, "split.arm"), text("main"));
    assert_eq!(attr(s, "split.upstream"), text(&mock.node()));
    assert_eq!(attr(s, "http.status_code"), Some(AnyValue::IntValue(200)));
    assert_eq!(attr(s, "gen_ai.request.model"), text("gpt-4"));
    assert_eq!(
        attr(s, "gen_ai.usage.input_tokens"),
        Some(AnyValue::IntValue(5))
    );
    assert_eq!(
        attr(s, "gen_ai.usage.output_tokens"),
        Some(AnyValue::IntValue(7))
    );
    assert_eq!(attr(s, "http_x_user"), text("alice"));
    let requests = receiver.requests.lock().unwrap().clone();
    let resource = requests[0].resource_spans[0].resource.clone().unwrap();
    assert!(resource.attributes.iter().any(|kv| kv.key == "service.name"
        && kv.value.as_ref().and_then(|v| v.value.clone()) == text("split-test")));

    // No traceparent: a new trace starts, sampled, and is propagated.
    let r = client.get(&gw.url("/traced")).await;
    assert_eq!(r.status, 200);
    let (trace2, span2, flags2) = upstream_traceparent(&mock, "/traced");
    assert_ne!(trace2, trace);
    assert_eq!((trace2.len(), span2.len(), flags2.as_str()), (32, 16, "01"));
    let spans = receiver.wait_spans(2);
    let s = spans
        .iter()
        .find(|s| hex(&s.trace_id) == trace2)
        .expect("second span");
    assert!(s.parent_span_id.is_empty());
    assert_eq!(hex(&s.span_id), span2);
    assert_eq!(attr(s, "http.status_code"), Some(AnyValue::IntValue(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_off_exports_nothing_but_still_propagates() {
    let receiver = Receiver::start();
    let mock = Mock::http("llm");
    let (gw, _dir) = gateway(receiver.addr, &mock);
    let client = Client::new();
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for _ in 0..5 {
        let r = client
            .send(
                Method::GET,
                &gw.url("/untraced"),
                &[("traceparent", incoming)],
                "",
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let (trace, span, flags) = upstream_traceparent(&mock, "/untraced");
    assert_eq!(trace, "0af7651916cd43dd8448eb211c80319c");
    assert_ne!(span, "b7ad6b7169203331");
    assert_eq!(flags, "00", "not sampled here");
    // A sampled request afterwards is the only span that ever arrives.
    let r = client.get(&gw.url("/traced")).await;
    assert_eq!(r.status, 200);
    let spans = receiver.wait_spans(1);
    std::thread::sleep(Duration::from_millis(500));
    let spans_later = receiver.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans_later.len(), 1, "{spans_later:?}");
    assert_eq!(attr(&spans_later[0], "apisix.route_id"), text("traced"));
    let metrics = gw.metrics_text().await;
    assert_eq!(
        sample(&metrics, "split_otel_spans_exported_total"),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_never_slows_or_fails_requests() {
    // A port with nothing listening.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mock = Mock::http("llm");
    let (gw, _dir) = gateway(dead_addr, &mock);
    let client = Client::new();
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..40 {
        let t = Instant::now();
        let r = client.get(&gw.url("/traced")).await;
        assert_eq!(r.status, 200);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(900),
        "slowest request {slowest:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = gw.metrics_text().await;
        if sample(&text, "split_otel_spans_failed_total").is_some_and(|v| v >= 1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed export counted:\n{text}\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gw.stderr().contains("OTLP export failed"),
        "{}",
        gw.stderr()
    );
}
