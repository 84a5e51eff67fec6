//! The `traffic-split` plugin (APISIX reference §1) in both accepted shapes.
//!
//! - APISIX schema: `rules[]{match[]{vars}, weighted_upstreams[]{upstream_id|upstream,
//!   weight}}`; a weight-only arm means the route's own upstream.
//! - The guide's shorthand: `rules[]` items with `weight` + `upstream` (+ `rewrite`) and no
//!   `weighted_upstreams` are the arms of **one** split, each with its own rewrite (APISIX
//!   silently never splits such a config; split does what the guide means).
//!
//! Extensions: an arm may carry `name` and `rewrite {uri, regex_uri, host, headers, body}`;
//! a rule may carry `balancer {algorithm: roundrobin|random|chash, hash_on, key, seed}`.
//! Unknown keys and duplicate arms are rejected with the field path.

use std::sync::Arc;

use crate::config::upstream::{HashOn, Upstream};
use crate::expr::Expr;
use crate::rewrite::Rewrite;
use crate::ConfigError;

/// What an arm forwards to.
#[derive(Debug, Clone, PartialEq)]
pub enum ArmTarget {
    /// Weight-only arm: the route's own upstream (route `upstream_id` > inline > service).
    RouteUpstream,
    /// `upstream_id` reference.
    UpstreamId(String),
    /// Inline upstream.
    Inline(Arc<Upstream>),
}

/// One weighted arm of a split rule.
#[derive(Debug, Clone)]
pub struct Arm {
    /// Optional name (used as the `arm` metric label instead of the index).
    pub name: Option<String>,
    /// Weight ≥ 0.
    pub weight: u32,
    /// Target.
    pub target: ArmTarget,
    /// Per-arm rewrite.
    pub rewrite: Option<Rewrite>,
}

/// How a rule picks among its arms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ArmBalancer {
    /// Exact deterministic round robin (default).
    #[default]
    RoundRobin,
    /// Seeded random.
    Random {
        /// ChaCha seed.
        seed: u64,
    },
    /// Sticky by key.
    Chash(HashOn),
}

/// One rule: match expressions (ORed; empty = always) and its arms.
#[derive(Debug, Clone)]
pub struct SplitRule {
    /// `match[]` entries, each a compiled `vars` expression; ORed.
    pub matches: Vec<Expr>,
    /// Arms in config order (1..=20).
    pub arms: Vec<Arm>,
    /// Arm balancer.
    pub balancer: ArmBalancer,
}

/// A validated `traffic-split` plugin config.
#[derive(Debug, Clone, Default)]
pub struct TrafficSplit {
    /// Rules in order; the first matching one wins.
    pub rules: Vec<SplitRule>,
}

impl TrafficSplit {
    /// Parses the plugin config object (value of `plugins["traffic-split"]`). Paths are
    /// relative (`rules[0].weighted_upstreams[1].weight`).
    pub fn from_json(value: &serde_json::Value) -> Result<TrafficSplit, ConfigError> {
        let _ = value;
        todo!("config::traffic_split::TrafficSplit::from_json")
    }
}
