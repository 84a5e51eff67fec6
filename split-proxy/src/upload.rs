//! The request body on its way upstream: streamed frame by frame, with progress shared
//! with the request task so the response-head wait can tell a stalled upload (send
//! timeout) from a slow upstream (read timeout), and a byte count for `ingress` metrics.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};

/// Upload progress, shared between the body and the request task.
#[derive(Debug)]
pub struct Progress {
    origin: Instant,
    last_ms: AtomicU64,
    done: AtomicBool,
    bytes: AtomicU64,
    /// The first bytes of a JSON body (to log its `model`), when captured.
    head: Option<Mutex<Captured>>,
    /// Why the client's body failed (bad chunked framing, the client gone), if it did.
    client_error: OnceLock<String>,
}

/// The captured start of a body: a body that came in one piece (the common case for
/// API calls) is kept as that shared piece, without a copy.
#[derive(Debug, Default)]
enum Captured {
    #[default]
    Nothing,
    One(Bytes),
    Copied(Vec<u8>),
}

impl Captured {
    fn bytes(&self) -> &[u8] {
        match self {
            Captured::Nothing => &[],
            Captured::One(b) => b,
            Captured::Copied(v) => v,
        }
    }

    /// Appends `data`, keeping at most `cap` bytes.
    fn push(&mut self, data: &Bytes, cap: usize) {
        match self {
            Captured::Nothing => {
                *self = Captured::One(data.slice(..data.len().min(cap)));
                return;
            }
            // A second piece: from here on the start is a copy.
            Captured::One(first) => *self = Captured::Copied(first.to_vec()),
            Captured::Copied(_) => {}
        }
        if let Captured::Copied(v) = self {
            let room = cap.saturating_sub(v.len());
            v.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
}

/// Largest JSON body whose `model` is picked up for the access log.
const HEAD_CAP: usize = 64 * 1024;

impl Progress {
    /// Progress starting now; `capture_json` keeps the body's first bytes so
    /// [`Progress::model`] can read a JSON `model` field.
    pub fn new(capture_json: bool) -> Arc<Progress> {
        Arc::new(Progress {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
            done: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
            head: capture_json.then(|| Mutex::new(Captured::Nothing)),
            client_error: OnceLock::new(),
        })
    }

    /// The `model` of a captured JSON body that went upstream completely.
    pub fn model(&self) -> Option<String> {
        let head = self.head.as_ref()?;
        if !self.done() {
            return None;
        }
        let head = head.lock().unwrap_or_else(|p| p.into_inner());
        if head.bytes().len() as u64 != self.bytes() {
            return None;
        }
        split_core::llm::model_of(head.bytes())
    }

    fn capture(&self, data: &Bytes) {
        let Some(head) = &self.head else { return };
        let mut head = head.lock().unwrap_or_else(|p| p.into_inner());
        head.push(data, HEAD_CAP);
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When this progress was made (its first activity).
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// When the body last made progress.
    pub fn last_activity(&self) -> Instant {
        self.origin + std::time::Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// True once the whole body went upstream.
    pub fn done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// Bytes passed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Why the client's body failed, when it did: a failed upload is then the client's
    /// fault, not the upstream's.
    pub fn client_error(&self) -> Option<&str> {
        self.client_error.get().map(String::as_str)
    }
}

/// A request body reporting its progress.
pub struct ProgressBody {
    inner: ProxyBody,
    progress: Arc<Progress>,
}

impl ProgressBody {
    /// Wraps `inner`. The progress's last activity stays at its origin (the body is
    /// wrapped right after the progress is made; reading the clock again costs ~25 ns).
    pub fn new(inner: ProxyBody, progress: Arc<Progress>) -> ProgressBody {
        if inner.is_end_stream() {
            progress.done.store(true, Ordering::Relaxed);
        }
        ProgressBody { inner, progress }
    }
}

impl Body for ProgressBody {
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
                    this.progress.capture(data);
                    this.progress
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                this.progress.touch();
                if this.inner.is_end_stream() {
                    this.progress.done.store(true, Ordering::Relaxed);
                }
            }
            // Already done when the last data frame said so: that frame was the activity.
            Poll::Ready(None) if !this.progress.done() => {
                this.progress.touch();
                this.progress.done.store(true, Ordering::Relaxed);
            }
            Poll::Ready(None) | Poll::Pending => {}
            Poll::Ready(Some(Err(e))) => {
                // The first error is the one the client caused; later ones follow it.
                let _ = this.progress.client_error.set(e.to_string());
            }
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
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn model_is_read_from_a_complete_json_upload() {
        let progress = Progress::new(true);
        let body = ProgressBody::new(
            crate::body::full(r#"{"model":"gpt-4","x":[1]}"#),
            Arc::clone(&progress),
        );
        assert_eq!(progress.model(), None);
        let _ = body.collect().await.unwrap();
        assert!(progress.done());
        assert_eq!(progress.bytes(), 25);
        assert_eq!(progress.model().as_deref(), Some("gpt-4"));

        let progress = Progress::new(false);
        let body = ProgressBody::new(
            crate::body::full(r#"{"model":"gpt-4"}"#),
            Arc::clone(&progress),
        );
        let _ = body.collect().await.unwrap();
        assert_eq!(progress.model(), None);
    }

    #[tokio::test]
    async fn model_is_read_from_an_upload_in_pieces() {
        let progress = Progress::new(true);
        let pieces = [r#"{"mod"#, r#"el":"gpt"#, r#"-4","x":[1]}"#]
            .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from(p))));
        let body = ProgressBody::new(
            crate::body::stream(http_body_util::StreamBody::new(futures_util::stream::iter(
                pieces,
            ))),
            Arc::clone(&progress),
        );
        let _ = body.collect().await.unwrap();
        assert_eq!(progress.bytes(), 25);
        assert_eq!(progress.model().as_deref(), Some("gpt-4"));
    }

    #[test]
    fn captures_keep_at_most_the_cap() {
        let mut one = Captured::default();
        one.push(&Bytes::from_static(b"abcdef"), 4);
        assert_eq!(one.bytes(), b"abcd");
        one.push(&Bytes::from_static(b"gh"), 4);
        assert_eq!(one.bytes(), b"abcd");
        let mut two = Captured::default();
        two.push(&Bytes::from_static(b"ab"), 5);
        two.push(&Bytes::from_static(b"cd"), 5);
        two.push(&Bytes::from_static(b"ef"), 5);
        assert_eq!(two.bytes(), b"abcde");
    }
}
