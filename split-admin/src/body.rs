//! Reading a request body incrementally under the 1.5 MiB Admin API limit.
//!
//! The body is consumed frame by frame and abandoned as soon as it passes the limit, so
//! an oversized upload is never buffered whole.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;

/// APISIX's `MAX_REQ_BODY`: 1.5 MiB.
pub const MAX_BODY: usize = 1024 * 1024 * 3 / 2;

/// How long the whole body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Larger than the limit (`size` is what was seen or declared).
    TooLarge {
        /// Bytes declared by Content-Length or received so far.
        size: u64,
    },
    /// The client's body stream failed.
    Read(String),
    /// The body did not arrive in time.
    Timeout,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { size } => write!(
                f,
                "request size {size} is greater than the maximum size {MAX_BODY} allowed"
            ),
            BodyError::Read(e) => write!(f, "failed to read the request body: {e}"),
            BodyError::Timeout => write!(
                f,
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        }
    }
}

/// Reads at most `limit` bytes of `body`; more is an error and the rest is not read.
pub(crate) async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body + Send,
    B::Data: Send,
    B::Error: std::fmt::Display,
{
    // A declared length (Content-Length) past the limit is refused without reading.
    let declared = body.size_hint().lower();
    if declared > limit as u64 {
        return Err(BodyError::TooLarge { size: declared });
    }
    match tokio::time::timeout(BODY_TIMEOUT, collect(body, limit)).await {
        Ok(r) => r,
        Err(_) => Err(BodyError::Timeout),
    }
}

async fn collect<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body + Send,
    B::Data: Send,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    // Each frame but the last adds at least one byte or is a trailer/empty frame; the cap
    // bounds a peer that streams empty frames forever.
    let max_frames = limit.saturating_add(1024);
    for _ in 0..max_frames {
        let Some(frame) = body.frame().await else {
            return Ok(buf.freeze());
        };
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        if let Ok(mut data) = frame.into_data() {
            use bytes::Buf;
            let seen = buf.len() as u64 + data.remaining() as u64;
            if seen > limit as u64 {
                return Err(BodyError::TooLarge { size: seen });
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                let n = chunk.len();
                buf.extend_from_slice(chunk);
                data.advance(n);
            }
        }
    }
    Err(BodyError::Read("too many body frames".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A body of `left` 4-byte frames with no size hint.
    struct Chunks {
        left: u32,
        sent: u32,
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            self.sent += 1;
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                b"abcd",
            )))))
        }
    }

    #[tokio::test]
    async fn small_body_is_read() {
        let b = read_limited(Full::new(Bytes::from_static(b"{}")), 10)
            .await
            .expect("fits");
        assert_eq!(&b[..], b"{}");
        let b = read_limited(Chunks { left: 2, sent: 0 }, 10)
            .await
            .expect("fits");
        assert_eq!(&b[..], b"abcdabcd");
    }

    #[tokio::test]
    async fn declared_oversize_is_refused_before_reading() {
        let e = read_limited(Full::new(Bytes::from(vec![b'x'; 11])), 10).await;
        assert_eq!(e, Err(BodyError::TooLarge { size: 11 }));
    }

    #[tokio::test]
    async fn streamed_oversize_is_abandoned_at_the_limit() {
        // An endless stream with no size hint: reading must stop right past the limit.
        let mut body = Chunks {
            left: u32::MAX,
            sent: 0,
        };
        let e = read_limited(&mut body, 10).await;
        assert_eq!(e, Err(BodyError::TooLarge { size: 12 }));
        assert_eq!(body.sent, 3);
    }
}
