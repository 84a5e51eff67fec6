//! The HTTP/1.1 upstream client through the real binary, against scripted raw-TCP
//! upstreams: keep-alive reuse, idle connections closed by the upstream, request
//! framing, an early 413 during a large upload, chunked and close-delimited responses,
//! SSE timing, a client leaving mid-stream, oversized response heads.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::gateway::{start, Gateway};
use common::{raw_request, wait_until, Client, Mock};
use http::Method;
use serde_json::json;

/// One request as a raw upstream read it.
#[derive(Debug, Clone)]
struct Seen {
    /// Connection number (0-based, in accept order).
    conn: usize,
    /// Request head, lower-cased.
    head: String,
    body: Vec<u8>,
}

/// What a raw upstream's handler gets for one connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    index: usize,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Conn {
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads a request head only.
    fn head(&mut self) -> Option<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return Some(String::from_utf8_lossy(&head).to_ascii_lowercase());
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Reads a whole request (Content-Length or chunked body) and records it.
    fn request(&mut self) -> Option<Seen> {
        let head = self.head()?;
        let mut body = Vec::new();
        if head.contains("transfer-encoding: chunked") {
            loop {
                let line = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        let line: Vec<u8> = self.buf.drain(..i + 2).collect();
                        break String::from_utf8_lossy(&line[..i]).into_owned();
                    }
                    if !self.fill() {
                        return None;
                    }
                };
                let size = usize::from_str_radix(line.trim(), 16).ok()?;
                while self.buf.len() < size + 2 {
                    if !self.fill() {
                        return None;
                    }
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(n) = header(&head, "content-length") {
            let n: usize = n.parse().ok()?;
            while self.buf.len() < n {
                if !self.fill() {
                    return None;
                }
            }
            body = self.buf.drain(..n).collect();
        }
        let seen = Seen {
            conn: self.index,
            head,
            body,
        };
        self.seen.lock().unwrap().push(seen.clone());
        Some(seen)
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_owned())
}

/// A scripted upstream: `handler` runs on its own thread for each connection.
struct Raw {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Raw {
    fn start(handler: impl Fn(&mut Conn) + Send + Sync + 'static) -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let (c, s, st) = (connections.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded by the stop flag (set on drop) and a 120 s ceiling.
            let deadline = Instant::now() + Duration::from_secs(120);
            while !st.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(20)))
                            .unwrap();
                        let index = c.fetch_add(1, Ordering::SeqCst);
                        let mut conn = Conn {
                            stream,
                            buf: Vec::new(),
                            index,
                            seen: s.clone(),
                        };
                        let handler = handler.clone();
                        std::thread::spawn(move || handler(&mut conn));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Raw {
            addr,
            connections,
            seen,
            stop,
        }
    }

    fn node(&self) -> String {
        self.addr.to_string()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A keep-alive 200 with body `ok`.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// Answers every request on the connection with 200 `ok` (keep-alive).
fn keep_alive_ok(conn: &mut Conn) {
    while conn.request().is_some() {
        if !conn.send(OK) {
            return;
        }
    }
}

/// Answers one request with 200 `ok`, then reads the next one and closes without an
/// answer (the upstream went away after the request reached it).
fn answer_once_then_drop_the_next(conn: &mut Conn) {
    if conn.request().is_some() {
        conn.send(OK);
        let _ = conn.request();
    }
}

/// One worker: idle upstream connections are kept per worker, so these tests, which
/// count upstream connections across several client connections, need every client
/// connection on the same worker.
fn gateway(node: &str, dir: &std::path::Path) -> Gateway {
    gateway_with_workers(node, dir, "1")
}

fn gateway_with_workers(node: &str, dir: &std::path::Path, workers: &str) -> Gateway {
    let doc = json!({"routes": [{"id": "r", "uri": "/*", "upstream": {"nodes": {node: 1}}}]});
    let file = dir.join("apisix.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    start(
        dir,
        &["--standalone", file.to_str().unwrap(), "--workers", workers],
    )
}

/// With two workers each keeps its own idle upstream connections: 20 requests, each on a
/// new client connection and one after the other, reuse at most one upstream connection
/// per worker.
#[test]
fn each_worker_reuses_its_own_upstream_connection() {
    let up = Raw::start(keep_alive_ok);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_with_workers(&up.node(), dir.path(), "2");
    for i in 0..20 {
        let raw = raw_request(
            gw.proxy,
            format!("GET /n/{i} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        );
        assert!(raw.starts_with("HTTP/1.1 200"), "{i}: {raw}");
    }
    assert_eq!(up.seen().len(), 20);
    let connections = up.connections();
    assert!(
        (1..=2).contains(&connections),
        "{connections} upstream connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_share_one_connection_and_bodies_are_framed() {
    let up = Raw::start(keep_alive_ok);
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up.node(), dir.path());
    let client = Client::new();
    for i in 0..6 {
        let r = if i % 2 == 0 {
            client.get(&gw.url(&format!("/get/{i}"))).await
        } else {
            client
                .send(Method::POST, &gw.url("/post"), &[], format!("body {i}"))
                .await
        };
        assert_eq!(r.status, 200, "{i}: {}", r.text());
        assert_eq!(r.text(), "ok");
    }
    // A chunked upload (the client sends no length) goes upstream chunked.
    let raw = raw_request(
        gw.proxy,
        b"POST /chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert_eq!(up.connections(), 1, "{:?}", up.seen());
    let seen = up.seen();
    assert_eq!(seen.len(), 7);
    assert!(
        seen[0].head.starts_with("get /get/0 http/1.1\r\n"),
        "{}",
        seen[0].head
    );
    assert!(!seen[0].head.contains("content-length"), "{}", seen[0].head);
    assert_eq!(
        header(&seen[1].head, "content-length").as_deref(),
        Some("6")
    );
    assert_eq!(seen[1].body, b"body 1");
    assert_eq!(
        header(&seen[6].head, "transfer-encoding").as_deref(),
        Some("chunked")
    );
    assert_eq!(seen[6].body, b"abcde");
    assert!(seen.iter().all(|s| s.conn == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_the_upstream_closed_do_not_fail_requests() {
    // Connection 0 answers once then closes while idle; connection 1 answers the next
    // request, then reads the one after and closes without answering (a race the
    // liveness check cannot see): that GET is sent again on connection 2.
    let up = Raw::start(|conn| match conn.index {
        0 => {
            if conn.request().is_some() {
                conn.send(OK);
            }
        }
        1 => answer_once_then_drop_the_next(conn),
        _ => keep_alive_ok(conn),
    });
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up.node(), dir.path());
    let client = Client::new();
    let r = client.get(&gw.url("/a")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Let the FIN of connection 0 arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client.get(&gw.url("/b")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = client.get(&gw.url("/c")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen: Vec<(usize, String)> = up
        .seen()
        .into_iter()
        .map(|s| (s.conn, s.head.lines().next().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            (0, "get /a http/1.1".to_owned()),
            (1, "get /b http/1.1".to_owned()),
            (1, "get /c http/1.1".to_owned()),
            (2, "get /c http/1.1".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_post_is_not_sent_twice() {
    let up = Raw::start(|conn| match conn.index {
        0 => answer_once_then_drop_the_next(conn),
        _ => keep_alive_ok(conn),
    });
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up.node(), dir.path());
    let client = Client::new();
    let r = client.get(&gw.url("/a")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = client
        .send(Method::POST, &gw.url("/pay"), &[], "once")
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(up.seen().len(), 2, "{:?}", up.seen());
    assert_eq!(up.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_arrives_while_the_upload_is_stalled() {
    // Answers after the head, then reads nothing for 4 s: a 32 MiB upload cannot fit in
    // the socket buffers, so the answer can only come through while the upload waits.
    let up = Raw::start(|conn| {
        if conn.head().is_none() {
            return;
        }
        conn.send(
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big!",
        );
        std::thread::sleep(Duration::from_secs(4));
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && conn.fill() {
            conn.buf.clear();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up.node(), dir.path());
    // A raw client: it keeps uploading on one thread while it reads the answer (the
    // gateway may close the connection before the upload ends).
    let mut stream = TcpStream::connect(gw.proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let total = 32usize << 20;
    let started = Instant::now();
    let uploader = std::thread::spawn(move || {
        let head = format!("POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {total}\r\n\r\n");
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..total / chunk.len() {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&got, b"too big!").is_none() {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.ends_with("too big!"), "{text}");
    assert!(elapsed < Duration::from_millis(3500), "{elapsed:?}");
    drop(stream);
    let _ = uploader.join();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_close_delimited_responses() {
    let up = Raw::start(|conn| {
        while let Some(req) = conn.request() {
            if req.head.starts_with("get /chunked") {
                let ok = conn.send(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\n",
                );
                if !ok {
                    return;
                }
            } else {
                conn.send(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end");
                return;
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up.node(), dir.path());
    let client = Client::new();
    for _ in 0..2 {
        let r = client.get(&gw.url("/chunked")).await;
        assert_eq!((r.status, r.text().as_str()), (200, "hello world"));
    }
    assert_eq!(up.connections(), 1);
    for _ in 0..2 {
        let r = client.get(&gw.url("/close")).await;
        assert_eq!((r.status, r.text().as_str()), (200, "until the end"));
    }
    // The close-delimited answers used the pooled connection, then a fresh one.
    assert_eq!(up.connections(), 2);
    let r = client.get(&gw.url("/chunked")).await;
    assert_eq!(r.text(), "hello world");
    assert_eq!(up.connections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_arrive_one_by_one() {
    let mock = Mock::http("sse");
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&mock.node(), dir.path());
    let client = Client::new();
    let (status, headers, chunks) = client.chunks(&gw.url("/sse")).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .contains("event-stream"));
    let events: Vec<&(Instant, Bytes)> = chunks.iter().filter(|(_, b)| !b.is_empty()).collect();
    assert!(events.len() >= 4, "{events:?}");
    // Four events 300 ms apart: never buffered into one.
    let spread = events[events.len() - 1].0 - events[0].0;
    assert!(spread >= Duration::from_millis(700), "{spread:?}");
    for pair in events.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(150),
            "{events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_closes_the_upstream_connection() {
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    let up = Raw::start(move |conn| {
        while let Some(req) = conn.request() {
            if !req.head.starts_with("get /stream") {
                if !conn.send(OK) {
                    return;
                }
                continue;
            }
            if !conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n") {
                return;
            }
            // Streams until the proxy closes the connection (at most 20 s).
            for _ in 0..200 {
                if !conn.send(b"6\r\ntick\r\n\r\n") {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            return;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up.node(), dir.path());
    {
        let mut s = TcpStream::connect(gw.proxy).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while find(&got, b"tick").is_none() {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || closed.load(Ordering::SeqCst)),
        "the upstream connection stayed open"
    );
    let client = Client::new();
    let r = client.get(&gw.url("/after")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(up.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_broken_response_heads_are_502() {
    let up = Raw::start(|conn| {
        let Some(req) = conn.request() else { return };
        if req.head.starts_with("get /big") {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..80 {
                head.extend_from_slice(format!("x-{i}: {}\r\n", "v".repeat(1000)).as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            conn.send(&head);
        } else if req.head.starts_with("get /many") {
            let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
            for i in 0..150 {
                head.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
            }
            head.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
            conn.send(&head);
        } else {
            conn.send(b"NOT HTTP AT ALL\r\n\r\n");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&up.node(), dir.path());
    let client = Client::new();
    for (path, words) in [
        ("/big", "larger than 65536 bytes"),
        ("/many", "more than 100 headers"),
        ("/junk", "invalid upstream response head"),
    ] {
        let r = client.get(&gw.url(path)).await;
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert!(r.text().contains(words), "{path}: {}", r.text());
    }
    let text = gw.metrics_text().await;
    assert!(text.contains("split_upstream_errors_total"), "{text}");
}
