//! The data plane request handler: match a route, pick the split arm (atomic ticket),
//! rewrite, forward to a node of the plan, stream the answer back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::SERVER;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use split_core::request::{normalize_ip, Request as CoreRequest, VarError};
use split_core::snapshot::{CompiledRoute, Decision, Lookup, Snapshot};

use crate::body::{stream, ProxyBody};
use crate::h1::RequestBody;
use crate::headers::server_value;
use crate::live::Live;
use crate::observe::{ObservedBody, Observer};
use crate::record::RequestRecord;
use crate::reply;
use crate::request_edit::strip_port;
use crate::send::{Arm, ClientRequest, NotSent, Upload};
use crate::server::pin_boxed;
use crate::tickets::Tickets;
use crate::upstream::pool::Pool;

/// Everything the data plane shares between requests.
pub struct Gateway {
    /// The live configuration snapshot.
    pub live: Live,
    /// Per split rule tickets.
    pub rule_tickets: Tickets,
    /// Per upstream node tickets.
    pub node_tickets: Tickets,
    /// Upstream connections.
    pub pool: Arc<Pool>,
    /// Metrics and access log.
    pub observer: Observer,
    /// Largest body read into memory.
    pub max_body: usize,
    /// key-auth / api-breaker / limit-count state.
    pub plugins: crate::plugins::PluginState,
    /// traffic-split fallback state (Retry-After skip windows).
    pub fallback: crate::fallback::FallbackState,
    /// Counters in Redis (limit-count `policy: redis`, traffic-split `ticket: redis`).
    pub shared: crate::redis::SharedCounters,
    /// Token budgets and the canary guardrail.
    pub llm: Arc<crate::llm_state::LlmState>,
    /// Arm counts behind the `split_srm_p_value` gauge.
    pub srm: Arc<crate::srm::SrmCounts>,
    /// Upstream health checks (node filter, passive checks).
    pub health: Arc<crate::health::HealthChecks>,
}

/// The client request body: still streaming, or read into memory.
pub(crate) enum ClientBody {
    Streaming(RequestBody),
    Read(Bytes),
}

/// Handles one client request; never fails (errors become JSON responses).
pub async fn handle(
    gw: Arc<Gateway>,
    req: Request<RequestBody>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let remote = normalize_ip(peer.ip());
    let mut guard = Abandoned {
        record: Some(crate::server::boxed(|| {
            RequestRecord::new(remote, req.method(), req.uri())
        })),
        started,
        observer: gw.observer.clone(),
    };
    let snapshot = gw.live.load_full();
    let response = match guard.record.as_deref_mut() {
        // Boxed: awaited in place, the routing future (2.7 KB) is built on the stack and
        // copied into this one's state, which is then copied into its own box.
        Some(record) => pin_boxed(|| route_and_forward(&gw, &snapshot, req, peer, record)).await,
        None => Routed::Local(reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        )),
    };
    let record = guard.record.take();
    match record {
        Some(record) => finish(response, record, started, &gw.observer),
        None => Routed::into_response(response),
    }
}

/// Records a request whose client went away before the response head (hyper drops the
/// handler future, which also cancels the upstream request): status 499, as nginx logs.
struct Abandoned {
    /// Boxed: 664 bytes, moved from here to the response body's observer, which is
    /// moved into its box; a pointer is cheaper to move than the record.
    record: Option<Box<RequestRecord>>,
    started: Instant,
    observer: Observer,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.status = 499;
            record.request_time = self.started.elapsed();
            self.observer.finish(&record);
        }
    }
}

impl Routed {
    fn into_response(self) -> Response<ProxyBody> {
        match self {
            Routed::Local(r) | Routed::Proxied(r, ..) => r,
        }
    }
}

/// Wraps the response body so the request is recorded when it ends.
fn finish(
    routed: Routed,
    mut record: Box<RequestRecord>,
    started: Instant,
    observer: &Observer,
) -> Response<ProxyBody> {
    let (mut response, read_timeout, answered) = match routed {
        Routed::Local(r) => (r, None, None),
        Routed::Proxied(r, t, at) => (r, Some(t), at),
    };
    response.headers_mut().insert(SERVER, server_value());
    record.status = response.status().as_u16();
    record.ttfb = Some(answered.map_or_else(
        || started.elapsed(),
        |at| at.saturating_duration_since(started),
    ));
    let usage = record
        .upstream_status
        .and_then(|_| crate::llm_state::usage_scanner(response.headers()));
    let (parts, body) = response.into_parts();
    let body = ObservedBody::new(body, read_timeout, record, started, observer.clone(), usage);
    Response::from_parts(parts, stream(body))
}

pub(crate) enum Routed {
    /// Written by the gateway.
    Local(Response<ProxyBody>),
    /// From the upstream; the body is read with this per-frame timeout. The instant is
    /// when the head arrived, when nothing waited since (the direct path): the time to
    /// first byte is then taken from it rather than from another clock read.
    Proxied(Response<ProxyBody>, std::time::Duration, Option<Instant>),
}

async fn route_and_forward(
    gw: &Gateway,
    snapshot: &Snapshot,
    req: Request<RequestBody>,
    peer: SocketAddr,
    record: &mut RequestRecord,
) -> Routed {
    let (parts, body) = req.into_parts();
    let mut body = ClientBody::Streaming(body);
    let Some(path) = crate::path::normalize(parts.uri.path()) else {
        return Routed::Local(reply::error(
            StatusCode::BAD_REQUEST,
            "invalid request path",
        ));
    };
    let host = crate::send::client_host(&parts).map(strip_port);
    let remote = normalize_ip(peer.ip());

    // Route and arm; read the body first only when a `post_arg` variable needs it, and
    // fetch a `ticket: redis` ticket when the matched rule asks for one.
    // The decision is bound where `decide` returns it: parked in an `Option` first, the
    // 200-byte value was copied twice more on every request.
    let mut preset = None;
    let mut tries = 0;
    let (route, decision, chash_key, mut admitted) = loop {
        if tries == 3 {
            return Routed::Local(reply::route_not_found());
        }
        tries += 1;
        let body_bytes = match &body {
            ClientBody::Read(b) => Some(&b[..]),
            ClientBody::Streaming(_) => None,
        };
        let view = CoreRequest {
            method: &parts.method,
            host,
            path: &path,
            query: parts.uri.query(),
            headers: &parts.headers,
            remote_addr: remote,
            remote_port: peer.port(),
            body: body_bytes,
            consumer: None,
            route_id: None,
        };
        match decide(gw, snapshot, &view, preset) {
            Step::Found(route, decision, chash, admitted) => {
                break (route, decision, chash, admitted);
            }
            Step::Reject(response) => return Routed::Local(response),
            Step::NotFound => return Routed::Local(reply::route_not_found()),
            Step::NeedTicket(route, key, conf) => {
                let ticket =
                    Box::pin(crate::redis_tickets::fleet_ticket(gw, route, key, conf)).await;
                preset = Some((key, ticket));
            }
            Step::NeedBody => match read_body(body, gw.max_body).await {
                Ok(bytes) => body = ClientBody::Read(bytes),
                Err(response) => return Routed::Local(response),
            },
        }
    };
    if let Some(pending) = admitted.redis_limit.take() {
        match Box::pin(crate::plugins::limit_redis::limit(
            &gw.shared.clients,
            route,
            &pending,
        ))
        .await
        {
            Ok(quota) => admitted.quota = quota,
            Err(response) => return Routed::Local(*response),
        }
    }
    // Only token budgets kept in Redis need the (boxed, rare) network round trip.
    if admitted.tokens.as_ref().is_some_and(|t| t.shared.is_some()) {
        if let Err(response) = Box::pin(crate::llm_limits_redis::admit(
            &gw.llm,
            route,
            &mut admitted.tokens,
        ))
        .await
        {
            return Routed::Local(*response);
        }
    }
    record.consumer = admitted.consumer.clone();
    record.settle = gw
        .llm
        .settle_for(route, &decision, admitted.tokens.as_deref());
    // forward_decided's steps, in this future rather than a future of their own: an
    // awaited async fn is built on the stack and then copied into its caller's state
    // (1.4 KB for that one, on every request).
    let (ticket, chash_key) = (admitted.rule_ticket, chash_key);
    let mut routed = 'forwarded: {
        let route_id = route.route.id.as_str();
        record.route = Some(Arc::clone(&route.route));
        record.route_metrics = Some(route.metrics.clone());
        let route_label = &*route.metrics.label;
        record.rule = decision.rule;
        record.arm = decision.arm_label.cloned();
        // An already normal path is the head's own: nothing is copied for it.
        let normalized = match path {
            std::borrow::Cow::Borrowed(_) => None,
            std::borrow::Cow::Owned(path) => Some(path),
        };
        let req = ClientRequest {
            parts,
            normalized,
            remote,
        };
        if let Some(conf) = crate::fallback::policy(route, &decision) {
            let req = crate::fallback::Request {
                client: req,
                ticket,
                chash_key,
            };
            // Boxed: the fallback state machine is larger than the direct path's, and every
            // request's handler future would otherwise carry its size.
            break 'forwarded Box::pin(crate::fallback::forward(
                gw, route, decision, conf, req, body, record,
            ))
            .await;
        }
        if let (Some(rule), Some(arm)) = (decision.rule, decision.arm_label) {
            gw.observer.metrics.arm_request(route_label, rule, arm);
        }
        gw.srm.count_decision(route, &decision);
        let Some(upstream) = decision.upstream else {
            break 'forwarded Routed::Local(reply::missing_upstream());
        };
        let arm = Arm {
            upstream,
            rewrites: decision.rewrites,
            include_usage: crate::llm_state::include_usage(route, &decision),
            chash_key: chash_key.as_deref(),
        };
        if arm.needs_body() {
            if let ClientBody::Streaming(_) = body {
                match read_body(body, gw.max_body).await {
                    Ok(bytes) => body = ClientBody::Read(bytes),
                    Err(response) => break 'forwarded Routed::Local(response),
                }
            }
        }
        let upload = match body {
            ClientBody::Streaming(incoming) => Upload::Stream(stream(incoming)),
            ClientBody::Read(bytes) => Upload::Bytes(bytes),
        };
        // Boxed: awaiting a future stores it twice in the caller's state, and that doubled
        // at every level up to the handler, whose future was 44.7 KB per waiting request
        // (about 4 KB with this box; see the test below). Built in its box, not copied in.
        match pin_boxed(|| crate::send::send(gw, route, arm, &req, upload, record)).await {
            Ok(answered) => Routed::Proxied(
                Response::from_parts(answered.head, answered.body),
                answered.read,
                Some(answered.at),
            ),
            Err(NotSent::Refused(response)) => Routed::Local(*response),
            Err(NotSent::Failed(e)) => Routed::Local(crate::send::failure_reply(e, route_id)),
        }
    };
    let response = match &mut routed {
        Routed::Local(r) | Routed::Proxied(r, ..) => r,
    };
    gw.plugins
        .after(route, &admitted, record.upstream_status, response);
    if let Some(tokens) = &admitted.tokens {
        crate::llm_limits::add_headers(response, tokens);
    }
    routed
}

enum Step<'s> {
    Found(
        &'s CompiledRoute,
        Decision<'s>,
        Option<Vec<u8>>,
        crate::plugins::Admitted,
    ),
    /// Refused by a plugin (401, 429/503, break response).
    Reject(Response<ProxyBody>),
    NeedBody,
    /// The matched rule takes its tickets from Redis: fetch one and decide again.
    NeedTicket(
        &'s CompiledRoute,
        split_core::snapshot::RuleKey,
        &'s split_core::config::traffic_split::FleetTickets,
    ),
    NotFound,
}

/// Finds the route and picks the arm (taking one ticket of the matched rule; `preset` is
/// a `ticket: redis` ticket fetched for the rule of an earlier pass).
fn decide<'s>(
    gw: &Gateway,
    snapshot: &'s Snapshot,
    view: &CoreRequest<'_>,
    preset: Option<(split_core::snapshot::RuleKey, u64)>,
) -> Step<'s> {
    let route = match snapshot.find(view) {
        Lookup::Found(route) => route,
        Lookup::NeedBody => return Step::NeedBody,
        Lookup::NotFound => return Step::NotFound,
    };
    let mut view = view.clone();
    view.route_id = Some(route.route.id.as_str());
    let mut admitted = crate::plugins::Admitted::default();
    match gw.plugins.key_auth(snapshot, route, &view) {
        Ok(consumer) => {
            view.consumer = consumer;
            admitted.consumer = consumer.map(str::to_owned);
        }
        Err(response) => return Step::Reject(*response),
    }
    let fleet = route
        .plugins
        .traffic_split
        .as_ref()
        .and_then(|t| t.fleet_tickets());
    let mut wanted = None;
    let mut last_ticket = 0;
    let mut ticket = |key: split_core::snapshot::RuleKey| {
        last_ticket = match (fleet, preset) {
            (None, _) => gw.rule_tickets.next(key.0),
            (Some(_), Some((k, t))) if k == key => t,
            (Some(_), _) => {
                wanted = Some(key);
                0
            }
        };
        last_ticket
    };
    match route.decide(&view, &mut ticket) {
        Ok(decision) => {
            if let (Some(key), Some(conf)) = (wanted, fleet) {
                return Step::NeedTicket(route, key, conf);
            }
            admitted.rule_ticket = last_ticket;
            let decision = match gw.plugins.breaker(route, decision, last_ticket) {
                Ok((decision, key)) => {
                    admitted.breaker = key;
                    decision
                }
                Err(response) => return Step::Reject(*response),
            };
            let decision = gw.llm.guard.steer(route, decision, last_ticket);
            match gw.llm.budgets.check(
                route,
                decision.arm_label.map(|l| &**l),
                admitted.consumer.as_deref(),
            ) {
                Ok(tokens) => admitted.tokens = tokens.map(Box::new),
                Err(response) => return Step::Reject(*response),
            }
            match gw.plugins.limit(route, &view) {
                Ok(quota) => admitted.quota = quota,
                Err(response) => return Step::Reject(*response),
            }
            admitted.redis_limit = crate::plugins::limit_redis::pending(route, &view);
            let key = match decision.upstream {
                Some(up) => match up.hash_key(&view) {
                    Ok(k) => k.map(String::into_bytes),
                    Err(VarError::NeedBody) => return Step::NeedBody,
                },
                None => None,
            };
            Step::Found(route, decision, key, admitted)
        }
        Err(VarError::NeedBody) => Step::NeedBody,
    }
}

/// Reads the whole client body, at most `max` bytes (else 413).
async fn read_body(body: ClientBody, max: usize) -> Result<Bytes, Response<ProxyBody>> {
    let incoming = match body {
        ClientBody::Read(bytes) => return Ok(bytes),
        ClientBody::Streaming(incoming) => incoming,
    };
    match Limited::new(incoming, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {max} bytes"),
        )),
        Err(e) => Err(reply::error(
            StatusCode::BAD_REQUEST,
            &format!("invalid request body: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future an async fn of three arguments returns, without calling it.
    fn future_size<A, B, C, F: std::future::Future>(_: impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// [`future_size`] for five arguments.
    fn future_size5<A, B, C, D, E, F: std::future::Future>(
        _: impl FnOnce(A, B, C, D, E) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_request_waiting_for_its_upstream_holds_a_few_kilobytes() {
        // Every request waiting for an upstream answer (an LLM's first token can take
        // seconds) holds the handler future and the routing future it boxes. Without the
        // boxed send step the handler was 44,728 bytes in release builds and 6,952 in
        // debug builds; with it, 4,816 in both (4,072 in release builds since the access
        // record is boxed too). The routing future now has a box of its own: 792 and
        // 2,656 bytes, in both builds.
        let handler = future_size(super::handle);
        let routing = future_size5(super::route_and_forward);
        assert!(handler <= 1024, "the handler future is {handler} bytes");
        assert!(
            handler + routing <= 6 * 1024,
            "the handler and routing futures are {handler} + {routing} bytes"
        );
    }
}
