//! Header handling on the proxy path: `Server`, hop-by-hop removal, `X-Forwarded-*`.

use std::cell::RefCell;
use std::net::IpAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `Server: split/<version>`, set on every response.
pub const SERVER: &str = concat!("split/", env!("CARGO_PKG_VERSION"));

/// The `Server` header value.
pub fn server_value() -> HeaderValue {
    HeaderValue::from_static(SERVER)
}

/// `Keep-Alive` (not among `http`'s constants).
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection` (not among `http`'s constants).
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Real-IP`.
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// How many names [`HOP_BY_HOP`] lists.
const HOP_BY_HOP_COUNT: usize = 7;

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1, plus `Proxy-Connection` and
/// `Keep-Alive`). Names, not strings: a `&str` would be parsed again on every removal.
const HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers and every header named in `Connection`. One pass over the
/// map's names finds which are present: most heads carry none of them but `Connection`,
/// and removing an absent name still costs a hash and a probe.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOP_BY_HOP_COUNT];
    let mut connection = false;
    for key in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|name| name == key) {
            present[i] = true;
            connection |= key == header::CONNECTION;
        }
    }
    if connection {
        for name in connection_named(headers) {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
    }
}

/// Header fields the upstream copy of a request has room for beyond the client's
/// (`X-Forwarded-*`, `X-Real-IP`, a rewrite's), so adding them does not rehash it.
pub const FORWARD_ROOM: usize = 8;

/// The client's headers as they go upstream: without hop-by-hop fields, the headers
/// `Connection` names, and `Expect` (split answers `100-continue` itself), with room for
/// `room` more. Built field by field rather than cloned and stripped: a clone keeps no
/// spare room, so adding the forwarded headers to it reallocated, and most heads carry
/// nothing to strip.
pub fn for_upstream(client: &HeaderMap, room: usize) -> HeaderMap {
    copy_for_upstream(client, room, |_, _| true).0
}

/// [`for_upstream`]'s copy, keeping only the fields `keep` accepts (it sees every field
/// that is not hop-by-hop, in order); also returns the names `Connection` lists, which
/// were removed from the copy.
fn copy_for_upstream<'a>(
    client: &'a HeaderMap,
    room: usize,
    mut keep: impl FnMut(&'a HeaderName, &'a HeaderValue) -> bool,
) -> (HeaderMap, Vec<HeaderName>) {
    let mut out = HeaderMap::with_capacity(client.len() + room);
    let mut connection = false;
    for (name, value) in client {
        if HOP_BY_HOP.contains(name) || name == header::EXPECT {
            connection |= name == header::CONNECTION;
            continue;
        }
        if keep(name, value) {
            out.append(name.clone(), value.clone());
        }
    }
    let named = if connection {
        connection_named(client)
    } else {
        Vec::new()
    };
    for name in &named {
        out.remove(name);
    }
    (out, named)
}

/// The headers [`add_forwarded`] sets.
static FORWARDED: [HeaderName; 4] = [
    X_FORWARDED_FOR,
    X_REAL_IP,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
];

/// True when `name` is one of the headers [`add_forwarded`] sets.
pub fn is_forwarded(name: &HeaderName) -> bool {
    // All four start with `x-`; most names do not, and skip the compares.
    name.as_str().starts_with("x-") && FORWARDED.contains(name)
}

/// The forwarded headers of one request, written where the head is serialised instead
/// of inserted into its map: four inserts of custom names (a hash and a probe each) cost
/// more than the rest of the upstream head. [`add_forwarded`]'s values, the same rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// `X-Forwarded-For`: the client's list and the client address.
    xff: HeaderValue,
    /// `X-Real-IP`.
    real_ip: HeaderValue,
    /// `X-Forwarded-Host`: the client's Host.
    host: Option<HeaderValue>,
}

impl Forwarded {
    /// The fields in order, as name and value.
    fn fields(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        static PROTO: HeaderValue = HeaderValue::from_static("http");
        [
            (&FORWARDED[0], Some(&self.xff)),
            (&FORWARDED[1], Some(&self.real_ip)),
            (&FORWARDED[2], Some(&PROTO)),
            (&FORWARDED[3], self.host.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }

    /// How many bytes [`Forwarded::write`] appends.
    pub fn encoded_len(&self) -> usize {
        self.fields()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum()
    }

    /// Appends the fields as head lines (`name: value\r\n`).
    pub fn write(&self, buf: &mut bytes::BytesMut) {
        for (name, value) in self.fields() {
            buf.extend_from_slice(name.as_str().as_bytes());
            buf.extend_from_slice(b": ");
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
    }

    /// Sets the fields in `headers` (for a head built from its map, as h2's is).
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// [`for_upstream`] and [`add_forwarded`] in one pass, for a request whose edits touch
/// none of the forwarded headers: the client's own forwarded headers are left out of the
/// map (the client's `X-Forwarded-For` and `Host` are read on the way; its
/// `X-Forwarded-Host` stays when it sent no Host), and the values come back as
/// [`Forwarded`], to be written with the head.
pub fn for_upstream_forwarded(
    client: &HeaderMap,
    room: usize,
    remote: IpAddr,
) -> (HeaderMap, Forwarded) {
    let mut xff: Option<&HeaderValue> = None;
    let mut host: Option<&HeaderValue> = None;
    let (mut out, named) = copy_for_upstream(client, room, |name, value| {
        if is_forwarded(name) {
            if name == X_FORWARDED_FOR {
                xff.get_or_insert(value);
            }
            return false;
        }
        if name == header::HOST {
            host.get_or_insert(value);
        }
        true
    });
    if named.contains(&X_FORWARDED_FOR) {
        xff = None;
    }
    if host.is_none() && !named.contains(&X_FORWARDED_HOST) {
        // No Host to set `X-Forwarded-Host` from (HTTP/1.0): the client's stays, as
        // [`add_forwarded`] leaves it.
        for value in client.get_all(&X_FORWARDED_HOST) {
            out.append(X_FORWARDED_HOST, value.clone());
        }
    }
    let ip = ip_value(remote);
    let forwarded = Forwarded {
        xff: forwarded_for(xff, remote, &ip),
        real_ip: ip,
        host: host.cloned(),
    };
    (out, forwarded)
}

/// The header names listed in `Connection`.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

thread_local! {
    /// The last client address formatted as a header value on this thread: a client's
    /// connection sends many requests, and formatting an address costs more than the rest
    /// of the forwarded headers together.
    static LAST_IP: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
}

/// `remote` as a header value (cached per thread for the last address seen).
fn ip_value(remote: IpAddr) -> HeaderValue {
    LAST_IP.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((ip, value)) = last.as_ref() {
            if *ip == remote {
                return value.clone();
            }
        }
        // An IP address in text form is visible ASCII, a valid header value.
        let value = HeaderValue::from_maybe_shared(Bytes::from(remote.to_string()))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        *last = Some((remote, value.clone()));
        value
    })
}

/// `X-Forwarded-For`: the client's list (`existing`, unless blank) and `remote`, or
/// `remote` alone (`ip`, already formatted).
fn forwarded_for(existing: Option<&HeaderValue>, remote: IpAddr, ip: &HeaderValue) -> HeaderValue {
    match existing.and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => {
            // A visible-ASCII header value and an IP address joined by ", " are valid
            // header bytes, so this cannot fail; fall back to the address alone anyway.
            HeaderValue::from_str(&format!("{existing}, {remote}")).unwrap_or_else(|_| ip.clone())
        }
        _ => ip.clone(),
    }
}

/// Adds `X-Real-IP`, `X-Forwarded-For` (appended to an existing list),
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (the client's Host).
pub fn add_forwarded(headers: &mut HeaderMap, remote: IpAddr, client_host: Option<&HeaderValue>) {
    let ip = ip_value(remote);
    let xff = forwarded_for(headers.get(&X_FORWARDED_FOR), remote, &ip);
    headers.insert(X_FORWARDED_FOR, xff);
    headers.insert(X_REAL_IP, ip);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = client_host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("proxy-connection", HeaderValue::from_static("close"));
        h.insert("trailer", HeaderValue::from_static("x"));
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "content-type"]);
        assert_eq!(h["authorization"], "Bearer abc");
    }

    #[test]
    fn upstream_requests_also_lose_expect_and_keep_the_rest_in_order() {
        let mut h = HeaderMap::new();
        h.insert("expect", HeaderValue::from_static("100-continue"));
        h.insert("connection", HeaderValue::from_static("close, X-Hop"));
        h.insert("host", HeaderValue::from_static("example.com"));
        h.append("x-kept", HeaderValue::from_static("1"));
        h.insert("x-hop", HeaderValue::from_static("secret"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.append("x-kept", HeaderValue::from_static("2"));
        h.insert("authorization", HeaderValue::from_static("Bearer k"));
        let up = for_upstream(&h, 8);
        let fields: Vec<(&str, &str)> = up
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                ("host", "example.com"),
                ("x-kept", "1"),
                ("x-kept", "2"),
                ("authorization", "Bearer k"),
            ]
        );
        // Room for the forwarded headers without growing.
        assert!(up.capacity() >= up.len() + 8, "{}", up.capacity());

        // Responses keep `Expect` (it means nothing there, and is not split's to drop).
        let mut response = h.clone();
        strip_hop_by_hop(&mut response);
        assert!(response.contains_key("expect"));
        assert!(!response.contains_key("connection"));
        assert!(!response.contains_key("x-hop"));

        // Nothing to strip: the map is left as it was.
        let mut plain = HeaderMap::new();
        plain.insert("content-type", HeaderValue::from_static("application/json"));
        let before = plain.clone();
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain, before);
        assert_eq!(for_upstream(&plain, 0), before);
    }

    #[test]
    fn forwarded_headers_append_to_existing_xff() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let host = HeaderValue::from_static("example.com:9080");
        add_forwarded(&mut h, "192.0.2.7".parse().unwrap(), Some(&host));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com:9080");

        let mut h = HeaderMap::new();
        add_forwarded(&mut h, "::1".parse().unwrap(), None);
        assert_eq!(h["x-forwarded-for"], "::1");
        assert!(h.get("x-forwarded-host").is_none());

        // The per-thread cache must follow address changes.
        for ip in ["10.1.1.1", "10.1.1.2", "10.1.1.2", "10.1.1.1"] {
            let mut h = HeaderMap::new();
            add_forwarded(&mut h, ip.parse().unwrap(), None);
            assert_eq!(h["x-forwarded-for"], ip);
            assert_eq!(h["x-real-ip"], ip);
        }
    }

    /// Heads of a few fields drawn from names that matter here: forwarded, Host,
    /// hop-by-hop, `Connection` naming one of them, and others.
    fn heads() -> impl proptest::strategy::Strategy<Value = Vec<(&'static str, &'static str)>> {
        use proptest::prelude::*;
        let names = prop::sample::select(vec![
            "x-forwarded-for",
            "x-real-ip",
            "x-forwarded-proto",
            "x-forwarded-host",
            "host",
            "x-other",
            "content-type",
            "keep-alive",
            "connection",
            "expect",
        ]);
        let values = prop::sample::select(vec![
            "10.0.0.1",
            " ",
            "close, x-forwarded-for",
            "x-real-ip",
            "x-forwarded-host, x-other",
            "a.example",
        ]);
        prop::collection::vec((names, values), 0..7)
    }

    proptest::proptest! {
        /// The one-pass path, with its forwarded headers set in the map, gives the head
        /// the map path gives.
        #[test]
        fn forwarded_headers_written_apart_are_the_ones_set_in_the_map(head in heads()) {
            let mut client = HeaderMap::new();
            for (name, value) in head {
                client.append(name, HeaderValue::from_static(value));
            }
            let remote: IpAddr = "192.0.2.1".parse().unwrap();
            let mut by_map = for_upstream(&client, FORWARD_ROOM);
            add_forwarded(&mut by_map, remote, client.get(header::HOST));
            let (mut apart, forwarded) = for_upstream_forwarded(&client, FORWARD_ROOM, remote);
            // Only a client's own X-Forwarded-Host may stay, when it sent no Host.
            proptest::prop_assert!(apart
                .keys()
                .all(|k| !is_forwarded(k) || (k == X_FORWARDED_HOST && !client.contains_key(header::HOST))));
            let mut written = bytes::BytesMut::new();
            forwarded.write(&mut written);
            proptest::prop_assert_eq!(written.len(), forwarded.encoded_len());
            forwarded.insert_into(&mut apart);
            proptest::prop_assert_eq!(apart, by_map);
        }
    }

    #[test]
    fn server_header_names_the_version() {
        assert!(SERVER.starts_with("split/"));
        assert_eq!(server_value(), SERVER);
    }
}
