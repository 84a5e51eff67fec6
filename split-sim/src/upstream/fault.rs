//! Seeded fault injection: whether the n-th chat request fails is a pure function of
//! (seed, n), so a run with the same seed and request order fails the same requests.

use split_core::select::mix64;

/// Injects failures at a fixed rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    /// Probability in [0, 1] that a request fails.
    pub rate: f64,
    /// Status of an injected failure (429, 500, 503, ...).
    pub status: u16,
    /// Seed.
    pub seed: u64,
}

impl FaultPlan {
    /// True when request number `n` (0-based, in arrival order) should fail.
    pub fn fails(&self, n: u64) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        if self.rate >= 1.0 {
            return true;
        }
        let x = mix64(mix64(self.seed) ^ n);
        // The top 53 bits as a uniform number in [0, 1).
        let u = (x >> 11) as f64 / (1u64 << 53) as f64;
        u < self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_respected_and_seeded() {
        let plan = FaultPlan {
            rate: 0.1,
            status: 503,
            seed: 7,
        };
        let fails: Vec<bool> = (0..10_000).map(|n| plan.fails(n)).collect();
        let count = fails.iter().filter(|f| **f).count();
        // Binomial(10000, 0.1): sd = 30; ±5 sd.
        assert!((850..=1150).contains(&count), "{count}");
        let again: Vec<bool> = (0..10_000).map(|n| plan.fails(n)).collect();
        assert_eq!(fails, again);
        let other = FaultPlan { seed: 8, ..plan };
        let differs = (0..10_000).any(|n| other.fails(n) != plan.fails(n));
        assert!(differs);
    }

    #[test]
    fn edges() {
        let never = FaultPlan {
            rate: 0.0,
            status: 500,
            seed: 1,
        };
        let always = FaultPlan { rate: 1.0, ..never };
        assert!((0..1000).all(|n| !never.fails(n) && always.fails(n)));
    }
}
