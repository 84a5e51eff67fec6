//! Criterion benches of the decision core: arm picks, route matching, expr evaluation.
//! Inputs are built outside the timed closures; each iteration is one operation.
//! Picks are unwrapped to a plain `usize` before `black_box`: boxing the `Option` itself
//! made the loop stall on store forwarding and measured the harness, not the pick.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;
use split_core::expr::Expr;
use split_core::matcher::{MatchSpec, RouteTable};
use split_core::request::Request;
use split_core::select::{PickInput, Rendezvous, Schedule, SeededRandom, Select, Selector};

fn weights(n: usize) -> Vec<u32> {
    match n {
        2 => vec![90, 10],
        3 => vec![5, 3, 2],
        _ => (1..=n as u32).collect(),
    }
}

fn bench_pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    g.throughput(Throughput::Elements(1));
    for n in [2usize, 3, 20] {
        let w = weights(n);
        let ids: Vec<u64> = (0..n as u64).collect();
        let selectors = [
            ("roundrobin", Selector::RoundRobin(Schedule::new(&w))),
            ("random", Selector::Random(SeededRandom::new(&w, 42))),
            (
                "chash",
                Selector::Chash(Rendezvous::new(&ids, &w), Schedule::new(&w)),
            ),
        ];
        for (name, sel) in selectors {
            let key: &[u8] = b"user-12345";
            let keyed = name == "chash";
            let mut ticket = 0u64;
            g.bench_with_input(BenchmarkId::new(name, n), &sel, |b, sel| {
                b.iter(|| {
                    ticket = ticket.wrapping_add(1);
                    let input = PickInput {
                        ticket: black_box(ticket),
                        key: if keyed { Some(black_box(key)) } else { None },
                    };
                    black_box(sel.pick(input).unwrap_or(usize::MAX))
                })
            });
        }
    }
    // The schedule alone, without the selector enum and pick input.
    let small = Schedule::new(&weights(2));
    let mut ticket = 0u64;
    g.bench_function("schedule_arm_at/2", |b| {
        b.iter(|| {
            ticket = ticket.wrapping_add(1);
            black_box(small.arm_at(black_box(ticket)).unwrap_or(usize::MAX))
        })
    });
    // A schedule too long for the lookup table: the O(arms) walk.
    let big = Schedule::new(&[999_999, 1]);
    let mut ticket = 0u64;
    g.bench_function("roundrobin_walk/2", |b| {
        b.iter(|| {
            ticket = ticket.wrapping_add(1);
            black_box(big.arm_at(black_box(ticket)).unwrap_or(usize::MAX))
        })
    });
    g.finish();
}

fn route_specs(n: usize, prefix: bool) -> Vec<MatchSpec> {
    (0..n)
        .map(|i| MatchSpec {
            uris: vec![if prefix {
                format!("/api/v{}/svc{}/*", i % 7, i)
            } else {
                format!("/api/v{}/svc{}/items", i % 7, i)
            }],
            methods: vec![Method::GET, Method::POST],
            hosts: Vec::new(),
            remote_addrs: Vec::new(),
            vars: None,
            priority: 0,
        })
        .collect()
}

fn bench_match(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_match");
    g.throughput(Throughput::Elements(1));
    let headers = HeaderMap::new();
    let method = Method::POST;
    for n in [10usize, 1_000, 10_000] {
        for (kind, prefix) in [("exact", false), ("prefix", true)] {
            let table = RouteTable::build(route_specs(n, prefix));
            let i = n / 2;
            let path = if prefix {
                format!("/api/v{}/svc{}/chat/completions", i % 7, i)
            } else {
                format!("/api/v{}/svc{}/items", i % 7, i)
            };
            let req = Request {
                method: &method,
                host: Some("api.example.com"),
                path: &path,
                query: None,
                headers: &headers,
                remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                remote_port: 40000,
                body: None,
                consumer: None,
                route_id: None,
            };
            assert!(
                matches!(table.find(&req), split_core::matcher::MatchOutcome::Found(f) if f == i)
            );
            g.bench_with_input(BenchmarkId::new(kind, n), &table, |b, t| {
                b.iter(|| black_box(t.find(black_box(&req))))
            });
        }
    }
    g.finish();
}

fn bench_expr(c: &mut Criterion) {
    let mut g = c.benchmark_group("expr");
    g.throughput(Throughput::Elements(1));
    let expr = Expr::compile(&json!([
        ["http_x_tier", "==", "pro"],
        ["arg_region", "in", ["eu", "us"]],
        ["http_user_agent", "~~", "^curl/[0-9.]+$"]
    ]))
    .expect("valid expression");
    let mut headers = HeaderMap::new();
    headers.insert("x-tier", HeaderValue::from_static("pro"));
    headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
    let method = Method::GET;
    let req = Request {
        method: &method,
        host: Some("api.example.com"),
        path: "/v1/chat/completions",
        query: Some("region=eu&x=1"),
        headers: &headers,
        remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        remote_port: 40000,
        body: None,
        consumer: None,
        route_id: None,
    };
    assert_eq!(expr.eval(&req), Ok(true));
    g.bench_function("and3_regex", |b| {
        b.iter(|| black_box(expr.eval(black_box(&req))))
    });
    g.finish();
}

criterion_group!(benches, bench_pick, bench_match, bench_expr);
criterion_main!(benches);
