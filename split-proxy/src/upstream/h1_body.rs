//! The response body of an HTTP/1.1 upstream, read from the connection by the task that
//! polls it; each read is handed on at once (SSE streams event by event). The rest of
//! an upload still going on is written meanwhile. When the body ended cleanly and both
//! sides allow it, the connection goes back to the pool; dropped early or failed, it
//! is closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use split_core::config::upstream::KeepalivePool;

use super::h1::H1Conn;
use super::h1_upload::Upload;
use super::pool::{Pool, PoolKey};
use crate::body::BoxError;
use split_core::wire::response::ResponseHead;
use split_core::wire::response_body::{Decoder, Step};

/// Where a connection goes back to.
pub struct Reuse {
    /// The pool.
    pub pool: Arc<Pool>,
    /// The connection's key.
    pub key: PoolKey,
    /// The upstream's pool limits.
    pub limits: KeepalivePool,
}

/// A streaming HTTP/1.1 response body.
pub struct H1Body {
    conn: Option<H1Conn>,
    /// The request's upload while it is not finished.
    upload: Option<Upload>,
    decoder: Decoder,
    keep_alive: bool,
    reuse: Option<Reuse>,
}

impl H1Body {
    /// The body announced by `head`, read from `conn`; `upload` is the request, which
    /// may still be going out.
    pub fn new(conn: H1Conn, upload: Upload, head: &ResponseHead, reuse: Option<Reuse>) -> Self {
        let mut body = H1Body {
            conn: Some(conn),
            upload: (!upload.finished()).then_some(upload),
            decoder: Decoder::new(head.framing),
            keep_alive: head.keep_alive,
            reuse,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The body ended: the connection goes back to the pool if reusable.
    fn finish(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let Some(reuse) = self.reuse.take() else {
            return;
        };
        if self.keep_alive && self.upload.is_none() && conn.buf.is_empty() {
            conn.uses = conn.uses.saturating_add(1);
            reuse.pool.give_back(reuse.key, conn, reuse.limits);
        }
    }

    fn fail(&mut self, e: impl Into<BoxError>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        Poll::Ready(Some(Err(e.into())))
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let (Some(upload), Some(conn)) = (this.upload.as_mut(), this.conn.as_mut()) {
            match upload.poll(conn.io(), cx) {
                Poll::Ready(Ok(())) => this.upload = None,
                Poll::Ready(Err(e)) => {
                    // The answer still counts; only the connection is lost.
                    tracing::debug!(error = %e, "upload ended after the response head");
                    this.keep_alive = false;
                    this.upload = None;
                }
                Poll::Pending => {}
            }
        }
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.decode(&mut conn.buf) {
                Err(e) => return this.fail(e),
                Ok(Step::Data(bytes)) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Ok(Step::End) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => match conn.poll_fill(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => {
                        // Closed by the upstream: never reused.
                        this.conn = None;
                        return match this.decoder.eof() {
                            Ok(()) => Poll::Ready(None),
                            Err(e) => Poll::Ready(Some(Err(e.into()))),
                        };
                    }
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => return this.fail(e),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
