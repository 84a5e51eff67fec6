//! The guide's best-practice plugins on the request path, in APISIX priority order:
//! `key-auth` (2500) → `api-breaker` (1005) → `limit-count` (1002) → `traffic-split`.
//!
//! The breaker is kept per route and traffic-split arm, so it is checked right after the
//! arm is picked (the split itself is pure and takes only a ticket). All decisions come
//! from `split-core`; this module only holds the process-local state in sharded maps
//! keyed by the core's state keys, and turns decisions into responses.

pub mod limit_redis;
pub(crate) mod state;

use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use split_core::config::plugins::{
    ApiBreaker, BreakerFallback, BreakerKey, LimitCount, LimitPolicy,
};
use split_core::key_auth::{authenticate, AuthOutcome};
use split_core::limits::{fallback_arm, Breaker, BreakerState, LimitDecision, Window};
use split_core::request::Request as CoreRequest;
use split_core::snapshot::{CompiledRoute, Decision, Rewrites, Snapshot};

use crate::body::{empty, full, ProxyBody};
use crate::reply;
use state::Sharded;

/// A plugin's own answer to the client (401, limit rejection, break response); boxed
/// to keep the `Ok` path small.
pub type Refusal = Box<Response<ProxyBody>>;

/// Process-local plugin state.
pub struct PluginState {
    epoch: Instant,
    limits: Sharded<(u64, String), (Window, Duration)>,
    breakers: Sharded<BreakerKey, Breaker>,
}

impl Default for PluginState {
    fn default() -> Self {
        PluginState {
            epoch: Instant::now(),
            limits: Sharded::default(),
            breakers: Sharded::default(),
        }
    }
}

/// What the plugins let through, for the rest of the request.
#[derive(Default)]
pub struct Admitted {
    /// The authenticated (or anonymous) consumer.
    pub consumer: Option<String>,
    /// Breaker to tell the upstream status.
    pub breaker: Option<BreakerKey>,
    /// Quota headers to add to the response.
    pub quota: Option<LimitDecision>,
    /// The split rule's ticket of this request (spreads fallback picks).
    pub rule_ticket: u64,
    /// limit-count `policy: redis`: counted after the route decision (async).
    pub redis_limit: Option<limit_redis::PendingLimit>,
    /// `ai-rate-limiting` budgets checked (headers now, charges when the body ends).
    /// Boxed: 64 bytes that most routes never fill, in a value moved several times per
    /// request.
    pub tokens: Option<Box<crate::llm_limits::TokenAdmission>>,
}

impl PluginState {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// `key-auth`: the consumer's username, or the 401 response.
    pub fn key_auth<'s>(
        &self,
        snapshot: &'s Snapshot,
        route: &CompiledRoute,
        view: &CoreRequest<'_>,
    ) -> Result<Option<&'s str>, Refusal> {
        let Some(conf) = &route.plugins.key_auth_route else {
            return Ok(None);
        };
        match authenticate(conf, &snapshot.consumers, view) {
            AuthOutcome::Consumer { consumer, .. } | AuthOutcome::Anonymous(consumer) => {
                Ok(Some(consumer.username.as_str()))
            }
            AuthOutcome::Reject(why) => {
                let mut res = reply::json(StatusCode::UNAUTHORIZED, why.body().to_owned());
                if let Ok(v) = HeaderValue::from_str(&conf.challenge()) {
                    res.headers_mut().insert(WWW_AUTHENTICATE, v);
                }
                Err(Box::new(res))
            }
        }
    }

    /// `api-breaker`: keeps `decision`, moves it to another arm (`fallback:
    /// other_arms`), or answers with the break response.
    pub fn breaker<'s>(
        &self,
        route: &'s CompiledRoute,
        decision: Decision<'s>,
        ticket: u64,
    ) -> Result<(Decision<'s>, Option<BreakerKey>), Refusal> {
        let Some(conf) = &route.plugins.api_breaker else {
            return Ok((decision, None));
        };
        let route_id = route.route.id.as_str();
        let now = self.now();
        let arm = decision.rule.zip(decision.arm);
        let key = conf.state_key(route_id, arm);
        if !self.is_open(key, now, conf) {
            return Ok((decision, Some(key)));
        }
        let (Some((rule_index, _)), BreakerFallback::OtherArms) = (arm, conf.fallback) else {
            return Err(Box::new(break_response(conf)));
        };
        let Some(rule) = route.rules.get(rule_index) else {
            return Err(Box::new(break_response(conf)));
        };
        let open =
            |i: usize| self.is_open(conf.state_key(route_id, Some((rule_index, i))), now, conf);
        let Some(other) = fallback_arm(&rule.weights, ticket, open) else {
            return Err(Box::new(break_response(conf)));
        };
        let Some(compiled) = rule.arms.get(other) else {
            return Err(Box::new(break_response(conf)));
        };
        let rewrites = Rewrites::new(
            route.plugins.proxy_rewrite.as_ref(),
            compiled.rewrite.as_ref(),
        );
        let moved = Decision {
            rule: Some(rule_index),
            arm: Some(other),
            arm_label: Some(&compiled.label),
            upstream: compiled.upstream.as_ref(),
            rewrites,
        };
        Ok((
            moved,
            Some(conf.state_key(route_id, Some((rule_index, other)))),
        ))
    }

    fn is_open(&self, key: BreakerKey, now: Duration, conf: &ApiBreaker) -> bool {
        self.breakers.with(&key, |b| {
            matches!(
                b.map(|b| b.before(now, conf)),
                Some(BreakerState::Open { .. })
            )
        })
    }

    /// After the upstream answered (or failed): feeds the breaker and adds the quota
    /// headers. A gateway-made 502/504 counts as that upstream status, as nginx's
    /// `$upstream_status` does.
    pub fn after<B>(
        &self,
        route: &CompiledRoute,
        admitted: &Admitted,
        upstream_status: Option<u16>,
        response: &mut Response<B>,
    ) {
        if let Some(key) = admitted.breaker {
            let status = response.status().as_u16();
            let gateway_failure = matches!(status, 502 | 504).then_some(status);
            if let Some(status) = upstream_status.or(gateway_failure) {
                self.record_status(route, key, status);
            }
        }
        if let (Some(quota), true) = (admitted.quota, shows_quota(route)) {
            add_quota_headers(response, quota);
        }
    }

    /// Tells the breaker `key` the upstream status of a request it let through.
    fn record_status(&self, route: &CompiledRoute, key: BreakerKey, status: u16) {
        let Some(conf) = &route.plugins.api_breaker else {
            return;
        };
        let now = self.now();
        self.breakers.update(key, Breaker::new, |b| {
            b.record(now, status, conf);
            !b.is_idle()
        });
    }

    /// `limit-count`: the quota, or the rejection.
    pub fn limit(
        &self,
        route: &CompiledRoute,
        view: &CoreRequest<'_>,
    ) -> Result<Option<LimitDecision>, Refusal> {
        let Some(conf) = &route.plugins.limit_count else {
            return Ok(None);
        };
        if conf.policy != LimitPolicy::Local {
            // Counted in Redis by `limit_redis` once the route is decided.
            return Ok(None);
        }
        let now = self.now();
        let key = (conf.state_key(&route.route.id).0, conf.client_key(view));
        let mut decision = None;
        self.limits.update(
            key,
            || (Window::for_conf(conf), conf.time_window),
            |(w, _)| {
                decision = Some(w.hit(now, conf));
                true
            },
        );
        // Each entry carries its own window length: the shard may hold other routes'.
        self.limits.evict_some(|(w, window)| match w {
            Window::Fixed(f) => f.expired(now, *window),
            Window::Sliding(s) => s.expired(now, *window),
        });
        let Some(decision) = decision else {
            return Ok(None);
        };
        if decision.allowed {
            return Ok(Some(decision));
        }
        Err(Box::new(reject_limit(conf, decision)))
    }
}

fn reject_limit(conf: &LimitCount, decision: LimitDecision) -> Response<ProxyBody> {
    let status =
        StatusCode::from_u16(conf.rejected_code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut res = match conf.rejected_body() {
        Some(body) => reply::json(status, body),
        None => {
            let mut res = Response::new(empty());
            *res.status_mut() = status;
            res
        }
    };
    if conf.show_limit_quota_header {
        add_quota_headers(&mut res, decision);
    }
    res
}

/// Adds `X-RateLimit-Limit/Remaining/Reset`.
fn add_quota_headers<B>(res: &mut Response<B>, d: LimitDecision) {
    let headers = res.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", d.limit),
        ("x-ratelimit-remaining", d.remaining),
        ("x-ratelimit-reset", d.reset_secs),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
}

/// Whether `route` wants quota headers on its responses.
fn shows_quota(route: &CompiledRoute) -> bool {
    route
        .plugins
        .limit_count
        .as_ref()
        .is_some_and(|c| c.show_limit_quota_header)
}

fn break_response(conf: &ApiBreaker) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(conf.break_response_code).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = match &conf.break_response_body {
        Some(body) => Response::new(full(body.clone())),
        None => Response::new(empty()),
    };
    *res.status_mut() = status;
    for header in &conf.break_response_headers {
        if let Ok(v) = HeaderValue::from_str(&header.value) {
            res.headers_mut().append(header.name.clone(), v);
        }
    }
    res
}
