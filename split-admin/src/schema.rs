//! Self-description: JSON Schemas of the resources and plugins (`GET schema/{res}`,
//! `GET plugins/{name}`), the plugin list, and an OpenAPI 3.1 document of the Admin API.
//!
//! The schemas are hand-written here and describe the accepted shape; split-core's
//! validators remain the authority (they also enforce cross-field rules and references).

use serde_json::{json, Map, Value};
use split_core::config::plugins::KNOWN_PLUGINS;
use split_core::config::ResourceKind;

use crate::resource::Resource;

/// Names of the plugins split accepts, sorted.
pub(crate) fn plugin_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = KNOWN_PLUGINS.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names
}

fn id_schema() -> Value {
    json!({"anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-zA-Z0-9-_.]+$"},
        {"type": "integer", "minimum": 1}
    ]})
}

fn timeout_schema() -> Value {
    json!({"type": "object", "additionalProperties": false,
    "required": ["connect", "send", "read"],
    "properties": {
        "connect": {"type": "number", "exclusiveMinimum": 0},
        "send": {"type": "number", "exclusiveMinimum": 0},
        "read": {"type": "number", "exclusiveMinimum": 0}
    }})
}

fn upstream_schema() -> Value {
    json!({"type": "object", "additionalProperties": false,
    "properties": {
        "id": id_schema(), "name": {"type": "string"}, "desc": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "type": {"type": "string", "enum": ["roundrobin", "chash", "random", "ewma", "least_conn"]},
        "nodes": {"anyOf": [
            {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
            {"type": "array", "items": {"type": "object", "required": ["host", "port", "weight"],
                "properties": {"host": {"type": "string"}, "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "weight": {"type": "integer", "minimum": 0}, "priority": {"type": "integer"}}}}
        ]},
        "scheme": {"type": "string", "enum": ["http", "https"]},
        "pass_host": {"type": "string", "enum": ["pass", "node", "rewrite"]},
        "upstream_host": {"type": "string"},
        "hash_on": {"type": "string", "enum": ["vars", "header", "cookie", "consumer", "vars_combinations"]},
        "key": {"type": "string"},
        "timeout": timeout_schema(),
        "retries": {"type": "integer", "minimum": 0},
        "retry_timeout": {"type": "number", "minimum": 0},
        "keepalive_pool": {"type": "object"},
        "create_time": {"type": "integer"}, "update_time": {"type": "integer"}
    }})
}

fn rewrite_schema() -> Value {
    json!({"type": "object", "properties": {
        "uri": {"type": "string"},
        "regex_uri": {"type": "array", "minItems": 2, "items": {"type": "string"}},
        "host": {"type": "string"},
        "headers": {"type": "object"},
        "body": {"type": "object"}
    }})
}

/// split's `traffic-split.fallback` extension.
fn fallback_schema() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "on": {"type": "array", "minItems": 1, "items": {"type": "integer"},
               "default": [429, 500, 502, 503, 504]},
        "max_retries": {"type": "integer", "minimum": 1, "maximum": 19, "default": 1},
        "budget_ms": {"type": "integer", "minimum": 1, "maximum": 600000, "default": 30000},
        "sse_peek": {"type": "boolean", "default": true},
        "sse_peek_bytes": {"type": "integer", "minimum": 64, "maximum": 1048576, "default": 65536},
        "sse_peek_ms": {"type": "integer", "minimum": 1, "maximum": 600000, "default": 10000}
    }})
}

/// The JSON Schema of plugin `name`, if split accepts it.
pub(crate) fn plugin_schema(name: &str) -> Option<Value> {
    let schema = match name {
        "traffic-split" => {
            json!({"type": "object", "properties": {"rules": {"type": "array", "items": {
            "type": "object",
            "description": "APISIX form (match + weighted_upstreams) or the guide's shorthand (weight + upstream + rewrite).",
            "properties": {
                "match": {"type": "array", "items": {"type": "object", "properties": {"vars": {"type": "array"}}}},
                "weighted_upstreams": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
                    "type": "object", "properties": {
                        "upstream_id": id_schema(), "upstream": upstream_schema(),
                        "weight": {"type": "integer", "minimum": 0, "default": 1},
                        "name": {"type": "string"}, "rewrite": rewrite_schema()
                    }}},
                "weight": {"type": "integer", "minimum": 0},
                "upstream": upstream_schema(), "upstream_id": id_schema(),
                "rewrite": rewrite_schema(), "name": {"type": "string"}
            }}}}})
        }
        "proxy-rewrite" => rewrite_schema(),
        "prometheus" => {
            json!({"type": "object", "properties": {"prefer_name": {"type": "boolean", "default": false}}})
        }
        _ if KNOWN_PLUGINS.iter().any(|(n, _)| *n == name) => json!({"type": "object"}),
        _ => return None,
    };
    let mut schema = schema;
    if name == "traffic-split" {
        schema["properties"]["fallback"] = fallback_schema();
    }
    Some(schema)
}

fn plugins_schema() -> Value {
    let props: Map<String, Value> = plugin_names()
        .into_iter()
        .filter_map(|n| plugin_schema(n).map(|s| (n.to_owned(), s)))
        .collect();
    json!({"type": "object", "additionalProperties": false, "properties": props})
}

/// The JSON Schema of a resource, by `GET schema/{name}` name (singular or plural).
pub(crate) fn resource_schema(name: &str) -> Option<Value> {
    let kind = ResourceKind::parse(name).or_else(|| {
        ResourceKind::ALL
            .into_iter()
            .find(|k| k.singular() == name || Resource::of(*k).label == name)
    })?;
    let common = |extra: Value| -> Value {
        let mut props = json!({
            "id": id_schema(), "name": {"type": "string"}, "desc": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "plugins": plugins_schema(),
            "create_time": {"type": "integer"}, "update_time": {"type": "integer"}
        });
        if let (Value::Object(p), Value::Object(e)) = (&mut props, extra) {
            p.extend(e);
        }
        json!({"type": "object", "additionalProperties": false, "properties": props})
    };
    let schema = match kind {
        ResourceKind::Routes => {
            let mut s = common(json!({
                "uri": {"type": "string", "minLength": 1, "maxLength": 4096},
                "uris": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"type": "string"}},
                "methods": {"type": "array", "uniqueItems": true, "items": {"type": "string",
                    "enum": split_core::config::route::METHODS}},
                "host": {"type": "string"}, "hosts": {"type": "array", "items": {"type": "string"}},
                "remote_addr": {"type": "string"}, "remote_addrs": {"type": "array", "items": {"type": "string"}},
                "vars": {"type": "array"}, "priority": {"type": "integer", "default": 0},
                "status": {"type": "integer", "enum": [0, 1], "default": 1},
                "upstream": upstream_schema(), "upstream_id": id_schema(),
                "service_id": id_schema(), "plugin_config_id": id_schema(),
                "timeout": timeout_schema(), "enable_websocket": {"type": "boolean"}
            }));
            s["oneOf"] = json!([{"required": ["uri"]}, {"required": ["uris"]}]);
            s
        }
        ResourceKind::Upstreams => upstream_schema(),
        ResourceKind::Services => common(json!({
            "upstream": upstream_schema(), "upstream_id": id_schema(),
            "hosts": {"type": "array", "items": {"type": "string"}},
            "enable_websocket": {"type": "boolean"}
        })),
        ResourceKind::Consumers => json!({"type": "object", "additionalProperties": false,
        "required": ["username"], "properties": {
            "username": {"type": "string", "pattern": "^[a-zA-Z0-9_\\-]+$"},
            "desc": {"type": "string"}, "labels": {"type": "object"},
            "plugins": plugins_schema(), "group_id": id_schema(),
            "create_time": {"type": "integer"}, "update_time": {"type": "integer"}
        }}),
        ResourceKind::GlobalRules | ResourceKind::PluginConfigs => common(json!({})),
        ResourceKind::Ssls => json!({"type": "object", "properties": {
            "id": id_schema(), "cert": {"type": "string"}, "key": {"type": "string"},
            "certs": {"type": "array", "items": {"type": "string"}},
            "keys": {"type": "array", "items": {"type": "string"}},
            "sni": {"type": "string"}, "snis": {"type": "array", "items": {"type": "string"}},
            "type": {"type": "string", "enum": ["server", "client"]},
            "labels": {"type": "object"}, "status": {"type": "integer", "enum": [0, 1]},
            "create_time": {"type": "integer"}, "update_time": {"type": "integer"}
        }}),
        ResourceKind::PluginMetadata => json!({"type": "object"}),
    };
    Some(schema)
}

fn op(summary: String, body: bool) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            "200": {"description": "OK"},
            "400": {"description": "Invalid request: {\"error_msg\": ...}"},
            "401": {"description": "Missing or wrong API key"},
            "403": {"description": "Client address not in allow_admin"},
            "404": {"description": "{\"message\":\"Key not found\"}"}
        }
    });
    if body {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
    }
    o
}

/// An OpenAPI 3.1 document of the Admin API.
pub(crate) fn openapi() -> Value {
    let mut paths = Map::new();
    for kind in ResourceKind::ALL {
        let res = Resource::of(kind);
        let label = res.label;
        let base = format!("/apisix/admin/{}", kind.as_str());
        let mut coll = Map::new();
        coll.insert(
            "get".into(),
            op(
                format!("List {label} objects (filters name, label, uri; page, page_size)"),
                false,
            ),
        );
        if !res.refuses(&http::Method::POST) {
            coll.insert(
                "post".into(),
                op(format!("Create a {label} with a generated id"), true),
            );
        }
        coll.insert(
            "put".into(),
            op(
                format!("Create or replace a {label} (id in the body)"),
                true,
            ),
        );
        paths.insert(base.clone(), Value::Object(coll));
        let mut one = Map::new();
        one.insert(
            "parameters".into(),
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]),
        );
        one.insert("get".into(), op(format!("Get one {label}"), false));
        one.insert(
            "put".into(),
            op(format!("Create (201) or replace (200) a {label}"), true),
        );
        if !res.refuses(&http::Method::PATCH) {
            one.insert("patch".into(), op(format!("Merge-patch a {label}"), true));
        }
        one.insert(
            "delete".into(),
            op(
                format!("Delete a {label} (?force=true skips the reference check)"),
                false,
            ),
        );
        paths.insert(format!("{base}/{{id}}"), Value::Object(one));
    }
    paths.insert(
        "/apisix/admin/plugins/list".into(),
        json!({"get": op("Names of the accepted plugins".into(), false)}),
    );
    paths.insert(
        "/apisix/admin/plugins/{name}".into(),
        json!({"get": op("JSON Schema of a plugin".into(), false)}),
    );
    paths.insert(
        "/apisix/admin/schema/{resource}".into(),
        json!({"get": op("JSON Schema of a resource".into(), false)}),
    );
    paths.insert(
        "/apisix/admin/schema/validate/{resource}".into(),
        json!({"post": op("Validate an object without storing it".into(), true)}),
    );
    paths.insert("/apisix/admin".into(), json!({"head": {"summary": "Liveness probe (no API key needed)", "responses": {"200": {"description": "OK"}}}}));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "split Admin API (APISIX v3 compatible)", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {
            "header": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
            "query": {"type": "apiKey", "in": "query", "name": "api_key"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "x_api_key"}
        }},
        "security": [{"header": []}, {"query": []}, {"cookie": []}],
        "paths": paths
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_plugin_has_a_schema() {
        for kind in ResourceKind::ALL {
            assert!(resource_schema(kind.as_str()).is_some(), "{kind:?}");
            assert!(resource_schema(kind.singular()).is_some(), "{kind:?}");
        }
        for name in plugin_names() {
            assert!(plugin_schema(name).is_some(), "{name}");
        }
        assert!(plugin_schema("no-such-plugin").is_none());
        assert!(resource_schema("protos").is_none());
    }

    #[test]
    fn openapi_lists_resource_paths() {
        let doc = openapi();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/apisix/admin/routes/{id}"]["patch"].is_object());
        assert!(doc["paths"]["/apisix/admin/consumers/{id}"]["patch"].is_null());
    }
}
