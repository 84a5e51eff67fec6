//! The `limit-count` plugin: at most `count` requests per `time_window` seconds per key.
//!
//! APISIX schema (reference §5): `count`, `time_window`, `key_type`
//! var|var_combination|constant, `key` (`remote_addr`), `rejected_code` (503),
//! `rejected_msg`, `show_limit_quota_header` (true), `window_type` fixed|sliding,
//! `allow_degradation`, `group`, and `policy` local | redis (`redis_host`, `redis_port`
//! 6379, `redis_username`, `redis_password`, `redis_database` 0, `redis_timeout` 1000 ms,
//! `redis_ssl_verify`). `redis-cluster`, `redis-sentinel`, `redis_ssl: true`,
//! `keepalive_*` and `rules[]` are refused with "not supported yet" rather than accepted
//! and ignored; `redis_*` fields under `policy: local` are refused too (APISIX ignores
//! them).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::config::redis_target::{RedisFields, RedisTarget};
use crate::request::Request;
use crate::select::stable_hash;
use crate::ConfigError;

/// How the counter key is derived from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKeyType {
    /// `var`: the value of one variable (`remote_addr`, `http_x_api_user`, ...).
    Var(String),
    /// `var_combination`: a template such as `$remote_addr $consumer_name`.
    VarCombination(String),
    /// `constant`: one counter for every request of the route (or group).
    Constant(String),
}

/// Fixed or sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowType {
    /// The window starts at a key's first request and resets `time_window` later.
    Fixed,
    /// Weighted two-window estimate (see [`crate::limits::SlidingWindow`]).
    Sliding,
}

/// Where the counters live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitPolicy {
    /// In this process (`policy: local`, the default).
    Local,
    /// In one Redis shared by every gateway that points at it (`policy: redis`).
    Redis(RedisTarget),
}

impl LimitPolicy {
    /// The `policy` field of `limit-count` and `ai-rate-limiting` with its APISIX
    /// `redis_*` fields (`ssl_verify`: whether `redis_ssl_verify` was given). Redis fields
    /// under `policy: local` are refused, as are the cluster and sentinel policies.
    pub(crate) fn parse(
        policy: Option<&str>,
        redis: RedisFields,
        ssl_verify: bool,
    ) -> Result<LimitPolicy, ConfigError> {
        match policy {
            None | Some("local") => {
                let stray = redis
                    .first_present()
                    .map(|f| format!("redis_{f}"))
                    .or_else(|| ssl_verify.then(|| "redis_ssl_verify".to_owned()));
                match stray {
                    Some(path) => Err(ConfigError::new(path, "is only used by policy redis")),
                    None => Ok(LimitPolicy::Local),
                }
            }
            Some("redis") => Ok(LimitPolicy::Redis(
                redis.validate(|f| format!("redis_{f}"))?,
            )),
            Some(p @ ("redis-cluster" | "redis-sentinel")) => Err(ConfigError::new(
                "policy",
                format!("`{p}` is not supported yet; use `local` or `redis`"),
            )),
            Some(_) => Err(ConfigError::new(
                "policy",
                "must be one of local, redis, redis-cluster, redis-sentinel",
            )),
        }
    }
}

/// A validated `limit-count` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCount {
    /// Requests allowed per window (>= 1).
    pub count: u64,
    /// Window length (whole seconds >= 1).
    pub time_window: Duration,
    /// Counter key.
    pub key: LimitKeyType,
    /// Status of a rejected request (200..=599, default 503).
    pub rejected_code: u16,
    /// Body `{"error_msg": msg}` of a rejected request; `None` → empty body.
    pub rejected_msg: Option<String>,
    /// Send `X-RateLimit-Limit/Remaining/Reset`.
    pub show_limit_quota_header: bool,
    /// Fixed or sliding window.
    pub window_type: WindowType,
    /// Let requests through when the counter store fails (local counters never fail).
    pub allow_degradation: bool,
    /// Local or Redis counters.
    pub policy: LimitPolicy,
    /// Routes with the same group share counters.
    pub group: Option<String>,
    /// Canonical JSON of the configuration: part of the state key, so an edit that does
    /// not change the plugin keeps its counters.
    pub fingerprint: u64,
}

/// Identity of one limit-count instance's counters: a route (or group) plus the
/// plugin's canonical configuration. The proxy keys its counter map by this and the
/// request's [`LimitCount::client_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitStateKey(pub u64);

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "LimitCount")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimitCount {
    #[cfg_attr(
        feature = "schema",
        schemars(with = "crate::config::schema::PositiveInt")
    )]
    count: Option<i64>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "crate::config::schema::PositiveInt")
    )]
    time_window: Option<i64>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::LimitKeyType>")
    )]
    key_type: Option<String>,
    key: Option<String>,
    rejected_code: Option<i64>,
    rejected_msg: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::LimitPolicy>")
    )]
    policy: Option<String>,
    allow_degradation: Option<bool>,
    show_limit_quota_header: Option<bool>,
    group: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::WindowType>")
    )]
    window_type: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    rules: Option<Value>,
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
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    redis_cluster_ssl: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    redis_cluster_ssl_verify: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    keepalive_timeout: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    keepalive_pool: Option<Value>,
}

/// Why the `redis_cluster_*` fields are refused (limit-count and ai-rate-limiting).
pub(crate) const CLUSTER_ONLY: &str =
    "only used by policy redis-cluster, which is not supported yet";

impl LimitCount {
    /// Parses a `limit-count` object; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<LimitCount, ConfigError> {
        let raw: RawLimitCount = fields::from_value(value)?;
        fields::reject_present(
            &raw.rules,
            "rules",
            "limit-count rules are not supported yet; use count and time_window",
        )?;
        for (field, path) in [
            (&raw.redis_cluster_nodes, "redis_cluster_nodes"),
            (&raw.redis_cluster_name, "redis_cluster_name"),
            (&raw.redis_cluster_ssl, "redis_cluster_ssl"),
            (&raw.redis_cluster_ssl_verify, "redis_cluster_ssl_verify"),
        ] {
            fields::reject_present(field, path, CLUSTER_ONLY)?;
        }
        for (field, path) in [
            (&raw.keepalive_timeout, "keepalive_timeout"),
            (&raw.keepalive_pool, "keepalive_pool"),
        ] {
            fields::reject_present(
                field,
                path,
                "is not supported: split keeps one multiplexed connection per redis target",
            )?;
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
        let count = match raw.count {
            None => return Err(ConfigError::new("count", "is required")),
            Some(c) if c < 1 => return Err(ConfigError::new("count", "must be >= 1")),
            // Checked >= 1 just above.
            Some(c) => c.unsigned_abs(),
        };
        let time_window = match raw.time_window {
            None => return Err(ConfigError::new("time_window", "is required")),
            Some(w) if w < 1 => return Err(ConfigError::new("time_window", "must be >= 1")),
            Some(w) => Duration::from_secs(w.unsigned_abs()),
        };
        let key = parse_key(raw.key_type.as_deref(), raw.key)?;
        let rejected_code = match raw.rejected_code {
            None => 503,
            Some(c) => u16::try_from(c)
                .ok()
                .filter(|c| (200..=599).contains(c))
                .ok_or_else(|| ConfigError::new("rejected_code", "must be 200 to 599"))?,
        };
        if raw.rejected_msg.as_deref() == Some("") {
            return Err(ConfigError::new("rejected_msg", "must not be empty"));
        }
        let window_type = match raw.window_type.as_deref() {
            None | Some("fixed") => WindowType::Fixed,
            Some("sliding") => WindowType::Sliding,
            Some(_) => {
                return Err(ConfigError::new(
                    "window_type",
                    "must be `fixed` or `sliding`",
                ))
            }
        };
        if raw.group.as_deref() == Some("") {
            return Err(ConfigError::new("group", "must not be empty"));
        }
        Ok(LimitCount {
            count,
            time_window,
            key,
            rejected_code,
            rejected_msg: raw.rejected_msg,
            show_limit_quota_header: raw.show_limit_quota_header.unwrap_or(true),
            window_type,
            allow_degradation: raw.allow_degradation.unwrap_or(false),
            policy,
            group: raw.group,
            fingerprint: stable_hash(fields::canonical_json(value).as_bytes()),
        })
    }

    /// The counters' identity for this instance on route `route_id`. Routes sharing a
    /// `group` share counters (their configurations must then be identical, as APISIX
    /// requires; a different configuration gets different counters here).
    pub fn state_key(&self, route_id: &str) -> LimitStateKey {
        let scope = match &self.group {
            Some(group) => format!("group\u{0}{group}"),
            None => format!("route\u{0}{route_id}"),
        };
        let key = format!("limit-count\u{0}{scope}\u{0}{:016x}", self.fingerprint);
        LimitStateKey(stable_hash(key.as_bytes()))
    }

    /// The Redis key of `client_key`'s counter on route `route_id`: APISIX's
    /// `plugin-limit-count` prefix, the counters' identity (route or group plus the
    /// plugin's canonical configuration, so an edit elsewhere keeps the counter), and
    /// the client key. Every gateway computes the same key for the same request.
    pub fn redis_key(&self, route_id: &str, client_key: &str) -> String {
        format!(
            "plugin-limit-count:{:016x}:{client_key}",
            self.state_key(route_id).0
        )
    }

    /// The request's counter key: the configured variable(s) or constant; an absent or
    /// empty value falls back to `remote_addr`, as APISIX does.
    pub fn client_key(&self, req: &Request<'_>) -> String {
        let value = match &self.key {
            LimitKeyType::Var(name) => req.var(name).ok().flatten().map(|v| v.into_owned()),
            LimitKeyType::VarCombination(template) => expand_template(template, req),
            LimitKeyType::Constant(value) => Some(value.clone()),
        };
        match value.filter(|v| !v.is_empty()) {
            Some(v) => v,
            None => crate::request::normalize_ip(req.remote_addr).to_string(),
        }
    }

    /// The body of a rejection: `{"error_msg": msg}`, or empty without `rejected_msg`.
    pub fn rejected_body(&self) -> Option<String> {
        self.rejected_msg
            .as_ref()
            .map(|msg| serde_json::json!({ "error_msg": msg }).to_string())
    }
}

/// Expands `$name` references; `None` when no variable resolved (APISIX then falls back
/// to `remote_addr`).
fn expand_template(template: &str, req: &Request<'_>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut resolved = 0usize;
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
        } else if let Ok(Some(v)) = req.var(&after[..len]) {
            resolved += 1;
            out.push_str(&v);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    (resolved > 0).then_some(out)
}

fn parse_key(key_type: Option<&str>, key: Option<String>) -> Result<LimitKeyType, ConfigError> {
    // APISIX: an empty key means the default.
    let key = key
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "remote_addr".to_owned());
    match key_type {
        None | Some("var") => {
            if Request::needs_body_for(&key) {
                return Err(body_key_error());
            }
            let valid = key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(ConfigError::new(
                    "key",
                    "must be a variable name such as remote_addr or http_x_user \
                     (use key_type var_combination for `$a $b` templates)",
                ));
            }
            Ok(LimitKeyType::Var(key))
        }
        Some("var_combination") => {
            if !crate::config::fields::has_nginx_var(&key) {
                return Err(ConfigError::new(
                    "key",
                    "must reference at least one variable, e.g. `$remote_addr $http_x_user`",
                ));
            }
            if key.contains("$post_arg") {
                return Err(body_key_error());
            }
            Ok(LimitKeyType::VarCombination(key))
        }
        Some("constant") => Ok(LimitKeyType::Constant(key)),
        Some(_) => Err(ConfigError::new(
            "key_type",
            "must be one of var, var_combination, constant",
        )),
    }
}

fn body_key_error() -> ConfigError {
    ConfigError::new(
        "key",
        "request body variables are not supported as a limit key",
    )
}
