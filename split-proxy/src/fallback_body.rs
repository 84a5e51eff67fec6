//! Bodies for fallback: the request body buffered so it can be sent again (up to
//! `--max-body-size`; a larger one streams on as today, without fallback), and a body
//! that replays bytes already read (a peeked SSE head, a buffered request prefix) before
//! the rest.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::body::{BoxError, ProxyBody};
use crate::reply;

/// The client's request body as fallback sees it.
pub enum Replay {
    /// Whole, in memory: every attempt sends a copy.
    Whole(Bytes),
    /// Larger than the limit: only one attempt can use it.
    Once(ProxyBody),
}

/// Reads `body` into memory up to `max` bytes; past that, the bytes read so far and
/// the rest of the stream become [`Replay::Once`]. A declared `Content-Length` over
/// `max` skips buffering at once.
pub async fn buffer<B>(
    body: B,
    max: usize,
    content_length: Option<u64>,
) -> Result<Replay, Box<http::Response<ProxyBody>>>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let mut body = body.map_err(Into::into).boxed_unsync();
    if content_length.is_some_and(|n| n > max as u64) {
        return Ok(Replay::Once(body));
    }
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total = 0usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(e)) => {
                return Err(Box::new(reply::error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid request body: {e}"),
                )))
            }
            Some(Ok(frame)) => {
                // Trailers of a request body are not forwarded by the proxy either.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                total = total.saturating_add(data.len());
                chunks.push_back(data);
                if total > max {
                    return Ok(Replay::Once(
                        Prefixed::new(chunks, Tail::Body(body)).boxed(),
                    ));
                }
            }
        }
    }
    let mut whole = BytesMut::with_capacity(total);
    for chunk in chunks {
        whole.extend_from_slice(&chunk);
    }
    Ok(Replay::Whole(whole.freeze()))
}

/// What follows the replayed bytes.
pub enum Tail {
    /// The rest of a stream.
    Body(ProxyBody),
    /// An error to report after the bytes (a stream that broke while being peeked).
    Error(Option<BoxError>),
    /// Nothing: the stream had ended.
    End,
}

/// Bytes already read, then the tail.
pub struct Prefixed {
    chunks: VecDeque<Bytes>,
    tail: Tail,
}

impl Prefixed {
    /// `chunks` first, then `tail`.
    pub fn new(chunks: VecDeque<Bytes>, tail: Tail) -> Prefixed {
        Prefixed { chunks, tail }
    }

    /// As a proxy body.
    pub fn boxed(self) -> ProxyBody {
        BodyExt::boxed_unsync(self)
    }
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(chunk) = this.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match &mut this.tail {
            Tail::Body(b) => Pin::new(b).poll_frame(cx),
            Tail::Error(e) => Poll::Ready(e.take().map(Err)),
            Tail::End => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
            && match &self.tail {
                Tail::Body(b) => b.is_end_stream(),
                Tail::Error(e) => e.is_none(),
                Tail::End => true,
            }
    }

    fn size_hint(&self) -> SizeHint {
        let head: u64 = self.chunks.iter().map(|c| c.len() as u64).sum();
        match &self.tail {
            Tail::Body(b) => {
                let inner = b.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(head));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(head));
                }
                hint
            }
            Tail::Error(_) | Tail::End => SizeHint::with_exact(head),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;

    async fn collect(body: ProxyBody) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn small_bodies_are_whole_and_large_ones_stream_on_intact() {
        match buffer(full("hello"), 10, None).await {
            Ok(Replay::Whole(b)) => assert_eq!(&b[..], b"hello"),
            _ => panic!("expected a whole body"),
        }
        let big = "x".repeat(100);
        match buffer(full(big.clone()), 10, None).await {
            Ok(Replay::Once(b)) => assert_eq!(collect(b).await, big.as_bytes()),
            _ => panic!("expected a streamed body"),
        }
        match buffer(full(big.clone()), 10, Some(100)).await {
            Ok(Replay::Once(b)) => assert_eq!(collect(b).await, big.as_bytes()),
            _ => panic!("expected a streamed body"),
        }
    }

    #[tokio::test]
    async fn prefixed_replays_then_continues() {
        let chunks = VecDeque::from([Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        let body = Prefixed::new(chunks, Tail::Body(full("ef"))).boxed();
        assert_eq!(collect(body).await, &b"abcdef"[..]);
        let chunks = VecDeque::from([Bytes::from_static(b"ab")]);
        let body = Prefixed::new(chunks, Tail::End);
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(collect(body.boxed()).await, &b"ab"[..]);
        let body = Prefixed::new(VecDeque::new(), Tail::Error(Some("broken".into()))).boxed();
        assert!(body.collect().await.is_err());
    }
}
