//! `split-sim run`: synthetic traffic through the gateway's own decision code.
//!
//! The configuration is compiled with `Snapshot::compile`; every request goes through
//! `Snapshot::find` and `CompiledRoute::decide` with a plain `u64` ticket per `RuleKey`,
//! exactly the proxy's path with its atomic counters replaced by a counter. `--change`
//! rebuilds the snapshot with new weights on the target rule at given request numbers.
//! The same seed and configuration give the same report, byte for byte, on any number
//! of threads.

pub mod admin;
pub mod analysis;
pub mod apisix;
pub mod bench;
pub mod cli;
pub mod engine;
pub mod input;
pub mod report;
pub mod svg;
pub mod traffic;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use split_core::select::Selector;
use split_core::snapshot::{ConfigSet, Lookup, RuleKey, Snapshot};

use analysis::Segment;
use engine::{decode, Groups, TicketBook, GROUP_ERROR, GROUP_NOT_FOUND};
use report::{ChangeReport, KeyMove, RunReport};
use traffic::{Traffic, TrafficSpec};

/// Most requests one run records (4 bytes each).
pub const MAX_REQUESTS: u64 = 500_000_000;
/// Most sticky keys checked per weight change.
pub const MAX_KEYS_CHECKED: u64 = 1_000_000;

/// A weight change of the target rule at a request number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// First request served with the new weights.
    pub at: u64,
    /// New weights, one per arm.
    pub weights: Vec<u32>,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Raw configuration.
    pub set: ConfigSet,
    /// Target route (default: the first route with a split).
    pub route_id: Option<String>,
    /// Target rule index.
    pub rule: usize,
    /// Requests.
    pub requests: u64,
    /// Threads (results do not depend on it).
    pub threads: usize,
    /// Traffic model.
    pub traffic: TrafficSpec,
    /// Weight changes.
    pub changes: Vec<Change>,
    /// Draw a progress bar on a terminal.
    pub progress: bool,
}

/// A finished run: the report and the recorded outcomes (for the SVG).
#[derive(Debug, Clone)]
pub struct Simulation {
    /// The report.
    pub report: RunReport,
    outcomes: Vec<u32>,
    target_group: u32,
    labels: Vec<String>,
}

impl Simulation {
    /// The cumulative-share plot of the target rule.
    pub fn svg(&self) -> String {
        let changes: Vec<u64> = self.report.changes.iter().map(|c| c.at).collect();
        let title = format!(
            "route {} rule {}: cumulative share per arm ({} requests, seed {})",
            self.report.route, self.report.rule, self.report.requests, self.report.seed
        );
        svg::render(
            &self.outcomes,
            self.target_group,
            &self.labels,
            &changes,
            &title,
        )
    }
}

/// Compiles `set`, naming the failing object and field.
pub fn compile(set: ConfigSet) -> anyhow::Result<Snapshot> {
    Snapshot::compile(set).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

/// Runs the simulation.
pub fn simulate(cfg: &RunConfig) -> anyhow::Result<Simulation> {
    if cfg.requests > MAX_REQUESTS {
        bail!(
            "-n {} is more than the {MAX_REQUESTS} requests one run records",
            cfg.requests
        );
    }
    let first = compile(cfg.set.clone())?;
    let (route_id, rule) = input::target(&first, cfg.route_id.as_deref(), cfg.rule)?;
    let route = first
        .route(&route_id)
        .with_context(|| format!("route {route_id:?} vanished"))?;
    let target_rule = route
        .rules
        .get(rule)
        .with_context(|| format!("route {route_id:?} has no traffic-split rule"))?;
    let traffic = Traffic::new(&cfg.traffic, route, rule)?;
    let groups = Groups::new(&first);

    let mut changes = cfg.changes.clone();
    changes.sort_by_key(|c| c.at);
    for pair in changes.windows(2) {
        if pair[0].at == pair[1].at {
            bail!("two --change at request {}", pair[0].at);
        }
    }
    changes.retain(|c| c.at > 0 && c.at < cfg.requests);
    let mut snapshots = vec![first.clone()];
    for c in &changes {
        let set = input::with_weights(&cfg.set, &route_id, rule, &c.weights)?;
        snapshots.push(compile(set).with_context(|| format!("--change at {}", c.at))?);
    }
    let mut bounds: Vec<u64> = vec![0];
    bounds.extend(changes.iter().map(|c| c.at));
    bounds.push(cfg.requests);

    let progress = if cfg.progress && std::io::stderr().is_terminal() {
        // Threaded segments decide every request twice (counting pass, then outcomes).
        let work: u64 = bounds
            .windows(2)
            .map(|b| engine::work(b[1] - b[0], cfg.threads))
            .sum();
        let pb = ProgressBar::new(work);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {percent}% of {human_len} decisions, eta {eta}")
        {
            pb.set_style(style);
        }
        pb
    } else {
        ProgressBar::hidden()
    };

    let mut outcomes = vec![0u32; cfg.requests as usize];
    let mut book = TicketBook::default();
    let mut segments = Vec::new();
    let ctx_groups = &groups;
    for (s, snap) in snapshots.iter().enumerate() {
        let range = bounds[s]..bounds[s + 1];
        let out = &mut outcomes[range.start as usize..range.end as usize];
        let sim = engine::Sim {
            snapshot: snap,
            traffic: &traffic,
            groups: ctx_groups,
        };
        engine::run_segment(&sim, range.clone(), out, &mut book, cfg.threads, &progress);
        segments.push(Segment {
            range,
            weights: rule_weights(snap, &groups),
        });
    }
    progress.finish_and_clear();

    let mut not_found = 0;
    let mut errors = 0;
    for &c in &outcomes {
        match decode(c).0 {
            GROUP_NOT_FOUND => not_found += 1,
            GROUP_ERROR => errors += 1,
            _ => {}
        }
    }
    let key_moves = if target_rule.hash_on.is_some() && traffic.sticky_keys() > 0 {
        key_moves(&snapshots, &changes, &traffic, &route_id, rule)
    } else {
        Vec::new()
    };
    let target_group = groups
        .find(&route_id, Some(rule))
        .with_context(|| format!("route {route_id:?} rule {rule} has no outcome group"))?;
    let report = RunReport {
        seed: cfg.traffic.seed,
        requests: cfg.requests,
        route: route_id.clone(),
        rule,
        selector: selector_name(&target_rule.selector).to_owned(),
        weights: target_rule.weights.clone(),
        changes: changes
            .iter()
            .map(|c| ChangeReport {
                at: c.at,
                weights: c.weights.clone(),
            })
            .collect(),
        sticky_keys: traffic.sticky_keys(),
        not_found,
        errors,
        groups: analysis::group_reports(&outcomes, &segments, &groups),
        key_moves,
    };
    Ok(Simulation {
        report,
        outcomes,
        target_group,
        labels: target_rule
            .arms
            .iter()
            .map(|a| a.label.to_string())
            .collect(),
    })
}

/// Weights of every rule group in `snap`.
fn rule_weights(snap: &Snapshot, groups: &Groups) -> BTreeMap<u32, Vec<u32>> {
    let mut out = BTreeMap::new();
    for r in &snap.routes {
        for (i, rule) in r.rules.iter().enumerate() {
            if let Some(g) = groups.find(&r.route.id, Some(i)) {
                out.insert(g, rule.weights.clone());
            }
        }
    }
    out
}

/// The selector's config name.
pub fn selector_name(s: &Selector) -> &'static str {
    match s {
        Selector::RoundRobin(_) => "roundrobin",
        Selector::Random(_) => "random",
        Selector::Chash(..) => "chash",
    }
}

/// The target rule's arm for a request carrying sticky key `key` under `snap`; `None`
/// when the request does not reach that rule.
fn arm_for_key(
    snap: &Snapshot,
    traffic: &Traffic,
    route_id: &str,
    rule: usize,
    key: u64,
) -> Option<usize> {
    traffic.with_key(0, key, |req| match snap.find(req) {
        Lookup::Found(route) if route.route.id == route_id => {
            // A keyed chash pick takes no ticket; 0 serves any fallback.
            let mut ticket = |_k: RuleKey| 0;
            let d = route.decide(req, &mut ticket).ok()?;
            if d.rule == Some(rule) {
                d.arm
            } else {
                None
            }
        }
        _ => None,
    })
}

fn shares(weights: &[u32]) -> Vec<f64> {
    crate::stats::expected_counts(weights, 1)
}

fn key_moves(
    snapshots: &[Snapshot],
    changes: &[Change],
    traffic: &Traffic,
    route_id: &str,
    rule: usize,
) -> Vec<KeyMove> {
    let keys = traffic.sticky_keys().min(MAX_KEYS_CHECKED);
    let mut out = Vec::new();
    for (c, pair) in changes.iter().zip(snapshots.windows(2)) {
        let (old, new) = (&pair[0], &pair[1]);
        let mut checked = 0u64;
        let mut moved = 0u64;
        for k in 0..keys {
            let a = arm_for_key(old, traffic, route_id, rule, k);
            let b = arm_for_key(new, traffic, route_id, rule, k);
            if let (Some(a), Some(b)) = (a, b) {
                checked += 1;
                moved += u64::from(a != b);
            }
        }
        let weights_of = |s: &Snapshot| {
            s.route(route_id)
                .and_then(|r| r.rules.get(rule))
                .map(|r| r.weights.clone())
                .unwrap_or_default()
        };
        let (wo, wn) = (shares(&weights_of(old)), shares(&weights_of(new)));
        let minimum: f64 = wo.iter().zip(&wn).map(|(o, n)| (o - n).max(0.0)).sum();
        out.push(KeyMove {
            at: c.at,
            keys: checked,
            moved,
            moved_share: if checked > 0 {
                moved as f64 / checked as f64
            } else {
                0.0
            },
            minimum_share: minimum,
        });
    }
    out
}
