//! Seeded random and weighted rendezvous selection.

use proptest::prelude::*;
use split_core::select::{PickInput, Rendezvous, Schedule, SeededRandom, Select, Selector};

fn counts(sel: &SeededRandom, arms: usize, n: u64) -> Vec<u64> {
    let mut c = vec![0u64; arms];
    for t in 0..n {
        c[sel.arm_at(t).expect("non-empty")] += 1;
    }
    c
}

#[test]
fn random_same_seed_same_sequence() {
    let a = SeededRandom::new(&[1, 1, 2], 42);
    let b = SeededRandom::new(&[1, 1, 2], 42);
    let sa: Vec<_> = (0..1000).map(|t| a.arm_at(t)).collect();
    let sb: Vec<_> = (0..1000).map(|t| b.arm_at(t)).collect();
    assert_eq!(sa, sb);
    // Random access: evaluating out of order gives the same answers.
    for t in (0..1000).rev() {
        assert_eq!(a.arm_at(t), sa[t as usize]);
    }
    let c = SeededRandom::new(&[1, 1, 2], 43);
    let sc: Vec<_> = (0..1000).map(|t| c.arm_at(t)).collect();
    assert_ne!(sa, sc);
}

#[test]
fn random_distribution_within_bound() {
    // 100k draws; one standard deviation of a 1/4 share is ~0.14 %; allow 1 %.
    let sel = SeededRandom::new(&[1, 1, 2], 7);
    let c = counts(&sel, 3, 100_000);
    for (got, share) in c.iter().zip([0.25, 0.25, 0.5]) {
        let f = *got as f64 / 100_000.0;
        assert!((f - share).abs() < 0.01, "counts {c:?}");
    }
}

#[test]
fn random_edge_weights() {
    assert_eq!(
        counts(&SeededRandom::new(&[0, 5], 1), 2, 1000),
        vec![0, 1000]
    );
    assert_eq!(counts(&SeededRandom::new(&[0], 1), 1, 10), vec![10]);
    let c = counts(&SeededRandom::new(&[0, 0], 1), 2, 10_000);
    assert!(c[0] > 4_000 && c[1] > 4_000, "{c:?}");
    assert_eq!(SeededRandom::new(&[], 1).arm_at(3), None);
    assert_eq!(SeededRandom::new(&[9], 1).arm_at(u64::MAX), Some(0));
    assert!(SeededRandom::new(&[1, 1], 5).arm_at(u64::MAX).is_some());
}

#[test]
fn chash_is_sticky_and_weighted() {
    let r = Rendezvous::new(&[10, 20, 30], &[1, 2, 3]);
    let mut c = [0u64; 3];
    for k in 0..20_000u32 {
        let key = format!("user-{k}");
        let arm = r.arm_for(key.as_bytes()).expect("non-empty");
        assert_eq!(r.arm_for(key.as_bytes()), Some(arm));
        c[arm] += 1;
    }
    for (got, share) in c.iter().zip([1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
        let f = *got as f64 / 20_000.0;
        assert!((f - share).abs() < 0.02, "counts {c:?}");
    }
}

#[test]
fn chash_zero_weights() {
    let r = Rendezvous::new(&[1, 2], &[0, 3]);
    for k in 0..1000u32 {
        assert_eq!(r.arm_for(&k.to_le_bytes()), Some(1));
    }
    let r = Rendezvous::new(&[1, 2], &[0, 0]);
    let hits = (0..1000u32)
        .filter(|k| r.arm_for(&k.to_le_bytes()) == Some(0))
        .count();
    assert!(hits > 350 && hits < 650, "{hits}");
    assert_eq!(Rendezvous::new(&[], &[]).arm_for(b"x"), None);
    assert_eq!(Rendezvous::new(&[4], &[0]).arm_for(b"x"), Some(0));
}

#[test]
fn chash_ids_not_positions_decide() {
    // Reordering arms (with their ids) keeps every key on the same arm identity.
    let a = Rendezvous::new(&[7, 8, 9], &[1, 1, 1]);
    let b = Rendezvous::new(&[9, 7, 8], &[1, 1, 1]);
    let ids_a = [7, 8, 9];
    let ids_b = [9, 7, 8];
    for k in 0..2000u32 {
        let key = k.to_be_bytes();
        let ia = ids_a[a.arm_for(&key).expect("arm")];
        let ib = ids_b[b.arm_for(&key).expect("arm")];
        assert_eq!(ia, ib);
    }
}

#[test]
fn selector_chash_uses_key_or_falls_back() {
    let sel = Selector::Chash(Rendezvous::new(&[1, 2], &[1, 1]), Schedule::new(&[1, 1]));
    let keyed: Vec<_> = (0..4)
        .map(|t| {
            sel.pick(PickInput {
                ticket: t,
                key: Some(b"alice"),
            })
        })
        .collect();
    assert!(keyed.iter().all(|a| *a == keyed[0]));
    let unkeyed: Vec<_> = (0..4)
        .map(|t| {
            sel.pick(PickInput {
                ticket: t,
                key: None,
            })
        })
        .collect();
    assert_eq!(unkeyed, vec![Some(0), Some(1), Some(0), Some(1)]);
    let rnd = Selector::Random(SeededRandom::new(&[1, 1], 3));
    assert_eq!(
        rnd.pick(PickInput {
            ticket: 9,
            key: None
        }),
        SeededRandom::new(&[1, 1], 3).arm_at(9)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Changing one arm's weight moves keys only to or from that arm, and the share
    /// moved is close to the theoretical minimum |Δshare|.
    #[test]
    fn chash_minimal_disruption(
        weights in prop::collection::vec(1u32..=100, 2..=8),
        which in any::<prop::sample::Index>(),
        new_weight in 0u32..=200,
        salt in any::<u64>(),
    ) {
        const KEYS: u32 = 20_000;
        let j = which.index(weights.len());
        let ids: Vec<u64> = (0..weights.len() as u64).map(|i| i.wrapping_mul(0x9e37) ^ salt).collect();
        let mut changed = weights.clone();
        changed[j] = new_weight;
        let before = Rendezvous::new(&ids, &weights);
        let after = Rendezvous::new(&ids, &changed);
        let mut moved = 0u32;
        for k in 0..KEYS {
            let key = k.to_le_bytes();
            let (a, b) = (before.arm_for(&key), after.arm_for(&key));
            if a != b {
                moved += 1;
                prop_assert!(a == Some(j) || b == Some(j), "key {} moved {:?} -> {:?} (changed arm {})", k, a, b, j);
            }
        }
        let total = |w: &[u32]| w.iter().map(|&x| f64::from(x)).sum::<f64>();
        let share_before = f64::from(weights[j]) / total(&weights);
        let share_after = f64::from(changed[j]) / total(&changed);
        let expected = (share_after - share_before).abs();
        let observed = f64::from(moved) / f64::from(KEYS);
        prop_assert!((observed - expected).abs() < 0.02, "moved {} expected {}", observed, expected);
    }
}
