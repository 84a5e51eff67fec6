//! Resource CRUD through `Admin::handle`: status codes and body shapes of APISIX v3.

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn guide_puts_create_then_replace() {
    let h = Harness::new();
    for (path, body) in [
        ("/apisix/admin/routes/test-v1", GUIDE_V1),
        ("/apisix/admin/routes/test-v2", GUIDE_V2),
        ("/apisix/admin/routes/aimlapi-split", GUIDE_SPLIT),
    ] {
        let r = h.put(path, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.json);
        let id = path.rsplit('/').next().expect("id segment");
        assert_eq!(r.json["key"], format!("/apisix/routes/{id}"));
        assert_eq!(r.json["value"]["id"], id);
        assert!(r.json["value"]["create_time"].is_u64());
        assert!(r.json["value"]["update_time"].is_u64());
        assert!(
            r.json.get("createdIndex").is_none(),
            "write responses carry no index"
        );
        let again = h.put(path, body).await;
        assert_eq!(again.status, StatusCode::OK, "{path}: {}", again.json);
        assert_eq!(
            again.json["value"]["create_time"], r.json["value"]["create_time"],
            "replace keeps create_time"
        );
    }
    // The split route is live for the proxy.
    let snap = h.live.load();
    assert_eq!(snap.routes.len(), 3);
    let split = snap
        .routes
        .iter()
        .find(|r| r.route.id == "aimlapi-split")
        .expect("split route is live");
    assert_eq!(split.rules.len(), 1, "the shorthand is one split");
    assert_eq!(split.rules[0].weights, vec![50, 50]);
    assert_eq!(h.admin.revision(), 6);
}

#[tokio::test]
async fn every_response_has_json_and_version_headers() {
    let h = Harness::new();
    for r in [
        h.get("/apisix/admin/routes").await,
        h.get("/apisix/admin/routes/nope").await,
        h.get("/apisix/admin/nope").await,
        h.put("/apisix/admin/routes/1", "{").await,
        call(
            &h.admin,
            Method::GET,
            "/apisix/admin/routes",
            "",
            None,
            local(),
        )
        .await,
    ] {
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["x-api-version"], "v3");
    }
}

#[tokio::test]
async fn get_one_and_list_shapes() {
    let h = Harness::new();
    let empty = h.get("/apisix/admin/routes").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(&empty.raw[..], br#"{"list":[],"total":0}"#);

    h.put("/apisix/admin/upstreams/1", UPSTREAM).await;
    let one = h.get("/apisix/admin/upstreams/1").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["key"], "/apisix/upstreams/1");
    assert_eq!(one.json["value"]["nodes"], json!({"127.0.0.1:1980": 1}));
    assert_eq!(one.json["createdIndex"], 1);
    assert_eq!(one.json["modifiedIndex"], 1);
    let keys: Vec<&String> = one.json.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["key", "value", "createdIndex", "modifiedIndex"]);

    h.put("/apisix/admin/upstreams/1", UPSTREAM).await;
    let one = h.get("/apisix/admin/upstreams/1").await;
    assert_eq!(
        (
            one.json["createdIndex"].as_u64(),
            one.json["modifiedIndex"].as_u64()
        ),
        (Some(1), Some(2))
    );

    let list = h.get("/apisix/admin/upstreams").await;
    assert_eq!(list.json["total"], 1);
    assert_eq!(list.json["list"][0]["key"], "/apisix/upstreams/1");

    let missing = h.get("/apisix/admin/upstreams/2").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(&missing.raw[..], br#"{"message":"Key not found"}"#);
}

#[tokio::test]
async fn unknown_resource_is_404() {
    let h = Harness::new();
    let r = h.get("/apisix/admin/stream_routes/1").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.json,
        json!({"error_msg": "Unsupported resource type: stream_routes"})
    );
}

#[tokio::test]
async fn ids_from_path_body_and_post() {
    let h = Harness::new();
    // Body id keeps its JSON type.
    let r = h
        .put(
            "/apisix/admin/upstreams",
            r#"{"id":1,"nodes":{"127.0.0.1:1":1},"type":"roundrobin"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["value"]["id"], json!(1));
    assert_eq!(r.json["key"], "/apisix/upstreams/1");
    // Path id is a string.
    let r = h.put("/apisix/admin/upstreams/2", UPSTREAM).await;
    assert_eq!(r.json["value"]["id"], json!("2"));
    // Mismatch.
    let r = h
        .put(
            "/apisix/admin/upstreams/3",
            r#"{"id":"4","nodes":{"127.0.0.1:1":1}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json, json!({"error_msg": "wrong upstream id"}));
    // No id at all.
    let r = h.put("/apisix/admin/upstreams", UPSTREAM).await;
    assert_eq!(r.json, json!({"error_msg": "missing upstream id"}));
    // POST generates the revision-based id.
    let r = h
        .call(Method::POST, "/apisix/admin/upstreams", UPSTREAM)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["value"]["id"], "00000000000000000003");
    assert_eq!(r.json["key"], "/apisix/upstreams/00000000000000000003");
    let r = h.get("/apisix/admin/upstreams/00000000000000000003").await;
    assert_eq!(r.status, StatusCode::OK);
    // POST with an id is refused.
    let r = h
        .call(Method::POST, "/apisix/admin/routes/9", GUIDE_V1)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json,
        json!({"error_msg": "wrong route id, do not need it"})
    );
    let r = h
        .call(Method::POST, "/apisix/admin/routes", GUIDE_SPLIT)
        .await;
    assert_eq!(
        r.json,
        json!({"error_msg": "wrong route id, do not need it"})
    );
}

#[tokio::test]
async fn timestamps_in_the_body_are_forbidden() {
    let h = Harness::new();
    let r = h
        .put(
            "/apisix/admin/upstreams/1",
            r#"{"nodes":{"127.0.0.1:1":1},"create_time":1}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json,
        json!({"error_msg": "the property is forbidden: create_time"})
    );
    let r = h
        .call(
            Method::POST,
            "/apisix/admin/upstreams",
            r#"{"nodes":{"127.0.0.1:1":1},"update_time":1}"#,
        )
        .await;
    assert_eq!(
        r.json,
        json!({"error_msg": "the property is forbidden: update_time"})
    );
    assert_eq!(h.admin.revision(), 0);
}

#[tokio::test]
async fn consumers_are_keyed_by_username() {
    let h = Harness::new();
    let r = h
        .put("/apisix/admin/consumers", r#"{"username":"jack"}"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["key"], "/apisix/consumers/jack");
    assert!(r.json["value"].get("id").is_none());
    let r = h
        .put(
            "/apisix/admin/consumers/jack",
            r#"{"username":"jack","desc":"d"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = h
        .put("/apisix/admin/consumers/jill", r#"{"username":"jack"}"#)
        .await;
    assert_eq!(r.json, json!({"error_msg": "wrong username"}));
    for m in [Method::POST, Method::PATCH] {
        let r = h
            .call(
                m.clone(),
                "/apisix/admin/consumers/jack",
                r#"{"username":"jack"}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            r.json,
            json!({"error_msg": format!("not supported `{m}` method for consumer")})
        );
    }
    let r = h.get("/apisix/admin/consumers/jack").await;
    assert_eq!(r.json["value"]["desc"], "d");
}

#[tokio::test]
async fn other_kinds_are_stored() {
    let h = Harness::new();
    let r = h
        .put(
            "/apisix/admin/plugin_configs/pc",
            r#"{"plugins":{"prometheus":{}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = h
        .put(
            "/apisix/admin/global_rules/g",
            r#"{"plugins":{"prometheus":{}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = h
        .put(
            "/apisix/admin/services/s",
            r#"{"upstream":{"nodes":{"127.0.0.1:1":1}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = h
        .put("/apisix/admin/plugin_metadata/prometheus", r#"{"x":1}"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["key"], "/apisix/plugin_metadata/prometheus");
    assert_eq!(r.json["value"]["id"], "prometheus");
    let r = h
        .put(
            "/apisix/admin/ssls/1",
            r#"{"cert":"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----","key":"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----","snis":["a.test"]}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = h.get("/apisix/admin/ssls/1").await;
    assert!(
        r.json["value"].get("key").is_none(),
        "private keys are never returned"
    );
    assert_eq!(r.json["value"]["snis"], json!(["a.test"]));
}

#[tokio::test]
async fn list_filters_and_pagination() {
    let h = Harness::new();
    for i in 0..12 {
        let body = json!({
            "name": format!("route-{i}"),
            "uri": format!("/r/{i}"),
            "labels": if i % 2 == 0 { json!({"env": "prod"}) } else { json!({"team": "a"}) },
            "upstream": {"nodes": {"127.0.0.1:1": 1}},
        });
        // Ids sort differently from creation order: "r00", "r11", ... created last first.
        let id = format!("r{:02}", 11 - i);
        let r = h
            .put(&format!("/apisix/admin/routes/{id}"), &body.to_string())
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
    let all = h.get("/apisix/admin/routes").await;
    assert_eq!(all.json["total"], 12);
    let r = h.get("/apisix/admin/routes?name=route-1").await;
    assert_eq!(r.json["total"], 3, "route-1, route-10, route-11");
    let r = h.get("/apisix/admin/routes?label=env").await;
    assert_eq!(r.json["total"], 6);
    let r = h.get("/apisix/admin/routes?uri=%2Fr%2F1%24").await;
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["list"][0]["value"]["uri"], "/r/1");
    // Page 2 of size 10 holds the two newest objects (sorted by createdIndex).
    let r = h.get("/apisix/admin/routes?page=2&page_size=10").await;
    assert_eq!(r.json["total"], 12);
    let names: Vec<&str> = r.json["list"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| i["value"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["route-10", "route-11"]);
    for bad in ["9", "501"] {
        let r = h
            .get(&format!("/apisix/admin/routes?page=1&page_size={bad}"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            r.json,
            json!({"error_msg": "page_size must be between 10 and 500"})
        );
    }
}

#[tokio::test]
async fn self_description_endpoints() {
    let h = Harness::new();
    let r = h.get("/apisix/admin/plugins/list").await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<&str> = r
        .json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(names.contains(&"traffic-split"));
    let r = h.get("/apisix/admin/plugins/traffic-split").await;
    assert_eq!(r.json["type"], "object");
    assert!(r.json["properties"]["rules"].is_object());
    let r = h.get("/apisix/admin/plugins/no-such").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.get("/apisix/admin/schema/route").await;
    // Generated from `Option<String>`: a string, or null (absent).
    assert_eq!(
        r.json["properties"]["uri"]["type"],
        serde_json::json!(["string", "null"])
    );
    let r = h.get("/apisix/admin/openapi.json").await;
    assert_eq!(r.json["openapi"], "3.1.0");
    let r = h
        .call(
            Method::POST,
            "/apisix/admin/schema/validate/routes",
            GUIDE_V1,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = h
        .call(
            Method::POST,
            "/apisix/admin/schema/validate/routes",
            r#"{"uri":"/x","bogus":1}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(h.admin.revision(), 0, "validation stores nothing");
    let r = h
        .call(Method::PUT, "/apisix/admin/plugins/reload", "")
        .await;
    assert_eq!((r.status, r.json.clone()), (StatusCode::OK, json!("done")));
}

#[tokio::test]
async fn ttl_is_refused() {
    let h = Harness::new();
    let r = h.put("/apisix/admin/upstreams/1?ttl=5", UPSTREAM).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["error_msg"]
        .as_str()
        .is_some_and(|m| m.contains("ttl")));
    assert_eq!(h.admin.revision(), 0);
}
