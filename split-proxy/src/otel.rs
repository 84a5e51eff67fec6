//! The `opentelemetry` plugin on the request path: accept or start a W3C trace, pass
//! `traceparent` upstream, and queue one span per sampled request for the exporter
//! (`otel_export`). Queueing never waits: a full queue drops the span and counts it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use http::header::HeaderValue;
use http::HeaderMap;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use split_core::config::plugins::{OtelSettings, TraceIdSource};
use split_core::snapshot::CompiledRoute;
use tokio::sync::mpsc;

use crate::otel_context::{format_traceparent, hex, parse_traceparent, random_id, Parent};
use crate::record::RequestRecord;

/// The span of one request, opened when the route is known.
#[derive(Debug, Clone)]
pub struct SpanStart {
    /// Trace id (the caller's, or new).
    pub trace_id: [u8; 16],
    /// This request's span id (the upstream's parent).
    pub span_id: [u8; 8],
    /// The caller's span id.
    pub parent_span_id: Option<[u8; 8]>,
    /// Sampled: the span is exported.
    pub sampled: bool,
    /// `additional_attributes` and header-prefix attributes read from the request.
    pub extra: Vec<(String, String)>,
}

/// Export counters, shared with the exporter task.
#[derive(Debug, Default)]
pub struct OtelCounters {
    /// Spans dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Spans lost to failed export requests.
    pub failed: AtomicU64,
}

/// Starts spans and hands finished ones to the exporter.
#[derive(Debug)]
pub struct Tracer {
    trace_id_source: TraceIdSource,
    queue: mpsc::Sender<Span>,
    counters: Arc<OtelCounters>,
}

impl Tracer {
    /// A tracer exporting with `settings`; spawns the exporter task on the current
    /// runtime.
    pub fn spawn(settings: &OtelSettings) -> Arc<Tracer> {
        let (tx, rx) = mpsc::channel(settings.max_queue_size.max(1));
        let counters = Arc::new(OtelCounters::default());
        tokio::spawn(crate::otel_export::run(
            settings.clone(),
            rx,
            Arc::clone(&counters),
        ));
        Arc::new(Tracer {
            trace_id_source: settings.trace_id_source,
            queue: tx,
            counters,
        })
    }

    /// The metrics of the exporter.
    pub fn collector(&self) -> OtelCollector {
        OtelCollector {
            counters: Arc::clone(&self.counters),
        }
    }

    /// Opens the span of a request to `route` when the route has the `opentelemetry`
    /// plugin, and sets `traceparent` on the upstream request `upstream_headers`
    /// (`client_headers` are the request's headers as received).
    pub fn start(
        &self,
        route: &CompiledRoute,
        client_headers: &HeaderMap,
        query: Option<&str>,
        upstream_headers: &mut HeaderMap,
        record: &RequestRecord,
    ) -> Option<SpanStart> {
        let plugin = route.plugins.opentelemetry.as_ref()?;
        let parent: Option<Parent> = client_headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_traceparent);
        let trace_id = match parent {
            Some(p) => p.trace_id,
            None => self.new_trace_id(client_headers),
        };
        let sampled = plugin.sampler.sample(&trace_id, parent.map(|p| p.sampled));
        let span_id: [u8; 8] = random_id();
        let header = format_traceparent(&trace_id, &span_id, sampled);
        if let Ok(v) = HeaderValue::from_str(&header) {
            upstream_headers.insert("traceparent", v);
        }
        let mut extra = Vec::new();
        if sampled {
            for name in &plugin.additional_attributes {
                if let Some(v) = request_var(name, client_headers, query, record) {
                    extra.push((name.clone(), v));
                }
            }
            for (name, value) in client_headers {
                let name = name.as_str();
                if plugin
                    .additional_header_prefix_attributes
                    .iter()
                    .any(|p| name.starts_with(p.as_str()))
                {
                    if let Ok(v) = value.to_str() {
                        extra.push((name.to_owned(), v.to_owned()));
                    }
                }
            }
        }
        Some(SpanStart {
            trace_id,
            span_id,
            parent_span_id: parent.map(|p| p.span_id),
            sampled,
            extra,
        })
    }

    fn new_trace_id(&self, headers: &HeaderMap) -> [u8; 16] {
        if self.trace_id_source == TraceIdSource::XRequestId {
            let from_header = headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(|s| s.replace('-', ""))
                .and_then(|s| hex::<16>(&s))
                .filter(|id| *id != [0; 16]);
            if let Some(id) = from_header {
                return id;
            }
        }
        random_id()
    }

    /// Queues the span of a finished request (when it was sampled); never waits.
    pub fn finish(&self, record: &RequestRecord) {
        let Some(start) = record.trace.as_ref().filter(|s| s.sampled) else {
            return;
        };
        let span = build_span(start, record);
        if self.queue.try_send(span).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The value of request variable `name` (the lua-resty-expr names APISIX uses).
fn request_var(
    name: &str,
    headers: &HeaderMap,
    query: Option<&str>,
    record: &RequestRecord,
) -> Option<String> {
    if let Some(header) = name.strip_prefix("http_") {
        let header = header.replace('_', "-");
        return headers
            .get(header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    if let Some(arg) = name.strip_prefix("arg_") {
        return query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == arg).then(|| v.to_owned())
        });
    }
    match name {
        "remote_addr" => Some(record.remote_addr.to_string()),
        "request_method" => Some(record.method.as_str().to_owned()),
        "request_uri" => Some(record.target().to_owned()),
        "uri" => Some(record.target_path().to_owned()),
        "route_id" => record.route_id().map(str::to_owned),
        "consumer_name" => record.consumer.clone(),
        _ => None,
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: u64) -> KeyValue {
    kv(
        key,
        any_value::Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
    )
}

/// The OTLP span of a finished request.
fn build_span(start: &SpanStart, r: &RequestRecord) -> Span {
    let start_ns = r
        .arrived_at()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let end_ns = start_ns.saturating_add(u64::try_from(r.request_time.as_nanos()).unwrap_or(0));
    let path = r.target_path();
    let mut attributes = vec![
        text("http.method", r.method.as_str()),
        text("http.target", r.target()),
        int("http.status_code", u64::from(r.status)),
        text("client.address", r.remote_addr.to_string()),
    ];
    if let Some(route) = r.route_id() {
        attributes.push(text("apisix.route_id", route));
    }
    if let Some(uri) = r.matched_uri() {
        attributes.push(text("http.route", uri));
    }
    if let Some(rule) = r.rule {
        attributes.push(int("split.rule", rule as u64));
    }
    if let Some(arm) = &r.arm {
        attributes.push(text("split.arm", &**arm));
    }
    if let Some(addr) = r.upstream_addr {
        attributes.push(text("split.upstream", addr.to_string()));
    }
    if let Some(status) = r.upstream_status {
        attributes.push(int("split.upstream_status", u64::from(status)));
    }
    if let Some(consumer) = &r.consumer {
        attributes.push(text("apisix.consumer_name", consumer.as_str()));
    }
    if let Some(model) = &r.model {
        attributes.push(text("gen_ai.request.model", model.as_str()));
    }
    if let Some(n) = r.prompt_tokens {
        attributes.push(int("gen_ai.usage.input_tokens", n));
    }
    if let Some(n) = r.completion_tokens {
        attributes.push(int("gen_ai.usage.output_tokens", n));
    }
    for (k, v) in &start.extra {
        attributes.push(text(k, v.as_str()));
    }
    let code = if r.status >= 500 {
        status::StatusCode::Error
    } else {
        status::StatusCode::Unset
    };
    Span {
        trace_id: start.trace_id.to_vec(),
        span_id: start.span_id.to_vec(),
        parent_span_id: start.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        flags: 1,
        name: format!("{} {}", r.method, r.matched_uri().unwrap_or(path)),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: end_ns,
        attributes,
        status: Some(Status {
            message: String::new(),
            code: code as i32,
        }),
        ..Span::default()
    }
}

/// `split_otel_spans_{dropped,exported,failed}_total`.
#[derive(Debug)]
pub struct OtelCollector {
    counters: Arc<OtelCounters>,
}

impl Collector for OtelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.counters;
        let families = [
            (
                "split_otel_spans_dropped",
                "Spans dropped because the export queue was full",
                c.dropped.load(Ordering::Relaxed),
            ),
            (
                "split_otel_spans_exported",
                "Spans accepted by the OTLP collector",
                c.exported.load(Ordering::Relaxed),
            ),
            (
                "split_otel_spans_failed",
                "Spans lost to failed OTLP export requests",
                c.failed.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in families {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}
