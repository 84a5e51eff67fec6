//! Goodness of fit of observed arm counts against weights: expected counts and the
//! chi-square test. Shared by the proxy's SRM gauge ([`super::srm`]) and `split-sim`'s
//! reports, so both judge a split the same way.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// A chi-square goodness-of-fit result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChiSquare {
    /// Σ (observed − expected)² / expected over arms with a non-zero expected count.
    pub statistic: f64,
    /// Degrees of freedom: arms with a non-zero expected count − 1 (0 without
    /// observations).
    pub dof: u32,
    /// P(X ≥ statistic) for X ~ χ²(dof). 1 with no observations or a single weighted
    /// arm (nothing to mismatch); 0 when an arm of weight 0 received requests.
    pub p_value: f64,
}

/// Expected count of each arm for `total` requests split by `weights`. All-zero weights
/// count as equal weights, as the selector alternates then.
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

/// Tests `observed` arm counts against `weights` (same order; extra entries on either
/// side are ignored).
pub fn chi_square(observed: &[u64], weights: &[u32]) -> ChiSquare {
    let n = observed.len().min(weights.len());
    let observed = &observed[..n];
    let total: u64 = observed.iter().sum();
    chi_square_expected(observed, &expected_counts(&weights[..n], total))
}

/// Tests `observed` counts against explicit `expected` counts (same order; extra
/// entries on either side are ignored).
pub fn chi_square_expected(observed: &[u64], expected: &[f64]) -> ChiSquare {
    let total: u64 = observed.iter().sum();
    let mut statistic = 0.0;
    let mut cells = 0u32;
    let mut impossible = false;
    for (&o, &e) in observed.iter().zip(expected) {
        if e > 0.0 {
            let d = o as f64 - e;
            statistic += d * d / e;
            cells += 1;
        } else if o > 0 {
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
            Ok(dist) => dist.sf(statistic).clamp(0.0, 1.0),
            // dof >= 1 here, which statrs always accepts; report "no evidence" otherwise.
            Err(_) => 1.0,
        }
    };
    ChiSquare {
        statistic,
        dof,
        p_value,
    }
}
