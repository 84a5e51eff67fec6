//! The `random` selector: ChaCha8 keyed by a seed, read at the position of the ticket.
//!
//! Ticket `t` reads the 64-bit word pair at word offset `2t` of the seed's ChaCha8 stream,
//! so any ticket is O(1) to evaluate, the same `(seed, ticket)` always gives the same arm,
//! and threads sharing one atomic ticket draw disjoint parts of one stream.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{ArmIndex, PickInput, Select};

/// Reproducible weighted random selection: ChaCha keyed by (`seed`, `ticket`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededRandom {
    seed: u64,
    /// `cumulative[i]`: sum of the effective weights of arms `0..=i`.
    cumulative: Vec<u64>,
}

impl SeededRandom {
    /// Builds a selector for `weights` with `seed`. Zero weights are never picked unless
    /// all are zero (then all count as one); a single arm is always picked.
    pub fn new(weights: &[u32], seed: u64) -> SeededRandom {
        let all_zero = weights.iter().all(|&w| w == 0);
        let mut acc = 0u64;
        let cumulative = weights
            .iter()
            .map(|&w| {
                acc = acc.saturating_add(if all_zero { 1 } else { u64::from(w) });
                acc
            })
            .collect();
        SeededRandom { seed, cumulative }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The 64 random bits drawn for `ticket`.
    pub fn draw(&self, ticket: u64) -> u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_word_pos(u128::from(ticket) * 2);
        rng.next_u64()
    }

    /// The arm for `ticket`; `None` only when built with zero arms.
    ///
    /// Kept out of line so the round-robin path of [`super::Selector::pick`] stays small
    /// enough to inline.
    #[inline(never)]
    pub fn arm_at(&self, ticket: u64) -> Option<ArmIndex> {
        let total = *self.cumulative.last()?;
        if self.cumulative.len() == 1 {
            return Some(0);
        }
        // Multiply-high maps the draw onto 0..total (bias below total / 2^64).
        let target = ((u128::from(self.draw(ticket)) * u128::from(total)) >> 64) as u64;
        // First arm whose cumulative weight exceeds the target; zero-weight arms have
        // the same cumulative value as their predecessor and are never the first.
        let idx = self.cumulative.partition_point(|&c| c <= target);
        Some(idx.min(self.cumulative.len() - 1))
    }
}

impl Select for SeededRandom {
    fn len(&self) -> usize {
        self.cumulative.len()
    }

    fn pick(&self, input: PickInput<'_>) -> Option<ArmIndex> {
        self.arm_at(input.ticket)
    }
}
