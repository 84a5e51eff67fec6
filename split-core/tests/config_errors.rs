//! Table tests: every validation error names the exact field path and a clear message.

use serde_json::{json, Value};
use split_core::config::ResourceKind;
use split_core::snapshot::validate_object;

/// (kind, object, expected path, expected message substring)
type Case = (ResourceKind, Value, &'static str, &'static str);

fn check(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for (kind, value, path, message) in cases {
        match validate_object(kind, "1", &value) {
            Ok(()) => failures.push(format!("{value}: accepted, expected `{path}: {message}`")),
            Err(err) => {
                if err.path != path || !err.message.contains(message) {
                    failures.push(format!(
                        "{value}:\n    got      `{}` / `{}`\n    expected `{path}` / `{message}`",
                        err.path, err.message
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// An upstream with `extra` merged over a valid base.
fn up(extra: Value) -> Value {
    let mut base = json!({"nodes": {"127.0.0.1:80": 1}});
    merge(&mut base, extra);
    base
}

fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
}

/// A route with `extra` merged over a valid base.
fn route(extra: Value) -> Value {
    let mut base = json!({"uri": "/x", "upstream": {"nodes": {"127.0.0.1:80": 1}}});
    merge(&mut base, extra);
    base
}

/// A route whose traffic-split config is `split`.
fn split(split: Value) -> Value {
    route(json!({"plugins": {"traffic-split": split}}))
}

const U: ResourceKind = ResourceKind::Upstreams;
const R: ResourceKind = ResourceKind::Routes;

#[test]
fn upstream_errors() {
    check(vec![
        (U, up(json!({"foo": 1})), "foo", "unknown field `foo`"),
        (U, up(json!({"name": 5})), "name", "expected a string"),
        (U, up(json!({"name": ""})), "name", "1 to 256"),
        (
            U,
            up(json!({"desc": "d".repeat(257)})),
            "desc",
            "at most 256",
        ),
        (
            U,
            up(json!({"labels": {"env": "a b"}})),
            "labels.env",
            "without whitespace",
        ),
        (
            U,
            up(json!({"labels": {"env": 1}})),
            "labels.env",
            "expected a string",
        ),
        (U, up(json!({"id": "a b"})), "id", "1-64 characters"),
        (
            U,
            up(json!({"service_name": "x"})),
            "service_name",
            "not supported yet",
        ),
        (
            U,
            up(json!({"discovery_type": "dns"})),
            "discovery_type",
            "not supported yet",
        ),
        (
            U,
            up(json!({"discovery_args": {}})),
            "discovery_args",
            "not supported yet",
        ),
        (
            U,
            up(json!({"checks": {"active": {"type": "udp"}}})),
            "checks.active.type",
            "must be one of http, https, tcp",
        ),
        (U, up(json!({"tls": {}})), "tls", "not supported yet"),
        (
            U,
            up(json!({"scheme": "grpc"})),
            "scheme",
            "`grpc` is not supported (supported: http, https)",
        ),
        (
            U,
            up(json!({"type": "ewma"})),
            "type",
            "unsupported type `ewma` (supported: roundrobin, chash, random)",
        ),
        (
            U,
            up(json!({"type": "least_conn"})),
            "type",
            "supported: roundrobin, chash, random",
        ),
        (
            U,
            up(json!({"seed": 3})),
            "seed",
            "only valid with type `random`",
        ),
        (
            U,
            up(json!({"seed": -3, "type": "random"})),
            "seed",
            "expected u64",
        ),
        (
            U,
            up(json!({"hash_on": "body"})),
            "hash_on",
            "must be one of vars, header, cookie, consumer, vars_combinations",
        ),
        (U, up(json!({"type": "chash"})), "key", "missing key"),
        (
            U,
            up(json!({"type": "chash", "hash_on": "header"})),
            "key",
            "missing key",
        ),
        (
            U,
            up(json!({"type": "chash", "hash_on": "cookie", "key": ""})),
            "key",
            "missing key",
        ),
        (
            U,
            up(json!({"type": "chash", "hash_on": "vars_combinations"})),
            "key",
            "missing key",
        ),
        (
            U,
            up(json!({"type": "chash", "key": "http_x"})),
            "key",
            "not a supported var",
        ),
        (
            U,
            up(json!({"type": "chash", "key": "arg_"})),
            "key",
            "not a supported var",
        ),
        (
            U,
            up(json!({"type": "chash", "hash_on": "header", "key": "a b"})),
            "key",
            "[a-zA-Z0-9-_]+",
        ),
        (U, json!({"type": "roundrobin"}), "nodes", "is required"),
        (
            U,
            up(json!({"nodes": "127.0.0.1:80"})),
            "nodes",
            "expected an object",
        ),
        (
            U,
            up(json!({"nodes": {"127.0.0.1:80": -1}})),
            "nodes[\"127.0.0.1:80\"]",
            "must be >= 0",
        ),
        (
            U,
            up(json!({"nodes": {"127.0.0.1:80": 4_294_967_296_u64}})),
            "nodes[\"127.0.0.1:80\"]",
            "must be <= 4294967295",
        ),
        (
            U,
            up(json!({"nodes": {"127.0.0.1:80": "1"}})),
            "nodes[\"127.0.0.1:80\"]",
            "weight must be an integer",
        ),
        (
            U,
            up(json!({"nodes": {"127.0.0.1:80": 1.5}})),
            "nodes[\"127.0.0.1:80\"]",
            "weight must be an integer",
        ),
        (
            U,
            up(json!({"nodes": {"::1:80": 1}})),
            "nodes[\"::1:80\"]",
            "IPv6 addresses must be written as `[addr]:port`",
        ),
        (
            U,
            up(json!({"nodes": {"[::1:80": 1}})),
            "nodes[\"[::1:80\"]",
            "missing `]`",
        ),
        (
            U,
            up(json!({"nodes": {"[zz]:80": 1}})),
            "nodes[\"[zz]:80\"]",
            "is not an IPv6 address",
        ),
        (
            U,
            up(json!({"nodes": {"[::1]80": 1}})),
            "nodes[\"[::1]80\"]",
            "expected `:port`",
        ),
        (
            U,
            up(json!({"nodes": {"a:0": 1}})),
            "nodes[\"a:0\"]",
            "invalid port `0`",
        ),
        (
            U,
            up(json!({"nodes": {"a:65536": 1}})),
            "nodes[\"a:65536\"]",
            "invalid port",
        ),
        (
            U,
            up(json!({"nodes": {"a:x": 1}})),
            "nodes[\"a:x\"]",
            "invalid port",
        ),
        (
            U,
            up(json!({"nodes": {"a b:80": 1}})),
            "nodes[\"a b:80\"]",
            "not a valid host name",
        ),
        (
            U,
            up(json!({"nodes": {":80": 1}})),
            "nodes[\":80\"]",
            "host must not be empty",
        ),
        (
            U,
            up(json!({"nodes": [{"host": "a", "weight": -1}]})),
            "nodes[0].weight",
            "must be >= 0",
        ),
        (
            U,
            up(json!({"nodes": [{"host": "a", "weight": 1}, {"host": "b"}]})),
            "nodes[1]",
            "missing field `weight`",
        ),
        (
            U,
            up(json!({"nodes": [{"host": "a", "weight": "1"}]})),
            "nodes[0].weight",
            "expected i64",
        ),
        (
            U,
            up(json!({"nodes": [{"host": "a", "port": 0, "weight": 1}]})),
            "nodes[0].port",
            "1 to 65535",
        ),
        (
            U,
            up(json!({"nodes": [{"host": "a", "port": 70000, "weight": 1}]})),
            "nodes[0].port",
            "1 to 65535",
        ),
        (
            U,
            up(json!({"nodes": [{"host": "", "weight": 1}]})),
            "nodes[0].host",
            "must not be empty",
        ),
        (
            U,
            up(json!({"nodes": [{"host": "a/b", "weight": 1}]})),
            "nodes[0].host",
            "not a valid host",
        ),
        (
            U,
            up(json!({"nodes": [{"host": "a", "weight": 1, "priority": 3_000_000_000_i64}]})),
            "nodes[0].priority",
            "out of range",
        ),
        (
            U,
            up(json!({"pass_host": "client"})),
            "pass_host",
            "must be one of pass, node, rewrite",
        ),
        (
            U,
            up(json!({"pass_host": "rewrite"})),
            "upstream_host",
            "is required when pass_host is `rewrite`",
        ),
        (
            U,
            up(json!({"pass_host": "rewrite", "upstream_host": "a b"})),
            "upstream_host",
            "invalid host",
        ),
        (
            U,
            up(json!({"timeout": {"connect": 1, "send": 1}})),
            "timeout",
            "missing field `read`",
        ),
        (
            U,
            up(json!({"timeout": {"connect": 0, "send": 1, "read": 1}})),
            "timeout.connect",
            "must be > 0",
        ),
        (
            U,
            up(json!({"timeout": {"connect": 1, "send": -1, "read": 1}})),
            "timeout.send",
            "must be > 0",
        ),
        (
            U,
            up(json!({"timeout": {"connect": 1, "send": 1, "read": "5"}})),
            "timeout.read",
            "expected f64",
        ),
        (
            U,
            up(json!({"timeout": {"connect": 1, "send": 1, "read": 1, "idle": 1}})),
            "timeout.idle",
            "unknown field `idle`",
        ),
        (U, up(json!({"retries": -1})), "retries", "must be >= 0"),
        (
            U,
            up(json!({"retry_timeout": -1})),
            "retry_timeout",
            "must be >= 0",
        ),
        (
            U,
            up(json!({"keepalive_pool": {"size": 0}})),
            "keepalive_pool.size",
            "must be >= 1",
        ),
        (
            U,
            up(json!({"keepalive_pool": {"requests": 0}})),
            "keepalive_pool.requests",
            "must be >= 1",
        ),
        (
            U,
            up(json!({"keepalive_pool": {"idle_timeout": -1}})),
            "keepalive_pool.idle_timeout",
            "must be >= 0",
        ),
        (
            U,
            up(json!({"keepalive_pool": {"max": 1}})),
            "keepalive_pool.max",
            "unknown field `max`",
        ),
        (U, json!([1]), "", "expected struct"),
    ]);
}

#[test]
fn route_errors() {
    check(vec![
        (R, route(json!({"foo": 1})), "foo", "unknown field `foo`"),
        (R, route(json!({"filter_func": "function(vars) return true end"})), "filter_func", "Lua functions are not supported"),
        (R, route(json!({"script": "x"})), "script", "Lua functions are not supported"),
        (R, route(json!({"script_id": "x"})), "script_id", "Lua functions are not supported"),
        (R, route(json!({"id": {}})), "id", "1-64 characters"),
        (R, route(json!({"name": ""})), "name", "1 to 256"),
        (R, route(json!({"desc": "d".repeat(257)})), "desc", "at most 256"),
        (R, route(json!({"labels": {"a": ""}})), "labels.a", "1 to 256"),
        (R, route(json!({"uris": ["/a"]})), "uris", "`uri` and `uris` are mutually exclusive"),
        (R, route(json!({"uri": null})), "uri", "one of `uri` or `uris` is required"),
        (R, route(json!({"uri": null, "uris": []})), "uris", "must not be empty"),
        (R, route(json!({"uri": null, "uris": ["/a", "/a"]})), "uris[1]", "duplicate uri `/a`"),
        (R, route(json!({"uri": null, "uris": ["/a", "b"]})), "uris[1]", "must start with `/`"),
        (R, route(json!({"uri": ""})), "uri", "1 to 4096"),
        (R, route(json!({"uri": "x"})), "uri", "must start with `/`"),
        (R, route(json!({"uri": 5})), "uri", "expected a string"),
        (R, route(json!({"methods": ["GET", "FETCH"]})), "methods[1]", "`FETCH` is not one of GET, POST"),
        (R, route(json!({"methods": ["get"]})), "methods[0]", "is not one of"),
        (R, route(json!({"methods": ["GET", "GET"]})), "methods[1]", "duplicate method `GET`"),
        (R, route(json!({"methods": "GET"})), "methods", "expected a sequence"),
        (R, route(json!({"host": "a.com", "hosts": ["b.com"]})), "hosts", "`host` and `hosts` are mutually exclusive"),
        (R, route(json!({"host": "a b"})), "host", "is not a valid host"),
        (R, route(json!({"hosts": []})), "hosts", "must not be empty"),
        (R, route(json!({"host": "a*.com"})), "host", "is not a valid host"),
        (R, route(json!({"host": ""})), "host", "is not a valid host"),
        (R, route(json!({"hosts": ["a.com", "A.com"]})), "hosts[1]", "duplicate host `a.com`"),
        (R, route(json!({"hosts": ["a.com", "a/b"]})), "hosts[1]", "is not a valid host"),
        (R, route(json!({"remote_addr": "1.2.3.4", "remote_addrs": []})), "remote_addrs", "mutually exclusive"),
        (R, route(json!({"remote_addr": "1.2.3"})), "remote_addr", "is not an IP address or CIDR"),
        (R, route(json!({"remote_addrs": ["10.0.0.0/8", "10.0.0.0/33"]})), "remote_addrs[1]", "is not an IP address or CIDR"),
        (R, route(json!({"status": 2})), "status", "must be 0 or 1"),
        (R, route(json!({"status": true})), "status", "expected i64"),
        (R, route(json!({"priority": "high"})), "priority", "expected i64"),
        (R, route(json!({"upstream_id": 0})), "upstream_id", "integer >= 1"),
        (R, route(json!({"service_id": "a b"})), "service_id", "1-64 characters"),
        (R, route(json!({"plugin_config_id": []})), "plugin_config_id", "1-64 characters"),
        (R, route(json!({"timeout": {"connect": 1, "send": 1, "read": 0}})), "timeout.read", "must be > 0"),
        (R, route(json!({"upstream": {"nodes": {"a:80": -2}}})), "upstream.nodes[\"a:80\"]", "must be >= 0"),
        (R, route(json!({"upstream": {"nodes": {}, "checks": {}}})), "upstream.checks.active", "is required"),
        (R, route(json!({"upstream_id": 1, "upstream": {"nodes": 1}})), "upstream.nodes", "expected an object"),
        (R, route(json!({"enable_websocket": "yes"})), "enable_websocket", "expected a boolean"),
        (R, json!({"uri": "/x"}), "", "at least one of plugins, upstream, upstream_id, service_id or plugin_config_id is required"),
        (R, route(json!({"plugins": {"foo-bar": {}}})), "plugins.foo-bar", "unknown plugin"),
        (R, route(json!({"plugins": {"limit-count": {"count": 1, "time_window": 60, "policy": "redis"}}})), "plugins.limit-count.redis_host", "is required"),
        (R, route(json!({"plugins": {"key-auth": {"key": "k"}}})), "plugins.key-auth.key", "unknown field `key`"),
        (R, route(json!({"plugins": {"ai-proxy": {}}})), "plugins.ai-proxy", "plugin not supported yet"),
        (R, route(json!({"plugins": {"api-breaker": {}}})), "plugins.api-breaker.break_response_code", "is required"),
        (R, route(json!({"plugins": {"prometheus": {"prefer_name": "yes"}}})), "plugins.prometheus.prefer_name", "expected a boolean"),
        (R, route(json!({"plugins": {"prometheus": []}})), "plugins.prometheus", "must be an object"),
        (R, route(json!({"plugins": {"proxy-rewrite": {"uri": "nope"}}})), "plugins.proxy-rewrite.uri", "must start with `/`"),
        (R, route(json!({"plugins": {"proxy-rewrite": {"method": "GET"}}})), "plugins.proxy-rewrite.method", "not supported yet"),
        (R, route(json!({"plugins": {"proxy-rewrite": {"regex_uri": ["^/a", "/b", "^/c", "/d"]}}})), "plugins.proxy-rewrite.regex_uri", "exactly [regex, template]"),
        (R, route(json!({"plugins": {"proxy-rewrite": {"headers": {"set": {"X-A": "$host"}}}}})), "plugins.proxy-rewrite.headers.set.X-A", "not supported yet"),
        (R, route(json!({"plugins": []})), "plugins", "expected an object"),
    ]);
}

#[test]
fn traffic_split_errors() {
    let arm = |extra: Value| {
        let mut base = json!({"weight": 1, "upstream": {"nodes": {"127.0.0.1:81": 1}}});
        merge(&mut base, extra);
        base
    };
    let wu = |arms: Vec<Value>| json!({"rules": [{"weighted_upstreams": arms}]});
    const P: &str = "plugins.traffic-split";
    let p = |rest: &str| -> &'static str { Box::leak(format!("{P}.{rest}").into_boxed_str()) };
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"weight": 1, "upstream_id": i + 1}))
        .collect();
    let shorthand_many: Vec<Value> = (0..21)
        .map(|i| json!({"weight": 1, "upstream_id": i + 1}))
        .collect();
    check(vec![
        (R, split(json!({"foo": 1})), p("foo"), "unknown field `foo`"),
        (
            R,
            split(json!({"rules": {}})),
            p("rules"),
            "expected a sequence",
        ),
        (R, split(json!([])), P, "plugin config must be an object"),
        (
            R,
            split(json!({"rules": [1]})),
            p("rules[0]"),
            "expected an object",
        ),
        (
            R,
            split(json!({"rules": [{"weighted_upstreams": [{"weight": 1}], "weight": 5}]})),
            p("rules[0]"),
            "mixes `weighted_upstreams`",
        ),
        (
            R,
            split(json!({"rules": [{"match": [], "upstream": {"nodes": {}}}]})),
            p("rules[0]"),
            "mixes `match`",
        ),
        (
            R,
            split(json!({"rules": [{"weighted_upstreams": [{"weight": 1}]}, {"weight": 1}]})),
            p("rules[1]"),
            "use one shape for all rules",
        ),
        (
            R,
            split(
                json!({"rules": [{"weight": 1, "upstream_id": 1}, {"weighted_upstreams": [{"weight": 1}]}]}),
            ),
            p("rules[1]"),
            "use one shape for all rules",
        ),
        (
            R,
            split(json!({"rules": [{"weighted_upstreams": []}]})),
            p("rules[0].weighted_upstreams"),
            "must have 1 to 20 items (got 0)",
        ),
        (
            R,
            split(wu(many)),
            p("rules[0].weighted_upstreams"),
            "must have 1 to 20 items (got 21)",
        ),
        (
            R,
            split(json!({"rules": shorthand_many})),
            p("rules"),
            "must have 1 to 20 items (got 21)",
        ),
        (
            R,
            split(wu(vec![
                arm(json!({})),
                arm(json!({"weight": -1, "upstream_id": 2, "upstream": null})),
            ])),
            p("rules[0].weighted_upstreams[1].weight"),
            "must be >= 0",
        ),
        (
            R,
            split(wu(vec![arm(json!({"weight": "50"}))])),
            p("rules[0].weighted_upstreams[0].weight"),
            "expected i64",
        ),
        (
            R,
            split(wu(vec![arm(json!({"weight": 1.5}))])),
            p("rules[0].weighted_upstreams[0].weight"),
            "expected i64",
        ),
        (
            R,
            split(wu(vec![arm(json!({"upstream": null, "upstream_id": 0}))])),
            p("rules[0].weighted_upstreams[0].upstream_id"),
            "integer >= 1",
        ),
        (
            R,
            split(wu(vec![arm(
                json!({"upstream": null, "upstream_id": "a/b"}),
            )])),
            p("rules[0].weighted_upstreams[0].upstream_id"),
            "1-64 characters",
        ),
        (
            R,
            split(wu(vec![arm(json!({"upstream_id": 1}))])),
            p("rules[0].weighted_upstreams[0]"),
            "`upstream_id` and `upstream` are mutually exclusive",
        ),
        (
            R,
            split(wu(vec![arm(
                json!({"upstream": {"nodes": {"a:80": 1}, "type": "ewma"}}),
            )])),
            p("rules[0].weighted_upstreams[0].upstream.type"),
            "unsupported type `ewma`",
        ),
        (
            R,
            split(wu(vec![arm(json!({"rewrite": {"uri": "v1"}}))])),
            p("rules[0].weighted_upstreams[0].rewrite.uri"),
            "must start with `/`",
        ),
        (
            R,
            split(wu(vec![arm(json!({"rewrite": {"foo": 1}}))])),
            p("rules[0].weighted_upstreams[0].rewrite.foo"),
            "unknown field `foo`",
        ),
        (
            R,
            split(wu(vec![arm(json!({"rewrite": {"body": []}}))])),
            p("rules[0].weighted_upstreams[0].rewrite.body"),
            "expected a map",
        ),
        (
            R,
            split(wu(vec![arm(json!({"foo": 1}))])),
            p("rules[0].weighted_upstreams[0].foo"),
            "unknown field `foo`",
        ),
        (
            R,
            split(wu(vec![arm(json!({"name": ""}))])),
            p("rules[0].weighted_upstreams[0].name"),
            "1 to 64 characters",
        ),
        (
            R,
            split(wu(vec![
                arm(json!({"name": "a"})),
                arm(json!({"name": "a", "weight": 2, "upstream": {"nodes": {"b:80": 1}}})),
            ])),
            p("rules[0].weighted_upstreams[1].name"),
            "duplicate arm name `a` (also used by rules[0].weighted_upstreams[0])",
        ),
        (
            R,
            split(wu(vec![arm(json!({})), arm(json!({"weight": 3}))])),
            p("rules[0].weighted_upstreams[1]"),
            "duplicate arm (same upstream and rewrite as rules[0].weighted_upstreams[0])",
        ),
        (
            R,
            split(wu(vec![json!({"weight": 1}), json!({"weight": 2})])),
            p("rules[0].weighted_upstreams[1]"),
            "duplicate arm (same upstream and rewrite as rules[0].weighted_upstreams[0])",
        ),
        (
            R,
            split(wu(vec![
                json!({"upstream_id": 1}),
                json!({"upstream_id": "1"}),
            ])),
            p("rules[0].weighted_upstreams[1]"),
            "duplicate arm",
        ),
        (
            R,
            split(wu(vec![
                json!({"upstream_id": 1, "rewrite": {"uri": "/a"}}),
                json!({"upstream_id": 2}),
                json!({"upstream_id": 1, "rewrite": {"uri": "/a"}}),
            ])),
            p("rules[0].weighted_upstreams[2]"),
            "same upstream and rewrite as rules[0].weighted_upstreams[0]",
        ),
        (
            R,
            split(
                json!({"rules": [arm(json!({"rewrite": {"uri": "/a"}})), arm(json!({"rewrite": {"uri": "/a"}}))]}),
            ),
            p("rules[1]"),
            "duplicate arm (same upstream and rewrite as rules[0])",
        ),
        (
            R,
            split(json!({"rules": [arm(json!({"weight": -5}))]})),
            p("rules[0].weight"),
            "must be >= 0",
        ),
        (
            R,
            split(json!({"rules": [{"match": [{"foo": []}]}]})),
            p("rules[0].match[0].foo"),
            "unknown field `foo`",
        ),
        (
            R,
            split(json!({"rules": [{"match": {}}]})),
            p("rules[0].match"),
            "expected a sequence",
        ),
        (
            R,
            split(json!({"rules": [{"balancer": {"algorithm": "ewma"}}]})),
            p("rules[0].balancer.algorithm"),
            "must be one of roundrobin, random, chash",
        ),
        (
            R,
            split(json!({"rules": [{"balancer": {"algorithm": "chash"}}]})),
            p("rules[0].balancer.key"),
            "missing key",
        ),
        (
            R,
            split(
                json!({"rules": [{"balancer": {"algorithm": "chash", "hash_on": "header", "key": "a b"}}]}),
            ),
            p("rules[0].balancer.key"),
            "[a-zA-Z0-9-_]+",
        ),
        (
            R,
            split(json!({"rules": [{"balancer": {"seed": 1}}]})),
            p("rules[0].balancer.seed"),
            "only valid with algorithm `random`",
        ),
        (
            R,
            split(json!({"rules": [{"balancer": {"hash_on": "header"}}]})),
            p("rules[0].balancer.hash_on"),
            "only valid with algorithm `chash`",
        ),
        (
            R,
            split(json!({"rules": [{"balancer": {"algorithm": "random", "key": "x"}}]})),
            p("rules[0].balancer.key"),
            "only valid with algorithm `chash`",
        ),
        (
            R,
            split(
                json!({"rules": [{"balancer": {"algorithm": "chash", "hash_on": "x", "key": "k"}}]}),
            ),
            p("rules[0].balancer.hash_on"),
            "must be one of vars",
        ),
        (
            R,
            split(json!({"rules": [{"balancer": {"weights": 1}}]})),
            p("rules[0].balancer.weights"),
            "unknown field `weights`",
        ),
    ]);
}

#[test]
fn service_consumer_and_minor_kind_errors() {
    use ResourceKind::{
        Consumers as C, GlobalRules as G, PluginConfigs as PC, PluginMetadata as PM, Services as S,
        Ssls as SSL,
    };
    check(vec![
        (S, json!({"foo": 1}), "foo", "unknown field `foo`"),
        (
            S,
            json!({"script": "x"}),
            "script",
            "Lua functions are not supported",
        ),
        (
            S,
            json!({"upstream": {"nodes": {"a:80": -1}}}),
            "upstream.nodes[\"a:80\"]",
            "must be >= 0",
        ),
        (S, json!({"upstream_id": -1}), "upstream_id", "integer >= 1"),
        (
            S,
            json!({"hosts": ["a.com", "a.com"]}),
            "hosts[1]",
            "duplicate host",
        ),
        (
            S,
            json!({"plugins": {"cors": {}}}),
            "plugins.cors",
            "plugin not supported yet",
        ),
        (S, json!({"name": ""}), "name", "1 to 256"),
        (
            S,
            json!({"labels": {"x": "a b"}}),
            "labels.x",
            "without whitespace",
        ),
        (C, json!({}), "", "missing field `username`"),
        (C, json!({"username": "a b"}), "username", "[a-zA-Z0-9_-]"),
        (C, json!({"username": ""}), "username", "[a-zA-Z0-9_-]"),
        (
            C,
            json!({"username": "a".repeat(101)}),
            "username",
            "1 to 100 characters",
        ),
        (
            G,
            json!({"plugins": {}, "desc": "x"}),
            "desc",
            "unknown field `desc`",
        ),
        (
            PC,
            json!({"plugins": {}, "labels": {"k": ""}}),
            "labels.k",
            "1 to 256",
        ),
        (
            C,
            json!({"username": "a", "group_id": "g"}),
            "group_id",
            "not supported yet",
        ),
        (
            C,
            json!({"username": "a", "plugins": {"key-auth": {"key": ""}}}),
            "plugins.key-auth.key",
            "must not be empty",
        ),
        (
            C,
            json!({"username": "a", "plugins": {"key-auth": {"key": 5}}}),
            "plugins.key-auth.key",
            "expected a string",
        ),
        (
            C,
            json!({"username": "a", "plugins": {"key-auth": {}}}),
            "plugins.key-auth",
            "missing field `key`",
        ),
        (
            C,
            json!({"username": "a", "plugins": {"key-auth": {"key": "k", "header": "x"}}}),
            "plugins.key-auth.header",
            "unknown field `header`",
        ),
        (
            C,
            json!({"username": "a", "plugins": {"jwt-auth": {}}}),
            "plugins.jwt-auth",
            "plugin not supported yet",
        ),
        (
            C,
            json!({"username": "a", "plugins": {"nope": {}}}),
            "plugins.nope",
            "unknown plugin",
        ),
        (
            C,
            json!({"username": "a", "desc": "d".repeat(300)}),
            "desc",
            "at most 256",
        ),
        (PC, json!({}), "", "missing field `plugins`"),
        (
            PC,
            json!({"plugins": {"nope": {}}}),
            "plugins.nope",
            "unknown plugin",
        ),
        (
            PC,
            json!({"plugins": {}, "foo": 1}),
            "foo",
            "unknown field `foo`",
        ),
        (
            G,
            json!({"plugins": {"traffic-split": {}}}),
            "plugins.traffic-split",
            "not supported in global rules",
        ),
        (
            G,
            json!({"plugins": {"proxy-rewrite": {"uri": "/a"}}}),
            "plugins.proxy-rewrite",
            "not supported in global rules",
        ),
        (
            G,
            json!({"plugins": {"limit-count": {"count": 1, "time_window": 1}}}),
            "plugins.limit-count",
            "not supported in global rules",
        ),
        (G, json!({}), "", "missing field `plugins`"),
        (SSL, json!([]), "", "expected an object"),
        (SSL, json!({"key": "-----BEGIN KEY"}), "cert", "is required"),
        (
            SSL,
            json!({"cert": "nope", "key": "-----BEGIN KEY"}),
            "cert",
            "expected a PEM string",
        ),
        (
            SSL,
            json!({"cert": "-----BEGIN C", "key": "-----BEGIN K", "snis": []}),
            "snis",
            "non-empty list",
        ),
        (
            SSL,
            json!({"cert": "-----BEGIN C", "key": "-----BEGIN K", "sni": ""}),
            "sni",
            "non-empty string",
        ),
        (PM, json!(1), "", "expected an object"),
    ]);
    // plugin_metadata ids are plugin names.
    let err = validate_object(PM, "Bad Name", &json!({})).unwrap_err();
    assert_eq!(err.path, "id");
}

#[test]
fn valid_objects_of_every_kind() {
    let ok = [
        (U, up(json!({"type": "chash", "hash_on": "consumer"}))),
        (
            U,
            up(json!({"type": "chash", "hash_on": "vars", "key": "arg_user"})),
        ),
        (
            U,
            up(
                json!({"type": "random", "seed": 7, "scheme": "https", "pass_host": "rewrite", "upstream_host": "x.com"}),
            ),
        ),
        (
            U,
            up(
                json!({"nodes": [], "retries": 0, "retry_timeout": 0.5, "timeout": {"connect": 0.5, "send": 2, "read": 30}}),
            ),
        ),
        (
            U,
            up(
                json!({"id": 1, "create_time": 1, "update_time": 2, "name": "n", "desc": "d", "labels": {"a": "b"}}),
            ),
        ),
        (
            R,
            route(
                json!({"id": "r1", "create_time": 1, "update_time": 2, "priority": -3, "status": 0}),
            ),
        ),
        (R, route(json!({"host": "*"}))),
        (
            R,
            route(
                json!({"host": "*.foo.com", "methods": ["GET", "POST"], "remote_addrs": ["10.0.0.1", "::1", "10.0.0.0/8"]}),
            ),
        ),
        (R, json!({"uri": "/x", "plugins": {}})),
        (R, json!({"uri": "/x", "service_id": 1})),
        (R, json!({"uri": "/x", "plugin_config_id": "pc"})),
        (R, split(json!({}))),
        (R, split(json!({"rules": []}))),
        (R, split(json!({"rules": [{}]}))),
        (
            ResourceKind::Services,
            json!({"id": "s", "upstream_id": 3, "hosts": ["a.com"], "enable_websocket": true}),
        ),
        (
            ResourceKind::Consumers,
            json!({"username": "jack_1-x", "plugins": {"key-auth": {"key": "secret"}}}),
        ),
        (
            ResourceKind::PluginConfigs,
            json!({"id": 1, "plugins": {"prometheus": {}}}),
        ),
        (
            ResourceKind::GlobalRules,
            json!({"id": 1, "plugins": {"prometheus": {"prefer_name": true}}}),
        ),
        (
            ResourceKind::Ssls,
            json!({"cert": "-----BEGIN C", "key": "-----BEGIN K", "snis": ["a.com"], "type": "server"}),
        ),
        (ResourceKind::Ssls, json!({"type": "client"})),
        (ResourceKind::PluginMetadata, json!({"log_format": {}})),
    ];
    for (kind, value) in ok {
        if let Err(err) = validate_object(kind, "1", &value) {
            panic!("{kind:?} {value} rejected: {err}");
        }
    }
}

#[test]
fn vars_errors() {
    check(vec![
        (
            R,
            route(json!({"vars": [["arg_x", "123", "y"]]})),
            "vars",
            "failed to validate the 'vars' expression",
        ),
        (
            R,
            route(json!({"vars": "x"})),
            "vars",
            "failed to validate the 'vars' expression",
        ),
        (
            R,
            split(
                json!({"rules": [{"match": [{"vars": [["arg_x", "==", "1"]]}, {"vars": [["arg_x", "bogus", "1"]]}]}]}),
            ),
            "plugins.traffic-split.rules[0].match[1].vars",
            "failed to validate the 'vars' expression",
        ),
    ]);
    let ok = split(
        json!({"rules": [{"match": [{"vars": [["http_x-canary", "==", "1"]]}, {}], "weighted_upstreams": [{"weight": 1}]}]}),
    );
    validate_object(R, "1", &ok).expect("valid match");
}
