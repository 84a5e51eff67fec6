//! Flags of `split-sim run`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;
use split_core::select::{PickInput, Select as _};

use super::traffic::{StickyTarget, TrafficSpec};
use super::{input, Change, RunConfig};
use crate::units::{parse_count, parse_duration};

/// The guide's 50/50 split route (used when no `--route`/`--config` is given).
pub const GUIDE_ROUTE: &str = include_str!("../../../testdata/guide/aimlapi-split.json");

/// `split-sim run`: simulate traffic through a split configuration offline.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Route JSON as sent to the Admin API (default: the guide's 50/50 route).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub route: Option<PathBuf>,
    /// Upstream JSON objects (with `id`) the route references (repeatable).
    #[arg(long = "upstream", value_name = "FILE")]
    pub upstreams: Vec<PathBuf>,
    /// Standalone apisix.yaml (or .json) with routes and upstreams.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the live configuration from this Admin API (e.g. http://127.0.0.1:9180).
    #[arg(long, value_name = "URL", conflicts_with_all = ["route", "config"])]
    pub from_admin: Option<String>,
    /// Admin API key for --from-admin.
    #[arg(long, env = "SPLIT_ADMIN_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Route id (default: the route file's id, or the first route with a split).
    #[arg(long)]
    pub id: Option<String>,
    /// Traffic-split rule whose weights --change edits and the plot shows.
    #[arg(long, default_value_t = 0)]
    pub rule: usize,
    /// Requests (k/m suffixes: 10m = 10,000,000).
    #[arg(short = 'n', long = "requests", default_value = "1m", value_parser = parse_count)]
    pub requests: u64,
    /// Threads (the results do not depend on it).
    #[arg(long, default_value_t = default_threads())]
    pub threads: usize,
    /// Request method (default: the route's first method, else POST).
    #[arg(short = 'X', long)]
    pub method: Option<String>,
    /// Request path, may carry `?query` (default: the route's uri).
    #[arg(long)]
    pub path: Option<String>,
    /// Request Host (default: the route's first host).
    #[arg(long)]
    pub host: Option<String>,
    /// Request header `name:value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Models drawn uniformly for the JSON body `model` field.
    #[arg(long = "model", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Distinct sticky keys (users) drawn uniformly per request.
    #[arg(long, default_value = "0", value_parser = parse_count)]
    pub sticky_keys: u64,
    /// Header carrying the sticky key (default: what the rule's chash reads).
    #[arg(long, value_name = "NAME")]
    pub sticky_header: Option<String>,
    /// Weight change `AT:W1,W2,...` (e.g. 5m:80,20), repeatable.
    #[arg(long = "change", value_name = "AT:WEIGHTS")]
    pub changes: Vec<String>,
    /// Seed of the traffic (model and key draws) and of the APISIX model.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON (byte-identical for the same seed and config).
    #[arg(long)]
    pub json: bool,
    /// Write the cumulative share plot here.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Measure match + select throughput instead of simulating.
    #[arg(long)]
    pub bench: bool,
    /// Length of each benchmark phase.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub bench_time: Duration,
    /// Compare the worst deviation with a model of APISIX's per-worker selection.
    #[arg(long)]
    pub compare_apisix: bool,
    /// nginx workers in the APISIX model.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Trials of the APISIX model.
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Parses `5m:80,20`.
pub fn parse_change(text: &str) -> anyhow::Result<Change> {
    let (at, weights) = text
        .split_once(':')
        .with_context(|| format!("--change {text:?}: expected AT:W1,W2 (e.g. 5m:80,20)"))?;
    let at = parse_count(at)?;
    let weights = weights
        .split(',')
        .map(|w| {
            w.trim().parse::<u32>().with_context(|| {
                format!("--change {text:?}: weight {w:?} is not a non-negative integer")
            })
        })
        .collect::<anyhow::Result<Vec<u32>>>()?;
    Ok(Change { at, weights })
}

impl RunArgs {
    /// Builds the run configuration (reads the files).
    pub fn to_config(&self) -> anyhow::Result<RunConfig> {
        let set = match (&self.route, &self.config) {
            _ if self.from_admin.is_some() => {
                let url = self.from_admin.as_deref().unwrap_or_default();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(super::admin::fetch(url, self.key.as_deref()))
                    .with_context(|| format!("--from-admin {url}"))?
            }
            (_, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                input::from_standalone(path, &text)?
            }
            (route, None) => {
                let text = match route {
                    Some(path) => std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                    None => GUIDE_ROUTE.to_owned(),
                };
                let mut ups = Vec::new();
                for p in &self.upstreams {
                    let t = std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read {}", p.display()))?;
                    let v: Value = serde_json::from_str(&t)
                        .with_context(|| format!("{} is not JSON", p.display()))?;
                    ups.push(v);
                }
                input::from_route_json(&text, self.id.as_deref(), &ups)?
            }
        };
        let method = match &self.method {
            Some(m) => Some(
                Method::from_bytes(m.as_bytes())
                    .with_context(|| format!("--method {m:?} is not an HTTP method"))?,
            ),
            None => None,
        };
        let mut headers = Vec::new();
        for h in &self.headers {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?}: expected name:value"))?;
            headers.push((
                HeaderName::from_bytes(k.trim().as_bytes())
                    .with_context(|| format!("--header {h:?}: bad name"))?,
                HeaderValue::from_str(v.trim())
                    .with_context(|| format!("--header {h:?}: bad value"))?,
            ));
        }
        let sticky = match &self.sticky_header {
            Some(h) => Some(StickyTarget::Header(
                HeaderName::from_bytes(h.as_bytes())
                    .with_context(|| format!("--sticky-header {h:?}: bad header name"))?,
            )),
            None => None,
        };
        let changes = self
            .changes
            .iter()
            .map(|c| parse_change(c))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(RunConfig {
            set,
            route_id: self.id.clone(),
            rule: self.rule,
            requests: self.requests,
            threads: self.threads.max(1),
            traffic: TrafficSpec {
                method,
                path: self.path.clone(),
                host: self.host.clone(),
                headers,
                models: self.models.clone(),
                sticky_keys: self.sticky_keys,
                sticky,
                seed: self.seed,
            },
            changes,
            progress: true,
        })
    }
}

/// Runs `split-sim run`; returns the exit code.
pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let cfg = args.to_config()?;
    if args.bench {
        return bench(args, &cfg);
    }
    if args.compare_apisix {
        return compare(args, &cfg);
    }
    let started = std::time::Instant::now();
    let sim = super::simulate(&cfg)?;
    let elapsed = started.elapsed();
    if let Some(path) = &args.svg {
        std::fs::write(path, sim.svg())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if args.json {
        crate::cli::emit(&format!("{}\n", serde_json::to_string_pretty(&sim.report)?))?;
    } else {
        crate::cli::emit(&super::report::render_text(&sim.report))?;
        let secs = elapsed.as_secs_f64();
        crate::cli::emit(&format!(
            "\nsimulated {} requests in {:.2} s ({:.1} M requests/s, {} threads)\n",
            cfg.requests,
            secs,
            cfg.requests as f64 / secs.max(1e-9) / 1e6,
            cfg.threads
        ))?;
    }
    Ok(0)
}

fn target(cfg: &RunConfig) -> anyhow::Result<(split_core::snapshot::Snapshot, String, usize)> {
    let snap = super::compile(cfg.set.clone())?;
    let (id, rule) = input::target(&snap, cfg.route_id.as_deref(), cfg.rule)?;
    Ok((snap, id, rule))
}

fn bench(args: &RunArgs, cfg: &RunConfig) -> anyhow::Result<i32> {
    let (snap, id, rule) = target(cfg)?;
    let route = snap.route(&id).context("target route missing")?;
    let traffic = super::traffic::Traffic::new(&cfg.traffic, route, rule)?;
    let r = super::bench::bench(&snap, &traffic, cfg.threads, args.bench_time);
    if args.json {
        crate::cli::emit(&format!("{}\n", serde_json::to_string_pretty(&r)?))?;
    } else {
        crate::cli::emit(&format!(
            "match + select (Snapshot::find + decide, shared atomic ticket), route {id:?}:\n  \
             1 thread: {:.1} M decisions/s\n  {} threads: {:.1} M decisions/s{}\n",
            r.single_thread_rps / 1e6,
            r.threads,
            r.multi_thread_rps / 1e6,
            if r.optimized {
                ""
            } else {
                "\n  (debug build: use --release for real numbers)"
            }
        ))?;
    }
    Ok(0)
}

fn compare(args: &RunArgs, cfg: &RunConfig) -> anyhow::Result<i32> {
    let (snap, id, rule) = target(cfg)?;
    let r = snap
        .route(&id)
        .and_then(|r| r.rules.get(rule))
        .with_context(|| format!("route {id:?} has no rule {rule}"))?;
    if r.weights.len() < 2 {
        bail!("route {id:?} rule {rule} has one arm: nothing to compare");
    }
    let pick = |t: u64| {
        r.selector.pick(PickInput {
            ticket: t,
            key: None,
        })
    };
    let c = super::apisix::compare(
        &r.weights,
        args.workers,
        args.trials,
        args.seed,
        &[100, 1_000, 1_000_000],
        &pick,
    );
    if args.json {
        crate::cli::emit(&format!("{}\n", serde_json::to_string_pretty(&c)?))?;
    } else {
        crate::cli::emit(&super::apisix::render_table(&c))?;
    }
    Ok(0)
}
