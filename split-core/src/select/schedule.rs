//! The `roundrobin` selector: a hierarchical Bresenham schedule in config order.
//!
//! Arm 0 takes ticket `t` (reduced modulo the period) iff
//! `ceil((t+1)·w0/W) > ceil(t·w0/W)`. The ceiling makes arm 0 go first (1:1 → `A B A B`).
//! Every other ticket is renumbered `t − ceil(t·w0/W)` (its rank among the tickets arm 0
//! did not take) and handed to the same rule over arms `1..`, whose total is `W − w0`.
//! Within one period arm 0 takes exactly `w0` tickets and the renumbering is a bijection
//! onto `0..W−w0`, so by induction every arm gets exactly its reduced weight per period.
//!
//! Memory is O(arms); periods up to [`TABLE_MAX_PERIOD`] are additionally flattened into a
//! lookup table so a pick is one modulo and one load.

use super::{ArmIndex, PickInput, Select};

/// Largest period that is flattened into a lookup table (2 bytes per ticket).
pub const TABLE_MAX_PERIOD: u64 = 4096;

/// Deterministic weighted round robin: an immutable schedule indexed by ticket.
///
/// `arm_at(t)` depends only on `t mod period()`, so any `period()` consecutive tickets
/// `t, t+1, …, t+period()−1` hold exactly `w_i/gcd(w)` picks of arm `i` (zero-weight arms
/// none, unless all weights are zero). Tickets are plain `u64`s: a window that wraps from
/// `u64::MAX` to `0` is exact only when the period divides 2^64 (a power of two). At one
/// billion picks per second a counter takes 584 years to wrap, so callers need not care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Number of arms the schedule was built for (including zero-weight arms).
    len: usize,
    /// Config indexes of the arms that take part (non-zero weight, or all if all zero).
    arms: Vec<ArmIndex>,
    /// `weights[k]`: reduced weight (divided by the gcd) of `arms[k]`.
    weights: Vec<u64>,
    /// `totals[k]`: sum of `weights[k..]`; `totals[0]` is the period.
    totals: Vec<u64>,
    /// `sum(w)/gcd(w)`; at least 1.
    period: u64,
    /// Reciprocal of the period for division-free remainders (see [`FastMod`]).
    modulo: FastMod,
    /// Flattened schedule when the period is small (positions into `arms`).
    table: Option<Box<[u16]>>,
}

impl Schedule {
    /// Builds the schedule for `weights` in config order. O(arms) memory (a small lookup
    /// table is allowed only for small periods; never memory proportional to weights).
    ///
    /// Zero weights are dropped; all zero counts as all one; a single arm is always
    /// picked, even with weight 0; no arms → [`Schedule::arm_at`] returns `None`.
    pub fn new(weights: &[u32]) -> Schedule {
        let mut arms: Vec<ArmIndex> = (0..weights.len()).filter(|&i| weights[i] > 0).collect();
        let mut raw: Vec<u64> = arms.iter().map(|&i| u64::from(weights[i])).collect();
        if arms.is_empty() {
            arms = (0..weights.len()).collect();
            raw = vec![1; weights.len()];
        }
        let g = raw.iter().copied().fold(0, gcd).max(1);
        let reduced: Vec<u64> = raw.iter().map(|w| w / g).collect();
        // Suffix sums. Overflow would need more than 2^32 arms (16 GiB of weights);
        // saturate rather than panic, the walk below never underflows either way.
        let mut totals = vec![0u64; reduced.len()];
        let mut acc = 0u64;
        for k in (0..reduced.len()).rev() {
            acc = acc.saturating_add(reduced[k]);
            totals[k] = acc;
        }
        let period = totals.first().copied().unwrap_or(1).max(1);
        let mut schedule = Schedule {
            len: weights.len(),
            arms,
            weights: reduced,
            totals,
            period,
            modulo: FastMod::new(period),
            table: None,
        };
        if period <= TABLE_MAX_PERIOD && schedule.arms.len() <= usize::from(u16::MAX) {
            let table: Box<[u16]> = (0..period)
                .map(|t| {
                    // Fits: checked `arms.len() <= u16::MAX` just above.
                    u16::try_from(schedule.position(t)).unwrap_or(u16::MAX)
                })
                .collect();
            schedule.table = Some(table);
        }
        schedule
    }

    /// The arm for `ticket`; `None` only when built with zero arms.
    #[inline]
    pub fn arm_at(&self, ticket: u64) -> Option<ArmIndex> {
        let t = self.modulo.rem(ticket);
        let pos = match &self.table {
            Some(table) => usize::from(*table.get(t as usize)?),
            None => self.position(t),
        };
        self.arms.get(pos).copied()
    }

    /// `sum(w)/gcd(w)` over the effective weights: the window with exact counts.
    /// 1 for a single arm and for zero arms.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// Number of arms the schedule was built for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when built with zero arms.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Picks per period of each configured arm (`w_i/gcd`, 0 for dropped arms).
    pub fn counts_per_period(&self) -> Vec<u64> {
        let mut counts = vec![0; self.len];
        for (k, &arm) in self.arms.iter().enumerate() {
            counts[arm] = self.weights[k];
        }
        counts
    }

    /// Position (into `arms`) for a ticket already reduced modulo the period.
    fn position(&self, mut t: u64) -> usize {
        let last = self.arms.len().saturating_sub(1);
        for k in 0..last {
            let (w, total) = (self.weights[k], self.totals[k]);
            let before = ceil_mul_div(t, w, total);
            let after = ceil_mul_div(t + 1, w, total);
            if after > before {
                return k;
            }
            t = t.saturating_sub(before);
        }
        last
    }
}

impl Select for Schedule {
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn pick(&self, input: PickInput<'_>) -> Option<ArmIndex> {
        self.arm_at(input.ticket)
    }
}

/// `n mod d` by multiplication (Lemire, Kaser, Kurz: "Faster Remainder by Direct
/// Computation", 2019): with `c = ceil(2^128 / d)`, `n mod d = ((c·n) mod 2^128)·d / 2^128`
/// for every 64-bit `n` and `d`. A hardware 64-bit division costs tens of cycles; this is
/// four multiplications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FastMod {
    d: u64,
    /// `ceil(2^128 / d)`; 0 when `d <= 1` (every remainder is 0).
    c: u128,
}

impl FastMod {
    fn new(d: u64) -> FastMod {
        let c = if d <= 1 {
            0
        } else {
            (u128::MAX / u128::from(d)).wrapping_add(1)
        };
        FastMod { d, c }
    }

    #[inline]
    fn rem(&self, n: u64) -> u64 {
        if self.c == 0 {
            return 0;
        }
        let low = self.c.wrapping_mul(u128::from(n));
        let d = u128::from(self.d);
        let lo = (low as u64 as u128) * d;
        let hi = (low >> 64) * d;
        // hi + (lo >> 64) < 2^128: hi <= (2^64-1)^2 and (lo >> 64) < 2^64.
        ((hi + (lo >> 64)) >> 64) as u64
    }
}

/// `ceil(a·b/c)` without overflow; `c > 0`.
#[inline]
fn ceil_mul_div(a: u64, b: u64, c: u64) -> u64 {
    if c == 0 {
        return 0;
    }
    match a.checked_mul(b) {
        Some(p) => p.div_ceil(c),
        None => {
            let q = (u128::from(a) * u128::from(b)).div_ceil(u128::from(c));
            // q <= a because b <= c for every level of the walk.
            u64::try_from(q).unwrap_or(u64::MAX)
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_mul_div_wide() {
        assert_eq!(ceil_mul_div(u64::MAX, 3, 4), (u64::MAX / 4) * 3 + 3);
        assert_eq!(ceil_mul_div(7, 0, 9), 0);
        assert_eq!(ceil_mul_div(7, 1, 0), 0);
    }

    #[test]
    fn fast_mod_matches_hardware() {
        let ds = [
            1u64,
            2,
            3,
            7,
            10,
            4096,
            4097,
            1_000_000,
            u32::MAX as u64,
            (1 << 40) + 7,
            u64::MAX - 1,
            u64::MAX,
        ];
        let ns = [
            0u64,
            1,
            2,
            3,
            4095,
            4096,
            999_999,
            1 << 32,
            (1 << 63) + 5,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &d in &ds {
            let m = FastMod::new(d);
            for &n in &ns {
                assert_eq!(m.rem(n), n % d, "{n} % {d}");
            }
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..2000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                assert_eq!(m.rem(x), x % d, "{x} % {d}");
            }
        }
    }

    #[test]
    fn table_and_walk_agree() {
        let s = Schedule::new(&[3, 0, 5, 7]);
        assert!(s.table.is_some());
        for t in 0..s.period() {
            assert_eq!(s.arms[s.position(t)], s.arm_at(t).unwrap_or(usize::MAX));
        }
    }
}
