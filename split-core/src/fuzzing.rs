//! Fuzz entry points (feature `fuzzing`): each takes raw bytes, exercises one part of
//! the core and asserts its invariants. The cargo-fuzz targets are 3-line shims into
//! these functions, and a stable test replays `fuzz/corpus/*` through them.
//!
//! Every function accepts any bytes: input that does not parse is simply not explored
//! further. An `assert!` failing here is a bug in the core (a broken invariant), exactly
//! like a panic inside the core would be.
//!
//! Input layouts (chosen so corpus files stay readable):
//! - [`config_json`]: one JSON object, validated as every resource kind.
//! - [`expr`]: line 1 a `vars` JSON array; then a request like HTTP/1.1 text
//!   (`METHOD /path?query`, `Name: value` headers, an optional `X-Fuzz-Remote: ip`
//!   pseudo header, a blank line, the body).
//! - [`select`]: byte 0 = arm count − 1 (mod 8), then one little-endian `u16` weight per
//!   arm, then 8 bytes of ticket.
//! - [`rewrite`]: lines `regex`, `template`, `path`, `query`; the rest is a JSON body.
//!   A valid JSON object input is also parsed as a whole rewrite object.
//! - [`admin_token`]: lines `query`, `X-API-KEY` value, `Cookie` value, remote IP,
//!   comma-separated allow-list.
//! - [`gateway_yaml`] / [`standalone`]: the document text.
//! - [`json_scan`]: a JSON request or `usage` object, as bytes.
//! - [`h1_request`]: what a client sends: a request head, then body bytes.
//! - [`h1_response`]: byte 0 bit 0 set answers a HEAD request; then what an upstream
//!   sends: interim and final response heads, then body bytes.

pub mod mutate;

use std::net::{IpAddr, Ipv4Addr};

use bytes::BytesMut;
use serde_json::{json, Value};

use crate::admin_auth::{extract_token, validate_keys, AdminAuth, AdminKey, AuthDecision, Role};
use crate::config::gateway::GatewayConfig;
use crate::config::proxy_rewrite::{parse_arm_rewrite, parse_proxy_rewrite};
use crate::config::standalone::{self, Format};
use crate::config::upstream::Upstream;
use crate::config::ResourceKind;
use crate::expr::Expr;
use crate::request::{Request, VarError};
use crate::rewrite::{HeaderEdits, RegexUri, Rewrite};
use crate::select::{Rendezvous, Schedule, SeededRandom};
use crate::snapshot::validate_object;
use crate::wire::request::{self, Framing, Head};
use crate::wire::response::{self, BodyFraming, Parsed, ResponseHead};
use crate::wire::{chunked, response_body};

/// Longest window [`select`] checks exactly (bounds the per-input work).
const MAX_CHECKED_PERIOD: u64 = 4096;

/// Route/upstream/... JSON → validation as every kind: never panics, and the verdict
/// is the same after a serialise → parse round trip of the input. An accepted upstream
/// parses back to itself from `Upstream::to_json`.
pub fn config_json(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(text) = serde_json::to_string(&value) else {
        return;
    };
    let again: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("serde_json re-parse of its own output failed: {e}"),
    };
    // An accepted upstream survives its own serialiser.
    if let Ok(up) = Upstream::from_json(&value) {
        match Upstream::from_json(&up.to_json()) {
            Ok(back) => assert_eq!(back, up, "upstream changed across to_json"),
            Err(e) => panic!("to_json of an accepted upstream is refused: {e}"),
        }
    }
    for kind in ResourceKind::ALL {
        let first = validate_object(kind, "1", &value);
        let second = validate_object(kind, "1", &again);
        // Same verdict at the same field. Messages may quote a float, and serde_json's
        // default float parsing does not always read its own output back bit-exactly.
        assert_eq!(
            first.as_ref().map_err(|e| &e.path),
            second.as_ref().map_err(|e| &e.path),
            "{kind:?}: validation is not deterministic ({first:?} vs {second:?})"
        );
        if let Err(e) = first {
            assert!(
                !e.message.is_empty(),
                "{kind:?}: empty error message at {:?}",
                e.path
            );
        }
    }
}

/// A parsed fuzz request (owned parts the borrowed [`Request`] points into).
struct FuzzRequest {
    method: http::Method,
    path: String,
    query: Option<String>,
    host: Option<String>,
    headers: http::HeaderMap,
    remote: IpAddr,
    body: Vec<u8>,
}

impl FuzzRequest {
    fn parse(text: &str) -> FuzzRequest {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let mut req = FuzzRequest {
            method: http::Method::GET,
            path: "/".to_owned(),
            query: None,
            host: None,
            headers: http::HeaderMap::new(),
            remote: IpAddr::V4(Ipv4Addr::LOCALHOST),
            body: body.as_bytes().to_vec(),
        };
        if let Some(line) = lines.next() {
            let (method, target) = line.split_once(' ').unwrap_or((line, "/"));
            if let Ok(m) = http::Method::from_bytes(method.as_bytes()) {
                req.method = m;
            }
            let (path, query) = match target.split_once('?') {
                Some((p, q)) => (p, Some(q.to_owned())),
                None => (target, None),
            };
            req.path = if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            };
            req.query = query;
        }
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("x-fuzz-remote") {
                if let Ok(ip) = value.parse() {
                    req.remote = crate::request::normalize_ip(ip);
                }
                continue;
            }
            if name.eq_ignore_ascii_case("host") {
                req.host = Some(value.to_owned());
            }
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(name.trim().as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                req.headers.append(n, v);
            }
        }
        req
    }

    fn view(&self, with_body: bool) -> Request<'_> {
        Request {
            method: &self.method,
            host: self.host.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            remote_addr: self.remote,
            remote_port: 40000,
            body: with_body.then_some(self.body.as_slice()),
            consumer: None,
            route_id: Some("1"),
        }
    }
}

/// `vars` JSON → compile → eval on a request: never panics; `NeedBody` only when the
/// expression says it needs the body, and never once the body is there; evaluation is
/// deterministic.
pub fn expr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let Ok(value) = serde_json::from_str::<Value>(first) else {
        return;
    };
    let Ok(compiled) = Expr::compile(&value) else {
        return;
    };
    let req = FuzzRequest::parse(rest);
    let without = compiled.eval(&req.view(false));
    if without == Err(VarError::NeedBody) {
        assert!(
            compiled.needs_body(),
            "NeedBody from an expression that claims not to read the body"
        );
    }
    let with = compiled.eval(&req.view(true));
    assert!(with.is_ok(), "NeedBody although the body was given");
    assert_eq!(
        with,
        compiled.eval(&req.view(true)),
        "evaluation is not deterministic"
    );
    if !compiled.needs_body() {
        assert_eq!(
            without, with,
            "a body-free expression changed its verdict with a body"
        );
    }
}

/// Weights + ticket → roundrobin schedule: the arm is in range; a zero-weight arm is
/// never picked unless all weights are zero; one window of `period()` tickets from the
/// fuzzed ticket holds exactly `w_i / gcd(w)` picks of each arm. The seeded random and
/// chash selectors are checked for range, zero weights and determinism.
pub fn select(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let arms = usize::from(n % 8) + 1;
    if rest.len() < arms * 2 {
        return;
    }
    let weights: Vec<u32> = rest[..arms * 2]
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    let mut ticket_bytes = [0u8; 8];
    for (dst, src) in ticket_bytes.iter_mut().zip(&rest[arms * 2..]) {
        *dst = *src;
    }
    let ticket = u64::from_le_bytes(ticket_bytes);

    let schedule = Schedule::new(&weights);
    let all_zero = weights.iter().all(|w| *w == 0);
    let effective: Vec<u64> = weights
        .iter()
        .map(|w| if all_zero { 1 } else { u64::from(*w) })
        .collect();
    let g = effective.iter().copied().fold(0, gcd);
    let period: u64 = effective.iter().map(|w| w / g).sum();
    assert_eq!(schedule.period(), period, "period for weights {weights:?}");

    let check = |t: u64| -> usize {
        let arm = match schedule.arm_at(t) {
            Some(a) => a,
            None => panic!("no arm for ticket {t} with weights {weights:?}"),
        };
        assert!(arm < arms, "arm {arm} out of range for {weights:?}");
        assert!(
            effective[arm] > 0,
            "zero-weight arm {arm} picked for {weights:?}"
        );
        arm
    };
    check(ticket);
    check(u64::MAX);

    // The other selectors obey the same range and zero-weight rules, deterministically.
    let random = SeededRandom::new(&weights, ticket.rotate_left(17));
    let sticky = Rendezvous::new(&(0..arms as u64).collect::<Vec<_>>(), &weights);
    for t in [ticket, ticket.wrapping_add(1), 0, u64::MAX] {
        for arm in [random.arm_at(t), sticky.arm_for(&t.to_le_bytes())] {
            let Some(arm) = arm else {
                panic!("no arm for ticket {t} with weights {weights:?}");
            };
            assert!(arm < arms, "arm {arm} out of range for {weights:?}");
            assert!(
                effective[arm] > 0,
                "zero-weight arm {arm} picked for {weights:?}"
            );
        }
        assert_eq!(
            random.arm_at(t),
            random.arm_at(t),
            "random is not reproducible"
        );
        assert_eq!(
            sticky.arm_for(&t.to_le_bytes()),
            sticky.arm_for(&t.to_le_bytes()),
            "chash is not sticky"
        );
    }
    if period <= MAX_CHECKED_PERIOD {
        let start = ticket.min(u64::MAX - period);
        let mut counts = vec![0u64; arms];
        for t in start..start + period {
            counts[check(t)] += 1;
        }
        let expected: Vec<u64> = effective.iter().map(|w| w / g).collect();
        assert_eq!(counts, expected, "window from {start} for {weights:?}");
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// regex_uri / uri / headers / body rewrites: parsing never panics; a rewritten target
/// starts with `/` and is a valid HTTP path-and-query for **any** template (the regex
/// rewrite is also built directly, bypassing the config parser's template checks); a
/// body rewrite keeps untouched fields.
pub fn rewrite(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        let _ = parse_proxy_rewrite(&v);
        if let Ok(r) = parse_arm_rewrite(&v) {
            check_rewrite(&r, "/fuzz/path", Some("a=1"));
            let mut headers = http::HeaderMap::new();
            headers.insert("x-client", http::HeaderValue::from_static("1"));
            r.apply_headers(&mut headers);
            for name in &r.headers.remove {
                assert!(
                    headers.get(name).is_none(),
                    "removed header {name} still present"
                );
            }
        }
    }
    let mut lines = text.splitn(5, '\n');
    let regex = lines.next().unwrap_or("");
    let template = lines.next().unwrap_or("");
    let path = lines.next().unwrap_or("/");
    let query = lines.next();
    let body = lines.next().unwrap_or("");
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };

    if let Ok(r) = parse_arm_rewrite(&json!({ "uri": template })) {
        check_rewrite(&r, &path, query);
    }
    // Built directly (one regex compile per input, size-limited to bound the work): the
    // config parser's regex_uri path is reached through the JSON input above.
    if let Ok(re) = regex::RegexBuilder::new(regex).size_limit(1 << 20).build() {
        let direct = Rewrite {
            uri: None,
            regex_uri: Some(RegexUri {
                regex: re,
                template: template.to_owned(),
            }),
            host: None,
            headers: HeaderEdits::default(),
            body: None,
        };
        check_rewrite(&direct, &path, query);
    }
    let mut fields = serde_json::Map::new();
    fields.insert("model".to_owned(), json!(regex));
    fields.insert("drop".to_owned(), Value::Null);
    let body_rewrite = Rewrite {
        uri: None,
        regex_uri: None,
        host: None,
        headers: HeaderEdits::default(),
        body: Some(fields),
    };
    if let Ok(Some(out)) = body_rewrite.apply_body(body.as_bytes()) {
        let before: serde_json::Map<String, Value> = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => panic!("apply_body accepted a body that is not an object: {e}"),
        };
        let after: serde_json::Map<String, Value> = match serde_json::from_slice(&out) {
            Ok(m) => m,
            Err(e) => panic!("apply_body produced invalid JSON: {e}"),
        };
        assert_eq!(after.get("model"), Some(&json!(regex)));
        assert!(!after.contains_key("drop"));
        for (k, v) in &before {
            if k != "model" && k != "drop" {
                assert_eq!(after.get(k), Some(v), "untouched field {k:?} changed");
            }
        }
    }
}

fn check_rewrite(r: &Rewrite, path: &str, query: Option<&str>) {
    // A query taken from the fuzz input may hold bytes a real (parsed) request could
    // not; the invariant is about what the rewrite itself produces.
    let query = query.filter(|q| {
        !q.contains('#') && format!("/?{q}").parse::<http::uri::PathAndQuery>().is_ok()
    });
    if let Some(out) = r.apply_uri(path, query) {
        assert!(
            out.starts_with('/'),
            "rewritten target {out:?} does not start with /"
        );
        assert!(
            out.parse::<http::uri::PathAndQuery>().is_ok(),
            "rewritten target {out:?} is not a valid path-and-query"
        );
    }
}

/// Token extraction + allow-list + key check: never panics, and the decision equals a
/// plain (non-constant-time) reference implementation in which the last matching key
/// decides.
pub fn admin_token(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let query = lines.next().filter(|q| !q.is_empty());
    let header = lines.next().unwrap_or("");
    let cookie = lines.next().unwrap_or("");
    let remote: IpAddr = lines
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let allow: Vec<ipnet::IpNet> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();

    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(header) {
        if !header.is_empty() {
            headers.insert("x-api-key", v);
        }
    }
    if let Ok(v) = http::HeaderValue::from_str(cookie) {
        headers.insert(http::header::COOKIE, v);
    }
    let token = extract_token(query, &headers);

    let keys = vec![
        AdminKey {
            name: "admin".into(),
            key: "edd1c9f034335f136f87ad84b625c8f1edd1c9f0".into(),
            role: Role::Admin,
        },
        AdminKey {
            name: "viewer".into(),
            key: "viewer-key".into(),
            role: Role::Viewer,
        },
        AdminKey {
            name: "fuzzed".into(),
            key: header.to_owned(),
            role: if header.len().is_multiple_of(2) {
                Role::Admin
            } else {
                Role::Viewer
            },
        },
    ];
    let auth = AdminAuth {
        keys,
        required: true,
        allow: allow.clone(),
    };
    for method in [http::Method::GET, http::Method::PUT] {
        let got = auth.check(remote, token.as_deref(), &method);
        let normalized = crate::request::normalize_ip(remote);
        let allowed = allow.is_empty()
            || allow
                .iter()
                .any(|n| n.contains(&normalized) || n.contains(&remote));
        let expected = if !allowed {
            AuthDecision::Forbidden
        } else {
            match token.as_deref() {
                None => AuthDecision::Unauthorized("missing apikey"),
                Some(t) => match auth.keys.iter().rev().find(|k| k.key == t) {
                    None => AuthDecision::Unauthorized("wrong apikey"),
                    Some(k) if k.role == Role::Viewer && method != http::Method::GET => {
                        AuthDecision::Unauthorized("invalid method for role viewer")
                    }
                    Some(k) => AuthDecision::Allowed(Some(k.role)),
                },
            }
        };
        // Keys the policy would refuse (empty, duplicate) still compare exactly; with
        // duplicates the last matching key decides the role.
        assert_eq!(
            got, expected,
            "remote {remote}, token {token:?}, method {method}"
        );
    }
}

/// `config.yaml` text → settings: never panics; accepted keys satisfy the key policy.
pub fn gateway_yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let env = |name: &str| name.starts_with("SET").then(|| format!("value-of-{name}"));
    if let Ok(cfg) = GatewayConfig::from_yaml(&text, &env) {
        assert!(
            validate_keys(&cfg.admin_keys).is_ok(),
            "accepted keys break the key policy"
        );
        let auth = cfg.admin_auth();
        assert!(!auth.allow.is_empty() || cfg.allow_admin == Some(Vec::new()));
    }
}

/// Standalone YAML/JSON text → set: never panics; an accepted set renders to YAML that
/// parses back to the same set.
pub fn standalone(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for format in [Format::Yaml, Format::Json] {
        if let Ok(set) = standalone::parse(&text, format) {
            let rendered = standalone::render_yaml(&set);
            match standalone::parse(&rendered, Format::Yaml) {
                Ok(back) => assert_eq!(back, set, "round trip changed the set:\n{rendered}"),
                Err(e) => panic!("rendered document does not parse: {e}\n{rendered}"),
            }
        }
    }
}

/// JSON bytes → the allocation-free `model` / `usage` reads: whenever the scanner
/// answers, serde_json (which answers when it cannot) reads the same thing.
pub fn json_scan(data: &[u8]) {
    if let Ok(model) = crate::json_scan::top_level_string(data, "model") {
        assert_eq!(
            model.map(str::to_owned),
            crate::llm::model::model_of_serde(data),
            "scanner and serde_json disagree on the model"
        );
    }
    if let Ok(fast) = crate::llm::usage::usage_object_scanned(data) {
        assert_eq!(
            Some(fast),
            crate::llm::usage::usage_object_serde(data),
            "scanner and serde_json disagree on the usage counts"
        );
    }
}

/// Client bytes → request head, then a chunked body when the head announces one:
/// - a prefix of a complete head is "more bytes needed" (never an error), and the head
///   parses the same with any bytes after it;
/// - a head written back canonically (`name: value` lines) parses to the same head;
/// - the chunked decoder gives the same data and verdict whatever the read sizes, and
///   the upstream response decoder agrees with every body it accepts.
pub fn h1_request(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let parsed = request::parse(&mut buf);
    let used = data.len() - buf.len();
    for cut in cuts(data.len(), used) {
        let mut prefix = BytesMut::from(&data[..cut]);
        let again = request::parse(&mut prefix);
        match (&parsed, again) {
            (Ok(Some(head)), Ok(Some(again))) if cut >= used => {
                same_request(head, &again);
                assert_eq!(prefix.len(), cut - used, "bytes after the head");
            }
            (Ok(_), Ok(None)) if cut < used || used == 0 => {
                assert_eq!(prefix.len(), cut, "a partial head consumed bytes");
            }
            (Ok(_), other) => panic!("prefix of {cut} bytes (head of {used}): {other:?}"),
            // A refused head was refused as soon as its bytes showed why: before, more
            // bytes were needed; after, the same refusal (whatever the read sizes).
            (Err(e), again) => assert!(
                matches!(again, Ok(None)) || again.as_ref().err() == Some(e),
                "prefix of {cut} bytes: {again:?}, the whole: {e:?}"
            ),
        }
    }
    let Ok(Some(head)) = parsed else {
        return;
    };
    let line = format!("{} {} {:?}", head.method, head.uri, head.version);
    let text = written_back(&line, &head.headers);
    match request::parse(&mut BytesMut::from(&text[..])) {
        Ok(Some(again)) => same_request(&head, &again),
        other => panic!("the head written back does not parse: {other:?}"),
    }
    if head.framing == Framing::Chunked {
        request_body(&data[used..]);
    }
}

/// Upstream bytes → response heads (1xx ones skipped), then the body their framing
/// announces:
/// - a prefix of a complete head is "more bytes needed", and the head parses the same
///   with any bytes after it;
/// - a final head written back canonically parses to the same head;
/// - the body decoder gives the same data and verdicts (at its end and at end of file)
///   whatever the read sizes.
pub fn h1_response(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let method = if flags & 1 == 1 {
        http::Method::HEAD
    } else {
        http::Method::GET
    };
    // The client reads heads until a final one; bounded here like the input.
    for _ in 0..8 {
        let mut buf = BytesMut::from(rest);
        let parsed = response::parse_response(&mut buf, &method);
        let used = rest.len() - buf.len();
        for cut in cuts(rest.len(), used) {
            let mut prefix = BytesMut::from(&rest[..cut]);
            let again = response::parse_response(&mut prefix, &method);
            match (&parsed, again) {
                (Ok(Parsed::Final(head)), Ok(Parsed::Final(again))) if cut >= used => {
                    same_response(head, &again);
                    assert_eq!(prefix.len(), cut - used, "bytes after the head");
                }
                (Ok(Parsed::Interim), Ok(Parsed::Interim)) if cut >= used => {
                    assert_eq!(prefix.len(), cut - used, "bytes after the head");
                }
                (Ok(_), Ok(Parsed::Partial)) if cut < used || used == 0 => {
                    assert_eq!(prefix.len(), cut, "a partial head consumed bytes");
                }
                (Ok(_), other) => panic!("prefix of {cut} bytes (head of {used}): {other:?}"),
                (Err(e), again) => assert!(
                    matches!(again, Ok(Parsed::Partial)) || again.as_ref().err() == Some(e),
                    "prefix of {cut} bytes: {again:?}, the whole: {e:?}"
                ),
            }
        }
        match parsed {
            Ok(Parsed::Interim) => rest = &rest[used..],
            Ok(Parsed::Final(head)) => {
                response_written_back(&head, &method);
                response_body_in_pieces(head.framing, &rest[used..]);
                return;
            }
            Ok(Parsed::Partial) | Err(_) => return,
        }
    }
}

/// Where [`h1_request`] and [`h1_response`] cut their input: around the head's end
/// (`used` bytes) and at a few fixed fractions.
fn cuts(len: usize, used: usize) -> impl Iterator<Item = usize> {
    let points = [
        0,
        1,
        len / 3,
        len / 2,
        len.saturating_sub(1),
        used.saturating_sub(1),
        used,
        used + 1,
    ];
    points.into_iter().filter(move |&cut| cut <= len)
}

fn same_request(a: &Head, b: &Head) {
    assert_eq!(
        (&a.method, &a.uri, a.version, &a.headers),
        (&b.method, &b.uri, b.version, &b.headers),
        "request heads differ"
    );
    assert_eq!(
        (a.framing, a.keep_alive, a.expect_continue),
        (b.framing, b.keep_alive, b.expect_continue),
        "request framing differs"
    );
}

fn same_response(a: &ResponseHead, b: &ResponseHead) {
    assert_eq!(
        (a.parts.status, a.parts.version, &a.parts.headers),
        (b.parts.status, b.parts.version, &b.parts.headers),
        "response heads differ"
    );
    assert_eq!(
        (a.framing, a.keep_alive),
        (b.framing, b.keep_alive),
        "response framing differs"
    );
}

/// A head as text: its first `line`, then `headers` as canonical `name: value` lines.
fn written_back(line: &str, headers: &http::HeaderMap) -> Vec<u8> {
    let mut text = format!("{line}\r\n").into_bytes();
    for (name, value) in headers {
        text.extend_from_slice(name.as_str().as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value.as_bytes());
        text.extend_from_slice(b"\r\n");
    }
    text.extend_from_slice(b"\r\n");
    text
}

/// `head` written back as text parses (for the same `method`) to the same head.
fn response_written_back(head: &ResponseHead, method: &http::Method) {
    let line = format!("{:?} {} X", head.parts.version, head.parts.status.as_u16());
    let text = written_back(&line, &head.parts.headers);
    match response::parse_response(&mut BytesMut::from(&text[..]), method) {
        Ok(Parsed::Final(again)) => same_response(head, &again),
        other => panic!("the head written back does not parse: {other:?}"),
    }
}

/// Read sizes [`request_body`] and [`response_body_in_pieces`] cycle through.
const PIECES: [usize; 5] = [1, 3, 7, 16, 61];

/// `bytes` cut into [`PIECES`]-sized reads after an empty one (all of it at once when
/// `whole`).
fn reads(bytes: &[u8], whole: bool) -> Vec<&[u8]> {
    if whole {
        return vec![bytes];
    }
    let mut out = vec![&bytes[..0]];
    let mut at = 0;
    for size in PIECES.iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size).min(bytes.len());
        out.push(&bytes[at..end]);
        at = end;
    }
    out
}

/// The data, whether the body ended, and the error (as text) of a chunked request body
/// read in `reads`.
fn decode_request_body(reads: &[&[u8]]) -> (Vec<u8>, bool, Option<String>) {
    let mut decoder = chunked::Decoder::new();
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    for read in reads {
        buf.extend_from_slice(read);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(data)) => {
                    assert!(!data.is_empty(), "an empty data piece");
                    out.extend_from_slice(&data);
                }
                Ok(None) => break,
                Err(e) => return (out, decoder.is_done(), Some(e.to_string())),
            }
        }
        if decoder.is_done() {
            break;
        }
    }
    (out, decoder.is_done(), None)
}

/// A chunked request body decodes the same whatever the read sizes; when it ends, the
/// upstream response decoder (which also takes bare LF line ends) reads the same data.
fn request_body(body: &[u8]) {
    let whole = decode_request_body(&reads(body, true));
    let pieces = decode_request_body(&reads(body, false));
    assert_eq!(
        whole, pieces,
        "a chunked body decodes differently in pieces"
    );
    if let (data, true, None) = whole {
        let (upstream, ended, _) = decode_response_body(BodyFraming::Chunked, &reads(body, true));
        assert_eq!(
            (upstream, ended),
            (data, Some(true)),
            "the response decoder reads an accepted chunked body differently"
        );
    }
}

/// A response body read: its data, the verdict at the end of the input (`Some(true)`
/// ended, `Some(false)` more needed, `None` an error) and the verdict at end of file.
type ResponseBody = (
    Vec<u8>,
    Option<bool>,
    Result<(), response_body::DecodeError>,
);

/// [`ResponseBody`] of a body with `framing` read in `reads`.
fn decode_response_body(framing: BodyFraming, reads: &[&[u8]]) -> ResponseBody {
    let mut decoder = response_body::Decoder::new(framing);
    let (mut buf, mut out) = (BytesMut::new(), Vec::new());
    let mut ended = Some(false);
    'reads: for read in reads {
        buf.extend_from_slice(read);
        loop {
            match decoder.decode(&mut buf) {
                Ok(response_body::Step::Data(data)) => {
                    assert!(!data.is_empty(), "an empty data piece");
                    out.extend_from_slice(&data);
                }
                Ok(response_body::Step::NeedMore) => break,
                Ok(response_body::Step::End) => {
                    ended = Some(true);
                    break 'reads;
                }
                Err(_) => {
                    ended = None;
                    break 'reads;
                }
            }
        }
    }
    let eof = if ended.is_some() {
        decoder.eof()
    } else {
        Ok(())
    };
    (out, ended, eof)
}

/// A response body decodes the same whatever the read sizes, and never yields more
/// than a `Content-Length` announces.
fn response_body_in_pieces(framing: BodyFraming, body: &[u8]) {
    let whole = decode_response_body(framing, &reads(body, true));
    let pieces = decode_response_body(framing, &reads(body, false));
    assert_eq!(
        whole, pieces,
        "a response body decodes differently in pieces"
    );
    match framing {
        BodyFraming::Empty => assert_eq!(whole.1, Some(true), "an empty body did not end"),
        BodyFraming::Length(n) => {
            let expect = usize::try_from(n).map_or(body.len(), |n| n.min(body.len()));
            assert_eq!(whole.0, &body[..expect], "a Content-Length body's bytes");
        }
        BodyFraming::Close => assert_eq!(whole.0, body, "a close-delimited body's bytes"),
        BodyFraming::Chunked => {}
    }
}
