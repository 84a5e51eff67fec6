//! [`RequestBody`]: the body of a request handed to a handler. An HTTP/1.1 body is
//! decoded straight from the connection's socket as the handler polls it (nothing is
//! buffered beyond what one read brought); the socket's read side goes back to the
//! connection when the body ends or is dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::oneshot;

use split_core::wire::chunked::{ChunkedError, Decoder};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The socket failed.
    #[error("reading the request body failed: {0}")]
    Io(#[from] std::io::Error),
    /// Bad chunked framing.
    #[error(transparent)]
    Chunked(#[from] ChunkedError),
    /// The client closed the connection before the end of the body.
    #[error("the client closed the connection before the end of the request body")]
    Incomplete,
    /// An h2 stream error.
    #[error(transparent)]
    H2(#[from] hyper::Error),
}

/// What is left of an HTTP/1.1 request body.
#[derive(Debug)]
pub enum Remaining {
    /// Nothing (the body ended, or there was none).
    Done,
    /// This many bytes.
    Length(u64),
    /// Chunked, at this point.
    Chunked(Decoder),
    /// The framing broke: the connection cannot be reused.
    Failed,
}

/// The read side of a client connection: the socket, bytes read but not consumed, and
/// what is left of the current request body.
#[derive(Debug)]
pub struct ReadSide {
    /// The socket's read half.
    pub reader: OwnedReadHalf,
    /// Bytes read but not consumed (body or pipelined requests).
    pub buf: BytesMut,
    /// The current request body.
    pub remaining: Remaining,
}

impl ReadSide {
    /// The next piece of the current body, reading the socket when needed; `None` at its
    /// end (and after an error, which is reported once).
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        // Bounded: every pass either returns or read at least one byte; 64 reads per poll.
        for _ in 0..64 {
            match &mut self.remaining {
                Remaining::Done | Remaining::Failed => return Poll::Ready(None),
                Remaining::Length(left) => {
                    if !self.buf.is_empty() {
                        let n = usize::try_from(*left)
                            .unwrap_or(usize::MAX)
                            .min(self.buf.len());
                        // n <= left.
                        *left -= n as u64;
                        if *left == 0 {
                            self.remaining = Remaining::Done;
                        }
                        return Poll::Ready(Some(Ok(self.buf.split_to(n).freeze())));
                    }
                }
                Remaining::Chunked(decoder) => match decoder.decode(&mut self.buf) {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(data))),
                    Ok(None) if decoder.is_done() => {
                        self.remaining = Remaining::Done;
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.remaining = Remaining::Failed;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
            }
            match std::task::ready!(super::io::poll_read_more(
                &mut self.reader,
                cx,
                &mut self.buf
            )) {
                Ok(0) => {
                    self.remaining = Remaining::Failed;
                    return Poll::Ready(Some(Err(BodyError::Incomplete)));
                }
                Ok(_) => {}
                Err(e) => {
                    self.remaining = Remaining::Failed;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// True when the current body has been read to its end.
    pub fn is_done(&self) -> bool {
        matches!(self.remaining, Remaining::Done)
    }
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Who writes `100 Continue`: the body, when first polled, unless the connection
/// already started the response (then the body must not write anything).
#[derive(Debug, Default)]
pub struct Continue {
    /// Bytes of [`CONTINUE`] written.
    written: usize,
    /// The response head has started: nothing more from the body.
    closed: bool,
    /// The body task waiting to write.
    waker: Option<Waker>,
}

/// Shared between a body and its connection.
pub type ContinueGate = Arc<Mutex<Continue>>;

/// Closes `gate` for the body. Returns the part of `100 Continue` the connection must
/// still write before the response head (empty unless the body wrote only part of it),
/// and whether the client was told to continue at all.
pub fn close_gate(gate: &ContinueGate) -> (&'static [u8], bool) {
    let mut g = gate
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    g.closed = true;
    if let Some(waker) = g.waker.take() {
        waker.wake();
    }
    match g.written {
        0 => (&[], false),
        n => (CONTINUE.get(n..).unwrap_or(&[]), true),
    }
}

/// An HTTP/1.1 request body read from the connection.
#[derive(Debug)]
pub struct H1Body {
    side: Option<ReadSide>,
    back: Option<oneshot::Sender<ReadSide>>,
    expect: Option<ContinueGate>,
}

impl H1Body {
    fn give_back(&mut self) {
        if let (Some(side), Some(back)) = (self.side.take(), self.back.take()) {
            let _ = back.send(side);
        }
    }

    /// Writes `100 Continue` if the gate is still open.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BodyError>> {
        let (Some(gate), Some(side)) = (&self.expect, &self.side) else {
            return Poll::Ready(Ok(()));
        };
        let mut g = gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: each pass writes at least one byte or returns.
        for _ in 0..=CONTINUE.len() {
            if g.closed || g.written >= CONTINUE.len() {
                drop(g);
                self.expect = None;
                return Poll::Ready(Ok(()));
            }
            let stream = side.reader.as_ref();
            match stream.try_write(&CONTINUE[g.written..]) {
                Ok(0) => {
                    return Poll::Ready(Err(
                        std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                    ))
                }
                Ok(n) => g.written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    g.waker = Some(cx.waker().clone());
                    std::task::ready!(stream.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for H1Body {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// The body of a request handed to a handler.
#[derive(Debug)]
pub struct RequestBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Empty,
    /// A whole body that arrived with the head (taken when polled).
    Buffered(Option<Bytes>),
    H1(H1Body),
    H2(hyper::body::Incoming),
}

impl RequestBody {
    /// No body.
    pub fn empty() -> RequestBody {
        RequestBody { kind: Kind::Empty }
    }

    /// A whole body already read (it came with the head).
    pub fn buffered(bytes: Bytes) -> RequestBody {
        RequestBody {
            kind: Kind::Buffered(Some(bytes)),
        }
    }

    /// An HTTP/1.1 body read from `side`, which is sent to `back` when the body ends or
    /// is dropped; `expect` when the client waits for `100 Continue`.
    pub fn h1(
        side: ReadSide,
        back: oneshot::Sender<ReadSide>,
        expect: Option<ContinueGate>,
    ) -> RequestBody {
        RequestBody {
            kind: Kind::H1(H1Body {
                side: Some(side),
                back: Some(back),
                expect,
            }),
        }
    }

    /// The body of an h2 request.
    pub fn h2(body: hyper::body::Incoming) -> RequestBody {
        RequestBody {
            kind: Kind::H2(body),
        }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::empty()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Buffered(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::H2(body) => Pin::new(body).poll_frame(cx).map_err(BodyError::from),
            Kind::H1(body) => {
                if body
                    .side
                    .as_ref()
                    .is_some_and(|s| s.buf.is_empty() && !s.is_done())
                {
                    std::task::ready!(body.poll_continue(cx))?;
                }
                let Some(side) = body.side.as_mut() else {
                    return Poll::Ready(None);
                };
                let next = std::task::ready!(side.poll_data(cx));
                if next.is_none() || side.is_done() {
                    body.give_back();
                }
                Poll::Ready(next.map(|r| r.map(Frame::data)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Buffered(bytes) => bytes.is_none(),
            Kind::H2(body) => body.is_end_stream(),
            Kind::H1(body) => body.side.as_ref().is_none_or(ReadSide::is_done),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::H2(body) => body.size_hint(),
            Kind::H1(body) => match body.side.as_ref().map(|s| &s.remaining) {
                None | Some(Remaining::Done) => SizeHint::with_exact(0),
                Some(Remaining::Length(n)) => SizeHint::with_exact(*n),
                Some(_) => SizeHint::default(),
            },
        }
    }
}
