//! `ai-rate-limiting` on the request path: token budgets checked before forwarding
//! (route-wide and the picked arm's), charged with the response's usage when it ends,
//! and the `X-AI-RateLimit-{Limit,Remaining,Reset}-<suffix>` headers. The window logic is
//! split-core's [`TokenWindow`]; this module only holds the process-local counters.
//!
//! `policy: redis`: [`TokenBudgets::check`] lists the request's budgets in
//! [`TokenAdmission::shared`] instead of reading local counters, and
//! [`crate::llm_limits_redis`] checks them (async, once the route is decided) and
//! charges them; the local and the Redis side share the headers and the refusal.

use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use split_core::config::plugins::{AiRateLimiting, LimitStrategy, TokenBudget};
use split_core::limits::{TokenDecision, TokenWindow};
use split_core::snapshot::CompiledRoute;

use crate::body::{empty, ProxyBody};
use crate::plugins::state::Sharded;
use crate::plugins::Refusal;
use crate::reply;

/// Header suffix of the route-wide budget.
pub const ROUTE_SUFFIX: &str = "route";

/// Identity of one token counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    state: u64,
    consumer: String,
    suffix: String,
}

/// A counter to charge when the response's usage is known.
#[derive(Debug, Clone)]
pub struct Charge {
    key: BudgetKey,
    window: Duration,
}

/// What the budgets let through: the quotas to show and what to charge afterwards.
#[derive(Debug, Clone)]
pub struct TokenAdmission {
    /// `(suffix, decision)` per budget checked.
    pub quotas: Vec<(String, TokenDecision)>,
    /// Counters to charge.
    pub charges: Vec<Charge>,
    /// Which tokens to charge.
    pub strategy: LimitStrategy,
    /// Add the quota headers to the response.
    pub show_headers: bool,
    /// `policy: redis`: the budgets to check in Redis (then `quotas` and `charges` start
    /// empty; the Redis check fills `quotas`). Boxed: most routes have none.
    pub shared: Option<Box<crate::llm_limits_redis::SharedBudgets>>,
}

/// Process-local token counters.
pub struct TokenBudgets {
    epoch: Instant,
    windows: Sharded<BudgetKey, (TokenWindow, Duration)>,
}

impl Default for TokenBudgets {
    fn default() -> Self {
        TokenBudgets {
            epoch: Instant::now(),
            windows: Sharded::default(),
        }
    }
}

impl TokenBudgets {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Checks the route's budgets for a request served by arm `arm` (label) for
    /// `consumer`; nothing is consumed. `Ok(None)` when the route has no
    /// `ai-rate-limiting`.
    pub fn check(
        &self,
        route: &CompiledRoute,
        arm: Option<&str>,
        consumer: Option<&str>,
    ) -> Result<Option<TokenAdmission>, Refusal> {
        let Some(conf) = &route.plugins.ai_rate_limiting else {
            return Ok(None);
        };
        let state = conf.state_key(&route.route.id);
        let consumer = if conf.per_consumer {
            consumer.unwrap_or_default().to_owned()
        } else {
            String::new()
        };
        let mut budgets: Vec<(&str, &TokenBudget)> = Vec::with_capacity(2);
        if let Some(b) = &conf.route {
            budgets.push((ROUTE_SUFFIX, b));
        }
        if let Some((label, b)) = arm.and_then(|a| conf.arm_budget(a).map(|b| (a, b))) {
            budgets.push((label, b));
        }
        let shared = crate::llm_limits_redis::SharedBudgets::for_request(
            conf,
            &route.route.id,
            &consumer,
            &budgets,
        )
        .map(Box::new);
        let mut admission = TokenAdmission {
            quotas: Vec::with_capacity(budgets.len()),
            charges: Vec::with_capacity(budgets.len()),
            strategy: conf.limit_strategy,
            show_headers: conf.show_limit_quota_header,
            shared,
        };
        if admission.shared.is_some() {
            return Ok(Some(admission));
        }
        let now = self.now();
        for (suffix, budget) in budgets {
            let key = BudgetKey {
                state,
                consumer: consumer.clone(),
                suffix: suffix.to_owned(),
            };
            let mut decision = None;
            self.windows.update(
                key.clone(),
                || (TokenWindow::new(), budget.time_window),
                |(w, _)| {
                    decision = Some(w.check(now, budget.limit, budget.time_window));
                    true
                },
            );
            // `update` always runs the closure.
            let Some(decision) = decision else { continue };
            admission.quotas.push((suffix.to_owned(), decision));
            admission.charges.push(Charge {
                key,
                window: budget.time_window,
            });
        }
        self.windows
            .evict_some(|(w, window)| w.expired(now, *window));
        if admission.quotas.iter().all(|(_, d)| d.allowed) {
            return Ok(Some(admission));
        }
        Err(Box::new(refusal(conf, &admission)))
    }

    /// Charges `tokens` to every counter of `charges`.
    pub fn charge(&self, charges: &[Charge], tokens: u64) {
        let now = self.now();
        for c in charges {
            self.windows.update(
                c.key.clone(),
                || (TokenWindow::new(), c.window),
                |(w, _)| {
                    w.charge(now, tokens, c.window);
                    true
                },
            );
        }
    }
}

/// The refusal of an exhausted budget: `rejected_code`, `rejected_msg` and the headers.
pub(crate) fn refusal(conf: &AiRateLimiting, admission: &TokenAdmission) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(conf.rejected_code).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let mut res = match conf.rejected_body() {
        Some(body) => reply::json(status, body),
        None => {
            let mut res = Response::new(empty());
            *res.status_mut() = status;
            res
        }
    };
    add_headers(&mut res, admission);
    res
}

/// Adds `X-AI-RateLimit-{Limit,Remaining,Reset}-<suffix>` for every budget checked.
pub fn add_headers<B>(res: &mut Response<B>, admission: &TokenAdmission) {
    if !admission.show_headers {
        return;
    }
    let headers = res.headers_mut();
    for (suffix, d) in &admission.quotas {
        for (prefix, value) in [
            ("x-ai-ratelimit-limit-", d.limit),
            ("x-ai-ratelimit-remaining-", d.remaining),
            ("x-ai-ratelimit-reset-", d.reset_secs),
        ] {
            // Suffixes are arm labels (validated names or indexes) or `route`; a name
            // that is not a valid header token just gets no header.
            let Ok(name) = HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes()) else {
                continue;
            };
            headers.insert(name, HeaderValue::from(value));
        }
    }
}
