//! `ai-rate-limiting` with `policy: redis`: the token budgets of
//! [`crate::llm_limits`] kept in one Redis shared by every gateway that points at it,
//! with the local policy's semantics (split-core's `TokenWindow`):
//!
//! - **check** (before forwarding, nothing consumed): one Lua script reads every budget of
//!   the request (route-wide and the picked arm's). A budget without a running window
//!   starts one (`SET key 0 PX window`), as the local first check does. The answer is the
//!   tokens used and the window's `PTTL`: `Remaining = limit − used`, refused when it is
//!   0, `Reset` = the `PTTL` in whole seconds rounded up, all from Redis' clock.
//! - **charge** (when the response body ends, with its actual usage): one Lua script
//!   `INCRBY`s every key and `PEXPIRE`s the ones without a window (a charge after the
//!   window ended starts a new one, as locally). It runs in a task of its own, so a slow
//!   Redis never holds the response.
//!
//! Keys: `plugin-ai-rate-limiting:<state>:<consumer>:<suffix>` (see split-core's
//! `AiRateLimiting::redis_key`): an edit of the plugin starts fresh budgets, other edits
//! keep them. Connections, timeouts (`redis_timeout`), back-off and the failure log
//! lines (target without password, at most one per second per target) are
//! [`crate::redis::RedisClients`]'.
//!
//! **Redis unreachable, slow or failing: fail open.** APISIX's ai-rate-limiting has no
//! `allow_degradation` field (limit-count's switch), and refusing every LLM request
//! because a counter store is down would turn a Redis outage into an API outage. So a
//! failed check lets the request through without `X-AI-RateLimit-*` headers, a failed
//! charge loses that request's usage; both log the warning above and count
//! `split_llm_ratelimit_redis_failures_total{route,op=check|charge}`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use split_core::config::plugins::{AiRateLimiting, LimitPolicy, TokenBudget};
use split_core::config::redis_target::RedisTarget;
use split_core::limits::TokenDecision;
use split_core::snapshot::CompiledRoute;

use crate::llm_limits::{refusal, TokenAdmission};
use crate::llm_state::LlmState;
use crate::plugins::Refusal;

/// `KEYS[i]` budget, `ARGV[i]` its window in ms → `{used_1, pttl_1, used_2, pttl_2, …}`.
const CHECK: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[i])
  local ttl = redis.call('PTTL', key)
  local used = 0
  if ttl < 0 then
    redis.call('SET', key, 0, 'PX', window)
    ttl = window
  else
    used = tonumber(redis.call('GET', key)) or 0
  end
  out[2 * i - 1] = used
  out[2 * i] = ttl
end
return out
";

/// `KEYS[i]` budget, `ARGV[1]` tokens, `ARGV[i + 1]` window in ms → number of keys.
const CHARGE: &str = r"
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[1])
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[i + 1])
  end
end
return #KEYS
";

static CHECK_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHECK));
static CHARGE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CHARGE));

/// One budget of a request, in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SharedBudget {
    /// Header suffix (`route` or the arm label).
    suffix: String,
    /// Redis key.
    key: String,
    limit: u64,
    window_ms: u64,
}

/// The Redis budgets of one request: checked by [`admit`] before forwarding, charged by
/// [`charge`] when the response ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBudgets {
    target: RedisTarget,
    route_id: String,
    budgets: Vec<SharedBudget>,
}

impl SharedBudgets {
    /// The Redis budgets of `conf` on route `route_id`, or `None` under `policy: local`.
    /// `budgets` are `(suffix, budget)` as the local check lists them.
    pub fn for_request(
        conf: &AiRateLimiting,
        route_id: &str,
        consumer: &str,
        budgets: &[(&str, &TokenBudget)],
    ) -> Option<SharedBudgets> {
        let LimitPolicy::Redis(target) = &conf.policy else {
            return None;
        };
        let budgets = budgets
            .iter()
            .map(|(suffix, b)| SharedBudget {
                suffix: (*suffix).to_owned(),
                key: conf.redis_key(route_id, consumer, suffix),
                limit: b.limit,
                window_ms: millis(b.time_window),
            })
            .collect();
        Some(SharedBudgets {
            target: target.clone(),
            route_id: route_id.to_owned(),
            budgets,
        })
    }

    fn what(&self) -> String {
        format!("ai-rate-limiting route {}", self.route_id)
    }
}

/// Checks the Redis budgets of `tokens` (if any) and fills in its quotas: `Err` is the
/// refusal when a budget is exhausted. Redis failing lets the request through (see the
/// module doc).
pub async fn admit(
    state: &LlmState,
    route: &CompiledRoute,
    tokens: &mut Option<Box<TokenAdmission>>,
) -> Result<(), Refusal> {
    let Some(admission) = tokens.as_mut() else {
        return Ok(());
    };
    let Some(shared) = &admission.shared else {
        return Ok(());
    };
    let Some(conf) = &route.plugins.ai_rate_limiting else {
        return Ok(());
    };
    let answer = state
        .redis
        .call(&shared.target, &shared.what(), |mut conn| async move {
            let mut invocation = CHECK_SCRIPT.prepare_invoke();
            for b in &shared.budgets {
                invocation.key(&b.key).arg(b.window_ms);
            }
            invocation.invoke_async::<Vec<i64>>(&mut conn).await
        })
        .await;
    let reply = match answer {
        Ok(reply) if reply.len() == 2 * shared.budgets.len() => reply,
        // A reply of another shape is a script bug; treat it as a failure, not a panic.
        Ok(_) | Err(_) => {
            state
                .metrics
                .llm
                .ratelimit_redis_failed(&shared.route_id, "check");
            return Ok(());
        }
    };
    admission.quotas = shared
        .budgets
        .iter()
        .zip(reply.chunks_exact(2))
        .map(|(b, pair)| (b.suffix.clone(), decision(b.limit, pair[0], pair[1])))
        .collect();
    if admission.quotas.iter().all(|(_, d)| d.allowed) {
        Ok(())
    } else {
        Err(Box::new(refusal(conf, admission)))
    }
}

/// Charges `tokens` to `shared` in a task of its own (the response is not held).
pub fn charge(state: &Arc<LlmState>, shared: &SharedBudgets, tokens: u64) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // Requests end inside the server's runtime; count it rather than panic if not.
        state
            .metrics
            .llm
            .ratelimit_redis_failed(&shared.route_id, "charge");
        return;
    };
    let state = Arc::clone(state);
    let shared = shared.clone();
    runtime.spawn(async move {
        // Redis' INCRBY takes a signed 64-bit integer.
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let answer = state
            .redis
            .call(&shared.target, &shared.what(), |mut conn| {
                let shared = &shared;
                async move {
                    let mut invocation = CHARGE_SCRIPT.prepare_invoke();
                    invocation.arg(tokens);
                    for b in &shared.budgets {
                        invocation.key(&b.key).arg(b.window_ms);
                    }
                    invocation.invoke_async::<i64>(&mut conn).await
                }
            })
            .await;
        if answer.is_err() {
            state
                .metrics
                .llm
                .ratelimit_redis_failed(&shared.route_id, "charge");
        }
    });
}

/// A budget's answer from the tokens `used` and the window's `pttl_ms`, as
/// `TokenWindow::check` computes it.
fn decision(limit: u64, used: i64, pttl_ms: i64) -> TokenDecision {
    let remaining = limit.saturating_sub(used.max(0).unsigned_abs());
    TokenDecision {
        allowed: remaining >= 1,
        limit,
        remaining,
        reset_secs: pttl_ms.max(0).unsigned_abs().div_ceil(1000),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replies_become_decisions() {
        assert_eq!(
            decision(100, 0, 60_000),
            TokenDecision {
                allowed: true,
                limit: 100,
                remaining: 100,
                reset_secs: 60
            }
        );
        let d = decision(100, 99, 1_001);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 1, 2));
        let d = decision(100, 100, 500);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (false, 0, 1));
        // The request that crossed the budget was charged in full.
        let d = decision(100, 130, 0);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (false, 0, 0));
        let d = decision(100, -5, -2);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 100, 0));
    }

    #[test]
    fn budgets_exist_only_under_policy_redis() {
        let redis = AiRateLimiting::from_json(&json!({
            "limit": 100, "time_window": 60, "policy": "redis",
            "redis_host": "127.0.0.1", "redis_password": "hidden-pass"
        }))
        .unwrap();
        let budget = TokenBudget {
            limit: 100,
            time_window: Duration::from_secs(60),
        };
        let shared =
            SharedBudgets::for_request(&redis, "r1", "alice", &[("route", &budget)]).unwrap();
        assert_eq!(shared.budgets.len(), 1);
        assert_eq!(
            shared.budgets[0].key,
            redis.redis_key("r1", "alice", "route")
        );
        assert_eq!(shared.budgets[0].window_ms, 60_000);
        assert_eq!(shared.what(), "ai-rate-limiting route r1");
        assert!(!format!("{shared:?}").contains("hidden-pass"));
        let local = AiRateLimiting::from_json(&json!({"limit": 1, "time_window": 1})).unwrap();
        assert_eq!(
            SharedBudgets::for_request(&local, "r1", "", &[("route", &budget)]),
            None
        );
    }
}
