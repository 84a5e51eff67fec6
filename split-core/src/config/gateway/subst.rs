//! `${{NAME}}` and `${{NAME:=default}}` substitution in `config.yaml` string values.
//!
//! Like APISIX, substitution happens on parsed values (never on the raw text, so a
//! variable cannot inject YAML structure), and a value that changed is re-typed:
//! `true`/`false` become booleans and numbers become numbers, so `port: ${{PORT}}` works.
//! A missing variable without a default is an error naming the variable and the field.

use serde_json::{Number, Value};

use crate::error::{index, join};
use crate::ConfigError;

/// Substitutes every reference in the string values of `value`, in place.
pub(crate) fn substitute(
    value: &mut Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains("${{") => {
            let replaced = expand(s, env).map_err(|m| ConfigError::new(path, m))?;
            *value = retype(replaced);
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &index(path, i), env)?;
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                substitute(v, &join(path, k), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands all references in `s`.
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after.find("}}").ok_or_else(|| {
            "unterminated ${{ (expected ${{NAME}} or ${{NAME:=default}})".to_owned()
        })?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":=") {
            Some((n, d)) => (n.trim(), Some(d.trim())),
            None => (inner.trim(), None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "invalid variable name {name:?} in ${{{{...}}}} (letters, digits and _ only)"
            ));
        }
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set and has no default (write ${{{{{name}:=default}}}})"
                ))
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `true`/`false` → bool, integers and finite floats → number, else a string.
fn retype(s: String) -> Value {
    match s.as_str() {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(u) = s.parse::<u64>() {
        return Value::Number(Number::from(u));
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::Number(Number::from(i));
    }
    if s.contains('.') {
        if let Some(n) = s.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("9081".into()),
            "KEY" => Some("k3y".into()),
            "ON" => Some("false".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_retypes() {
        let mut v = json!({"p": "${{PORT}}", "k": "pre-${{KEY}}-${{ NOPE := d }}", "b": "${{ON}}", "l": ["${{X:=1.5}}"]});
        substitute(&mut v, "", &env).expect("all resolvable");
        assert_eq!(
            v,
            json!({"p": 9081, "k": "pre-k3y-d", "b": false, "l": [1.5]})
        );
    }

    #[test]
    fn missing_and_malformed() {
        let mut v = json!({"a": {"b": ["x", "${{MISSING}}"]}});
        let e = substitute(&mut v, "", &env).unwrap_err();
        assert_eq!(e.path, "a.b[1]");
        assert!(e.message.contains("MISSING"), "{e}");
        let mut v = json!({"a": "${{PORT"});
        assert!(substitute(&mut v, "", &env)
            .unwrap_err()
            .message
            .contains("unterminated"));
        let mut v = json!({"a": "${{P-1}}"});
        assert!(substitute(&mut v, "", &env)
            .unwrap_err()
            .message
            .contains("invalid variable name"));
        // Plain text with a single `$` or `{{` is untouched.
        let mut v = json!({"a": "$HOME {{x}}"});
        substitute(&mut v, "", &env).expect("no references");
        assert_eq!(v, json!({"a": "$HOME {{x}}"}));
    }
}
