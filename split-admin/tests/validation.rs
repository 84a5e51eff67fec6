//! Rejected writes: every one is 400 with a clear message and changes nothing.

mod common;

use common::*;
use http::{Method, StatusCode};
use serde_json::json;

/// Asserts that `body` PUT to `path` is rejected with 400 and leaves the store unchanged.
async fn rejected(h: &Harness, method: Method, path: &str, body: &str) -> serde_json::Value {
    let before = h.admin.export();
    let rev = h.admin.revision();
    let live_before = h.live.load_full();
    let r = h.call(method, path, body).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "{path} {body}: {}",
        r.json
    );
    assert_eq!(h.admin.export(), before, "a rejected write changes nothing");
    assert_eq!(h.admin.revision(), rev);
    assert!(
        std::sync::Arc::ptr_eq(&live_before, &h.live.load_full()),
        "nothing published"
    );
    r.json
}

async fn seeded() -> Harness {
    let h = Harness::new();
    assert_eq!(
        h.put("/apisix/admin/upstreams/u1", UPSTREAM).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        h.put("/apisix/admin/routes/test-v1", GUIDE_V1).await.status,
        StatusCode::CREATED
    );
    h
}

#[tokio::test]
async fn bad_json_is_400_with_the_body() {
    let h = seeded().await;
    let j = rejected(
        &h,
        Method::PUT,
        "/apisix/admin/routes/test-v1",
        r#"{"uri": "/x""#,
    )
    .await;
    assert!(
        j["error_msg"]
            .as_str()
            .expect("msg")
            .starts_with("invalid request body: "),
        "{j}"
    );
    assert_eq!(j["req_body"], r#"{"uri": "/x""#);
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_name_the_field() {
    let h = seeded().await;
    let j = rejected(
        &h,
        Method::PUT,
        "/apisix/admin/routes/test-v1",
        r#"{"uri":"/x","upstream_id":"u1","bogus":1}"#,
    )
    .await;
    let msg = j["error_msg"].as_str().expect("msg");
    assert!(msg.starts_with("invalid configuration: "), "{msg}");
    assert!(msg.contains("bogus"), "{msg}");
    let j = rejected(
        &h,
        Method::PUT,
        "/apisix/admin/routes/test-v1",
        r#"{"uri":5,"upstream_id":"u1"}"#,
    )
    .await;
    assert!(j["error_msg"].as_str().expect("msg").contains("uri"), "{j}");
    let j = rejected(
        &h,
        Method::PUT,
        "/apisix/admin/routes/r2",
        r#"{"uri":"/x","plugins":{"traffic-split":{"rules":[{"weighted_upstreams":[{"upstream_id":"u1","weight":-1}]}]}}}"#,
    )
    .await;
    let msg = j["error_msg"].as_str().expect("msg");
    assert!(
        msg.contains("plugins.traffic-split.rules[0].weighted_upstreams[0].weight"),
        "{msg}"
    );
    rejected(&h, Method::PUT, "/apisix/admin/upstreams/u2", "[1,2]").await;
    rejected(&h, Method::PUT, "/apisix/admin/upstreams/u2", "").await;
    rejected(&h, Method::PUT, "/apisix/admin/upstreams/a%2Fb", UPSTREAM).await;
}

#[tokio::test]
async fn dangling_references_are_400() {
    let h = seeded().await;
    for body in [
        r#"{"uri":"/x","upstream_id":"missing"}"#,
        r#"{"uri":"/x","service_id":"missing"}"#,
        r#"{"uri":"/x","upstream_id":"u1","plugin_config_id":"missing"}"#,
        r#"{"uri":"/x","upstream_id":"u1","plugins":{"traffic-split":{"rules":[{"weighted_upstreams":[{"upstream_id":"missing","weight":1}]}]}}}"#,
    ] {
        let j = rejected(&h, Method::PUT, "/apisix/admin/routes/r9", body).await;
        assert!(
            j["error_msg"]
                .as_str()
                .expect("msg")
                .starts_with("invalid configuration: "),
            "{j}"
        );
    }
}

#[tokio::test]
async fn oversize_body_is_400_and_changes_nothing() {
    let h = seeded().await;
    let big = format!(
        r#"{{"uri":"/x","desc":"{}"}}"#,
        "a".repeat(split_admin::MAX_BODY)
    );
    let j = rejected(&h, Method::PUT, "/apisix/admin/routes/big", &big).await;
    let msg = j["error_msg"].as_str().expect("msg");
    assert!(
        msg.contains("greater than the maximum size 1572864"),
        "{msg}"
    );
}

/// A streamed body of endless 64 KiB chunks without a declared length.
struct Endless {
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl http_body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Bounded so a broken reader cannot loop forever: 1 GiB in total.
        if n >= 16 * 1024 {
            return std::task::Poll::Ready(None);
        }
        let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }
}

#[tokio::test]
async fn streamed_oversize_body_is_abandoned_at_the_limit() {
    let h = seeded().await;
    let before = h.admin.export();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let req = http::Request::put("/apisix/admin/routes/big")
        .header("X-API-KEY", ADMIN_KEY)
        .body(Endless { sent: sent.clone() })
        .expect("valid request");
    let resp = h.admin.handle(req, local()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let chunks = sent.load(std::sync::atomic::Ordering::SeqCst);
    // 1.5 MiB is 24 chunks of 64 KiB: reading stops at the 25th.
    assert_eq!(chunks, 25, "the body was not read past the limit");
    assert_eq!(h.admin.export(), before);
}

#[tokio::test]
async fn patch_and_delete_of_missing_objects_are_404() {
    let h = seeded().await;
    let r = h
        .call(
            Method::PATCH,
            "/apisix/admin/routes/nope",
            r#"{"desc":"x"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json, json!({"message": "Key not found"}));
    let r = h
        .call(Method::DELETE, "/apisix/admin/routes/nope", "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
