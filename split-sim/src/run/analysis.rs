//! Turning recorded outcomes into numbers: per-arm counts and expectations over weight
//! segments, the worst deviation over any exact-count window, and chi-square.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::stats;

use super::engine::{decode, Groups};
use super::report::{ArmReport, GroupReport, WindowReport};

/// One stretch of requests served by one configuration.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Request indexes.
    pub range: Range<u64>,
    /// Weights of each rule group (group number → weights) in this configuration.
    pub weights: BTreeMap<u32, Vec<u32>>,
}

/// The worst |count − expected| of any arm over every window of `period(weights)`
/// consecutive picks in `seq`; `None` when `seq` is shorter than one window.
pub fn worst_window_deviation(seq: &[u8], weights: &[u32]) -> Option<f64> {
    let period = stats::period(weights);
    if period == 0 || period > seq.len() as u64 {
        return None;
    }
    let p = period as usize;
    let eff: Vec<u64> = if weights.iter().all(|w| *w == 0) {
        vec![1; weights.len()]
    } else {
        weights.iter().map(|w| u64::from(*w)).collect()
    };
    let sum: u64 = eff.iter().sum();
    // period · w / sum = w / gcd: an exact integer.
    let target: Vec<i64> = eff.iter().map(|w| (period * w / sum) as i64).collect();
    let k = weights.len();
    let mut counts = vec![0i64; k];
    let bump = |counts: &mut [i64], arm: u8, d: i64| {
        if let Some(c) = counts.get_mut(arm as usize) {
            *c += d;
        }
    };
    for &a in &seq[..p] {
        bump(&mut counts, a, 1);
    }
    let dev = |counts: &[i64]| {
        counts
            .iter()
            .zip(&target)
            .map(|(c, t)| (c - t).abs())
            .max()
            .unwrap_or(0)
    };
    let mut worst = dev(&counts);
    for j in p..seq.len() {
        bump(&mut counts, seq[j], 1);
        bump(&mut counts, seq[j - p], -1);
        worst = worst.max(dev(&counts));
    }
    Some(worst as f64)
}

/// Per-group reports for every group that saw traffic (404 and errors excluded; the
/// caller reports those as plain counts).
pub fn group_reports(outcomes: &[u32], segments: &[Segment], groups: &Groups) -> Vec<GroupReport> {
    let n_groups = groups.list.len();
    let mut hits: Vec<Vec<u64>> = groups
        .list
        .iter()
        .map(|g| vec![0; g.labels.len().max(1)])
        .collect();
    let mut expected: Vec<Vec<f64>> = hits.iter().map(|h| vec![0.0; h.len()]).collect();
    let mut worst: Vec<Option<f64>> = vec![None; n_groups];
    let mut windows: Vec<Vec<WindowReport>> = vec![Vec::new(); n_groups];
    // Group numbers come from `Groups::find` on the same `groups`, so they index
    // `hits`/`expected`/`worst`/`windows`; segment ranges lie inside `outcomes`.
    for seg in segments {
        let mut seqs: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        let slice = &outcomes[seg.range.start as usize..seg.range.end as usize];
        for &c in slice {
            let (g, a) = decode(c);
            if let Some(h) = hits.get_mut(g as usize).and_then(|h| h.get_mut(a)) {
                *h += 1;
            }
            if seg.weights.contains_key(&g) {
                seqs.entry(g).or_default().push(a as u8);
            }
        }
        for (g, seq) in &seqs {
            let Some(w) = seg.weights.get(g) else {
                continue;
            };
            for (e, x) in expected[*g as usize]
                .iter_mut()
                .zip(stats::expected_counts(w, seq.len() as u64))
            {
                *e += x;
            }
            let d = worst_window_deviation(seq, w);
            if let Some(d) = d {
                let slot = &mut worst[*g as usize];
                *slot = Some(slot.map_or(d, |s: f64| s.max(d)));
            }
            windows[*g as usize].push(WindowReport {
                from: seg.range.start,
                to: seg.range.end,
                weights: w.clone(),
                window: stats::period(w),
                picks: seq.len() as u64,
                worst_deviation: d,
            });
        }
    }
    let mut out = Vec::new();
    for (g, group) in groups.list.iter().enumerate().skip(2) {
        let total: u64 = hits[g].iter().sum();
        if total == 0 {
            continue;
        }
        let is_rule = group.rule.is_some();
        let labels: Vec<String> = if is_rule {
            group.labels.clone()
        } else {
            vec!["route upstream".to_owned()]
        };
        let arms: Vec<ArmReport> = labels
            .iter()
            .enumerate()
            .map(|(a, label)| {
                let h = hits[g][a];
                let e = if is_rule { expected[g][a] } else { h as f64 };
                ArmReport {
                    arm: label.clone(),
                    hits: h,
                    share: h as f64 / total as f64,
                    expected: e,
                    expected_share: e / total as f64,
                    deviation: h as f64 - e,
                }
            })
            .collect();
        let chi = is_rule.then(|| stats::chi_square_expected(&hits[g], &expected[g]));
        out.push(GroupReport {
            route: group.route.clone(),
            rule: group.rule,
            total,
            arms,
            windows: std::mem::take(&mut windows[g]),
            worst_window_deviation: worst[g],
            chi_square: chi,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sequences_have_zero_window_deviation() {
        // 3:1, period 4.
        let seq = [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0];
        assert_eq!(worst_window_deviation(&seq, &[3, 1]), Some(0.0));
    }

    #[test]
    fn bursts_are_measured() {
        // 1:1, period 2: "0 0" is one off in that window.
        let seq = [0, 1, 0, 0, 1, 1];
        assert_eq!(worst_window_deviation(&seq, &[1, 1]), Some(1.0));
        // 3:1 over 8 with the light arm twice in a row: window [1,1,0,0] has 2 vs 1.
        let seq = [0, 0, 0, 1, 1, 0, 0, 0];
        assert_eq!(worst_window_deviation(&seq, &[3, 1]), Some(1.0));
    }

    #[test]
    fn short_sequences_have_no_window() {
        assert_eq!(worst_window_deviation(&[0, 1], &[3, 1]), None);
        assert_eq!(worst_window_deviation(&[0], &[1]), Some(0.0));
    }
}
