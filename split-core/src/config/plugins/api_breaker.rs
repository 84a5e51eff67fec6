//! The `api-breaker` plugin: stop sending to an upstream that keeps failing.
//!
//! APISIX schema (reference §5): `break_response_code` (required, 200..=599),
//! `break_response_body`, `break_response_headers[] {key, value}` (sent only with a
//! body, so split requires the body when headers are given), `max_breaker_sec` (>= 3,
//! default 300), `unhealthy {http_statuses [500] (500..=599), failures 3}`,
//! `healthy {http_statuses [200] (200..=499), successes 3}`, `policy` (only
//! `unhealthy-count`).
//!
//! split extension: `fallback` `reject` (default, APISIX: answer with the break response)
//! or `other_arms` (send the request to another arm of the traffic-split rule whose
//! breaker is closed). State is kept per route and arm, so a failing canary arm trips
//! only itself.

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::select::stable_hash;
use crate::ConfigError;

/// What to do with a request whose arm's breaker is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BreakerFallback {
    /// Answer with the break response (APISIX behaviour).
    #[default]
    Reject,
    /// Pick another arm of the same split rule whose breaker is closed; reject only if
    /// there is none.
    OtherArms,
}

/// One `break_response_headers` entry; `value` may reference `$variables`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakHeader {
    /// Header name.
    pub name: http::HeaderName,
    /// Header value template.
    pub value: String,
}

/// A validated `api-breaker` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBreaker {
    /// Status of the break response.
    pub break_response_code: u16,
    /// Body of the break response.
    pub break_response_body: Option<String>,
    /// Headers of the break response (only with a body).
    pub break_response_headers: Vec<BreakHeader>,
    /// Longest open period, seconds (>= 3).
    pub max_breaker_sec: u64,
    /// Upstream statuses that count as failures.
    pub unhealthy_statuses: Vec<u16>,
    /// Every `failures`-th failure (re)opens the breaker.
    pub failures: u64,
    /// Upstream statuses that count as successes.
    pub healthy_statuses: Vec<u16>,
    /// Successes in a row that clear the breaker.
    pub successes: u64,
    /// What happens to a request whose arm is open.
    pub fallback: BreakerFallback,
    /// Hash of the canonical configuration (part of the state key).
    pub fingerprint: u64,
}

/// Identity of one breaker's state: route, plugin configuration, and the traffic-split
/// rule and arm the request went to (or the route's own upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BreakerKey(pub u64);

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "ApiBreaker")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiBreaker {
    #[cfg_attr(
        feature = "schema",
        schemars(with = "crate::config::schema::StatusCode")
    )]
    break_response_code: Option<i64>,
    break_response_body: Option<String>,
    break_response_headers: Option<Vec<RawHeader>>,
    max_breaker_sec: Option<i64>,
    unhealthy: Option<RawUnhealthy>,
    healthy: Option<RawHealthy>,
    policy: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::BreakerFallback>")
    )]
    fallback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "BreakResponseHeader")
)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "BreakerUnhealthy")
)]
#[serde(deny_unknown_fields)]
struct RawUnhealthy {
    http_statuses: Option<Vec<i64>>,
    failures: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "BreakerHealthy")
)]
#[serde(deny_unknown_fields)]
struct RawHealthy {
    http_statuses: Option<Vec<i64>>,
    successes: Option<i64>,
}

impl ApiBreaker {
    /// Parses an `api-breaker` object; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<ApiBreaker, ConfigError> {
        let raw: RawApiBreaker = fields::from_value(value)?;
        let break_response_code = match raw.break_response_code {
            None => return Err(ConfigError::new("break_response_code", "is required")),
            Some(c) => u16::try_from(c)
                .ok()
                .filter(|c| (200..=599).contains(c))
                .ok_or_else(|| ConfigError::new("break_response_code", "must be 200 to 599"))?,
        };
        let mut break_response_headers = Vec::new();
        for (i, header) in raw.break_response_headers.iter().flatten().enumerate() {
            let path = format!("break_response_headers[{i}]");
            let name = http::HeaderName::from_bytes(header.key.as_bytes()).map_err(|_| {
                ConfigError::new(format!("{path}.key"), "must be a valid HTTP header name")
            })?;
            let valid_value =
                !header.value.is_empty() && http::HeaderValue::from_str(&header.value).is_ok();
            if !valid_value {
                return Err(ConfigError::new(
                    format!("{path}.value"),
                    "must be a non-empty valid HTTP header value",
                ));
            }
            break_response_headers.push(BreakHeader {
                name,
                value: header.value.clone(),
            });
        }
        if !break_response_headers.is_empty() && raw.break_response_body.is_none() {
            return Err(ConfigError::new(
                "break_response_headers",
                "are only sent with break_response_body; set a body or remove them",
            ));
        }
        let max_breaker_sec = match raw.max_breaker_sec {
            None => 300,
            Some(s) if s < 3 => return Err(ConfigError::new("max_breaker_sec", "must be >= 3")),
            Some(s) => s.unsigned_abs(),
        };
        let (unhealthy_statuses, failures) = match raw.unhealthy {
            None => (vec![500], 3),
            Some(u) => (
                statuses(
                    u.http_statuses,
                    vec![500],
                    500..=599,
                    "unhealthy.http_statuses",
                )?,
                at_least_one(u.failures, 3, "unhealthy.failures")?,
            ),
        };
        let (healthy_statuses, successes) = match raw.healthy {
            None => (vec![200], 3),
            Some(h) => (
                statuses(
                    h.http_statuses,
                    vec![200],
                    200..=499,
                    "healthy.http_statuses",
                )?,
                at_least_one(h.successes, 3, "healthy.successes")?,
            ),
        };
        match raw.policy.as_deref() {
            None | Some("unhealthy-count") => {}
            Some("unhealthy-ratio") => {
                return Err(ConfigError::new(
                    "policy",
                    "`unhealthy-ratio` is not supported yet; use `unhealthy-count`",
                ))
            }
            Some(_) => return Err(ConfigError::new("policy", "must be `unhealthy-count`")),
        }
        let fallback = match raw.fallback.as_deref() {
            None | Some("reject") => BreakerFallback::Reject,
            Some("other_arms") => BreakerFallback::OtherArms,
            Some(_) => {
                return Err(ConfigError::new(
                    "fallback",
                    "must be `reject` or `other_arms`",
                ))
            }
        };
        Ok(ApiBreaker {
            break_response_code,
            break_response_body: raw.break_response_body,
            break_response_headers,
            max_breaker_sec,
            unhealthy_statuses,
            failures,
            healthy_statuses,
            successes,
            fallback,
            fingerprint: stable_hash(fields::canonical_json(value).as_bytes()),
        })
    }

    /// The state key for route `route_id` and the traffic-split `(rule, arm)` the
    /// request was sent to (`None`: the route's own upstream, no rule matched).
    pub fn state_key(&self, route_id: &str, arm: Option<(usize, usize)>) -> BreakerKey {
        let arm = match arm {
            Some((rule, arm)) => format!("{rule}/{arm}"),
            None => "route".to_owned(),
        };
        let key = format!(
            "api-breaker\u{0}{route_id}\u{0}{arm}\u{0}{:016x}",
            self.fingerprint
        );
        BreakerKey(stable_hash(key.as_bytes()))
    }

    /// True if `status` counts as a failure.
    pub fn is_unhealthy(&self, status: u16) -> bool {
        self.unhealthy_statuses.contains(&status)
    }

    /// True if `status` counts as a success.
    pub fn is_healthy(&self, status: u16) -> bool {
        self.healthy_statuses.contains(&status)
    }
}

fn statuses(
    value: Option<Vec<i64>>,
    default: Vec<u16>,
    range: std::ops::RangeInclusive<u16>,
    path: &str,
) -> Result<Vec<u16>, ConfigError> {
    let Some(list) = value else {
        return Ok(default);
    };
    if list.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    let mut out: Vec<u16> = Vec::with_capacity(list.len());
    for (i, status) in list.into_iter().enumerate() {
        let status = u16::try_from(status)
            .ok()
            .filter(|s| range.contains(s))
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{path}[{i}]"),
                    format!("must be {} to {}", range.start(), range.end()),
                )
            })?;
        if out.contains(&status) {
            return Err(ConfigError::new(format!("{path}[{i}]"), "duplicate status"));
        }
        out.push(status);
    }
    Ok(out)
}

fn at_least_one(value: Option<i64>, default: u64, path: &str) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v < 1 => Err(ConfigError::new(path, "must be >= 1")),
        Some(v) => Ok(v.unsigned_abs()),
    }
}
