//! A model of APISIX's arm selection (reference §1.4) to compare against: lua-resty-balancer's
//! interleaved weighted round robin, one independent instance per nginx worker, each
//! starting at a random entry, over the arms in (arbitrary) Lua hash order; requests land
//! on a random worker.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use split_core::select::mix64;

use crate::stats;

/// One worker's picker: `cw` (current weight) and `last` (position), LVS style.
#[derive(Debug, Clone)]
pub struct InterleavedWrr {
    /// Arm index at each position (the hash order).
    order: Vec<usize>,
    /// Weight at each position.
    weights: Vec<u64>,
    gcd: u64,
    max: u64,
    cw: u64,
    last: usize,
}

impl InterleavedWrr {
    /// A picker over `weights` (config order) visited in `order`, positioned at `start`
    /// (the scan begins after it), with `cw = max`.
    pub fn new(weights: &[u32], order: Vec<usize>, start: usize) -> InterleavedWrr {
        let w: Vec<u64> = order
            .iter()
            .map(|&i| weights.get(i).map_or(0, |w| u64::from(*w)))
            .collect();
        let gcd = w.iter().fold(0, |g, x| stats::gcd(g, *x));
        let max = w.iter().copied().max().unwrap_or(0);
        let len = order.len().max(1);
        InterleavedWrr {
            order,
            weights: w,
            gcd,
            max,
            cw: max,
            last: start % len,
        }
    }

    /// The next arm index; `None` only with no arms.
    pub fn next_arm(&mut self) -> Option<usize> {
        let n = self.order.len();
        if n <= 1 {
            return self.order.first().copied();
        }
        // The max-weight entry qualifies at every level, so two passes always find one.
        for _ in 0..2 * n + 2 {
            let pos = if self.last + 1 >= n {
                // End of the list: next level down (back to the top level after the
                // lowest), and the scan restarts from the first position.
                self.cw = self.cw.saturating_sub(self.gcd);
                if self.cw == 0 {
                    self.cw = self.max;
                }
                0
            } else {
                self.last + 1
            };
            self.last = pos;
            if self.weights[pos] >= self.cw {
                return Some(self.order[pos]);
            }
        }
        None
    }
}

/// One row of the comparison table.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow {
    /// Requests sent.
    pub requests: u64,
    /// split's worst |count − expected| over arms, in requests.
    pub split: f64,
    /// APISIX model: worst over trials.
    pub apisix_worst: f64,
    /// APISIX model: mean over trials.
    pub apisix_mean: f64,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Weights compared.
    pub weights: Vec<u32>,
    /// nginx workers modelled.
    pub workers: usize,
    /// Trials (random starts, hash orders, request-to-worker draws).
    pub trials: u32,
    /// Seed.
    pub seed: u64,
    /// Rows per checkpoint.
    pub rows: Vec<CompareRow>,
}

fn deviation(counts: &[u64], weights: &[u32]) -> f64 {
    stats::worst_deviation(counts, weights)
}

/// Compares split's `pick(ticket)` with the APISIX model at each checkpoint.
pub fn compare(
    weights: &[u32],
    workers: usize,
    trials: u32,
    seed: u64,
    checkpoints: &[u64],
    pick: &dyn Fn(u64) -> Option<usize>,
) -> Comparison {
    let k = weights.len();
    let last = checkpoints.iter().copied().max().unwrap_or(0);
    let at_checkpoints = |next: &mut dyn FnMut() -> Option<usize>| {
        let mut counts = vec![0u64; k];
        let mut devs = Vec::new();
        for i in 1..=last {
            if let Some(a) = next() {
                if let Some(c) = counts.get_mut(a) {
                    *c += 1;
                }
            }
            if checkpoints.contains(&i) {
                devs.push(deviation(&counts, weights));
            }
        }
        devs
    };
    let mut ticket = 0u64;
    let ours = at_checkpoints(&mut || {
        let a = pick(ticket);
        ticket += 1;
        a
    });
    let mut worst = vec![0f64; ours.len()];
    let mut sum = vec![0f64; ours.len()];
    let workers = workers.max(1);
    for trial in 0..trials.max(1) {
        let mut rng = ChaCha8Rng::seed_from_u64(mix64(seed ^ mix64(u64::from(trial))));
        // One hash order for all workers (same table built the same way), shuffled.
        let mut order: Vec<usize> = (0..k).collect();
        for i in (1..k).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut pickers: Vec<InterleavedWrr> = (0..workers)
            .map(|_| {
                let start = (rng.next_u64() % k.max(1) as u64) as usize;
                InterleavedWrr::new(weights, order.clone(), start)
            })
            .collect();
        let devs = at_checkpoints(&mut || {
            let w = (rng.next_u64() % workers as u64) as usize;
            pickers[w].next_arm()
        });
        for (i, d) in devs.iter().enumerate() {
            worst[i] = worst[i].max(*d);
            sum[i] += d;
        }
    }
    let mut sorted: Vec<u64> = checkpoints.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let rows = sorted
        .iter()
        .enumerate()
        .map(|(i, &requests)| CompareRow {
            requests,
            split: ours[i],
            apisix_worst: worst[i],
            apisix_mean: sum[i] / f64::from(trials.max(1)),
        })
        .collect();
    Comparison {
        weights: weights.to_vec(),
        workers,
        trials: trials.max(1),
        seed,
        rows,
    }
}

/// The comparison as a Markdown table.
pub fn render_table(c: &Comparison) -> String {
    let mut s = format!(
        "Worst |hits − expected| over arms, in requests, weights {:?}.\n\
         APISIX model: {} worker(s), interleaved WRR with a random start per worker, \
         worst and mean of {} trials (seed {}).\n\n\
         | requests | split | APISIX worst | APISIX mean |\n\
         |---:|---:|---:|---:|\n",
        c.weights, c.workers, c.trials, c.seed
    );
    for r in &c.rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} |\n",
            r.requests, r.split, r.apisix_worst, r.apisix_mean
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(weights: &[u32], order: Vec<usize>, start: usize, n: usize) -> Vec<usize> {
        let mut p = InterleavedWrr::new(weights, order, start);
        (0..n).map(|_| p.next_arm().unwrap()).collect()
    }

    #[test]
    fn heaviest_first_levels() {
        // 5:1:1 (reference §1.4): A A A A, then {A,B,C} at the lowest level. Starting
        // at the last entry, the first scan wraps at once and begins one level down.
        let seq = run(&[5, 1, 1], vec![0, 1, 2], 2, 7);
        assert_eq!(seq, vec![0, 0, 0, 0, 1, 2, 0]);
        // 1:1:2 (A:B:C): C at the top level, A B C at the lowest: C C in a row.
        let seq = run(&[1, 1, 2], vec![0, 1, 2], 2, 8);
        assert_eq!(seq, vec![0, 1, 2, 2, 0, 1, 2, 2]);
        // Starting at the first entry: the rest of the top level first.
        let seq = run(&[1, 1, 2], vec![0, 1, 2], 0, 4);
        assert_eq!(seq, vec![2, 0, 1, 2]);
    }

    #[test]
    fn exact_counts_per_period_for_one_worker() {
        let w = [3, 1, 2];
        for start in 0..3 {
            let seq = run(&w, vec![2, 0, 1], start, 60);
            for win in seq.windows(6) {
                let c = |a| win.iter().filter(|x| **x == a).count();
                assert_eq!((c(0), c(1), c(2)), (3, 1, 2), "{seq:?}");
            }
        }
    }

    #[test]
    fn zero_weights_and_single_arms() {
        assert_eq!(run(&[0], vec![0], 0, 3), vec![0, 0, 0]);
        assert_eq!(run(&[0, 0], vec![0, 1], 0, 4), vec![1, 0, 1, 0]);
        assert!(run(&[4, 0], vec![0, 1], 1, 10).iter().all(|a| *a == 0));
    }

    #[test]
    fn many_workers_drift_more_than_split() {
        let pick = |t: u64| Some((t % 2) as usize);
        let c = compare(&[1, 1], 4, 20, 9, &[100, 1000], &pick);
        assert_eq!(c.rows[0].split, 0.0);
        assert_eq!(c.rows[1].split, 0.0);
        assert!(c.rows[1].apisix_worst >= 1.0, "{c:?}");
        let again = compare(&[1, 1], 4, 20, 9, &[100, 1000], &pick);
        assert_eq!(c.rows[1].apisix_worst, again.rows[1].apisix_worst);
    }
}
