//! Per-arm request outcomes over a sliding time window, and the guard's verdict.

use std::collections::VecDeque;
use std::time::Duration;

use super::Guard;

/// Most outcomes kept per arm; older ones are dropped first (the window is then shorter
/// than configured under very high load, which only makes the guard react faster).
pub const MAX_SAMPLES: usize = 4096;

/// How one request through an arm ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The request failed (status >= 500, or no answer from the upstream).
    pub error: bool,
    /// Time to first token, when known.
    pub ttft: Option<Duration>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    error: bool,
    ttft: Option<Duration>,
}

/// Why a guard was broken, with the figures over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// Requests in the window.
    pub requests: u64,
    /// Share of failed requests.
    pub error_rate: f64,
    /// 95th percentile of the time to first token (ms), if any was measured.
    pub ttft_p95_ms: Option<f64>,
    /// Human-readable reason (`error rate 0.50 > 0.10 over 20 requests`).
    pub reason: String,
}

/// The guard's judgement of one arm.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Fewer than `min_requests` in the window.
    TooFew {
        /// Requests in the window.
        requests: u64,
    },
    /// Within the limits.
    Healthy,
    /// A limit is broken.
    Broken(Breach),
}

/// Outcomes of one arm over the guard window.
#[derive(Debug, Clone, Default)]
pub struct ArmHealth {
    samples: VecDeque<Sample>,
}

impl ArmHealth {
    /// No outcome yet.
    pub fn new() -> ArmHealth {
        ArmHealth::default()
    }

    /// Records an outcome at `now` (monotonic, from an epoch the caller chooses).
    pub fn record(&mut self, now: Duration, outcome: Outcome, guard: &Guard) {
        self.expire(now, guard);
        if self.samples.len() >= MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            at: now,
            error: outcome.error,
            ttft: outcome.ttft,
        });
    }

    fn expire(&mut self, now: Duration, guard: &Guard) {
        let horizon = now.saturating_sub(guard.window);
        while self.samples.front().is_some_and(|s| s.at < horizon) {
            self.samples.pop_front();
        }
    }

    /// True when nothing is left in the window at `now` (the entry can be dropped).
    pub fn is_idle(&self, now: Duration, guard: &Guard) -> bool {
        let horizon = now.saturating_sub(guard.window);
        self.samples.back().is_none_or(|s| s.at < horizon)
    }

    /// Judges the arm over the window ending at `now`.
    pub fn verdict(&mut self, now: Duration, guard: &Guard) -> Verdict {
        self.expire(now, guard);
        let requests = self.samples.len() as u64;
        if requests < guard.min_requests || requests == 0 {
            return Verdict::TooFew { requests };
        }
        let errors = self.samples.iter().filter(|s| s.error).count() as u64;
        let error_rate = errors as f64 / requests as f64;
        let mut ttfts: Vec<Duration> = self.samples.iter().filter_map(|s| s.ttft).collect();
        let ttft_p95_ms = p95(&mut ttfts).map(|d| d.as_secs_f64() * 1000.0);
        let breach = |reason: String| {
            Verdict::Broken(Breach {
                requests,
                error_rate,
                ttft_p95_ms,
                reason,
            })
        };
        if let Some(max) = guard.max_error_rate {
            if error_rate > max {
                return breach(format!(
                    "error rate {error_rate:.3} > {max} over {requests} requests"
                ));
            }
        }
        if let (Some(max), Some(p95)) = (guard.max_ttft_p95_ms, ttft_p95_ms) {
            if p95 > max as f64 {
                return breach(format!(
                    "ttft p95 {p95:.1} ms > {max} ms over {requests} requests"
                ));
            }
        }
        Verdict::Healthy
    }
}

/// Nearest-rank 95th percentile.
fn p95(values: &mut [Duration]) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    // ceil(0.95 n) - 1, in integers; n >= 1 so the index is in range.
    let rank = (values.len() * 95).div_ceil(100).saturating_sub(1);
    let (_, value, _) = values.select_nth_unstable(rank);
    Some(*value)
}

/// The rule's primary (stable) arm: the highest weight, the first one on ties. Every
/// other arm is a canary the guard may trip.
pub fn primary_arm(weights: &[u32]) -> Option<usize> {
    let max = weights.iter().copied().max()?;
    weights.iter().position(|w| *w == max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard {
            max_error_rate: Some(0.2),
            max_ttft_p95_ms: Some(500),
            min_requests: 10,
            window: Duration::from_secs(10),
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn ok(ttft: u64) -> Outcome {
        Outcome {
            error: false,
            ttft: Some(ms(ttft)),
        }
    }

    #[test]
    fn too_few_then_healthy_then_broken_by_errors() {
        let g = guard();
        let mut h = ArmHealth::new();
        for i in 0..9 {
            h.record(ms(i * 100), ok(100), &g);
        }
        assert_eq!(h.verdict(ms(900), &g), Verdict::TooFew { requests: 9 });
        h.record(ms(950), ok(100), &g);
        assert_eq!(h.verdict(ms(1000), &g), Verdict::Healthy);
        // 3 errors in 13 requests: 0.23 > 0.2.
        for i in 0..3 {
            h.record(
                ms(1000 + i),
                Outcome {
                    error: true,
                    ttft: None,
                },
                &g,
            );
        }
        match h.verdict(ms(1100), &g) {
            Verdict::Broken(b) => {
                assert_eq!(b.requests, 13);
                assert!(
                    b.reason.starts_with("error rate 0.231 > 0.2"),
                    "{}",
                    b.reason
                );
            }
            v => panic!("expected a breach, got {v:?}"),
        }
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let g = guard();
        let mut h = ArmHealth::new();
        for i in 0..10 {
            h.record(
                ms(i),
                Outcome {
                    error: true,
                    ttft: None,
                },
                &g,
            );
        }
        assert!(matches!(h.verdict(ms(20), &g), Verdict::Broken(_)));
        // 10 s later the errors are out of the window.
        assert_eq!(h.verdict(ms(10_010), &g), Verdict::TooFew { requests: 0 });
        assert!(h.is_idle(ms(10_010), &g));
    }

    #[test]
    fn ttft_p95_breaks_the_guard() {
        let g = guard();
        let mut h = ArmHealth::new();
        // 19 fast, 1 slow: p95 (nearest rank 19 of 20) is fast.
        for i in 0..19 {
            h.record(ms(i), ok(100), &g);
        }
        h.record(ms(19), ok(5000), &g);
        assert_eq!(h.verdict(ms(20), &g), Verdict::Healthy);
        // Two slow in 21: rank 20 is slow.
        h.record(ms(21), ok(900), &g);
        match h.verdict(ms(22), &g) {
            Verdict::Broken(b) => {
                assert_eq!(b.ttft_p95_ms, Some(900.0));
                assert!(
                    b.reason.contains("ttft p95 900.0 ms > 500 ms"),
                    "{}",
                    b.reason
                );
            }
            v => panic!("expected a breach, got {v:?}"),
        }
    }

    #[test]
    fn samples_are_capped() {
        let g = guard();
        let mut h = ArmHealth::new();
        for i in 0..(MAX_SAMPLES as u64 + 100) {
            h.record(Duration::from_micros(i), ok(1), &g);
        }
        assert_eq!(h.samples.len(), MAX_SAMPLES);
    }

    #[test]
    fn primary_is_the_heaviest_first() {
        assert_eq!(primary_arm(&[5, 95]), Some(1));
        assert_eq!(primary_arm(&[50, 50]), Some(0));
        assert_eq!(primary_arm(&[]), None);
        assert_eq!(primary_arm(&[0, 0]), Some(0));
    }
}
