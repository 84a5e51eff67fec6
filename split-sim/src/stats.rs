//! The statistics every report uses: expected counts from weights, chi-square goodness of
//! fit (statrs), worst deviation, and latency percentiles.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Result of a chi-square goodness-of-fit test of observed counts against weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChiSquare {
    /// Σ (observed − expected)² / expected over arms with a non-zero weight.
    pub statistic: f64,
    /// Degrees of freedom: arms with a non-zero weight − 1.
    pub dof: u32,
    /// P(X ≥ statistic) for X ~ χ²(dof); 1 when dof is 0; 0 when a zero-weight arm was hit.
    pub p_value: f64,
}

/// Expected count of each arm for `total` requests split by `weights`. All-zero weights
/// count as equal weights (APISIX alternates then).
pub fn expected_counts(weights: &[u32], total: u64) -> Vec<f64> {
    let sum: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if weights.is_empty() {
        return Vec::new();
    }
    if sum == 0 {
        let each = total as f64 / weights.len() as f64;
        return vec![each; weights.len()];
    }
    weights
        .iter()
        .map(|w| total as f64 * f64::from(*w) / sum as f64)
        .collect()
}

/// Chi-square test of `observed` against `weights` (same length).
pub fn chi_square(observed: &[u64], weights: &[u32]) -> ChiSquare {
    let total: u64 = observed.iter().sum();
    chi_square_expected(observed, &expected_counts(weights, total))
}

/// Chi-square test of `observed` against explicit `expected` counts (same length).
pub fn chi_square_expected(observed: &[u64], expected: &[f64]) -> ChiSquare {
    let total: u64 = observed.iter().sum();
    let mut statistic = 0.0;
    let mut cells = 0u32;
    let mut impossible = false;
    for (o, e) in observed.iter().zip(expected) {
        if *e > 0.0 {
            let d = *o as f64 - e;
            statistic += d * d / e;
            cells += 1;
        } else if *o > 0 {
            impossible = true;
        }
    }
    let dof = cells.saturating_sub(1);
    if impossible {
        return ChiSquare {
            statistic: f64::INFINITY,
            dof,
            p_value: 0.0,
        };
    }
    let p_value = if dof == 0 || total == 0 {
        1.0
    } else {
        match ChiSquared::new(f64::from(dof)) {
            Ok(dist) => dist.sf(statistic),
            // dof ≥ 1 here, which statrs always accepts; report "no evidence" otherwise.
            Err(_) => 1.0,
        }
    };
    ChiSquare {
        statistic,
        dof,
        p_value,
    }
}

/// The largest |observed − expected| over arms, in requests.
pub fn worst_deviation(observed: &[u64], weights: &[u32]) -> f64 {
    let total: u64 = observed.iter().sum();
    observed
        .iter()
        .zip(expected_counts(weights, total))
        .map(|(o, e)| (*o as f64 - e).abs())
        .fold(0.0, f64::max)
}

/// Nearest-rank percentile (`q` in 0..=100) of an ascending slice; 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Greatest common divisor.
pub fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `sum(w)/gcd(w)`: the window in which an exact round robin has exact counts (all-zero
/// weights count as equal weights; at least 1).
pub fn period(weights: &[u32]) -> u64 {
    let eff: Vec<u64> = if weights.iter().all(|w| *w == 0) {
        vec![1; weights.len()]
    } else {
        weights.iter().map(|w| u64::from(*w)).collect()
    };
    let g = eff.iter().fold(0, |g, w| gcd(g, *w));
    if g == 0 {
        return 1;
    }
    (eff.iter().sum::<u64>() / g).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_of_60_40_against_50_50() {
        let c = chi_square(&[60, 40], &[50, 50]);
        assert!((c.statistic - 4.0).abs() < 1e-12);
        assert_eq!(c.dof, 1);
        assert!((c.p_value - 0.0455).abs() < 5e-4, "{}", c.p_value);
    }

    #[test]
    fn chi_square_known_values() {
        // Perfect fit.
        let c = chi_square(&[75, 25], &[3, 1]);
        assert_eq!(c.statistic, 0.0);
        assert!((c.p_value - 1.0).abs() < 1e-12);
        // Three arms: expected 30/30/40, stat = 100/30 + 0 + 100/40 = 5.8333, df 2,
        // p = exp(-5.8333/2) = 0.05411.
        let c = chi_square(&[40, 30, 30], &[3, 3, 4]);
        assert!((c.statistic - 5.833_333).abs() < 1e-5);
        assert_eq!(c.dof, 2);
        assert!((c.p_value - (-c.statistic / 2.0).exp()).abs() < 1e-9);
        // A zero-weight arm that was hit is impossible under the model.
        let c = chi_square(&[5, 1], &[1, 0]);
        assert_eq!(c.p_value, 0.0);
        // One live arm: nothing to test.
        assert_eq!(chi_square(&[9, 0], &[1, 0]).p_value, 1.0);
    }

    #[test]
    fn expectations_and_deviation() {
        assert_eq!(expected_counts(&[3, 1], 8), vec![6.0, 2.0]);
        assert_eq!(expected_counts(&[0, 0], 4), vec![2.0, 2.0]);
        assert_eq!(worst_deviation(&[7, 1], &[3, 1]), 1.0);
        assert_eq!(worst_deviation(&[8, 2], &[3, 1]), 0.5);
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[3.0], 90.0), 3.0);
        assert_eq!(percentile(&[], 90.0), 0.0);
    }

    #[test]
    fn periods() {
        assert_eq!(period(&[50, 50]), 2);
        assert_eq!(period(&[3, 1]), 4);
        assert_eq!(period(&[80, 20]), 5);
        assert_eq!(period(&[0, 0, 0]), 3);
        assert_eq!(period(&[5, 0]), 1);
        assert_eq!(period(&[]), 1);
    }
}
