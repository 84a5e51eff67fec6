//! Body variables: `post_arg_<name>` (form bodies) and `post_arg.<path>` (JSON and form
//! bodies), following APISIX's `ctx.var` and `core.request.get_request_body_table`.

use serde_json::{Map, Value};

use super::args::{decode_component, raw_args};
use super::jsonpath::{is_jsonpath, JsonPath};
use super::VarValue;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// How APISIX parses a body for `post_arg.<path>`, from the Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Content-Type contains `application/json` (checked first, as APISIX does).
    Json,
    /// Content-Type contains `application/x-www-form-urlencoded`.
    Form,
    /// Anything else (multipart included: not supported, the variable is absent).
    Unsupported,
}

/// `post_arg.<path>` body kind for a Content-Type value (case-sensitive substring match,
/// as APISIX's `core.string.find`).
pub(crate) fn path_body_kind(content_type: Option<&str>) -> BodyKind {
    match content_type {
        Some(ct) if ct.contains(JSON) => BodyKind::Json,
        Some(ct) if ct.contains(FORM) => BodyKind::Form,
        _ => BodyKind::Unsupported,
    }
}

/// `post_arg_<name>` reads form bodies only: Content-Type must start with the form type.
pub(crate) fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.starts_with(FORM))
}

/// First value of form field `name` (`true` for a bare key), or `None`.
pub(crate) fn form_arg(body: &[u8], name: &str) -> Option<VarValue<'static>> {
    let text = String::from_utf8_lossy(body);
    let found = raw_args(&text).find(|a| decode_component(a.key) == name)?;
    Some(match found.value {
        Some(v) => VarValue::Str(decode_component(v).into_owned().into()),
        None => VarValue::Json(Value::Bool(true)),
    })
}

/// `post_arg.<path>` on a body of `kind`.
///
/// Dotted paths walk objects by key (`a.b.c`; a numeric part does not index arrays, as in
/// Lua). Paths with `[`, `*` or `..` are JSONPath and yield the array of all matches.
/// Unparsable bodies and missing fields are absent (`None`).
pub(crate) fn post_arg_path(body: &[u8], kind: BodyKind, path: &str) -> Option<VarValue<'static>> {
    let root = match kind {
        BodyKind::Json => serde_json::from_slice::<Value>(body).ok()?,
        BodyKind::Form => form_table(body),
        BodyKind::Unsupported => return None,
    };
    if is_jsonpath(path) {
        let matches = JsonPath::parse(path).ok()?.query(&root);
        if matches.is_empty() {
            return None;
        }
        return Some(VarValue::Json(Value::Array(
            matches.into_iter().cloned().collect(),
        )));
    }
    let mut current = &root;
    for part in path.split(['.', '(', ')']).filter(|p| !p.is_empty()) {
        current = current.as_object()?.get(part)?;
    }
    Some(VarValue::from_json(current.clone()))
}

/// A form body as OpenResty's `get_post_args` table: repeated keys become arrays, bare keys
/// `true`.
fn form_table(body: &[u8]) -> Value {
    let text = String::from_utf8_lossy(body);
    let mut map = Map::new();
    for a in raw_args(&text) {
        let v = match a.value {
            Some(v) => Value::String(decode_component(v).into_owned()),
            None => Value::Bool(true),
        };
        let key = decode_component(a.key).into_owned();
        match map.get_mut(&key) {
            Some(Value::Array(list)) => list.push(v),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, v]);
            }
            None => {
                map.insert(key, v);
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds() {
        assert_eq!(
            path_body_kind(Some("application/json; charset=utf-8")),
            BodyKind::Json
        );
        assert_eq!(
            path_body_kind(Some("application/x-www-form-urlencoded")),
            BodyKind::Form
        );
        assert_eq!(
            path_body_kind(Some("multipart/form-data; boundary=x")),
            BodyKind::Unsupported
        );
        assert_eq!(path_body_kind(None), BodyKind::Unsupported);
        assert!(is_form(Some(
            "application/x-www-form-urlencoded;charset=UTF-8"
        )));
        assert!(!is_form(Some(
            "text/plain; application/x-www-form-urlencoded"
        )));
    }

    #[test]
    fn form_table_repeats() {
        assert_eq!(
            form_table(b"a=1&a=2&b&c=x+y"),
            json!({"a": ["1", "2"], "b": true, "c": "x y"})
        );
        assert_eq!(form_table(b"a=1&a=2&a=3"), json!({"a": ["1", "2", "3"]}));
    }
}
