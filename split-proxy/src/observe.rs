//! The response body the client receives: streams the upstream body frame by frame,
//! enforces the upstream read timeout between frames, counts bytes, picks up LLM token
//! usage, and records the request (metrics + access log) exactly once when the body ends
//! or is dropped (client gone).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::access_log::AccessLog;
use crate::body::{BoxError, ProxyBody};
use crate::metrics::Metrics;
use crate::record::RequestRecord;

/// Where finished requests are reported.
#[derive(Clone)]
pub struct Observer {
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Access log, if configured.
    pub access_log: Option<Arc<AccessLog>>,
}

impl Observer {
    /// Reports a finished request.
    pub fn finish(&self, record: &RequestRecord) {
        self.metrics.finish(record);
        if let Some(log) = &self.access_log {
            log.write(record.to_json_line());
        }
    }
}

/// Bytes of the response tail kept to find `usage` token counts.
const TAIL: usize = 4096;

/// A response body being observed.
pub struct ObservedBody {
    inner: ProxyBody,
    read_timeout: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    record: Option<RequestRecord>,
    started: Instant,
    observer: Observer,
    tail: Vec<u8>,
    watch_usage: bool,
}

impl ObservedBody {
    /// Wraps `inner`; `read_timeout` bounds the wait for each upstream frame.
    pub fn new(
        inner: ProxyBody,
        read_timeout: Option<Duration>,
        record: RequestRecord,
        started: Instant,
        observer: Observer,
        watch_usage: bool,
    ) -> ObservedBody {
        ObservedBody {
            inner,
            read_timeout,
            sleep: None,
            record: Some(record),
            started,
            observer,
            tail: Vec::new(),
            watch_usage,
        }
    }

    fn on_data(&mut self, data: &Bytes) {
        if let Some(r) = self.record.as_mut() {
            r.bytes_sent = r.bytes_sent.saturating_add(data.len() as u64);
        }
        if self.watch_usage {
            self.tail.extend_from_slice(data);
            if self.tail.len() > 2 * TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
        }
    }

    fn finish(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.request_time = self.started.elapsed();
        if self.watch_usage {
            record.prompt_tokens = find_number(&self.tail, b"\"prompt_tokens\"");
            record.completion_tokens = find_number(&self.tail, b"\"completion_tokens\"");
        }
        self.observer.finish(&record);
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    this.on_data(&data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(error = %e, "upstream response body failed");
                this.finish();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some(limit) = this.read_timeout {
                    let sleep = this
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                    if sleep.as_mut().poll(cx).is_ready() {
                        tracing::warn!(timeout = ?limit, "upstream read timeout while streaming the body");
                        this.finish();
                        return Poll::Ready(Some(Err("upstream read timeout".into())));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Finds the last `"key": <digits>` in `hay`.
fn find_number(hay: &[u8], key: &[u8]) -> Option<u64> {
    let pos = rfind(hay, key)?;
    let rest = &hay[pos + key.len()..];
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let rest = rest.strip_prefix(b":")?;
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &rest[start..];
    let len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // ASCII digits are UTF-8.
    std::str::from_utf8(&rest[..len]).ok()?.parse().ok()
}

/// Start of the last occurrence of `needle` in `hay`: steps back over the needle's first
/// byte and compares only there (a response tail has few `"`, unlike a window compare at
/// every offset).
fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut end = hay.len().checked_sub(needle.len())? + 1;
    while let Some(i) = hay[..end].iter().rposition(|&b| b == first) {
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        end = i;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn usage_numbers_are_found_in_the_tail() {
        let body =
            br#"{"id":"x","usage":{"prompt_tokens": 12,"completion_tokens":7,"total_tokens":19}}"#;
        assert_eq!(find_number(body, b"\"prompt_tokens\""), Some(12));
        assert_eq!(find_number(body, b"\"completion_tokens\""), Some(7));
        assert_eq!(find_number(body, b"\"missing\""), None);
        assert_eq!(
            find_number(b"\"prompt_tokens\":", b"\"prompt_tokens\""),
            None
        );
        // The last occurrence wins (SSE: the final chunk carries the totals).
        let sse = br#"data: {"usage":{"prompt_tokens":1}} data: {"usage":{"prompt_tokens" :  22}}"#;
        assert_eq!(find_number(sse, b"\"prompt_tokens\""), Some(22));
        assert_eq!(find_number(b"", b"\"k\""), None);
        assert_eq!(find_number(b"\"k", b"\"k\""), None);
        assert_eq!(
            find_number(b"\"k\":99999999999999999999999", b"\"k\""),
            None
        );
        assert_eq!(rfind(b"abcabc", b"bc"), Some(4));
        assert_eq!(rfind(b"abc", b"abc"), Some(0));
        assert_eq!(rfind(b"ab", b"abc"), None);
        assert_eq!(rfind(b"abc", b""), None);
    }

    #[tokio::test]
    async fn record_is_emitted_once_with_byte_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = Arc::new(AccessLog::open(path.to_str().unwrap()).unwrap());
        let observer = Observer {
            metrics: Metrics::new(),
            access_log: Some(Arc::clone(&log)),
        };
        let uri: http::Uri = "/x".parse().unwrap();
        let mut rec = RequestRecord::new("127.0.0.1".parse().unwrap(), &http::Method::GET, &uri);
        rec.status = 200;
        let body = ObservedBody::new(
            crate::body::full(r#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#),
            Some(Duration::from_secs(1)),
            rec,
            Instant::now(),
            observer,
            true,
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 51);
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["bytes_sent"], 51);
        assert_eq!(v["prompt_tokens"], 3);
        assert_eq!(v["completion_tokens"], 4);
    }
}
