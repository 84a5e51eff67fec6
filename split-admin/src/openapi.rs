//! `GET /apisix/admin/openapi.json`: an OpenAPI 3.1 document of the whole Admin API.
//!
//! Request bodies and `components.schemas` are the schemas split-core generates from its
//! raw config types (see [`crate::schema`]); only the response envelopes (`{key, value,
//! createdIndex, modifiedIndex}`, `{total, list}`, `{error_msg}`) are written here. The
//! test `tests/openapi.rs` checks the paths against what the router really serves.

use http::Method;
use serde_json::{json, Map, Value};
use split_core::config::{schema, ResourceKind};

use crate::resource::{Keying, Resource};

const SCHEMAS: &str = "#/components/schemas/";

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("{SCHEMAS}{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// The error responses every authenticated operation may give.
fn errors(responses: &mut Map<String, Value>) {
    let error = json_content(schema_ref("Error"));
    for (code, description) in [
        ("400", "invalid request or configuration"),
        (
            "401",
            "missing or wrong API key, or a viewer key on a write",
        ),
        ("403", "client address not in allow_admin"),
    ] {
        responses.insert(
            code.into(),
            json!({"description": description, "content": error.clone()}),
        );
    }
}

fn operation(summary: String, body: Option<Value>, ok: &[(&str, &str, Value)]) -> Value {
    let mut responses = Map::new();
    for (code, description, schema) in ok {
        responses.insert(
            (*code).into(),
            json!({"description": description, "content": json_content(schema.clone())}),
        );
    }
    errors(&mut responses);
    let mut op = json!({"summary": summary, "responses": responses});
    if let Some(schema) = body {
        op["requestBody"] = json!({"required": true, "content": json_content(schema)});
    }
    op
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "minLength": 1}})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": schema})
}

/// Paths of one resource kind: the collection, one object, and sub-path PATCH.
fn resource_paths(kind: ResourceKind, body: &Value, paths: &mut Map<String, Value>) {
    let res = Resource::of(kind);
    let label = res.label;
    let base = format!("/apisix/admin/{}", kind.as_str());
    let item = || schema_ref("Item");
    let not_found =
        json!({"description": "no such object", "content": json_content(schema_ref("NotFound"))});

    let mut collection = Map::new();
    let mut list = operation(
        format!("List {label} objects"),
        None,
        &[("200", "the objects", schema_ref("List"))],
    );
    list["parameters"] = json!([
        query_param(
            "page",
            "page number (from 1)",
            json!({"type": "integer", "minimum": 1})
        ),
        query_param(
            "page_size",
            "objects per page (10-500)",
            json!({"type": "integer", "minimum": 10, "maximum": 500})
        ),
        query_param("name", "regex over `name`", json!({"type": "string"})),
        query_param(
            "label",
            "`key` or `key:value` over `labels`",
            json!({"type": "string"})
        ),
        query_param("uri", "regex over `uri`/`uris`", json!({"type": "string"}))
    ]);
    collection.insert("get".into(), list);
    let put_summary = match res.keying {
        Keying::Username => format!("Create or replace a {label} keyed by its `username`"),
        _ => format!("Create or replace a {label} with the `id` in the body"),
    };
    collection.insert(
        "put".into(),
        operation(
            put_summary,
            Some(body.clone()),
            &[("200", "replaced", item()), ("201", "created", item())],
        ),
    );
    if !res.refuses(&Method::POST) {
        collection.insert(
            "post".into(),
            operation(
                format!("Create a {label} with a generated 20-digit id"),
                Some(body.clone()),
                &[("201", "created", item())],
            ),
        );
    }
    paths.insert(base.clone(), Value::Object(collection));

    let id_description = match res.keying {
        Keying::Id => "object id: 1-64 characters of [a-zA-Z0-9-_.]",
        Keying::Username => "the consumer's username",
        Keying::PluginName => "plugin name",
    };
    let mut one = Map::new();
    one.insert(
        "parameters".into(),
        json!([path_param("id", id_description)]),
    );
    let mut get = operation(
        format!("Get one {label}"),
        None,
        &[("200", "the object", item())],
    );
    get["responses"]["404"] = not_found.clone();
    one.insert("get".into(), get);
    one.insert(
        "put".into(),
        operation(
            format!("Create (201) or replace (200) a {label}"),
            Some(body.clone()),
            &[("200", "replaced", item()), ("201", "created", item())],
        ),
    );
    let mut delete = operation(
        format!("Delete a {label} (400 while still referenced)"),
        None,
        &[("200", "deleted", schema_ref("Deleted"))],
    );
    delete["parameters"] = json!([query_param(
        "force",
        "`true` deletes even while other objects reference it",
        json!({"type": "string", "enum": ["true", "false"]})
    )]);
    delete["responses"]["404"] = not_found.clone();
    one.insert("delete".into(), delete);
    if !res.refuses(&Method::PATCH) {
        let mut patch = operation(
            format!("JSON merge patch of a {label} (the result is validated)"),
            Some(json!({"type": "object"})),
            &[("200", "patched", item())],
        );
        patch["responses"]["404"] = not_found.clone();
        one.insert("patch".into(), patch);
        let mut sub = operation(
            format!(
                "Replace one field of a {label} by its path (`plugins`, `upstream/nodes`, ...)"
            ),
            Some(json!({})),
            &[("200", "patched", item())],
        );
        sub["responses"]["404"] = not_found;
        let sub_path = json!({
            "parameters": [path_param("id", id_description), path_param("path", "field path")],
            "patch": sub
        });
        paths.insert(format!("{base}/{{id}}/{{path}}"), sub_path);
    }
    paths.insert(format!("{base}/{{id}}"), Value::Object(one));
}

/// Response envelopes, added to the generated `components.schemas`.
fn envelopes(schemas: &mut Map<String, Value>) {
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error_msg"],
               "properties": {"error_msg": {"type": "string"}, "description": {"type": "string"}}}),
    );
    schemas.insert(
        "NotFound".into(),
        json!({"type": "object", "properties": {"message": {"type": "string"}}}),
    );
    schemas.insert(
        "Item".into(),
        json!({"type": "object", "required": ["key", "value"], "properties": {
            "key": {"type": "string"}, "value": {"type": "object"},
            "createdIndex": {"type": "integer"}, "modifiedIndex": {"type": "integer"}
        }}),
    );
    schemas.insert(
        "List".into(),
        json!({"type": "object", "required": ["total", "list"], "properties": {
            "total": {"type": "integer"}, "list": {"type": "array", "items": schema_ref("Item")}
        }}),
    );
    schemas.insert(
        "Deleted".into(),
        json!({"type": "object", "properties": {"deleted": {"type": "string"}, "key": {"type": "string"}}}),
    );
}

/// The OpenAPI 3.1 document of the Admin API.
pub(crate) fn openapi() -> Value {
    let bundle = schema::bundle("/components/schemas");
    let mut schemas = bundle.definitions;
    envelopes(&mut schemas);
    let mut paths = Map::new();
    for (kind, body) in &bundle.resources {
        resource_paths(*kind, body, &mut paths);
    }
    let plugin_names: Vec<&str> = crate::schema::plugin_names();
    let name_param = json!({"name": "name", "in": "path", "required": true,
        "schema": {"type": "string", "enum": plugin_names}});
    let any_schema = json!({"type": "object"});
    paths.insert(
        "/apisix/admin/plugins/list".into(),
        json!({"get": operation("Names of the plugins split accepts".into(), None,
            &[("200", "plugin names", json!({"type": "array", "items": {"type": "string"}}))])}),
    );
    paths.insert(
        "/apisix/admin/plugins".into(),
        json!({"get": operation("Every plugin's JSON Schema, by name (`?all=true`)".into(), None,
            &[("200", "schemas", json!({"type": "object", "additionalProperties": any_schema}))])}),
    );
    paths.insert(
        "/apisix/admin/plugins/reload".into(),
        json!({"put": operation("Reload plugins (they are compiled in: answers \"done\")".into(), None,
            &[("200", "done", json!({"type": "string"}))])}),
    );
    let mut plugin = operation(
        "JSON Schema of a plugin (`?schema_type=consumer` for the consumer side)".into(),
        None,
        &[("200", "the schema", any_schema.clone())],
    );
    plugin["parameters"] = json!([
        name_param,
        query_param(
            "schema_type",
            "`consumer` for the consumer schema",
            json!({"type": "string", "enum": ["consumer", "route"]})
        )
    ]);
    paths.insert(
        "/apisix/admin/plugins/{name}".into(),
        json!({"get": plugin.clone()}),
    );
    paths.insert(
        "/apisix/admin/schema/plugins/{name}".into(),
        json!({"get": plugin}),
    );
    let kinds: Vec<&str> = ResourceKind::ALL.iter().map(|k| k.as_str()).collect();
    let resource_param = json!({"name": "resource", "in": "path", "required": true,
        "schema": {"type": "string", "enum": kinds}});
    paths.insert(
        "/apisix/admin/schema/{resource}".into(),
        json!({"parameters": [resource_param.clone()],
               "get": operation("JSON Schema of a resource".into(), None,
                   &[("200", "the schema", any_schema.clone())])}),
    );
    paths.insert(
        "/apisix/admin/schema/validate/{resource}".into(),
        json!({"parameters": [resource_param],
               "post": operation("Validate an object without storing it".into(), Some(any_schema),
                   &[("200", "valid", json!({"type": "object"}))])}),
    );
    paths.insert(
        "/apisix/admin/openapi.json".into(),
        json!({"get": operation("This document".into(), None,
            &[("200", "OpenAPI 3.1", json!({"type": "object"}))])}),
    );
    paths.insert(
        "/apisix/admin".into(),
        json!({"head": {"summary": "Liveness probe (no API key needed)", "security": [],
            "responses": {"200": {"description": "OK"}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "split Admin API (APISIX v3 compatible)",
            "version": env!("CARGO_PKG_VERSION")
        },
        "servers": [{"url": "http://127.0.0.1:9180"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "header": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
                "query": {"type": "apiKey", "in": "query", "name": "api_key"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "x_api_key"}
            }
        },
        "security": [{"header": []}, {"query": []}, {"cookie": []}],
        "paths": paths
    })
}
