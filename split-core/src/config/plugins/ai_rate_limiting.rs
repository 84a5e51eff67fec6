//! The `ai-rate-limiting` plugin: token budgets per time window (APISIX reference §5),
//! adapted to traffic-split arms.
//!
//! - `limit` + `time_window`: one budget for the whole route (header suffix `route`).
//! - `instances[]{name, limit, time_window}`: a budget per traffic-split arm, `name`
//!   being the arm's `name` (or its index); header suffix = the name.
//! - `limit_strategy`: `total_tokens` (default) | `prompt_tokens` | `completion_tokens`.
//! - `rejected_code` (default **429**, split's choice: the budget is a rate limit; APISIX
//!   defaults to 503), `rejected_msg` (`{"error_msg": msg}`), `show_limit_quota_header`
//!   (true): `X-AI-RateLimit-{Limit,Remaining,Reset}-<suffix>`.
//! - Extension `per_consumer` (false): each consumer (key-auth) has its own budgets.
//! - `policy`: `local` (default) or `redis`, with limit-count's field names
//!   (`redis_host`, `redis_port` 6379, `redis_username`, `redis_password`,
//!   `redis_database` 0, `redis_timeout` 1000 ms, `redis_ssl_verify`; validated by
//!   [`crate::config::redis_target`]): every gateway pointing at the same Redis shares the
//!   budgets. `redis-cluster`/`redis-sentinel`, `redis_ssl: true`, the cluster fields,
//!   `rules[]` and `expression`/`cost_expr` are refused as not supported yet (never
//!   accepted and ignored); `redis_*` fields under `policy: local` are refused too.
//! - APISIX's ai-rate-limiting has no `allow_degradation`: with Redis unreachable the
//!   proxy lets requests through (fail open, logged and counted; see the proxy's
//!   `llm_limits_redis`).
//!
//! Checked before the request without consuming; charged with the response's actual
//! usage afterwards (see [`crate::limits::TokenWindow`]).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::config::plugins::LimitPolicy;
use crate::config::redis_target::RedisFields;
use crate::llm::Usage;
use crate::select::stable_hash;
use crate::ConfigError;

/// Which tokens a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitStrategy {
    /// `total_tokens` (or prompt + completion).
    TotalTokens,
    /// `prompt_tokens`.
    PromptTokens,
    /// `completion_tokens`.
    CompletionTokens,
}

impl LimitStrategy {
    /// The tokens of `usage` this strategy charges (0 when the count is missing).
    pub fn tokens(self, usage: &Usage) -> u64 {
        match self {
            LimitStrategy::TotalTokens => usage.total(),
            LimitStrategy::PromptTokens => usage.prompt_tokens,
            LimitStrategy::CompletionTokens => usage.completion_tokens,
        }
        .unwrap_or(0)
    }
}

/// One token budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBudget {
    /// Tokens per window (>= 1).
    pub limit: u64,
    /// Window length (whole seconds >= 1).
    pub time_window: Duration,
}

/// A per-arm budget (`instances[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmBudget {
    /// Arm label (`name`, or the arm's index).
    pub name: String,
    /// The budget.
    pub budget: TokenBudget,
}

/// A validated `ai-rate-limiting` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiRateLimiting {
    /// Route-wide budget.
    pub route: Option<TokenBudget>,
    /// Per-arm budgets.
    pub instances: Vec<ArmBudget>,
    /// Which tokens count.
    pub limit_strategy: LimitStrategy,
    /// Status of a refused request (200..=599, default 429).
    pub rejected_code: u16,
    /// Body `{"error_msg": msg}` of a refusal; `None` → empty body.
    pub rejected_msg: Option<String>,
    /// Send `X-AI-RateLimit-*` headers.
    pub show_limit_quota_header: bool,
    /// Budgets per consumer.
    pub per_consumer: bool,
    /// Local or Redis counters.
    pub policy: LimitPolicy,
    /// Hash of the canonical configuration: part of the state key, so an edit that
    /// leaves the plugin unchanged keeps its counters.
    pub fingerprint: u64,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAiRateLimiting {
    limit: Option<i64>,
    time_window: Option<i64>,
    instances: Option<Vec<Value>>,
    limit_strategy: Option<String>,
    rejected_code: Option<i64>,
    rejected_msg: Option<String>,
    show_limit_quota_header: Option<bool>,
    per_consumer: Option<bool>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::LimitPolicy>")
    )]
    policy: Option<String>,
    rules: Option<Value>,
    cost_expr: Option<Value>,
    redis_host: Option<String>,
    redis_port: Option<i64>,
    redis_username: Option<String>,
    redis_password: Option<String>,
    redis_database: Option<i64>,
    redis_timeout: Option<i64>,
    redis_ssl: Option<bool>,
    redis_ssl_verify: Option<bool>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    redis_cluster_nodes: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    redis_cluster_name: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInstance {
    name: Option<String>,
    limit: Option<i64>,
    time_window: Option<i64>,
}

impl AiRateLimiting {
    /// Parses an `ai-rate-limiting` object; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<AiRateLimiting, ConfigError> {
        let raw: RawAiRateLimiting = fields::from_value(value)?;
        fields::reject_present(
            &raw.rules,
            "rules",
            "ai-rate-limiting rules are not supported yet; use limit and time_window or instances",
        )?;
        fields::reject_present(&raw.cost_expr, "cost_expr", "is not supported yet")?;
        for (field, path) in [
            (&raw.redis_cluster_nodes, "redis_cluster_nodes"),
            (&raw.redis_cluster_name, "redis_cluster_name"),
        ] {
            fields::reject_present(field, path, super::limit_count::CLUSTER_ONLY)?;
        }
        let redis = RedisFields {
            host: raw.redis_host,
            port: raw.redis_port,
            username: raw.redis_username,
            password: raw.redis_password,
            database: raw.redis_database,
            timeout_ms: raw.redis_timeout,
            ssl: raw.redis_ssl,
        };
        let policy =
            LimitPolicy::parse(raw.policy.as_deref(), redis, raw.redis_ssl_verify.is_some())?;
        let route = match (raw.limit, raw.time_window) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new("time_window", "is required with limit"))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("limit", "is required with time_window"))
            }
            (Some(limit), Some(window)) => Some(budget(limit, window, "")?),
        };
        let mut instances: Vec<ArmBudget> = Vec::new();
        for (i, item) in raw.instances.unwrap_or_default().iter().enumerate() {
            let path = format!("instances[{i}]");
            let inst: RawInstance = fields::from_value(item).map_err(|e| e.within(&path))?;
            let name = match inst.name {
                Some(n) if !n.is_empty() && n.chars().count() <= 64 => n,
                Some(_) => {
                    return Err(ConfigError::new(
                        format!("{path}.name"),
                        "must be 1 to 64 characters",
                    ))
                }
                None => return Err(ConfigError::new(format!("{path}.name"), "is required")),
            };
            if let Some(j) = instances.iter().position(|b| b.name == name) {
                return Err(ConfigError::new(
                    format!("{path}.name"),
                    format!("duplicate instance `{name}` (also instances[{j}])"),
                ));
            }
            let limit = inst
                .limit
                .ok_or_else(|| ConfigError::new(format!("{path}.limit"), "is required"))?;
            let window = inst
                .time_window
                .ok_or_else(|| ConfigError::new(format!("{path}.time_window"), "is required"))?;
            instances.push(ArmBudget {
                name,
                budget: budget(limit, window, &path)?,
            });
        }
        if route.is_none() && instances.is_empty() {
            return Err(ConfigError::new(
                "",
                "needs limit and time_window, or instances",
            ));
        }
        let limit_strategy = match raw.limit_strategy.as_deref() {
            None | Some("total_tokens") => LimitStrategy::TotalTokens,
            Some("prompt_tokens") => LimitStrategy::PromptTokens,
            Some("completion_tokens") => LimitStrategy::CompletionTokens,
            Some("expression") => {
                return Err(ConfigError::new(
                    "limit_strategy",
                    "`expression` is not supported yet",
                ))
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "limit_strategy",
                    "must be one of total_tokens, prompt_tokens, completion_tokens",
                ))
            }
        };
        let rejected_code = match raw.rejected_code {
            None => 429,
            Some(c) => u16::try_from(c)
                .ok()
                .filter(|c| (200..=599).contains(c))
                .ok_or_else(|| ConfigError::new("rejected_code", "must be 200 to 599"))?,
        };
        if raw.rejected_msg.as_deref() == Some("") {
            return Err(ConfigError::new("rejected_msg", "must not be empty"));
        }
        Ok(AiRateLimiting {
            route,
            instances,
            limit_strategy,
            rejected_code,
            rejected_msg: raw.rejected_msg,
            show_limit_quota_header: raw.show_limit_quota_header.unwrap_or(true),
            per_consumer: raw.per_consumer.unwrap_or(false),
            policy,
            fingerprint: stable_hash(fields::canonical_json(value).as_bytes()),
        })
    }

    /// The budget of arm `label`, if configured.
    pub fn arm_budget(&self, label: &str) -> Option<&TokenBudget> {
        self.instances
            .iter()
            .find(|b| b.name == label)
            .map(|b| &b.budget)
    }

    /// Identity of this instance's counters on `route_id` (changes when the plugin's
    /// configuration changes, like limit-count).
    pub fn state_key(&self, route_id: &str) -> u64 {
        let key = format!(
            "ai-rate-limiting\u{0}{route_id}\u{0}{:016x}",
            self.fingerprint
        );
        stable_hash(key.as_bytes())
    }

    /// The Redis key of one budget under `policy: redis`: the plugin's prefix, the
    /// counters' identity ([`AiRateLimiting::state_key`]: route plus canonical
    /// configuration, so an edit of the plugin starts afresh as the local policy does),
    /// the consumer (empty unless `per_consumer`; usernames have no `:`) and the header
    /// suffix (`route` or the arm label). Every gateway computes the same key.
    pub fn redis_key(&self, route_id: &str, consumer: &str, suffix: &str) -> String {
        format!(
            "plugin-ai-rate-limiting:{:016x}:{consumer}:{suffix}",
            self.state_key(route_id)
        )
    }

    /// The body of a refusal: `{"error_msg": msg}`, or empty without `rejected_msg`.
    pub fn rejected_body(&self) -> Option<String> {
        self.rejected_msg
            .as_ref()
            .map(|msg| serde_json::json!({ "error_msg": msg }).to_string())
    }
}

fn budget(limit: i64, window: i64, path: &str) -> Result<TokenBudget, ConfigError> {
    let at = |f: &str| crate::error::join(path, f);
    if limit < 1 {
        return Err(ConfigError::new(at("limit"), "must be >= 1"));
    }
    if window < 1 {
        return Err(ConfigError::new(at("time_window"), "must be >= 1"));
    }
    Ok(TokenBudget {
        limit: limit.unsigned_abs(),
        time_window: Duration::from_secs(window.unsigned_abs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn route_and_instance_budgets() {
        let c = AiRateLimiting::from_json(&json!({
            "limit": 1000, "time_window": 60,
            "instances": [{"name": "canary", "limit": 100, "time_window": 30}],
            "limit_strategy": "completion_tokens", "rejected_msg": "budget"
        }))
        .unwrap();
        assert_eq!(c.route.as_ref().map(|b| b.limit), Some(1000));
        assert_eq!(
            c.arm_budget("canary").map(|b| b.time_window),
            Some(Duration::from_secs(30))
        );
        assert_eq!(c.arm_budget("0"), None);
        assert_eq!(c.rejected_code, 429);
        assert_eq!(
            c.rejected_body().as_deref(),
            Some(r#"{"error_msg":"budget"}"#)
        );
        let usage = Usage {
            prompt_tokens: Some(3),
            completion_tokens: Some(4),
            total_tokens: None,
        };
        assert_eq!(c.limit_strategy.tokens(&usage), 4);
        assert_eq!(LimitStrategy::TotalTokens.tokens(&usage), 7);
        assert_eq!(LimitStrategy::PromptTokens.tokens(&Usage::default()), 0);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), ""),
            (json!({"limit": 10}), "time_window"),
            (json!({"time_window": 10}), "limit"),
            (json!({"limit": 0, "time_window": 10}), "limit"),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis"}),
                "redis_host",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis-cluster",
                       "redis_host": "127.0.0.1"}),
                "policy",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis-sentinel"}),
                "policy",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "memcached"}),
                "policy",
            ),
            (
                json!({"limit": 1, "time_window": 1, "redis_host": "127.0.0.1"}),
                "redis_host",
            ),
            (
                json!({"limit": 1, "time_window": 1, "redis_ssl_verify": false}),
                "redis_ssl_verify",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis",
                       "redis_host": "127.0.0.1", "redis_ssl": true}),
                "redis_ssl",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis",
                       "redis_host": "127.0.0.1", "redis_port": 70000}),
                "redis_port",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis",
                       "redis_host": "a b"}),
                "redis_host",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis",
                       "redis_host": "127.0.0.1", "redis_timeout": 0}),
                "redis_timeout",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis",
                       "redis_host": "127.0.0.1", "redis_database": -1}),
                "redis_database",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis",
                       "redis_host": "127.0.0.1", "redis_cluster_nodes": ["a:1"]}),
                "redis_cluster_nodes",
            ),
            (
                json!({"limit": 1, "time_window": 1, "policy": "redis",
                       "redis_host": "127.0.0.1", "redis_port": "6379"}),
                "redis_port",
            ),
            (
                json!({"limit": 1, "time_window": 1, "limit_strategy": "x"}),
                "limit_strategy",
            ),
            (
                json!({"limit": 1, "time_window": 1, "rejected_code": 100}),
                "rejected_code",
            ),
            (json!({"limit": 1, "time_window": 1, "nope": 1}), "nope"),
            (
                json!({"instances": [{"limit": 1, "time_window": 1}]}),
                "instances[0].name",
            ),
            (
                json!({"instances": [{"name": "a", "limit": 1}]}),
                "instances[0].time_window",
            ),
            (
                json!({"instances": [{"name": "a", "limit": 1, "time_window": 0}]}),
                "instances[0].time_window",
            ),
            (
                json!({"instances": [
                    {"name": "a", "limit": 1, "time_window": 1},
                    {"name": "a", "limit": 1, "time_window": 1}]}),
                "instances[1].name",
            ),
            (
                json!({"instances": [{"name": "a", "limit": 1, "time_window": 1, "x": 1}]}),
                "instances[0].x",
            ),
        ];
        for (value, path) in cases {
            let err = AiRateLimiting::from_json(&value).unwrap_err();
            assert_eq!(err.path, path, "{value}: {err}");
        }
    }

    #[test]
    fn policy_redis_is_accepted_with_limit_counts_fields() {
        let c = AiRateLimiting::from_json(&json!({
            "limit": 100, "time_window": 60, "policy": "redis",
            "redis_host": "127.0.0.1", "redis_port": 6380, "redis_password": "pw",
            "redis_database": 2, "redis_timeout": 250, "redis_ssl": false,
            "redis_ssl_verify": false
        }))
        .unwrap();
        let LimitPolicy::Redis(target) = &c.policy else {
            panic!("policy {:?}", c.policy);
        };
        assert_eq!(target.to_string(), "redis://127.0.0.1:6380/2");
        assert_eq!(target.password.as_deref(), Some("pw"));
        assert_eq!(target.timeout, Duration::from_millis(250));
        assert!(!format!("{c:?}").contains("\"pw\""), "password in Debug");
        let local = AiRateLimiting::from_json(&json!({"limit": 1, "time_window": 1})).unwrap();
        assert_eq!(local.policy, LimitPolicy::Local);
        let explicit =
            AiRateLimiting::from_json(&json!({"limit": 1, "time_window": 1, "policy": "local"}))
                .unwrap();
        assert_eq!(explicit.policy, LimitPolicy::Local);
    }

    #[test]
    fn redis_keys_name_route_config_consumer_and_budget() {
        let a = AiRateLimiting::from_json(&json!({
            "limit": 10, "time_window": 60, "policy": "redis", "redis_host": "127.0.0.1"
        }))
        .unwrap();
        let b = AiRateLimiting::from_json(&json!({
            "limit": 11, "time_window": 60, "policy": "redis", "redis_host": "127.0.0.1"
        }))
        .unwrap();
        let key = a.redis_key("r", "alice", "route");
        assert_eq!(
            key,
            format!(
                "plugin-ai-rate-limiting:{:016x}:alice:route",
                a.state_key("r")
            )
        );
        assert_ne!(key, a.redis_key("r", "bob", "route"));
        assert_ne!(key, a.redis_key("r", "alice", "canary"));
        assert_ne!(key, a.redis_key("s", "alice", "route"));
        assert_ne!(
            key,
            b.redis_key("r", "alice", "route"),
            "an edit starts afresh"
        );
    }

    #[test]
    fn state_key_follows_the_config() {
        let a = AiRateLimiting::from_json(&json!({"limit": 10, "time_window": 60})).unwrap();
        let b = AiRateLimiting::from_json(&json!({"time_window": 60, "limit": 10})).unwrap();
        let c = AiRateLimiting::from_json(&json!({"limit": 11, "time_window": 60})).unwrap();
        assert_eq!(a.state_key("r"), b.state_key("r"));
        assert_ne!(a.state_key("r"), c.state_key("r"));
        assert_ne!(a.state_key("r"), a.state_key("s"));
    }
}
