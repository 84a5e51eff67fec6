//! Secret references in header values: `$env://NAME` (APISIX's secret syntax).
//!
//! A rewrite header value may be a reference instead of a literal, so clients never hold
//! the provider key and the config store never holds it either:
//! - the whole value: `"Authorization": "$env://AIML_AUTH"` (the variable holds
//!   `Bearer sk-…`), or
//! - a literal prefix and the reference at the end: `"Authorization": "Bearer
//!   $env://AIML_API_KEY"`.
//!
//! `NAME` is `[A-Za-z_][A-Za-z0-9_]*`; one reference per value, nothing after it.
//! The core keeps the reference as a typed [`SecretValue`] and never reads the
//! environment: the proxy passes a lookup function to [`SecretValue::resolve`]. Errors
//! and `Debug` name the reference, never a resolved value.
//!
//! [`mask_literal_credentials`] is the Admin API read rule: a literal (non-reference)
//! `Authorization` / `Proxy-Authorization` header value inside a rewrite is shown as
//! `"******"`; references are shown as stored (they are not secrets).

use serde_json::Value;

/// The reference marker.
pub const ENV_SCHEME: &str = "$env://";

/// Looks a variable up by name (the proxy passes the process environment).
pub type Lookup = dyn Fn(&str) -> Option<String>;

/// What a masked literal credential is replaced with in Admin API reads.
pub const MASK: &str = "******";

/// A header value built from a literal prefix and an environment variable.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue {
    /// Literal text before the reference (e.g. `Bearer `), often empty.
    pub prefix: String,
    /// The environment variable name.
    pub var: String,
}

impl std::fmt::Debug for SecretValue {
    // Only the reference, which is not secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({}{}{})", self.prefix, ENV_SCHEME, self.var)
    }
}

/// Why a reference could not be turned into a header value. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The variable is not set (or not valid UTF-8).
    #[error("secret $env://{0} is not set")]
    NotSet(String),
    /// The variable's value cannot be sent in a header (control characters).
    #[error("secret $env://{0} is not a valid header value")]
    InvalidValue(String),
}

impl SecretValue {
    /// Parses `text` when it contains a reference: `Ok(None)` for a plain literal,
    /// `Err(reason)` for a malformed reference (the caller adds the field path).
    pub fn parse(text: &str) -> Result<Option<SecretValue>, String> {
        let Some(at) = text.find(ENV_SCHEME) else {
            return Ok(None);
        };
        let prefix = &text[..at];
        let var = &text[at + ENV_SCHEME.len()..];
        let valid_name = var
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            return Err(format!(
                "`{}` must be followed by a variable name ([A-Za-z_][A-Za-z0-9_]*) \
                 and nothing else",
                ENV_SCHEME
            ));
        }
        if prefix.contains('$') {
            return Err("only a literal prefix may come before `$env://NAME`".to_owned());
        }
        if http::HeaderValue::from_str(prefix).is_err() {
            return Err("invalid header value".to_owned());
        }
        Ok(Some(SecretValue {
            prefix: prefix.to_owned(),
            var: var.to_owned(),
        }))
    }

    /// The reference as written in the config (`Bearer $env://NAME`).
    pub fn reference(&self) -> String {
        format!("{}{}{}", self.prefix, ENV_SCHEME, self.var)
    }

    /// The header value: prefix + the variable's value from `lookup`. The result is
    /// marked sensitive so HTTP/2 encoders never index it.
    pub fn resolve(&self, lookup: &Lookup) -> Result<http::HeaderValue, SecretError> {
        let value = lookup(&self.var).ok_or_else(|| SecretError::NotSet(self.var.clone()))?;
        let mut out = http::HeaderValue::from_str(&format!("{}{value}", self.prefix))
            .map_err(|_| SecretError::InvalidValue(self.var.clone()))?;
        out.set_sensitive(true);
        Ok(out)
    }
}

/// Header names whose literal values are credentials and are masked in Admin API reads.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization"];

/// Masks literal credential header values of rewrites inside a stored object (a route,
/// service or plugin_config JSON): `plugins.proxy-rewrite.headers` and every
/// `traffic-split` arm's `rewrite.headers`, in both the flat and the `{set, add}` form.
/// `$env://` references are left as they are. Returns true when something was masked.
pub fn mask_literal_credentials(object: &mut Value) -> bool {
    let Some(plugins) = object.get_mut("plugins").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut masked = false;
    if let Some(headers) = plugins
        .get_mut("proxy-rewrite")
        .and_then(|p| p.get_mut("headers"))
    {
        masked |= mask_headers(headers);
    }
    let Some(rules) = plugins
        .get_mut("traffic-split")
        .and_then(|t| t.get_mut("rules"))
        .and_then(Value::as_array_mut)
    else {
        return masked;
    };
    for rule in rules {
        // The shorthand's rule items are arms themselves.
        masked |= mask_arm(rule);
        if let Some(arms) = rule
            .get_mut("weighted_upstreams")
            .and_then(Value::as_array_mut)
        {
            for arm in arms {
                masked |= mask_arm(arm);
            }
        }
    }
    masked
}

fn mask_arm(arm: &mut Value) -> bool {
    match arm.get_mut("rewrite").and_then(|r| r.get_mut("headers")) {
        Some(headers) => mask_headers(headers),
        None => false,
    }
}

fn mask_headers(headers: &mut Value) -> bool {
    let Some(map) = headers.as_object_mut() else {
        return false;
    };
    let mut masked = false;
    for (name, value) in map.iter_mut() {
        if matches!(name.as_str(), "set" | "add") {
            if let Some(inner) = value.as_object_mut() {
                for (name, value) in inner.iter_mut() {
                    masked |= mask_value(name, value);
                }
            }
        } else {
            masked |= mask_value(name, value);
        }
    }
    masked
}

fn mask_value(name: &str, value: &mut Value) -> bool {
    let credential = CREDENTIAL_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name));
    let literal = match value {
        Value::String(s) => !s.contains(ENV_SCHEME) && !s.is_empty(),
        Value::Number(_) => true,
        _ => false,
    };
    if credential && literal {
        *value = Value::String(MASK.to_owned());
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_whole_and_prefixed_references() {
        assert_eq!(SecretValue::parse("Bearer sk-1"), Ok(None));
        let whole = SecretValue::parse("$env://AIML_AUTH").unwrap().unwrap();
        assert_eq!(whole.prefix, "");
        assert_eq!(whole.var, "AIML_AUTH");
        let bearer = SecretValue::parse("Bearer $env://AIML_API_KEY")
            .unwrap()
            .unwrap();
        assert_eq!(bearer.prefix, "Bearer ");
        assert_eq!(bearer.reference(), "Bearer $env://AIML_API_KEY");
        for bad in [
            "$env://",
            "$env://1X",
            "$env://A/b",
            "$env://A B",
            "$x $env://A",
            "\n$env://A",
        ] {
            assert!(SecretValue::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_through_the_lookup_and_never_leaks() {
        let v = SecretValue::parse("Bearer $env://K").unwrap().unwrap();
        let got = v
            .resolve(&|name| (name == "K").then(|| "sk-secret".to_owned()))
            .unwrap();
        assert_eq!(got, "Bearer sk-secret");
        assert!(got.is_sensitive());
        let err = v.resolve(&|_| None).unwrap_err();
        assert_eq!(err.to_string(), "secret $env://K is not set");
        let err = v.resolve(&|_| Some("a\nb".to_owned())).unwrap_err();
        assert_eq!(err, SecretError::InvalidValue("K".to_owned()));
        assert!(!err.to_string().contains("a\nb"));
        assert_eq!(format!("{v:?}"), "SecretValue(Bearer $env://K)");
    }

    #[test]
    fn masks_literal_credentials_only() {
        let mut route = json!({"plugins": {
            "proxy-rewrite": {"headers": {"Authorization": "Bearer sk-live", "X-A": "1"}},
            "traffic-split": {"rules": [
                {"weight": 1, "upstream": {}, "rewrite": {"headers": {"set": {
                    "authorization": "Bearer $env://KEY", "Proxy-Authorization": "Basic x"}}}},
                {"weighted_upstreams": [{"rewrite": {"headers": {"add": {"Authorization": "t"}}}}]}
            ]}
        }});
        assert!(mask_literal_credentials(&mut route));
        let p = &route["plugins"];
        assert_eq!(p["proxy-rewrite"]["headers"]["Authorization"], MASK);
        assert_eq!(p["proxy-rewrite"]["headers"]["X-A"], "1");
        let set = &p["traffic-split"]["rules"][0]["rewrite"]["headers"]["set"];
        assert_eq!(set["authorization"], "Bearer $env://KEY");
        assert_eq!(set["Proxy-Authorization"], MASK);
        let add =
            &p["traffic-split"]["rules"][1]["weighted_upstreams"][0]["rewrite"]["headers"]["add"];
        assert_eq!(add["Authorization"], MASK);
        let mut plain = json!({"uri": "/x", "plugins": {"proxy-rewrite": {"uri": "/y"}}});
        assert!(!mask_literal_credentials(&mut plain));
    }
}
