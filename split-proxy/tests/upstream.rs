//! Forwarding behaviour: Host per pass_host, forwarded and hop-by-hop headers, TLS with
//! --connect-to and --ca-file, h2 via ALPN, failover to the next node, 502/504, SSE.

mod common;

use std::time::{Duration, Instant};

use common::gateway::{sample, start};
use common::{Client, Mock, TestCa};
use http::Method;
use serde_json::json;

fn write_doc(dir: &std::path::Path, doc: serde_json::Value) -> String {
    let file = dir.join("apisix.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    file.to_str().unwrap().to_owned()
}

/// A gateway on `doc` that writes its access log to `access.log` in `dir`, and that path.
fn start_logged(
    dir: &std::path::Path,
    doc: serde_json::Value,
) -> (common::gateway::Gateway, std::path::PathBuf) {
    let file = write_doc(dir, doc);
    let log = dir.join("access.log");
    let gw = start(
        dir,
        &["--standalone", &file, "--access-log", log.to_str().unwrap()],
    );
    (gw, log)
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_host_modes_and_forwarded_headers() {
    let mock = Mock::http("m");
    let node = mock.node();
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"routes": [
        {"id": "pass", "uri": "/pass", "upstream": {"nodes": {&node: 1}}},
        {"id": "node", "uri": "/node", "upstream": {"nodes": {&node: 1}, "pass_host": "node"}},
        {"id": "rewrite", "uri": "/rewrite", "upstream": {"nodes": {&node: 1}, "pass_host": "rewrite", "upstream_host": "up.example"}}
    ]});
    let file = write_doc(dir.path(), doc);
    let gw = start(dir.path(), &["--standalone", &file]);
    let client = Client::new();
    let headers = [
        ("host", "client.example:9080"),
        ("authorization", "Bearer sk-secret"),
        ("x-forwarded-for", "10.1.1.1"),
        ("connection", "x-drop"),
        ("x-drop", "1"),
        ("keep-alive", "timeout=5"),
    ];
    for path in ["/pass", "/node", "/rewrite"] {
        let r = client.send(Method::GET, &gw.url(path), &headers, "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let hits = mock.hits();
    assert_eq!(hits.len(), 3);
    let host = |i: usize| hits[i].headers["host"].to_str().unwrap().to_owned();
    assert_eq!(host(0), "client.example:9080");
    assert_eq!(host(1), node);
    assert_eq!(host(2), "up.example");
    for hit in &hits {
        assert_eq!(hit.headers["authorization"], "Bearer sk-secret");
        assert_eq!(hit.headers["x-forwarded-for"], "10.1.1.1, 127.0.0.1");
        assert_eq!(hit.headers["x-forwarded-proto"], "http");
        assert_eq!(hit.headers["x-forwarded-host"], "client.example:9080");
        assert!(hit.headers.get("x-drop").is_none());
        assert!(hit.headers.get("keep-alive").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_rewrites_of_forwarded_headers_win() {
    let mock = Mock::http("m");
    let node = mock.node();
    let dir = tempfile::tempdir().unwrap();
    let rewrite = |id: &str, headers: serde_json::Value| {
        json!({"id": id, "uri": format!("/{id}"), "upstream": {"nodes": {&node: 1}},
               "plugins": {"proxy-rewrite": {"headers": headers}}})
    };
    let doc = json!({"routes": [
        {"id": "plain", "uri": "/plain", "upstream": {"nodes": {&node: 1}}},
        rewrite("set", json!({"set": {"X-Real-IP": "203.0.113.9"}, "remove": ["X-Forwarded-For"]})),
        rewrite("add", json!({"add": {"X-Forwarded-Proto": "https"}})),
        rewrite("other", json!({"set": {"X-Other": "1"}}))
    ]});
    let file = write_doc(dir.path(), doc);
    let gw = start(dir.path(), &["--standalone", &file]);
    let client = Client::new();
    let headers = [
        ("host", "client.example"),
        ("x-forwarded-for", "10.1.1.1"),
        ("x-real-ip", "10.9.9.9"),
        ("x-forwarded-proto", "https"),
    ];
    for path in ["/plain", "/set", "/add", "/other"] {
        let r = client.send(Method::GET, &gw.url(path), &headers, "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let hits = mock.hits();
    let all = |i: usize, name: &str| -> Vec<String> {
        hits[i]
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    // No rewrite of them (plain, other): the gateway's values, once each, replacing
    // what the client sent.
    for i in [0, 3] {
        assert_eq!(all(i, "x-forwarded-for"), ["10.1.1.1, 127.0.0.1"]);
        assert_eq!(all(i, "x-real-ip"), ["127.0.0.1"]);
        assert_eq!(all(i, "x-forwarded-proto"), ["http"]);
        assert_eq!(all(i, "x-forwarded-host"), ["client.example"]);
    }
    assert_eq!(all(3, "x-other"), ["1"]);
    // A rewrite applies after them: set wins, remove removes, add appends.
    assert_eq!(all(1, "x-real-ip"), ["203.0.113.9"]);
    assert!(all(1, "x-forwarded-for").is_empty());
    assert_eq!(all(1, "x-forwarded-host"), ["client.example"]);
    assert_eq!(all(2, "x-forwarded-proto"), ["http", "https"]);
    assert_eq!(all(2, "x-real-ip"), ["127.0.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_connect_to_and_ca_file_keeps_host_and_sni() {
    let ca = TestCa::new();
    let mock = Mock::https(
        "tls",
        ca.server_config(&["api.aimlapi.com"], &[b"http/1.1"]),
    );
    let h2_mock = Mock::https(
        "h2",
        ca.server_config(&["h2.example"], &[b"h2", b"http/1.1"]),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let doc = json!({"routes": [
        {"id": "tls", "uri": "/v1/*", "upstream": {"nodes": {"api.aimlapi.com:443": 1}, "scheme": "https", "pass_host": "node"}},
        {"id": "h2", "uri": "/h2", "upstream": {"nodes": {"h2.example:443": 1}, "scheme": "https", "pass_host": "node"}}
    ]});
    let file = write_doc(dir.path(), doc);
    let map = format!("api.aimlapi.com:443:127.0.0.1:{}", mock.addr.port());
    let map_h2 = format!("h2.example:443:127.0.0.1:{}", h2_mock.addr.port());
    let gw = start(
        dir.path(),
        &[
            "--standalone",
            &file,
            "--connect-to",
            &map,
            "--connect-to",
            &map_h2,
            "--ca-file",
            ca_file.to_str().unwrap(),
        ],
    );
    let client = Client::new();
    for _ in 0..3 {
        let r = client.get(&gw.url("/v1/models")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["mock"], "tls");
        // The connection returns to the pool once hyper saw the end of the response.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hits = mock.hits();
    assert_eq!(hits[0].headers["host"], "api.aimlapi.com");
    assert_eq!(hits[0].uri, "/v1/models");
    // Keep-alive: three requests, one TLS connection.
    assert_eq!(
        mock.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    let r = client.get(&gw.url("/h2")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h2_mock.hits()[0].version, http::Version::HTTP_2);
    assert_eq!(
        h2_mock.hits()[0]
            .headers
            .get("host")
            .map(|h| h.to_str().unwrap().to_owned()),
        None
    );
    // The forwarded headers reach an h2 upstream too, once each.
    let h2_headers = &h2_mock.hits()[0].headers;
    for (name, value) in [
        ("x-forwarded-for", "127.0.0.1"),
        ("x-real-ip", "127.0.0.1"),
        ("x-forwarded-proto", "http"),
    ] {
        let values: Vec<_> = h2_headers.get_all(name).iter().collect();
        assert_eq!(values, [value], "{name}");
    }

    // Without the CA the certificate is refused: 502 and a log line with the reason.
    let dir2 = tempfile::tempdir().unwrap();
    let file2 = write_doc(
        dir2.path(),
        json!({"routes": [
            {"id": "tls", "uri": "/v1/*", "upstream": {"nodes": {"api.aimlapi.com:443": 1}, "scheme": "https", "pass_host": "node"}}
        ]}),
    );
    let gw2 = start(dir2.path(), &["--standalone", &file2, "--connect-to", &map]);
    let r = client.get(&gw2.url("/v1/models")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.json()["error_msg"].as_str().unwrap().contains("TLS"),
        "{}",
        r.text()
    );
    let log_has_reason = common::wait_until(Duration::from_secs(5), || {
        let e = gw2.stderr();
        e.contains("upstream TLS verification failed") && e.contains("UnknownIssuer")
    });
    assert!(log_has_reason, "{}", gw2.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_nodes_fail_over_then_502() {
    let live = Mock::http("live");
    let reset = Mock::resetting();
    let dead = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"routes": [
        {"id": "mixed", "uri": "/mixed", "upstream": {"nodes": {&dead: 1, &live.node(): 1}}},
        {"id": "dead", "uri": "/dead", "upstream": {"nodes": {&dead: 1, &reset.node(): 1}}}
    ]});
    let file = write_doc(dir.path(), doc);
    let gw = start(dir.path(), &["--standalone", &file]);
    let client = Client::new();
    for _ in 0..6 {
        let r = client.get(&gw.url("/mixed")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(live.count("/mixed"), 6);
    let r = client.get(&gw.url("/dead")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("error_msg"));
    let text = gw.metrics_text().await;
    let errors = sample(
        &text,
        &format!(r#"split_upstream_errors_total{{route="mixed",node="{dead}",kind="connect"}}"#),
    );
    assert_eq!(errors, Some(3.0), "{text}");
    let _ = reset.connections.load(std::sync::atomic::Ordering::SeqCst);
}

/// A port whose connects hang until the client gives up: a listener with a backlog of 1
/// that never accepts, its queue filled first (Linux drops SYNs to a full queue). Keep
/// the returned values alive while the port is used.
fn hanging_port() -> (tokio::net::TcpListener, Vec<std::net::TcpStream>, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    (listener, fillers, addr.to_string())
}

fn node(addr: &str, priority: i32) -> serde_json::Value {
    let (host, port) = addr.rsplit_once(':').unwrap();
    json!({"host": host, "port": port.parse::<u16>().unwrap(), "weight": 1, "priority": priority})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_timeout_bounds_the_failover() {
    let live = Mock::http("live");
    let (_l1, _f1, slow1) = hanging_port();
    let (_l2, _f2, slow2) = hanging_port();
    let dir = tempfile::tempdir().unwrap();
    // Both hanging nodes come first (priority), then the live one; a connect gives up
    // after 0.3 s. Without a budget the third node answers; with retry_timeout 0.2 s the
    // first timeout already spent it, so no second node is tried.
    let upstream = |retry_timeout: Option<f64>| {
        let mut up = json!({
            "nodes": [node(&slow1, 2), node(&slow2, 1), node(&live.node(), 0)],
            "retries": 2,
            "timeout": {"connect": 0.3, "send": 2, "read": 2}
        });
        if let Some(t) = retry_timeout {
            up["retry_timeout"] = json!(t);
        }
        up
    };
    let doc = json!({"routes": [
        {"id": "unbounded", "uri": "/unbounded", "upstream": upstream(None)},
        {"id": "unlimited", "uri": "/unlimited", "upstream": upstream(Some(0.0))},
        {"id": "bounded", "uri": "/bounded", "upstream": upstream(Some(0.2))}
    ]});
    let file = write_doc(dir.path(), doc);
    let gw = start(dir.path(), &["--standalone", &file]);
    let client = Client::new();
    for path in ["/unbounded", "/unlimited"] {
        let r = client.get(&gw.url(path)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(live.count(path), 1, "{path}");
    }
    let r = client.get(&gw.url("/bounded")).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json(), json!({"error_msg": "upstream timed out"}));
    assert_eq!(live.count("/bounded"), 0);
    let text = gw.metrics_text().await;
    let tried = |route: &str, node: &str| {
        sample(
            &text,
            &format!(
                r#"split_upstream_errors_total{{route="{route}",node="{node}",kind="timeout"}}"#
            ),
        )
    };
    assert_eq!(tried("bounded", &slow1), Some(1.0), "{text}");
    assert_eq!(tried("bounded", &slow2), None, "{text}");
    assert_eq!(tried("unbounded", &slow2), Some(1.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_times_out_with_504() {
    let mock = Mock::http("slow");
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"routes": [
        {"id": "slow", "uri": "/slow/*", "timeout": {"connect": 1, "send": 1, "read": 1},
         "upstream": {"nodes": {&mock.node(): 1}}}
    ]});
    let file = write_doc(dir.path(), doc);
    let gw = start(dir.path(), &["--standalone", &file]);
    let client = Client::new();
    let started = Instant::now();
    let r = client.get(&gw.url("/slow/3000")).await;
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json(), json!({"error_msg": "upstream timed out"}));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(4000),
        "{took:?}"
    );
    let r = client.get(&gw.url("/slow/100")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_chunks_arrive_as_they_are_sent() {
    let mock = Mock::http("sse");
    let dir = tempfile::tempdir().unwrap();
    let file = write_doc(
        dir.path(),
        json!({"routes": [{"id": "sse", "uri": "/sse", "upstream": {"nodes": {&mock.node(): 1}}}]}),
    );
    let gw = start(dir.path(), &["--standalone", &file]);
    let (status, headers, chunks) = Client::new().chunks(&gw.url("/sse")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let text: String = chunks
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(text.matches("data: ").count(), 4, "{text}");
    // The mock sends an event every 300 ms; buffering would deliver them together.
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    let spread = chunks.last().unwrap().0 - chunks.first().unwrap().0;
    assert!(
        spread >= Duration::from_millis(600),
        "all chunks within {spread:?}"
    );
}

#[test]
fn client_disconnect_cancels_the_upstream_request() {
    use std::io::{Read, Write};
    // An upstream that reads the request head, never answers, and reports whether the
    // gateway closed the connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let node = listener.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        };
        let _ = tx.send((closed, String::from_utf8_lossy(&seen).into_owned()));
    });
    let dir = tempfile::tempdir().unwrap();
    let (gw, log) = start_logged(
        dir.path(),
        json!({"routes": [{"id": "hang", "uri": "/hang", "upstream": {"nodes": {&node: 1}}}]}),
    );
    let mut client = std::net::TcpStream::connect(gw.proxy).unwrap();
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let sent_at = wall();
    client
        .write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(client);
    let (closed, head) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("upstream thread");
    assert!(head.starts_with("GET /hang HTTP/1.1"), "{head}");
    assert!(
        closed,
        "the upstream connection stayed open after the client left"
    );
    let logged = common::wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"status\":499"))
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(logged, "{text}");
    // `time` is when the request arrived, not when it was logged half a second later.
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let time = line["time"].as_f64().expect("time");
    assert!(
        time >= sent_at - 0.01 && time < sent_at + 0.3,
        "time {time}, sent at {sent_at}: {text}"
    );
    assert!(line["request_time_ms"].as_f64().unwrap() >= 400.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_times_follow_the_upstream() {
    let mock = Mock::http("m");
    let node = mock.node();
    let dir = tempfile::tempdir().unwrap();
    let (gw, log) = start_logged(
        dir.path(),
        json!({"routes": [{"id": "all", "uri": "/*", "upstream": {"nodes": {&node: 1}}}]}),
    );
    let client = Client::new();
    // A head after 300 ms; then an event stream whose head comes at once and whose
    // four events are 300 ms apart.
    for path in ["/slow/300", "/sse"] {
        let r = client.send(Method::GET, &gw.url(path), &[], "").await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let complete = common::wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(complete, "{text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ms = |i: usize, field: &str| lines[i][field].as_f64().unwrap_or(-1.0);
    // Slow head: the time to first byte covers the upstream's wait, and the request
    // time covers the time to first byte.
    assert!(ms(0, "ttfb_ms") >= 290.0, "{text}");
    assert!(ms(0, "request_time_ms") >= ms(0, "ttfb_ms"), "{text}");
    // Stream: the head went out long before the body ended.
    assert!(
        ms(1, "ttfb_ms") >= 0.0 && ms(1, "ttfb_ms") < 250.0,
        "{text}"
    );
    assert!(ms(1, "request_time_ms") >= 850.0, "{text}");
}
