//! Declarative standalone documents (`apisix.yaml` with its `#END` marker, or JSON), in
//! APISIX's layout: top-level lists `routes`, `upstreams`, `services`, `consumers`,
//! `global_rules`, `plugin_configs`, `ssls`, `plugin_metadata`. A missing id becomes
//! `username` (consumers) or `arr_<index>`.
//!
//! Rules:
//! - YAML must end with a `#END` line (trailing whitespace allowed): a file without it
//!   may be half written and is not applied. JSON needs no marker.
//! - Ids: the `id` field (a string, or an integer written as its decimal string; `1` and
//!   `"1"` are the same id), else a consumer's `username`, else `arr_<index>`, which is
//!   then written into the object's `id` so the id survives a dump and reload.
//!   Duplicate ids within a kind are an error naming the second one (`routes[3].id`).
//! - `protos`, `stream_routes`, `secrets`, `plugins` and `consumer_groups` are refused
//!   as not supported yet; any other unknown top-level key is refused too. APISIX's
//!   `<kind>_conf_version` counters (API-driven standalone) are accepted and ignored.
//! - Objects are kept raw; they are validated when the set is compiled
//!   (`Snapshot::compile`).

use serde_json::{Map, Value};

use crate::config::gateway::yaml;
use crate::config::ResourceKind;
use crate::error::{index, join};
use crate::snapshot::ConfigSet;
use crate::ConfigError;

/// Document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML; must end with a `#END` line to be applied.
    Yaml,
    /// JSON; no end marker.
    Json,
}

/// The end marker of a YAML standalone document.
pub const END_MARKER: &str = "#END";

/// Top-level keys of APISIX's layout that split does not serve yet.
const NOT_SUPPORTED: &[&str] = &[
    "protos",
    "stream_routes",
    "secrets",
    "plugins",
    "consumer_groups",
];

/// Parses a standalone document into a [`ConfigSet`] of raw objects (ids filled in).
/// Each object is validated when the set is compiled (`Snapshot::compile`).
pub fn parse(text: &str, format: Format) -> Result<ConfigSet, ConfigError> {
    let doc = match format {
        Format::Yaml => {
            if !has_end_marker(text) {
                return Err(ConfigError::new(
                    "",
                    "missing #END marker: file not applied (may be partially written)",
                ));
            }
            yaml::parse(text)?
        }
        Format::Json => serde_json::from_str::<Value>(text)
            .map_err(|e| ConfigError::new("", format!("invalid JSON: {e}")))?,
    };
    let mut set = ConfigSet::default();
    let root = match &doc {
        Value::Null => return Ok(set),
        Value::Object(m) => m,
        _ => {
            return Err(ConfigError::new(
                "",
                "must be a mapping of resource lists (routes, upstreams, ...)",
            ))
        }
    };
    for (key, value) in root {
        let Some(kind) = ResourceKind::parse(key) else {
            if NOT_SUPPORTED.contains(&key.as_str()) {
                return Err(ConfigError::new(key.as_str(), "is not supported yet"));
            }
            if is_conf_version(key) && value.is_u64() {
                continue;
            }
            return Err(ConfigError::new(
                key.as_str(),
                format!("unknown top-level key (expected one of {})", kind_list()),
            ));
        };
        let items = match value {
            Value::Null => continue,
            Value::Array(items) => items,
            _ => return Err(ConfigError::new(key.as_str(), "must be a list")),
        };
        let objects = set.objects.entry(kind).or_default();
        for (i, item) in items.iter().enumerate() {
            let path = index(key, i);
            let Value::Object(obj) = item else {
                return Err(ConfigError::new(path, "must be an object"));
            };
            let mut obj = obj.clone();
            let (id, id_path) = object_id(kind, &mut obj, i, &path)?;
            if objects.contains_key(&id) {
                return Err(ConfigError::new(id_path, format!("duplicate id {id:?}")));
            }
            objects.insert(id, Value::Object(obj));
        }
        if objects.is_empty() {
            set.objects.remove(&kind);
        }
    }
    Ok(set)
}

/// True if the last non-blank line of `text` is exactly `#END`.
fn has_end_marker(text: &str) -> bool {
    text.trim_end()
        .rsplit('\n')
        .next()
        .is_some_and(|last| last.trim() == END_MARKER)
}

fn is_conf_version(key: &str) -> bool {
    key.strip_suffix("_conf_version")
        .is_some_and(|kind| ResourceKind::parse(kind).is_some())
}

fn kind_list() -> String {
    ResourceKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The id of one object and the path to report it at; fills in `id` = `arr_<i>`.
fn object_id(
    kind: ResourceKind,
    obj: &mut Map<String, Value>,
    i: usize,
    path: &str,
) -> Result<(String, String), ConfigError> {
    let id_path = join(path, "id");
    match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => return Ok((s.clone(), id_path)),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => return Ok((n.to_string(), id_path)),
        Some(Value::Null) | None => {}
        Some(_) => {
            return Err(ConfigError::new(
                id_path,
                "must be a non-empty string or an integer",
            ))
        }
    }
    if kind == ResourceKind::Consumers {
        let user_path = join(path, "username");
        return match obj.get("username") {
            Some(Value::String(u)) if !u.is_empty() => Ok((u.clone(), user_path)),
            _ => Err(ConfigError::new(
                user_path,
                "is required for a consumer (a non-empty string)",
            )),
        };
    }
    let id = format!("arr_{i}");
    obj.insert("id".to_owned(), Value::String(id.clone()));
    Ok((id, id_path))
}

/// Renders a [`ConfigSet`] as a standalone YAML document ending in `#END`
/// (`split-proxy dump`). `parse(render(set))` yields the same set.
///
/// Kinds appear in [`ResourceKind::ALL`] order, objects in id order; an object whose
/// `id` (or a consumer's `username`) is missing gets its key written in, so the
/// document reloads under the same ids.
pub fn render_yaml(set: &ConfigSet) -> String {
    let mut doc = Map::new();
    for kind in ResourceKind::ALL {
        let Some(objects) = set.objects.get(&kind).filter(|o| !o.is_empty()) else {
            continue;
        };
        let items = objects
            .iter()
            .map(|(id, value)| with_identity(kind, id, value))
            .collect();
        doc.insert(kind.as_str().to_owned(), Value::Array(items));
    }
    if doc.is_empty() {
        return format!("{END_MARKER}\n");
    }
    let doc = Value::Object(doc);
    // A JSON value always serialises to YAML (string keys only); should that ever fail,
    // JSON is itself valid YAML and still round-trips.
    let body = serde_yaml_ng::to_string(&doc)
        .unwrap_or_else(|_| serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n");
    format!("{body}{END_MARKER}\n")
}

/// The object as it must be written so that parsing it yields `id` again.
fn with_identity(kind: ResourceKind, id: &str, value: &Value) -> Value {
    let Value::Object(obj) = value else {
        return value.clone();
    };
    let field = if kind == ResourceKind::Consumers && !obj.contains_key("id") {
        "username"
    } else {
        "id"
    };
    let matches = match obj.get(field) {
        Some(Value::String(s)) => s == id,
        Some(Value::Number(n)) => n.to_string() == id,
        _ => false,
    };
    if matches {
        return value.clone();
    }
    let mut obj = obj.clone();
    obj.insert(field.to_owned(), Value::String(id.to_owned()));
    Value::Object(obj)
}
