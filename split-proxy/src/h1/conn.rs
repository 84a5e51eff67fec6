//! One client connection: read a head, run the handler, write the response, repeat.
//!
//! - Idle between requests with nothing buffered, the connection holds no buffer: it
//!   waits for the socket to be readable, then reads (see [`super::io`]).
//! - The head must arrive within [`HEADER_READ_TIMEOUT`] of the wait starting (idle
//!   keep-alive time included, as with hyper's `header_read_timeout`). The timer is
//!   armed once per connection and re-armed only when it fires before the current
//!   wait's deadline, so a busy keep-alive connection does not register a timer per
//!   request; the shutdown signal is likewise one future per connection.
//! - While the handler runs, the socket is watched: a client that closes its side
//!   cancels the handler (the request is logged as 499). Bytes of a pipelined request
//!   are buffered (bounded by the head limit) and served after the response.
//! - A request body the handler did not read is drained (at most [`DRAIN_MAX`] bytes
//!   within [`DRAIN_TIME`]) before the next request, else the connection is closed.
//! - On shutdown, an idle connection closes at once; a request in flight is answered
//!   with `Connection: close`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use http::Request;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, Sleep};

use super::body::{close_gate, Continue, ReadSide, Remaining, RequestBody};
use super::h2::{preface, Preface};
use super::io::{read_discard, read_more};
use super::response::{self, BodyPlan};
use super::write::{self, WriteError};
use crate::server::{Handler, HandlerFuture};
use split_core::wire::chunked::Decoder;
use split_core::wire::request::{self as head, Framing, Head, HeadError, MAX_HEAD};

/// How long a request head may take to arrive.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Most unread request body bytes drained to keep a connection.
pub const DRAIN_MAX: usize = 64 * 1024;
/// Longest wait while draining an unread request body.
pub const DRAIN_TIME: Duration = Duration::from_secs(1);
/// Longest wait for a request body still held elsewhere after the response.
const BODY_RETURN_TIME: Duration = Duration::from_secs(1);
/// Largest response-head buffer a connection keeps between answers (a larger one is
/// freed after its answer, so an idle connection holds little).
const HEAD_BUF_KEEP: usize = 4 * 1024;
/// After an error answer: how long and how much the client's bytes are still read, so
/// the close does not reset the connection before the client read the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_MAX: usize = 1024 * 1024;

/// What reading a head gave.
// Returned once per request and moved straight into the exchange: boxing the head
// would only add an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Request(Head),
    H2,
    Error(HeadError),
    Close,
}

struct Conn {
    /// The read side, unless a request body holds it.
    side: Option<ReadSide>,
    /// Where a request body sends the read side back.
    away: Option<oneshot::Receiver<ReadSide>>,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    handler: Handler,
    stop: watch::Receiver<bool>,
    stopping: bool,
    /// The head-read timer: its deadline is at or before the current wait's.
    head_timer: Option<Pin<Box<Sleep>>>,
    /// Completes when shutdown is signalled (watches a clone of `stop`).
    stop_signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Where the heads of the answers are encoded, reused from one to the next.
    head_buf: Vec<u8>,
}

/// A future that completes once `stop` changes (or its sender is gone).
fn stop_signal(stop: &watch::Receiver<bool>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let mut stop = stop.clone();
    Box::pin(async move {
        let _ = stop.changed().await;
    })
}

/// Serves one accepted connection until it closes.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    handler: Handler,
    stop: watch::Receiver<bool>,
) {
    let (reader, writer) = stream.into_split();
    let mut conn = Conn {
        side: Some(ReadSide {
            reader,
            buf: BytesMut::new(),
            remaining: Remaining::Done,
        }),
        away: None,
        writer,
        peer,
        handler,
        stop,
        stopping: false,
        head_timer: None,
        stop_signal: None,
        head_buf: Vec::new(),
    };
    let mut first = true;
    loop {
        match conn.read_head(first).await {
            Next::Request(head) => {
                // Not boxed: a box per request costs more CPU than the ~1 KiB it
                // would save per connection.
                if !conn.exchange(head).await {
                    return;
                }
            }
            Next::H2 => {
                Box::pin(conn.into_h2()).await;
                return;
            }
            Next::Error(error) => {
                tracing::debug!(%peer, ?error, "refused a request head");
                // Boxed: a rare state that would otherwise grow every connection.
                Box::pin(conn.refuse(error)).await;
                return;
            }
            Next::Close => {
                let _ = conn.writer.shutdown().await;
                return;
            }
        }
        first = false;
    }
}

impl Conn {
    /// Reads until a complete head is buffered.
    async fn read_head(&mut self, first: bool) -> Next {
        let Some(side) = self.side.as_mut() else {
            return Next::Close;
        };
        if *self.stop.borrow() {
            self.stopping = true;
        }
        let due = Instant::now() + HEADER_READ_TIMEOUT;
        // Earlier waits' deadlines are before `due`: a timer armed for one of them fires
        // early and is re-armed below.
        let timer = self
            .head_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        let stop = self
            .stop_signal
            .get_or_insert_with(|| stop_signal(&self.stop));
        let mut parse = !side.buf.is_empty();
        // Bounded by the head limit (each pass reads a byte or more) and the deadline.
        loop {
            if parse {
                match (first, preface(&side.buf)) {
                    (true, Preface::Yes) => return Next::H2,
                    (true, Preface::Maybe) => {}
                    _ => match head::parse(&mut side.buf) {
                        Ok(Some(head)) => return Next::Request(head),
                        Ok(None) => {}
                        Err(e) => return Next::Error(e),
                    },
                }
            }
            if side.buf.is_empty() && self.stopping {
                return Next::Close;
            }
            tokio::select! {
                biased;
                () = timer.as_mut() => {
                    if Instant::now() >= due {
                        tracing::debug!(peer = %self.peer, "no request head within the header read timeout");
                        return Next::Close;
                    }
                    timer.as_mut().reset(due);
                    parse = false;
                }
                () = stop.as_mut(), if !self.stopping => {
                    self.stopping = true;
                    parse = false;
                }
                read = read_more(&mut side.reader, &mut side.buf) => {
                    match read {
                        Ok(0) | Err(_) => return Next::Close,
                        Ok(n) => {
                            // Parse again only when a line ended (or on a first read,
                            // or over the limit): a trickled head costs one parse per line.
                            let before = side.buf.len() - n;
                            parse = before == 0
                                || side.buf[before.saturating_sub(1)..].contains(&b'\n')
                                || side.buf.len() > MAX_HEAD;
                        }
                    }
                }
            }
        }
    }

    /// One request and its response; `true` when the connection stays open.
    async fn exchange(&mut self, head: Head) -> bool {
        let Head {
            method,
            uri,
            version,
            headers,
            framing,
            keep_alive,
            expect_continue,
        } = head;
        let Some(mut side) = self.side.take() else {
            return false;
        };
        if side.buf.is_empty() {
            // Release the allocation: an idle connection keeps no buffer.
            side.buf = BytesMut::new();
        }
        let gate = expect_continue.then(|| Arc::new(Mutex::new(Continue::default())));
        let body = match framing {
            Framing::Empty => {
                self.side = Some(side);
                RequestBody::empty()
            }
            // The whole body came with the head (the common case for API calls): hand it
            // over as is and keep the socket here.
            Framing::Length(n) if n <= side.buf.len() as u64 => {
                // n <= buf.len(), so it fits in usize.
                let bytes = side.buf.split_to(n as usize).freeze();
                if side.buf.is_empty() {
                    side.buf = BytesMut::new();
                }
                self.side = Some(side);
                RequestBody::buffered(bytes)
            }
            Framing::Length(_) | Framing::Chunked => {
                side.remaining = match framing {
                    Framing::Length(n) => Remaining::Length(n),
                    _ => Remaining::Chunked(Decoder::new()),
                };
                let (back, away) = oneshot::channel();
                self.away = Some(away);
                RequestBody::h1(side, back, gate.clone())
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        let future = (self.handler)(request, self.peer);
        let Some(response) = self.await_handler(future).await else {
            tracing::debug!(peer = %self.peer, "client closed the connection before the response");
            return false;
        };
        if let Some(Ok(side)) = self.away.as_mut().map(oneshot::Receiver::try_recv) {
            self.away = None;
            self.side = Some(side);
        }
        let failed = matches!(
            self.side.as_ref().map(|s| &s.remaining),
            Some(Remaining::Failed)
        );
        let (prefix, continued) = gate.as_ref().map_or((&[][..], true), close_gate);
        // A client still waiting for `100 Continue` has not sent the body: closing is
        // the only way to end its request cleanly.
        let waiting = !continued && !self.side.as_ref().is_some_and(ReadSide::is_done);
        let keep_alive =
            keep_alive && !waiting && !failed && !self.stopping && !*self.stop.borrow();
        let (mut parts, body) = response.into_parts();
        let cx = response::Context {
            method: &method,
            version,
            keep_alive,
        };
        let plan = response::plan(
            parts.status,
            &mut parts.headers,
            &http_body::Body::size_hint(&body),
            cx,
        );
        let reason = parts
            .extensions
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| r.as_bytes());
        response::encode_into(&mut self.head_buf, parts.status, reason, &parts.headers);
        drop(parts);
        let written =
            write::response(&mut self.writer, prefix, &self.head_buf, body, plan.body).await;
        if self.head_buf.capacity() > HEAD_BUF_KEEP {
            self.head_buf = Vec::new();
        }
        match written {
            Ok(()) => {}
            Err(WriteError::Io(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "client connection failed while writing the response");
                return false;
            }
            Err(WriteError::Body(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "response body failed; closing the connection");
                return false;
            }
        }
        if plan.close || plan.body == BodyPlan::UntilClose {
            self.close_after_response().await;
            return false;
        }
        self.reuse().await
    }

    /// Awaits the handler while watching the socket; `None` when the client went away.
    async fn await_handler(
        &mut self,
        mut future: HandlerFuture,
    ) -> Option<http::Response<crate::body::ProxyBody>> {
        let mut lost = false;
        // Bounded: each pass ends the handler, takes the read side back, or reads bytes
        // (at most up to the head limit, then the socket is no longer watched).
        loop {
            let watching = self.side.as_ref().is_some_and(|s| s.buf.len() <= MAX_HEAD);
            tokio::select! {
                biased;
                response = &mut future => {
                    if lost {
                        self.stopping = true;
                    }
                    return Some(response);
                }
                back = wait_back(self.away.as_mut()), if self.away.is_some() => {
                    self.away = None;
                    match back {
                        Ok(side) => self.side = Some(side),
                        Err(_) => lost = true,
                    }
                }
                read = read_some(self.side.as_mut()), if watching => {
                    match read {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    }
                }
            }
        }
    }

    /// After a complete response on a kept connection: get the read side back and drain
    /// what is left of the request body. `true` when the connection can be reused.
    async fn reuse(&mut self) -> bool {
        if self.side.is_none() {
            let Some(away) = self.away.take() else {
                return false;
            };
            match tokio::time::timeout(BODY_RETURN_TIME, away).await {
                Ok(Ok(side)) => self.side = Some(side),
                _ => {
                    let _ = self.writer.shutdown().await;
                    return false;
                }
            }
        }
        let Some(side) = self.side.as_mut() else {
            return false;
        };
        match side.remaining {
            Remaining::Done => true,
            Remaining::Failed => {
                self.close_after_response().await;
                false
            }
            Remaining::Length(_) | Remaining::Chunked(_) => {
                if drain(side).await {
                    if side.buf.is_empty() {
                        side.buf = BytesMut::new();
                    }
                    true
                } else {
                    self.close_after_response().await;
                    false
                }
            }
        }
    }

    /// Ends the connection after its last response: FIN, then a short linger when the
    /// client may still be sending (so it reads the answer rather than a reset).
    async fn close_after_response(&mut self) {
        let unread = self
            .side
            .as_ref()
            .is_none_or(|s| !s.buf.is_empty() || !s.is_done());
        if unread {
            self.linger().await;
        } else {
            let _ = self.writer.shutdown().await;
        }
    }

    /// Answers a refused head and closes.
    async fn refuse(&mut self, error: HeadError) {
        let answer = super::error::answer(error);
        if write::raw(&mut self.writer, &answer).await.is_ok() {
            self.linger().await;
        }
    }

    /// FIN, then read and discard the client's bytes until it closes (bounded).
    async fn linger(&mut self) {
        let _ = self.writer.shutdown().await;
        let Some(side) = self.side.as_mut() else {
            return;
        };
        let _ = tokio::time::timeout(LINGER_TIME, async {
            let mut total = 0;
            while total < LINGER_MAX {
                match read_discard(&mut side.reader).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
    }

    /// Hands the connection to the h2 server.
    async fn into_h2(self) {
        let Some(side) = self.side else {
            return;
        };
        let read = side.buf.freeze();
        match side.reader.reunite(self.writer) {
            Ok(stream) => super::h2::serve(stream, read, self.peer, self.handler, self.stop).await,
            Err(e) => tracing::debug!(error = %e, "cannot reunite the client socket"),
        }
    }
}

/// Reads and discards the rest of the request body, within the drain bounds.
async fn drain(side: &mut ReadSide) -> bool {
    let result = tokio::time::timeout(DRAIN_TIME, async {
        let mut total = 0usize;
        loop {
            match std::future::poll_fn(|cx| side.poll_data(cx)).await {
                None => return side.is_done(),
                Some(Ok(data)) => {
                    total += data.len();
                    if total > DRAIN_MAX {
                        return false;
                    }
                }
                Some(Err(_)) => return false,
            }
        }
    })
    .await;
    result.unwrap_or(false)
}

async fn wait_back(
    away: Option<&mut oneshot::Receiver<ReadSide>>,
) -> Result<ReadSide, oneshot::error::RecvError> {
    match away {
        Some(away) => away.await,
        None => std::future::pending().await,
    }
}

async fn read_some(side: Option<&mut ReadSide>) -> std::io::Result<usize> {
    match side {
        Some(side) => read_more(&mut side.reader, &mut side.buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
