//! `limit-count` windows.
//!
//! Fixed (APISIX `policy: local`): a key's window starts at its first request and lasts
//! `time_window`; the first request after it starts a new one. `X-RateLimit-Reset` is
//! the whole seconds left in the window (rounded up).
//!
//! Sliding: windows of `time_window` are laid end to end from the key's first request;
//! a request is allowed while `floor(previous · (W − elapsed) / W) + current < count`,
//! where `elapsed` is the time since the current window began: the previous window's
//! count fades out linearly. Reset is the time left in the current window.

use std::time::Duration;

use crate::config::plugins::{LimitCount, WindowType};

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitDecision {
    /// Let the request through.
    pub allowed: bool,
    /// `X-RateLimit-Limit`: the configured count.
    pub limit: u64,
    /// `X-RateLimit-Remaining`: requests left after this one (0 when rejected).
    pub remaining: u64,
    /// `X-RateLimit-Reset`: whole seconds until the window resets (rounded up).
    pub reset_secs: u64,
}

/// A fixed window counter for one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixedWindow {
    /// Start of the current window; `None` before the first request.
    start: Option<Duration>,
    /// Requests allowed in the current window.
    used: u64,
}

impl FixedWindow {
    /// A counter that has seen no request.
    pub fn new() -> FixedWindow {
        FixedWindow::default()
    }

    /// Counts one request at `now` against `count` per `window`.
    pub fn hit(&mut self, now: Duration, count: u64, window: Duration) -> LimitDecision {
        let start = match self.start {
            Some(start) if now < start.saturating_add(window) => start,
            _ => {
                self.used = 0;
                self.start = Some(now);
                now
            }
        };
        let reset_secs = ceil_secs(start.saturating_add(window).saturating_sub(now));
        let allowed = self.used < count;
        if allowed {
            self.used += 1;
        }
        LimitDecision {
            allowed,
            limit: count,
            remaining: count.saturating_sub(self.used),
            reset_secs,
        }
    }

    /// True when the window has ended at `now`: the entry can be dropped, the next hit
    /// starts afresh either way.
    pub fn expired(&self, now: Duration, window: Duration) -> bool {
        self.start
            .is_none_or(|start| now >= start.saturating_add(window))
    }
}

/// A sliding window counter for one key (two adjacent fixed windows, weighted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlidingWindow {
    /// Start of window 0 (the key's first request); `None` before it.
    origin: Option<Duration>,
    /// Number of the current window since `origin`.
    index: u64,
    /// Requests allowed in the current window.
    current: u64,
    /// Requests allowed in the window before it.
    previous: u64,
}

impl SlidingWindow {
    /// A counter that has seen no request.
    pub fn new() -> SlidingWindow {
        SlidingWindow::default()
    }

    /// Counts one request at `now` against `count` per `window`.
    pub fn hit(&mut self, now: Duration, count: u64, window: Duration) -> LimitDecision {
        let origin = *self.origin.get_or_insert(now);
        let window_ns = window.as_nanos().max(1);
        let since = now.saturating_sub(origin).as_nanos();
        // Fits u64: a u64 of windows of at least 1 ns is 584 years.
        let index = u64::try_from(since / window_ns).unwrap_or(u64::MAX);
        if index != self.index {
            self.previous = if index == self.index.saturating_add(1) {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.index = index;
        }
        let elapsed = since - u128::from(index) * window_ns;
        let weighted = u128::from(self.previous) * (window_ns - elapsed) / window_ns;
        // At most `previous`, which is a u64.
        let used = u64::try_from(weighted)
            .unwrap_or(u64::MAX)
            .saturating_add(self.current);
        let allowed = used < count;
        if allowed {
            self.current += 1;
        }
        let left_ns = window_ns - elapsed;
        LimitDecision {
            allowed,
            limit: count,
            remaining: if allowed { count - used - 1 } else { 0 },
            reset_secs: u64::try_from(left_ns.div_ceil(1_000_000_000)).unwrap_or(u64::MAX),
        }
    }

    /// True when both windows are over at `now` (nothing left to weigh).
    pub fn expired(&self, now: Duration, window: Duration) -> bool {
        let Some(origin) = self.origin else {
            return true;
        };
        let window_ns = window.as_nanos().max(1);
        let index = now.saturating_sub(origin).as_nanos() / window_ns;
        index > u128::from(self.index) + 1
    }
}

/// Either window, as the configuration asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// `window_type: fixed`.
    Fixed(FixedWindow),
    /// `window_type: sliding`.
    Sliding(SlidingWindow),
}

impl Window {
    /// A fresh counter of the kind `conf` asks for.
    pub fn for_conf(conf: &LimitCount) -> Window {
        match conf.window_type {
            WindowType::Fixed => Window::Fixed(FixedWindow::new()),
            WindowType::Sliding => Window::Sliding(SlidingWindow::new()),
        }
    }

    /// Counts one request at `now` with `conf`'s count and window.
    pub fn hit(&mut self, now: Duration, conf: &LimitCount) -> LimitDecision {
        match self {
            Window::Fixed(w) => w.hit(now, conf.count, conf.time_window),
            Window::Sliding(w) => w.hit(now, conf.count, conf.time_window),
        }
    }

    /// True when the counter no longer matters at `now` and can be dropped.
    pub fn expired(&self, now: Duration, conf: &LimitCount) -> bool {
        match self {
            Window::Fixed(w) => w.expired(now, conf.time_window),
            Window::Sliding(w) => w.expired(now, conf.time_window),
        }
    }
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
