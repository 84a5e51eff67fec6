//! A small JSON Schema (draft 2020-12) checker for the keywords the generated schemas
//! use. An unknown keyword fails the test instead of being skipped, so a schema can
//! never pass here by using something this checker ignores.

use serde_json::Value;

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$defs",
    "title",
    "description",
    "default",
    "format",
    "examples",
];

/// Checks `value` against `schema`, resolving `$ref`s (`#/...` JSON pointers) in `root`.
/// Returns the first violation as `path: reason`.
pub fn check(root: &Value, schema: &Value, value: &Value) -> Result<(), String> {
    check_at(root, schema, value, "$", 0)
}

fn is_type(value: &Value, ty: &str) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        other => panic!("unknown type `{other}` in a schema"),
    }
}

fn number(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("bound {v} is not a number"))
}

fn count(v: &Value) -> usize {
    v.as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| panic!("bound {v} is not a count"))
}

fn check_at(
    root: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    depth: usize,
) -> Result<(), String> {
    assert!(depth < 64, "schema recursion too deep at {at}");
    let map = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{at}: not allowed (false schema)")),
        Value::Object(map) => map,
        other => panic!("schema at {at} is not a schema: {other}"),
    };
    for (key, arg) in map {
        match key.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => {
                let pointer = arg
                    .as_str()
                    .and_then(|r| r.strip_prefix('#'))
                    .unwrap_or_else(|| panic!("non-local $ref {arg}"));
                let target = root
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("$ref {arg} does not resolve"));
                check_at(root, target, value, at, depth + 1)?;
            }
            "type" => {
                let ok = match arg {
                    Value::String(t) => is_type(value, t),
                    Value::Array(ts) => ts.iter().any(|t| is_type(value, t.as_str().unwrap_or(""))),
                    other => panic!("bad type {other}"),
                };
                if !ok {
                    return Err(format!("{at}: {value} is not of type {arg}"));
                }
            }
            "enum" => {
                let list = arg.as_array().unwrap_or_else(|| panic!("bad enum {arg}"));
                if !list.contains(value) {
                    return Err(format!("{at}: {value} is not one of {arg}"));
                }
            }
            "const" => {
                if value != arg {
                    return Err(format!("{at}: {value} is not {arg}"));
                }
            }
            "properties" | "required" | "additionalProperties" => {
                let Some(obj) = value.as_object() else {
                    continue;
                };
                if key == "properties" {
                    for (name, sub) in arg.as_object().unwrap_or_else(|| panic!("bad properties")) {
                        if let Some(v) = obj.get(name) {
                            check_at(root, sub, v, &format!("{at}.{name}"), depth + 1)?;
                        }
                    }
                } else if key == "required" {
                    for name in arg.as_array().unwrap_or_else(|| panic!("bad required")) {
                        let name = name.as_str().unwrap_or_default();
                        if !obj.contains_key(name) {
                            return Err(format!("{at}: missing required `{name}`"));
                        }
                    }
                } else {
                    let known = map.get("properties").and_then(Value::as_object);
                    for (name, v) in obj {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        check_at(root, arg, v, &format!("{at}.{name}"), depth + 1)
                            .map_err(|e| format!("{e} (additional property)"))?;
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        check_at(root, arg, item, &format!("{at}[{i}]"), depth + 1)?;
                    }
                }
            }
            "anyOf" | "oneOf" | "allOf" => {
                let subs = arg.as_array().unwrap_or_else(|| panic!("bad {key}"));
                let results: Vec<Result<(), String>> = subs
                    .iter()
                    .map(|s| check_at(root, s, value, at, depth + 1))
                    .collect();
                let passed = results.iter().filter(|r| r.is_ok()).count();
                let ok = match key.as_str() {
                    "anyOf" => passed >= 1,
                    "oneOf" => passed == 1,
                    _ => passed == subs.len(),
                };
                if !ok {
                    let why: Vec<String> = results.into_iter().filter_map(Result::err).collect();
                    return Err(format!(
                        "{at}: {key} failed ({passed} passed): {}",
                        why.join(" | ")
                    ));
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                let Some(v) = value.as_f64() else { continue };
                let bound = number(arg);
                let ok = match key.as_str() {
                    "minimum" => v >= bound,
                    "maximum" => v <= bound,
                    "exclusiveMinimum" => v > bound,
                    _ => v < bound,
                };
                if !ok {
                    return Err(format!("{at}: {value} violates {key} {arg}"));
                }
            }
            "minLength" | "maxLength" | "pattern" => {
                let Some(s) = value.as_str() else { continue };
                let len = s.chars().count();
                let ok = match key.as_str() {
                    "minLength" => len >= count(arg),
                    "maxLength" => len <= count(arg),
                    _ => regex::Regex::new(arg.as_str().unwrap_or_default())
                        .unwrap_or_else(|e| panic!("bad pattern {arg}: {e}"))
                        .is_match(s),
                };
                if !ok {
                    return Err(format!("{at}: {value} violates {key} {arg}"));
                }
            }
            "minItems" | "maxItems" | "uniqueItems" => {
                let Some(items) = value.as_array() else {
                    continue;
                };
                let ok = match key.as_str() {
                    "minItems" => items.len() >= count(arg),
                    "maxItems" => items.len() <= count(arg),
                    _ => {
                        arg != &Value::Bool(true)
                            || items
                                .iter()
                                .enumerate()
                                .all(|(i, x)| !items[..i].contains(x))
                    }
                };
                if !ok {
                    return Err(format!("{at}: violates {key} {arg}"));
                }
            }
            other => panic!("keyword `{other}` at {at} is not supported by this checker"),
        }
    }
    Ok(())
}

#[test]
fn the_checker_itself() {
    let root = serde_json::json!({"$defs": {"n": {"type": "integer", "minimum": 1}}});
    let schema = serde_json::json!({
        "type": "object", "additionalProperties": false, "required": ["a"],
        "properties": {"a": {"$ref": "#/$defs/n"}, "b": {"anyOf": [{"type": "string", "pattern": "^x"}, {"type": "null"}]}}
    });
    assert!(check(&root, &schema, &serde_json::json!({"a": 2})).is_ok());
    assert!(check(&root, &schema, &serde_json::json!({"a": 2, "b": "xy"})).is_ok());
    assert!(check(&root, &schema, &serde_json::json!({"a": 2, "b": null})).is_ok());
    assert!(check(&root, &schema, &serde_json::json!({"a": 0})).is_err());
    assert!(check(&root, &schema, &serde_json::json!({})).is_err());
    assert!(check(&root, &schema, &serde_json::json!({"a": 1, "c": 1})).is_err());
    assert!(check(&root, &schema, &serde_json::json!({"a": 1, "b": "y"})).is_err());
    assert!(check(&root, &serde_json::json!(false), &serde_json::json!(1)).is_err());
}
