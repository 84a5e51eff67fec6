//! The connection loop against a real loopback socket and a test handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::body::full;
use crate::server::Handler;

/// Sets the flag when dropped (a handler cancelled by a client that left).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `/echo` answers `<method> <uri> <body>`; `/ignore` answers without reading the body;
/// `/stream` streams three frames; `/slow` never answers (sets `cancelled` when dropped);
/// `/big` answers with a 6,000-byte header field.
fn handler(cancelled: Arc<AtomicBool>) -> Handler {
    Arc::new(move |req: Request<RequestBody>, _peer| {
        let cancelled = Arc::clone(&cancelled);
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            match parts.uri.path() {
                "/ignore" => Response::new(full("ignored")),
                "/big" => {
                    let mut r = Response::new(full("big"));
                    let value = http::HeaderValue::from_str(&"b".repeat(6000)).unwrap();
                    r.headers_mut().insert("x-big", value);
                    r
                }
                "/stream" => {
                    let frames = futures_util::stream::iter(["one", "two", "three"].map(|s| {
                        Ok::<_, crate::body::BoxError>(http_body::Frame::data(Bytes::from(s)))
                    }));
                    Response::new(crate::body::stream(http_body_util::StreamBody::new(frames)))
                }
                "/slow" => {
                    let _flag = DropFlag(cancelled);
                    std::future::pending::<()>().await;
                    Response::new(full(""))
                }
                _ => {
                    let text = match body.collect().await {
                        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                        Err(e) => format!("error: {e}"),
                    };
                    Response::new(full(format!("{} {} {text}", parts.method, parts.uri)))
                }
            }
        }) as crate::server::HandlerFuture
    })
}

struct Server {
    addr: SocketAddr,
    cancelled: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
}

async fn server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancelled = Arc::new(AtomicBool::new(false));
    let (stop, stop_rx) = watch::channel(false);
    let h = handler(Arc::clone(&cancelled));
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            tokio::spawn(serve(stream, peer, Arc::clone(&h), stop_rx.clone()));
        }
    });
    Server {
        addr,
        cancelled,
        stop,
    }
}

/// One parsed response: status line + headers (lowercase names), body.
#[derive(Debug)]
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Reads one response (Content-Length, chunked, or until close when neither).
async fn read_answer(r: &mut BufReader<TcpStream>, head_only: bool) -> Answer {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).await.unwrap();
        assert!(n > 0, "connection closed inside a head: {head:?}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut answer = Answer {
        head,
        body: Vec::new(),
    };
    if head_only {
        return answer;
    }
    if let Some(len) = answer.header("content-length") {
        let mut body = vec![0; len.parse().unwrap()];
        r.read_exact(&mut body).await.unwrap();
        answer.body = body;
    } else if answer.header("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).await.unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            answer.body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut answer.body).await.unwrap();
    }
    answer
}

async fn connect(s: &Server) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(s.addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    BufReader::new(stream)
}

/// True when the server closed the connection (EOF within 2 s).
async fn closed(r: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(Duration::from_secs(2), r.read_to_end(&mut rest)).await,
        Ok(Ok(0))
    )
}

fn within<F: std::future::Future>(f: F) -> tokio::time::Timeout<F> {
    tokio::time::timeout(Duration::from_secs(10), f)
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"GET /echo?1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo?2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /echo?3 HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        for expected in ["GET /echo?1 ", "POST /echo?2 abc", "GET /echo?3 "] {
            let a = read_answer(&mut c, false).await;
            assert!(a.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.head);
            assert_eq!(String::from_utf8(a.body).unwrap(), expected);
            assert!(a.head.contains("\r\nDate: "), "{}", a.head);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn heads_of_any_size_follow_each_other_on_one_connection() {
    // The head buffer is reused between answers and dropped after one above its keep
    // limit: no answer may carry bytes of the one before.
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        for path in ["/echo?1", "/big", "/echo?2", "/big", "/big", "/echo?3"] {
            c.get_mut()
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let a = read_answer(&mut c, false).await;
            assert!(a.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.head);
            assert_eq!(a.head.matches("HTTP/1.1").count(), 1, "{}", a.head);
            let big = a.header("x-big");
            if path == "/big" {
                assert_eq!(big.as_deref(), Some("b".repeat(6000).as_str()));
                assert_eq!(a.body, b"big");
            } else {
                assert_eq!(big, None, "{}", a.head);
                assert_eq!(String::from_utf8(a.body).unwrap(), format!("GET {path} "));
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_head_trickled_byte_by_byte_parses() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        for b in b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi" {
            c.get_mut().write_all(&[*b]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let a = read_answer(&mut c, false).await;
        assert_eq!(a.body, b"POST /echo hi");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn http10_closes_unless_keep_alive() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"GET /echo HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut c, false).await;
        assert_eq!(a.header("connection").as_deref(), Some("close"));
        assert!(closed(&mut c).await);

        let mut c = connect(&s).await;
        for i in 0..2 {
            c.get_mut()
                .write_all(
                    format!("GET /echo?{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
                )
                .await
                .unwrap();
            let a = read_answer(&mut c, false).await;
            assert_eq!(a.header("connection").as_deref(), Some("keep-alive"));
            assert_eq!(a.body, format!("GET /echo?{i} ").as_bytes());
        }
        // A streamed body to an HTTP/1.0 client is delimited by the close.
        c.get_mut()
            .write_all(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut c, false).await;
        assert_eq!(a.header("connection").as_deref(), Some("close"));
        assert_eq!(a.body, b"onetwothree");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn connection_close_from_the_client_closes_after_the_response() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut c, false).await;
        assert_eq!(a.header("connection").as_deref(), Some("close"));
        assert!(closed(&mut c).await);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn expect_continue_is_answered_before_the_body_is_read() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            .await
            .unwrap();
        let interim = read_answer(&mut c, true).await;
        assert_eq!(interim.head, "HTTP/1.1 100 Continue\r\n");
        c.get_mut().write_all(b"hello").await.unwrap();
        let a = read_answer(&mut c, false).await;
        assert_eq!(a.body, b"POST /echo hello");
        // A handler that does not read the body: no 100, and the connection closes
        // (the client never sent the body).
        c.get_mut()
            .write_all(
                b"POST /ignore HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
            )
            .await
            .unwrap();
        let a = read_answer(&mut c, false).await;
        assert!(a.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", a.head);
        assert_eq!(a.header("connection").as_deref(), Some("close"));
        assert_eq!(a.body, b"ignored");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn chunked_request_bodies_are_decoded() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.get_mut()
            .write_all(b"2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut c, false).await;
        assert_eq!(a.body, b"POST /echo abcde");
        // Bad framing: the handler sees an error and the connection closes.
        c.get_mut()
            .write_all(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut c, false).await;
        let text = String::from_utf8(a.body.clone()).unwrap();
        assert!(
            text.contains("error: invalid chunked request body"),
            "{text}"
        );
        assert_eq!(a.header("connection").as_deref(), Some("close"));
        assert!(closed(&mut c).await);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn head_and_streamed_responses() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"HEAD /echo HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut c, true).await;
        assert_eq!(a.header("content-length").as_deref(), Some("11"));
        c.get_mut()
            .write_all(b"GET /stream HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let a = read_answer(&mut c, false).await;
        assert_eq!(a.header("transfer-encoding").as_deref(), Some("chunked"));
        assert_eq!(a.body, b"onetwothree");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn unread_bodies_are_drained_and_the_connection_kept() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        let body = "x".repeat(20_000);
        c.get_mut()
            .write_all(format!("POST /ignore HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET /echo HTTP/1.1\r\n\r\n", body.len()).as_bytes())
            .await
            .unwrap();
        assert_eq!(read_answer(&mut c, false).await.body, b"ignored");
        let a = read_answer(&mut c, false).await;
        assert_eq!(a.body, b"GET /echo ");
        // Over the drain limit: the connection closes after the response.
        let big = DRAIN_MAX + 10;
        c.get_mut()
            .write_all(format!("POST /ignore HTTP/1.1\r\nContent-Length: {big}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let writer = {
            let chunk = vec![b'y'; big];
            let (mut rd, mut wr) = c.into_inner().into_split();
            let w = tokio::spawn(async move {
                let _ = wr.write_all(&chunk).await;
                wr
            });
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut out)).await;
            let text = String::from_utf8_lossy(&out).into_owned();
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
            assert!(text.ends_with("ignored"), "{text}");
            w
        };
        let _ = writer.await;
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_handler() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"GET /slow HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!s.cancelled.load(Ordering::SeqCst));
        drop(c);
        let mut waited = 0;
        while !s.cancelled.load(Ordering::SeqCst) && waited < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert!(
            s.cancelled.load(Ordering::SeqCst),
            "the handler was not dropped"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn refused_heads_get_json_and_a_close() {
    within(async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"GET /echo HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nBad\x02: 1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_answer(&mut c, false).await.body, b"GET /echo ");
        let a = read_answer(&mut c, false).await;
        assert!(
            a.head
                .starts_with("HTTP/1.1 400 Bad Request\r\nServer: split/"),
            "{}",
            a.head
        );
        assert_eq!(a.header("connection").as_deref(), Some("close"));
        let json: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert!(json["error_msg"]
            .as_str()
            .unwrap()
            .starts_with("400 Bad Request:"));
        assert!(closed(&mut c).await);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_answers_in_flight_with_close() {
    within(async {
        let s = server().await;
        let mut idle = connect(&s).await;
        idle.get_mut()
            .write_all(b"GET /echo HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        read_answer(&mut idle, false).await;
        let mut busy = connect(&s).await;
        busy.get_mut()
            .write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.stop.send(true).unwrap();
        assert!(closed(&mut idle).await, "idle connection still open");
        busy.get_mut().write_all(b"cd").await.unwrap();
        let a = read_answer(&mut busy, false).await;
        assert_eq!(a.body, b"POST /echo abcd");
        assert_eq!(a.header("connection").as_deref(), Some("close"));
        assert!(closed(&mut busy).await);
    })
    .await
    .unwrap();
}

/// The head timer is armed once per connection and re-armed lazily; each wait for a head
/// still gets the whole [`HEADER_READ_TIMEOUT`] from its own start (time is paused and
/// advances only while every task waits).
#[tokio::test(start_paused = true)]
async fn each_wait_for_a_head_gets_the_whole_header_read_timeout() {
    let limit = HEADER_READ_TIMEOUT * 4;
    tokio::time::timeout(limit, async {
        let s = server().await;
        let mut c = connect(&s).await;
        c.get_mut()
            .write_all(b"GET /echo HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        read_answer(&mut c, false).await;
        // Two thirds of the timeout later (past half of it), a second request.
        tokio::time::sleep(HEADER_READ_TIMEOUT * 2 / 3).await;
        c.get_mut()
            .write_all(b"GET /again HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_answer(&mut c, false).await.body, b"GET /again ");
        let idle_from = tokio::time::Instant::now();
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).await.unwrap(), 0);
        let idle = idle_from.elapsed();
        assert!(
            idle >= HEADER_READ_TIMEOUT && idle < HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "closed after {idle:?} idle"
        );

        // A connection that never sends a head is closed after the timeout too.
        let mut silent = connect(&s).await;
        let opened = tokio::time::Instant::now();
        assert_eq!(silent.read_to_end(&mut rest).await.unwrap(), 0);
        let waited = opened.elapsed();
        assert!(
            waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "closed after {waited:?}"
        );
    })
    .await
    .expect("the connections were closed");
}

#[tokio::test]
async fn the_connection_future_stays_small() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (stream, peer) = listener.accept().await.unwrap();
    let (_stop, stop_rx) = watch::channel(false);
    let future = serve(
        stream,
        peer,
        handler(Arc::new(AtomicBool::new(false))),
        stop_rx,
    );
    let size = std::mem::size_of_val(&future);
    eprintln!("connection future: {size} bytes");
    // hyper kept 16 KiB of buffers per idle connection; the whole task stays near 2 KiB.
    assert!(size <= 2560, "connection future is {size} bytes");
    drop(future);
    drop(client);
}
