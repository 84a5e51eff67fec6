//! A compiled, immutable configuration: resolves references, builds the route table and
//! the selectors, and answers "where does this request go".
//!
//! The proxy swaps `Arc<Snapshot>`s atomically; the simulator builds one from a route
//! file. Shared mutable state (the per-rule ticket counters) lives outside, keyed by
//! [`RuleKey`], so a config edit that leaves a rule's arms unchanged keeps its sequence.
//!
//! Semantics (APISIX reference §1, §3, with the differences design.md lists):
//! - A route's own upstream: route `upstream_id` > inline `upstream` > service upstream.
//! - Plugins merge by name: service < plugin_config < route.
//! - Hosts: the route's, or its service's when the route has none.
//! - traffic-split: the first rule whose `match` entries (ORed) pass wins; no `match`, or
//!   `match: []`, always passes. APISIX carries its "passed" flag over between rules, so
//!   there `match: []` only works as the first rule; split does not replicate that quirk.
//!   No rule passing → the route's own upstream. A weight-only arm → the route's own
//!   upstream (`None` → the proxy answers 503).
//! - Rewrites apply in order: the route's `proxy-rewrite`, then the arm's `rewrite`.
//! - Node plans: the selector's pick in the highest-priority group, then that group in
//!   config order, then lower groups; at most `retries + 1` nodes; weight-0 nodes only
//!   when every node has weight 0.
//! - Dangling `upstream_id` / `service_id` / `plugin_config_id` (including traffic-split
//!   arms) fail compilation, so an Admin API write that would dangle is a 400.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::plugins::Plugins;
use crate::config::route::Route;
use crate::config::upstream::{Balancer, HashOn, PassHost, Scheme, Timeout, Upstream};
use crate::config::ResourceKind;
use crate::matcher::{MatchOutcome, RouteTable};
use crate::request::{Request, VarError};
use crate::rewrite::Rewrite;
use crate::select::{ArmIndex, PickInput, Select, Selector};
use crate::ConfigError;

mod build;
mod objects;
#[cfg(test)]
mod plan_tests;
mod references;
mod rewrites;

pub use objects::validate_object;
#[cfg(feature = "schema")]
pub(crate) use objects::{RawGlobalRule, RawPluginConfig, GLOBAL_RULE_REFUSED};
pub use references::{referrers, Referrer};
pub use rewrites::Rewrites;

#[cfg(test)]
pub(crate) use build::compile_upstream;

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
    /// Node indexes grouped by priority, highest first (see `priority_groups`);
    /// computed once at compile time so request plans allocate nothing but the plan.
    pub groups: Vec<Vec<usize>>,
    /// Each node's own Host header value (see [`node_host_header`]), by node index;
    /// computed once so requests do not format it.
    pub node_hosts: Vec<String>,
    /// Each node's `host` as shared text, by node index: a proxy keys its connections by
    /// it, and cloning it per request is a reference count, not an allocation.
    pub node_names: Vec<Arc<str>>,
}

/// A node's Host header value: the host (IPv6 in brackets) with `:port` unless the port
/// is the scheme's default.
pub fn node_host_header(host: &str, port: u16, scheme: Scheme) -> String {
    let bracket = host.contains(':') && !host.starts_with('[');
    let mut out = String::with_capacity(host.len() + 8);
    if bracket {
        out.push('[');
    }
    out.push_str(host);
    if bracket {
        out.push(']');
    }
    if port != scheme.default_port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out
}

impl CompiledUpstream {
    /// The Host header to send to node `node`: `pass_host: pass` keeps the client's
    /// (`client_host`), `node` uses [`node_host_header`], `rewrite` uses `upstream_host`.
    /// With `pass` and no client Host, the node's value. A rewrite's own `host` is
    /// applied by the caller on top of this. An index past the nodes gives `""`.
    pub fn host_header<'a>(&'a self, node: usize, client_host: Option<&'a str>) -> &'a str {
        let own = self.node_hosts.get(node).map_or("", String::as_str);
        match &self.upstream.pass_host {
            PassHost::Pass => client_host.unwrap_or(own),
            PassHost::Rewrite(host) => host,
            PassHost::Node => own,
        }
    }

    /// Node indexes to try in order: the pick for `ticket`/`key` first, then the others
    /// (same priority group in config order, then lower priority groups), at most
    /// `effective_retries() + 1` entries. Empty nodes → empty plan (502).
    pub fn plan(&self, ticket: u64, key: Option<&[u8]>) -> Vec<usize> {
        let nodes = &self.upstream.nodes;
        let groups = &self.groups;
        let Some(top) = groups.first() else {
            return Vec::new();
        };
        let limit = usize::try_from(self.upstream.effective_retries())
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let pick = self
            .selector
            .pick(PickInput { ticket, key })
            .and_then(|i| top.get(i).copied());
        let mut plan = Vec::with_capacity(nodes.len().min(limit));
        plan.extend(pick);
        let rest = groups
            .iter()
            .flatten()
            .copied()
            .filter(|i| Some(*i) != pick);
        plan.extend(rest);
        plan.truncate(limit);
        plan
    }

    /// The sticky key for a `chash` upstream (`hash_on` + `key`) from `req`; `None` for
    /// other balancers or when the request has no such value (the plan then falls back
    /// to round robin).
    pub fn hash_key(&self, req: &Request<'_>) -> Result<Option<String>, VarError> {
        match &self.upstream.balancer {
            Balancer::Chash(hash_on) => hash_key(hash_on, req),
            Balancer::RoundRobin | Balancer::Random { .. } => Ok(None),
        }
    }
}

/// Node indexes grouped by priority, highest first, config order inside a group. Nodes
/// with weight 0 are left out unless every node has weight 0. The selector of a
/// [`CompiledUpstream`] is built over the first group.
pub(crate) fn priority_groups(nodes: &[crate::config::upstream::Node]) -> Vec<Vec<usize>> {
    let any_positive = nodes.iter().any(|n| n.weight > 0);
    let eligible: Vec<usize> = (0..nodes.len())
        .filter(|&i| !any_positive || nodes[i].weight > 0)
        .collect();
    let mut priorities: Vec<i32> = eligible.iter().map(|&i| nodes[i].priority).collect();
    priorities.sort_unstable_by(|a, b| b.cmp(a));
    priorities.dedup();
    priorities
        .into_iter()
        .map(|p| {
            eligible
                .iter()
                .copied()
                .filter(|&i| nodes[i].priority == p)
                .collect()
        })
        .collect()
}

/// The sticky key `hash_on` names, read from `req`. `None` when absent or empty.
pub fn hash_key(hash_on: &HashOn, req: &Request<'_>) -> Result<Option<String>, VarError> {
    let value: Option<Cow<'_, str>> = match hash_on {
        HashOn::Vars(name) => req.var(name)?,
        HashOn::Header(name) => req
            .headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed),
        HashOn::Cookie(name) => req.var(&format!("cookie_{name}"))?,
        HashOn::Consumer => req.consumer.map(Cow::Borrowed),
        HashOn::VarsCombinations(template) => Some(Cow::Owned(expand_vars(template, req)?)),
    };
    Ok(value.filter(|v| !v.is_empty()).map(Cow::into_owned))
}

/// Expands `$name` references of a `vars_combinations` key; absent vars become empty.
fn expand_vars(template: &str, req: &Request<'_>) -> Result<String, VarError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if len == 0 {
            out.push('$');
        } else if let Some(v) = req.var(&after[..len])? {
            out.push_str(&v);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One arm after compilation.
#[derive(Debug, Clone)]
pub struct CompiledArm {
    /// Metric label: the arm's `name`, or its index.
    pub label: Arc<str>,
    /// Resolved upstream; `None` when the arm is the route upstream and the route has
    /// none (→ 503 `missing upstream configuration in Route or Service`).
    pub upstream: Option<Arc<CompiledUpstream>>,
    /// Per-arm rewrite.
    pub rewrite: Option<Rewrite>,
    /// LLM options of the arm.
    pub llm: crate::llm::ArmLlm,
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
    /// Where the sticky key comes from when the rule's balancer is `chash`.
    pub hash_on: Option<HashOn>,
    /// Canary guardrail of the rule.
    pub guard: Option<crate::guard::Guard>,
    /// Identity of the rule's sample-ratio-mismatch counts (route, index, weights).
    pub srm: crate::stats::srm::SrmKey,
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
    /// `prometheus` plugin settings (export toggle, `route` label).
    pub metrics: crate::stats::route_metrics::RouteMetrics,
}

/// Where one request goes.
#[derive(Debug, Clone)]
pub struct Decision<'a> {
    /// Matched split rule index, if any.
    pub rule: Option<usize>,
    /// Picked arm index within the rule, if any.
    pub arm: Option<ArmIndex>,
    /// Arm label (`name` or index), if any.
    pub arm_label: Option<&'a Arc<str>>,
    /// Upstream to forward to; `None` → 503.
    pub upstream: Option<&'a Arc<CompiledUpstream>>,
    /// Rewrites to apply in order: route `proxy-rewrite`, then the arm's.
    pub rewrites: Rewrites<'a>,
}

impl CompiledRoute {
    /// Picks the rule and arm for `req`. `ticket` returns the next ticket for a rule
    /// (proxy: atomic `fetch_add`; simulator: a counter) and is called at most once.
    pub fn decide<'s>(
        &'s self,
        req: &Request<'_>,
        ticket: &mut dyn FnMut(RuleKey) -> u64,
    ) -> Result<Decision<'s>, VarError> {
        // A rule without `match` (or with `match: []`) always matches. APISIX's quirk of
        // carrying the "passed" flag over, which makes `match: []` match only as the first
        // rule, is deliberately not replicated: an empty match list is a catch-all here.
        // traffic-split `vars` may test `route_id`, which is this route.
        let req = &Request {
            route_id: Some(self.route.id.as_str()),
            ..req.clone()
        };
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule.matches(req)? {
                continue;
            }
            let key = match &rule.hash_on {
                Some(hash_on) => hash_key(hash_on, req)?,
                None => None,
            };
            // A chash pick with a key needs no ticket; everything else takes one.
            let ticket = if key.is_some() { 0 } else { ticket(rule.key) };
            let input = PickInput {
                ticket,
                key: key.as_deref().map(str::as_bytes),
            };
            // Rules have 1..=20 arms (validated), so a pick always exists.
            let Some(arm_index) = rule.selector.pick(input) else {
                continue;
            };
            let Some(arm) = rule.arms.get(arm_index) else {
                continue;
            };
            let rewrites = Rewrites::new(self.plugins.proxy_rewrite.as_ref(), arm.rewrite.as_ref());
            return Ok(Decision {
                rule: Some(index),
                arm: Some(arm_index),
                arm_label: Some(&arm.label),
                upstream: arm.upstream.as_ref(),
                rewrites,
            });
        }
        Ok(Decision {
            rule: None,
            arm: None,
            arm_label: None,
            upstream: self.upstream.as_ref(),
            rewrites: Rewrites::new(self.plugins.proxy_rewrite.as_ref(), None),
        })
    }

    /// The timeout for a request forwarded to `upstream`: the route's `timeout`
    /// overrides the upstream's (APISIX); `None` means the proxy's defaults.
    pub fn effective_timeout(&self, upstream: &CompiledUpstream) -> Option<Timeout> {
        self.route.timeout.or(upstream.upstream.timeout)
    }
}

impl CompiledRule {
    /// True if any `match` entry passes (ORed); no entries = always.
    pub fn matches(&self, req: &Request<'_>) -> Result<bool, VarError> {
        if self.matches.is_empty() {
            return Ok(true);
        }
        for expr in &self.matches {
            if expr.eval(req)? {
                return Ok(true);
            }
        }
        Ok(false)
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
    /// Consumers by `key-auth` key and by username.
    pub consumers: Arc<crate::key_auth::KeyAuthIndex>,
    /// Route table over the enabled routes.
    table: RouteTable,
    /// Table index → index into `routes`.
    table_routes: Vec<usize>,
}

impl Snapshot {
    /// Validates every object and reference and compiles. The first error names the
    /// object (kind, id) and the field path.
    ///
    /// Routes are given to the route table in id order, so among routes with the same
    /// path and priority the smaller id wins.
    pub fn compile(set: ConfigSet) -> Result<Snapshot, CompileError> {
        build::compile(set)
    }

    /// An empty snapshot: every request is 404.
    pub fn empty() -> Snapshot {
        Snapshot {
            routes: Vec::new(),
            upstreams: BTreeMap::new(),
            source: Arc::new(ConfigSet::default()),
            consumers: Arc::default(),
            table: RouteTable::build(Vec::new()),
            table_routes: Vec::new(),
        }
    }

    /// Finds the route for a request.
    pub fn find(&self, req: &Request<'_>) -> Lookup<'_> {
        match self.table.find(req) {
            MatchOutcome::Found(i) => {
                match self.table_routes.get(i).and_then(|&r| self.routes.get(r)) {
                    Some(route) => Lookup::Found(route),
                    None => Lookup::NotFound,
                }
            }
            MatchOutcome::NeedBody => Lookup::NeedBody,
            MatchOutcome::NotFound => Lookup::NotFound,
        }
    }

    /// True if a route's `vars` may read the request body.
    pub fn any_needs_body(&self) -> bool {
        self.table.any_needs_body()
    }

    /// The compiled route with `id`, if any (enabled or not).
    pub fn route(&self, id: &str) -> Option<&CompiledRoute> {
        self.routes.iter().find(|r| r.route.id == id)
    }
}
