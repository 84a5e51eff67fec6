//! The result of `split-sim run`, as JSON (deterministic: same seed and config → same
//! bytes; no timings inside) and as text.

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::ChiSquare;

/// One arm of a group.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReport {
    /// Arm label (`name` or index).
    pub arm: String,
    /// Requests it got.
    pub hits: u64,
    /// Share of the group's requests.
    pub share: f64,
    /// Expected requests (weights of each segment applied to that segment's requests).
    pub expected: f64,
    /// Expected share.
    pub expected_share: f64,
    /// hits − expected.
    pub deviation: f64,
}

/// The outcome of one (route, rule) pair, or of a route's no-rule path.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// Route id.
    pub route: String,
    /// Rule index; `null` = no rule matched (route upstream).
    pub rule: Option<usize>,
    /// Requests.
    pub total: u64,
    /// Per arm.
    pub arms: Vec<ArmReport>,
    /// Per weight segment: the exact-count window and the worst deviation in it.
    pub windows: Vec<WindowReport>,
    /// Worst |count − expected| of any arm in any window of `sum(w)/gcd(w)` consecutive
    /// picks, over all segments (windows never span a weight change); `null` when no
    /// segment had a full window.
    pub worst_window_deviation: Option<f64>,
    /// Goodness of fit of the totals.
    pub chi_square: Option<ChiSquare>,
}

/// Window deviation within one weight segment.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// First request index of the segment.
    pub from: u64,
    /// End (exclusive) of the segment.
    pub to: u64,
    /// Weights in force.
    pub weights: Vec<u32>,
    /// `sum(w)/gcd(w)`.
    pub window: u64,
    /// Picks of this rule in the segment.
    pub picks: u64,
    /// Worst |count − expected| over windows of `window` picks; `null` if fewer picks.
    pub worst_deviation: Option<f64>,
}

/// A weight change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeReport {
    /// Request index where the new weights apply.
    pub at: u64,
    /// New weights of the target rule.
    pub weights: Vec<u32>,
}

/// Sticky keys moved by a weight change (chash).
#[derive(Debug, Clone, Serialize)]
pub struct KeyMove {
    /// Request index of the change.
    pub at: u64,
    /// Keys checked.
    pub keys: u64,
    /// Keys whose arm changed.
    pub moved: u64,
    /// moved / keys.
    pub moved_share: f64,
    /// The least share any weight-respecting assignment must move:
    /// Σ max(0, old share − new share).
    pub minimum_share: f64,
}

/// Everything `split-sim run` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Seed.
    pub seed: u64,
    /// Requests simulated.
    pub requests: u64,
    /// Target route.
    pub route: String,
    /// Target rule.
    pub rule: usize,
    /// Target rule's selector: roundrobin, random or chash.
    pub selector: String,
    /// Target rule's starting weights.
    pub weights: Vec<u32>,
    /// Weight changes.
    pub changes: Vec<ChangeReport>,
    /// Distinct sticky keys in the traffic (0 = none).
    pub sticky_keys: u64,
    /// Requests that matched no route (404).
    pub not_found: u64,
    /// Requests the core could not decide.
    pub errors: u64,
    /// Per (route, rule).
    pub groups: Vec<GroupReport>,
    /// Keys moved by each change (chash target rules with sticky keys).
    pub key_moves: Vec<KeyMove>,
}

/// Human-readable report.
pub fn render_text(r: &RunReport) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "split-sim run: {} requests, seed {}, route {:?} rule {} ({} {:?}){}",
        r.requests,
        r.seed,
        r.route,
        r.rule,
        r.selector,
        r.weights,
        if r.sticky_keys > 0 {
            format!(", {} sticky keys", r.sticky_keys)
        } else {
            String::new()
        }
    );
    for c in &r.changes {
        let _ = writeln!(s, "  change at request {}: weights {:?}", c.at, c.weights);
    }
    if r.not_found > 0 {
        let _ = writeln!(s, "404 (no route): {}", r.not_found);
    }
    if r.errors > 0 {
        let _ = writeln!(s, "undecidable requests: {}", r.errors);
    }
    for g in &r.groups {
        match g.rule {
            Some(rule) => {
                let _ = writeln!(s, "\nroute {:?} rule {rule}: {} requests", g.route, g.total);
            }
            None => {
                let _ = writeln!(
                    s,
                    "\nroute {:?}, no rule matched (route upstream): {} requests",
                    g.route, g.total
                );
                continue;
            }
        }
        let _ = writeln!(
            s,
            "  {:<16} {:>12} {:>9} {:>14} {:>9} {:>11}",
            "arm", "hits", "share", "expected", "exp.share", "deviation"
        );
        for a in &g.arms {
            let _ = writeln!(
                s,
                "  {:<16} {:>12} {:>8.4}% {:>14.1} {:>8.4}% {:>+11.1}",
                a.arm,
                a.hits,
                a.share * 100.0,
                a.expected,
                a.expected_share * 100.0,
                a.deviation
            );
        }
        for w in &g.windows {
            let span = if g.windows.len() > 1 {
                format!(" (requests {}..{}, weights {:?})", w.from, w.to, w.weights)
            } else {
                String::new()
            };
            match w.worst_deviation {
                Some(d) => {
                    let _ = writeln!(
                        s,
                        "  worst deviation in any window of {} consecutive picks: {d} requests{span}",
                        w.window
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "  {} picks, fewer than one window of {}: no window deviation{span}",
                        w.picks, w.window
                    );
                }
            }
        }
        if let Some(c) = &g.chi_square {
            let _ = writeln!(
                s,
                "  chi-square {:.4} (df {}), p-value {:.4}",
                c.statistic, c.dof, c.p_value
            );
        }
    }
    for m in &r.key_moves {
        let _ = writeln!(
            s,
            "\nchange at {}: {} of {} sticky keys moved ({:.2}%), theoretical minimum {:.2}%",
            m.at,
            m.moved,
            m.keys,
            m.moved_share * 100.0,
            m.minimum_share * 100.0
        );
    }
    s
}
