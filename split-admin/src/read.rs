//! GET of one object or a list, with APISIX v3's filters (`name`, `label`, `uri`,
//! `filter`) and pagination (`page` + `page_size`, sorted by `createdIndex`).

use http::StatusCode;
use regex::Regex;
use serde_json::{json, Map, Value};
use split_core::config::ResourceKind;

use crate::catalog::{Catalog, Entry};
use crate::query::Query;
use crate::reply::Reply;
use crate::resource::Resource;

/// Fields `?filter=k%3Dv` may test (APISIX's `list_filter_fields`).
const FILTER_FIELDS: &[&str] = &["service_id", "upstream_id", "plugin_config_id"];

/// The stored value as GET shows it: SSL private keys are never returned, and literal
/// `Authorization` values of rewrites are masked (`$env://` references are shown).
fn shown(kind: ResourceKind, value: &Value) -> Value {
    let mut v = value.clone();
    if kind == ResourceKind::Ssls {
        if let Value::Object(m) = &mut v {
            m.remove("key");
            m.remove("keys");
        }
    }
    split_core::secret::mask_literal_credentials(&mut v);
    v
}

fn item(res: Resource, id: &str, entry: &Entry) -> Value {
    json!({
        "key": res.api_key(id),
        "value": shown(res.kind, &entry.value),
        "createdIndex": entry.created,
        "modifiedIndex": entry.modified,
    })
}

/// `GET /apisix/admin/<res>/<id>`.
pub(crate) fn get_one(catalog: &Catalog, res: Resource, id: &str) -> Reply {
    match catalog.get(res.kind, id) {
        Some(entry) => Reply::json(StatusCode::OK, item(res, id, entry)),
        None => Reply::key_not_found(),
    }
}

fn regex_param(query: &Query, name: &str) -> Result<Option<Regex>, Reply> {
    match query.get(name) {
        None => Ok(None),
        Some(p) => Regex::new(p)
            .map(Some)
            .map_err(|e| Reply::bad_request(format!("invalid regex in {name}: {e}"))),
    }
}

fn as_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

struct Filters {
    name: Option<Regex>,
    label: Option<String>,
    uri: Option<Regex>,
    fields: Vec<(String, String)>,
}

impl Filters {
    fn parse(query: &Query) -> Result<Filters, Reply> {
        let fields = query
            .get("filter")
            .map(|f| crate::query::Query::parse(Some(f)).pairs().to_vec())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| FILTER_FIELDS.contains(&k.as_str()))
            .collect();
        Ok(Filters {
            name: regex_param(query, "name")?,
            label: query.get("label").map(str::to_owned),
            uri: regex_param(query, "uri")?,
            fields,
        })
    }

    fn keep(&self, value: &Value) -> bool {
        if let Some(re) = &self.name {
            match value.get("name").and_then(Value::as_str) {
                Some(n) if re.is_match(n) => {}
                _ => return false,
            }
        }
        if let Some(label) = &self.label {
            let has = value
                .get("labels")
                .and_then(Value::as_object)
                .is_some_and(|l| l.contains_key(label));
            if !has {
                return false;
            }
        }
        if let Some(re) = &self.uri {
            let single = value.get("uri").and_then(Value::as_str);
            let many = value.get("uris").and_then(Value::as_array);
            let hit = single.is_some_and(|u| re.is_match(u))
                || many
                    .is_some_and(|us| us.iter().filter_map(Value::as_str).any(|u| re.is_match(u)));
            if !hit {
                return false;
            }
        }
        self.fields
            .iter()
            .all(|(k, v)| as_text(value.get(k)).as_deref() == Some(v.as_str()))
    }
}

/// `page` and `page_size` when both are numbers (APISIX ignores pagination otherwise).
fn pagination(query: &Query) -> Result<Option<(usize, usize)>, Reply> {
    let num = |n: &str| query.get(n).and_then(|v| v.trim().parse::<f64>().ok());
    let (Some(page), Some(size)) = (num("page"), num("page_size")) else {
        return Ok(None);
    };
    if !(10.0..=500.0).contains(&size) {
        return Err(Reply::bad_request("page_size must be between 10 and 500"));
    }
    let page = if page.is_finite() && page >= 1.0 {
        // Saturating float-to-int cast; a huge page simply lands past the end.
        page.floor() as usize
    } else {
        1
    };
    Ok(Some((page, size.floor() as usize)))
}

/// `GET /apisix/admin/<res>`.
pub(crate) fn list(catalog: &Catalog, res: Resource, query: &Query) -> Reply {
    let filters = match Filters::parse(query) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let page = match pagination(query) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut items: Vec<(&String, &Entry)> = catalog
        .list(res.kind)
        .filter(|(_, e)| filters.keep(&e.value))
        .collect();
    let total = items.len();
    if let Some((page, size)) = page {
        items.sort_by_key(|(_, e)| e.created);
        let from = page.saturating_sub(1).saturating_mul(size);
        items = items.into_iter().skip(from).take(size).collect();
    }
    let list: Vec<Value> = items.into_iter().map(|(id, e)| item(res, id, e)).collect();
    let mut body = Map::new();
    if total == 0 {
        body.insert("list".into(), Value::Array(list));
        body.insert("total".into(), json!(0));
    } else {
        body.insert("total".into(), json!(total));
        body.insert("list".into(), Value::Array(list));
    }
    Reply::json(StatusCode::OK, Value::Object(body))
}
