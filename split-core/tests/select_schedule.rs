//! Round-robin schedule: pinned sequences, exact window counts, shared-ticket concurrency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use split_core::select::{PickInput, Schedule, Select, Selector};

fn seq(weights: &[u32], n: u64) -> String {
    let s = Schedule::new(weights);
    (0..n)
        .map(|t| match s.arm_at(t) {
            Some(i) => char::from(b'A' + u8::try_from(i).expect("test arms < 26")),
            None => '-',
        })
        .collect()
}

#[test]
fn pinned_one_to_one() {
    assert_eq!(seq(&[1, 1], 6), "ABABAB");
    assert_eq!(Schedule::new(&[1, 1]).period(), 2);
    // Same ratio, same schedule: weights are reduced by their gcd.
    assert_eq!(seq(&[50, 50], 6), "ABABAB");
}

#[test]
fn pinned_two_to_one() {
    assert_eq!(seq(&[2, 1], 9), "AABAABAAB");
    assert_eq!(seq(&[1, 2], 6), "ABBABB");
}

#[test]
fn pinned_five_one_one() {
    assert_eq!(seq(&[5, 1, 1], 14), "AAABAACAAABAAC");
    assert_eq!(Schedule::new(&[5, 1, 1]).period(), 7);
}

#[test]
fn pinned_one_one_two() {
    assert_eq!(seq(&[1, 1, 2], 8), "ABCCABCC");
}

#[test]
fn pinned_three_to_one() {
    assert_eq!(seq(&[3, 1], 8), "AAABAAAB");
    assert_eq!(seq(&[90, 10], 10), "AAAAAAAAAB");
}

#[test]
fn zero_weight_arm_is_never_picked() {
    assert_eq!(seq(&[0, 1], 5), "BBBBB");
    assert_eq!(seq(&[1, 0, 1], 4), "ACAC");
    assert_eq!(Schedule::new(&[0, 1]).period(), 1);
}

#[test]
fn all_zero_alternates() {
    assert_eq!(seq(&[0, 0], 4), "ABAB");
    assert_eq!(seq(&[0, 0, 0], 6), "ABCABC");
}

#[test]
fn single_arm_always_picked_even_with_weight_zero() {
    assert_eq!(seq(&[7], 3), "AAA");
    assert_eq!(seq(&[0], 3), "AAA");
    let s = Schedule::new(&[0]);
    assert_eq!(s.period(), 1);
    assert_eq!(s.arm_at(u64::MAX), Some(0));
}

#[test]
fn no_arms_picks_nothing() {
    let s = Schedule::new(&[]);
    assert_eq!(s.arm_at(0), None);
    assert_eq!(s.arm_at(u64::MAX), None);
    assert!(s.is_empty());
    assert_eq!(s.period(), 1);
}

#[test]
fn huge_ratio_needs_no_table() {
    let s = Schedule::new(&[999_999, 1]);
    assert_eq!(s.period(), 1_000_000);
    // The light arm takes the last ticket of each period.
    for t in 0..1000 {
        assert_eq!(s.arm_at(t), Some(0), "ticket {t}");
    }
    assert_eq!(s.arm_at(999_998), Some(0));
    assert_eq!(s.arm_at(999_999), Some(1));
    assert_eq!(s.arm_at(1_000_000), Some(0));
    assert_eq!(s.arm_at(1_999_999), Some(1));
    // Weights near u32::MAX exercise the 128-bit path.
    let s = Schedule::new(&[u32::MAX, u32::MAX - 1, 3]);
    assert_eq!(s.arm_at(0), Some(0));
    assert_eq!(s.arm_at(1), Some(1));
    assert_eq!(s.arm_at(u64::MAX), s.arm_at(u64::MAX % s.period()));
}

#[test]
fn counts_per_period_are_reduced_weights() {
    assert_eq!(Schedule::new(&[6, 0, 4]).counts_per_period(), vec![3, 0, 2]);
    assert_eq!(Schedule::new(&[0, 0]).counts_per_period(), vec![1, 1]);
}

#[test]
fn selector_roundrobin_and_chash_fallback_use_tickets() {
    let rr = Selector::RoundRobin(Schedule::new(&[2, 1]));
    let picks: Vec<_> = (0..3)
        .map(|t| {
            rr.pick(PickInput {
                ticket: t,
                key: None,
            })
        })
        .collect();
    assert_eq!(picks, vec![Some(0), Some(0), Some(1)]);
    assert_eq!(rr.len(), 2);
}

/// Four threads share one ticket counter: the split is exact process-wide.
#[test]
fn shared_ticket_across_threads_is_exact() {
    const TOTAL: u64 = 1_000_000;
    let schedule = Arc::new(Schedule::new(&[3, 1]));
    let ticket = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let schedule = Arc::clone(&schedule);
            let ticket = Arc::clone(&ticket);
            std::thread::spawn(move || {
                let mut counts = [0u64; 2];
                // Bounded: each iteration consumes one of TOTAL tickets.
                loop {
                    let t = ticket.fetch_add(1, Ordering::Relaxed);
                    if t >= TOTAL {
                        return counts;
                    }
                    counts[schedule.arm_at(t).expect("two arms")] += 1;
                }
            })
        })
        .collect();
    let mut counts = [0u64; 2];
    for h in handles {
        let c = h.join().expect("worker thread");
        counts[0] += c[0];
        counts[1] += c[1];
    }
    assert_eq!(counts, [750_000, 250_000]);
}

fn window_counts(s: &Schedule, start: u64, arms: usize) -> Vec<u64> {
    let mut counts = vec![0u64; arms];
    for i in 0..s.period() {
        counts[s.arm_at(start + i).expect("non-empty")] += 1;
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every window of `period()` consecutive tickets holds exactly `w_i/gcd` picks.
    #[test]
    fn every_window_is_exact(
        weights in prop::collection::vec(0u32..=10_000, 1..=20),
        start in any::<u64>(),
        near_end in any::<bool>(),
    ) {
        let s = Schedule::new(&weights);
        let expected = s.counts_per_period();
        let nonzero: Vec<u64> = weights.iter().filter(|&&w| w > 0).map(|&w| u64::from(w)).collect();
        let g = nonzero.iter().copied().fold(0u64, |a, b| {
            let (mut a, mut b) = (a, b);
            while b != 0 { (a, b) = (b, a % b); }
            a
        });
        for (i, &w) in weights.iter().enumerate() {
            let want = if weights.len() == 1 || nonzero.is_empty() {
                1
            } else {
                u64::from(w) / g.max(1)
            };
            prop_assert_eq!(expected[i], want);
        }
        // Windows never wrap past u64::MAX (see `Schedule` docs).
        let last_start = u64::MAX - (s.period() - 1);
        let start = if near_end { last_start - (start % 1000).min(last_start) } else { start.min(last_start) };
        prop_assert_eq!(window_counts(&s, start, weights.len()), expected.clone());
        prop_assert_eq!(window_counts(&s, 0, weights.len()), expected);
    }

    /// The schedule only depends on the ticket modulo the period.
    #[test]
    fn periodic(weights in prop::collection::vec(0u32..=u32::MAX, 1..=20), t in any::<u64>()) {
        let s = Schedule::new(&weights);
        prop_assert_eq!(s.arm_at(t), s.arm_at(t % s.period()));
        let arm = s.arm_at(t).expect("non-empty");
        prop_assert!(weights.len() == 1 || weights[arm] > 0 || weights.iter().all(|&w| w == 0));
    }
}
