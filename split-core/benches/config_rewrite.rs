//! Criterion benches of rewrites (regex_uri with captures, header edits, JSON body model
//! override), of the per-request JSON reads (`model`, `usage`) and of compiling a
//! 1,000-route configuration into a `Snapshot`.
//! Inputs are built outside the timed closures; inputs a bench consumes or mutates come
//! from `iter_batched` setup, which criterion does not time.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use split_core::config::proxy_rewrite::parse_arm_rewrite;
use split_core::config::ResourceKind;
use split_core::snapshot::{ConfigSet, Snapshot};

fn bench_rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Elements(1));

    let regex = parse_arm_rewrite(&json!({
        "regex_uri": ["^/api/(v[0-9]+)/(.*)$", "/$1/upstream/$2"]
    }))
    .expect("valid regex_uri");
    let path = "/api/v2/chat/completions";
    assert_eq!(
        regex.apply_uri(path, Some("stream=true")).as_deref(),
        Some("/v2/upstream/chat/completions?stream=true")
    );
    g.bench_function("regex_uri_captures", |b| {
        b.iter(|| black_box(regex.apply_uri(black_box(path), black_box(Some("stream=true")))))
    });

    let uri = parse_arm_rewrite(&json!({"uri": "/v1/chat/completions"})).expect("valid uri");
    g.bench_function("uri", |b| {
        b.iter(|| black_box(uri.apply_uri(black_box("/chat/completions"), None)))
    });

    let headers = parse_arm_rewrite(&json!({"headers": {
        "set": {"x-canary": "b", "authorization": "Bearer upstream-key"},
        "add": {"x-split-arm": "1"},
        "remove": ["cookie", "x-debug"]
    }}))
    .expect("valid headers");
    let mut request_headers = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("authorization", "Bearer client-key"),
        ("cookie", "session=abc"),
        ("x-debug", "1"),
    ] {
        request_headers.insert(name, HeaderValue::from_static(value));
    }
    g.bench_function("headers_set_add_remove", |b| {
        b.iter_batched_ref(
            || request_headers.clone(),
            |h| headers.apply_headers(black_box(h)),
            BatchSize::SmallInput,
        )
    });

    let body_rewrite =
        parse_arm_rewrite(&json!({"body": {"model": "gpt-4o-mini"}})).expect("valid body");
    let body = serde_json::to_vec(&json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a haiku about load balancers."}
        ],
        "temperature": 0.7,
        "max_tokens": 256
    }))
    .expect("serialisable");
    let out = body_rewrite
        .apply_body(&body)
        .expect("JSON object body")
        .expect("rewritten");
    assert!(String::from_utf8_lossy(&out).contains("gpt-4o-mini"));
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("json_body_model", |b| {
        b.iter(|| black_box(body_rewrite.apply_body(black_box(&body))))
    });
    g.finish();
}

/// The two JSON reads made on every LLM request: the request's `model` (the scanner's
/// fast path, and serde_json when an escape in the value sends it there) and the
/// response's `usage` (tail kept while streaming, object read at the end).
fn bench_llm_reads(c: &mut Criterion) {
    use split_core::llm::{model_of, BodyFormat, UsageScanner};
    let mut g = c.benchmark_group("llm");
    g.throughput(Throughput::Elements(1));
    let plain = br#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;
    let escaped = br#"{"model":"gpt\u002d4","messages":[{"role":"user","content":"ping"}]}"#;
    assert_eq!(model_of(plain).as_deref(), Some("gpt-4"));
    assert_eq!(model_of(escaped).as_deref(), Some("gpt-4"));
    g.bench_function("model_of_scanned", |b| {
        b.iter(|| black_box(model_of(black_box(plain))))
    });
    g.bench_function("model_of_serde_fallback", |b| {
        b.iter(|| black_box(model_of(black_box(escaped))))
    });
    let response = concat!(
        r#"{"id":"chatcmpl-bench","object":"chat.completion","model":"gpt-4","#,
        r#""choices":[{"index":0,"message":{"role":"assistant","#,
        r#""content":"Pong! How can I assist you today?"},"finish_reason":"stop"}],"#,
        r#""usage":{"prompt_tokens":8,"completion_tokens":9,"total_tokens":17}}"#
    )
    .as_bytes();
    let usage = |body: &[u8]| {
        let mut scanner = UsageScanner::new(BodyFormat::Json);
        scanner.feed(body);
        scanner.finish()
    };
    assert_eq!(usage(response).and_then(|u| u.total()), Some(17));
    g.bench_function("usage_json_response", |b| {
        b.iter(|| black_box(usage(black_box(response))))
    });
    g.finish();
}

/// `n` routes, every tenth one with the guide's 50/50 traffic-split (both shapes
/// alternate), the others with an inline upstream; half are prefix routes.
fn config_set(n: usize) -> ConfigSet {
    let upstream = |host: &str| json!({"type": "roundrobin", "nodes": {format!("{host}:443"): 1}, "scheme": "https", "pass_host": "node"});
    let mut routes = BTreeMap::new();
    for i in 0..n {
        let uri = if i % 2 == 0 {
            format!("/api/v{}/svc{i}/*", i % 7)
        } else {
            format!("/api/v{}/svc{i}/chat/completions", i % 7)
        };
        let mut route = json!({"uri": uri, "methods": ["GET", "POST"], "upstream": upstream("api.example.com")});
        if i % 10 == 0 {
            let arms = json!([
                {"weight": 50, "upstream": upstream("a.example.com"), "rewrite": {"uri": "/v1/chat/completions"}},
                {"weight": 50, "upstream": upstream("b.example.com"), "rewrite": {"uri": "/v2/chat/completions"}}
            ]);
            let rules = if i % 20 == 0 {
                arms
            } else {
                json!([{"match": [{"vars": [["http_x_tier", "==", "pro"]]}], "weighted_upstreams": arms}])
            };
            route["plugins"] = json!({"traffic-split": {"rules": rules}});
        }
        routes.insert(format!("r{i}"), route);
    }
    let mut objects: BTreeMap<ResourceKind, BTreeMap<String, Value>> = BTreeMap::new();
    objects.insert(ResourceKind::Routes, routes);
    ConfigSet { objects }
}

fn bench_compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(20);
    let n = 1_000usize;
    let set = config_set(n);
    let snapshot = Snapshot::compile(set.clone()).expect("valid set");
    assert_eq!(snapshot.routes.len(), n);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_with_input(
        BenchmarkId::new("routes_with_traffic_split", n),
        &set,
        |b, set| {
            b.iter_batched(
                || set.clone(),
                |set| black_box(Snapshot::compile(set)),
                BatchSize::LargeInput,
            )
        },
    );
    g.finish();
}

criterion_group!(benches, bench_rewrite, bench_llm_reads, bench_compile);
criterion_main!(benches);
