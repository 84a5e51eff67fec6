//! The sample-ratio-mismatch gauge `split_srm_p_value{route,rule}`: per split rule, the
//! chi-square p-value of the arm counts observed since the rule's weights last changed
//! against those weights. Counting is one relaxed atomic add per request; the statistics
//! (split-core `stats::srm`) run only when Prometheus scrapes.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use split_core::snapshot::{CompiledRoute, Decision};
use split_core::stats::srm::{chi_square, SrmKey};
use split_core::word_hash::WordHash;

use crate::live::Live;

/// The counts by rule (config-derived keys: a fast unkeyed hash, see [`WordHash`]).
type Rules = HashMap<SrmKey, Arc<[AtomicU64]>, BuildHasherDefault<WordHash>>;

/// Arm counts per rule, keyed by [`SrmKey`] (route, rule index, weights): a weight change
/// starts new counts, any other edit keeps them.
#[derive(Debug, Default)]
pub struct SrmCounts {
    rules: RwLock<Rules>,
}

impl SrmCounts {
    /// Counts one request of rule `key` (with `arms` arms) sent to arm `arm`.
    pub fn count(&self, key: SrmKey, arms: usize, arm: usize) {
        if let Some(counts) = self.read().get(&key) {
            if let Some(c) = counts.get(arm) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let counts = Arc::clone(
            self.write()
                .entry(key)
                .or_insert_with(|| (0..arms).map(|_| AtomicU64::new(0)).collect()),
        );
        if let Some(c) = counts.get(arm) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts the arm `decision` picked on `route`, if it picked one.
    pub fn count_decision(&self, route: &CompiledRoute, decision: &Decision<'_>) {
        if let (Some(rule), Some(arm)) = (decision.rule, decision.arm) {
            if let Some(rule) = route.rules.get(rule) {
                self.count(rule.srm, rule.arms.len(), arm);
            }
        }
    }

    /// The counts of rule `key` (zeros when nothing was counted yet).
    pub fn counts(&self, key: SrmKey, arms: usize) -> Vec<u64> {
        match self.read().get(&key) {
            Some(counts) => counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            None => vec![0; arms],
        }
    }

    /// Drops the counts of rules that are no longer configured (or whose weights changed).
    pub fn retain(&self, live: &HashSet<SrmKey>) {
        self.write().retain(|key, _| live.contains(key));
    }

    // A poisoned lock only means a thread panicked while holding it; the map of counters
    // is still valid, so keep using it.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rules> {
        self.rules.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Computes the gauge from the live snapshot at every scrape.
#[derive(Debug)]
pub struct SrmCollector {
    live: Live,
    counts: Arc<SrmCounts>,
}

impl SrmCollector {
    /// A collector over the rules of `live`, with the counts the proxy keeps in `counts`.
    pub fn new(live: Live, counts: Arc<SrmCounts>) -> SrmCollector {
        SrmCollector { live, counts }
    }
}

const NAME: &str = "split_srm_p_value";
const HELP: &str = "Sample ratio mismatch per split rule: chi-square p-value of the arm \
                    counts since the last weight change against the configured weights \
                    (1 = fits; alert on small values)";

impl Collector for SrmCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.live.load_full();
        let mut live = HashSet::new();
        let mut samples = Vec::new();
        for route in &snapshot.routes {
            for (index, rule) in route.rules.iter().enumerate() {
                live.insert(rule.srm);
                let counts = self.counts.counts(rule.srm, rule.weights.len());
                let p = chi_square(&counts, &rule.weights).p_value;
                let labels = [
                    ("route", route.metrics.label.to_string()),
                    ("rule", index.to_string()),
                ];
                samples.push((labels, p));
            }
        }
        self.counts.retain(&live);
        if samples.is_empty() {
            return Ok(());
        }
        let kind = ConstGauge::new(0.0f64).metric_type();
        let mut family = encoder.encode_descriptor(NAME, HELP, None, kind)?;
        for (labels, p) in &samples {
            let sample = family.encode_family(labels)?;
            ConstGauge::new(*p).encode(sample)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_key_and_pruned() {
        let c = SrmCounts::default();
        let a = SrmKey(1);
        let b = SrmKey(2);
        for _ in 0..3 {
            c.count(a, 2, 0);
        }
        c.count(a, 2, 1);
        c.count(b, 2, 1);
        c.count(b, 2, 7); // out of range: ignored, never panics
        assert_eq!(c.counts(a, 2), vec![3, 1]);
        assert_eq!(c.counts(b, 2), vec![0, 1]);
        c.retain(&HashSet::from([a]));
        assert_eq!(c.counts(a, 2), vec![3, 1]);
        assert_eq!(c.counts(b, 2), vec![0, 0]);
    }
}
