//! Hostile peers through the real binary: seeded mutations of valid client requests, and
//! of valid upstream answers served by a raw TCP upstream. split's own parsers
//! (`split_core::wire`, fuzzed against their invariants in `fuzz/`) predict each outcome,
//! and the live gateway must match it:
//! - a request head they refuse gets exactly its status (400, 414 or 431) with a JSON
//!   `{"error_msg"}`; a head that never completes gets a close and no answer; a whole
//!   request is answered, never with 500 or 502 (the upstream is a healthy mock), also on
//!   a route running every request-path plugin (key-auth, limit-count,
//!   ai-rate-limiting, api-breaker, proxy-rewrite with `regex_uri`, prometheus, a split
//!   with a fallback);
//! - an upstream answer without a valid head gets 502 with a JSON error; a valid head
//!   passes its status through, and a valid body arrives whole (framed again for the
//!   client). A close without any answer happens only when the upstream's body breaks
//!   before the first byte went out: the head waits to go out with the first body bytes,
//!   and once the status is chosen the answer can only be cut short, as in nginx;
//! - behind a `traffic-split` fallback, a broken head or a listed status (429, 5xx) is
//!   served by the other arm, as is a stream whose first event is an error; any other
//!   answer passes through as above;
//! - nothing panics, and a plain request still works afterwards.
//!
//! The cases are deterministic (ChaCha8 from fixed seeds), so a failure names a case
//! that reproduces. What this adds to the fuzz targets is everything around the parsers,
//! on a live process: routing, reading bodies for `post_arg`, forwarding, framing the
//! answer, the upstream pool, and handing a preface to the h2 server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::gateway::{start_standalone, Gateway};
use common::Mock;
use http::Method;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::json;
use split_core::wire::chunked;
use split_core::wire::request::{self, Framing, HeadError};
use split_core::wire::response::{parse_response, Parsed, ResponseHead};
use split_core::wire::response_body::{Decoder, Step};

/// Client cases: mutated requests, one connection each.
const CLIENT_CASES: u64 = 600;
/// Upstream cases: mutated answers, one request each.
const UPSTREAM_CASES: u64 = 400;
/// Longest wait for one answer; every case ends well before (each peer half-closes or
/// closes after writing).
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Most answer bytes read per case.
const ANSWER_MAX: usize = 4 << 20;

/// A number in `0..n` from `rng`.
fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

/// One to four mutations of `seed` ([`split_core::fuzzing::mutate`]), from `rng`.
fn mutate(rng: &mut ChaCha8Rng, seed: &[u8], others: &[&[u8]]) -> Vec<u8> {
    split_core::fuzzing::mutate::mutate(seed, others, &mut |n| below(rng, n))
}

/// What came back on one connection.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body bytes that followed the head (up to the close or [`ANSWER_MAX`]).
    rest: Vec<u8>,
    /// Everything that came back.
    raw: Vec<u8>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rest = String::from_utf8_lossy(&self.rest[..self.rest.len().min(200)]);
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &rest)
            .finish()
    }
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How long a connection may stay quiet before the client half-closes it: a request the
/// mutations cut short would otherwise wait for the gateway's header timeout.
const QUIET: Duration = Duration::from_millis(100);

/// Writes `request` and reads until the gateway closes. The client half-closes once the
/// connection has been quiet for `patience` before the first answer byte, or for
/// [`QUIET`] after it: the gateway takes a client's end of file while it waits for the
/// upstream as the client leaving (as nginx does), so the client must not half-close
/// before an answer it expects. Returns the bytes that came back.
fn exchange_raw(addr: SocketAddr, request: &[u8], patience: Duration) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s.set_write_timeout(Some(ANSWER_WAIT)).unwrap();
    // The gateway may refuse before reading everything (a head too large): then the
    // write fails, and the answer is still there to read.
    let _ = s.write_all(request);
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut half_closed = false;
    let mut quiet_since = Instant::now();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                quiet_since = Instant::now();
                bytes.extend_from_slice(&buf[..n]);
                if bytes.len() >= ANSWER_MAX {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "no close within {ANSWER_WAIT:?}; got {:?}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                    ));
                }
                let waited = if bytes.is_empty() { patience } else { QUIET };
                if !half_closed && Instant::now() >= quiet_since + waited {
                    let _ = s.shutdown(Shutdown::Write);
                    half_closed = true;
                }
            }
            // A reset after a refusal: what arrived before it is the answer.
            Err(_) => break,
        }
    }
    Ok(bytes)
}

/// [`exchange_raw`], and the first answer in what came back: `Ok(None)` when the
/// gateway closed without answering, `Err` when the bytes are not an HTTP/1.1 answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> Result<Option<Answer>, String> {
    let bytes = exchange_raw(addr, request, ANSWER_WAIT)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    parse_answer(&bytes).map(Some)
}

/// The first final answer in `bytes` (after any `100 Continue`): a complete HTTP/1.1
/// head with a three-digit status.
fn parse_answer(bytes: &[u8]) -> Result<Answer, String> {
    let mut answer = parse_head(bytes)?;
    // Bounded: each interim head is at least 4 bytes shorter than what it came in.
    while (100..200).contains(&answer.status) {
        answer = parse_head(&answer.rest)?;
    }
    Ok(answer)
}

/// The head at the start of `bytes` and what follows it.
fn parse_head(bytes: &[u8]) -> Result<Answer, String> {
    let shown = || String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete head: {:?}", shown()))?;
    // Field values may carry obs-text (bytes 0x80 and above), forwarded as they came.
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad field line {line:?} in {:?}", shown()))?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(format!("bad field name {name:?}"));
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Answer {
        status,
        headers,
        rest: bytes[end + 4..].to_vec(),
        raw: bytes.to_vec(),
    })
}

/// Error answers are JSON with a matching `Content-Length` and a non-empty `field`: the
/// gateway's own are `{"error_msg": "..."}`; key-auth's 401s are `{"message": "..."}`,
/// as in APISIX.
fn check_error_body(answer: &Answer, field: &str) -> Result<(), String> {
    let length: usize = answer
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            format!(
                "{} without Content-Length: {:?}",
                answer.status, answer.headers
            )
        })?;
    let body = answer
        .rest
        .get(..length)
        .ok_or_else(|| format!("{}: body shorter than {length}", answer.status))?;
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{}: body is not JSON ({e}): {:?}",
            answer.status,
            String::from_utf8_lossy(body)
        )
    })?;
    if value[field].as_str().is_none_or(str::is_empty) {
        return Err(format!("{}: no {field} in {value}", answer.status));
    }
    Ok(())
}

/// The gateway still proxies a plain request, and never panicked.
fn assert_healthy(gw: &Gateway, path: &str) {
    let answer = exchange(
        gw.proxy,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("a plain request gets an HTTP answer")
    .expect("a plain request is answered");
    assert_eq!(answer.status, 200, "{answer:?}");
    let stderr = gw.stderr();
    assert!(
        !stderr.contains("panicked"),
        "the gateway panicked:\n{stderr}"
    );
}

/// The guide's chat request, in the forms a client may send it.
fn client_seeds() -> Vec<Vec<u8>> {
    let chat = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;
    let chunked = format!("{:x}\r\n{chat}\r\n0\r\n\r\n", chat.len());
    vec![
        format!(
            "POST /chat/completions HTTP/1.1\r\nHost: localhost:9080\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{chat}",
            chat.len()
        ),
        format!(
            "POST /by-model HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
        ),
        format!(
            "POST /by-model?x=1 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n{chat}",
            chat.len()
        ),
        "GET /models?a=b&c=%20d HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nCookie: a=b\r\n\r\nGET /again HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        "GET http://x/absolute/form HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n".into(),
        "HEAD /head HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".into(),
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n".into(),
        "DELETE /chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n".into(),
        format!(
            "POST /guarded/chat/completions HTTP/1.1\r\nHost: x\r\napikey: alice-secret-key\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{chat}",
            chat.len()
        ),
        "GET /guarded/models?apikey=alice-secret-key&x=%41 HTTP/1.1\r\nHost: x\r\nOrigin: http://a\r\n\r\n".into(),
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04\0\0\0\0\0\0\x03\0\0\0\x64\0\x04\0\x10\0\0".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// What the gateway must make of a client's bytes, read with split's own request
/// parsers (fuzzed against their invariants in `fuzz/`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ask {
    /// The head is refused: this status, with a JSON error.
    Refused(u16),
    /// The head never completes: the gateway closes without answering.
    Incomplete,
    /// A whole request, head and body: it is answered (never 500 or 502: the upstream
    /// is a healthy mock).
    Complete,
    /// A head whose body is cut short or broken: an answer or a close.
    BodyUnsure,
    /// Starts like the HTTP/2 preface: the h2 server's (hyper's) business.
    H2,
}

/// What the gateway must make of `bytes` sent on a fresh connection (the first request
/// in them decides).
fn ask(bytes: &[u8]) -> Ask {
    if bytes.starts_with(b"PRI ") {
        return Ask::H2;
    }
    let mut buf = BytesMut::from(bytes);
    let head = match request::parse(&mut buf) {
        Err(HeadError::Malformed | HeadError::Framing(_)) => return Ask::Refused(400),
        Err(HeadError::UriTooLong) => return Ask::Refused(414),
        Err(HeadError::TooLarge) => return Ask::Refused(431),
        Ok(None) => return Ask::Incomplete,
        Ok(Some(head)) => head,
    };
    match head.framing {
        Framing::Empty => Ask::Complete,
        Framing::Length(n) if buf.len() as u64 >= n => Ask::Complete,
        Framing::Length(_) => Ask::BodyUnsure,
        Framing::Chunked => {
            let mut decoder = chunked::Decoder::new();
            // Bounded: each step consumes bytes or stops.
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) if decoder.is_done() => return Ask::Complete,
                    Ok(None) | Err(_) => return Ask::BodyUnsure,
                }
            }
        }
    }
}

#[test]
fn mutated_client_requests_never_break_the_gateway() {
    let mock = Mock::http("m");
    let dir = tempfile::tempdir().unwrap();
    let up = json!({"type": "roundrobin", "nodes": {mock.node(): 1}});
    let doc = json!({"routes": [
        {"id": "split", "uri": "/chat/completions",
         "plugins": {"traffic-split": {"rules": [
             {"weight": 50, "upstream": up, "rewrite": {"uri": "/v1/chat/completions"}},
             {"weight": 50, "upstream": up, "rewrite": {"uri": "/v2/chat/completions"}}
         ]}},
         "upstream": up},
        // Matching on the body's `model` reads the whole body before forwarding.
        {"id": "by-model", "uri": "/by-model", "vars": [["post_arg.model", "==", "gpt-4"]],
         "upstream": up},
        // Every plugin split runs on the request path, in front of a split with a
        // fallback policy.
        {"id": "guarded", "uri": "/guarded/*", "upstream": up,
         "plugins": {
             "key-auth": {},
             "limit-count": {"count": 1000, "time_window": 60, "rejected_code": 429},
             "ai-rate-limiting": {"limit": 1_000_000, "time_window": 60},
             "api-breaker": {"break_response_code": 503,
                             "unhealthy": {"http_statuses": [500], "failures": 3}},
             "proxy-rewrite": {"regex_uri": ["^/guarded/(.*)", "/v1/$1"],
                               "headers": {"set": {"X-Team": "a"}}},
             "prometheus": {},
             "traffic-split": {"fallback": {}, "rules": [{"weighted_upstreams": [
                 {"weight": 95, "upstream": up, "name": "stable"},
                 {"weight": 5, "upstream": up, "name": "canary",
                  "rewrite": {"uri": "/v2/chat/completions"}}
             ]}]}
         }},
        {"id": "rest", "uri": "/*", "upstream": up},
    ], "consumers": [
        {"username": "alice", "plugins": {"key-auth": {"key": "alice-secret-key"}}}
    ]});
    let gw = start_standalone(dir.path(), &doc);

    let seeds = client_seeds();
    let others: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for case in 0..CLIENT_CASES {
        let mut rng = ChaCha8Rng::seed_from_u64(case);
        let seed = &seeds[below(&mut rng, seeds.len())];
        let request = mutate(&mut rng, seed, &others);
        let shown = String::from_utf8_lossy(&request[..request.len().min(300)]).into_owned();
        let asked = ask(&request);
        let patience = if asked == Ask::Complete {
            ANSWER_WAIT
        } else {
            QUIET
        };
        let bytes = exchange_raw(gw.proxy, &request, patience)
            .unwrap_or_else(|e| panic!("case {case}: {e}\nrequest: {shown:?}"));
        let context = || format!("case {case}, {asked:?}\nrequest: {shown:?}");
        if asked == Ask::H2 && !bytes.starts_with(b"HTTP/1.1 ") {
            // Served by the h2 server: frames, not an HTTP/1.1 head.
            *tally.entry("h2".into()).or_default() += 1;
            continue;
        }
        if bytes.is_empty() {
            assert!(
                matches!(asked, Ask::Incomplete | Ask::BodyUnsure | Ask::H2),
                "closed without an answer: {}",
                context()
            );
            *tally.entry("closed".into()).or_default() += 1;
            continue;
        }
        let answer = parse_answer(&bytes).unwrap_or_else(|e| panic!("{e}: {}", context()));
        *tally.entry(answer.status.to_string()).or_default() += 1;
        assert_ne!(answer.status, 500, "{answer:?}: {}", context());
        match asked {
            Ask::Refused(status) => assert_eq!(answer.status, status, "{answer:?}: {}", context()),
            Ask::Incomplete => panic!("an incomplete head was answered: {answer:?}: {}", context()),
            Ask::Complete => assert_ne!(answer.status, 502, "{answer:?}: {}", context()),
            Ask::BodyUnsure | Ask::H2 => {}
        }
        // An answer to HEAD has no body, errors included.
        if answer.status >= 400 && !request.starts_with(b"HEAD ") {
            let field = if answer.status == 401 {
                "message"
            } else {
                "error_msg"
            };
            check_error_body(&answer, field).unwrap_or_else(|e| panic!("{e}: {}", context()));
        }
    }
    eprintln!("answers by status over {CLIENT_CASES} mutated requests: {tally:?}");
    // The mutations are not all fatal: some requests still go through, and most of the
    // rest are refused with an answer rather than a silent close.
    assert!(tally.get("200").copied().unwrap_or(0) > 0, "{tally:?}");
    assert!(tally.get("400").copied().unwrap_or(0) > 0, "{tally:?}");
    assert_healthy(&gw, "/models");
    let hits = mock.hits();
    // The guarded route let the key through and rewrote the path.
    assert!(hits
        .iter()
        .any(|h| h.uri == "/v1/chat/completions" && h.headers.get("x-team").is_some()));
}

/// An upstream speaking raw bytes: for `GET /case/<n>` it writes the `n`th mutated
/// answer, then closes the connection.
struct RawUpstream {
    addr: SocketAddr,
    /// The case numbers asked for so far.
    asked: Arc<Mutex<BTreeSet<u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Valid answers an OpenAI-compatible upstream gives.
fn upstream_seeds() -> Vec<Vec<u8>> {
    let json_body = r#"{"id":"x","model":"gpt-4","usage":{"prompt_tokens":8,"completion_tokens":9,"total_tokens":17}}"#;
    let event = r#"data: {"choices":[{"delta":{"content":"Pong"}}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
    let event = format!("{event}\n\n");
    let error_event = "data: {\"error\":{\"message\":\"overloaded\",\"code\":503}}\n\n";
    vec![
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nServer: up\r\n\r\n{json_body}",
            json_body.len()
        ),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n{:x};ext=1\r\ndata: [DONE]\n\n\r\n0\r\nX-Trailer: t\r\n\r\n",
            event.len(),
            "data: [DONE]\n\n".len()
        ),
        "HTTP/1.1 204 No Content\r\nX-Request-Id: 7\r\n\r\n".into(),
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into(),
        format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{json_body}"),
        "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nKeep-Alive: timeout=5\r\n\r\nhello".into(),
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".into(),
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"a\"\r\n\r\n".into(),
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nbusy".into(),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{error_event}\r\n0\r\n\r\n",
            error_event.len()
        ),
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nevent: error\ndata: {\"message\":\"busy\"}\n\ndata: [DONE]\n\n".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

impl RawUpstream {
    fn start(seeds: Vec<Vec<u8>>) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let asked = Arc::new(Mutex::new(BTreeSet::new()));
        let noted = Arc::clone(&asked);
        let thread = std::thread::spawn(move || {
            let seeds = Arc::new(seeds);
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (seeds, noted) = (Arc::clone(&seeds), Arc::clone(&noted));
                        std::thread::spawn(move || answer_case(stream, &seeds, &noted));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        RawUpstream {
            addr,
            asked,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The answer of case `n`: a mutated seed (case 0 of each seed unmutated).
fn upstream_answer(n: u64, seeds: &[Vec<u8>]) -> Vec<u8> {
    let seed = &seeds[(n % seeds.len() as u64) as usize];
    if n < seeds.len() as u64 {
        return seed.clone();
    }
    let others: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    mutate(&mut ChaCha8Rng::seed_from_u64(n), seed, &others)
}

/// What the gateway must make of an upstream's answer, read with split's own parsers
/// (fuzzed against their invariants in `fuzz/`).
#[derive(Debug, PartialEq)]
enum Verdict {
    /// No valid final head before the upstream closed: 502 with a JSON error.
    BadHead,
    /// A valid final head with this status; the decoded body when it is complete and
    /// valid (`None` when it breaks: then the client may see the head and a cut body, or
    /// only the close).
    Answer(u16, Option<Vec<u8>>),
}

/// The final head at the start of `bytes` (1xx heads skipped) and the bytes after it, as
/// an answer to `GET`; `None` when there is no valid one.
fn final_head(bytes: &[u8]) -> Option<(ResponseHead, BytesMut)> {
    let mut buf = BytesMut::from(bytes);
    // Bounded: each interim head is taken off `buf`.
    loop {
        match parse_response(&mut buf, &Method::GET) {
            Ok(Parsed::Final(head)) => return Some((head, buf)),
            Ok(Parsed::Interim) => continue,
            Ok(Parsed::Partial) | Err(_) => return None,
        }
    }
}

/// Reads `bytes` as a whole HTTP/1.1 answer to a `GET` that ends with the connection.
fn verdict(bytes: &[u8]) -> Verdict {
    let Some((head, mut buf)) = final_head(bytes) else {
        return Verdict::BadHead;
    };
    let mut decoder = Decoder::new(head.framing);
    let mut body = Vec::new();
    // Bounded: every step takes bytes off `buf` or ends.
    let complete = loop {
        match decoder.decode(&mut buf) {
            Ok(Step::Data(data)) => body.extend_from_slice(&data),
            Ok(Step::End) => break true,
            Ok(Step::NeedMore) => break decoder.eof().is_ok(),
            Err(_) => break false,
        }
    };
    Verdict::Answer(head.parts.status.as_u16(), complete.then_some(body))
}

/// Reads one request head on `stream` and writes the answer its path names.
fn answer_case(mut stream: TcpStream, seeds: &[Vec<u8>], asked: &Mutex<BTreeSet<u64>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let Some(n) = text
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.strip_prefix("/case/"))
        .and_then(|n| n.parse().ok())
    else {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        return;
    };
    asked.lock().unwrap().insert(n);
    let _ = stream.write_all(&upstream_answer(n, seeds));
    let _ = stream.shutdown(Shutdown::Both);
}

#[test]
fn mutated_upstream_answers_never_break_the_gateway() {
    let upstream = RawUpstream::start(upstream_seeds());
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"routes": [
        {"id": "raw", "uri": "/*",
         "upstream": {"type": "roundrobin", "nodes": {upstream.addr.to_string(): 1}}},
    ]});
    let gw = start_standalone(dir.path(), &doc);

    let seeds = upstream_seeds();
    // By status; 0 counts bare closes.
    let mut tally: BTreeMap<u16, usize> = BTreeMap::new();
    for case in 0..UPSTREAM_CASES {
        let request = format!("GET /case/{case} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let sent = upstream_answer(case, &seeds);
        let shown = String::from_utf8_lossy(&sent[..sent.len().min(300)]).into_owned();
        let verdict_sent = verdict(&sent);
        let answer = exchange(gw.proxy, request.as_bytes())
            .unwrap_or_else(|e| panic!("case {case}: {e}\nupstream sent: {shown:?}"));
        let Some(answer) = answer else {
            // Only a body that breaks before the first byte reached the client ends in
            // a bare close (the head waits to go out with the first body bytes).
            assert!(
                matches!(verdict_sent, Verdict::Answer(_, None)),
                "case {case}: closed without an answer\nupstream sent: {shown:?}"
            );
            *tally.entry(0).or_default() += 1;
            continue;
        };
        *tally.entry(answer.status).or_default() += 1;
        match verdict_sent {
            Verdict::BadHead => {
                assert_eq!(
                    answer.status, 502,
                    "case {case}: {answer:?}\nupstream sent: {shown:?}"
                );
                check_error_body(&answer, "error_msg")
                    .unwrap_or_else(|e| panic!("case {case}: {e}\nupstream sent: {shown:?}"));
            }
            Verdict::Answer(status, body) => {
                assert_eq!(
                    answer.status, status,
                    "case {case}: {answer:?}\nupstream sent: {shown:?}"
                );
                if let Some(body) = body {
                    // The whole body came through, framed for the client.
                    assert_eq!(
                        verdict(&answer.raw),
                        Verdict::Answer(status, Some(body)),
                        "case {case}: {answer:?}\nupstream sent: {shown:?}"
                    );
                }
            }
        }
        if case < seeds.len() as u64 {
            // The unmutated answers are valid.
            assert!(
                matches!(verdict(&sent), Verdict::Answer(_, Some(_))),
                "case {case}"
            );
        }
    }
    eprintln!("answers by status over {UPSTREAM_CASES} mutated upstream answers: {tally:?}");
    assert!(tally.get(&502).copied().unwrap_or(0) > 0, "{tally:?}");
    assert!(tally.get(&200).copied().unwrap_or(0) > 0, "{tally:?}");
    assert_healthy(&gw, "/plain");
}

/// True when `bytes` start with a final head whose `Content-Type` is an event stream
/// (the rule the fallback's SSE peek uses).
fn is_sse(bytes: &[u8]) -> bool {
    final_head(bytes).is_some_and(|(head, _)| {
        head.parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"))
    })
}

#[test]
fn mutated_upstream_answers_fall_back_to_the_spare_arm() {
    // No `Retry-After`: a 429 carrying one would park the raw arm for seconds, and the
    // cases after it would never reach it.
    let seeds: Vec<Vec<u8>> = upstream_seeds()
        .into_iter()
        .filter(|s| !s.windows(11).any(|w| w == b"Retry-After"))
        .collect();
    let upstream = RawUpstream::start(seeds.clone());
    let spare = Mock::http("spare");
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"routes": [
        {"id": "llm", "uri": "/*",
         "plugins": {"traffic-split": {"fallback": {}, "rules": [{"weighted_upstreams": [
             {"upstream": {"nodes": {upstream.addr.to_string(): 1}}, "weight": 9, "name": "raw"},
             {"upstream": {"nodes": {spare.node(): 1}}, "weight": 1, "name": "spare"}
         ]}]}}},
    ]});
    let gw = start_standalone(dir.path(), &doc);

    let from_spare = |a: &Answer| {
        a.status == 200 && String::from_utf8_lossy(&a.rest).contains(r#""mock":"spare""#)
    };
    let (mut fell_back, mut passed, mut direct) = (0, 0, 0);
    for case in 0..UPSTREAM_CASES {
        let request = format!("GET /case/{case} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let sent = upstream_answer(case, &seeds);
        let shown = String::from_utf8_lossy(&sent[..sent.len().min(300)]).into_owned();
        let verdict_sent = verdict(&sent);
        let described = format!("{verdict_sent:?}");
        let context = || format!("case {case}, {described}\nupstream sent: {shown:?}");
        let answer =
            exchange(gw.proxy, request.as_bytes()).unwrap_or_else(|e| panic!("{e}: {}", context()));
        if !upstream.asked.lock().unwrap().contains(&case) {
            // The split picked the spare arm (one request in ten): it served.
            let answer = answer.unwrap_or_else(|| panic!("no answer: {}", context()));
            assert!(from_spare(&answer), "{answer:?}: {}", context());
            direct += 1;
            continue;
        }
        let retried = match &verdict_sent {
            Verdict::BadHead => true,
            Verdict::Answer(status, _) => split_core::config::fallback::DEFAULT_ON.contains(status),
        };
        let Some(answer) = answer else {
            // A body that breaks before anything went out, on an answer the policy keeps.
            assert!(
                !retried && matches!(verdict_sent, Verdict::Answer(_, None)),
                "closed without an answer: {}",
                context()
            );
            continue;
        };
        if from_spare(&answer) {
            fell_back += 1;
        } else {
            passed += 1;
        }
        match verdict_sent {
            // A broken head counts as a failed connection; a listed status falls back.
            _ if retried => assert!(from_spare(&answer), "{answer:?}: {}", context()),
            // The SSE peek may find an error event: then the spare serves.
            Verdict::Answer(status, _) if is_sse(&sent) && (200..300).contains(&status) => {
                assert!(
                    answer.status == status || from_spare(&answer),
                    "{answer:?}: {}",
                    context()
                );
            }
            Verdict::Answer(status, body) => {
                assert_eq!(answer.status, status, "{}", context());
                if let Some(body) = body {
                    assert_eq!(
                        verdict(&answer.raw),
                        Verdict::Answer(status, Some(body)),
                        "{answer:?}: {}",
                        context()
                    );
                }
            }
            Verdict::BadHead => unreachable!("a broken head is retried"),
        }
    }
    eprintln!(
        "{UPSTREAM_CASES} cases behind a fallback: {direct} picked the spare arm; of the \
         mutated answers, {fell_back} fell back to it and {passed} passed through"
    );
    assert!(
        fell_back > 100 && passed > 50 && direct > 10,
        "{fell_back} fell back, {passed} passed, {direct} direct"
    );
    // The unmutated 503 and the two streams that start with an error event moved to
    // the spare arm (those of them the split gave the raw arm).
    let hits: Vec<String> = spare.hits().into_iter().map(|h| h.uri).collect();
    let asked = upstream.asked.lock().unwrap().clone();
    let moved: Vec<u64> = (0..seeds.len() as u64)
        .filter(|&case| {
            let seed = &seeds[case as usize];
            seed.starts_with(b"HTTP/1.1 503") || seed.windows(5).any(|w| w == b"error")
        })
        .collect();
    assert_eq!(moved.len(), 3);
    let tried: Vec<u64> = moved
        .into_iter()
        .filter(|case| asked.contains(case))
        .collect();
    assert!(tried.len() >= 2, "{tried:?}");
    for case in tried {
        assert!(
            hits.contains(&format!("/case/{case}")),
            "case {case}: {hits:?}"
        );
    }
    assert_healthy(&gw, "/plain");
}
