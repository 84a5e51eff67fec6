//! The response body the client receives: streams the upstream body frame by frame,
//! enforces the upstream read timeout between frames, counts bytes, picks up LLM token
//! usage (split-core's `UsageScanner`, bounded memory), and records the request (metrics + access log) exactly once when the body ends
//! or is dropped (client gone).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use split_core::llm::{BodyFormat, Usage, UsageScanner};

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
    /// Span export (`opentelemetry` plugin).
    pub otel: Option<Arc<crate::otel::Tracer>>,
}

impl Observer {
    /// Reports a finished request.
    pub fn finish(&self, record: &RequestRecord) {
        self.metrics.finish(record);
        if let Some(settle) = &record.settle {
            settle.apply(record);
        }
        if let Some(tracer) = &self.otel {
            tracer.finish(record);
        }
        if let Some(log) = &self.access_log {
            log.write(record.to_json_line());
        }
    }
}

/// A response body being observed.
pub struct ObservedBody {
    inner: ProxyBody,
    read_timeout: Option<Duration>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Boxed: the record is 664 bytes, and this body is moved into its box and wrappers.
    record: Option<Box<RequestRecord>>,
    started: Instant,
    observer: Observer,
    usage: Option<UsageScanner>,
}

impl ObservedBody {
    /// Wraps `inner`; `read_timeout` bounds the wait for each upstream frame.
    pub fn new(
        inner: ProxyBody,
        read_timeout: Option<Duration>,
        record: Box<RequestRecord>,
        started: Instant,
        observer: Observer,
        usage: Option<UsageScanner>,
    ) -> ObservedBody {
        ObservedBody {
            inner,
            read_timeout,
            sleep: None,
            record: Some(record),
            started,
            observer,
            usage,
        }
    }

    /// Accounts for a data frame; `last` when the body ends with it.
    fn on_data(&mut self, data: &Bytes, last: bool) {
        if let Some(r) = self.record.as_mut() {
            r.bytes_sent = r.bytes_sent.saturating_add(data.len() as u64);
        }
        if let Some(scanner) = self.usage.as_mut() {
            if last && scanner.format() == BodyFormat::Json {
                // The whole answer is here: read its usage without copying the frame
                // into the scanner (a JSON answer usually comes in one frame).
                let usage = scanner.finish_with(data);
                self.usage = None;
                if let (Some(usage), Some(r)) = (usage, self.record.as_mut()) {
                    set_usage(r, usage);
                }
                return;
            }
            scanner.feed(data);
            if let Some(r) = self.record.as_mut() {
                if r.ttft.is_none() && scanner.events() > 0 {
                    r.ttft = Some(self.started.elapsed());
                }
            }
        }
    }

    fn finish(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.request_time = self.started.elapsed();
        if let Some(usage) = self.usage.as_mut().and_then(UsageScanner::finish) {
            set_usage(&mut record, usage);
        }
        self.observer.finish(&record);
    }
}

fn set_usage(record: &mut RequestRecord, usage: Usage) {
    record.prompt_tokens = usage.prompt_tokens;
    record.completion_tokens = usage.completion_tokens;
    record.total_tokens = usage.total_tokens;
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
                let last = this.inner.is_end_stream();
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    this.on_data(&data, last);
                }
                // The last frame: account for the request before it is handed on, so a
                // client that has read its whole response finds it in the metrics and
                // the access log (rather than once the writer polls the end).
                if last {
                    this.finish();
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// An observer writing its access log to `a.log` in a fresh temp dir.
    fn logged_observer() -> (tempfile::TempDir, Arc<AccessLog>, Observer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let log = Arc::new(AccessLog::open(path.to_str().unwrap()).unwrap());
        let observer = Observer {
            metrics: Metrics::new(),
            access_log: Some(Arc::clone(&log)),
            otel: None,
        };
        (dir, log, observer)
    }

    fn record() -> Box<RequestRecord> {
        let uri: http::Uri = "/x".parse().unwrap();
        Box::new(RequestRecord::new(
            "127.0.0.1".parse().unwrap(),
            &http::Method::GET,
            &uri,
        ))
    }

    #[tokio::test]
    async fn record_is_emitted_once_with_byte_count() {
        let (dir, log, observer) = logged_observer();
        let path = dir.path().join("a.log");
        let mut rec = record();
        rec.status = 200;
        let body = ObservedBody::new(
            crate::body::full(r#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#),
            Some(Duration::from_secs(1)),
            rec,
            Instant::now(),
            observer,
            Some(UsageScanner::new(split_core::llm::BodyFormat::Json)),
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

    #[tokio::test]
    async fn usage_split_across_frames_is_read() {
        let (dir, log, observer) = logged_observer();
        let path = dir.path().join("a.log");
        let pieces = [
            r#"{"usage":{"prompt_"#,
            r#"tokens":3,"completion_tokens""#,
            ":4}}",
        ]
        .map(|p| Ok::<_, BoxError>(Frame::data(Bytes::from(p))));
        let body = ObservedBody::new(
            crate::body::stream(http_body_util::StreamBody::new(futures_util::stream::iter(
                pieces,
            ))),
            None,
            record(),
            Instant::now(),
            observer,
            Some(UsageScanner::new(BodyFormat::Json)),
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len(), 51);
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            (v["prompt_tokens"].clone(), v["completion_tokens"].clone()),
            (3.into(), 4.into())
        );
    }

    #[tokio::test]
    async fn the_last_frame_is_accounted_before_it_is_handed_on() {
        let (dir, log, observer) = logged_observer();
        let path = dir.path().join("a.log");
        let rec = record();
        let mut body = ObservedBody::new(
            crate::body::full("whole body"),
            None,
            rec,
            Instant::now(),
            observer,
            None,
        );
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.data_ref().unwrap().len(), 10);
        // Not polled to its end and not dropped: the record is out already.
        log.close();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["bytes_sent"], 10);
        drop(body);
    }
}
