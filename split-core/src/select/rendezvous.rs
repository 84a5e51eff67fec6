//! The `chash` selector: weighted rendezvous (highest random weight) hashing.
//!
//! For a key `k` each arm `i` scores `−w_i / ln(u_i)`, with `u_i ∈ (0,1)` derived from
//! `mix64(stable_hash(k) ^ salt_i)` and `salt_i = mix64(arm_id_i)`; the highest score wins.
//! Arm `i` wins a share `w_i / Σw` of keys, and since an arm's score depends only on the
//! key and that arm, changing one arm's weight only moves keys to or from that arm (the
//! minimum possible disruption). Salting with `mix64(arm_id)` rather than the raw id keeps
//! small consecutive ids (0, 1, 2…) from producing correlated draws.

use super::{mix64, stable_hash, ArmIndex, PickInput, Select};

/// Weighted rendezvous (highest random weight) hashing on a sticky key.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendezvous {
    /// Per arm: (salt, effective weight). Zero-weight arms are skipped.
    arms: Vec<(u64, f64)>,
}

impl Rendezvous {
    /// Builds a selector; `arm_ids` are stable identities of the arms (so reordering or
    /// editing other arms does not move keys), `weights` their weights.
    ///
    /// Arms are `0..min(arm_ids.len(), weights.len())`. Zero-weight arms are never
    /// chosen unless all weights are zero (then all count as one).
    pub fn new(arm_ids: &[u64], weights: &[u32]) -> Rendezvous {
        let n = arm_ids.len().min(weights.len());
        let all_zero = weights[..n].iter().all(|&w| w == 0);
        let arms = arm_ids[..n]
            .iter()
            .zip(&weights[..n])
            .map(|(&id, &w)| (mix64(id), if all_zero { 1.0 } else { f64::from(w) }))
            .collect();
        Rendezvous { arms }
    }

    /// The arm for `key`; `None` only when built with zero arms.
    #[inline(never)]
    pub fn arm_for(&self, key: &[u8]) -> Option<ArmIndex> {
        self.arm_for_hash(stable_hash(key))
    }

    /// The arm for a key already hashed with [`stable_hash`]. Out of line for the same
    /// reason as [`super::SeededRandom::arm_at`].
    #[inline(never)]
    pub fn arm_for_hash(&self, key_hash: u64) -> Option<ArmIndex> {
        let mut best: Option<(ArmIndex, f64)> = None;
        for (i, &(salt, weight)) in self.arms.iter().enumerate() {
            if weight <= 0.0 {
                continue;
            }
            let score = weight / -unit_open(mix64(key_hash ^ salt)).ln();
            // Strict `>`: ties (astronomically rare) go to the lower index.
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
        }
        // `None` only for zero arms: all-zero weights were rewritten to ones.
        best.map(|(i, _)| i)
    }
}

impl Select for Rendezvous {
    fn len(&self) -> usize {
        self.arms.len()
    }

    fn pick(&self, input: PickInput<'_>) -> Option<ArmIndex> {
        self.arm_for(input.key.unwrap_or_default())
    }
}

/// Maps 64 random bits to a double strictly inside (0, 1): the top 52 bits plus one half,
/// over 2^52. (With 53 bits the largest value would round up to exactly 1.0.)
fn unit_open(bits: u64) -> f64 {
    ((bits >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_open_is_open() {
        assert!(unit_open(0) > 0.0);
        assert!(unit_open(u64::MAX) < 1.0);
        assert!(-unit_open(u64::MAX).ln() > 0.0);
    }
}
