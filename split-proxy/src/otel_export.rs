//! The OTLP/HTTP exporter task: batches spans from the queue (up to
//! `max_export_batch_size`, or whatever arrived within `batch_timeout`), encodes an
//! `ExportTraceServiceRequest` (protobuf) and POSTs it to
//! `http://<collector.address>/v1/traces` within `request_timeout`. A failed export is
//! logged and counted, never retried: requests are never slowed by the collector.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use split_core::config::plugins::OtelSettings;
use tokio::sync::mpsc;

use crate::otel::OtelCounters;

/// Runs until every sender is gone.
pub async fn run(
    settings: OtelSettings,
    mut rx: mpsc::Receiver<Span>,
    counters: Arc<OtelCounters>,
) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("http://{}/v1/traces", settings.address);
    let resource = resource(&settings);
    let batch_size = settings.max_export_batch_size.max(1);
    let mut last_error_logged: Option<tokio::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + settings.batch_timeout;
        while batch.len() < batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let body = encode(&resource, batch);
        match export(&client, &url, &settings, body).await {
            Ok(()) => {
                counters.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(reason) => {
                counters.failed.fetch_add(n, Ordering::Relaxed);
                // One line per 10 s at most: a dead collector must not flood the log.
                let now = tokio::time::Instant::now();
                if last_error_logged
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
                {
                    tracing::warn!(collector = %url, %reason, spans = n, "OTLP export failed; spans dropped");
                    last_error_logged = Some(now);
                }
            }
        }
    }
}

fn resource(settings: &OtelSettings) -> Resource {
    Resource {
        attributes: settings
            .resource
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(v.clone())),
                }),
                ..KeyValue::default()
            })
            .collect(),
        ..Resource::default()
    }
}

/// The protobuf body of one export request.
pub fn encode(resource: &Resource, spans: Vec<Span>) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "split".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..InstrumentationScope::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    request.encode_to_vec()
}

async fn export(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    settings: &OtelSettings,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut request = http::Request::post(url)
        .header(CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    for (name, value) in &settings.request_headers {
        // Validated when config.yaml was read.
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            request.headers_mut().insert(n, v);
        }
    }
    let response = tokio::time::timeout(settings.request_timeout, client.request(request))
        .await
        .map_err(|_| format!("no answer within {:?}", settings.request_timeout))?
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("collector answered {}", response.status()))
    }
}
