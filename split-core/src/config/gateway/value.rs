//! Typed access to `config.yaml` values, with errors that name the field.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::index;
use crate::ConfigError;

/// A present, non-null value (YAML `key:` with nothing after it is null = unset).
pub(super) fn get<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// A sub-mapping, or `None` when absent or null.
pub(super) fn section<'v>(
    map: &'v Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'v Map<String, Value>>, ConfigError> {
    get(map, key).map(|v| as_map(v, path)).transpose()
}

pub(super) fn as_map<'v>(v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, ConfigError> {
    v.as_object()
        .ok_or_else(|| ConfigError::new(path, format!("must be a mapping, got {}", kind(v))))
}

pub(super) fn as_list<'v>(v: &'v Value, path: &str) -> Result<&'v Vec<Value>, ConfigError> {
    v.as_array()
        .ok_or_else(|| ConfigError::new(path, format!("must be a list, got {}", kind(v))))
}

pub(super) fn as_str<'v>(v: &'v Value, path: &str) -> Result<&'v str, ConfigError> {
    v.as_str()
        .ok_or_else(|| ConfigError::new(path, format!("must be a string, got {}", kind(v))))
}

pub(super) fn as_bool(v: &Value, path: &str) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| ConfigError::new(path, format!("must be true or false, got {}", kind(v))))
}

pub(super) fn as_u64(v: &Value, path: &str) -> Result<u64, ConfigError> {
    v.as_u64().ok_or_else(|| {
        ConfigError::new(
            path,
            format!("must be a non-negative integer, got {}", kind(v)),
        )
    })
}

pub(super) fn as_port(v: &Value, path: &str) -> Result<u16, ConfigError> {
    let n = as_u64(v, path)?;
    u16::try_from(n)
        .map_err(|_| ConfigError::new(path, format!("port {n} is out of range 0-65535")))
}

/// `allow_admin`: CIDRs or plain addresses (a plain address is a /32 or /128).
pub(super) fn allow_list(v: &Value, path: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    as_list(v, path)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = index(path, i);
            let s = as_str(item, &p)?.trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| ConfigError::new(p, format!("{s:?} is not a CIDR or IP address")))
        })
        .collect()
}

pub(super) fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}
