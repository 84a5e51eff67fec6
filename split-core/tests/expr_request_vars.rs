//! `Request::var` / `Request::value`: APISIX `ctx.var` names.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;
use split_core::request::{Request, VarError, VarValue};

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("test header name"),
            HeaderValue::from_bytes(v).expect("test header value"),
        );
    }
    h
}

fn req<'a>(
    method: &'a Method,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    body: Option<&'a [u8]>,
) -> Request<'a> {
    Request {
        method,
        host: Some("API.Example.COM"),
        path: "/v1/chat/completions",
        query,
        headers,
        remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
        remote_port: 53211,
        body,
        consumer: Some("alice"),
        route_id: Some("r1"),
    }
}

fn var(r: &Request<'_>, name: &str) -> Option<String> {
    r.var(name).expect("no body needed").map(Cow::into_owned)
}

#[test]
fn basic_vars() {
    let m = Method::POST;
    let h = HeaderMap::new();
    let r = req(&m, Some("a=1&b=x+y"), &h, None);
    assert_eq!(var(&r, "uri").as_deref(), Some("/v1/chat/completions"));
    assert_eq!(
        var(&r, "request_uri").as_deref(),
        Some("/v1/chat/completions?a=1&b=x+y")
    );
    assert_eq!(var(&r, "query_string").as_deref(), Some("a=1&b=x+y"));
    assert_eq!(var(&r, "args").as_deref(), Some("a=1&b=x+y"));
    assert_eq!(var(&r, "host").as_deref(), Some("api.example.com"));
    assert_eq!(var(&r, "remote_addr").as_deref(), Some("10.0.0.7"));
    assert_eq!(var(&r, "remote_port").as_deref(), Some("53211"));
    assert_eq!(var(&r, "request_method").as_deref(), Some("POST"));
    assert_eq!(var(&r, "consumer_name").as_deref(), Some("alice"));
    assert_eq!(var(&r, "route_id").as_deref(), Some("r1"));
    assert_eq!(var(&r, "no_such_var"), None);
    // No Host header (HTTP/2 :authority): http_host falls back to the request host.
    assert_eq!(var(&r, "http_host").as_deref(), Some("API.Example.COM"));
    let r = req(&m, None, &h, None);
    assert_eq!(
        var(&r, "request_uri").as_deref(),
        Some("/v1/chat/completions")
    );
    assert_eq!(var(&r, "query_string"), None);
    assert_eq!(var(&r, "arg_a"), None);
}

#[test]
fn query_args() {
    let m = Method::GET;
    let h = HeaderMap::new();
    let r = req(
        &m,
        Some("a=1&a=2&name=J%C3%BCrgen+M&empty=&flag&x%20y=z&bad=%zz"),
        &h,
        None,
    );
    assert_eq!(var(&r, "arg_a").as_deref(), Some("1"));
    assert_eq!(var(&r, "arg_name").as_deref(), Some("Jürgen M"));
    assert_eq!(var(&r, "arg_empty").as_deref(), Some(""));
    assert_eq!(var(&r, "arg_x y").as_deref(), Some("z"));
    assert_eq!(var(&r, "arg_bad").as_deref(), Some("%zz"));
    assert_eq!(var(&r, "arg_A"), None, "arg names are case-sensitive");
    assert_eq!(r.value("arg_flag"), Ok(Some(VarValue::Json(json!(true)))));
}

#[test]
fn headers_and_cookies() {
    let m = Method::GET;
    let h = headers(&[
        ("x-api-version", b"v2"),
        ("x-multi", b"a"),
        ("x-multi", b"b"),
        ("cookie", b"session=abc; Theme=dark"),
        ("cookie", b"lang=de"),
        ("x-bin", b"caf\xe9"),
        ("host", b"h.example:8080"),
    ]);
    let r = req(&m, None, &h, None);
    assert_eq!(var(&r, "http_x_api_version").as_deref(), Some("v2"));
    assert_eq!(var(&r, "http_X_API_VERSION").as_deref(), Some("v2"));
    assert_eq!(var(&r, "http_x-api-version").as_deref(), Some("v2"));
    assert_eq!(var(&r, "http_x_multi").as_deref(), Some("a, b"));
    assert_eq!(
        var(&r, "http_cookie").as_deref(),
        Some("session=abc; Theme=dark; lang=de")
    );
    assert_eq!(var(&r, "http_x_missing"), None);
    assert_eq!(var(&r, "http_host").as_deref(), Some("h.example:8080"));
    assert_eq!(var(&r, "http_bad header"), None);
    assert_eq!(var(&r, "http_x_bin").as_deref(), Some("caf\u{fffd}"));
    assert_eq!(var(&r, "cookie_session").as_deref(), Some("abc"));
    assert_eq!(var(&r, "cookie_Theme").as_deref(), Some("dark"));
    assert_eq!(
        var(&r, "cookie_theme"),
        None,
        "cookie names are case-sensitive"
    );
    assert_eq!(var(&r, "cookie_lang").as_deref(), Some("de"));
}

#[test]
fn form_post_args() {
    let m = Method::POST;
    let h = headers(&[(
        "content-type",
        b"application/x-www-form-urlencoded;charset=UTF-8",
    )]);
    let r = req(&m, None, &h, None);
    assert_eq!(r.var("post_arg_model"), Err(VarError::NeedBody));
    assert_eq!(r.var("post_arg.model"), Err(VarError::NeedBody));
    let body = b"model=gpt-4o&tag=a&tag=b&msg=hi+there";
    let r = req(&m, None, &h, Some(body));
    assert_eq!(var(&r, "post_arg_model").as_deref(), Some("gpt-4o"));
    assert_eq!(var(&r, "post_arg_tag").as_deref(), Some("a"));
    assert_eq!(var(&r, "post_arg_msg").as_deref(), Some("hi there"));
    assert_eq!(var(&r, "post_arg.model").as_deref(), Some("gpt-4o"));
    assert_eq!(
        r.value("post_arg.tag"),
        Ok(Some(VarValue::Json(json!(["a", "b"]))))
    );
    assert_eq!(var(&r, "post_arg_nope"), None);
}

#[test]
fn form_vars_ignore_other_content_types() {
    let m = Method::POST;
    for ct in [
        &b"application/json"[..],
        b"text/plain",
        b"multipart/form-data; boundary=x",
    ] {
        let h = headers(&[("content-type", ct)]);
        let r = req(&m, None, &h, None);
        assert_eq!(r.var("post_arg_model"), Ok(None), "{ct:?}");
    }
    let h = HeaderMap::new();
    let r = req(&m, None, &h, None);
    assert_eq!(r.var("post_arg_model"), Ok(None));
    assert_eq!(r.var("post_arg.model"), Ok(None));
}

#[test]
fn json_post_args() {
    let m = Method::POST;
    let h = headers(&[("content-type", b"application/json")]);
    let body = br#"{"model":"gpt-4o","stream":true,"max_tokens":256,"temp":0.5,"n":null,
        "meta":{"tier":"pro","0":"zero"},
        "messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text"},{"type":"image_url"}]}]}"#;
    let r = req(&m, None, &h, Some(body));
    assert_eq!(var(&r, "post_arg.model").as_deref(), Some("gpt-4o"));
    assert_eq!(var(&r, "post_arg.stream").as_deref(), Some("true"));
    assert_eq!(var(&r, "post_arg.max_tokens").as_deref(), Some("256"));
    assert_eq!(var(&r, "post_arg.temp").as_deref(), Some("0.5"));
    assert_eq!(var(&r, "post_arg.n").as_deref(), Some("null"));
    assert_eq!(var(&r, "post_arg.meta.tier").as_deref(), Some("pro"));
    assert_eq!(var(&r, "post_arg.meta.0").as_deref(), Some("zero"));
    assert_eq!(
        var(&r, "post_arg.meta").as_deref(),
        Some(r#"{"tier":"pro","0":"zero"}"#)
    );
    assert_eq!(var(&r, "post_arg.missing"), None);
    assert_eq!(var(&r, "post_arg.model.x"), None);
    // Dotted numeric parts do not index arrays (Lua string keys).
    assert_eq!(var(&r, "post_arg.messages.0.role"), None);
    // JSONPath forms yield the list of matches.
    assert_eq!(
        r.value("post_arg.messages[0].role"),
        Ok(Some(VarValue::Json(json!(["system"]))))
    );
    assert_eq!(
        r.value("post_arg.messages[*].content[*].type"),
        Ok(Some(VarValue::Json(json!(["text", "image_url"]))))
    );
    assert_eq!(r.value("post_arg.messages[9].role"), Ok(None));
    assert_eq!(
        r.value("post_arg.max_tokens"),
        Ok(Some(VarValue::Json(json!(256))))
    );
}

#[test]
fn broken_bodies_are_absent_not_errors() {
    let m = Method::POST;
    let h = headers(&[("content-type", b"application/json")]);
    for body in [
        &b""[..],
        b"{",
        b"\xff\xfe",
        b"[1,2]",
        b"\"str\"",
        b"{\"a\":",
    ] {
        let r = req(&m, None, &h, Some(body));
        assert_eq!(r.var("post_arg.a"), Ok(None), "{body:?}");
    }
    let h = headers(&[("content-type", b"application/x-www-form-urlencoded")]);
    let r = req(&m, None, &h, Some(b"\xff=\xfe&%%%=1"));
    assert_eq!(r.var("post_arg_x"), Ok(None));
}

#[test]
fn needs_body_for_names() {
    assert!(Request::needs_body_for("post_arg_model"));
    assert!(Request::needs_body_for("post_arg.model"));
    assert!(!Request::needs_body_for("arg_model"));
    assert!(!Request::needs_body_for("http_post_arg"));
}
