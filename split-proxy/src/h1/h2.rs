//! h2 with prior knowledge: a connection whose first bytes are the HTTP/2 preface is
//! handed, with the bytes already read, to hyper's HTTP/2 server.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::body::RequestBody;
use crate::server::Handler;

/// The client connection preface of HTTP/2.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `buf` starts an h2 connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// Starts with the preface.
    Yes,
    /// A strict prefix of it: read more.
    Maybe,
    /// Not h2.
    No,
}

/// Classifies the first bytes of a connection.
pub fn preface(buf: &[u8]) -> Preface {
    if buf.starts_with(PREFACE) {
        Preface::Yes
    } else if PREFACE.starts_with(buf) {
        Preface::Maybe
    } else {
        Preface::No
    }
}

/// A stream whose first reads return `prefix`.
struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves an h2c connection whose first bytes (`read`) were already read; stops
/// gracefully when `stop` changes.
pub async fn serve(
    stream: TcpStream,
    read: Bytes,
    peer: SocketAddr,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let fut = handler(req.map(RequestBody::h2), peer);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let io = TokioIo::new(Prefixed {
        prefix: read,
        inner: stream,
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .serve_connection(io, service);
    tokio::pin!(conn);
    let stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "h2 client connection ended with an error");
            }
            return;
        }
        _ = stop.changed(), if !stopping => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "h2 client connection ended with an error");
    }
}
