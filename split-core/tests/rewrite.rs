//! Rewrites: uri / regex_uri / query, headers, JSON body, upstream Host, and parsing.

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::json;
use split_core::config::proxy_rewrite::parse_arm_rewrite;
use split_core::config::upstream::Scheme;
use split_core::rewrite::{HeaderEdits, RegexUri, Rewrite, RewriteError};
use split_core::snapshot::node_host_header;

/// A rewrite parsed from config, as the snapshot builds it.
fn rw(v: serde_json::Value) -> Rewrite {
    parse_arm_rewrite(&v).expect("valid rewrite")
}

/// A regex rewrite built directly, so templates the config parser would refuse can
/// still be exercised (the apply side must be safe for any template).
fn regex_rw(pattern: &str, template: &str) -> Rewrite {
    Rewrite {
        uri: None,
        regex_uri: Some(RegexUri {
            regex: regex::Regex::new(pattern).expect("test regex"),
            template: template.to_owned(),
        }),
        host: None,
        headers: HeaderEdits::default(),
        body: None,
    }
}

#[test]
fn uri_replaces_path_and_keeps_client_query() {
    let r = rw(json!({"uri": "/v1/chat/completions"}));
    assert_eq!(
        r.apply_uri("/chat/completions", None).as_deref(),
        Some("/v1/chat/completions")
    );
    assert_eq!(
        r.apply_uri("/chat/completions", Some("a=1&b=%20"))
            .as_deref(),
        Some("/v1/chat/completions?a=1&b=%20")
    );
    assert_eq!(
        r.apply_uri("/x", Some("")).as_deref(),
        Some("/v1/chat/completions")
    );
}

#[test]
fn query_in_uri_replaces_client_query() {
    let r = rw(json!({"uri": "/v2/chat?api-version=2024"}));
    assert_eq!(
        r.apply_uri("/chat", Some("a=1")).as_deref(),
        Some("/v2/chat?api-version=2024")
    );
    let r = rw(json!({"uri": "/v2/chat?"}));
    assert_eq!(
        r.apply_uri("/chat", Some("a=1")).as_deref(),
        Some("/v2/chat")
    );
}

#[test]
fn regex_uri_first_match_with_captures() {
    let r = rw(json!({"regex_uri": ["^/api/(.*)/(.*)", "/$1-$2"]}));
    assert_eq!(
        r.apply_uri("/api/hello/world", Some("q=1")).as_deref(),
        Some("/hello-world?q=1")
    );
    // No match → unchanged.
    assert_eq!(r.apply_uri("/other", None), None);
    // Only the first match is replaced; the rest of the path is kept.
    let r = rw(json!({"regex_uri": ["/a", "/b"]}));
    assert_eq!(r.apply_uri("/a/a/a", None).as_deref(), Some("/b/a/a"));
    // Named groups, braces, `$$`, and digits right after a group.
    let r = regex_rw("^/(?P<ver>v\\d)/(.*)$", "/${ver}/x$2$$/${2}0/$9");
    assert_eq!(
        r.apply_uri("/v1/chat", None).as_deref(),
        Some("/v1/xchat$/chat0/")
    );
    let r = regex_rw("^/(\\w+)", "/$1a");
    assert_eq!(r.apply_uri("/chat", None).as_deref(), Some("/chata"));
}

#[test]
fn uri_wins_over_regex_uri() {
    let r = rw(json!({"uri": "/fixed", "regex_uri": ["^/(.*)", "/re/$1"]}));
    assert_eq!(r.apply_uri("/x", None).as_deref(), Some("/fixed"));
}

#[test]
fn invalid_result_keeps_the_original() {
    // The template drops the leading slash.
    let r = rw(json!({"regex_uri": ["^/(.*)$", "$1"]}));
    assert_eq!(r.apply_uri("/abc", None), None);
    let r = rw(json!({"regex_uri": ["^/(.*)$", "/$1?x=1"]}));
    assert_eq!(r.apply_uri("/abc", Some("y")).as_deref(), Some("/abc?x=1"));
}

#[test]
fn decoded_path_is_re_encoded() {
    let r = rw(json!({"regex_uri": ["^/in/(.*)$", "/out/$1"]}));
    assert_eq!(
        r.apply_uri("/in/a b/é/%zz/%41\"", None).as_deref(),
        Some("/out/a%20b/%C3%A9/%25zz/%41%22")
    );
}

/// The encoding rule spelled out byte by byte: unreserved, sub-delims, `:@/?[]` and valid
/// `%XX` escapes stay, every other byte becomes `%XX`.
fn encoded_byte_by_byte(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::new();
    for (i, &b) in bytes.iter().enumerate() {
        let escape = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if escape || b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?[]".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

proptest! {
    #[test]
    fn rewritten_paths_are_encoded_byte_by_byte(tail in "[^?\n]{0,40}") {
        let r = rw(json!({"regex_uri": ["^/in/(.*)$", "/out/$1"]}));
        let got = r.apply_uri(&format!("/in/{tail}"), None);
        let want = format!("/out/{}", encoded_byte_by_byte(&tail));
        prop_assert_eq!(got.as_deref(), Some(want.as_str()));
    }

    /// A static `uri` is encoded when the config is read; the answer is the one a
    /// `regex_uri` producing the same target gives, for any path and client query.
    #[test]
    fn a_static_uri_rewrites_like_a_regex_to_the_same_target(
        // What config validation lets through: no whitespace, controls or `#`.
        tail in "[^?\\s\\p{Cc}#$]{0,20}",
        own in proptest::option::of("[^\\s\\p{Cc}#$]{0,12}"),
        client in proptest::option::of("[a-z=&%0-9 ]{0,12}"),
    ) {
        let target = match &own {
            Some(q) => format!("/out/{tail}?{q}"),
            None => format!("/out/{tail}"),
        };
        let fixed = rw(json!({"uri": target}));
        let regex = rw(json!({"regex_uri": ["^.*$", target]}));
        let got = fixed.apply_uri("/in", client.as_deref());
        prop_assert_eq!(&got, &regex.apply_uri("/in", client.as_deref()));
        let mut want = format!("/out/{}", encoded_byte_by_byte(&tail));
        match (&own, &client) {
            (Some(q), _) if !q.is_empty() => want = format!("{want}?{}", encoded_byte_by_byte(q)),
            (Some(_), _) => {}
            (None, Some(c)) if !c.is_empty() => want = format!("{want}?{c}"),
            (None, _) => {}
        }
        prop_assert_eq!(got.as_deref(), Some(want.as_str()));
        // The configured text is kept as written (admin reads, logs).
        prop_assert_eq!(fixed.uri.as_deref(), Some(target.as_str()));
    }
}

#[test]
fn no_uri_rewrite_is_unchanged() {
    let r = rw(json!({"headers": {"set": {"x-a": "1"}}}));
    assert_eq!(r.apply_uri("/x", Some("a=1")), None);
}

fn hv(s: &'static str) -> HeaderValue {
    HeaderValue::from_static(s)
}

fn hn(s: &'static str) -> http::HeaderName {
    http::HeaderName::from_static(s)
}

#[test]
fn headers_add_then_set_then_remove() {
    let r = Rewrite {
        uri: None,
        regex_uri: None,
        host: None,
        headers: HeaderEdits {
            add: vec![(hn("x-tag"), hv("a")), (hn("x-both"), hv("added"))],
            set: vec![
                (hn("x-env"), hv("canary")),
                (hn("x-env"), hv("two")),
                (hn("x-both"), hv("set")),
            ],
            remove: vec![hn("x-drop"), hn("x-tag")],
            secrets: Vec::new(),
        },
        body: None,
    };
    let mut h = HeaderMap::new();
    h.insert("x-env", hv("prod"));
    h.insert("x-drop", hv("1"));
    h.insert("x-tag", hv("client"));
    h.insert("x-keep", hv("k"));
    r.apply_headers(&mut h);
    let all = |n: &str| {
        h.get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // A repeated `set` name replaces once, then appends.
    assert_eq!(all("x-env"), ["canary", "two"]);
    // add then set: set wins over the added value.
    assert_eq!(all("x-both"), ["set"]);
    // add then remove: removed, including the client's value.
    assert!(all("x-tag").is_empty());
    assert!(all("x-drop").is_empty());
    assert_eq!(all("x-keep"), ["k"]);
}

#[test]
fn parsed_structured_headers_apply_in_order() {
    let r = rw(json!({"headers": {
        "add": {"X-Tag": "a"},
        "set": {"X-Env": "canary"},
        "remove": ["X-Tag"]
    }}));
    let mut h = HeaderMap::new();
    h.insert("x-env", hv("prod"));
    r.apply_headers(&mut h);
    assert_eq!(h.get("x-env").unwrap(), "canary");
    assert!(h.get("x-tag").is_none());
}

#[test]
fn headers_flat_form_sets() {
    let r = rw(json!({"headers": {"X-Api-Version": "v2", "X-Num": 3}}));
    let mut h = HeaderMap::new();
    h.insert("x-api-version", hv("v1"));
    h.append("x-api-version", hv("v0"));
    r.apply_headers(&mut h);
    assert_eq!(h.get_all("x-api-version").iter().count(), 1);
    assert_eq!(h.get("x-api-version").unwrap(), "v2");
    assert_eq!(h.get("x-num").unwrap(), "3");
}

#[test]
fn body_sets_and_removes_fields_keeping_order() {
    let r = rw(json!({"body": {"model": "gpt-4o-mini", "user": null, "extra": {"a": 1}}}));
    let out = r
        .apply_body(br#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}],"user":"u","stream":true}"#)
        .expect("object body")
        .expect("body rewrite present");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}],"stream":true,"extra":{"a":1}}"#
    );
}

#[test]
fn body_errors() {
    let r = rw(json!({"body": {"model": "m"}}));
    assert!(
        matches!(r.apply_body(b"[1,2]"), Err(RewriteError::BodyNotJsonObject(m)) if m.contains("array"))
    );
    assert!(
        matches!(r.apply_body(b"not json"), Err(RewriteError::BodyNotJsonObject(m)) if m.contains("invalid JSON"))
    );
    assert!(matches!(
        r.apply_body(b""),
        Err(RewriteError::BodyNotJsonObject(_))
    ));
    assert!(r.needs_body());
    let none = rw(json!({"uri": "/x"}));
    assert_eq!(none.apply_body(b"anything"), Ok(None));
    assert!(!none.needs_body());
}

#[test]
fn node_host_headers_bracket_ipv6_and_omit_the_default_port() {
    let cases = [
        ("api.aimlapi.com", 443, Scheme::Https, "api.aimlapi.com"),
        (
            "api.aimlapi.com",
            8443,
            Scheme::Https,
            "api.aimlapi.com:8443",
        ),
        ("::1", 443, Scheme::Https, "[::1]"),
        ("[::1]", 443, Scheme::Https, "[::1]"),
        ("10.0.0.1", 80, Scheme::Http, "10.0.0.1"),
        ("10.0.0.1", 443, Scheme::Http, "10.0.0.1:443"),
        ("::1", 8080, Scheme::Http, "[::1]:8080"),
    ];
    for (host, port, scheme, want) in cases {
        assert_eq!(node_host_header(host, port, scheme), want, "{host} {port}");
    }
}

#[test]
fn guide_rewrites_parse() {
    for uri in ["/v1/chat/completions", "/v2/chat/completions"] {
        let r = rw(json!({ "uri": uri }));
        assert_eq!(r.apply_uri("/chat/completions", None).as_deref(), Some(uri));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn apply_uri_output_starts_with_slash(
        pattern in prop::sample::select(vec!["^/(.*)$", "(.*)", "a", "^/v(\\d+)/(.*)", "(?P<x>[a-z]*)", "", "/+", "$"]),
        template in "[/a-z$0-9{}?]{0,12}",
        path in "/[ -~é]{0,20}",
        query in proptest::option::of("[a-z=&%]{0,8}"),
    ) {
        let r = regex_rw(pattern, &template);
        if let Some(out) = r.apply_uri(&path, query.as_deref()) {
            prop_assert!(out.starts_with('/'), "{out:?}");
            prop_assert!(out.bytes().all(|b| b.is_ascii_graphic()), "{out:?}");
            prop_assert!(out.parse::<http::uri::PathAndQuery>().is_ok(), "{out:?}");
        }
    }

    #[test]
    fn body_round_trip_keeps_untouched_fields(
        fields in prop::collection::btree_map("[a-z]{1,6}", any::<i64>(), 0..8),
        set_key in "[a-z]{1,6}",
        set_val in "[ -~]{0,10}",
    ) {
        let mut body = serde_json::Map::new();
        for (k, v) in &fields {
            body.insert(k.clone(), json!(v));
        }
        let input = serde_json::to_vec(&body).unwrap();
        let edit: serde_json::Map<String, serde_json::Value> = std::iter::once((set_key.clone(), json!(set_val))).collect();
        let r = rw(json!({ "body": edit }));
        let out = r.apply_body(&input).unwrap().unwrap();
        let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(parsed.get(&set_key), Some(&json!(set_val)));
        let untouched_in: Vec<_> = body.iter().filter(|(k, _)| **k != set_key).collect();
        let untouched_out: Vec<_> = parsed.iter().filter(|(k, _)| **k != set_key).collect();
        prop_assert_eq!(untouched_in, untouched_out);
    }
}
