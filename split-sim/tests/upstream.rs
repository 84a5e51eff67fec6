//! The mock upstream speaks the OpenAI wire format over real sockets.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use split_sim::upstream::{self, FaultPlan, TlsSettings, UpstreamConfig};

const GUIDE_BODY: &str = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    /// Body frames with their arrival time.
    frames: Vec<(Instant, Bytes)>,
    /// Set when the body ended with an error.
    error: Option<String>,
}

impl Reply {
    fn body(&self) -> Vec<u8> {
        self.frames.iter().flat_map(|(_, b)| b.to_vec()).collect()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body()).expect("JSON body")
    }
}

async fn send(client: &split_sim::client::Client, method: &str, url: &str, body: &str) -> Reply {
    let req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("response in time")
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut frames = Vec::new();
    let mut error = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    frames.push((Instant::now(), data));
                }
            }
            Ok(Some(Err(e))) => {
                error = Some(e.to_string());
                break;
            }
            Ok(None) => break,
            Err(_) => panic!("body frame timed out"),
        }
    }
    Reply {
        status,
        headers,
        frames,
        error,
    }
}

fn client() -> split_sim::client::Client {
    split_sim::client::build(None).unwrap()
}

fn sse_events(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data: prefix").to_owned())
        .collect()
}

#[tokio::test]
async fn non_streaming_reply_has_the_openai_fields() {
    let mock = upstream::spawn(UpstreamConfig {
        name: "v1".into(),
        ..UpstreamConfig::default()
    })
    .unwrap();
    let c = client();
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/chat/completions", mock.url()),
        GUIDE_BODY,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-split-mock"], "v1");
    assert_eq!(r.headers["content-type"], "application/json");
    let j = r.json();
    assert!(j["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(j["object"], "chat.completion");
    assert!(j["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(j["model"], "gpt-4");
    assert_eq!(j["choices"][0]["index"], 0);
    assert_eq!(j["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        j["choices"][0]["message"]["content"],
        "Pong! How can I assist you today?"
    );
    assert_eq!(j["choices"][0]["finish_reason"], "stop");
    // "ping" is one word; the reply has seven.
    assert_eq!(j["usage"]["prompt_tokens"], 1);
    assert_eq!(j["usage"]["completion_tokens"], 7);
    assert_eq!(j["usage"]["total_tokens"], 8);
    assert_eq!(j["x_split_mock"]["path"], "/v1/chat/completions");
    assert_eq!(j["x_split_mock"]["name"], "v1");

    // The path echo tells v1 from v2, and the guide's bare path works too.
    let r = send(
        &c,
        "POST",
        &format!("{}/v2/chat/completions", mock.url()),
        GUIDE_BODY,
    )
    .await;
    assert_eq!(r.json()["x_split_mock"]["path"], "/v2/chat/completions");
    assert_eq!(r.headers["x-split-mock-path"], "/v2/chat/completions");
    let r = send(
        &c,
        "POST",
        &format!("{}/chat/completions", mock.url()),
        GUIDE_BODY,
    )
    .await;
    assert_eq!(r.status, 200);

    let stats = mock.stats();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.paths["/v1/chat/completions"], 1);
    assert_eq!(stats.paths["/v2/chat/completions"], 1);
    assert_eq!(stats.paths["/chat/completions"], 1);
    // The same numbers over HTTP.
    let r = send(&c, "GET", &format!("{}/_stats", mock.url()), "").await;
    let j = r.json();
    assert_eq!(j["paths"]["/v2/chat/completions"], 1);
    assert_eq!(j["statuses"]["200"], 3);
}

#[tokio::test]
async fn bad_json_models_and_unknown_paths() {
    let mock = upstream::spawn(UpstreamConfig::default()).unwrap();
    let c = client();
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/chat/completions", mock.url()),
        "{nope",
    )
    .await;
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["error"]["type"], "invalid_request_error");
    assert!(j["error"]["message"].as_str().unwrap().contains("JSON"));
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/chat/completions", mock.url()),
        "{}",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("messages"));

    let r = send(&c, "GET", &format!("{}/v1/models", mock.url()), "").await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["object"], "list");
    assert_eq!(j["data"][0]["id"], "gpt-4");

    let r = send(&c, "GET", &format!("{}/nothing", mock.url()), "").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].is_string());
    let r = send(
        &c,
        "GET",
        &format!("{}/v1/chat/completions", mock.url()),
        "",
    )
    .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn streaming_chunks_arrive_separately_with_usage() {
    let interval = Duration::from_millis(100);
    let mock = upstream::spawn(UpstreamConfig {
        chunks: 4,
        chunk_interval: interval,
        ..UpstreamConfig::default()
    })
    .unwrap();
    let c = client();
    let started = Instant::now();
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},
        "messages":[{"role":"user","content":"say hello please"}]}"#;
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/chat/completions", mock.url()),
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    assert!(r.error.is_none());
    let events = sse_events(&r.body());
    // role chunk, 4 content chunks, finish chunk, usage chunk, [DONE]
    assert_eq!(events.len(), 8, "{events:?}");
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..7]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    for ch in &chunks {
        assert_eq!(ch["object"], "chat.completion.chunk");
        assert_eq!(ch["model"], "gpt-4o-mini");
        assert_eq!(ch["id"], chunks[0]["id"]);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["x_split_mock"]["path"], "/v1/chat/completions");
    let text: String = chunks[1..5]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Pong! How can I assist you today?");
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[6]["choices"].as_array().unwrap().len(), 0);
    assert_eq!(chunks[6]["usage"]["prompt_tokens"], 3);
    assert_eq!(chunks[6]["usage"]["completion_tokens"], 7);
    assert_eq!(chunks[6]["usage"]["total_tokens"], 10);

    // Each content chunk came in its own frame, paced by the interval.
    let content_times: Vec<Instant> = r
        .frames
        .iter()
        .filter(|(_, b)| {
            std::str::from_utf8(b).unwrap().contains("\"content\":\"")
                && !std::str::from_utf8(b).unwrap().contains("\"role\"")
        })
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        content_times.len(),
        4,
        "content chunks were merged into fewer frames"
    );
    // The server sleeps before each content chunk, so the whole stream takes at least
    // 4 intervals; on the client, the chunks arrive spread out (a loaded machine may
    // delay a read, hence the slack: one interval of the three may be swallowed).
    assert!(started.elapsed() >= interval * 4);
    let spread = content_times[3] - content_times[0];
    assert!(
        spread >= interval * 2,
        "chunks arrived together ({spread:?}), not streamed"
    );
}

#[tokio::test]
async fn stream_without_usage_option_has_no_usage_chunk() {
    let mock = upstream::spawn(UpstreamConfig {
        chunks: 2,
        chunk_interval: Duration::ZERO,
        ..UpstreamConfig::default()
    })
    .unwrap();
    let body = r#"{"stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let r = send(
        &client(),
        "POST",
        &format!("{}/chat/completions", mock.url()),
        body,
    )
    .await;
    let events = sse_events(&r.body());
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(!events.iter().any(|e| e.contains("usage")));
}

#[tokio::test]
async fn reset_after_chunks_aborts_the_stream() {
    let mock = upstream::spawn(UpstreamConfig {
        chunks: 5,
        chunk_interval: Duration::from_millis(5),
        reset_after_chunks: Some(2),
        ..UpstreamConfig::default()
    })
    .unwrap();
    let body = r#"{"stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let r = send(
        &client(),
        "POST",
        &format!("{}/v1/chat/completions", mock.url()),
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.error.is_some(), "the body should end with an error");
    let text = String::from_utf8(r.body()).unwrap();
    assert!(!text.contains("[DONE]"));
    assert_eq!(text.matches("\"delta\":{\"content\"").count(), 2);
    assert_eq!(mock.stats().resets, 1);
}

#[tokio::test]
async fn tls_mode_serves_the_written_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("mock.pem");
    let mock = upstream::spawn(UpstreamConfig {
        name: "secure".into(),
        tls: Some(TlsSettings {
            cert_out: Some(cert_path.clone()),
            ..TlsSettings::default()
        }),
        ..UpstreamConfig::default()
    })
    .unwrap();
    let pem = std::fs::read_to_string(&cert_path).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(Some(pem.as_str()), mock.cert_pem());

    let trusting = split_sim::client::build(Some(&pem)).unwrap();
    let port = mock.addr().port();
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{port}/v1/chat/completions");
        let r = send(&trusting, "POST", &url, GUIDE_BODY).await;
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(r.headers["x-split-mock"], "secure");
    }

    // A client that does not trust the certificate is refused.
    let req = http::Request::post(format!("https://127.0.0.1:{port}/v1/chat/completions"))
        .body(Full::new(Bytes::from_static(GUIDE_BODY.as_bytes())))
        .unwrap();
    let untrusting = client();
    let res = tokio::time::timeout(Duration::from_secs(10), untrusting.request(req))
        .await
        .unwrap();
    assert!(res.is_err());
}

#[tokio::test]
async fn fault_injection_follows_the_seed() {
    let plan = FaultPlan {
        rate: 0.2,
        status: 429,
        seed: 42,
    };
    let mock = upstream::spawn(UpstreamConfig {
        fault: plan,
        ..UpstreamConfig::default()
    })
    .unwrap();
    let c = client();
    let url = format!("{}/v1/chat/completions", mock.url());
    let n = 300;
    let mut failed = Vec::new();
    // Sequential requests: arrival order = request number.
    for _ in 0..n {
        let r = send(&c, "POST", &url, GUIDE_BODY).await;
        match r.status {
            200 => failed.push(false),
            429 => {
                assert_eq!(r.headers["retry-after"], "1");
                assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
                failed.push(true);
            }
            s => panic!("unexpected status {s}"),
        }
    }
    let expected: Vec<bool> = (0..n).map(|i| plan.fails(i)).collect();
    assert_eq!(failed, expected);
    let count = failed.iter().filter(|f| **f).count();
    // Binomial(300, 0.2): mean 60, sd ≈ 6.9.
    assert!((30..=90).contains(&count), "{count}");
    let stats = mock.stats();
    assert_eq!(stats.injected_failures, count as u64);
    assert_eq!(stats.statuses["429"], count as u64);
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let mock = upstream::spawn(UpstreamConfig {
        latency: Duration::from_millis(120),
        ..UpstreamConfig::default()
    })
    .unwrap();
    let c = client();
    let start = Instant::now();
    let r = send(
        &c,
        "POST",
        &format!("{}/v1/chat/completions", mock.url()),
        GUIDE_BODY,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(120));
}

#[test]
fn spawn_works_without_a_runtime_and_frees_the_port() {
    let mock = upstream::spawn(UpstreamConfig::default()).unwrap();
    let addr = mock.addr();
    assert!(std::net::TcpStream::connect(addr).is_ok());
    mock.stop();
    // The listener is closed once stop returns.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
