//! lua-resty-expr semantics, table-driven (APISIX reference §1.3 and §7.6).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};
use split_core::expr::Expr;
use split_core::request::{Request, VarError};

struct Fixture {
    method: Method,
    headers: HeaderMap,
    query: &'static str,
    body: Option<&'static [u8]>,
    remote: IpAddr,
}

impl Fixture {
    fn new() -> Fixture {
        let mut headers = HeaderMap::new();
        headers.insert("x-version", HeaderValue::from_static("Beta"));
        headers.insert("x-real-ip", HeaderValue::from_static("192.168.1.20"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("cookie", HeaderValue::from_static("canary=yes"));
        Fixture {
            method: Method::POST,
            headers,
            query: "age=18&name=Alice&score=7.5&hex=0x10&empty=&user=bob",
            body: Some(br#"{"model":"gpt-4o","n":2,"stream":true,"tags":["a","b"],"nil":null,"messages":[{"role":"user"}]}"#),
            remote: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        }
    }

    fn req(&self) -> Request<'_> {
        Request {
            method: &self.method,
            host: Some("api.example.com"),
            path: "/v1/chat/completions",
            query: Some(self.query),
            headers: &self.headers,
            remote_addr: self.remote,
            remote_port: 4000,
            body: self.body,
            consumer: None,
            route_id: Some("1"),
        }
    }
}

fn eval(f: &Fixture, vars: Value) -> bool {
    let e = Expr::compile(&vars).unwrap_or_else(|e| panic!("{vars}: {e}"));
    e.eval(&f.req()).unwrap_or_else(|e| panic!("{vars}: {e:?}"))
}

#[test]
fn comparison_table() {
    let f = Fixture::new();
    let cases: Vec<(Value, bool)> = vec![
        // == compares strings; a JSON number makes it numeric.
        (json!([["arg_name", "==", "Alice"]]), true),
        (json!([["arg_name", "==", "alice"]]), false),
        (json!([["arg_age", "==", "18"]]), true),
        (json!([["arg_age", "==", 18]]), true),
        (json!([["arg_age", "==", 18.0]]), true),
        (json!([["arg_hex", "==", 16]]), true),
        (json!([["arg_name", "==", 18]]), false),
        (json!([["arg_missing", "==", "x"]]), false),
        (json!([["arg_missing", "==", null]]), true),
        (json!([["arg_name", "==", null]]), false),
        (json!([["arg_empty", "==", ""]]), true),
        (json!([["arg_age", "==", true]]), false),
        (json!([["arg_age", "==", ["18"]]]), false),
        // ~= is the inverse; missing vs string is true.
        (json!([["arg_name", "~=", "Bob"]]), true),
        (json!([["arg_name", "~=", "Alice"]]), false),
        (json!([["arg_missing", "~=", "x"]]), true),
        (json!([["arg_missing", "~=", 5]]), true),
        (json!([["arg_name", "~=", 5]]), true),
        (json!([["arg_age", "~=", 18]]), false),
        (json!([["arg_missing", "~=", null]]), false),
        // Numeric comparisons: both sides through tonumber, else false.
        (json!([["arg_age", ">", 17]]), true),
        (json!([["arg_age", ">", "17"]]), true),
        (json!([["arg_age", ">=", 18]]), true),
        (json!([["arg_age", "<", 18]]), false),
        (json!([["arg_age", "<=", "18"]]), true),
        (json!([["arg_score", ">", 7]]), true),
        (json!([["arg_age", ">", "abc"]]), false),
        (json!([["arg_name", ">", 1]]), false),
        (json!([["arg_missing", "<", 16]]), false),
        (json!([["arg_missing", ">", 16]]), false),
        // § 7.6: "!" with a numeric comparison is true for a missing var.
        (json!([["arg_missing", "!", "<", "16"]]), true),
        (json!([["arg_age", "!", "<", "16"]]), true),
        (json!([["arg_age", "!", ">", "16"]]), false),
        // Regex: unanchored search; ~* ignores case.
        (json!([["http_x_version", "~~", "et"]]), true),
        (json!([["http_x_version", "~~", "^beta$"]]), false),
        (json!([["http_x_version", "~*", "^beta$"]]), true),
        (json!([["http_x_missing", "~~", ".*"]]), false),
        (json!([["http_x_missing", "!", "~~", "x"]]), true),
        (json!([["post_arg.n", "~~", "^2$"]]), true),
        // in / has.
        (json!([["arg_user", "in", ["alice", "bob"]]]), true),
        (json!([["arg_user", "in", ["alice"]]]), false),
        (json!([["arg_age", "in", [18]]]), false),
        (json!([["arg_user", "in", "bob"]]), false),
        (json!([["arg_missing", "in", ["x"]]]), false),
        (json!([["post_arg.n", "in", [1, 2]]]), true),
        (json!([["post_arg.tags", "has", "a"]]), true),
        (json!([["post_arg.tags", "has", "c"]]), false),
        (json!([["post_arg.messages[*].role", "has", "user"]]), true),
        (json!([["arg_user", "has", "bob"]]), false),
        (json!([["arg_missing", "has", "bob"]]), false),
        // Typed body values.
        (json!([["post_arg.model", "==", "gpt-4o"]]), true),
        (json!([["post_arg.n", "==", 2]]), true),
        (json!([["post_arg.n", "==", "2"]]), false),
        (json!([["post_arg.n", ">", 1]]), true),
        (json!([["post_arg.stream", "==", true]]), true),
        (json!([["post_arg.stream", "==", "true"]]), false),
        (json!([["post_arg.nil", "==", null]]), false),
        (json!([["post_arg.absent", "==", null]]), true),
        (json!([["post_arg.messages[0].role", "==", "user"]]), false),
        // ipmatch.
        (json!([["remote_addr", "ipmatch", "10.1.0.0/16"]]), true),
        (
            json!([["remote_addr", "ipmatch", ["192.168.0.0/16", "10.1.2.3"]]]),
            true,
        ),
        (json!([["remote_addr", "ipmatch", "10.2.0.0/16"]]), false),
        (
            json!([["http_x_real_ip", "ipmatch", "192.168.1.0/24"]]),
            true,
        ),
        (json!([["http_x_version", "ipmatch", "0.0.0.0/0"]]), false),
        (json!([["arg_missing", "ipmatch", "0.0.0.0/0"]]), false),
        (
            json!([["remote_addr", "!", "ipmatch", "10.2.0.0/16"]]),
            true,
        ),
        // Two-item form: == on the lower-cased value.
        (json!([["arg_user", "bob"]]), true),
        (json!([["arg_name", "Alice"]]), false),
        (json!([["arg_name", "alice"]]), false),
        (json!([["arg_age", 18]]), true),
        // Operators are case-insensitive.
        (json!([["arg_user", "IN", ["bob"]]]), true),
        (json!([["remote_addr", "IPMATCH", "10.0.0.0/8"]]), true),
        // Other variables.
        (json!([["cookie_canary", "==", "yes"]]), true),
        (json!([["uri", "~~", "^/v1/"]]), true),
        (json!([["route_id", "==", "1"]]), true),
        (json!([["request_method", "==", "POST"]]), true),
    ];
    for (vars, want) in cases {
        assert_eq!(eval(&f, vars.clone()), want, "{vars}");
    }
}

#[test]
fn logic_table() {
    let f = Fixture::new();
    let t = json!(["arg_user", "==", "bob"]);
    let x = json!(["arg_user", "==", "eve"]);
    let cases: Vec<(Value, bool)> = vec![
        (json!([]), true),
        (json!([t, t]), true),
        (json!([t, x]), false),
        (json!(["AND", t, t]), true),
        (json!(["and", t, x]), false),
        (json!(["OR", x, t]), true),
        (json!(["or", x, x]), false),
        (json!(["!AND", t, x]), true),
        (json!(["!AND", t, t]), false),
        (json!(["!OR", x, x]), true),
        (json!(["!OR", x, t]), false),
        (json!(["OR", ["AND", t, x], ["AND", t, t]]), true),
        (json!([["OR", x, t], t]), true),
        (json!([[t, t], [t]]), true),
        (json!([[t, x]]), false),
    ];
    for (vars, want) in cases {
        assert_eq!(eval(&f, vars.clone()), want, "{vars}");
    }
}

#[test]
fn compile_errors_read_like_apisix() {
    let cases: Vec<(Value, &str)> = vec![
        (json!([["arg_x", 123, "y"]]), "invalid operator '123'"),
        (json!([["arg_x", "=~", "y"]]), "invalid operator '=~'"),
        (json!([["arg_x", "!", "==", 1, 2]]), "invalid operator '!'"),
        (json!([["arg_x", "not", "==", "y"]]), "bad 'not' expression"),
        (json!([["arg_x"]]), "invalid expression"),
        (json!([[1, "==", "y"]]), "invalid expression"),
        (json!([["arg_x", null, "y"]]), "invalid expression"),
        (
            json!(["arg_x", "==", "y"]),
            "rule should be wrapped inside brackets",
        ),
        (json!([[]]), "rule too short"),
        (json!(["AND", ["arg_x", "==", "y"]]), "rule too short"),
        (json!(["OR"]), "rule too short"),
        (json!([["a", "==", "b"], "x"]), "invalid expression"),
        (
            json!([["remote_addr", "ipmatch", ""]]),
            "invalid ip address",
        ),
        (
            json!([["remote_addr", "ipmatch", []]]),
            "invalid ip address",
        ),
        (json!([["remote_addr", "ipmatch"]]), "invalid ip address"),
        (
            json!([["remote_addr", "ipmatch", "10.0.0.300"]]),
            "invalid ip address: 10.0.0.300",
        ),
        (
            json!([["remote_addr", "ipmatch", ["10.0.0.0/8", "nope"]]]),
            "invalid ip address: nope",
        ),
        (json!({"a": 1}), "invalid expression: vars must be an array"),
    ];
    for (vars, want) in cases {
        match Expr::compile(&vars) {
            Ok(_) => panic!("{vars} compiled"),
            Err(e) => assert_eq!(e, want, "{vars}"),
        }
    }
    let e = Expr::compile(&json!([["arg_x", "~~", "(unclosed"]]))
        .err()
        .unwrap_or_default();
    assert!(e.starts_with("bad regex '(unclosed'"), "{e}");
    let e = Expr::compile(&json!([["post_arg.a[?(@.x)]", "has", "y"]]))
        .err()
        .unwrap_or_default();
    assert!(e.contains("invalid JSONPath"), "{e}");
}

#[test]
fn five_item_form_ignores_extras_like_lua() {
    let f = Fixture::new();
    assert!(eval(
        &f,
        json!([["arg_user", "==", "bob", "ignored", "too"]])
    ));
}

#[test]
fn body_is_requested_only_when_it_decides() {
    let mut f = Fixture::new();
    f.body = None;
    let need = |vars: Value| Expr::compile(&vars).expect("valid").eval(&f.req());
    // A false non-body operand decides an AND without the body.
    assert_eq!(
        need(json!([
            ["post_arg.model", "==", "x"],
            ["arg_user", "==", "eve"]
        ])),
        Ok(false)
    );
    assert_eq!(
        need(json!([
            "OR",
            ["post_arg.model", "==", "x"],
            ["arg_user", "==", "bob"]
        ])),
        Ok(true)
    );
    assert_eq!(
        need(json!([
            ["post_arg.model", "==", "x"],
            ["arg_user", "==", "bob"]
        ])),
        Err(VarError::NeedBody)
    );
    assert_eq!(need(json!([["arg_user", "==", "bob"]])), Ok(true));
    let e = Expr::compile(&json!([
        ["arg_a", "==", "1"],
        ["OR", ["post_arg_x", "==", "1"], ["arg_b", "==", "1"]]
    ]))
    .expect("valid");
    assert!(e.needs_body());
    assert!(!Expr::compile(&json!([["arg_a", "==", "1"]]))
        .expect("valid")
        .needs_body());
    assert!(!Expr::compile(&json!([])).expect("valid").needs_body());
    // A non-JSON, non-form body never needs reading.
    f.headers
        .insert("content-type", HeaderValue::from_static("text/plain"));
    let e = Expr::compile(&json!([["post_arg.model", "==", "x"]])).expect("valid");
    assert_eq!(e.eval(&f.req()), Ok(false));
}

#[test]
fn ipmatch_normalises_mapped_addresses() {
    let mut f = Fixture::new();
    f.remote = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert!(eval(&f, json!([["remote_addr", "ipmatch", "::1"]])));
    assert!(eval(&f, json!([["remote_addr", "ipmatch", "[::1]"]])));
    f.headers
        .insert("x-real-ip", HeaderValue::from_static("::ffff:192.168.1.20"));
    assert!(eval(
        &f,
        json!([["http_x_real_ip", "ipmatch", "192.168.1.0/24"]])
    ));
}
