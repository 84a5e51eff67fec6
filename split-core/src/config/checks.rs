//! Upstream `checks` (APISIX reference §2): active probes (`checks.active`, required) and
//! passive checks from real responses (`checks.passive`), with APISIX's defaults.
//!
//! Differences from APISIX, each an explicit error rather than a silent change:
//! `https_verify_certificate: false` is refused (upstream certificates are always
//! verified), and `active.concurrency` is accepted but not enforced (the proxy probes
//! all due nodes of an upstream at once).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::ConfigError;

/// How a node is probed or judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckType {
    /// HTTP request, judged by status.
    Http,
    /// HTTPS request (certificate verified, SNI = `host` or the node host).
    Https,
    /// TCP connect only.
    Tcp,
}

/// The thresholds a node's health counters are compared with; 0 disables a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    /// Statuses that count as a success.
    pub healthy_statuses: Vec<u16>,
    /// Consecutive successes that make an unhealthy node healthy.
    pub successes: u32,
    /// Statuses that count as an HTTP failure.
    pub unhealthy_statuses: Vec<u16>,
    /// HTTP failures that make a healthy node unhealthy.
    pub http_failures: u32,
    /// Connect failures that make a healthy node unhealthy.
    pub tcp_failures: u32,
    /// Timeouts that make a healthy node unhealthy.
    pub timeouts: u32,
}

/// `checks.active`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveCheck {
    /// `type` (default http).
    pub kind: CheckType,
    /// `timeout` of one probe (default 1 s).
    pub timeout: Duration,
    /// `host`: Host header and SNI of the probe (default: the node's host).
    pub host: Option<String>,
    /// `port` to probe instead of the node's port.
    pub port: Option<u16>,
    /// `http_path` (default `/`).
    pub http_path: String,
    /// `http_method` (default GET).
    pub http_method: http::Method,
    /// `req_headers`: `"Name: value"` lines, parsed.
    pub req_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// `healthy.interval`: how often a healthy node is probed (default 1 s).
    pub healthy_interval: Duration,
    /// `unhealthy.interval`: how often an unhealthy node is probed (default 1 s).
    pub unhealthy_interval: Duration,
    /// Counters and statuses.
    pub thresholds: Thresholds,
}

/// `checks.passive`: judged from real responses.
#[derive(Debug, Clone, PartialEq)]
pub struct PassiveCheck {
    /// `type` (default http; `tcp` ignores statuses).
    pub kind: CheckType,
    /// Counters and statuses.
    pub thresholds: Thresholds,
}

/// A validated `checks` object.
#[derive(Debug, Clone, PartialEq)]
pub struct Checks {
    /// Active probes.
    pub active: ActiveCheck,
    /// Passive checks, if configured.
    pub passive: Option<PassiveCheck>,
    /// The object as given (for export).
    pub raw: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecks {
    active: Option<RawActive>,
    passive: Option<RawPassive>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActive {
    #[serde(rename = "type")]
    kind: Option<String>,
    timeout: Option<f64>,
    concurrency: Option<i64>,
    host: Option<String>,
    port: Option<i64>,
    http_path: Option<String>,
    http_method: Option<String>,
    https_verify_certificate: Option<bool>,
    req_headers: Option<Vec<String>>,
    healthy: Option<RawHealthy>,
    unhealthy: Option<RawUnhealthy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassive {
    #[serde(rename = "type")]
    kind: Option<String>,
    healthy: Option<RawHealthy>,
    unhealthy: Option<RawUnhealthy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthy {
    interval: Option<i64>,
    http_statuses: Option<Vec<i64>>,
    successes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnhealthy {
    interval: Option<i64>,
    http_statuses: Option<Vec<i64>>,
    http_failures: Option<i64>,
    tcp_failures: Option<i64>,
    timeouts: Option<i64>,
}

const ACTIVE_HEALTHY: &[u16] = &[200, 302];
const ACTIVE_UNHEALTHY: &[u16] = &[429, 404, 500, 501, 502, 503, 504, 505];
const PASSIVE_HEALTHY: &[u16] = &[
    200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
];
const PASSIVE_UNHEALTHY: &[u16] = &[429, 500, 503];

impl Checks {
    /// Parses and validates a `checks` object; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<Checks, ConfigError> {
        let raw: RawChecks = fields::from_value(value)?;
        let Some(active) = raw.active else {
            return Err(ConfigError::new("active", "is required"));
        };
        let active = active.validate().map_err(|e| e.within("active"))?;
        let passive = raw
            .passive
            .map(|p| p.validate().map_err(|e| e.within("passive")))
            .transpose()?;
        Ok(Checks {
            active,
            passive,
            raw: value.clone(),
        })
    }
}

fn check_type(kind: Option<&str>) -> Result<CheckType, ConfigError> {
    match kind {
        None | Some("http") => Ok(CheckType::Http),
        Some("https") => Ok(CheckType::Https),
        Some("tcp") => Ok(CheckType::Tcp),
        Some(other) => Err(ConfigError::new(
            "type",
            format!("must be one of http, https, tcp (got `{other}`)"),
        )),
    }
}

/// An integer in `min..=max`, or `default`.
fn ranged(
    value: Option<i64>,
    path: &str,
    min: i64,
    max: i64,
    default: u32,
) -> Result<u32, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => {
            u32::try_from(v).map_err(|_| ConfigError::new(path, format!("must be {min} to {max}")))
        }
        Some(_) => Err(ConfigError::new(path, format!("must be {min} to {max}"))),
    }
}

fn statuses(value: Option<Vec<i64>>, path: &str, default: &[u16]) -> Result<Vec<u16>, ConfigError> {
    let Some(list) = value else {
        return Ok(default.to_vec());
    };
    if list.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.into_iter().enumerate() {
        match u16::try_from(s) {
            Ok(s) if (200..=599).contains(&s) => {
                if out.contains(&s) {
                    return Err(ConfigError::new(format!("{path}[{i}]"), "duplicate status"));
                }
                out.push(s);
            }
            _ => {
                return Err(ConfigError::new(
                    format!("{path}[{i}]"),
                    "must be a status from 200 to 599",
                ))
            }
        }
    }
    Ok(out)
}

impl RawActive {
    fn validate(self) -> Result<ActiveCheck, ConfigError> {
        let kind = check_type(self.kind.as_deref())?;
        let timeout = match self.timeout {
            None => Duration::from_secs(1),
            Some(t) => fields::positive_seconds(t, "timeout")?,
        };
        ranged(self.concurrency, "concurrency", 0, i64::from(u32::MAX), 10)?;
        if let Some(host) = &self.host {
            fields::check_upstream_host(host, "host")?;
        }
        let port = match self.port {
            None => None,
            Some(p) => match u16::try_from(p) {
                Ok(p) if p >= 1 => Some(p),
                _ => return Err(ConfigError::new("port", "must be 1 to 65535")),
            },
        };
        let http_path = self.http_path.unwrap_or_else(|| "/".to_owned());
        if !http_path.starts_with('/') || http_path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(ConfigError::new(
                "http_path",
                "must be a path starting with `/`",
            ));
        }
        let http_method = match self.http_method.as_deref() {
            None => http::Method::GET,
            Some(m @ ("GET" | "HEAD" | "POST" | "PUT" | "OPTIONS")) => m
                .parse()
                .map_err(|_| ConfigError::new("http_method", "invalid method"))?,
            Some(other) => {
                return Err(ConfigError::new(
                    "http_method",
                    format!("must be one of GET, HEAD, POST, PUT, OPTIONS (got `{other}`)"),
                ))
            }
        };
        if self.https_verify_certificate == Some(false) {
            return Err(ConfigError::new(
                "https_verify_certificate",
                "false is not supported: upstream certificates are always verified",
            ));
        }
        let mut req_headers = Vec::new();
        for (i, line) in self.req_headers.iter().flatten().enumerate() {
            let path = format!("req_headers[{i}]");
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| ConfigError::new(&path, "must be `Name: value`"))?;
            let name = http::HeaderName::try_from(name.trim())
                .map_err(|_| ConfigError::new(&path, "invalid header name"))?;
            let value = http::HeaderValue::try_from(value.trim())
                .map_err(|_| ConfigError::new(&path, "invalid header value"))?;
            req_headers.push((name, value));
        }
        let healthy = self.healthy.unwrap_or_default();
        let unhealthy = self.unhealthy.unwrap_or_default();
        let interval = |v: Option<i64>, path: &str| -> Result<Duration, ConfigError> {
            ranged(v, path, 1, 86_400, 1).map(|s| Duration::from_secs(u64::from(s)))
        };
        Ok(ActiveCheck {
            kind,
            timeout,
            host: self.host,
            port,
            http_path,
            http_method,
            req_headers,
            healthy_interval: interval(healthy.interval, "healthy.interval")?,
            unhealthy_interval: interval(unhealthy.interval, "unhealthy.interval")?,
            thresholds: Thresholds {
                healthy_statuses: statuses(
                    healthy.http_statuses,
                    "healthy.http_statuses",
                    ACTIVE_HEALTHY,
                )?,
                successes: ranged(healthy.successes, "healthy.successes", 1, 254, 2)?,
                unhealthy_statuses: statuses(
                    unhealthy.http_statuses,
                    "unhealthy.http_statuses",
                    ACTIVE_UNHEALTHY,
                )?,
                http_failures: ranged(
                    unhealthy.http_failures,
                    "unhealthy.http_failures",
                    1,
                    254,
                    5,
                )?,
                tcp_failures: ranged(unhealthy.tcp_failures, "unhealthy.tcp_failures", 1, 254, 2)?,
                timeouts: ranged(unhealthy.timeouts, "unhealthy.timeouts", 1, 254, 3)?,
            },
        })
    }
}

impl RawPassive {
    fn validate(self) -> Result<PassiveCheck, ConfigError> {
        let kind = check_type(self.kind.as_deref())?;
        let healthy = self.healthy.unwrap_or_default();
        let unhealthy = self.unhealthy.unwrap_or_default();
        if healthy.interval.is_some() {
            return Err(ConfigError::new(
                "healthy.interval",
                "only active checks have an interval",
            ));
        }
        if unhealthy.interval.is_some() {
            return Err(ConfigError::new(
                "unhealthy.interval",
                "only active checks have an interval",
            ));
        }
        Ok(PassiveCheck {
            kind,
            thresholds: Thresholds {
                healthy_statuses: statuses(
                    healthy.http_statuses,
                    "healthy.http_statuses",
                    PASSIVE_HEALTHY,
                )?,
                successes: ranged(healthy.successes, "healthy.successes", 0, 254, 5)?,
                unhealthy_statuses: statuses(
                    unhealthy.http_statuses,
                    "unhealthy.http_statuses",
                    PASSIVE_UNHEALTHY,
                )?,
                http_failures: ranged(
                    unhealthy.http_failures,
                    "unhealthy.http_failures",
                    0,
                    254,
                    5,
                )?,
                tcp_failures: ranged(unhealthy.tcp_failures, "unhealthy.tcp_failures", 0, 254, 2)?,
                timeouts: ranged(unhealthy.timeouts, "unhealthy.timeouts", 0, 254, 7)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_are_apisix_s() {
        let c = Checks::from_json(&json!({"active": {}})).unwrap();
        let a = &c.active;
        assert_eq!(a.kind, CheckType::Http);
        assert_eq!(a.timeout, Duration::from_secs(1));
        assert_eq!(a.http_path, "/");
        assert_eq!(a.healthy_interval, Duration::from_secs(1));
        assert_eq!(a.thresholds.healthy_statuses, vec![200, 302]);
        assert_eq!(a.thresholds.successes, 2);
        assert_eq!(a.thresholds.unhealthy_statuses, ACTIVE_UNHEALTHY.to_vec());
        assert_eq!(
            (
                a.thresholds.http_failures,
                a.thresholds.tcp_failures,
                a.thresholds.timeouts
            ),
            (5, 2, 3)
        );
        assert!(c.passive.is_none());
        let c = Checks::from_json(&json!({"active": {}, "passive": {}})).unwrap();
        let p = c.passive.unwrap().thresholds;
        assert_eq!(p.healthy_statuses.len(), 19);
        assert_eq!(p.unhealthy_statuses, vec![429, 500, 503]);
        assert_eq!(
            (p.successes, p.http_failures, p.tcp_failures, p.timeouts),
            (5, 5, 2, 7)
        );
    }

    #[test]
    fn a_full_active_check() {
        let c = Checks::from_json(&json!({"active": {
            "type": "http", "http_path": "/health", "host": "api.example.com", "port": 8081,
            "timeout": 0.5, "req_headers": ["X-Probe: 1"],
            "healthy": {"interval": 2, "http_statuses": [200], "successes": 1},
            "unhealthy": {"interval": 1, "http_statuses": [500, 503], "http_failures": 1,
                          "tcp_failures": 1, "timeouts": 1}
        }}))
        .unwrap();
        let a = c.active;
        assert_eq!(a.http_path, "/health");
        assert_eq!(a.host.as_deref(), Some("api.example.com"));
        assert_eq!(a.port, Some(8081));
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert_eq!(a.req_headers.len(), 1);
        assert_eq!(a.healthy_interval, Duration::from_secs(2));
        assert_eq!(a.thresholds.successes, 1);
        assert_eq!(a.thresholds.unhealthy_statuses, vec![500, 503]);
    }

    #[test]
    fn errors_name_the_field() {
        let err = |v: Value| Checks::from_json(&v).unwrap_err().to_string();
        assert_eq!(err(json!({"passive": {}})), "active: is required");
        assert_eq!(
            err(json!({"active": {"type": "udp"}})),
            "active.type: must be one of http, https, tcp (got `udp`)"
        );
        assert_eq!(
            err(json!({"active": {"healthy": {"successes": 0}}})),
            "active.healthy.successes: must be 1 to 254"
        );
        assert_eq!(
            err(json!({"active": {"unhealthy": {"http_statuses": [200, 99]}}})),
            "active.unhealthy.http_statuses[1]: must be a status from 200 to 599"
        );
        assert_eq!(
            err(json!({"active": {"http_path": "health"}})),
            "active.http_path: must be a path starting with `/`"
        );
        assert!(err(json!({"active": {"nope": 1}})).starts_with("active.nope"));
        assert_eq!(
            err(json!({"active": {"port": 0}})),
            "active.port: must be 1 to 65535"
        );
        assert_eq!(
            err(json!({"active": {}, "passive": {"healthy": {"interval": 1}}})),
            "passive.healthy.interval: only active checks have an interval"
        );
    }
}
