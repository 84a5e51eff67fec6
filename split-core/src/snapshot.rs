//! A compiled, immutable configuration: resolves references, builds the route table and
//! the selectors, and answers "where does this request go".
//!
//! The proxy swaps `Arc<Snapshot>`s atomically; the simulator builds one from a route
//! file. Shared mutable state (the per-rule ticket counters) lives outside, keyed by
//! [`RuleKey`], so a config edit that leaves a rule's arms unchanged keeps its sequence.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::plugins::Plugins;
use crate::config::route::Route;
use crate::config::upstream::Upstream;
use crate::config::ResourceKind;
use crate::request::{Request, VarError};
use crate::rewrite::Rewrite;
use crate::select::{ArmIndex, Selector};
use crate::ConfigError;

/// Raw stored objects by kind and id, exactly as the Admin API stores them (JSON values
/// including `id`, `create_time`, `update_time`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSet {
    /// kind → id → object.
    pub objects: BTreeMap<ResourceKind, BTreeMap<String, serde_json::Value>>,
}

/// Stable identity of a split rule's state: hash of route id, rule index, and the
/// canonical JSON of the rule's arms and balancer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleKey(pub u64);

/// Stable identity of an upstream's node-selection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamKey(pub u64);

/// A compile error: which object failed and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} {id}: {error}")]
pub struct CompileError {
    /// Kind of the offending object.
    pub kind: ResourceKind,
    /// Its id.
    pub id: String,
    /// The field-path error.
    pub error: ConfigError,
}

/// An upstream with its node selector.
#[derive(Debug, Clone)]
pub struct CompiledUpstream {
    /// The validated upstream.
    pub upstream: Arc<Upstream>,
    /// Key for the node ticket counter.
    pub key: UpstreamKey,
    /// Node selector over the highest priority group.
    pub selector: Selector,
}

impl CompiledUpstream {
    /// Node indexes to try in order: the pick for `ticket`/`key` first, then the others
    /// (same priority group in config order, then lower priority groups), at most
    /// `effective_retries() + 1` entries. Empty nodes → empty plan (502).
    pub fn plan(&self, ticket: u64, key: Option<&[u8]>) -> Vec<usize> {
        let _ = (ticket, key);
        todo!("snapshot::CompiledUpstream::plan")
    }
}

/// One arm after compilation.
#[derive(Debug, Clone)]
pub struct CompiledArm {
    /// Metric label: the arm's `name`, or its index.
    pub label: String,
    /// Resolved upstream; `None` when the arm is the route upstream and the route has
    /// none (→ 503 `missing upstream configuration in Route or Service`).
    pub upstream: Option<Arc<CompiledUpstream>>,
    /// Per-arm rewrite.
    pub rewrite: Option<Rewrite>,
}

/// One traffic-split rule after compilation.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// State key.
    pub key: RuleKey,
    /// ORed match expressions (empty = always).
    pub matches: Vec<crate::expr::Expr>,
    /// Arm selector.
    pub selector: Selector,
    /// Arms.
    pub arms: Vec<CompiledArm>,
    /// Configured weights, in arm order (for accounting).
    pub weights: Vec<u32>,
}

/// A route after compilation (service and plugin_config merged in).
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    /// The route.
    pub route: Arc<Route>,
    /// Effective plugins (service < plugin_config < route).
    pub plugins: Plugins,
    /// Resolved own upstream (route `upstream_id` > inline > service).
    pub upstream: Option<Arc<CompiledUpstream>>,
    /// Split rules.
    pub rules: Vec<CompiledRule>,
}

/// Where one request goes.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// Matched split rule index, if any.
    pub rule: Option<usize>,
    /// Picked arm index within the rule, if any.
    pub arm: Option<ArmIndex>,
    /// Arm label (`name` or index), if any.
    pub arm_label: Option<&'a str>,
    /// Upstream to forward to; `None` → 503.
    pub upstream: Option<&'a Arc<CompiledUpstream>>,
    /// Rewrites to apply in order: route `proxy-rewrite`, then the arm's.
    pub rewrites: Vec<&'a Rewrite>,
}

impl CompiledRoute {
    /// Picks the rule and arm for `req`. `ticket` returns the next ticket for a rule
    /// (proxy: atomic `fetch_add`; simulator: a counter) and is called at most once.
    pub fn decide<'s>(
        &'s self,
        req: &Request<'_>,
        ticket: &mut dyn FnMut(RuleKey) -> u64,
    ) -> Result<Decision<'s>, VarError> {
        let _ = (req, ticket);
        todo!("snapshot::CompiledRoute::decide")
    }
}

/// Lookup result.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// The winning route.
    Found(&'a CompiledRoute),
    /// Read the body and ask again.
    NeedBody,
    /// 404.
    NotFound,
}

/// An immutable compiled configuration.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Routes, in the order given to the table.
    pub routes: Vec<CompiledRoute>,
    /// Upstream resources by id.
    pub upstreams: BTreeMap<String, Arc<CompiledUpstream>>,
    /// The source set.
    pub source: Arc<ConfigSet>,
}

impl Snapshot {
    /// Validates every object and reference and compiles. The first error names the
    /// object (kind, id) and the field path.
    pub fn compile(set: ConfigSet) -> Result<Snapshot, CompileError> {
        let _ = set;
        todo!("snapshot::Snapshot::compile")
    }

    /// Finds the route for a request.
    pub fn find(&self, req: &Request<'_>) -> Lookup<'_> {
        let _ = req;
        todo!("snapshot::Snapshot::find")
    }
}

/// Validates one object of `kind` on its own (schema only, no references); the Admin
/// API's first check on a write.
pub fn validate_object(
    kind: ResourceKind,
    id: &str,
    value: &serde_json::Value,
) -> Result<(), ConfigError> {
    let _ = (kind, id, value);
    todo!("snapshot::validate_object")
}
