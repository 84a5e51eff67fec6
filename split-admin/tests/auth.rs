//! Admin API authentication: allow_admin before the token, 401 bodies, viewer role.

mod common;

use std::net::IpAddr;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

#[tokio::test]
async fn missing_and_wrong_keys_are_401() {
    let h = Harness::new();
    let r = call(
        &h.admin,
        Method::GET,
        "/apisix/admin/routes",
        "",
        None,
        local(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json,
        json!({"error_msg": "failed to check token", "description": "missing apikey"})
    );
    let r = call(
        &h.admin,
        Method::GET,
        "/apisix/admin/routes",
        "",
        Some("nope"),
        local(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["description"], "wrong apikey");
}

#[tokio::test]
async fn viewer_reads_but_cannot_write() {
    let h = Harness::new();
    let r = call(
        &h.admin,
        Method::GET,
        "/apisix/admin/routes",
        "",
        Some(VIEWER_KEY),
        local(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = call(
        &h.admin,
        Method::PUT,
        "/apisix/admin/upstreams/1",
        UPSTREAM,
        Some(VIEWER_KEY),
        local(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json,
        json!({"error_msg": "failed to check token", "description": "invalid method for role viewer"})
    );
    assert_eq!(h.admin.revision(), 0);
}

#[tokio::test]
async fn allow_admin_miss_is_403_before_the_token() {
    let h = Harness::new();
    for remote in ["10.1.2.3", "::ffff:10.1.2.3", "2001:db8::1"] {
        let r = call(
            &h.admin,
            Method::GET,
            "/apisix/admin/routes",
            "",
            Some(ADMIN_KEY),
            ip(remote),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{remote}");
        assert_eq!(r.json, json!({"error_msg": "403 Forbidden"}));
        // Even without a key the answer is 403, not 401.
        let r = call(
            &h.admin,
            Method::GET,
            "/apisix/admin/routes",
            "",
            None,
            ip(remote),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{remote}");
    }
    // An IPv4-mapped IPv6 address inside the allow list is allowed.
    let r = call(
        &h.admin,
        Method::GET,
        "/apisix/admin/routes",
        "",
        Some(ADMIN_KEY),
        ip("::ffff:127.0.0.1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn token_from_query_and_cookie() {
    let h = Harness::new();
    let r = call(
        &h.admin,
        Method::GET,
        &format!("/apisix/admin/routes?api_key={ADMIN_KEY}"),
        "",
        None,
        local(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let req = Request::get("/apisix/admin/routes")
        .header("Cookie", format!("x_api_key={ADMIN_KEY}"))
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    assert_eq!(send(&h.admin, req, local()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn head_probe_needs_no_key_but_respects_allow_admin() {
    let h = Harness::new();
    let r = call(&h.admin, Method::HEAD, "/apisix/admin", "", None, local()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.raw.is_empty());
    let r = call(
        &h.admin,
        Method::HEAD,
        "/apisix/admin",
        "",
        None,
        ip("10.0.0.1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn set_auth_takes_effect_immediately() {
    let h = Harness::new();
    let mut open = auth();
    open.required = false;
    open.allow = Vec::new();
    h.admin.set_auth(open);
    let r = call(
        &h.admin,
        Method::GET,
        "/apisix/admin/routes",
        "",
        None,
        ip("10.0.0.1"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    h.admin.set_auth(auth());
    let r = call(
        &h.admin,
        Method::GET,
        "/apisix/admin/routes",
        "",
        None,
        local(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
