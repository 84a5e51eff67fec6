//! YAML text → `serde_json::Value`, shared by `config.yaml` and standalone `apisix.yaml`.
//!
//! Both documents are validated as JSON afterwards (the Admin API's own model), so the
//! YAML layer only has to produce JSON faithfully: mapping keys become strings (numbers
//! and booleans by their text, as APISIX's Lua tables would), tags are dropped, and
//! non-finite floats are refused. Parse errors keep serde_yaml_ng's `line N column M`.

use serde_json::{Map, Number, Value};
use serde_yaml_ng::Value as Yaml;

use crate::error::{index, join};
use crate::ConfigError;

/// Parses YAML text into JSON. An empty, whitespace-only or comment-only document is
/// `Value::Null`.
pub(crate) fn parse(text: &str) -> Result<Value, ConfigError> {
    // Whitespace-only text (tabs included, which YAML itself rejects) is empty.
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let yaml: Yaml = serde_yaml_ng::from_str(text).map_err(|e| {
        let mut msg = format!("invalid YAML: {e}");
        if let Some(loc) = e.location() {
            if !msg.contains("line") {
                msg.push_str(&format!(" at line {} column {}", loc.line(), loc.column()));
            }
        }
        ConfigError::new("", msg)
    })?;
    to_json(yaml, "")
}

fn to_json(yaml: Yaml, path: &str) -> Result<Value, ConfigError> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => Value::Number(number(&n, path)?),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(seq) => Value::Array(
            seq.into_iter()
                .enumerate()
                .map(|(i, v)| to_json(v, &index(path, i)))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Bool(b) => b.to_string(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Null => "null".to_owned(),
                    _ => return Err(ConfigError::new(path, "mapping keys must be plain scalars")),
                };
                let child = join(path, &key);
                let value = to_json(v, &child)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => to_json(tagged.value, path)?,
    })
}

fn number(n: &serde_yaml_ng::Number, path: &str) -> Result<Number, ConfigError> {
    if let Some(u) = n.as_u64() {
        return Ok(Number::from(u));
    }
    if let Some(i) = n.as_i64() {
        return Ok(Number::from(i));
    }
    n.as_f64()
        .and_then(Number::from_f64)
        .ok_or_else(|| ConfigError::new(path, format!("number {n} is not finite")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_scalars_and_keys() {
        let v = parse("a: 1\nb: [true, -2, 1.5, ~, x]\n9080: port\n").expect("valid yaml");
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": [true, -2, 1.5, null, "x"], "9080": "port"})
        );
        assert_eq!(parse("").expect("empty"), Value::Null);
        assert_eq!(parse("# only a comment\n").expect("comment"), Value::Null);
    }

    #[test]
    fn errors_carry_line() {
        let e = parse("a: 1\nb: [\n").unwrap_err();
        assert!(e.message.contains("line"), "{e}");
        let e = parse("a: .nan\n").unwrap_err();
        assert_eq!(e.path, "a");
        let e = parse("? [1, 2]\n: x\n").unwrap_err();
        assert!(e.message.contains("keys"), "{e}");
    }
}
