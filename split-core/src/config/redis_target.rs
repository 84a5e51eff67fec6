//! A Redis server that holds counters shared by several gateways: limit-count
//! `policy: redis` (APISIX's flat `redis_*` fields) and traffic-split `ticket: redis`
//! (a nested `redis {…}` object). Both validate through the same fields.
//!
//! TLS to Redis (`redis_ssl: true`) is refused as not supported yet rather than silently
//! sent in clear text.

use std::fmt;
use std::time::Duration;

use crate::ConfigError;

/// Default Redis port (APISIX `redis_port`).
pub const DEFAULT_REDIS_PORT: u16 = 6379;
/// Default command timeout in milliseconds (APISIX `redis_timeout`).
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 1000;
/// Longest accepted timeout (one hour), so a typo cannot stall requests for days.
const MAX_TIMEOUT_MS: i64 = 3_600_000;

/// Where and how to reach one Redis server. Two configurations with the same target
/// share one connection in the proxy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisTarget {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (default 6379).
    pub port: u16,
    /// ACL user name (`AUTH user password`), if any.
    pub username: Option<String>,
    /// Password, if any. Never printed by `Debug` or `Display`.
    pub password: Option<String>,
    /// Database number (`SELECT`), default 0.
    pub database: u32,
    /// Bound on connecting and on each command (default 1000 ms).
    pub timeout: Duration,
}

impl fmt::Display for RedisTarget {
    /// `redis://host:port/db`, without credentials: safe for logs and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "redis://[{}]:{}/{}", self.host, self.port, self.database)
        } else {
            write!(f, "redis://{}:{}/{}", self.host, self.port, self.database)
        }
    }
}

impl fmt::Debug for RedisTarget {
    // Passwords are secrets: print the target and whether credentials are set, only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTarget")
            .field("addr", &self.to_string())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The raw Redis settings of one plugin, whatever their spelling there.
#[derive(Debug, Default)]
pub(crate) struct RedisFields {
    pub host: Option<String>,
    pub port: Option<i64>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub database: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub ssl: Option<bool>,
}

impl RedisFields {
    /// The name of the first field that is set (for "only used by policy redis").
    pub fn first_present(&self) -> Option<&'static str> {
        [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("database", self.database.is_some()),
            ("timeout", self.timeout_ms.is_some()),
            ("ssl", self.ssl.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }

    /// Validates the fields; `path("host")` names a field in errors (`redis_host` or
    /// `redis.host`).
    pub fn validate(self, path: impl Fn(&str) -> String) -> Result<RedisTarget, ConfigError> {
        let host = match self.host {
            None => return Err(ConfigError::new(path("host"), "is required")),
            Some(h) => h,
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !host_ok {
            return Err(ConfigError::new(
                path("host"),
                "must be a host name or IP address",
            ));
        }
        let port = match self.port {
            None => DEFAULT_REDIS_PORT,
            Some(p) => u16::try_from(p)
                .ok()
                .filter(|p| *p >= 1)
                .ok_or_else(|| ConfigError::new(path("port"), "must be 1 to 65535"))?,
        };
        if self.username.as_deref() == Some("") {
            return Err(ConfigError::new(path("username"), "must not be empty"));
        }
        let database = match self.database {
            None => 0,
            Some(d) => {
                u32::try_from(d).map_err(|_| ConfigError::new(path("database"), "must be >= 0"))?
            }
        };
        let timeout_ms = match self.timeout_ms {
            None => DEFAULT_REDIS_TIMEOUT_MS,
            Some(t) if (1..=MAX_TIMEOUT_MS).contains(&t) => t.unsigned_abs(),
            Some(_) => {
                return Err(ConfigError::new(
                    path("timeout"),
                    format!("must be 1 to {MAX_TIMEOUT_MS} (milliseconds)"),
                ))
            }
        };
        if self.ssl == Some(true) {
            return Err(ConfigError::new(
                path("ssl"),
                "TLS to redis is not supported yet; use a loopback or private redis",
            ));
        }
        Ok(RedisTarget {
            host,
            port,
            username: self.username,
            // An empty password means none, as in APISIX.
            password: self.password.filter(|p| !p.is_empty()),
            database,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(field: &str) -> String {
        format!("redis_{field}")
    }

    #[test]
    fn defaults_and_display_hide_the_password() {
        let t = RedisFields {
            host: Some("127.0.0.1".into()),
            password: Some("s3cret".into()),
            ..RedisFields::default()
        }
        .validate(flat)
        .unwrap();
        assert_eq!(t.port, 6379);
        assert_eq!(t.database, 0);
        assert_eq!(t.timeout, Duration::from_millis(1000));
        assert_eq!(t.to_string(), "redis://127.0.0.1:6379/0");
        assert!(!format!("{t:?}").contains("s3cret"));
        let v6 = RedisFields {
            host: Some("::1".into()),
            ..RedisFields::default()
        }
        .validate(flat)
        .unwrap();
        assert_eq!(v6.to_string(), "redis://[::1]:6379/0");
    }

    #[test]
    fn errors_name_the_field() {
        let err = RedisFields::default().validate(flat).unwrap_err();
        assert_eq!(err.to_string(), "redis_host: is required");
        let bad = |f: RedisFields| f.validate(|n| format!("redis.{n}")).unwrap_err().path;
        let host = || Some("h".to_owned());
        assert_eq!(
            bad(RedisFields {
                host: Some("a b".into()),
                ..RedisFields::default()
            }),
            "redis.host"
        );
        assert_eq!(
            bad(RedisFields {
                host: host(),
                port: Some(0),
                ..RedisFields::default()
            }),
            "redis.port"
        );
        assert_eq!(
            bad(RedisFields {
                host: host(),
                database: Some(-1),
                ..RedisFields::default()
            }),
            "redis.database"
        );
        assert_eq!(
            bad(RedisFields {
                host: host(),
                timeout_ms: Some(0),
                ..RedisFields::default()
            }),
            "redis.timeout"
        );
        assert_eq!(
            bad(RedisFields {
                host: host(),
                ssl: Some(true),
                ..RedisFields::default()
            }),
            "redis.ssl"
        );
        assert_eq!(
            bad(RedisFields {
                host: host(),
                username: Some(String::new()),
                ..RedisFields::default()
            }),
            "redis.username"
        );
    }
}
