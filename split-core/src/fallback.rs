//! Fallback decisions as pure functions (the proxy does the IO and holds the clock):
//!
//! - [`Attempts`]: after a failed attempt, whether to try again and on which arm — a
//!   weighted pick among the rule's arms not yet tried and not skipped, with the same
//!   ticket and the same code as api-breaker's `fallback: other_arms`
//!   ([`crate::limits::fallback_arm`]), bounded by `max_retries` and the time budget.
//! - [`retry_after`]: a `Retry-After` value (seconds or HTTP date) as a delay.
//! - [`first_sse_event`]: whether the first event of an SSE stream is an error.
//!
//! Time is a parameter: `now` is a monotonic `Duration` since an epoch the caller picks
//! (and, for HTTP dates only, `now_unix` since the Unix epoch).

use std::time::{Duration, SystemTime};

use crate::config::fallback::Fallback;
use crate::limits::fallback_arm;
use crate::select::ArmIndex;

/// Longest skip a `Retry-After` can ask for; longer values are cut to this.
pub const MAX_SKIP: Duration = Duration::from_secs(300);

/// Why an attempt did not produce a response to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// No connection could be made (refused, DNS, TLS).
    Connect,
    /// No response head in time.
    Timeout,
    /// A status listed in `fallback.on`.
    Status(u16),
    /// The first SSE event was an error.
    SseError,
}

impl FailReason {
    /// The `reason` label: `connect`, `timeout`, `http_<status>`, `sse_error`.
    pub fn label(self) -> String {
        match self {
            FailReason::Connect => "connect".to_owned(),
            FailReason::Timeout => "timeout".to_owned(),
            FailReason::Status(s) => format!("http_{s}"),
            FailReason::SseError => "sse_error".to_owned(),
        }
    }
}

/// The attempts of one request: which arms were tried, when it started.
#[derive(Debug, Clone)]
pub struct Attempts {
    started: Duration,
    tried: Vec<ArmIndex>,
    max_retries: u32,
    budget: Duration,
}

impl Attempts {
    /// The first attempt, on `arm`, starting at `now`.
    pub fn new(conf: &Fallback, arm: ArmIndex, now: Duration) -> Attempts {
        Attempts {
            started: now,
            tried: vec![arm],
            max_retries: conf.max_retries,
            budget: conf.budget,
        }
    }

    /// Arms tried so far, in order.
    pub fn tried(&self) -> &[ArmIndex] {
        &self.tried
    }

    /// The arm of the current attempt.
    pub fn current(&self) -> ArmIndex {
        // `new` puts one arm in and nothing removes any.
        self.tried.last().copied().unwrap_or_default()
    }

    /// After the current attempt failed at `now`: the next arm to try, or `None` (return
    /// the last failure) when retries or the budget are used up or no arm is left.
    /// `weights` are the rule's weights, `ticket` the request's rule ticket,
    /// `skipped(arm)` is true while an arm is in a `Retry-After` window. The chosen arm
    /// is recorded as tried.
    pub fn next(
        &mut self,
        now: Duration,
        weights: &[u32],
        ticket: u64,
        skipped: impl Fn(ArmIndex) -> bool,
    ) -> Option<ArmIndex> {
        let retries = self.tried.len().saturating_sub(1);
        if retries >= usize::try_from(self.max_retries).unwrap_or(usize::MAX) {
            return None;
        }
        if now.saturating_sub(self.started) >= self.budget {
            return None;
        }
        let tried = &self.tried;
        let arm = fallback_arm(weights, ticket, |i| tried.contains(&i) || skipped(i))?;
        self.tried.push(arm);
        Some(arm)
    }
}

/// The arm to use first: `picked`, unless it is in a `Retry-After` window and another
/// arm is not (then a weighted pick among those, by `ticket`).
pub fn first_arm(
    picked: ArmIndex,
    weights: &[u32],
    ticket: u64,
    skipped: impl Fn(ArmIndex) -> bool,
) -> ArmIndex {
    if !skipped(picked) {
        return picked;
    }
    fallback_arm(weights, ticket, skipped).unwrap_or(picked)
}

/// A `Retry-After` header value as a delay from now: delta-seconds, or an HTTP date
/// (`now_unix` is the wall clock since the Unix epoch). `None` for an unparseable
/// value or a date in the past; capped at [`MAX_SKIP`].
pub fn retry_after(value: &[u8], now_unix: Duration) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let delay = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // An overflowing number of digits is a very long delay.
        Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(text).ok()?;
        let at = at.duration_since(SystemTime::UNIX_EPOCH).ok()?;
        at.checked_sub(now_unix)?
    };
    if delay.is_zero() {
        return None;
    }
    Some(delay.min(MAX_SKIP))
}

/// What the first bytes of an SSE stream show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsePeek {
    /// No complete event yet: read more (within the peek bounds).
    Incomplete,
    /// The first event is complete; `error` when it is an error event.
    Event {
        /// `event: error`, or a `data:` JSON object with a top-level `error` key.
        error: bool,
    },
}

/// One block of an SSE stream (up to and including its blank line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseBlock {
    /// Only comments (`: keep-alive`) or blank: not an event.
    Comment,
    /// An event; `error` when it is an error event.
    Event {
        /// `event: error`, or a `data:` JSON object with a non-null top-level `error`.
        error: bool,
    },
}

/// The first complete block of `buf` and how many bytes it spans (blank line included);
/// `None` when `buf` holds no complete block yet. An event is an error when it has
/// `event: error`, or its data (the `data:` lines joined by `\n`) parses as a JSON
/// object with a non-null top-level `error`.
pub fn next_sse_block(buf: &[u8]) -> Option<(SseBlock, usize)> {
    let (block, after) = split_block(buf)?;
    let consumed = buf.len() - after.len();
    let mut is_event = false;
    let mut error_event = false;
    let mut data: Vec<u8> = Vec::new();
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b":") {
            continue;
        }
        is_event = true;
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"event" => error_event |= value == b"error",
            b"data" => {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
            }
            _ => {}
        }
    }
    if !is_event {
        return Some((SseBlock::Comment, consumed));
    }
    let data_error = serde_json::from_slice::<serde_json::Value>(&data)
        .ok()
        .and_then(|v| v.get("error").map(|e| !e.is_null()))
        .unwrap_or(false);
    Some((
        SseBlock::Event {
            error: error_event || data_error,
        },
        consumed,
    ))
}

/// Looks at the first event of an SSE stream in `buf` (the bytes received so far);
/// comment-only blocks are skipped.
pub fn first_sse_event(buf: &[u8]) -> SsePeek {
    let mut rest = buf;
    while let Some((block, used)) = next_sse_block(rest) {
        rest = &rest[used..];
        if let SseBlock::Event { error } = block {
            return SsePeek::Event { error };
        }
    }
    SsePeek::Incomplete
}

/// The first block of `buf` ending in a blank line (`\n\n` or `\r\n\r\n`) and the rest.
fn split_block(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            let next = &buf[i + 1..];
            if next.starts_with(b"\n") {
                return Some((&buf[..i], &buf[i + 2..]));
            }
            if next.starts_with(b"\r\n") {
                return Some((&buf[..i], &buf[i + 3..]));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(max_retries: u32, budget_ms: u64) -> Fallback {
        Fallback {
            max_retries,
            budget: Duration::from_millis(budget_ms),
            ..Fallback::default()
        }
    }

    #[test]
    fn next_arm_is_bounded_by_retries_budget_and_arms() {
        let weights = [1, 1, 1];
        let mut a = Attempts::new(&conf(1, 1000), 0, Duration::ZERO);
        let next = a.next(Duration::from_millis(10), &weights, 0, |_| false);
        assert!(matches!(next, Some(1 | 2)));
        assert_eq!(a.current(), next.unwrap());
        assert_eq!(
            a.next(Duration::from_millis(20), &weights, 0, |_| false),
            None
        );

        let mut a = Attempts::new(&conf(5, 1000), 0, Duration::ZERO);
        let mut seen = vec![0];
        while let Some(arm) = a.next(Duration::from_millis(1), &weights, 7, |_| false) {
            seen.push(arm);
        }
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2], "every arm once, then none left");

        let mut a = Attempts::new(&conf(5, 100), 0, Duration::from_secs(1));
        assert_eq!(
            a.next(Duration::from_millis(1100), &weights, 0, |_| false),
            None,
            "budget used up"
        );
        let mut a = Attempts::new(&conf(5, 100), 0, Duration::ZERO);
        assert_eq!(a.next(Duration::ZERO, &weights, 0, |i| i != 0), None);
    }

    #[test]
    fn the_fallback_pick_is_weighted_and_deterministic() {
        // Arm 0 failed: arms 1 and 2 (weights 3:1) share the retries by ticket.
        let weights = [10, 3, 1];
        let picks: Vec<ArmIndex> = (0..8)
            .map(|t| {
                let mut a = Attempts::new(&conf(1, 1000), 0, Duration::ZERO);
                a.next(Duration::ZERO, &weights, t, |_| false).unwrap()
            })
            .collect();
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 6);
        assert_eq!(picks.iter().filter(|&&p| p == 2).count(), 2);
        let again: Vec<ArmIndex> = (0..8)
            .map(|t| {
                let mut a = Attempts::new(&conf(1, 1000), 0, Duration::ZERO);
                a.next(Duration::ZERO, &weights, t, |_| false).unwrap()
            })
            .collect();
        assert_eq!(picks, again);
    }

    #[test]
    fn skipped_first_arm_moves_unless_all_are_skipped() {
        assert_eq!(first_arm(0, &[1, 1], 0, |_| false), 0);
        assert_eq!(first_arm(0, &[1, 1], 0, |i| i == 0), 1);
        assert_eq!(first_arm(0, &[1, 1], 0, |_| true), 0);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(b"2", now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(b" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(b"0", now), None);
        assert_eq!(retry_after(b"100000", now), Some(MAX_SKIP));
        assert_eq!(retry_after(b"99999999999999999999999", now), Some(MAX_SKIP));
        assert_eq!(
            retry_after(b"Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(retry_after(b"Sun, 06 Nov 1994 08:49:30 GMT", now), None);
        assert_eq!(retry_after(b"soon", now), None);
        assert_eq!(retry_after(b"-1", now), None);
        assert_eq!(retry_after(b"", now), None);
        assert_eq!(retry_after(&[0xff], now), None);
    }

    #[test]
    fn blocks_report_their_length() {
        let buf = b": ping\n\ndata: {}\r\n\r\ndata: {\"error\":1}\n\ndata: x";
        let (b, n) = next_sse_block(buf).unwrap();
        assert_eq!((b, n), (SseBlock::Comment, 8));
        let (b, m) = next_sse_block(&buf[n..]).unwrap();
        assert_eq!((b, m), (SseBlock::Event { error: false }, 12));
        let (b, k) = next_sse_block(&buf[n + m..]).unwrap();
        assert_eq!(b, SseBlock::Event { error: true });
        assert_eq!(next_sse_block(&buf[n + m + k..]), None);
    }

    #[test]
    fn first_sse_event_finds_errors() {
        assert_eq!(first_sse_event(b"data: {\"a\":1}"), SsePeek::Incomplete);
        assert_eq!(
            first_sse_event(b"data: {\"choices\":[]}\n\n"),
            SsePeek::Event { error: false }
        );
        assert_eq!(
            first_sse_event(b"event: error\ndata: boom\n\n"),
            SsePeek::Event { error: true }
        );
        assert_eq!(
            first_sse_event(b"data: {\"error\":{\"message\":\"overloaded\"}}\r\n\r\n"),
            SsePeek::Event { error: true }
        );
        assert_eq!(
            first_sse_event(b": keep-alive\n\ndata: {\"error\":{}}\n\n"),
            SsePeek::Event { error: true }
        );
        assert_eq!(
            first_sse_event(b": keep-alive\n\n"),
            SsePeek::Incomplete,
            "a comment is not an event"
        );
        assert_eq!(
            first_sse_event(b"data: {\"error\":null}\n\n"),
            SsePeek::Event { error: false }
        );
        assert_eq!(
            first_sse_event(b"data: {\"x\":\ndata: {\"error\":1}}\n\n"),
            SsePeek::Event { error: false },
            "data lines join with a newline into one JSON document"
        );
        assert_eq!(
            first_sse_event(b"data: [DONE]\n\n"),
            SsePeek::Event { error: false }
        );
    }
}
