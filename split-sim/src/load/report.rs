//! The report of a load run: what was sent, what came back, and how the arms split.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::metrics::{self, ArmCounts};
use super::{tally, LoadConfig, Sample};
use crate::stats::{self, ChiSquare};

/// How far observed arm counts may be from the expected ones.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "unit", content = "value", rename_all = "lowercase")]
pub enum Tolerance {
    /// Requests beyond rounding: pass iff |observed − expected| < t + 1 for every arm,
    /// so 0 means "each arm got its expected count rounded up or down".
    Requests(f64),
    /// Percentage points of share: pass iff |share − expected share| ≤ t.
    Percent(f64),
}

impl std::str::FromStr for Tolerance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid tolerance {s:?}: expected requests (2) or percent (1.5%)");
        let t = s.trim();
        let (num, pct) = match t.strip_suffix('%') {
            Some(n) => (n, true),
            None => (t, false),
        };
        let v: f64 = num.trim().parse().map_err(|_| bad())?;
        if !v.is_finite() || v < 0.0 {
            return Err(bad());
        }
        Ok(if pct {
            Tolerance::Percent(v)
        } else {
            Tolerance::Requests(v)
        })
    }
}

/// Arm counters read from the gateway's metrics.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsView {
    /// Scraped URL.
    pub url: String,
    /// Scrape error, if either scrape failed.
    pub error: Option<String>,
    /// Per-arm increase during the run.
    pub arms: Vec<ArmHits>,
}

/// One arm's increase.
#[derive(Debug, Clone, Serialize)]
pub struct ArmHits {
    /// Route label.
    pub route: String,
    /// Rule label.
    pub rule: String,
    /// Arm label.
    pub arm: String,
    /// Increase of `split_arm_requests_total`.
    pub hits: u64,
}

impl MetricsView {
    /// A successful before/after pair.
    pub fn ok(url: &str, before: &ArmCounts, after: &ArmCounts) -> MetricsView {
        let mut arms: Vec<ArmHits> = metrics::diff(before, after)
            .into_iter()
            .map(|(k, v)| ArmHits {
                route: k.route,
                rule: k.rule,
                arm: k.arm,
                hits: v.max(0.0).round() as u64,
            })
            .collect();
        arms.sort_by(|a, b| {
            (&a.route, &a.rule)
                .cmp(&(&b.route, &b.rule))
                .then_with(|| metrics::arm_order(&a.arm, &b.arm))
        });
        MetricsView {
            url: url.to_owned(),
            error: None,
            arms,
        }
    }

    /// A failed scrape.
    pub fn failed(url: &str, error: String) -> MetricsView {
        MetricsView {
            url: url.to_owned(),
            error: Some(error),
            arms: Vec::new(),
        }
    }
}

/// Hits per mock upstream (from `X-Split-Mock` / `X-Split-Mock-Path` response headers).
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamHits {
    /// Mock name.
    pub name: String,
    /// Path the mock was called on.
    pub path: String,
    /// Responses.
    pub hits: u64,
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// One arm in the accuracy check.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyArm {
    /// Arm label.
    pub arm: String,
    /// Observed hits.
    pub hits: u64,
    /// Observed share (0..1).
    pub share: f64,
    /// Expected share (0..1).
    pub expected_share: f64,
    /// Expected hits.
    pub expected: f64,
    /// hits − expected.
    pub deviation: f64,
}

/// Observed split against `--expect`.
#[derive(Debug, Clone, Serialize)]
pub struct Accuracy {
    /// `metrics` (split_arm_requests_total) or `upstream` (mock response headers).
    pub source: String,
    /// Route and rule the arms belong to (metrics source).
    pub scope: Option<String>,
    /// Expected weights.
    pub weights: Vec<u32>,
    /// Per arm.
    pub arms: Vec<AccuracyArm>,
    /// Goodness of fit.
    pub chi_square: ChiSquare,
    /// Largest |hits − expected| over arms.
    pub worst_deviation: f64,
    /// Applied tolerance.
    pub tolerance: Tolerance,
    /// Within tolerance.
    pub pass: bool,
    /// Why the check could not be made, if it could not.
    pub problem: Option<String>,
}

/// Everything `split-sim load` prints.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// Target.
    pub url: String,
    /// Method.
    pub method: String,
    /// Requests asked for.
    pub planned: u64,
    /// Requests that got an HTTP response.
    pub responses: u64,
    /// Requests that failed without one.
    pub errors: u64,
    /// Concurrency.
    pub concurrency: usize,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// Completed requests per second.
    pub rate_rps: f64,
    /// Responses per status code.
    pub statuses: BTreeMap<String, u64>,
    /// Failures per reason.
    pub error_kinds: BTreeMap<String, u64>,
    /// Latency of all requests (ms).
    pub latency_ms: Latency,
    /// Gateway metrics diff.
    pub metrics: Option<MetricsView>,
    /// Mock upstream hits seen in responses.
    pub upstreams: Vec<UpstreamHits>,
    /// Accuracy check (with `--expect`).
    pub accuracy: Option<Accuracy>,
}

impl LoadReport {
    /// Exit code: 0, or 2 when the accuracy check failed or could not be made.
    pub fn exit_code(&self) -> i32 {
        match &self.accuracy {
            Some(a) if !a.pass => 2,
            _ => 0,
        }
    }
}

/// Assembles the report.
pub(super) fn build(
    cfg: &LoadConfig,
    samples: &[Sample],
    elapsed: Duration,
    metrics: Option<MetricsView>,
) -> LoadReport {
    let statuses = tally(
        samples
            .iter()
            .filter_map(|s| s.outcome.as_ref().ok().map(|c| c.to_string())),
    );
    let error_kinds = tally(samples.iter().filter_map(|s| s.outcome.clone().err()));
    let mut lat: Vec<f64> = samples.iter().map(|s| s.latency_ms).collect();
    lat.sort_by(f64::total_cmp);
    let latency_ms = Latency {
        p50: stats::percentile(&lat, 50.0),
        p90: stats::percentile(&lat, 90.0),
        p99: stats::percentile(&lat, 99.0),
        max: lat.last().copied().unwrap_or(0.0),
    };
    let upstreams: Vec<UpstreamHits> = tally(samples.iter().filter_map(|s| s.upstream.clone()))
        .into_iter()
        .map(|((name, path), hits)| UpstreamHits { name, path, hits })
        .collect();
    let responses = statuses.values().sum();
    let errors: u64 = error_kinds.values().sum();
    let secs = elapsed.as_secs_f64();
    let accuracy = cfg
        .expect
        .as_ref()
        .map(|w| accuracy(cfg, w, metrics.as_ref(), &upstreams));
    LoadReport {
        url: cfg.url.clone(),
        method: cfg.method.to_string(),
        planned: cfg.requests,
        responses,
        errors,
        concurrency: cfg.concurrency,
        elapsed_s: secs,
        rate_rps: if secs > 0.0 {
            (responses + errors) as f64 / secs
        } else {
            0.0
        },
        statuses,
        error_kinds,
        latency_ms,
        metrics,
        upstreams,
        accuracy,
    }
}

fn accuracy(
    cfg: &LoadConfig,
    weights: &[u32],
    metrics: Option<&MetricsView>,
    upstreams: &[UpstreamHits],
) -> Accuracy {
    let (source, scope, labelled, problem) = observed(cfg, weights.len(), metrics, upstreams);
    let hits: Vec<u64> = labelled.iter().map(|(_, h)| *h).collect();
    let total: u64 = hits.iter().sum();
    let expected = stats::expected_counts(weights, total);
    let arms: Vec<AccuracyArm> = labelled
        .iter()
        .zip(&expected)
        .map(|((label, h), e)| AccuracyArm {
            arm: label.clone(),
            hits: *h,
            share: ratio(*h as f64, total as f64),
            expected_share: ratio(*e, total as f64),
            expected: *e,
            deviation: *h as f64 - e,
        })
        .collect();
    let pass = problem.is_none()
        && total > 0
        && arms.iter().all(|a| match cfg.tolerance {
            Tolerance::Requests(t) => a.deviation.abs() < t + 1.0,
            Tolerance::Percent(p) => (a.share - a.expected_share).abs() * 100.0 <= p + 1e-9,
        });
    let problem = problem.or_else(|| (total == 0).then(|| "no arm hits observed".to_owned()));
    Accuracy {
        source,
        scope,
        weights: weights.to_vec(),
        chi_square: stats::chi_square(&hits, weights),
        worst_deviation: stats::worst_deviation(&hits, weights),
        arms,
        tolerance: cfg.tolerance,
        pass,
        problem,
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

type Observed = (String, Option<String>, Vec<(String, u64)>, Option<String>);

/// Picks the arm counts to judge: the metrics diff of one (route, rule), else the mock
/// upstream tally. Returns (source, scope, labelled hits, problem).
fn observed(
    cfg: &LoadConfig,
    k: usize,
    metrics: Option<&MetricsView>,
    upstreams: &[UpstreamHits],
) -> Observed {
    let arms: Vec<&ArmHits> = metrics
        .map(|m| {
            m.arms
                .iter()
                .filter(|a| cfg.route.as_ref().is_none_or(|r| *r == a.route))
                .collect()
        })
        .unwrap_or_default();
    if !arms.is_empty() {
        let mut scopes: Vec<(String, String)> = arms
            .iter()
            .map(|a| (a.route.clone(), a.rule.clone()))
            .collect();
        scopes.dedup();
        if scopes.len() > 1 {
            let list: Vec<String> = scopes.iter().map(|(r, u)| format!("{r}#{u}")).collect();
            return (
                "metrics".into(),
                None,
                Vec::new(),
                Some(format!(
                    "metrics show {} split rules ({}); choose one with --route",
                    scopes.len(),
                    list.join(", ")
                )),
            );
        }
        let (route, rule) = scopes.remove(0);
        let scope = Some(format!("route {route} rule {rule}"));
        let numeric = arms.iter().all(|a| a.arm.parse::<usize>().is_ok());
        if numeric {
            // Arms never hit have no sample: fill indexes 0..k with zeros.
            let mut hits = vec![0u64; k];
            let mut problem = None;
            for a in &arms {
                // All labels parsed as usize just above.
                let i: usize = a.arm.parse().unwrap_or(usize::MAX);
                match hits.get_mut(i) {
                    Some(h) => *h += a.hits,
                    None => problem = Some(format!("arm {i} was hit but --expect lists {k} arms")),
                }
            }
            let labelled = hits
                .into_iter()
                .enumerate()
                .map(|(i, h)| (i.to_string(), h))
                .collect();
            return ("metrics".into(), scope, labelled, problem);
        }
        let labelled: Vec<(String, u64)> = arms.iter().map(|a| (a.arm.clone(), a.hits)).collect();
        let problem = (labelled.len() != k).then(|| {
            format!(
                "--expect lists {k} arms but the metrics show {}",
                labelled.len()
            )
        });
        return ("metrics".into(), scope, labelled, problem);
    }
    let labelled: Vec<(String, u64)> = upstreams
        .iter()
        .map(|u| (format!("{} {}", u.name, u.path), u.hits))
        .collect();
    let problem = if labelled.is_empty() {
        Some("no split_arm_requests_total samples and no X-Split-Mock responses to count".into())
    } else if labelled.len() != k {
        Some(format!(
            "--expect lists {k} arms but responses came from {} upstreams",
            labelled.len()
        ))
    } else {
        None
    };
    ("upstream".into(), None, labelled, problem)
}

/// Human-readable report.
pub fn render_text(r: &LoadReport) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "split-sim load: {} {} × {} (concurrency {}) in {:.2} s, {:.0} req/s",
        r.method, r.url, r.planned, r.concurrency, r.elapsed_s, r.rate_rps
    );
    let statuses: Vec<String> = r
        .statuses
        .iter()
        .map(|(k, v)| format!("{k} × {v}"))
        .collect();
    let _ = writeln!(s, "responses: {} ({})", r.responses, statuses.join(", "));
    if r.errors > 0 {
        let kinds: Vec<String> = r
            .error_kinds
            .iter()
            .map(|(k, v)| format!("{k} × {v}"))
            .collect();
        let _ = writeln!(s, "errors: {} ({})", r.errors, kinds.join(", "));
    } else {
        let _ = writeln!(s, "errors: 0");
    }
    let l = r.latency_ms;
    let _ = writeln!(
        s,
        "latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        l.p50, l.p90, l.p99, l.max
    );
    if let Some(m) = &r.metrics {
        match &m.error {
            Some(e) => {
                let _ = writeln!(s, "metrics: {} unreadable ({e})", m.url);
            }
            None if m.arms.is_empty() => {
                let _ = writeln!(
                    s,
                    "metrics: no split_arm_requests_total change at {}",
                    m.url
                );
            }
            None => {
                let _ = writeln!(s, "arms (split_arm_requests_total increase):");
                let _ = writeln!(
                    s,
                    "  {:<24} {:>6} {:>8} {:>8}",
                    "route", "rule", "arm", "hits"
                );
                for a in &m.arms {
                    let _ = writeln!(
                        s,
                        "  {:<24} {:>6} {:>8} {:>8}",
                        a.route, a.rule, a.arm, a.hits
                    );
                }
            }
        }
    }
    if !r.upstreams.is_empty() {
        let _ = writeln!(s, "upstreams (X-Split-Mock):");
        for u in &r.upstreams {
            let _ = writeln!(s, "  {:<12} {:<28} {:>8}", u.name, u.path, u.hits);
        }
    }
    if let Some(a) = &r.accuracy {
        let _ = writeln!(
            s,
            "accuracy vs {:?} (from {}{}):",
            a.weights,
            a.source,
            a.scope
                .as_ref()
                .map(|x| format!(", {x}"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "  {:<28} {:>8} {:>8} {:>9} {:>10}",
            "arm", "hits", "share", "expected", "deviation"
        );
        for arm in &a.arms {
            let _ = writeln!(
                s,
                "  {:<28} {:>8} {:>7.2}% {:>8.2}% {:>+10.1}",
                arm.arm,
                arm.hits,
                arm.share * 100.0,
                arm.expected_share * 100.0,
                arm.deviation
            );
        }
        let tol = match a.tolerance {
            Tolerance::Requests(t) => format!("{t} requests"),
            Tolerance::Percent(p) => format!("{p}%"),
        };
        let _ = writeln!(
            s,
            "  chi-square {:.3} (df {}), p = {:.4}; worst deviation {:.1} requests; tolerance {tol}",
            a.chi_square.statistic, a.chi_square.dof, a.chi_square.p_value, a.worst_deviation
        );
        match &a.problem {
            Some(p) => {
                let _ = writeln!(s, "  FAIL: {p}");
            }
            None => {
                let _ = writeln!(
                    s,
                    "  {}",
                    if a.pass {
                        "PASS"
                    } else {
                        "FAIL: outside tolerance"
                    }
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_parses_both_units() {
        assert_eq!("0".parse(), Ok(Tolerance::Requests(0.0)));
        assert_eq!("1.5%".parse(), Ok(Tolerance::Percent(1.5)));
        assert!("-1".parse::<Tolerance>().is_err());
        assert!("x%".parse::<Tolerance>().is_err());
    }
}
