//! PUT, POST, PATCH and DELETE of one resource: request checks that need no state, then
//! a [`Plan`] decided against the current catalog under the write lock.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::catalog::{Catalog, Change};
use crate::embedded::Plan;
use crate::patch;
use crate::references::still_used;
use crate::reply::Reply;
use crate::resource::{id_of, valid_id, Keying, Resource, INVALID_ID};

/// The answer to a successful write: status and body.
pub(crate) type Outcome = Reply;

/// A write ready to be planned under the lock. `Fn`, not `FnOnce`: a store with
/// optimistic concurrency (etcd) plans again against a fresher catalog after a conflict.
pub(crate) type Planner = Box<dyn Fn(&Catalog) -> Result<Plan<Outcome>, Reply> + Send + Sync>;

/// Seconds since the Unix epoch (the Admin API's `create_time`/`update_time`).
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses a request body: `None` when empty; bad JSON is APISIX's 400 with `req_body`.
pub(crate) fn parse_body(body: &Bytes) -> Result<Option<Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        Reply::json(
            StatusCode::BAD_REQUEST,
            json!({
                "error_msg": format!("invalid request body: {e}"),
                "req_body": String::from_utf8_lossy(body),
            }),
        )
    })
}

/// `create_time`/`update_time` may not be sent (also not in `upstream` or `plugins`).
fn check_forbidden(conf: &Map<String, Value>) -> Result<(), Reply> {
    const FORBIDDEN: [&str; 2] = ["create_time", "update_time"];
    let scopes = [
        ("", Some(conf)),
        ("upstream.", conf.get("upstream").and_then(Value::as_object)),
        ("plugins.", conf.get("plugins").and_then(Value::as_object)),
    ];
    for (prefix, scope) in scopes {
        let Some(scope) = scope else { continue };
        for f in FORBIDDEN {
            if scope.contains_key(f) {
                return Err(Reply::bad_request(format!(
                    "the property is forbidden: {prefix}{f}"
                )));
            }
        }
    }
    Ok(())
}

fn object(conf: Option<Value>, missing: &str) -> Result<Map<String, Value>, Reply> {
    match conf {
        None => Err(Reply::bad_request(missing)),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(Reply::invalid("expected a JSON object")),
    }
}

fn written(res: Resource, id: &str, value: &Value, status: StatusCode) -> Reply {
    Reply::json(status, json!({"key": res.api_key(id), "value": value}))
}

/// Sets `create_time` (kept from `previous`, else now) and `update_time` (now).
fn stamp(res: Resource, value: &mut Map<String, Value>, previous: Option<&Value>, now: u64) {
    if !res.has_timestamps() {
        return;
    }
    let created = previous
        .and_then(|p| p.get("create_time"))
        .cloned()
        .unwrap_or_else(|| json!(now));
    value.insert("create_time".into(), created);
    value.insert("update_time".into(), json!(now));
}

/// `PUT /<res>[/<id>]`.
pub(crate) fn put(
    res: Resource,
    path_id: Option<&str>,
    conf: Option<Value>,
) -> Result<Planner, Reply> {
    let mut conf = object(conf, "missing configurations")?;
    check_forbidden(&conf)?;
    let id = match res.keying {
        Keying::Id => {
            let body_id = match conf.get("id") {
                None => None,
                Some(v) => Some(id_of(v).ok_or_else(|| Reply::invalid(INVALID_ID))?),
            };
            if let (Some(p), Some(b)) = (path_id, &body_id) {
                if p != b {
                    return Err(Reply::bad_request(format!("wrong {} id", res.label)));
                }
            }
            let Some(id) = path_id.map(str::to_owned).or(body_id) else {
                return Err(Reply::bad_request(format!("missing {} id", res.label)));
            };
            if !conf.contains_key("id") {
                conf.insert("id".into(), json!(id));
            }
            id
        }
        Keying::Username => {
            let Some(name) = conf.get("username").and_then(Value::as_str) else {
                return Err(Reply::invalid("username: is required and must be a string"));
            };
            if path_id.is_some_and(|p| p != name) {
                return Err(Reply::bad_request("wrong username"));
            }
            name.to_owned()
        }
        Keying::PluginName => {
            let Some(name) = path_id else {
                return Err(Reply::bad_request("missing plugin name"));
            };
            conf.insert("id".into(), json!(name));
            name.to_owned()
        }
    };
    if !valid_id(&id) {
        return Err(Reply::invalid(INVALID_ID));
    }
    let now = now_secs();
    Ok(Box::new(move |catalog: &Catalog| {
        let previous = catalog.get(res.kind, &id).map(|e| &e.value);
        let status = if previous.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        let mut conf = conf.clone();
        stamp(res, &mut conf, previous, now);
        let value = Value::Object(conf);
        let outcome = written(res, &id, &value, status);
        Ok(Plan {
            changes: vec![Change::Put {
                kind: res.kind,
                id: id.clone(),
                value,
            }],
            may_break_others: false,
            outcome,
        })
    }))
}

/// `POST /<res>`: the id is the new revision, zero-padded to 20 digits.
pub(crate) fn post(
    res: Resource,
    path_id: Option<&str>,
    conf: Option<Value>,
) -> Result<Planner, Reply> {
    let conf = object(conf, "missing configurations")?;
    if path_id.is_some() || conf.contains_key("id") {
        return Err(Reply::bad_request(format!(
            "wrong {} id, do not need it",
            res.label
        )));
    }
    check_forbidden(&conf)?;
    let now = now_secs();
    Ok(Box::new(move |catalog: &Catalog| {
        let id = format!("{:020}", catalog.revision + 1);
        let mut conf = conf.clone();
        conf.insert("id".into(), json!(id));
        stamp(res, &mut conf, None, now);
        let value = Value::Object(conf);
        let outcome = written(res, &id, &value, StatusCode::CREATED);
        Ok(Plan {
            changes: vec![Change::Put {
                kind: res.kind,
                id,
                value,
            }],
            may_break_others: false,
            outcome,
        })
    }))
}

/// `PATCH /<res>/<id>[/<sub/path>]`.
pub(crate) fn patch(
    res: Resource,
    path_id: Option<&str>,
    sub_path: &str,
    conf: Option<Value>,
) -> Result<Planner, Reply> {
    let Some(id) = path_id.map(str::to_owned) else {
        return Err(Reply::bad_request(format!("missing {} id", res.label)));
    };
    let Some(conf) = conf else {
        return Err(Reply::bad_request("missing new configuration"));
    };
    if sub_path.is_empty() && !conf.is_object() {
        return Err(Reply::bad_request("invalid configuration"));
    }
    let sub_path = sub_path.to_owned();
    let now = now_secs();
    Ok(Box::new(move |catalog: &Catalog| {
        let Some(previous) = catalog.get(res.kind, &id) else {
            return Err(Reply::key_not_found());
        };
        let mut value = previous.value.clone();
        if sub_path.is_empty() {
            patch::merge(&mut value, conf.clone());
        } else {
            patch::replace_at(&mut value, &sub_path, conf.clone()).map_err(Reply::bad_request)?;
        }
        let Value::Object(mut map) = value else {
            return Err(Reply::bad_request("invalid configuration"));
        };
        // The id is the key: a patch may repeat it but never change or drop it.
        if res.keying == Keying::Id && map.get("id").and_then(id_of).as_deref() != Some(&id) {
            return Err(Reply::bad_request(format!("wrong {} id", res.label)));
        }
        stamp(res, &mut map, Some(&previous.value), now);
        let value = Value::Object(map);
        let outcome = written(res, &id, &value, StatusCode::OK);
        Ok(Plan {
            changes: vec![Change::Put {
                kind: res.kind,
                id: id.clone(),
                value,
            }],
            may_break_others: false,
            outcome,
        })
    }))
}

/// `DELETE /<res>/<id>[?force=true]`.
pub(crate) fn delete(res: Resource, path_id: Option<&str>, force: bool) -> Result<Planner, Reply> {
    let Some(id) = path_id.map(str::to_owned) else {
        return Err(Reply::bad_request(format!("missing {} id", res.label)));
    };
    Ok(Box::new(move |catalog: &Catalog| {
        if catalog.get(res.kind, &id).is_none() {
            return Err(Reply::key_not_found());
        }
        if !force {
            if let Some(msg) = still_used(catalog, res.kind, &id) {
                return Err(Reply::bad_request(msg));
            }
        }
        let outcome = Reply::json(
            StatusCode::OK,
            json!({"deleted": "1", "key": res.api_key(&id)}),
        );
        Ok(Plan {
            changes: vec![Change::Delete {
                kind: res.kind,
                id: id.clone(),
            }],
            may_break_others: force,
            outcome,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_properties_are_named() {
        let conf = json!({"upstream": {"create_time": 1}});
        let Value::Object(m) = conf else {
            unreachable!()
        };
        assert_eq!(
            check_forbidden(&m),
            Err(Reply::bad_request(
                "the property is forbidden: upstream.create_time"
            ))
        );
    }

    #[test]
    fn bad_json_echoes_the_body() {
        let r = parse_body(&Bytes::from_static(b"{\"uri\":")).expect_err("bad json");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let body = r.body.expect("body");
        assert_eq!(body["req_body"], "{\"uri\":");
        assert!(body["error_msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid request body: ")));
        assert_eq!(parse_body(&Bytes::from_static(b"  \n")), Ok(None));
    }
}
