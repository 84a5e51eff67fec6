//! limit-count windows and the api-breaker state machine on a virtual clock.

use std::time::Duration;

use serde_json::json;
use split_core::config::plugins::ApiBreaker;
use split_core::limits::{fallback_arm, Breaker, BreakerState, FixedWindow, SlidingWindow};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

#[test]
fn fixed_window_counts_from_first_request_and_resets() {
    let mut w = FixedWindow::new();
    let window = secs(60);
    let d = w.hit(secs(100), 2, window);
    assert_eq!(
        (d.allowed, d.limit, d.remaining, d.reset_secs),
        (true, 2, 1, 60)
    );
    let d = w.hit(ms(110_500), 2, window);
    assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 0, 50));
    let d = w.hit(secs(159), 2, window);
    assert_eq!((d.allowed, d.remaining, d.reset_secs), (false, 0, 1));
    assert!(!w.expired(ms(159_999), window));
    assert!(w.expired(secs(160), window));
    // Exactly `start + window`: a new window starts at this request.
    let d = w.hit(secs(160), 2, window);
    assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 1, 60));
}

#[test]
fn fixed_window_allows_exactly_count_per_window() {
    let mut w = FixedWindow::new();
    let allowed = (0..1000u64)
        .filter(|i| w.hit(ms(i * 10), 7, secs(1)).allowed)
        .count();
    // 1000 requests 10 ms apart span 10 windows of 1 s.
    assert_eq!(allowed, 70);
}

#[test]
fn sliding_window_weighs_the_previous_window() {
    let mut w = SlidingWindow::new();
    let window = secs(10);
    for i in 0..4 {
        assert!(w.hit(secs(i), 4, window).allowed);
    }
    let d = w.hit(secs(5), 4, window);
    assert_eq!((d.allowed, d.remaining, d.reset_secs), (false, 0, 5));
    // t=12.5: previous window had 4, 75 % of it still counts: floor(3.0) = 3 used.
    let d = w.hit(ms(12_500), 4, window);
    assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 0, 8));
    // t=12.6: floor(2.96) = 2 + 1 current = 3 → allowed; t=12.7: 2 + 2 → rejected.
    assert!(w.hit(ms(12_600), 4, window).allowed);
    assert!(!w.hit(ms(12_700), 4, window).allowed);
    // t=17.6: floor(4 * 0.24) = 0 + 2 current → allowed, remaining 1.
    let d = w.hit(ms(17_600), 4, window);
    assert_eq!((d.allowed, d.remaining, d.reset_secs), (true, 1, 3));
    // Two windows later nothing is left to weigh.
    assert!(w.expired(secs(30), window));
    assert!(!w.expired(secs(29), window));
    let d = w.hit(secs(35), 4, window);
    assert_eq!((d.allowed, d.remaining), (true, 3));
}

fn breaker_conf(extra: serde_json::Value) -> ApiBreaker {
    let mut conf = json!({
        "break_response_code": 502,
        "unhealthy": {"http_statuses": [500, 503], "failures": 3},
        "healthy": {"http_statuses": [200], "successes": 3},
        "max_breaker_sec": 10
    });
    if let (Some(map), Some(extra)) = (conf.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    ApiBreaker::from_json(&conf).expect("valid conf")
}

#[test]
fn breaker_opens_for_exponential_periods_in_whole_seconds() {
    let conf = breaker_conf(json!({}));
    let mut b = Breaker::new();
    assert_eq!(b.before(secs(0), &conf), BreakerState::Closed);
    b.record(ms(1_000), 500, &conf);
    b.record(ms(1_100), 503, &conf);
    assert_eq!(b.before(ms(1_200), &conf), BreakerState::Closed);
    // Third failure at t=1.3 s stamps lasttime; open while 1 + 2 >= floor(now).
    b.record(ms(1_300), 500, &conf);
    assert_eq!(
        b.before(ms(1_300), &conf),
        BreakerState::Open {
            retry_after: ms(2_700)
        }
    );
    assert!(matches!(
        b.before(ms(3_999), &conf),
        BreakerState::Open { .. }
    ));
    assert_eq!(b.before(secs(4), &conf), BreakerState::HalfOpen);
    // A 4th failure does not reopen (4 % 3 != 0), and n/3 stays 1.
    b.record(secs(4), 500, &conf);
    assert_eq!(b.before(secs(4), &conf), BreakerState::HalfOpen);
    b.record(secs(5), 500, &conf);
    b.record(ms(6_500), 500, &conf);
    // n = 6: 2^2 = 4 s from lasttime 6 → open through second 10.
    assert_eq!(
        b.before(ms(6_500), &conf),
        BreakerState::Open {
            retry_after: ms(4_500)
        }
    );
    assert_eq!(b.before(secs(11), &conf), BreakerState::HalfOpen);
    for t in [12, 13, 14] {
        b.record(secs(t), 500, &conf);
    }
    // n = 9: 2^3 = 8 s, but capped at max_breaker_sec = 10 → 8; stamp TTL is 10 s.
    assert_eq!(
        b.before(secs(14), &conf),
        BreakerState::Open {
            retry_after: secs(9)
        }
    );
    for t in [23, 24, 25] {
        b.record(secs(t), 500, &conf);
    }
    // n = 12: 2^4 = 16 → capped at 10; the stamp expires at exactly 25 + 10 s.
    assert_eq!(
        b.before(secs(25), &conf),
        BreakerState::Open {
            retry_after: secs(10)
        }
    );
    assert_eq!(b.before(secs(35), &conf), BreakerState::HalfOpen);
    assert_eq!(b.failures(), 12);
}

#[test]
fn breaker_closes_after_successes_in_a_row() {
    let conf = breaker_conf(json!({}));
    let mut b = Breaker::new();
    // Successes before any failure are not counted.
    b.record(secs(0), 200, &conf);
    assert!(b.is_idle());
    for t in 0..3 {
        b.record(secs(t), 500, &conf);
    }
    b.record(secs(5), 200, &conf);
    b.record(secs(5), 200, &conf);
    // A failure resets the success streak.
    b.record(secs(5), 500, &conf);
    b.record(secs(6), 200, &conf);
    b.record(secs(6), 200, &conf);
    // Statuses in neither list change nothing.
    b.record(secs(6), 404, &conf);
    assert_eq!(b.failures(), 4);
    b.record(secs(6), 200, &conf);
    assert!(b.is_idle());
    assert_eq!(b.before(secs(6), &conf), BreakerState::Closed);
}

#[test]
fn breaker_defaults_match_apisix() {
    let conf = ApiBreaker::from_json(&json!({"break_response_code": 502})).expect("valid");
    assert_eq!(conf.max_breaker_sec, 300);
    assert_eq!((conf.failures, conf.successes), (3, 3));
    assert_eq!(conf.unhealthy_statuses, vec![500]);
    assert_eq!(conf.healthy_statuses, vec![200]);
    let mut b = Breaker::new();
    for _ in 0..3 {
        b.record(secs(0), 503, &conf);
    }
    assert_eq!(
        b.before(secs(0), &conf),
        BreakerState::Closed,
        "503 is not listed"
    );
}

#[test]
fn breaker_keys_differ_per_arm_and_conf() {
    let a = breaker_conf(json!({}));
    let b = breaker_conf(json!({"max_breaker_sec": 20}));
    assert_ne!(
        a.state_key("1", Some((0, 0))),
        a.state_key("1", Some((0, 1)))
    );
    assert_ne!(a.state_key("1", Some((0, 0))), a.state_key("1", None));
    assert_ne!(a.state_key("1", None), a.state_key("2", None));
    assert_ne!(a.state_key("1", None), b.state_key("1", None));
    // Same conf with keys in another order: same state.
    let c = ApiBreaker::from_json(&json!({
        "max_breaker_sec": 10,
        "healthy": {"successes": 3, "http_statuses": [200]},
        "unhealthy": {"failures": 3, "http_statuses": [500, 503]},
        "break_response_code": 502
    }))
    .expect("valid");
    assert_eq!(
        a.state_key("1", Some((0, 1))),
        c.state_key("1", Some((0, 1)))
    );
}

#[test]
fn fallback_picks_closed_weighted_arms() {
    // 3 arms 1:1:2, arm 2 open: the rest alternate 0, 1.
    let picks: Vec<usize> = (0..4)
        .filter_map(|t| fallback_arm(&[1, 1, 2], t, |i| i == 2))
        .collect();
    assert_eq!(picks, vec![0, 1, 0, 1]);
    // Zero-weight arms stay out.
    assert_eq!(fallback_arm(&[5, 0], 0, |i| i == 0), None);
    assert_eq!(fallback_arm(&[5, 5], 3, |_| true), None);
    // All-zero weights: any closed arm.
    assert_eq!(fallback_arm(&[0, 0], 0, |i| i == 0), Some(1));
}
