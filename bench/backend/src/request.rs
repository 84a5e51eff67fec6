//! The client side shared by `ttfb` and `idle`: one HTTP/1.1 keep-alive connection and the
//! guide-shaped POST.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Opens a keep-alive HTTP/1.1 connection to `addr`; its driver runs on a spawned task,
/// which ends (and bumps nothing) when the peer closes the connection.
pub async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP/1.1 handshake with {addr}"))?;
    tokio::spawn(async move {
        // The peer closing is the normal end of a benchmark connection.
        let _ = connection.await;
    });
    Ok(sender)
}

/// `POST path` with the given JSON body, as the guide's curl sends it.
pub fn post(authority: &str, path: &str, body: &'static str) -> Result<Request<Full<Bytes>>> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .context("build request")
}
