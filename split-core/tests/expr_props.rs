//! Arbitrary rules and arbitrary request bytes never panic.

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use serde_json::Value;
use split_core::expr::Expr;
use split_core::request::Request;

fn json_value() -> impl Strategy<Value = Value> {
    let names = prop::sample::select(vec![
        "arg_a",
        "http_x",
        "cookie_c",
        "post_arg_a",
        "post_arg.a",
        "post_arg.a[*]",
        "post_arg..a",
        "remote_addr",
        "uri",
        "==",
        "~=",
        ">",
        "<=",
        "~~",
        "~*",
        "in",
        "has",
        "ipmatch",
        "!",
        "AND",
        "OR",
        "!AND",
        "!or",
        "10.0.0.0/8",
        "::1",
        "(",
        "a|b",
        "",
    ]);
    let leaf = prop_oneof![
        names.prop_map(|s| Value::String(s.to_owned())),
        any::<String>().prop_map(Value::String),
        any::<i32>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-c]", inner), 0..3)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn compile_and_eval_never_panic(
        vars in json_value(),
        query in ".{0,40}",
        header in prop::collection::vec(any::<u8>(), 0..40),
        body in prop::collection::vec(any::<u8>(), 0..60),
        json_body in any::<bool>(),
    ) {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&header) {
            headers.insert("x", v.clone());
            headers.insert("cookie", v);
        }
        let ct = if json_body { "application/json" } else { "application/x-www-form-urlencoded" };
        headers.insert("content-type", HeaderValue::from_static(ct));
        let method = Method::GET;
        let req = Request {
            method: &method,
            host: None,
            path: "/",
            query: Some(&query),
            headers: &headers,
            remote_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            remote_port: 1,
            body: Some(&body),
            consumer: None,
            route_id: None,
        };
        if let Ok(e) = Expr::compile(&vars) {
            let _ = e.eval(&req);
            let _ = e.needs_body();
        }
        for name in ["arg_a", "http_x", "cookie_a", "post_arg_a", "post_arg.a", "post_arg.a[0]", "post_arg..a"] {
            prop_assert!(req.var(name).is_ok());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Any `post_arg.<path>` (dotted or JSONPath, valid or not) on any JSON body.
    #[test]
    fn post_arg_paths_never_panic(path in "[a-z.\\[\\]*'\"0-9, -é]{0,16}", body in "[\\[\\]{}\":a-z0-9,. ]{0,40}") {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let method = Method::POST;
        let req = Request {
            method: &method,
            host: None,
            path: "/",
            query: None,
            headers: &headers,
            remote_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            remote_port: 1,
            body: Some(body.as_bytes()),
            consumer: None,
            route_id: None,
        };
        let name = format!("post_arg.{path}");
        prop_assert!(req.var(&name).is_ok());
        let _ = Expr::compile(&serde_json::json!([[name, "has", "x"]]));
    }
}
