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

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1, plus `Proxy-Connection` and
/// `Keep-Alive`). Names, not strings: a `&str` would be parsed again on every removal.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers and every header named in `Connection`. One pass over the
/// map's names tells whether there is anything to remove: most heads carry none of them
/// but `Connection`, and removing an absent name still costs a hash and a probe.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = false;
    let mut connection = false;
    for key in headers.keys() {
        if is_hop_by_hop(key) {
            present = true;
            connection |= key == header::CONNECTION;
        }
    }
    if !present {
        return;
    }
    if connection {
        for name in connection_named(headers) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
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
    let mut out = HeaderMap::with_capacity(client.len() + room);
    let mut connection = false;
    for (name, value) in client {
        if end_to_end(name, &[]) {
            out.append(name.clone(), value.clone());
        } else {
            connection |= name == header::CONNECTION;
        }
    }
    if connection {
        for name in connection_named(client) {
            out.remove(name);
        }
    }
    out
}

/// True when a client's field `name` may go upstream: not hop-by-hop, not `Expect`, not
/// among the names its `Connection` lists (`named`).
fn end_to_end(name: &HeaderName, named: &[HeaderName]) -> bool {
    !(is_hop_by_hop(name) || name == header::EXPECT || named.contains(name))
}

/// True when `name` is in [`HOP_BY_HOP`]. Its text is matched (by length first): comparing
/// with each name of the array builds and drops the array of names on every call.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
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

/// Appends one head line, `name: value\r\n` (the name as the map holds it, lower case).
pub fn write_field(buf: &mut bytes::BytesMut, name: &HeaderName, value: &HeaderValue) {
    buf.extend_from_slice(name.as_str().as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value.as_bytes());
    buf.extend_from_slice(b"\r\n");
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

    /// Appends the fields as head lines ([`write_field`]).
    pub fn write(&self, buf: &mut bytes::BytesMut) {
        for (name, value) in self.fields() {
            write_field(buf, name, value);
        }
    }

    /// Sets the fields in `headers` (for a head built from its map, as h2's is).
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in self.fields() {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// The client's fields as they go upstream beside [`Forwarded`]: what [`for_upstream`]
/// keeps, less the client's own forwarded headers (its `X-Forwarded-Host` stays when it
/// sent no Host, as [`add_forwarded`] leaves it). Read from the client's map as the head
/// is written, so a request no edit applies to needs no map of its own (two allocations
/// and a hash per field).
#[derive(Debug)]
pub struct ClientFields<'a> {
    client: &'a HeaderMap,
    /// The names `Connection` lists (they stay out).
    named: Vec<HeaderName>,
    /// The client's `X-Forwarded-Host` goes upstream: it sent no Host to set one from.
    keep_forwarded_host: bool,
}

impl<'a> ClientFields<'a> {
    /// The fields of `client` that go upstream, and the forwarded values of a request
    /// from `remote` (the client's `X-Forwarded-For` and `Host` are read on the way).
    pub fn new(client: &'a HeaderMap, remote: IpAddr) -> (ClientFields<'a>, Forwarded) {
        let mut xff = None;
        let mut host = None;
        let mut connection = false;
        for (name, value) in client {
            if name == header::HOST {
                host.get_or_insert(value);
            } else if name == header::CONNECTION {
                connection = true;
            } else if name == X_FORWARDED_FOR {
                xff.get_or_insert(value);
            }
        }
        let named = if connection {
            connection_named(client)
        } else {
            Vec::new()
        };
        if named.contains(&X_FORWARDED_FOR) {
            xff = None;
        }
        let fields = ClientFields {
            client,
            keep_forwarded_host: host.is_none() && !named.contains(&X_FORWARDED_HOST),
            named,
        };
        let ip = ip_value(remote);
        let forwarded = Forwarded {
            xff: forwarded_for(xff, remote, &ip),
            real_ip: ip,
            host: host.cloned(),
        };
        (fields, forwarded)
    }

    /// True when the client's field `name` goes upstream.
    fn keeps(&self, name: &HeaderName) -> bool {
        if is_forwarded(name) {
            return self.keep_forwarded_host && name == X_FORWARDED_HOST;
        }
        end_to_end(name, &self.named)
    }

    /// The fields that go upstream, in the client's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)> + '_ {
        self.client.iter().filter(|(name, _)| self.keeps(name))
    }

    /// The first value of `name` that goes upstream.
    pub fn get(&self, name: &HeaderName) -> Option<&'a HeaderValue> {
        self.client.get(name).filter(|_| self.keeps(name))
    }

    /// The fields in a map of their own, with room for `room` more.
    pub fn to_map(&self, room: usize) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(self.client.len() + room);
        for (name, value) in self.iter() {
            out.append(name.clone(), value.clone());
        }
        out
    }
}

/// The header fields of an upstream request (no Host; the framing headers are replaced
/// where the head is written): the client's, untouched, until an edit asks for a map.
#[derive(Debug)]
pub struct UpstreamHeaders<'a> {
    /// The client's fields while no edit was asked for.
    client: Option<ClientFields<'a>>,
    /// The fields once `client` is `None`.
    map: HeaderMap,
}

impl<'a> UpstreamHeaders<'a> {
    /// Fields in a map of their own.
    pub fn from_map(map: HeaderMap) -> UpstreamHeaders<'a> {
        UpstreamHeaders { client: None, map }
    }

    /// The client's fields, read in place.
    pub fn from_client(fields: ClientFields<'a>) -> UpstreamHeaders<'a> {
        UpstreamHeaders {
            client: Some(fields),
            map: HeaderMap::new(),
        }
    }

    /// Calls `f` with each field, in order.
    pub fn each(&self, mut f: impl FnMut(&HeaderName, &HeaderValue)) {
        match &self.client {
            Some(fields) => fields.iter().for_each(|(n, v)| f(n, v)),
            None => self.map.iter().for_each(|(n, v)| f(n, v)),
        }
    }

    /// How many fields there are at most.
    pub fn len(&self) -> usize {
        self.client
            .as_ref()
            .map_or(self.map.len(), |c| c.client.len())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        match &self.client {
            Some(fields) => fields.get(name),
            None => self.map.get(name),
        }
    }

    /// The fields as a map to edit (the client's are copied into one first).
    pub fn map_mut(&mut self) -> &mut HeaderMap {
        if let Some(fields) = self.client.take() {
            self.map = fields.to_map(FORWARD_ROOM);
        }
        &mut self.map
    }
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

    /// The fields of a written request head, as a map (order kept within a name).
    fn fields_of(head: &[u8]) -> HeaderMap {
        let parsed = split_core::wire::request::parse(&mut bytes::BytesMut::from(head));
        parsed.unwrap().expect("a whole head").headers
    }

    /// A client's header map of `fields`, in order.
    fn map_of(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for &(name, value) in fields {
            map.append(name, HeaderValue::from_static(value));
        }
        map
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
            "content-length",
        ]);
        let values = prop::sample::select(vec![
            "10.0.0.1",
            " ",
            "close, x-forwarded-for",
            "x-real-ip",
            "x-forwarded-host, x-other",
            "a.example",
            "content-length, x-other",
        ]);
        prop::collection::vec((names, values), 0..7)
    }

    proptest::proptest! {
        /// The one-pass path, with its forwarded headers set in the map, gives the head
        /// the map path gives.
        #[test]
        fn forwarded_headers_written_apart_are_the_ones_set_in_the_map(head in heads()) {
            let client = map_of(&head);
            let remote: IpAddr = "192.0.2.1".parse().unwrap();
            let mut by_map = for_upstream(&client, FORWARD_ROOM);
            add_forwarded(&mut by_map, remote, client.get(header::HOST));
            let (fields, forwarded) = ClientFields::new(&client, remote);
            let mut apart = fields.to_map(FORWARD_ROOM);
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

        /// The head written from the client's own map is the head written from a copy
        /// of its fields, and carries the fields the map path sets.
        #[test]
        fn client_fields_in_place_write_the_head_the_map_paths_write(head in heads()) {
            use crate::upstream::h1_head::{encode_request, RequestFraming};
            let client = map_of(&head);
            let remote: IpAddr = "192.0.2.1".parse().unwrap();
            let host = b"up.example";
            let write = |headers: &UpstreamHeaders<'_>, forwarded: Option<&Forwarded>| {
                let mut buf = bytes::BytesMut::new();
                let method = http::Method::GET;
                encode_request(&mut buf, &method, "/", host, headers, forwarded, RequestFraming::None);
                buf
            };
            let (fields, forwarded) = ClientFields::new(&client, remote);
            let copy = UpstreamHeaders::from_map(fields.to_map(FORWARD_ROOM));
            let in_place = UpstreamHeaders::from_client(fields);
            let written = write(&in_place, Some(&forwarded));
            proptest::prop_assert_eq!(&written, &write(&copy, Some(&forwarded)));
            let mut by_map = for_upstream(&client, FORWARD_ROOM);
            add_forwarded(&mut by_map, remote, client.get(header::HOST));
            let by_map = UpstreamHeaders::from_map(by_map);
            proptest::prop_assert_eq!(fields_of(&written), fields_of(&write(&by_map, None)));
            let length = header::CONTENT_LENGTH;
            proptest::prop_assert_eq!(in_place.get(&length), by_map.get(&length));
            proptest::prop_assert_eq!(in_place.get(&length), copy.get(&length));
        }
    }

    #[test]
    fn hop_by_hop_names_are_matched_by_text() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name), "{name}");
            assert!(!end_to_end(name, &[]), "{name}");
        }
        for name in [
            "content-type",
            "host",
            "expect",
            "x-connection",
            "connections",
            "t",
        ] {
            let name = HeaderName::from_static(name);
            assert!(!is_hop_by_hop(&name), "{name}");
        }
        assert!(!end_to_end(&header::EXPECT, &[]));
        assert!(!end_to_end(&header::ACCEPT, &[header::ACCEPT]));
        assert!(end_to_end(&header::ACCEPT, &[header::HOST]));
    }

    #[test]
    fn server_header_names_the_version() {
        assert!(SERVER.starts_with("split/"));
        assert_eq!(server_value(), SERVER);
    }
}
