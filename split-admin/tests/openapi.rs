//! `GET /apisix/admin/openapi.json`: an OpenAPI 3.1 document whose paths are exactly what
//! the router serves, with request bodies that are the generated resource schemas.

mod common;
mod schema_check;

use std::collections::BTreeSet;

use common::*;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use split_core::config::ResourceKind;

const METHODS: [Method; 6] = [
    Method::GET,
    Method::PUT,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
];

/// A concrete path for an OpenAPI path template.
fn instantiate(template: &str) -> String {
    template
        .replace("{id}", "probe-1")
        .replace("{path}", "desc")
        .replace("{name}", "prometheus")
        .replace("{resource}", "routes")
}

/// Whether the router serves `method path` (some handler answered), as opposed to the
/// generic 404 "not found", a 405, or a 400 saying the path shape needs/forbids an id.
async fn served(h: &Harness, method: &Method, path: &str) -> bool {
    // PUT carries the id (or username) a collection PUT needs; POST must not.
    let body = match *method {
        Method::PUT => r#"{"id": "probe-1", "username": "probe-1"}"#,
        Method::POST | Method::PATCH => "{}",
        _ => "",
    };
    let r = h.call(method.clone(), path, body).await;
    let msg = r.json["error_msg"].as_str().unwrap_or_default().to_owned();
    let unrouted = (r.status == StatusCode::NOT_FOUND && msg == "not found")
        || r.status == StatusCode::METHOD_NOT_ALLOWED
        || (r.status == StatusCode::BAD_REQUEST
            && ((msg.starts_with("missing ") && msg.ends_with(" id"))
                || msg.ends_with("do not need it")));
    !unrouted
}

/// Every (path template, method) of the document.
fn operations(doc: &Value) -> BTreeSet<(String, Method)> {
    let mut ops = BTreeSet::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let key = method.as_str().to_ascii_lowercase();
            if item.get(&key).is_some() {
                ops.insert((template.clone(), method));
            }
        }
    }
    ops
}

#[tokio::test]
async fn openapi_is_3_1_and_every_ref_resolves() {
    let h = Harness::new();
    let r = h.get("/apisix/admin/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    fn walk(doc: &Value, v: &Value, refs: &mut usize) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let pointer = r.strip_prefix('#').expect("local ref");
                    assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                    *refs += 1;
                }
                map.values().for_each(|x| walk(doc, x, refs));
            }
            Value::Array(items) => items.iter().for_each(|x| walk(doc, x, refs)),
            _ => {}
        }
    }
    let mut refs = 0;
    walk(&doc, &doc, &mut refs);
    assert!(refs > 20, "only {refs} refs");
    // Each operation has responses; each path parameter is declared.
    for (template, method) in operations(&doc) {
        let item = &doc["paths"][&template];
        let op = &item[method.as_str().to_ascii_lowercase()];
        assert!(op["responses"].is_object(), "{method} {template}");
        let mut declared: Vec<&str> = Vec::new();
        for params in [&item["parameters"], &op["parameters"]] {
            for p in params.as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    declared.push(p["name"].as_str().expect("param name"));
                }
            }
        }
        for segment in template.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(declared.contains(&name), "{method} {template}: {name}");
            }
        }
    }
}

#[tokio::test]
async fn request_bodies_are_the_generated_schemas() {
    let h = Harness::new();
    let doc = h.get("/apisix/admin/openapi.json").await.json;
    let body_schema = |path: &str| {
        doc["paths"][path]["put"]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    let route = body_schema("/apisix/admin/routes/{id}");
    for body in [GUIDE_V1, GUIDE_V2, GUIDE_SPLIT] {
        let value: Value = serde_json::from_str(body).expect("JSON");
        schema_check::check(&doc, &route, &value).expect("guide body passes");
    }
    assert!(schema_check::check(&doc, &route, &json!({"uri": "/x", "bogus": 1})).is_err());
    let upstream = body_schema("/apisix/admin/upstreams/{id}");
    assert!(schema_check::check(
        &doc,
        &upstream,
        &serde_json::from_str(UPSTREAM).expect("JSON")
    )
    .is_ok());
    assert!(schema_check::check(
        &doc,
        &upstream,
        &json!({"nodes": {"a:1": 1}, "type": "ewma"})
    )
    .is_err());
    // Same content as GET schema/{res}, only with refs into components.
    for kind in ResourceKind::ALL {
        let path = format!("/apisix/admin/{}/{{id}}", kind.as_str());
        assert!(body_schema(&path)["$ref"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn paths_match_what_the_router_serves() {
    let h = Harness::new();
    let doc = h.get("/apisix/admin/openapi.json").await.json;
    let documented = operations(&doc);
    let mut wrong = Vec::new();
    // Everything documented is served.
    for (template, method) in &documented {
        if !served(&h, method, &instantiate(template)).await {
            wrong.push(format!("documented but not served: {method} {template}"));
        }
    }
    // Everything served (over every resource shape and method) is documented.
    let mut templates: Vec<String> = vec![
        "/apisix/admin".into(),
        "/apisix/admin/openapi.json".into(),
        "/apisix/admin/plugins".into(),
        "/apisix/admin/plugins/list".into(),
        "/apisix/admin/plugins/reload".into(),
        "/apisix/admin/plugins/{name}".into(),
        "/apisix/admin/schema/{resource}".into(),
        "/apisix/admin/schema/plugins/{name}".into(),
        "/apisix/admin/schema/validate/{resource}".into(),
    ];
    for kind in ResourceKind::ALL {
        let base = format!("/apisix/admin/{}", kind.as_str());
        templates.push(base.clone());
        templates.push(format!("{base}/{{id}}"));
        templates.push(format!("{base}/{{id}}/{{path}}"));
    }
    let mut probed = 0;
    for template in &templates {
        for method in METHODS {
            // HEAD on a GET resource is answered like GET by HTTP servers; only the
            // liveness probe documents HEAD.
            if method == Method::HEAD && template != "/apisix/admin" {
                continue;
            }
            // `GET plugins/reload` is `GET plugins/{name}` for a plugin named "reload".
            if method == Method::GET && template == "/apisix/admin/plugins/reload" {
                continue;
            }
            // Like APISIX, GET/PUT/DELETE ignore a path tail after the id; only PATCH
            // gives it a meaning (sub-path PATCH), so only PATCH is documented there.
            if template.ends_with("{path}") && method != Method::PATCH {
                continue;
            }
            if served(&h, &method, &instantiate(template)).await {
                probed += 1;
                if !documented.contains(&(template.clone(), method.clone())) {
                    wrong.push(format!("served but not documented: {method} {template}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(probed, documented.len(), "{documented:?}");
}
