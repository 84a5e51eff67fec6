//! limit-count `policy: redis`: one counter per key in a Redis shared by every gateway
//! that points at it, updated by an atomic Lua script (one round trip per request).
//!
//! - Fixed window: the window starts at a key's first request (`SET key 1 PX window`);
//!   later requests `INCR` while the count is below the limit, and rejected requests do
//!   not count (as the local policy). `X-RateLimit-Reset` is the key's `PTTL`, rounded up.
//! - Sliding window: the local policy's two-window estimate (see
//!   `split_core::limits::SlidingWindow`) kept in a hash `{o: origin, i: index, c: current,
//!   p: previous}` with Redis' own clock (`TIME`), so gateways' clocks do not matter.
//!
//! Redis down or slow (bounded by `redis_timeout`): with `allow_degradation` the request
//! passes without quota headers; without it the answer is APISIX's 500
//! `{"error_msg":"failed to limit count"}`. Either way a log line names the Redis target
//! (see [`crate::redis`]).

use std::sync::LazyLock;

use http::StatusCode;
use redis::Script;
use split_core::config::plugins::{LimitCount, LimitPolicy, WindowType};
use split_core::limits::LimitDecision;
use split_core::request::Request as CoreRequest;
use split_core::snapshot::CompiledRoute;

use super::{reject_limit, Refusal};
use crate::redis::RedisClients;
use crate::reply;

/// `KEYS[1]` counter, `ARGV[1]` count, `ARGV[2]` window in ms → `{allowed, used, ttl_ms}`.
const FIXED: &str = r"
local count = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('SET', KEYS[1], 1, 'PX', window)
  return {1, 1, window}
end
local used = tonumber(redis.call('GET', KEYS[1])) or 0
if used >= count then
  return {0, used, ttl}
end
used = redis.call('INCR', KEYS[1])
return {1, used, ttl}
";

/// `KEYS[1]` hash, `ARGV[1]` count, `ARGV[2]` window in µs →
/// `{allowed, remaining, reset_ms}`.
const SLIDING: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local count = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local h = redis.call('HMGET', KEYS[1], 'o', 'i', 'c', 'p')
local origin = tonumber(h[1]) or now
local index = tonumber(h[2]) or 0
local current = tonumber(h[3]) or 0
local previous = tonumber(h[4]) or 0
local since = now - origin
if since < 0 then since = 0 end
local idx = math.floor(since / window)
if idx ~= index then
  if idx == index + 1 then previous = current else previous = 0 end
  current = 0
  index = idx
end
local elapsed = since - idx * window
local used = math.floor(previous * (window - elapsed) / window) + current
local allowed = 0
local remaining = 0
if used < count then
  allowed = 1
  current = current + 1
  remaining = count - used - 1
end
redis.call('HSET', KEYS[1], 'o', string.format('%.0f', origin), 'i', index,
  'c', current, 'p', previous)
redis.call('PEXPIRE', KEYS[1], math.ceil(((idx + 2) * window - since) / 1000))
return {allowed, remaining, math.ceil((window - elapsed) / 1000)}
";

static FIXED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(FIXED));
static SLIDING_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SLIDING));

/// A request counted against a Redis limit after the (synchronous) route decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLimit {
    /// The counter's Redis key.
    pub key: String,
}

/// The pending Redis limit of `route` for `view`, or `None` when its limit-count is
/// local (or absent).
pub fn pending(route: &CompiledRoute, view: &CoreRequest<'_>) -> Option<PendingLimit> {
    let conf = route.plugins.limit_count.as_ref()?;
    match conf.policy {
        LimitPolicy::Local => None,
        LimitPolicy::Redis(_) => Some(PendingLimit {
            key: conf.redis_key(&route.route.id, &conf.client_key(view)),
        }),
    }
}

/// Counts `pending` in Redis: the quota, the rejection, or (Redis failing) the
/// degradation outcome.
pub async fn limit(
    clients: &RedisClients,
    route: &CompiledRoute,
    pending: &PendingLimit,
) -> Result<Option<LimitDecision>, Refusal> {
    let Some(conf) = &route.plugins.limit_count else {
        return Ok(None);
    };
    let LimitPolicy::Redis(target) = &conf.policy else {
        return Ok(None);
    };
    let what = format!("limit-count route {}", route.route.id);
    let answer = clients
        .call(target, &what, |mut conn| async move {
            let (script, window) = match conf.window_type {
                WindowType::Fixed => (&*FIXED_SCRIPT, millis(conf)),
                WindowType::Sliding => (&*SLIDING_SCRIPT, millis(conf).saturating_mul(1000)),
            };
            script
                .key(&pending.key)
                .arg(conf.count)
                .arg(window)
                .invoke_async::<(i64, i64, i64)>(&mut conn)
                .await
        })
        .await;
    let decision = match answer {
        Ok(reply) => decision(conf, reply),
        Err(_) if conf.allow_degradation => return Ok(None),
        Err(_) => {
            return Err(Box::new(reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed to limit count",
            )))
        }
    };
    if decision.allowed {
        Ok(Some(decision))
    } else {
        Err(Box::new(reject_limit(conf, decision)))
    }
}

/// The window in whole milliseconds.
fn millis(conf: &LimitCount) -> u64 {
    u64::try_from(conf.time_window.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a script's reply.
fn decision(conf: &LimitCount, (allowed, n, ms): (i64, i64, i64)) -> LimitDecision {
    let allowed = allowed == 1;
    let n = n.max(0).unsigned_abs();
    let remaining = match (allowed, conf.window_type) {
        (false, _) => 0,
        // The fixed script answers how many were used, the sliding one what is left.
        (true, WindowType::Fixed) => conf.count.saturating_sub(n),
        (true, WindowType::Sliding) => n,
    };
    LimitDecision {
        allowed,
        limit: conf.count,
        remaining,
        reset_secs: ms.max(0).unsigned_abs().div_ceil(1000),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conf(window_type: &str) -> LimitCount {
        LimitCount::from_json(&json!({
            "count": 3, "time_window": 10, "policy": "redis",
            "redis_host": "127.0.0.1", "window_type": window_type
        }))
        .unwrap()
    }

    #[test]
    fn replies_become_quota_headers() {
        let fixed = conf("fixed");
        let d = decision(&fixed, (1, 1, 10_000));
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 2, 10));
        let d = decision(&fixed, (1, 3, 1));
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 0, 1));
        let d = decision(&fixed, (0, 3, 2_500));
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (false, 0, 3));
        let sliding = conf("sliding");
        let d = decision(&sliding, (1, 1, 9_001));
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 1, 10));
        let d = decision(&sliding, (0, 0, 0));
        assert_eq!((d.allowed, d.limit, d.reset_secs), (false, 3, 0));
    }
}
