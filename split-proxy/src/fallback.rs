//! `traffic-split.fallback` on the request path: the request goes to the picked arm; a
//! connect error, a timeout before the response head, a status listed in `on`, or (for
//! SSE) an error as the first event moves it to another arm of the same rule, within
//! `max_retries` and `budget_ms`. The decisions (which arm next, whether to go on, how
//! long a `Retry-After` skips an arm) come from `split_core::fallback`; this module does
//! the IO and keeps the process-local skip windows.
//!
//! - The request body is buffered up to `--max-body-size` so it can be sent again; a
//!   larger body streams to the first arm only (no fallback for that request).
//! - A 429 with `Retry-After` (seconds or HTTP date, capped at 300 s) puts that arm of
//!   that rule on this route in a skip window: new requests picking it go to another arm
//!   (a weighted pick by the request's ticket) while any other is available.
//! - When every try failed, the client gets the last failure: the last upstream answer
//!   (its status and body), or the gateway's 502/504 JSON for a connect error/timeout.
//! - `split_arm_requests_total`, the access log `arm` and the metrics' node are the
//!   serving arm's; the access log adds `fallback_from` (the first arm) when the request
//!   moved, and `split_llm_fallbacks_total{route,rule,from_arm,to_arm,reason}` counts
//!   each move. After the commit, errors pass through and are counted
//!   (`split_llm_post_commit_errors_total`). These metrics carry the `prometheus`
//!   plugin's route label, as on the direct path.
//! - Each try is prepared and sent by [`crate::send`], exactly as a request without
//!   fallback: same header and body edits, the node plan without unhealthy nodes, passive
//!   health checks fed by its failures and its answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use split_core::config::fallback::Fallback;
use split_core::fallback::{first_arm, retry_after, Attempts, FailReason};
use split_core::snapshot::{CompiledRoute, CompiledRule, Decision, Rewrites, RuleKey};

use crate::body::{stream, ProxyBody};
use crate::fallback_body::{buffer, Replay};
use crate::fallback_sse::{peek, Served, Watched};
use crate::forward::ForwardError;
use crate::proxy::{ClientBody, Gateway, Routed};
use crate::record::RequestRecord;
use crate::reply;
use crate::request_edit::model_of;
use crate::send::{failure_reply, send, Answered, Arm, ClientRequest, NotSent, Upload};

/// Most skip windows kept; expired ones are dropped first.
const MAX_SKIPS: usize = 10_000;

/// Process-local fallback state: `Retry-After` skip windows per route, rule and arm.
pub struct FallbackState {
    epoch: Instant,
    skips: Mutex<HashMap<(String, RuleKey, usize), Duration>>,
}

impl Default for FallbackState {
    fn default() -> Self {
        FallbackState {
            epoch: Instant::now(),
            skips: Mutex::new(HashMap::new()),
        }
    }
}

impl FallbackState {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn skipped(&self, route: &str, rule: RuleKey, arm: usize, now: Duration) -> bool {
        let skips = self.skips.lock().unwrap_or_else(|p| p.into_inner());
        skips
            .get(&(route.to_owned(), rule, arm))
            .is_some_and(|until| *until > now)
    }

    fn skip(&self, route: &str, rule: RuleKey, arm: usize, until: Duration, now: Duration) {
        let mut skips = self.skips.lock().unwrap_or_else(|p| p.into_inner());
        if skips.len() >= MAX_SKIPS {
            skips.retain(|_, u| *u > now);
        }
        if skips.len() < MAX_SKIPS {
            skips.insert((route.to_owned(), rule, arm), until);
        }
    }
}

/// The fallback policy for a decision, when its rule's plugin has one.
pub fn policy<'r>(route: &'r CompiledRoute, decision: &Decision<'_>) -> Option<&'r Fallback> {
    decision.rule?;
    route.plugins.traffic_split.as_ref()?.fallback.as_ref()
}

/// A try that did not commit: what the client gets if it was the last one.
enum Failure {
    /// The upstream's own answer (head, and the body still to stream).
    Answer(Response<ProxyBody>, Served, Duration),
    /// A response written by the gateway.
    Local(Response<ProxyBody>),
}

/// The request, as each try needs it.
pub(crate) struct Request {
    /// The client's request.
    pub client: ClientRequest,
    /// The rule ticket of the split decision (spreads fallback picks).
    pub ticket: u64,
    /// Sticky key of the first arm's upstream.
    pub chash_key: Option<Vec<u8>>,
}

/// Forwards with fallback (see the module docs). `decision` has a rule.
pub(crate) async fn forward(
    gw: &Gateway,
    route: &CompiledRoute,
    decision: Decision<'_>,
    conf: &Fallback,
    req: Request,
    body: ClientBody,
    record: &mut RequestRecord,
) -> Routed {
    let route_id = route.route.id.as_str();
    let (Some(rule_index), Some(picked)) = (decision.rule, decision.arm) else {
        return Routed::Local(reply::missing_upstream());
    };
    let Some(rule) = route.rules.get(rule_index) else {
        return Routed::Local(reply::missing_upstream());
    };
    let content_length = req
        .client
        .parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut replay = match body {
        ClientBody::Read(bytes) => Some(Replay::Whole(bytes)),
        ClientBody::Streaming(incoming) => {
            match buffer(incoming, gw.max_body, content_length).await {
                Ok(r) => Some(r),
                Err(response) => return Routed::Local(*response),
            }
        }
    };
    if let Some(Replay::Whole(bytes)) = &replay {
        record.model = model_of(bytes);
    }
    let route_label = &*route.metrics.label;
    let state = &gw.fallback;
    let skipped = |arm: usize| state.skipped(route_id, rule.key, arm, state.now());
    let first = first_arm(picked, &rule.weights, req.ticket, skipped);
    let label = |i: usize| rule.arms.get(i).map_or("", |a| &*a.label);
    if first != picked {
        gw.observer.metrics.fallback(
            route_label,
            rule_index,
            label(picked),
            label(first),
            "retry_after",
        );
    }
    let mut attempts = Attempts::new(conf, first, state.now());
    let served = loop {
        let arm = attempts.current();
        let chash = (arm == picked)
            .then_some(req.chash_key.as_deref())
            .flatten();
        let outcome = attempt(gw, route, rule, arm, conf, &req, chash, &mut replay, record).await;
        let (reason, failure) = match outcome {
            Tried::Committed(routed) => break (arm, routed),
            Tried::Final(response) => break (arm, Routed::Local(response)),
            Tried::Failed(reason, failure) => (reason, failure),
        };
        if let (FailReason::Status(429), Failure::Answer(res, ..)) = (reason, &failure) {
            note_retry_after(state, route_id, rule.key, arm, res);
        }
        // A body that could only be sent once cannot go to another arm.
        let replayable = matches!(replay, Some(Replay::Whole(_)));
        let next = if replayable {
            attempts.next(state.now(), &rule.weights, req.ticket, skipped)
        } else {
            None
        };
        let Some(to) = next else {
            break (arm, into_routed(failure, gw));
        };
        tracing::info!(
            route = route_id,
            rule = rule_index,
            from_arm = label(arm),
            to_arm = label(to),
            reason = %reason.label(),
            "falling back to another arm"
        );
        gw.observer.metrics.fallback(
            route_label,
            rule_index,
            label(arm),
            label(to),
            &reason.label(),
        );
    };
    let (arm, routed) = served;
    record.arm = rule.arms.get(arm).map(|a| Arc::clone(&a.label));
    // The split's own pick, when the request was served elsewhere (a fallback, or a
    // Retry-After skip window).
    if arm != picked {
        record.fallback_from = Some(label(picked).to_owned());
    }
    gw.observer
        .metrics
        .arm_request(route_label, rule_index, label(arm));
    routed
}

/// Turns the last failure into the client's response.
fn into_routed(failure: Failure, gw: &Gateway) -> Routed {
    match failure {
        Failure::Local(response) => Routed::Local(response),
        Failure::Answer(response, served, read) => {
            let (parts, body) = response.into_parts();
            let sse = is_sse(&parts.headers);
            let watched = Watched::new(body, sse, served, Arc::clone(&gw.observer.metrics));
            Routed::Proxied(Response::from_parts(parts, stream(watched)), read, None)
        }
    }
}

/// A 429's `Retry-After` puts the arm in a skip window.
fn note_retry_after(
    state: &FallbackState,
    route: &str,
    rule: RuleKey,
    arm: usize,
    res: &Response<ProxyBody>,
) {
    let Some(value) = res.headers().get(RETRY_AFTER) else {
        return;
    };
    let wall = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    if let Some(delay) = retry_after(value.as_bytes(), wall) {
        let now = state.now();
        state.skip(route, rule, arm, now + delay, now);
        tracing::info!(
            route,
            arm,
            delay_s = delay.as_secs_f64(),
            "arm skipped after 429 Retry-After"
        );
    }
}

fn is_sse(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"))
}

/// The result of one try.
enum Tried {
    /// Committed to the client.
    Committed(Routed),
    /// A response that ends the request whatever the policy (bad body rewrite, missing
    /// secret): config problems that another arm would not fix predictably.
    Final(Response<ProxyBody>),
    /// Failed in a way that may fall back.
    Failed(FailReason, Failure),
}

/// One try on `arm`.
#[allow(clippy::too_many_arguments)]
async fn attempt(
    gw: &Gateway,
    route: &CompiledRoute,
    rule: &CompiledRule,
    arm: usize,
    conf: &Fallback,
    req: &Request,
    chash_key: Option<&[u8]>,
    replay: &mut Option<Replay>,
    record: &mut RequestRecord,
) -> Tried {
    let route_id = route.route.id.as_str();
    let Some(compiled) = rule.arms.get(arm) else {
        return Tried::Final(reply::missing_upstream());
    };
    let Some(upstream) = compiled.upstream.as_ref() else {
        let local = reply::missing_upstream();
        return Tried::Failed(FailReason::Connect, Failure::Local(local));
    };
    let target = Arm {
        upstream,
        rewrites: Rewrites::new(
            route.plugins.proxy_rewrite.as_ref(),
            compiled.rewrite.as_ref(),
        ),
        include_usage: compiled.llm.include_usage,
        chash_key,
    };
    let body = match replay {
        Some(Replay::Whole(bytes)) => Upload::Bytes(bytes.clone()),
        Some(Replay::Once(_)) if target.needs_body() => {
            return Tried::Final(reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {} bytes", gw.max_body),
            ))
        }
        Some(Replay::Once(_)) => match replay.take() {
            Some(Replay::Once(b)) => Upload::Stream(b),
            _ => Upload::Stream(crate::body::empty()),
        },
        None => Upload::Stream(crate::body::empty()),
    };
    let answered = match send(gw, route, target, &req.client, body, record).await {
        Ok(answered) => answered,
        Err(NotSent::Refused(response)) => return Tried::Final(*response),
        Err(NotSent::Failed(e)) => return failed_to_send(e, route_id),
    };
    let Answered {
        head,
        mut body,
        read: read_timeout,
        ..
    } = answered;
    let status = head.status.as_u16();
    let served = Served {
        route: route.metrics.label.to_string(),
        rule: record.rule.unwrap_or_default(),
        arm: compiled.label.to_string(),
    };
    let sse = is_sse(&head.headers);
    if conf.falls_back_on(status) {
        let res = Response::from_parts(head, body);
        return Tried::Failed(
            FailReason::Status(status),
            Failure::Answer(res, served, read_timeout),
        );
    }
    if sse && conf.sse_peek && head.status.is_success() {
        let peeked = peek(body, conf.sse_peek_bytes, conf.sse_peek_timeout).await;
        body = peeked.body;
        if peeked.failed {
            let res = Response::from_parts(head, body);
            return Tried::Failed(
                FailReason::SseError,
                Failure::Answer(res, served, read_timeout),
            );
        }
    }
    let watched = Watched::new(body, sse, served, Arc::clone(&gw.observer.metrics));
    Tried::Committed(Routed::Proxied(
        Response::from_parts(head, stream(watched)),
        read_timeout,
        None,
    ))
}

/// A connect failure or timeout: the gateway's 502/504 if it is the last try. A failed
/// client body ends the request (400): another arm would get the same broken body.
fn failed_to_send(e: ForwardError, route_id: &str) -> Tried {
    let reason = match e {
        ForwardError::ClientBody(_) => return Tried::Final(failure_reply(e, route_id)),
        ForwardError::Failed { timeout: true, .. } => FailReason::Timeout,
        ForwardError::NoNodes | ForwardError::Failed { .. } => FailReason::Connect,
    };
    Tried::Failed(reason, Failure::Local(failure_reply(e, route_id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn skip_windows_expire_and_are_per_arm() {
        let state = FallbackState::default();
        let rule = RuleKey(7);
        let t0 = Duration::from_secs(10);
        state.skip("r", rule, 1, t0 + Duration::from_secs(2), t0);
        assert!(state.skipped("r", rule, 1, t0));
        assert!(state.skipped("r", rule, 1, t0 + Duration::from_millis(1999)));
        assert!(!state.skipped("r", rule, 1, t0 + Duration::from_secs(2)));
        assert!(!state.skipped("r", rule, 0, t0));
        assert!(!state.skipped("other", rule, 1, t0));
        assert!(!state.skipped("r", RuleKey(8), 1, t0));
    }

    #[test]
    fn sse_is_told_by_content_type() {
        let mut h = http::HeaderMap::new();
        assert!(!is_sse(&h));
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        assert!(is_sse(&h));
    }
}
