//! `rewrite` / `proxy-rewrite` JSON → [`Rewrite`].
//!
//! Accepted keys: `uri`, `regex_uri` (`[regex, template]`), `host`, `headers` (either
//! `{add, set, remove}` or APISIX's older flat `{name: value}` form, where `""` removes),
//! and split's `body` (an object of top-level JSON fields to set; `null` removes).
//! Anything else is refused with its path. NGINX variables (`$remote_addr`, `$arg_x`) in
//! `uri` and header values are not supported yet and are refused rather than sent
//! literally; `regex_uri` captures (`$1`) are supported in the template.

use serde_json::{Map, Value};

use super::{HeaderEdits, RegexUri, Rewrite};
use crate::error::{index, join};
use crate::ConfigError;

/// Longest accepted `uri` (APISIX's limit).
const MAX_URI_LEN: usize = 4096;
/// Compiled size limit for `regex_uri` patterns (bytes of compiled program).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Rewrite {
    /// Parses a `rewrite` (traffic-split arm) or `proxy-rewrite` plugin object. Paths are
    /// relative to the object (`regex_uri[0]`, `headers.set.X-Foo`).
    pub fn from_json(value: &Value) -> Result<Rewrite, ConfigError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ConfigError::new("", "must be an object"))?;
        for key in obj.keys() {
            match key.as_str() {
                "uri" | "regex_uri" | "host" | "headers" | "body" => {}
                "method" | "use_real_request_uri_unsafe" | "scheme" | "regex_body" => {
                    return Err(ConfigError::new(key.as_str(), "is not supported yet"))
                }
                _ => return Err(ConfigError::new(key.as_str(), "unknown field")),
            }
        }
        let uri = obj.get("uri").map(|v| parse_uri(v, "uri")).transpose()?;
        let regex_uri = obj
            .get("regex_uri")
            .map(|v| parse_regex_uri(v, "regex_uri"))
            .transpose()?;
        let host = obj.get("host").map(|v| parse_host(v, "host")).transpose()?;
        let headers = match obj.get("headers") {
            Some(v) => parse_headers(v, "headers")?,
            None => HeaderEdits::default(),
        };
        let body = match obj.get("body") {
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => {
                return Err(ConfigError::new(
                    "body",
                    "must be an object of JSON fields to set",
                ))
            }
            None => None,
        };
        Ok(Rewrite {
            uri,
            regex_uri,
            host,
            headers,
            body,
        })
    }
}

fn as_str<'v>(v: &'v Value, path: &str) -> Result<&'v str, ConfigError> {
    v.as_str()
        .ok_or_else(|| ConfigError::new(path, "must be a string"))
}

/// True if `s` contains a variable reference such as `$arg_x`, `${host}` or `$1`.
fn has_nginx_var(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && (w[1].is_ascii_alphanumeric() || w[1] == b'_' || w[1] == b'{'))
}

fn parse_uri(v: &Value, path: &str) -> Result<String, ConfigError> {
    let s = as_str(v, path)?;
    if !s.starts_with('/') {
        return Err(ConfigError::new(path, "must start with /"));
    }
    if s.len() > MAX_URI_LEN {
        return Err(ConfigError::new(
            path,
            format!("must be at most {MAX_URI_LEN} bytes"),
        ));
    }
    if has_nginx_var(s) {
        return Err(ConfigError::new(
            path,
            "variables ($name, $1) are not supported yet",
        ));
    }
    if s.bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'#')
    {
        return Err(ConfigError::new(
            path,
            "must not contain spaces, control characters or #",
        ));
    }
    Ok(s.to_owned())
}

fn parse_regex_uri(v: &Value, path: &str) -> Result<RegexUri, ConfigError> {
    let items = v
        .as_array()
        .ok_or_else(|| ConfigError::new(path, "must be [regex, template]"))?;
    if items.len() != 2 {
        let msg = if items.len() > 2 && items.len() % 2 == 0 {
            "only one [regex, template] pair is supported yet"
        } else {
            "must be [regex, template]"
        };
        return Err(ConfigError::new(path, msg));
    }
    let pattern = as_str(&items[0], &index(path, 0))?;
    let template = as_str(&items[1], &index(path, 1))?;
    let regex = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| ConfigError::new(index(path, 0), format!("invalid regex: {e}")))?;
    if template.len() > MAX_URI_LEN {
        return Err(ConfigError::new(
            index(path, 1),
            format!("must be at most {MAX_URI_LEN} bytes"),
        ));
    }
    Ok(RegexUri {
        regex,
        template: template.to_owned(),
    })
}

fn parse_host(v: &Value, path: &str) -> Result<String, ConfigError> {
    let s = as_str(v, path)?;
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
        });
    if !ok {
        return Err(ConfigError::new(
            path,
            format!("{s:?} is not a host name (host or host:port)"),
        ));
    }
    Ok(s.to_owned())
}

fn parse_headers(v: &Value, path: &str) -> Result<HeaderEdits, ConfigError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ConfigError::new(path, "must be an object"))?;
    let mut edits = HeaderEdits::default();
    let structured = ["add", "set", "remove"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if !structured {
        // APISIX's older flat form: every entry is a `set`; an empty value removes.
        for (name, value) in obj {
            let p = join(path, name);
            let header = header_name(name, &p)?;
            if value.as_str() == Some("") {
                edits.remove.push(header);
            } else {
                for hv in header_values(value, &p)? {
                    edits.set.push((header.clone(), hv));
                }
            }
        }
        return Ok(edits);
    }
    for (key, value) in obj {
        let p = join(path, key);
        match key.as_str() {
            "add" | "set" => {
                let target = if key == "add" {
                    &mut edits.add
                } else {
                    &mut edits.set
                };
                for (name, v) in as_object(value, &p)? {
                    let hp = join(&p, name);
                    let header = header_name(name, &hp)?;
                    for hv in header_values(v, &hp)? {
                        target.push((header.clone(), hv));
                    }
                }
            }
            "remove" => {
                let items = value
                    .as_array()
                    .ok_or_else(|| ConfigError::new(&p, "must be a list of header names"))?;
                for (i, item) in items.iter().enumerate() {
                    let ip = index(&p, i);
                    edits.remove.push(header_name(as_str(item, &ip)?, &ip)?);
                }
            }
            _ => {
                return Err(ConfigError::new(
                    p,
                    "unknown field (with add/set/remove present, only those are allowed)",
                ))
            }
        }
    }
    Ok(edits)
}

fn as_object<'v>(v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, ConfigError> {
    v.as_object()
        .ok_or_else(|| ConfigError::new(path, "must be an object of header: value"))
}

fn header_name(name: &str, path: &str) -> Result<http::HeaderName, ConfigError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new(path, format!("{name:?} is not a valid header name")))
}

/// A string, a number, or a list of those (one header line each).
fn header_values(v: &Value, path: &str) -> Result<Vec<http::HeaderValue>, ConfigError> {
    let one = |v: &Value, p: &str| -> Result<http::HeaderValue, ConfigError> {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(ConfigError::new(p, "must be a string or a number")),
        };
        if has_nginx_var(&s) {
            return Err(ConfigError::new(
                p,
                "variables ($name, $1) are not supported yet",
            ));
        }
        http::HeaderValue::from_str(&s)
            .map_err(|_| ConfigError::new(p, "is not a valid header value (control characters?)"))
    };
    match v {
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| one(item, &index(path, i)))
            .collect(),
        Value::Array(_) => Err(ConfigError::new(path, "must not be an empty list")),
        _ => Ok(vec![one(v, path)?]),
    }
}
