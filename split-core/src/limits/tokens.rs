//! `ai-rate-limiting` token budgets: a fixed window per key, checked before a request
//! (without consuming) and charged with the actual tokens after the response, as APISIX
//! does; so the request that crosses the budget still succeeds and the next is refused.
//!
//! The window starts at a key's first check and lasts `time_window`; the first check or
//! charge after it starts a new one (the `limit-count` fixed window, in tokens).

use std::time::Duration;

use super::window::ceil_secs;

/// The answer of a budget check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenDecision {
    /// Tokens are left: let the request through.
    pub allowed: bool,
    /// `X-AI-RateLimit-Limit-*`: the budget.
    pub limit: u64,
    /// `X-AI-RateLimit-Remaining-*`: tokens left in the window (0 when refused).
    pub remaining: u64,
    /// `X-AI-RateLimit-Reset-*`: whole seconds until the window resets (rounded up).
    pub reset_secs: u64,
}

/// Tokens used by one key in its current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenWindow {
    start: Option<Duration>,
    used: u64,
}

impl TokenWindow {
    /// A key that has used nothing.
    pub fn new() -> TokenWindow {
        TokenWindow::default()
    }

    fn roll(&mut self, now: Duration, window: Duration) -> Duration {
        match self.start {
            Some(start) if now < start.saturating_add(window) => start,
            _ => {
                self.start = Some(now);
                self.used = 0;
                now
            }
        }
    }

    /// Checks the budget at `now` (starting a window if none is running); consumes
    /// nothing.
    pub fn check(&mut self, now: Duration, limit: u64, window: Duration) -> TokenDecision {
        let start = self.roll(now, window);
        let remaining = limit.saturating_sub(self.used);
        TokenDecision {
            allowed: remaining >= 1,
            limit,
            remaining,
            reset_secs: ceil_secs(start.saturating_add(window).saturating_sub(now)),
        }
    }

    /// Charges `tokens` used by a request that ended at `now`.
    pub fn charge(&mut self, now: Duration, tokens: u64, window: Duration) {
        self.roll(now, window);
        self.used = self.used.saturating_add(tokens);
    }

    /// Tokens used in the current window.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// True when the window has ended at `now` (the entry can be dropped).
    pub fn expired(&self, now: Duration, window: Duration) -> bool {
        self.start
            .is_none_or(|start| now >= start.saturating_add(window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn check_does_not_consume_and_the_crossing_request_succeeds() {
        let mut w = TokenWindow::new();
        let d = w.check(s(0), 100, W);
        assert_eq!(
            d,
            TokenDecision {
                allowed: true,
                limit: 100,
                remaining: 100,
                reset_secs: 60
            }
        );
        assert_eq!(w.check(s(1), 100, W).remaining, 100);
        w.charge(s(2), 60, W);
        let d = w.check(s(3), 100, W);
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_secs), (40, 57));
        // This request crosses the budget: charged in full.
        w.charge(s(4), 70, W);
        assert_eq!(w.used(), 130);
        let d = w.check(s(5), 100, W);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (false, 0, 55));
        // A new window starts after 60 s.
        assert!(w.expired(s(60), W));
        let d = w.check(s(60), 100, W);
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 100, 60));
    }

    #[test]
    fn a_charge_after_the_window_starts_a_new_one() {
        let mut w = TokenWindow::new();
        w.check(s(0), 10, W);
        w.charge(s(61), 4, W);
        assert_eq!(w.used(), 4);
        assert_eq!(w.check(s(62), 10, W).remaining, 6);
        w.charge(s(63), u64::MAX, W);
        assert_eq!(w.check(s(64), 10, W).remaining, 0);
    }
}
