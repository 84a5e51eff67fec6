//! Route table precedence (APISIX `radixtree_host_uri`, reference §3).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;
use serde_json::json;
use split_core::expr::Expr;
use split_core::matcher::{MatchOutcome, MatchSpec, RouteTable};
use split_core::request::Request;

fn spec(uris: &[&str]) -> MatchSpec {
    MatchSpec {
        uris: uris.iter().map(|s| (*s).to_owned()).collect(),
        methods: Vec::new(),
        hosts: Vec::new(),
        remote_addrs: Vec::new(),
        vars: None,
        priority: 0,
    }
}

fn with_hosts(mut s: MatchSpec, hosts: &[&str]) -> MatchSpec {
    s.hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
    s
}

fn with_priority(mut s: MatchSpec, p: i64) -> MatchSpec {
    s.priority = p;
    s
}

struct Req {
    method: Method,
    host: Option<String>,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    remote: IpAddr,
    body: Option<Vec<u8>>,
}

impl Req {
    fn new(path: &str) -> Req {
        Req {
            method: Method::GET,
            host: None,
            path: path.to_owned(),
            query: None,
            headers: HeaderMap::new(),
            remote: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            body: None,
        }
    }

    fn host(mut self, h: &str) -> Req {
        self.host = Some(h.to_owned());
        self
    }

    fn find(&self, t: &RouteTable) -> MatchOutcome {
        t.find(&Request {
            method: &self.method,
            host: self.host.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            remote_addr: self.remote,
            remote_port: 1234,
            body: self.body.as_deref(),
            consumer: None,
            route_id: None,
        })
    }
}

use MatchOutcome::{Found, NeedBody, NotFound};

#[test]
fn exact_before_prefix_and_longest_prefix_first() {
    let t = RouteTable::build(vec![
        with_priority(spec(&["/v1*"]), 100),
        spec(&["/v1/chat/completions"]),
        spec(&["/v1/chat*"]),
        spec(&["/*"]),
    ]);
    assert_eq!(Req::new("/v1/chat/completions").find(&t), Found(1));
    assert_eq!(Req::new("/v1/chat/other").find(&t), Found(2));
    assert_eq!(Req::new("/v1/models").find(&t), Found(0));
    assert_eq!(Req::new("/v1beta").find(&t), Found(0), "raw string prefix");
    assert_eq!(Req::new("/v1").find(&t), Found(0), "prefix includes itself");
    assert_eq!(Req::new("/v2").find(&t), Found(3));
    assert_eq!(Req::new("").find(&t), NotFound);
}

#[test]
fn priority_only_among_identical_paths() {
    let t = RouteTable::build(vec![
        with_priority(spec(&["/a*"]), 1),
        with_priority(spec(&["/a*"]), 5),
        with_priority(spec(&["/a/b*"]), -10),
        spec(&["/a*"]),
    ]);
    assert_eq!(Req::new("/a/x").find(&t), Found(1));
    assert_eq!(
        Req::new("/a/b/c").find(&t),
        Found(2),
        "priority never beats a longer path"
    );
    // Equal priority: table order.
    let t = RouteTable::build(vec![spec(&["/x"]), spec(&["/x"])]);
    assert_eq!(Req::new("/x").find(&t), Found(0));
}

#[test]
fn failing_filters_fall_through_to_less_specific() {
    let mut post_only = spec(&["/v1/chat/completions"]);
    post_only.methods = vec![Method::POST];
    let t = RouteTable::build(vec![post_only, spec(&["/v1*"])]);
    assert_eq!(Req::new("/v1/chat/completions").find(&t), Found(1));
    let mut r = Req::new("/v1/chat/completions");
    r.method = Method::POST;
    assert_eq!(r.find(&t), Found(0));
}

#[test]
fn hosts_exact_wildcard_and_hostless() {
    let t = RouteTable::build(vec![
        spec(&["/*"]),
        with_hosts(spec(&["/*"]), &["*.foo.com"]),
        with_hosts(spec(&["/*"]), &["API.foo.com"]),
        with_hosts(spec(&["/*"]), &["*.b.foo.com"]),
        with_hosts(spec(&["/only"]), &["only.com"]),
        with_hosts(spec(&["/*"]), &["*"]),
    ]);
    assert_eq!(Req::new("/x").host("api.foo.com").find(&t), Found(2));
    assert_eq!(
        Req::new("/x").host("Api.Foo.Com").find(&t),
        Found(2),
        "case-insensitive"
    );
    assert_eq!(Req::new("/x").host("a.foo.com").find(&t), Found(1));
    assert_eq!(
        Req::new("/x").host("a.b.foo.com").find(&t),
        Found(3),
        "longer wildcard first"
    );
    assert_eq!(Req::new("/x").host("x.a.foo.com").find(&t), Found(1));
    assert_eq!(
        Req::new("/x").host("foo.com").find(&t),
        Found(5),
        "*.foo.com does not match foo.com"
    );
    // A host route whose path misses falls through to less specific hosts, then host-less.
    assert_eq!(Req::new("/x").host("only.com").find(&t), Found(5));
    assert_eq!(Req::new("/only").host("only.com").find(&t), Found(4));
    let t = RouteTable::build(vec![spec(&["/*"]), with_hosts(spec(&["/v1*"]), &["a.com"])]);
    assert_eq!(Req::new("/x").host("a.com").find(&t), Found(0));
    assert_eq!(
        Req::new("/v1/x").host("a.com").find(&t),
        Found(1),
        "host route before host-less"
    );
    assert_eq!(Req::new("/v1/x").find(&t), Found(0));
    // Host beats path specificity: a host route with a shorter prefix wins over a
    // host-less exact path.
    let t = RouteTable::build(vec![
        spec(&["/v1/x"]),
        with_hosts(spec(&["/*"]), &["a.com"]),
    ]);
    assert_eq!(Req::new("/v1/x").host("a.com").find(&t), Found(1));
}

#[test]
fn remote_addrs_normalise_mapped_ipv6() {
    let mut s = spec(&["/a"]);
    s.remote_addrs = vec!["10.0.0.0/8".parse().expect("cidr")];
    let t = RouteTable::build(vec![s]);
    let mut r = Req::new("/a");
    r.remote = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
    assert_eq!(r.find(&t), Found(0));
    r.remote = IpAddr::V6(Ipv4Addr::new(10, 9, 9, 9).to_ipv6_mapped());
    assert_eq!(r.find(&t), Found(0));
    r.remote = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(r.find(&t), NotFound);
}

#[test]
fn vars_and_need_body() {
    let mut by_model = spec(&["/v1/chat/completions"]);
    by_model.vars =
        Some(Expr::compile(&json!([["post_arg.model", "==", "gpt-4o"]])).expect("vars"));
    let mut by_header = spec(&["/v1/chat/completions"]);
    by_header.vars = Some(Expr::compile(&json!([["http_x_canary", "==", "1"]])).expect("vars"));
    by_header.priority = 10;
    let t = RouteTable::build(vec![by_model, by_header, spec(&["/v1*"])]);
    assert!(t.any_needs_body());
    let mut r = Req::new("/v1/chat/completions");
    r.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    // The header route (higher priority) decides first, no body needed.
    r.headers.insert("x-canary", HeaderValue::from_static("1"));
    assert_eq!(r.find(&t), Found(1));
    r.headers.remove("x-canary");
    assert_eq!(r.find(&t), NeedBody);
    r.body = Some(br#"{"model":"gpt-4o"}"#.to_vec());
    assert_eq!(r.find(&t), Found(0));
    r.body = Some(br#"{"model":"other"}"#.to_vec());
    assert_eq!(r.find(&t), Found(2));
    // A path that never reaches the body route does not need the body.
    let mut r = Req::new("/v1/models");
    r.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    assert_eq!(r.find(&t), Found(2));
    assert!(!RouteTable::build(vec![spec(&["/a"])]).any_needs_body());
}

#[test]
fn empty_table_and_odd_inputs() {
    let t = RouteTable::build(Vec::new());
    assert!(t.is_empty());
    assert_eq!(Req::new("/").find(&t), NotFound);
    let t = RouteTable::build(vec![with_hosts(spec(&["/"]), &["é.com"]), spec(&["/é*"])]);
    assert_eq!(Req::new("/").host("xé.com").find(&t), NotFound);
    assert_eq!(Req::new("/é/x").host("\u{1F600}").find(&t), Found(1));
}

// ---- property: the table agrees with a brute-force model of the precedence rules ----

#[derive(Debug, Clone)]
struct GenRoute {
    uris: Vec<String>,
    hosts: Vec<String>,
    priority: i64,
    post_only: bool,
}

fn gen_uri() -> impl Strategy<Value = String> {
    ("/[ab]{0,3}", any::<bool>()).prop_map(|(p, star)| if star { format!("{p}*") } else { p })
}

fn gen_route() -> impl Strategy<Value = GenRoute> {
    let host = prop::sample::select(vec!["a.x.com", "b.x.com", "*.x.com", "*x.com", "*"]);
    (
        prop::collection::vec(gen_uri(), 1..3),
        prop::collection::vec(host.prop_map(str::to_owned), 0..2),
        -2i64..3,
        any::<bool>(),
    )
        .prop_map(|(uris, hosts, priority, post_only)| GenRoute {
            uris,
            hosts,
            priority,
            post_only,
        })
}

/// (host class, -wildcard suffix len, exact=0/prefix=1, -prefix len, -priority); smaller wins.
type CandKey = (u8, i64, u8, i64, i64);

/// The first route in precedence order that passes the method filter.
fn model(routes: &[GenRoute], path: &str, host: &str, post: bool) -> Option<usize> {
    let mut cands: Vec<(CandKey, usize)> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let host_classes: Vec<(u8, i64)> = if r.hosts.is_empty() {
            vec![(2, 0)]
        } else {
            r.hosts
                .iter()
                .filter_map(|h| match h.strip_prefix('*') {
                    Some(suf) => host.ends_with(suf).then_some((1, -(suf.len() as i64))),
                    None => (h == host).then_some((0, 0)),
                })
                .collect()
        };
        for (hc, hl) in host_classes {
            for u in &r.uris {
                let (kind, len) = match u.strip_suffix('*') {
                    Some(p) if path.starts_with(p) => (1, -(p.len() as i64)),
                    None if u == path => (0, 0),
                    _ => continue,
                };
                cands.push(((hc, hl, kind, len, -r.priority), i));
            }
        }
    }
    cands.sort();
    cands
        .into_iter()
        .map(|(_, i)| i)
        .find(|&i| post || !routes[i].post_only)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn table_agrees_with_model(
        routes in prop::collection::vec(gen_route(), 0..12),
        path in "/[ab]{0,4}",
        host in prop::sample::select(vec!["a.x.com", "b.x.com", "x.com", "y.com", "c.a.x.com"]),
        post in any::<bool>(),
    ) {
        let specs = routes.iter().map(|r| MatchSpec {
            uris: r.uris.clone(),
            methods: if r.post_only { vec![Method::POST] } else { Vec::new() },
            hosts: r.hosts.clone(),
            remote_addrs: Vec::new(),
            vars: None,
            priority: r.priority,
        }).collect();
        let t = RouteTable::build(specs);
        let mut req = Req::new(&path).host(host);
        if post { req.method = Method::POST; }
        let want = model(&routes, &path, host, post).map_or(NotFound, Found);
        prop_assert_eq!(req.find(&t), want);
    }

    /// Exact beats any prefix; a longer prefix beats a shorter one whatever the priority.
    #[test]
    fn specificity_beats_priority(p1 in -100i64..100, p2 in -100i64..100, p3 in -100i64..100) {
        let t = RouteTable::build(vec![
            with_priority(spec(&["/a*"]), p1),
            with_priority(spec(&["/a/b*"]), p2),
            with_priority(spec(&["/a/b/c"]), p3),
        ]);
        prop_assert_eq!(Req::new("/a/b/c").find(&t), Found(2));
        prop_assert_eq!(Req::new("/a/b/d").find(&t), Found(1));
        prop_assert_eq!(Req::new("/a/x").find(&t), Found(0));
    }
}
