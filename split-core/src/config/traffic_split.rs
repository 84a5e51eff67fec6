//! The `traffic-split` plugin (APISIX reference §1) in both accepted shapes.
//!
//! - APISIX schema: `rules[]{match[]{vars}, weighted_upstreams[]{upstream_id|upstream,
//!   weight}}`; a weight-only arm means the route's own upstream.
//! - The guide's shorthand: `rules[]` items with `weight` + `upstream` (+ `rewrite`) and no
//!   `weighted_upstreams` are the arms of **one** split, each with its own rewrite (APISIX
//!   silently never splits such a config; split does what the guide means).
//!
//! Extensions: an arm may carry `name` and `rewrite {uri, regex_uri, host, headers, body}`;
//! a rule may carry `balancer {algorithm: roundrobin|random|chash, hash_on, key, seed}`;
//! the plugin may carry `fallback {...}` ([`crate::config::fallback`]) and
//! `ticket: "local" | "redis"` with `redis {host, port, username, password, database,
//! timeout, batch}` (see [`TicketSource`]).
//! Unknown keys and duplicate arms are rejected with the field path.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fallback::Fallback;
use crate::config::fields;
use crate::config::proxy_rewrite::parse_arm_rewrite;
use crate::config::redis_target::{RedisFields, RedisTarget};
use crate::config::upstream::{parse_hash_on, HashOn, Upstream};
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
    /// LLM options (`llm {include_usage}`).
    pub llm: crate::llm::ArmLlm,
    /// Path of the arm inside the plugin config (`rules[0].weighted_upstreams[1]`, or
    /// `rules[1]` in the shorthand), for errors found later (dangling `upstream_id`).
    pub path: String,
    /// Stable identity of the arm: hash of its canonical target and rewrite, without
    /// weight or name (chash keys stay put when weights or other arms change).
    pub id: u64,
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
    /// Canary guardrail (`guard`); not part of the fingerprint, so editing it keeps the
    /// rule's state and any tripped override.
    pub guard: Option<crate::guard::Guard>,
    /// Stable hash of the canonical JSON of this rule's arms and balancer: selector state
    /// survives edits elsewhere in the route.
    pub fingerprint: u64,
}

/// A validated `traffic-split` plugin config.
#[derive(Debug, Clone, Default)]
pub struct TrafficSplit {
    /// Rules in order; the first matching one wins.
    pub rules: Vec<SplitRule>,
    /// Extension: retry on another arm of the same rule (`None` = off).
    pub fallback: Option<Fallback>,
    /// Where the rules' tickets come from.
    pub ticket: TicketSource,
}

/// Where a rule's tickets (positions in its schedule) come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TicketSource {
    /// One atomic counter per rule in this process (`ticket: "local"`, the default):
    /// exact per gateway.
    #[default]
    Local,
    /// A Redis counter per rule shared by every gateway (`ticket: "redis"`): exact across
    /// the fleet to within `batch` tickets per gateway.
    Redis(FleetTickets),
}

/// `ticket: "redis"` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetTickets {
    /// The Redis holding the counters.
    pub target: RedisTarget,
    /// Tickets reserved per round trip (`INCRBY key batch`), 1..=[`MAX_TICKET_BATCH`];
    /// 1 makes every request exact across the fleet.
    pub batch: u32,
}

/// Default `redis.batch`.
pub const DEFAULT_TICKET_BATCH: u32 = 16;
/// Largest `redis.batch`.
pub const MAX_TICKET_BATCH: u32 = 10_000;

/// Most arms one rule may have (APISIX `weighted_upstreams` maxItems).
pub const MAX_ARMS: usize = 20;

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "TrafficSplit")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrafficSplit {
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<Vec<crate::config::schema::SplitRuleItem>>")
    )]
    rules: Option<Vec<Value>>,
    fallback: Option<Value>,
    ticket: Option<String>,
    redis: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTicketRedis {
    host: Option<String>,
    port: Option<i64>,
    username: Option<String>,
    password: Option<String>,
    database: Option<i64>,
    timeout: Option<i64>,
    batch: Option<i64>,
}

/// A rule in the APISIX shape.
#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "SplitRule")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(rename = "match")]
    matches: Option<Vec<RawMatch>>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Arms>")
    )]
    weighted_upstreams: Option<Vec<Value>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<RawBalancer>"))]
    balancer: Option<Value>,
    guard: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "SplitMatch")
)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Vars>")
    )]
    vars: Option<Value>,
}

/// One arm: an item of `weighted_upstreams`, or a rule item of the shorthand.
#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "SplitArm")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArm {
    name: Option<String>,
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    weight: Option<i64>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Id>")
    )]
    upstream_id: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::upstream::RawUpstream>")
    )]
    upstream: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::proxy_rewrite::RawArmRewrite>")
    )]
    rewrite: Option<Value>,
    llm: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "SplitBalancer")
)]
#[serde(deny_unknown_fields)]
struct RawBalancer {
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::ArmAlgorithm>")
    )]
    algorithm: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::HashOnSource>")
    )]
    hash_on: Option<String>,
    key: Option<String>,
    seed: Option<u64>,
}

/// Keys that mark the APISIX rule shape and the shorthand arm shape.
const RULE_KEYS: &[&str] = &["match", "weighted_upstreams", "balancer", "guard"];
const ARM_KEYS: &[&str] = &[
    "weight",
    "upstream",
    "upstream_id",
    "rewrite",
    "name",
    "llm",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Rule,
    Shorthand,
}

impl Shape {
    fn describe(self) -> &'static str {
        match self {
            Shape::Rule => "an APISIX rule (match/weighted_upstreams)",
            Shape::Shorthand => "a shorthand arm (weight/upstream/rewrite)",
        }
    }
}

fn shape_of(rule: &Value) -> Result<Shape, ConfigError> {
    let Value::Object(map) = rule else {
        return Err(ConfigError::new("", "expected an object"));
    };
    let rule_key = map.keys().find(|k| RULE_KEYS.contains(&k.as_str()));
    let arm_key = map.keys().find(|k| ARM_KEYS.contains(&k.as_str()));
    match (rule_key, arm_key) {
        (Some(r), Some(a)) => Err(ConfigError::new(
            "",
            format!(
                "mixes `{r}` (APISIX rule shape) with `{a}` (shorthand arm shape); put arms \
                 under `weighted_upstreams`"
            ),
        )),
        (None, Some(_)) => Ok(Shape::Shorthand),
        _ => Ok(Shape::Rule),
    }
}

impl TrafficSplit {
    /// Parses the plugin config object (value of `plugins["traffic-split"]`). Paths are
    /// relative (`rules[0].weighted_upstreams[1].weight`).
    pub fn from_json(value: &serde_json::Value) -> Result<TrafficSplit, ConfigError> {
        let raw: RawTrafficSplit = fields::from_value(value)?;
        let fallback = raw
            .fallback
            .as_ref()
            .map(|f| Fallback::from_json(f).map_err(|e| e.within("fallback")))
            .transpose()?;
        let ticket = parse_ticket(raw.ticket.as_deref(), raw.redis.as_ref())?;
        let rules = TrafficSplit::rules_from_json(raw.rules.unwrap_or_default())?;
        Ok(TrafficSplit {
            rules,
            fallback,
            ticket,
        })
    }

    fn rules_from_json(rules: Vec<Value>) -> Result<Vec<SplitRule>, ConfigError> {
        let mut shape = None;
        for (i, rule) in rules.iter().enumerate() {
            let this = shape_of(rule).map_err(|e| e.within(&format!("rules[{i}]")))?;
            match shape {
                None => shape = Some(this),
                Some(first) if first != this => {
                    return Err(ConfigError::new(
                        format!("rules[{i}]"),
                        format!(
                            "is {} but rules[0] is {}; use one shape for all rules",
                            this.describe(),
                            first.describe()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(match shape {
            None => Vec::new(),
            Some(Shape::Rule) => rules
                .iter()
                .enumerate()
                .map(|(i, rule)| parse_rule(rule, &format!("rules[{i}]")))
                .collect::<Result<Vec<_>, _>>()?,
            Some(Shape::Shorthand) => vec![parse_shorthand(&rules)?],
        })
    }

    /// The Redis ticket settings, when `ticket: "redis"`.
    pub fn fleet_tickets(&self) -> Option<&FleetTickets> {
        match &self.ticket {
            TicketSource::Local => None,
            TicketSource::Redis(fleet) => Some(fleet),
        }
    }
}

/// `ticket` and `redis`: `redis` is required with `ticket: "redis"` and refused otherwise.
fn parse_ticket(ticket: Option<&str>, redis: Option<&Value>) -> Result<TicketSource, ConfigError> {
    match ticket {
        None | Some("local") => match redis {
            Some(_) => Err(ConfigError::new(
                "redis",
                "is only used with `ticket: \"redis\"`",
            )),
            None => Ok(TicketSource::Local),
        },
        Some("redis") => {
            let Some(redis) = redis else {
                return Err(ConfigError::new(
                    "redis",
                    "is required with `ticket: \"redis\"` (at least `{\"host\": ...}`)",
                ));
            };
            let raw: RawTicketRedis = fields::from_value(redis).map_err(|e| e.within("redis"))?;
            let batch = match raw.batch {
                None => DEFAULT_TICKET_BATCH,
                Some(b) => u32::try_from(b)
                    .ok()
                    .filter(|b| (1..=MAX_TICKET_BATCH).contains(b))
                    .ok_or_else(|| {
                        ConfigError::new("redis.batch", format!("must be 1 to {MAX_TICKET_BATCH}"))
                    })?,
            };
            let target = RedisFields {
                host: raw.host,
                port: raw.port,
                username: raw.username,
                password: raw.password,
                database: raw.database,
                timeout_ms: raw.timeout,
                ssl: None,
            }
            .validate(|f| format!("redis.{f}"))?;
            Ok(TicketSource::Redis(FleetTickets { target, batch }))
        }
        Some(_) => Err(ConfigError::new("ticket", "must be `local` or `redis`")),
    }
}

fn parse_rule(value: &Value, path: &str) -> Result<SplitRule, ConfigError> {
    let raw: RawRule = fields::from_value(value).map_err(|e| e.within(path))?;
    let matches = raw
        .matches
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let vars_path = format!("{path}.match[{i}].vars");
            let vars = m.vars.clone().unwrap_or_else(|| Value::Array(Vec::new()));
            Expr::compile(&vars).map_err(|e| {
                ConfigError::new(
                    vars_path,
                    format!("failed to validate the 'vars' expression: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let arms_path = fields_join(path, "weighted_upstreams");
    let arm_values = match raw.weighted_upstreams {
        // APISIX's default: one weight-only arm, i.e. the route's own upstream.
        None => vec![serde_json::json!({"weight": 1})],
        Some(items) => items,
    };
    let arms = parse_arms(&arm_values, &arms_path)?;
    let (balancer, balancer_json) = match &raw.balancer {
        None => (ArmBalancer::RoundRobin, Value::Null),
        Some(b) => (
            parse_balancer(b).map_err(|e| e.within(&fields_join(path, "balancer")))?,
            b.clone(),
        ),
    };
    let guard = raw
        .guard
        .as_ref()
        .map(|g| {
            crate::guard::Guard::from_json(g).map_err(|e| e.within(&fields_join(path, "guard")))
        })
        .transpose()?;
    Ok(SplitRule {
        matches,
        arms,
        balancer,
        guard,
        fingerprint: fingerprint(&arm_values, &balancer_json),
    })
}

fn parse_shorthand(items: &[Value]) -> Result<SplitRule, ConfigError> {
    let arms = parse_arms(items, "rules")?;
    Ok(SplitRule {
        matches: Vec::new(),
        arms,
        balancer: ArmBalancer::RoundRobin,
        guard: None,
        fingerprint: fingerprint(items, &Value::Null),
    })
}

fn fingerprint(arms: &[Value], balancer: &Value) -> u64 {
    let doc = serde_json::json!({"arms": arms, "balancer": balancer});
    crate::select::stable_hash(fields::canonical_json(&doc).as_bytes())
}

fn fields_join(parent: &str, child: &str) -> String {
    crate::error::join(parent, child)
}

/// Parses arms at `path` (`rules[0].weighted_upstreams` or `rules`): 1..=20 items, unique
/// names, no two arms with the same target and rewrite.
fn parse_arms(items: &[Value], path: &str) -> Result<Vec<Arm>, ConfigError> {
    if items.is_empty() || items.len() > MAX_ARMS {
        return Err(ConfigError::new(
            path,
            format!("must have 1 to {MAX_ARMS} items (got {})", items.len()),
        ));
    }
    let mut arms: Vec<Arm> = Vec::with_capacity(items.len());
    let mut identities: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let arm_path = format!("{path}[{i}]");
        let (arm, identity) = parse_arm(item, &arm_path)?;
        if let Some(name) = &arm.name {
            if let Some(j) = arms.iter().position(|a| a.name.as_ref() == Some(name)) {
                return Err(ConfigError::new(
                    fields_join(&arm_path, "name"),
                    format!("duplicate arm name `{name}` (also used by {path}[{j}])"),
                ));
            }
        }
        if let Some(j) = identities.iter().position(|id| *id == identity) {
            return Err(ConfigError::new(
                arm_path,
                format!(
                    "duplicate arm (same upstream and rewrite as {path}[{j}]); merge their weights"
                ),
            ));
        }
        identities.push(identity);
        arms.push(arm);
    }
    Ok(arms)
}

/// Parses one arm; also returns its identity (canonical target + rewrite) for the
/// duplicate check.
fn parse_arm(value: &Value, path: &str) -> Result<(Arm, String), ConfigError> {
    let raw: RawArm = fields::from_value(value).map_err(|e| e.within(path))?;
    let at = |field: &str| fields_join(path, field);
    if let Some(name) = &raw.name {
        if name.is_empty() || name.chars().count() > 64 {
            return Err(ConfigError::new(at("name"), "must be 1 to 64 characters"));
        }
    }
    let weight = match raw.weight {
        None => 1,
        Some(w) => fields::non_negative_u32(w, &at("weight"))?,
    };
    let (target, target_identity) = match (&raw.upstream_id, &raw.upstream) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                path,
                "`upstream_id` and `upstream` are mutually exclusive (APISIX would silently \
                 use upstream_id)",
            ))
        }
        (Some(id), None) => {
            let id = fields::parse_id(id, &at("upstream_id"))?;
            (ArmTarget::UpstreamId(id.clone()), format!("id:{id}"))
        }
        (None, Some(upstream)) => {
            let parsed = Upstream::from_json(upstream).map_err(|e| e.within(&at("upstream")))?;
            (
                ArmTarget::Inline(Arc::new(parsed)),
                format!("inline:{}", fields::canonical_json(upstream)),
            )
        }
        (None, None) => (ArmTarget::RouteUpstream, "route".to_owned()),
    };
    let rewrite = raw
        .rewrite
        .as_ref()
        .map(|r| parse_arm_rewrite(r).map_err(|e| e.within(&at("rewrite"))))
        .transpose()?;
    let llm = raw
        .llm
        .as_ref()
        .map(|l| crate::llm::ArmLlm::from_json(l).map_err(|e| e.within(&at("llm"))))
        .transpose()?
        .unwrap_or_default();
    let rewrite_identity = raw
        .rewrite
        .as_ref()
        .map_or_else(|| "none".to_owned(), fields::canonical_json);
    // The identity leaves out weight and name: a chash arm keeps its keys when only its
    // weight changes. It is unique within a rule (duplicates are rejected).
    let identity = format!("{target_identity}|{rewrite_identity}");
    let arm = Arm {
        name: raw.name,
        weight,
        target,
        rewrite,
        llm,
        path: path.to_owned(),
        id: crate::select::stable_hash(identity.as_bytes()),
    };
    Ok((arm, identity))
}

fn parse_balancer(value: &Value) -> Result<ArmBalancer, ConfigError> {
    let raw: RawBalancer = fields::from_value(value)?;
    let algorithm = raw.algorithm.as_deref().unwrap_or("roundrobin");
    if raw.seed.is_some() && algorithm != "random" {
        return Err(ConfigError::new(
            "seed",
            "is only valid with algorithm `random`",
        ));
    }
    if algorithm != "chash" {
        if raw.hash_on.is_some() {
            return Err(ConfigError::new(
                "hash_on",
                "is only valid with algorithm `chash`",
            ));
        }
        if raw.key.is_some() {
            return Err(ConfigError::new(
                "key",
                "is only valid with algorithm `chash`",
            ));
        }
    }
    match algorithm {
        "roundrobin" => Ok(ArmBalancer::RoundRobin),
        "random" => Ok(ArmBalancer::Random {
            seed: raw.seed.unwrap_or(0),
        }),
        "chash" => Ok(ArmBalancer::Chash(parse_hash_on(
            raw.hash_on.as_deref(),
            raw.key.as_deref(),
        )?)),
        other => Err(ConfigError::new(
            "algorithm",
            format!("must be one of roundrobin, random, chash (got `{other}`)"),
        )),
    }
}
