//! The Admin service behind a real hyper HTTP/1.1 server on 127.0.0.1:0, driven by a raw
//! TCP client: `hyper::body::Incoming` bodies, Content-Length and chunked uploads.

mod common;

use std::time::Duration;

use common::*;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(20);

/// Serves connections on an ephemeral loopback port until the test ends.
async fn serve(h: &Harness) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let admin = h.admin.clone();
    tokio::spawn(async move {
        // At most a handful of connections per test.
        for _ in 0..16 {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let admin = admin.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, std::convert::Infallible>(admin.handle(req, peer.ip()).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends raw request bytes, returns the whole response text (the server closes).
async fn exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    tokio::time::timeout(LIMIT, async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("write head");
        // The server may answer and close before the whole body is sent.
        let _ = s.write_all(body).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .expect("exchange finishes in time")
}

#[tokio::test]
async fn guide_put_over_http() {
    let h = Harness::new();
    let addr = serve(&h).await;
    let head = format!(
        "PUT /apisix/admin/routes/test-v1 HTTP/1.1\r\nHost: x\r\nX-API-KEY: {ADMIN_KEY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        GUIDE_V1.len()
    );
    let resp = exchange(addr, &head, GUIDE_V1.as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("x-api-version: v3"),
        "{resp}"
    );
    assert!(resp.contains(r#""key":"/apisix/routes/test-v1""#), "{resp}");
    assert_eq!(h.live.load().routes.len(), 1);
}

#[tokio::test]
async fn chunked_oversize_upload_is_refused() {
    let h = Harness::new();
    let addr = serve(&h).await;
    let head = format!(
        "PUT /apisix/admin/routes/big HTTP/1.1\r\nHost: x\r\nX-API-KEY: {ADMIN_KEY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    // 2 MiB in 64 KiB chunks, then the terminator.
    let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
    let mut body = chunk.repeat(32).into_bytes();
    body.extend_from_slice(b"0\r\n\r\n");
    let resp = exchange(addr, &head, &body).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(
        resp.contains("greater than the maximum size 1572864"),
        "{resp}"
    );
    assert_eq!(h.admin.revision(), 0);
}

#[tokio::test]
async fn declared_oversize_upload_is_refused_without_reading_it() {
    let h = Harness::new();
    let addr = serve(&h).await;
    let head = format!(
        "PUT /apisix/admin/routes/big HTTP/1.1\r\nHost: x\r\nX-API-KEY: {ADMIN_KEY}\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n"
    );
    // No body is sent at all: the answer must come from the declared length alone.
    let resp = exchange(addr, &head, b"").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("request size 2000000"), "{resp}");
}
