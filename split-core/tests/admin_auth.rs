//! Admin API auth: allow-list, token sources and their order, roles, key policy.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method};
use split_core::admin_auth::{
    extract_token, validate_keys, AdminAuth, AdminKey, AuthDecision, Role, MIN_ADMIN_KEY_LEN,
    PLACEHOLDER_KEY,
};

const ADMIN: &str = "edd1c9f034335f136f87ad84b625c8f1edd1c9f0";
const VIEWER: &str = "4054f7cf07e344346cd3f287985e76a2";

fn key(name: &str, key: &str, role: Role) -> AdminKey {
    AdminKey {
        name: name.into(),
        key: key.into(),
        role,
    }
}

fn auth(allow: &[&str]) -> AdminAuth {
    AdminAuth {
        keys: vec![
            key("admin", ADMIN, Role::Admin),
            key("viewer", VIEWER, Role::Viewer),
        ],
        required: true,
        allow: allow
            .iter()
            .map(|s| s.parse().expect("test CIDR"))
            .collect(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

#[test]
fn allow_list_ipv4_and_mapped_ipv6() {
    let a = auth(&["127.0.0.0/24"]);
    let ok = AuthDecision::Allowed(Some(Role::Admin));
    assert_eq!(a.check(ip("127.0.0.1"), Some(ADMIN), &Method::GET), ok);
    assert_eq!(a.check(ip("127.0.0.255"), Some(ADMIN), &Method::GET), ok);
    assert_eq!(
        a.check(ip("::ffff:127.0.0.1"), Some(ADMIN), &Method::GET),
        ok
    );
    assert_eq!(
        a.check(ip("127.0.1.1"), Some(ADMIN), &Method::GET),
        AuthDecision::Forbidden
    );
    assert_eq!(
        a.check(ip("::ffff:10.0.0.1"), Some(ADMIN), &Method::GET),
        AuthDecision::Forbidden
    );
    assert_eq!(
        a.check(ip("::1"), Some(ADMIN), &Method::GET),
        AuthDecision::Forbidden
    );
}

#[test]
fn allow_list_is_checked_before_the_token() {
    let a = auth(&["127.0.0.0/24"]);
    assert_eq!(
        a.check(ip("192.0.2.1"), None, &Method::GET),
        AuthDecision::Forbidden
    );
    assert_eq!(
        a.check(ip("192.0.2.1"), Some("nope"), &Method::PUT),
        AuthDecision::Forbidden
    );
}

#[test]
fn empty_allow_list_admits_everyone_and_allow_all_is_reported() {
    let a = auth(&[]);
    assert_eq!(
        a.check(ip("203.0.113.9"), Some(ADMIN), &Method::PUT),
        AuthDecision::Allowed(Some(Role::Admin))
    );
    let guide = auth(&["127.0.0.0/24", "0.0.0.0/0"]);
    assert_eq!(
        guide.check(ip("203.0.113.9"), Some(ADMIN), &Method::PUT),
        AuthDecision::Allowed(Some(Role::Admin))
    );
    assert_eq!(
        guide.allow_all_entries(),
        vec!["0.0.0.0/0".parse::<ipnet::IpNet>().unwrap()]
    );
    assert!(a.allow_all_entries().is_empty());
}

#[test]
fn token_failures_have_apisix_descriptions() {
    let a = auth(&["127.0.0.0/24"]);
    let lo = ip("127.0.0.1");
    assert_eq!(
        a.check(lo, None, &Method::GET),
        AuthDecision::Unauthorized("missing apikey")
    );
    assert_eq!(
        a.check(lo, Some(""), &Method::GET),
        AuthDecision::Unauthorized("wrong apikey")
    );
    // A prefix or an extension of a real key is still wrong.
    assert_eq!(
        a.check(lo, Some(&ADMIN[..39]), &Method::GET),
        AuthDecision::Unauthorized("wrong apikey")
    );
    let longer = format!("{ADMIN}x");
    assert_eq!(
        a.check(lo, Some(&longer), &Method::GET),
        AuthDecision::Unauthorized("wrong apikey")
    );
}

#[test]
fn viewer_may_only_get() {
    let a = auth(&["127.0.0.0/24"]);
    let lo = ip("127.0.0.1");
    assert_eq!(
        a.check(lo, Some(VIEWER), &Method::GET),
        AuthDecision::Allowed(Some(Role::Viewer))
    );
    for m in [Method::PUT, Method::POST, Method::PATCH, Method::DELETE] {
        assert_eq!(
            a.check(lo, Some(VIEWER), &m),
            AuthDecision::Unauthorized("invalid method for role viewer"),
            "{m}"
        );
    }
    assert_eq!(
        a.check(lo, Some(ADMIN), &Method::DELETE),
        AuthDecision::Allowed(Some(Role::Admin))
    );
}

#[test]
fn auth_off_when_not_required_or_no_keys() {
    let mut a = auth(&["127.0.0.0/24"]);
    a.required = false;
    assert_eq!(
        a.check(ip("127.0.0.1"), None, &Method::PUT),
        AuthDecision::Allowed(None)
    );
    // The allow-list still applies with auth off.
    assert_eq!(
        a.check(ip("10.1.1.1"), None, &Method::PUT),
        AuthDecision::Forbidden
    );
    let mut b = auth(&[]);
    b.keys.clear();
    assert_eq!(
        b.check(ip("10.1.1.1"), None, &Method::PUT),
        AuthDecision::Allowed(None)
    );
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
            HeaderValue::from_str(v).expect("test header value"),
        );
    }
    h
}

#[test]
fn token_order_query_then_header_then_cookie() {
    let all = headers(&[
        ("X-API-KEY", "from-header"),
        ("Cookie", "a=1; x_api_key=from-cookie"),
    ]);
    assert_eq!(
        extract_token(Some("x=1&api_key=from-query"), &all).as_deref(),
        Some("from-query")
    );
    assert_eq!(
        extract_token(Some("x=1"), &all).as_deref(),
        Some("from-header")
    );
    assert_eq!(extract_token(None, &all).as_deref(), Some("from-header"));
    let cookie_only = headers(&[("cookie", "a=1"), ("cookie", "x_api_key=from-cookie; b=2")]);
    assert_eq!(
        extract_token(None, &cookie_only).as_deref(),
        Some("from-cookie")
    );
    assert_eq!(extract_token(Some("other=1"), &HeaderMap::new()), None);
}

#[test]
fn token_details() {
    let none = HeaderMap::new();
    // Percent-decoded query, first value wins.
    assert_eq!(
        extract_token(Some("api_key=a%2Fb%3D&api_key=second"), &none).as_deref(),
        Some("a/b=")
    );
    // Header names are case-insensitive.
    assert_eq!(
        extract_token(None, &headers(&[("x-api-key", "k")])).as_deref(),
        Some("k")
    );
    // Cookie names are case-sensitive, as in nginx.
    assert_eq!(
        extract_token(None, &headers(&[("cookie", "X_API_KEY=k")])),
        None
    );
    // An empty query value is a present (wrong) token, as in APISIX.
    assert_eq!(
        extract_token(Some("api_key="), &headers(&[("x-api-key", "k")])).as_deref(),
        Some("")
    );
    assert_eq!(extract_token(Some("api_keyx=1"), &none), None);
}

#[test]
fn validate_accepts_good_keys() {
    validate_keys(&[
        key("admin", ADMIN, Role::Admin),
        key("viewer", "short-viewer", Role::Viewer),
    ])
    .expect("valid keys");
    validate_keys(&[]).expect("no keys is valid");
}

#[test]
fn validate_refuses_placeholder() {
    let e = validate_keys(&[key("admin", PLACEHOLDER_KEY, Role::Admin)]).unwrap_err();
    assert_eq!(e.path, "[0].key");
    assert!(e.message.contains(PLACEHOLDER_KEY), "{e}");
    assert!(
        e.message
            .contains(&format!("at least {MIN_ADMIN_KEY_LEN} characters")),
        "{e}"
    );
    // Even as a viewer key.
    let e = validate_keys(&[
        key("a", ADMIN, Role::Admin),
        key("v", PLACEHOLDER_KEY, Role::Viewer),
    ])
    .unwrap_err();
    assert_eq!(e.path, "[1].key");
}

#[test]
fn validate_refuses_short_admin_key_without_printing_it() {
    let secret = "abcdefghij0123456789abcdefghij1"; // 31 characters
    let e = validate_keys(&[key("ops", secret, Role::Admin)]).unwrap_err();
    assert_eq!(e.path, "[0].key");
    assert!(e.message.contains("\"ops\""), "{e}");
    assert!(e.message.contains("31"), "{e}");
    assert!(!e.to_string().contains(secret), "secret leaked: {e}");
    // 32 is enough.
    validate_keys(&[key("ops", &format!("{secret}x"), Role::Admin)]).expect("32 chars");
}

#[test]
fn validate_refuses_empty_and_duplicate_keys() {
    let e = validate_keys(&[key("a", ADMIN, Role::Admin), key("v", "", Role::Viewer)]).unwrap_err();
    assert_eq!(e.path, "[1].key");
    assert!(e.message.contains("empty"), "{e}");
    let e =
        validate_keys(&[key("a", ADMIN, Role::Admin), key("b", ADMIN, Role::Viewer)]).unwrap_err();
    assert_eq!(e.path, "[1].key");
    assert!(e.message.contains("\"a\""), "{e}");
    assert!(!e.to_string().contains(ADMIN), "secret leaked: {e}");
}

#[test]
fn debug_never_prints_the_key() {
    let s = format!("{:?}", key("admin", ADMIN, Role::Admin));
    assert!(!s.contains(ADMIN));
    assert!(s.contains("admin"));
}

#[test]
fn prefixed_error_path() {
    let e = validate_keys(&[key("admin", PLACEHOLDER_KEY, Role::Admin)])
        .unwrap_err()
        .within("deployment.admin.admin_key");
    assert_eq!(e.path, "deployment.admin.admin_key[0].key");
}
