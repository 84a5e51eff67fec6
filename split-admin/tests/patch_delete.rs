//! PATCH (merge patch and sub-path) and DELETE (references, force).

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn merge_patch_merges_objects_deletes_nulls_replaces_arrays() {
    let h = Harness::new();
    h.put(
        "/apisix/admin/routes/1",
        r#"{"uri":"/a","methods":["GET","POST"],"desc":"d","upstream":{"type":"roundrobin","nodes":{"127.0.0.1:1":1}}}"#,
    )
    .await;
    let before = h.get("/apisix/admin/routes/1").await;
    let r = h
        .call(
            Method::PATCH,
            "/apisix/admin/routes/1",
            r#"{"methods":["PUT"],"desc":null,"upstream":{"nodes":{"127.0.0.1:2":3}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let v = &r.json["value"];
    assert_eq!(v["methods"], json!(["PUT"]));
    assert!(v.get("desc").is_none());
    assert_eq!(v["upstream"]["type"], "roundrobin", "objects merge");
    assert_eq!(
        v["upstream"]["nodes"],
        json!({"127.0.0.1:1": 1, "127.0.0.1:2": 3})
    );
    assert_eq!(v["create_time"], before.json["value"]["create_time"]);
    let after = h.get("/apisix/admin/routes/1").await;
    assert_eq!(after.json["value"], *v);
    assert_eq!(after.json["createdIndex"], before.json["createdIndex"]);
    assert!(after.json["modifiedIndex"].as_u64() > before.json["modifiedIndex"].as_u64());
}

#[tokio::test]
async fn sub_path_patch_replaces_the_subtree() {
    let h = Harness::new();
    h.put("/apisix/admin/routes/1", GUIDE_V1).await;
    let r = h
        .call(
            Method::PATCH,
            "/apisix/admin/routes/1/upstream/nodes",
            r#"{"127.0.0.1:9":2}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json["value"]["upstream"]["nodes"],
        json!({"127.0.0.1:9": 2})
    );
    assert_eq!(r.json["value"]["upstream"]["scheme"], "https");
    let r = h
        .call(Method::PATCH, "/apisix/admin/routes/1/uri", r#""/new""#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["value"]["uri"], "/new");
    let r = h
        .call(Method::PATCH, "/apisix/admin/routes/1/uri/x", r#""/new""#)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json, json!({"error_msg": "invalid sub-path: /uri"}));
}

#[tokio::test]
async fn patch_cannot_change_the_id_or_break_the_object() {
    let h = Harness::new();
    h.put("/apisix/admin/routes/1", GUIDE_V1).await;
    let before = h.admin.export();
    let r = h
        .call(Method::PATCH, "/apisix/admin/routes/1", r#"{"id":"2"}"#)
        .await;
    assert_eq!(r.json, json!({"error_msg": "wrong route id"}));
    let r = h
        .call(Method::PATCH, "/apisix/admin/routes/1", r#"{"uri":null}"#)
        .await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a route needs a uri: {}",
        r.json
    );
    let r = h.call(Method::PATCH, "/apisix/admin/routes/1", "[]").await;
    assert_eq!(r.json, json!({"error_msg": "invalid configuration"}));
    assert_eq!(h.admin.export(), before);
}

#[tokio::test]
async fn delete_answers_apisix_shape() {
    let h = Harness::new();
    h.put("/apisix/admin/routes/1", GUIDE_V1).await;
    let r = h.call(Method::DELETE, "/apisix/admin/routes/1", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.raw[..], br#"{"deleted":"1","key":"/apisix/routes/1"}"#);
    assert_eq!(
        h.get("/apisix/admin/routes/1").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(h.live.load().routes.is_empty());
}

#[tokio::test]
async fn referenced_objects_need_force() {
    let h = Harness::new();
    h.put("/apisix/admin/upstreams/u1", UPSTREAM).await;
    h.put("/apisix/admin/upstreams/u2", UPSTREAM).await;
    h.put(
        "/apisix/admin/routes/1",
        r#"{"uri":"/a","upstream_id":"u1"}"#,
    )
    .await;
    let r = h
        .put(
            "/apisix/admin/routes/2",
            r#"{"uri":"/b","upstream_id":"u1","plugins":{"traffic-split":{"rules":[{"weighted_upstreams":[{"upstream_id":"u2","weight":1},{"weight":1}]}]}}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = h
        .call(Method::DELETE, "/apisix/admin/upstreams/u1", "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json,
        json!({"error_msg": "can not delete this upstream, route [1] is still using it now"})
    );
    let r = h
        .call(Method::DELETE, "/apisix/admin/upstreams/u2", "")
        .await;
    assert_eq!(
        r.json,
        json!({"error_msg": "can not delete this upstream, plugin in route [2] is still using it now"})
    );
    assert_eq!(h.live.load().routes.len(), 2);

    // Forced: the upstream goes; its users stay stored but leave the live snapshot.
    let r = h
        .call(Method::DELETE, "/apisix/admin/upstreams/u2?force=true", "")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        h.get("/apisix/admin/upstreams/u2").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.get("/apisix/admin/routes/2").await.status, StatusCode::OK);
    assert_eq!(
        h.live.load().routes.len(),
        1,
        "route 2 is left out until fixed"
    );
    // Unrelated writes still work while route 2 is broken.
    let r = h.put("/apisix/admin/routes/3", GUIDE_V2).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    // Fixing the reference brings route 2 back.
    let r = h.put("/apisix/admin/upstreams/u2", UPSTREAM).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(h.live.load().routes.len(), 3);
}

#[tokio::test]
async fn services_and_plugin_configs_in_use() {
    let h = Harness::new();
    h.put(
        "/apisix/admin/services/s",
        r#"{"upstream":{"nodes":{"127.0.0.1:1":1}}}"#,
    )
    .await;
    h.put(
        "/apisix/admin/plugin_configs/p",
        r#"{"plugins":{"prometheus":{}}}"#,
    )
    .await;
    let r = h
        .put(
            "/apisix/admin/routes/1",
            r#"{"uri":"/a","service_id":"s","plugin_config_id":"p"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = h.call(Method::DELETE, "/apisix/admin/services/s", "").await;
    assert_eq!(
        r.json,
        json!({"error_msg": "can not delete this service directly, route [1] is still using it now"})
    );
    let r = h
        .call(Method::DELETE, "/apisix/admin/plugin_configs/p", "")
        .await;
    assert_eq!(
        r.json,
        json!({"error_msg": "can not delete this plugin config, route [1] is still using it now"})
    );
    let r = h.call(Method::DELETE, "/apisix/admin/routes/1", "").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h.call(Method::DELETE, "/apisix/admin/services/s", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}
