//! The statistics every report uses: expected counts from weights and the chi-square
//! goodness of fit (split-core's, shared with the proxy's SRM gauge), worst deviation,
//! and latency percentiles.

pub use split_core::stats::fit::{chi_square, chi_square_expected, expected_counts, ChiSquare};

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
