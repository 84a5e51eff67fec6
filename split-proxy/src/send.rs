//! Sending one arm's request: the one place that prepares and sends a request to an
//! upstream, for the direct path ([`crate::proxy`]) and for every try of a fallback
//! ([`crate::fallback`]), so both edit, route and account the same way:
//!
//! - headers: hop-by-hop headers and `Expect` removed, `key-auth` `hide_credentials`,
//!   `X-Forwarded-*`, `$env://` secret headers of the rewrites, `traceparent` when the
//!   route has `opentelemetry`, the rewrites' Host override;
//! - the upstream uri (rewrites), the body (rewrites, the arm's `llm.include_usage`,
//!   `Content-Length` when edited);
//! - the node plan minus nodes the health checks found unhealthy, the route's timeouts;
//! - failed attempts counted in `split_upstream_errors_total` (labelled by the
//!   `prometheus` plugin's route label) and fed to passive health checks, as is the status
//!   of the answer;
//! - the access log fields of the try (`upstream_uri`, `upstream_addr`, status, latency,
//!   bytes received, model).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, HOST};
use http::{Response, StatusCode, Version};
use split_core::config::plugins::KeyAuthRoute;
use split_core::snapshot::{CompiledRoute, CompiledUpstream, Rewrites};

use crate::body::{full, ProxyBody};
use crate::forward::{forward, AttemptError, ForwardError, Outgoing, DEFAULT_TIMEOUT};
use crate::headers::{
    add_forwarded, is_forwarded, strip_hop_by_hop, ClientFields, UpstreamHeaders,
};
use crate::proxy::Gateway;
use crate::record::RequestRecord;
use crate::reply;
use crate::request_edit::{model_of, rewrite_body, upstream_path};
use crate::upload::Progress;

/// The client's request, as every try of it needs it.
pub(crate) struct ClientRequest {
    /// Client request head.
    pub parts: http::request::Parts,
    /// Normalised path when it differs from the head's path (`None`: the same).
    pub normalized: Option<String>,
    /// Client address.
    pub remote: IpAddr,
}

impl ClientRequest {
    /// Normalised path (`$uri`).
    pub fn path(&self) -> &str {
        self.normalized
            .as_deref()
            .unwrap_or_else(|| self.parts.uri.path())
    }

    /// Client Host header (or the authority of the request target).
    pub fn host_header(&self) -> Option<&str> {
        client_host(&self.parts)
    }
}

/// The Host header of a request head when it is text, else the authority of its target
/// (read from the head each time rather than copied into a `String` per request).
pub(crate) fn client_host(parts: &http::request::Parts) -> Option<&str> {
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

/// Where one try goes and how the request is edited for it.
#[derive(Clone, Copy)]
pub(crate) struct Arm<'a> {
    /// The arm's upstream.
    pub upstream: &'a CompiledUpstream,
    /// The route's `proxy-rewrite`, then the arm's `rewrite`.
    pub rewrites: Rewrites<'a>,
    /// The arm asks for `stream_options.include_usage`.
    pub include_usage: bool,
    /// Sticky key of the upstream's `chash`, if any.
    pub chash_key: Option<&'a [u8]>,
}

impl Arm<'_> {
    /// True when this arm edits the body, which must then be in memory.
    pub fn needs_body(&self) -> bool {
        self.include_usage || self.rewrites.iter().any(|r| r.needs_body())
    }
}

/// The request body of one try.
pub(crate) enum Upload {
    /// Streamed as received (the arm does not edit it).
    Stream(ProxyBody),
    /// In memory: edited by the arm's rewrites when it asks to.
    Bytes(Bytes),
}

/// The upstream's response head (hop-by-hop headers removed, HTTP/1.1 towards the client).
pub(crate) struct Answered {
    /// Head.
    pub head: http::response::Parts,
    /// Body, still streaming.
    pub body: ProxyBody,
    /// Per-frame timeout for reading the body.
    pub read: Duration,
    /// When the head arrived.
    pub at: Instant,
}

/// Why a try has no upstream answer.
pub(crate) enum NotSent {
    /// Refused before sending (a body rewrite that does not apply, a missing secret):
    /// a config problem another try would not fix predictably.
    Refused(Box<Response<ProxyBody>>),
    /// No node answered.
    Failed(ForwardError),
}

/// Prepares and sends one try of `req` to `arm` (see the module docs).
pub(crate) async fn send(
    gw: &Gateway,
    route: &CompiledRoute,
    arm: Arm<'_>,
    req: &ClientRequest,
    body: Upload,
    record: &mut RequestRecord,
) -> Result<Answered, NotSent> {
    let parts = &req.parts;
    let needs_body = arm.needs_body();
    let is_json = crate::request_edit::is_json(&parts.headers);
    let key_auth = route.plugins.key_auth_route.as_ref();
    let room = crate::headers::FORWARD_ROOM;
    // The forwarded headers go with the head as it is written, unless an edit of this
    // request may touch them: then they are set in the map first, as the edits expect.
    // When no edit applies at all, the client's fields are read from its own map as the
    // head is written, instead of copied into one for the upstream.
    let untouched = !needs_body
        && key_auth.is_none_or(|k| !k.hide_credentials)
        && arm.rewrites.iter().all(|r| r.headers.is_empty())
        && route.plugins.opentelemetry.is_none()
        && record.trace.is_none();
    let (mut headers, forwarded) = if touches_forwarded(&arm.rewrites, key_auth) {
        let map = crate::headers::for_upstream(&parts.headers, room);
        (UpstreamHeaders::from_map(map), None)
    } else {
        let (fields, forwarded) = ClientFields::new(&parts.headers, req.remote);
        let headers = if untouched {
            UpstreamHeaders::from_client(fields)
        } else {
            UpstreamHeaders::from_map(fields.to_map(room))
        };
        (headers, Some(forwarded))
    };
    let hidden;
    let client_uri = if untouched {
        &parts.uri
    } else {
        hidden = crate::secrets::hide_credentials(key_auth, headers.map_mut(), &parts.uri);
        &hidden
    };
    let path_and_query = upstream_path(&arm.rewrites, req.path(), client_uri);
    // Kept in the record (the access log's `upstream_uri`); the request borrows it.
    record.upstream_uri = Some(path_and_query);
    if forwarded.is_none() {
        add_forwarded(headers.map_mut(), req.remote, parts.headers.get(HOST));
    }
    if !untouched {
        crate::secrets::apply_headers(&arm.rewrites, headers.map_mut())
            .map_err(NotSent::Refused)?;
    }
    // Only a route with the opentelemetry plugin has a span, whose `traceparent` goes
    // upstream.
    if let Some(tracer) = gw.observer.otel.as_ref().filter(|_| !untouched) {
        match &record.trace {
            // A later try of the same request: same span, same parent for the upstream.
            Some(span) => {
                let value = crate::otel_context::format_traceparent(
                    &span.trace_id,
                    &span.span_id,
                    span.sampled,
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.map_mut().insert("traceparent", v);
                }
            }
            None => {
                record.trace = tracer.start(
                    route,
                    &parts.headers,
                    parts.uri.query(),
                    headers.map_mut(),
                    record,
                );
            }
        }
    }
    let host_override = arm.rewrites.iter().rev().find_map(|r| r.host.as_deref());
    let in_memory = matches!(body, Upload::Bytes(_));
    let upload_body = match body {
        Upload::Stream(body) => body,
        Upload::Bytes(bytes) => {
            if record.model.is_none() {
                record.model = model_of(&bytes);
            }
            let mut bytes = match rewrite_body(&arm.rewrites, bytes) {
                Ok(b) => b,
                Err(msg) => {
                    let response = reply::error(StatusCode::BAD_REQUEST, &msg);
                    return Err(NotSent::Refused(Box::new(response)));
                }
            };
            if arm.include_usage {
                if let Some(edited) = split_core::llm::request_stream_usage(&bytes) {
                    bytes = Bytes::from(edited);
                }
            }
            if needs_body {
                headers
                    .map_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            }
            full(bytes)
        }
    };

    // Nodes and timeouts.
    let upstream = arm.upstream;
    let ticket = gw.node_tickets.next(upstream.key.0);
    let plan = gw.health.plan(upstream, ticket, arm.chash_key);
    let timeouts = route.effective_timeout(upstream).unwrap_or(DEFAULT_TIMEOUT);
    let out = Outgoing {
        method: parts.method.clone(),
        path_and_query: record.upstream_uri.as_deref().unwrap_or_default(),
        headers,
        forwarded,
        host_override,
        client_host: req.host_header(),
        body: upload_body,
        in_memory,
    };
    let upload = Progress::new(is_json && record.model.is_none());
    let metrics = &gw.observer.metrics;
    let health = &gw.health;
    let route_label = &*route.metrics.label;
    let mut on_error = |e: AttemptError<'_>| {
        metrics.upstream_error(route_label, &e.node, e.kind);
        health.passive_failure(upstream, &e.node, e.kind);
    };
    let result = forward(
        &gw.pool,
        upstream,
        &plan,
        timeouts,
        out,
        Arc::clone(&upload),
        &mut on_error,
    )
    .await;
    record.bytes_received = upload.bytes();
    if record.model.is_none() {
        record.model = upload.model();
    }
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            // An earlier try's answer is not this one's.
            record.upstream_addr = None;
            record.upstream_status = None;
            record.upstream_latency = None;
            return Err(NotSent::Failed(e));
        }
    };
    record.upstream_addr = Some(answer.peer);
    record.upstream_status = Some(answer.response.status().as_u16());
    let status = split_core::health::Outcome::Status(answer.response.status().as_u16());
    gw.health.passive(upstream, answer.node, status);
    record.upstream_latency = Some(answer.latency);
    let (mut head, body) = answer.response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    head.version = Version::HTTP_11;
    Ok(Answered {
        head,
        body,
        read: timeouts.read,
        at: answer.at,
    })
}

/// True when an edit of the request may touch the forwarded headers: a header rewrite
/// naming one, or `key-auth` hiding a key carried in one.
fn touches_forwarded(rewrites: &Rewrites<'_>, key_auth: Option<&KeyAuthRoute>) -> bool {
    key_auth.is_some_and(|k| k.hide_credentials && is_forwarded(&k.header))
        || rewrites.iter().any(|r| {
            let edits = &r.headers;
            edits
                .set
                .iter()
                .chain(&edits.add)
                .any(|(name, _)| is_forwarded(name))
                || edits.remove.iter().any(is_forwarded)
                || edits.secrets.iter().any(|e| is_forwarded(&e.name))
        })
}

/// The gateway's answer when no node answered: 502 (no node, connect error), 504 (the
/// last attempt timed out), 400 (the client's body failed); logged with the route id.
pub(crate) fn failure_reply(e: ForwardError, route_id: &str) -> Response<ProxyBody> {
    match e {
        ForwardError::ClientBody(reason) => reply::error(
            StatusCode::BAD_REQUEST,
            &format!("invalid request body: {reason}"),
        ),
        ForwardError::NoNodes => reply::error(StatusCode::BAD_GATEWAY, "no valid upstream node"),
        ForwardError::Failed {
            timeout: true,
            reason,
        } => {
            tracing::warn!(route = route_id, %reason, "upstream timed out");
            reply::error(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
        }
        ForwardError::Failed {
            timeout: false,
            reason,
        } => {
            tracing::warn!(route = route_id, %reason, "upstream unavailable");
            reply::error(
                StatusCode::BAD_GATEWAY,
                &format!("upstream unavailable: {reason}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use split_core::config::proxy_rewrite::parse_arm_rewrite;

    fn key_auth(header: &str, hide: bool) -> KeyAuthRoute {
        KeyAuthRoute {
            header: http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
            query: "apikey".into(),
            hide_credentials: hide,
            anonymous_consumer: None,
            realm: "key".into(),
        }
    }

    #[test]
    fn forwarded_headers_go_in_the_map_when_an_edit_may_touch_them() {
        let edit = |headers: serde_json::Value| {
            parse_arm_rewrite(&serde_json::json!({ "headers": headers })).unwrap()
        };
        let touching = [
            edit(serde_json::json!({"set": {"X-Real-IP": "1.2.3.4"}})),
            edit(serde_json::json!({"add": {"x-forwarded-proto": "https"}})),
            edit(serde_json::json!({"remove": ["X-Forwarded-For"]})),
            edit(serde_json::json!({"set": {"X-Forwarded-Host": "$env://HOST_FOR_TEST"}})),
        ];
        let other = edit(serde_json::json!({"set": {"x-other": "1"}, "remove": ["x-forwarded"]}));
        let uri = parse_arm_rewrite(&serde_json::json!({"uri": "/v1"})).unwrap();
        assert!(!touches_forwarded(&Rewrites::new(None, None), None));
        assert!(!touches_forwarded(
            &Rewrites::new(Some(&other), Some(&uri)),
            None
        ));
        for r in &touching {
            assert!(
                touches_forwarded(&Rewrites::new(Some(&uri), Some(r)), None),
                "{r:?}"
            );
            assert!(
                touches_forwarded(&Rewrites::new(Some(r), None), None),
                "{r:?}"
            );
        }
        let none = Rewrites::new(None, None);
        assert!(touches_forwarded(&none, Some(&key_auth("x-real-ip", true))));
        assert!(!touches_forwarded(
            &none,
            Some(&key_auth("x-real-ip", false))
        ));
        assert!(!touches_forwarded(&none, Some(&key_auth("apikey", true))));
    }

    #[test]
    fn the_client_request_reads_its_path_and_host_from_the_head() {
        let request = |uri: &str, host: Option<&str>, normalized: Option<&str>| {
            let mut builder = http::Request::get(uri);
            if let Some(host) = host {
                builder = builder.header(http::header::HOST, host);
            }
            ClientRequest {
                parts: builder.body(()).unwrap().into_parts().0,
                normalized: normalized.map(str::to_owned),
                remote: IpAddr::from([127, 0, 0, 1]),
            }
        };
        let plain = request("/chat/completions?x=1", Some("api.example:8080"), None);
        assert_eq!(plain.path(), "/chat/completions");
        assert_eq!(plain.host_header(), Some("api.example:8080"));
        // The normalised path when there is one; the authority without a Host header.
        let odd = request("http://auth.example/a//b", None, Some("/a/b"));
        assert_eq!(odd.path(), "/a/b");
        assert_eq!(odd.host_header(), Some("auth.example"));
        // A Host value that is not text falls back to the authority.
        let mut binary = request("http://auth.example/", None, None);
        binary.parts.headers.insert(
            http::header::HOST,
            http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert_eq!(binary.host_header(), Some("auth.example"));
        assert_eq!(request("/", None, None).host_header(), None);
    }
}
