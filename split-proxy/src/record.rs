//! What is known about one request when it ends: feeds the access log and the metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use split_core::config::route::Route;

/// The summary of one request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Client address (normalised).
    pub remote_addr: IpAddr,
    /// Method.
    pub method: http::Method,
    /// The request target as received ([`RequestRecord::target`] reads its path and
    /// query): a clone shares the request head's bytes instead of copying them.
    pub uri: http::Uri,
    /// Status sent to the client.
    pub status: u16,
    /// The matched route (shared with the configuration snapshot, not copied: its id,
    /// service id and first uri and host patterns are read through the accessors).
    pub route: Option<Arc<Route>>,
    /// Matched split rule index.
    pub rule: Option<usize>,
    /// Picked arm label.
    pub arm: Option<Arc<str>>,
    /// Upstream address actually used (`ip:port`).
    pub upstream_addr: Option<std::net::SocketAddr>,
    /// Path and query sent upstream.
    pub upstream_uri: Option<String>,
    /// Status the upstream answered.
    pub upstream_status: Option<u16>,
    /// Time until the upstream response head arrived.
    pub upstream_latency: Option<Duration>,
    /// Time until the response head was sent to the client.
    pub ttfb: Option<Duration>,
    /// Total time until the response body ended.
    pub request_time: Duration,
    /// Request body bytes received from the client (as far as read).
    pub bytes_received: u64,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    /// Authenticated consumer.
    pub consumer: Option<String>,
    /// `model` of a JSON request body, when the body was read.
    pub model: Option<String>,
    /// `usage.prompt_tokens` of the response, when seen.
    pub prompt_tokens: Option<u64>,
    /// `usage.completion_tokens` of the response, when seen.
    pub completion_tokens: Option<u64>,
    /// The arm first tried when a fallback moved the request (`arm` is the serving one).
    pub fallback_from: Option<String>,
    /// `usage.total_tokens` of the response, when seen.
    pub total_tokens: Option<u64>,
    /// Time to the first server-sent event of a streamed reply.
    pub ttft: Option<Duration>,
    /// Token charges and guard report due when the request ends.
    pub settle: Option<crate::llm_state::Settle>,
    /// The matched route's `prometheus` settings (export toggle, `route` label).
    pub route_metrics: Option<split_core::stats::route_metrics::RouteMetrics>,
    /// The request's span, when the route has the `opentelemetry` plugin.
    pub trace: Option<crate::otel::SpanStart>,
}

impl RequestRecord {
    /// A record for a request that just arrived.
    pub fn new(remote_addr: IpAddr, method: &http::Method, uri: &http::Uri) -> RequestRecord {
        RequestRecord {
            remote_addr,
            method: method.clone(),
            uri: uri.clone(),
            status: 0,
            route: None,
            rule: None,
            arm: None,
            upstream_addr: None,
            upstream_uri: None,
            upstream_status: None,
            upstream_latency: None,
            ttfb: None,
            request_time: Duration::ZERO,
            bytes_received: 0,
            bytes_sent: 0,
            consumer: None,
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
            fallback_from: None,
            total_tokens: None,
            ttft: None,
            settle: None,
            route_metrics: None,
            trace: None,
        }
    }

    /// Path and query as received.
    pub fn target(&self) -> &str {
        self.uri
            .path_and_query()
            .map_or_else(|| self.uri.path(), |pq| pq.as_str())
    }

    /// The path of [`RequestRecord::target`]: what comes before its first `?`.
    pub fn target_path(&self) -> &str {
        self.target().split('?').next().unwrap_or_default()
    }

    /// When the request arrived, by the wall clock, for a request that has just ended
    /// (its `request_time` set): now less the request time. Only the access log and
    /// spans read it, so it is worked out when they do, rather than read from the clock
    /// for every request.
    pub fn arrived_at(&self) -> SystemTime {
        let now = SystemTime::now();
        now.checked_sub(self.request_time).unwrap_or(now)
    }

    /// Matched route id.
    pub fn route_id(&self) -> Option<&str> {
        self.route.as_deref().map(|r| r.id.as_str())
    }

    /// Matched route's service id.
    pub fn service_id(&self) -> Option<&str> {
        self.route.as_deref().and_then(|r| r.service_id.as_deref())
    }

    /// Matched route's first uri pattern (`matched_uri` label).
    pub fn matched_uri(&self) -> Option<&str> {
        self.route
            .as_deref()
            .and_then(|r| r.uris.first())
            .map(String::as_str)
    }

    /// Matched route's first host pattern (`matched_host` label).
    pub fn matched_host(&self) -> Option<&str> {
        self.route
            .as_deref()
            .and_then(|r| r.hosts.first())
            .map(String::as_str)
    }

    /// The access log line (one JSON object, the contract's fields, no newline).
    pub fn to_json_line(&self) -> String {
        let time = self
            .arrived_at()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line = serde_json::json!({
            "time": time,
            "remote_addr": self.remote_addr.to_string(),
            "method": self.method.as_str(),
            "uri": self.target(),
            "status": self.status,
            "route_id": self.route_id(),
            "rule": self.rule,
            "arm": self.arm.as_deref(),
            "upstream_addr": self.upstream_addr.map(|a| a.to_string()),
            "upstream_uri": self.upstream_uri,
            "upstream_status": self.upstream_status,
            "request_time_ms": millis(self.request_time),
            "ttfb_ms": self.ttfb.map(millis),
            "bytes_sent": self.bytes_sent,
            "consumer": self.consumer,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_ms": self.ttft.map(millis),
        });
        // Only present when a fallback happened.
        if let (Some(from), Some(map)) = (&self.fallback_from, line.as_object_mut()) {
            map.insert("fallback_from".to_owned(), from.clone().into());
        }
        line.to_string()
    }
}

/// Milliseconds with microsecond precision.
pub fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_and_its_path_are_read_from_the_request_uri() {
        let record = |uri: &str| {
            let uri: http::Uri = uri.parse().unwrap();
            RequestRecord::new("127.0.0.1".parse().unwrap(), &http::Method::GET, &uri)
        };
        let origin = record("/v1/chat?stream=true&x=%3F");
        assert_eq!(origin.target(), "/v1/chat?stream=true&x=%3F");
        assert_eq!(origin.target_path(), "/v1/chat");
        let absolute = record("http://api.example/a/b?q");
        assert_eq!(absolute.target(), "/a/b?q");
        assert_eq!(absolute.target_path(), "/a/b");
        let plain = record("/a");
        assert_eq!((plain.target(), plain.target_path()), ("/a", "/a"));
    }

    #[test]
    fn access_log_line_has_exactly_the_contract_fields() {
        let uri: http::Uri = "/chat/completions?x=1".parse().unwrap();
        let mut r = RequestRecord::new("127.0.0.1".parse().unwrap(), &http::Method::POST, &uri);
        r.status = 200;
        let route = serde_json::json!({"uri": "/chat/completions", "upstream_id": "1"});
        r.route = Some(Arc::new(Route::from_json("aimlapi-split", &route).unwrap()));
        r.rule = Some(0);
        r.arm = Some("1".into());
        r.upstream_addr = Some("127.0.0.1:443".parse().unwrap());
        r.request_time = Duration::from_micros(1500);
        let v: serde_json::Value = serde_json::from_str(&r.to_json_line()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = vec![
            "time",
            "remote_addr",
            "method",
            "uri",
            "status",
            "route_id",
            "rule",
            "arm",
            "upstream_addr",
            "upstream_uri",
            "upstream_status",
            "request_time_ms",
            "ttfb_ms",
            "bytes_sent",
            "consumer",
            "model",
            "prompt_tokens",
            "completion_tokens",
            "ttft_ms",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["uri"], "/chat/completions?x=1");
        assert_eq!(v["upstream_addr"], "127.0.0.1:443");
        assert_eq!(v["request_time_ms"], 1.5);
        assert_eq!(v["rule"], 0);
        assert_eq!(v["route_id"], "aimlapi-split");
        assert_eq!(v["method"], "POST");
    }
}
