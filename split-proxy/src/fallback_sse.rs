//! The streaming commit point: before an SSE answer is committed to the client its
//! first event is read (bounded in bytes and time); an error event there means the
//! request can still go to another arm. After the commit, error events and broken
//! streams pass through to the client and are counted.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use split_core::fallback::{first_sse_event, next_sse_block, SseBlock, SsePeek};

use crate::body::{BoxError, ProxyBody};
use crate::fallback_body::{Prefixed, Tail};
use crate::metrics::Metrics;

/// What the peek found.
pub struct Peeked {
    /// The first event is an error, or the stream broke before one arrived.
    pub failed: bool,
    /// The whole body again: the bytes read while peeking, then the rest.
    pub body: ProxyBody,
}

/// Reads `body` until its first SSE event is complete, `max_bytes` were read, the
/// stream ended, or `limit` passed; the bytes read are replayed by the returned body.
pub async fn peek(mut body: ProxyBody, max_bytes: usize, limit: Duration) -> Peeked {
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut seen: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            // Too slow to tell: commit what there is and stream on.
            Err(_) => return finish(chunks, Tail::Body(body), false),
            Ok(frame) => frame,
        };
        match frame {
            None => return finish(chunks, Tail::End, false),
            Some(Err(e)) => return finish(chunks, Tail::Error(Some(e)), true),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                seen.extend_from_slice(
                    &data[..data.len().min(max_bytes.saturating_sub(seen.len()))],
                );
                chunks.push_back(data);
                match first_sse_event(&seen) {
                    SsePeek::Event { error } => return finish(chunks, Tail::Body(body), error),
                    SsePeek::Incomplete if seen.len() >= max_bytes => {
                        return finish(chunks, Tail::Body(body), false)
                    }
                    SsePeek::Incomplete => {}
                }
            }
        }
    }
}

fn finish(chunks: VecDeque<Bytes>, tail: Tail, failed: bool) -> Peeked {
    Peeked {
        failed,
        body: Prefixed::new(chunks, tail).boxed(),
    }
}

/// Labels of the post-commit error counter.
#[derive(Clone)]
pub struct Served {
    /// Route id.
    pub route: String,
    /// Rule index.
    pub rule: usize,
    /// Serving arm label.
    pub arm: String,
}

/// Longest SSE block kept while looking for error events after the commit; a longer one
/// stops the scan (memory stays bounded).
const MAX_BLOCK: usize = 64 * 1024;

/// A committed response body: passes everything through and counts error events (SSE)
/// and a broken stream in `split_llm_post_commit_errors_total`.
pub struct Watched {
    inner: ProxyBody,
    pending: Option<Vec<u8>>,
    served: Served,
    metrics: Arc<Metrics>,
}

impl Watched {
    /// Wraps `inner`; `sse` turns on the event scan.
    pub fn new(inner: ProxyBody, sse: bool, served: Served, metrics: Arc<Metrics>) -> Watched {
        Watched {
            inner,
            pending: sse.then(Vec::new),
            served,
            metrics,
        }
    }

    fn scan(&mut self, data: &[u8]) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        pending.extend_from_slice(data);
        let mut used = 0;
        let mut errors = 0u64;
        while let Some((block, n)) = next_sse_block(&pending[used..]) {
            used += n;
            if block == (SseBlock::Event { error: true }) {
                errors += 1;
            }
        }
        pending.drain(..used);
        if pending.len() > MAX_BLOCK {
            self.pending = None;
        }
        for _ in 0..errors {
            self.count("sse_error");
        }
    }

    fn count(&self, kind: &str) {
        let s = &self.served;
        self.metrics
            .post_commit_error(&s.route, s.rule, &s.arm, kind);
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    this.scan(&data);
                }
            }
            Poll::Ready(Some(Err(_))) => this.count("stream_error"),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;

    #[tokio::test]
    async fn peek_finds_a_first_error_event_and_replays_it() {
        let p = peek(
            full("data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n"),
            1024,
            Duration::from_secs(1),
        )
        .await;
        assert!(p.failed);
        let bytes = p.body.collect().await.unwrap().to_bytes();
        assert!(bytes.starts_with(b"data: {\"error\""));
        assert!(bytes.ends_with(b"[DONE]\n\n"));
        let ok = peek(
            full("data: {\"choices\":[]}\n\n"),
            1024,
            Duration::from_secs(1),
        )
        .await;
        assert!(!ok.failed);
        let big = peek(
            full("data: ".to_owned() + &"x".repeat(500)),
            64,
            Duration::from_secs(1),
        )
        .await;
        assert!(!big.failed, "over the byte bound: commit");
        assert_eq!(big.body.collect().await.unwrap().to_bytes().len(), 506);
    }

    #[tokio::test]
    async fn post_commit_errors_are_counted_and_passed_through() {
        let metrics = Metrics::new();
        let served = Served {
            route: "r".into(),
            rule: 0,
            arm: "b".into(),
        };
        let text = "data: {\"choices\":[]}\n\ndata: {\"error\":{}}\n\nevent: error\ndata: x\n\n";
        let body = Watched::new(full(text), true, served, Arc::clone(&metrics));
        let out = body.boxed_unsync().collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], text.as_bytes());
        let exposition = metrics.encode();
        assert!(
            exposition.contains(
                r#"split_llm_post_commit_errors_total{route="r",rule="0",arm="b",kind="sse_error"} 2"#
            ),
            "{exposition}"
        );
    }
}
