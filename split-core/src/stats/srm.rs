//! Sample ratio mismatch (SRM): does the observed split of a rule's requests fit the
//! configured weights? A chi-square goodness-of-fit test; a small p-value means the arms
//! did not receive the traffic their weights promise (a broken fallback, a sticky key
//! that concentrates traffic, clients retrying one arm) — an alert users can wire up.
//!
//! Counts are kept by the proxy per [`SrmKey`]: the key covers the route, the rule's
//! position and its weights, so the counts restart when the weights change and survive
//! every other edit (a rewrite, an upstream's nodes, another route).

use crate::select::stable_hash;

pub use super::fit::{chi_square, ChiSquare};

/// Identity of a rule's SRM counts: route id, rule index and weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SrmKey(pub u64);

impl SrmKey {
    /// The key of rule `rule` of route `route_id` with `weights` (in arm order).
    pub fn new(route_id: &str, rule: usize, weights: &[u32]) -> SrmKey {
        let mut bytes = Vec::with_capacity(route_id.len() + 16 + weights.len() * 4);
        bytes.extend_from_slice(b"srm\0");
        bytes.extend_from_slice(route_id.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&(rule as u64).to_le_bytes());
        for w in weights {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        SrmKey(stable_hash(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1e-300)
    }

    #[test]
    fn exact_values_one_degree_of_freedom() {
        // 60/40 against 50/50: statistic 4, p = erfc(sqrt(2)).
        let c = chi_square(&[60, 40], &[1, 1]);
        assert_eq!(c.statistic, 4.0);
        assert_eq!(c.dof, 1);
        assert!(close(c.p_value, 0.045_500_263_896_358_42), "{}", c.p_value);
        // 10/0 against 1:1: statistic 10, p = erfc(sqrt(5)).
        let c = chi_square(&[10, 0], &[1, 1]);
        assert_eq!(c.statistic, 10.0);
        assert!(
            close(c.p_value, 0.001_565_402_258_002_549_4),
            "{}",
            c.p_value
        );
    }

    #[test]
    fn exact_values_two_degrees_of_freedom() {
        // Expected 30/30/40: statistic 100/30 + 0 + 100/40 = 35/6; with 2 dof the
        // survival function is exp(-x/2).
        let c = chi_square(&[20, 30, 50], &[3, 3, 4]);
        assert!(close(c.statistic, 35.0 / 6.0), "{}", c.statistic);
        assert_eq!(c.dof, 2);
        assert!(close(c.p_value, (-35.0f64 / 12.0).exp()), "{}", c.p_value);
    }

    #[test]
    fn perfect_fit_and_no_observations_give_one() {
        let c = chi_square(&[75, 25], &[3, 1]);
        assert_eq!((c.statistic, c.p_value), (0.0, 1.0));
        assert_eq!(chi_square(&[0, 0], &[95, 5]).p_value, 1.0);
        assert_eq!(chi_square(&[], &[]).p_value, 1.0);
        // A single weighted arm cannot mismatch.
        assert_eq!(chi_square(&[9], &[1]).p_value, 1.0);
        assert_eq!(chi_square(&[9, 0], &[1, 0]).p_value, 1.0);
    }

    #[test]
    fn traffic_on_a_zero_weight_arm_is_a_certain_mismatch() {
        let c = chi_square(&[9, 1], &[1, 0]);
        assert_eq!(c.p_value, 0.0);
        assert!(c.statistic.is_infinite());
    }

    #[test]
    fn all_zero_weights_count_as_equal() {
        let c = chi_square(&[60, 40], &[0, 0]);
        assert_eq!(c.statistic, 4.0);
        assert!(close(c.p_value, 0.045_500_263_896_358_42));
    }

    #[test]
    fn key_changes_with_weights_only() {
        let a = SrmKey::new("r", 0, &[50, 50]);
        assert_eq!(a, SrmKey::new("r", 0, &[50, 50]));
        assert_ne!(a, SrmKey::new("r", 0, &[80, 20]));
        assert_ne!(a, SrmKey::new("r", 1, &[50, 50]));
        assert_ne!(a, SrmKey::new("r2", 0, &[50, 50]));
    }
}
