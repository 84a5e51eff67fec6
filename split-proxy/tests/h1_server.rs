//! The owned HTTP/1.1 server through the real binary: pipelining, HTTP/1.0 keep-alive
//! and close, `Expect: 100-continue`, chunked request bodies forwarded intact (and a
//! broken one answered 400), HEAD, a large streamed response, and a client leaving
//! mid-response.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::gateway::{start_standalone, Gateway};
use common::server::TestServer;
use common::Mock;
use http::Response;
use http_body_util::Full;
use serde_json::json;

/// Size of the large response.
const LARGE: usize = 8 * 1024 * 1024;

/// Byte `i` of the large response.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A gateway in front of a recording mock (`/*`) and the large-response server
/// (`/large`). Fields drop in order: the gateway stops before its data dir goes.
struct Setup {
    mock: Mock,
    gw: Gateway,
    _large: TestServer,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let mock = Mock::http("m");
    let large = large_upstream();
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"routes": [
        {"id": "large", "uri": "/large", "upstream": {"nodes": {large.addr.to_string(): 1}}},
        // Matching on the body's `model` reads the whole body before forwarding.
        {"id": "by-model", "uri": "/by-model", "vars": [["post_arg.model", "==", "gpt-4"]],
         "upstream": {"nodes": {mock.node(): 1}}},
        {"id": "mock", "uri": "/*", "upstream": {"nodes": {mock.node(): 1}}},
    ]});
    let gw = start_standalone(dir.path(), &doc);
    Setup {
        mock,
        gw,
        _large: large,
        _dir: dir,
    }
}

fn large_upstream() -> TestServer {
    TestServer::start(|_req| {
        Box::pin(async {
            let body: Vec<u8> = (0..LARGE).map(pattern).collect();
            Response::new(Full::new(Bytes::from(body)))
        })
    })
}

struct Conn {
    reader: BufReader<TcpStream>,
}

/// One response: head (status line and fields, CRLF-separated) and body.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

impl Conn {
    fn open(gw: &Gateway) -> Conn {
        let s = TcpStream::connect(gw.proxy).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn {
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    fn head(&mut self) -> String {
        let mut head = String::new();
        for _ in 0..200 {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "closed inside a head: {head:?}");
            if line == "\r\n" {
                return head;
            }
            head.push_str(&line);
        }
        panic!("head too long: {head}");
    }

    /// Reads a response; `no_body` for HEAD.
    fn answer(&mut self, no_body: bool) -> Answer {
        let head = self.head();
        let mut a = Answer {
            head,
            body: Vec::new(),
        };
        if no_body {
            return a;
        }
        if let Some(len) = a.header("content-length") {
            a.body = vec![0; len.parse().unwrap()];
            self.reader.read_exact(&mut a.body).unwrap();
        } else if a.header("transfer-encoding").as_deref() == Some("chunked") {
            for _ in 0..100_000 {
                let mut size = String::new();
                self.reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                a.body.extend_from_slice(&chunk[..n]);
            }
        } else {
            self.reader.read_to_end(&mut a.body).unwrap();
        }
        a
    }

    /// True when the gateway closed the connection.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}

fn json_body(a: &Answer) -> serde_json::Value {
    serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.head))
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = setup();
    let mut c = Conn::open(&s.gw);
    c.send(
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    for path in ["/one", "/two", "/three"] {
        let a = c.answer(false);
        assert!(a.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.head);
        assert!(a.head.contains("\r\nServer: split/"), "{}", a.head);
        assert_eq!(json_body(&a)["path"], path);
    }
    let hits = s.mock.hits();
    assert_eq!(hits.len(), 3);
    assert_eq!(&hits[1].body[..], b"abc");
}

#[test]
fn http10_keep_alive_and_close() {
    let s = setup();
    let mut c = Conn::open(&s.gw);
    for i in 0..2 {
        c.send(
            format!("GET /ka{i} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        );
        let a = c.answer(false);
        assert_eq!(
            a.header("connection").as_deref(),
            Some("keep-alive"),
            "{}",
            a.head
        );
        assert_eq!(json_body(&a)["path"], format!("/ka{i}"));
    }
    c.send(b"GET /last HTTP/1.0\r\nHost: x\r\n\r\n");
    let a = c.answer(false);
    assert_eq!(
        a.header("connection").as_deref(),
        Some("close"),
        "{}",
        a.head
    );
    assert_eq!(json_body(&a)["path"], "/last");
    assert!(c.closed());
    // HTTP/1.1 with Connection: close.
    let mut c = Conn::open(&s.gw);
    c.send(b"GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let a = c.answer(false);
    assert_eq!(
        a.header("connection").as_deref(),
        Some("close"),
        "{}",
        a.head
    );
    assert!(c.closed());
}

#[test]
fn expect_continue_body_reaches_the_upstream() {
    let s = setup();
    let mut c = Conn::open(&s.gw);
    let body = r#"{"model":"gpt-4o","messages":[]}"#;
    c.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.head(), "HTTP/1.1 100 Continue\r\n");
    c.send(body.as_bytes());
    let a = c.answer(false);
    assert!(a.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.head);
    let hits = s.mock.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(&hits[0].body[..], body.as_bytes());
    assert!(hits[0].headers.get("expect").is_none());
}

#[test]
fn chunked_request_bodies_are_forwarded_intact() {
    let s = setup();
    let mut c = Conn::open(&s.gw);
    let pieces: Vec<String> = (0..20)
        .map(|i| format!("piece-{i}-{}", "z".repeat(i * 100)))
        .collect();
    c.send(b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for p in &pieces {
        c.send(format!("{:x};ext=1\r\n{p}\r\n", p.len()).as_bytes());
    }
    c.send(b"0\r\n\r\n");
    let a = c.answer(false);
    assert!(a.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.head);
    let hits = s.mock.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body, Bytes::from(pieces.concat()));
    // The connection is still usable.
    c.send(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(json_body(&c.answer(false))["path"], "/after");
}

#[test]
fn a_broken_chunked_body_is_the_clients_fault() {
    let s = setup();
    // A chunk size followed by a word, not `;` or CRLF (RFC 9112 7.1.1); the first
    // chunk goes upstream before the broken line is read.
    let msg = refused_body(&s, "/broken", b"5\r\nhello\r\n5 abc\r\nworld\r\n0\r\n\r\n");
    assert!(
        msg.starts_with("invalid request body: invalid chunked request body: chunk size"),
        "{msg}"
    );
    // The same answer when the body is read whole first (to match on its `model`),
    // and nothing of it goes upstream.
    let hits = s.mock.hits().len();
    let whole = refused_body(&s, "/by-model", b"5 abc\r\nhello\r\n0\r\n\r\n");
    assert!(
        whole.starts_with("invalid request body: invalid chunked"),
        "{whole}"
    );
    assert_eq!(
        s.mock.hits().len(),
        hits,
        "a broken body reached the upstream"
    );
    // Not counted as an upstream error, and the node still serves.
    let metrics = get_text(s.gw.metrics, "/apisix/prometheus/metrics");
    assert!(
        !metrics.contains("split_upstream_errors_total{"),
        "{metrics}"
    );
    let mut c = Conn::open(&s.gw);
    c.send(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(json_body(&c.answer(false))["path"], "/after");
}

/// POSTs the chunked `body` to `path` on a new connection, asserts a 400 and returns
/// its `error_msg`.
fn refused_body(s: &Setup, path: &str, body: &[u8]) -> String {
    let mut c = Conn::open(&s.gw);
    c.send(
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
    );
    c.send(body);
    let a = c.answer(false);
    assert!(a.head.starts_with("HTTP/1.1 400 "), "{}", a.head);
    json_body(&a)["error_msg"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The body of `GET path` on `addr` (HTTP/1.0, read to the close).
fn get_text(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(text)
}

#[test]
fn head_responses_have_no_body() {
    let s = setup();
    let mut c = Conn::open(&s.gw);
    c.send(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
    let a = c.answer(true);
    assert!(a.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.head);
    // The next response starts right after the head: no body bytes were sent.
    c.send(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    let a = c.answer(false);
    assert!(a.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.head);
    assert_eq!(json_body(&a)["path"], "/next");
    assert_eq!(s.mock.hits()[0].method, "HEAD");
}

#[test]
fn a_large_response_streams_and_a_client_leaving_mid_response_is_harmless() {
    let s = setup();
    let mut c = Conn::open(&s.gw);
    c.send(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n");
    let a = c.answer(false);
    assert_eq!(a.body.len(), LARGE, "{}", a.head);
    assert!(a.body.iter().enumerate().all(|(i, &b)| b == pattern(i)));
    // Leave after the first bytes of the body, several times.
    for _ in 0..5 {
        let mut c = Conn::open(&s.gw);
        c.send(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n");
        let _ = c.head();
        let mut some = vec![0; 64 * 1024];
        c.reader.read_exact(&mut some).unwrap();
        drop(c);
    }
    let mut c = Conn::open(&s.gw);
    c.send(b"GET /alive HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(json_body(&c.answer(false))["path"], "/alive");
    assert!(!s.gw.stderr().contains("panicked"), "{}", s.gw.stderr());
}
