//! Shared field parsers of the config model: serde with field paths, ids, names, labels,
//! timeouts, hosts and canonical JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::config::upstream::Timeout;
use crate::ConfigError;

/// Deserializes a raw serde type from `value`; a failure names the field path
/// (`nodes[0].weight`) and carries serde's message (`unknown field \`foo\`, ...`,
/// `invalid type: integer \`5\`, expected a string`).
pub(crate) fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let mut path = String::new();
        for segment in err.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    path.push_str(&format!("[{index}]"));
                }
                serde_path_to_error::Segment::Map { key }
                | serde_path_to_error::Segment::Enum { variant: key } => {
                    path = crate::error::join(&path, key);
                }
                serde_path_to_error::Segment::Unknown => path = crate::error::join(&path, "?"),
            }
        }
        ConfigError::new(path, err.inner().to_string())
    })
}

/// An error at `path` if `value` is present: used for APISIX fields split rejects
/// explicitly (`checks`, `filter_func`, ...) so nothing is silently ignored.
pub(crate) fn reject_present(
    value: &Option<Value>,
    path: &str,
    message: &str,
) -> Result<(), ConfigError> {
    match value {
        Some(_) => Err(ConfigError::new(path, message)),
        None => Ok(()),
    }
}

/// A weight-like integer: `>= 0` and fits `u32`.
pub(crate) fn non_negative_u32(value: i64, path: &str) -> Result<u32, ConfigError> {
    if value < 0 {
        return Err(ConfigError::new(path, "must be >= 0"));
    }
    u32::try_from(value).map_err(|_| ConfigError::new(path, format!("must be <= {}", u32::MAX)))
}

/// An object id: a string of 1-64 `[a-zA-Z0-9-_.]`, or an integer >= 1 (which becomes its
/// decimal string), as APISIX's `id_schema`.
pub(crate) fn parse_id(value: &Value, path: &str) -> Result<String, ConfigError> {
    const MESSAGE: &str = "must be a string of 1-64 characters [a-zA-Z0-9-_.] or an integer >= 1";
    match value {
        Value::String(s) => {
            let valid = !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if valid {
                Ok(s.clone())
            } else {
                Err(ConfigError::new(path, MESSAGE))
            }
        }
        Value::Number(n) => match n.as_u64() {
            Some(v) if v >= 1 => Ok(v.to_string()),
            _ => Err(ConfigError::new(path, MESSAGE)),
        },
        _ => Err(ConfigError::new(path, MESSAGE)),
    }
}

/// `name`: 1..=256 characters.
pub(crate) fn check_name(name: &Option<String>, path: &str) -> Result<(), ConfigError> {
    if let Some(name) = name {
        let len = name.chars().count();
        if len == 0 || len > 256 {
            return Err(ConfigError::new(path, "must be 1 to 256 characters"));
        }
    }
    Ok(())
}

/// `desc`: at most 256 characters.
pub(crate) fn check_desc(desc: &Option<String>, path: &str) -> Result<(), ConfigError> {
    if let Some(desc) = desc {
        if desc.chars().count() > 256 {
            return Err(ConfigError::new(path, "must be at most 256 characters"));
        }
    }
    Ok(())
}

/// `labels`: string → non-empty string without whitespace, at most 256 characters.
pub(crate) fn check_labels(
    labels: &Option<BTreeMap<String, String>>,
    path: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(labels) = labels else {
        return Ok(BTreeMap::new());
    };
    for (key, value) in labels {
        let valid = !value.is_empty()
            && value.chars().count() <= 256
            && !value.chars().any(char::is_whitespace);
        if !valid {
            return Err(ConfigError::new(
                crate::error::join(path, key),
                "must be 1 to 256 characters without whitespace",
            ));
        }
    }
    Ok(labels.clone())
}

/// Raw `timeout {connect, send, read}`: all three required.
#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "Timeout")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeout {
    connect: f64,
    send: f64,
    read: f64,
}

impl RawTimeout {
    /// Validates: each value is seconds > 0 (fractions allowed). Paths are relative to
    /// the `timeout` object.
    pub(crate) fn validate(&self) -> Result<Timeout, ConfigError> {
        Ok(Timeout {
            connect: positive_seconds(self.connect, "connect")?,
            send: positive_seconds(self.send, "send")?,
            read: positive_seconds(self.read, "read")?,
        })
    }
}

/// Seconds > 0 as a `Duration`.
pub(crate) fn positive_seconds(value: f64, path: &str) -> Result<Duration, ConfigError> {
    if value.is_nan() || value <= 0.0 {
        return Err(ConfigError::new(path, "must be > 0"));
    }
    Duration::try_from_secs_f64(value).map_err(|_| ConfigError::new(path, "is too large"))
}

/// Seconds >= 0 as a `Duration`.
pub(crate) fn non_negative_seconds(value: f64, path: &str) -> Result<Duration, ConfigError> {
    if value.is_nan() || value < 0.0 {
        return Err(ConfigError::new(path, "must be >= 0"));
    }
    Duration::try_from_secs_f64(value).map_err(|_| ConfigError::new(path, "is too large"))
}

/// A host name or IP literal as APISIX's `host_def` for rewrites and `upstream_host`:
/// `[0-9a-zA-Z-.]+` optionally followed by `:port`, or a bracketed IPv6 literal.
pub(crate) fn check_upstream_host(host: &str, path: &str) -> Result<(), ConfigError> {
    let invalid = || ConfigError::new(path, "invalid host");
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']').ok_or_else(invalid)?;
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid());
        }
        let port = if tail.is_empty() {
            None
        } else {
            Some(tail.strip_prefix(':').ok_or_else(invalid)?)
        };
        (None, port)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !valid {
            return Err(invalid());
        }
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(ConfigError::new(path, "invalid port"));
        }
    }
    Ok(())
}

/// True if `s` contains an nginx-style variable reference (`$uri`, `${host}`), which
/// split does not interpolate. Captures such as `$1` are not variables.
pub(crate) fn has_nginx_var(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().any(|(i, b)| {
        *b == b'$'
            && match bytes.get(i + 1) {
                Some(b'{') => bytes
                    .get(i + 2)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_'),
                Some(c) => c.is_ascii_alphabetic() || *c == b'_',
                None => false,
            }
    })
}

/// Canonical JSON: object keys sorted at every level, no whitespace. Two values that are
/// equal as JSON render identically regardless of key order.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    #[test]
    fn from_value_reports_paths() {
        let err = from_value::<Outer>(&json!({"items": [{"name": "a"}, {"name": 5}]})).unwrap_err();
        assert_eq!(err.path, "items[1].name");
        assert!(err.message.contains("expected a string"), "{}", err.message);
        let err = from_value::<Outer>(&json!({"items": [{"name": "a", "foo": 1}]})).unwrap_err();
        assert!(
            err.message.contains("unknown field `foo`"),
            "{}",
            err.message
        );
        assert!(err.path.starts_with("items[0]"), "{}", err.path);
        let err = from_value::<Outer>(&json!({})).unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.message.contains("missing field `items`"));
    }

    #[test]
    fn ids() {
        assert_eq!(parse_id(&json!(7), "x").unwrap(), "7");
        assert_eq!(parse_id(&json!("a-b_c.1"), "x").unwrap(), "a-b_c.1");
        assert!(parse_id(&json!(0), "x").is_err());
        assert!(parse_id(&json!(-1), "x").is_err());
        assert!(parse_id(&json!(""), "x").is_err());
        assert!(parse_id(&json!("a b"), "x").is_err());
        assert!(parse_id(&json!("x".repeat(65)), "x").is_err());
        assert!(parse_id(&json!(1.5), "x").is_err());
    }

    #[test]
    fn canonical_sorts_keys() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"y":2,"x":1}],"c":"s"}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"s","d":[1,{"x":1,"y":2}]},"b":1}"#
        );
    }

    #[test]
    fn nginx_vars() {
        assert!(has_nginx_var("/api$uri"));
        assert!(has_nginx_var("${host}"));
        assert!(!has_nginx_var("/v1/$1"));
        assert!(!has_nginx_var("price $"));
        assert!(!has_nginx_var("/plain"));
    }

    #[test]
    fn upstream_hosts() {
        assert!(check_upstream_host("api.example.com", "h").is_ok());
        assert!(check_upstream_host("api.example.com:8443", "h").is_ok());
        assert!(check_upstream_host("[::1]:80", "h").is_ok());
        assert!(check_upstream_host("[::1]", "h").is_ok());
        assert!(check_upstream_host("a b", "h").is_err());
        assert!(check_upstream_host("", "h").is_err());
        assert!(check_upstream_host("x:0", "h").is_err());
        assert!(check_upstream_host("[::1]x", "h").is_err());
    }

    #[test]
    fn seconds() {
        assert!(positive_seconds(0.0, "t").is_err());
        assert!(positive_seconds(0.5, "t").is_ok());
        assert_eq!(
            positive_seconds(1e300, "t").unwrap_err().message,
            "is too large"
        );
        assert!(non_negative_seconds(0.0, "t").is_ok());
        assert!(non_negative_seconds(-1.0, "t").is_err());
    }
}
