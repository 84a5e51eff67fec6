//! The `api-breaker` state machine, with APISIX's exact semantics (reference §5):
//!
//! - Every failure (an upstream status in `unhealthy.http_statuses`) increments `n` and
//!   resets the success streak; every `failures`-th one stamps `lasttime = now`.
//! - While `lasttime + min(2^max(1, floor(n / failures)), max_breaker_sec) >= now`, in
//!   whole seconds as `ngx.time()` counts them, the breaker is open: 2 s, 4 s, 8 s, …
//!   The stamp itself lives `max_breaker_sec` (APISIX stores it with that TTL).
//! - A success (a status in `healthy.http_statuses`) counts only once a failure was
//!   recorded; `successes` of them in a row clear everything.
//!
//! Between trips requests pass ("half-open" here): they are what is counted.

use std::time::Duration;

use crate::config::plugins::ApiBreaker;
use crate::select::{ArmIndex, Schedule};

/// What the breaker says about the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// No trip since the last clear; requests pass (failures may be counting up).
    Closed,
    /// Short-circuit: answer with the break response (or fall back to another arm).
    Open {
        /// Time until the breaker lets requests through again.
        retry_after: Duration,
    },
    /// Tripped before and the open period is over: requests pass; `failures` more
    /// failures reopen it for longer, `successes` successes in a row close it.
    HalfOpen,
}

/// One breaker's state (one route + arm + configuration).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaker {
    /// Failures since the last clear (APISIX `unhealthy-` key).
    unhealthy: u64,
    /// Successes since the last failure, counted only while `unhealthy > 0`.
    healthy: u64,
    /// When the last `failures`-th failure happened.
    lasttime: Option<Duration>,
}

impl Breaker {
    /// A breaker that has seen nothing.
    pub fn new() -> Breaker {
        Breaker::default()
    }

    /// Failures counted since the last clear.
    pub fn failures(&self) -> u64 {
        self.unhealthy
    }

    /// True when the breaker holds no information (the entry can be dropped).
    pub fn is_idle(&self) -> bool {
        self.unhealthy == 0
    }

    /// The state at `now` under `conf`.
    pub fn before(&self, now: Duration, conf: &ApiBreaker) -> BreakerState {
        if self.unhealthy == 0 {
            return BreakerState::Closed;
        }
        let Some(lasttime) = self.lasttime else {
            return BreakerState::Closed;
        };
        let max = conf.max_breaker_sec;
        let trips = (self.unhealthy / conf.failures.max(1)).max(1);
        let open_secs = if trips >= 63 {
            max
        } else {
            (1u64 << trips).min(max)
        };
        // The stamp expires `max_breaker_sec` after it was set (shared dict TTL).
        let stamp_expires = lasttime.saturating_add(Duration::from_secs(max));
        // `lasttime + breaker_time >= ngx.time()`, whole seconds: open through the
        // whole second `lasttime + open_secs`.
        let open_until = Duration::from_secs(lasttime.as_secs().saturating_add(open_secs + 1))
            .min(stamp_expires);
        if now < open_until {
            BreakerState::Open {
                retry_after: open_until - now,
            }
        } else {
            BreakerState::HalfOpen
        }
    }

    /// Records the upstream `status` of a request that was let through, at `now`.
    pub fn record(&mut self, now: Duration, status: u16, conf: &ApiBreaker) {
        if conf.is_unhealthy(status) {
            self.unhealthy = self.unhealthy.saturating_add(1);
            self.healthy = 0;
            if self.unhealthy.is_multiple_of(conf.failures.max(1)) {
                self.lasttime = Some(now);
            }
            return;
        }
        if !conf.is_healthy(status) || self.unhealthy == 0 {
            return;
        }
        self.healthy += 1;
        if self.healthy >= conf.successes {
            *self = Breaker::new();
        }
    }
}

/// The `fallback: other_arms` choice: an arm of the rule (by `weights`, config order)
/// whose breaker is not open, spread by the same weighted schedule over the remaining
/// arms and `ticket`. Zero-weight arms stay out unless every weight is zero. `None` when
/// every eligible arm is open (→ the break response).
pub fn fallback_arm(
    weights: &[u32],
    ticket: u64,
    is_open: impl Fn(ArmIndex) -> bool,
) -> Option<ArmIndex> {
    let all_zero = weights.iter().all(|w| *w == 0);
    let candidates: Vec<ArmIndex> = (0..weights.len())
        .filter(|&i| (all_zero || weights[i] > 0) && !is_open(i))
        .collect();
    let sub: Vec<u32> = candidates.iter().map(|&i| weights[i]).collect();
    let pick = Schedule::new(&sub).arm_at(ticket)?;
    candidates.get(pick).copied()
}
