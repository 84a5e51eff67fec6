//! PATCH semantics: JSON merge patch (RFC 7396: objects merge recursively, `null`
//! deletes, anything else replaces) and sub-path replacement
//! (`PATCH /routes/1/upstream/nodes` replaces that subtree).

use serde_json::{Map, Value};

/// Applies `patch` to `target` as a JSON merge patch.
pub(crate) fn merge(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (k, v) in patch {
            if v.is_null() {
                target.remove(&k);
            } else {
                merge(target.entry(k).or_insert(Value::Null), v);
            }
        }
    }
}

/// Replaces the subtree at `path` (`a/b/c`, no leading slash) of `target` with `value`,
/// creating missing intermediate objects. An intermediate that is not an object is an
/// error naming the sub-path up to it (APISIX: `invalid sub-path: /a/b`).
pub(crate) fn replace_at(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((last, parents)) = segments.split_last() else {
        *target = value;
        return Ok(());
    };
    let mut node = target;
    for (i, seg) in parents.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(format!("invalid sub-path: /{}", segments[..i].join("/")));
        };
        node = map
            .entry((*seg).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let Value::Object(map) = node else {
        return Err(format!("invalid sub-path: /{}", parents.join("/")));
    };
    map.insert((*last).to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rules() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "arr": [1, 2, 3], "gone": true});
        merge(
            &mut v,
            json!({"a": {"c": null, "d": 4}, "arr": [9], "gone": null, "new": "x"}),
        );
        assert_eq!(v, json!({"a": {"b": 1, "d": 4}, "arr": [9], "new": "x"}));
    }

    #[test]
    fn merge_patch_replaces_non_objects() {
        let mut v = json!({"a": 1});
        merge(&mut v, json!({"a": {"b": 2}}));
        assert_eq!(v, json!({"a": {"b": 2}}));
        let mut v = json!({"a": {"b": 2}});
        merge(&mut v, json!({"a": 3}));
        assert_eq!(v, json!({"a": 3}));
    }

    #[test]
    fn sub_path_replaces_subtree() {
        let mut v = json!({"upstream": {"nodes": {"a:1": 1, "b:1": 1}, "type": "roundrobin"}});
        replace_at(&mut v, "upstream/nodes", json!({"c:1": 2})).expect("patched");
        assert_eq!(
            v,
            json!({"upstream": {"nodes": {"c:1": 2}, "type": "roundrobin"}})
        );
        replace_at(&mut v, "plugins/proxy-rewrite", json!({"uri": "/x"})).expect("created");
        assert_eq!(v["plugins"]["proxy-rewrite"]["uri"], "/x");
    }

    #[test]
    fn sub_path_through_a_scalar_is_an_error() {
        let mut v = json!({"uri": "/x"});
        let before = v.clone();
        assert_eq!(
            replace_at(&mut v, "uri/deeper", json!(1)),
            Err("invalid sub-path: /uri".to_owned())
        );
        assert_eq!(v, before);
    }
}
