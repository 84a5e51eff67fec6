//! Header handling on the proxy path: `Server`, hop-by-hop removal, `X-Forwarded-*`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `Server: split/<version>`, set on every response.
pub const SERVER: &str = concat!("split/", env!("CARGO_PKG_VERSION"));

/// The `Server` header value.
pub fn server_value() -> HeaderValue {
    HeaderValue::from_static(SERVER)
}

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1, plus `Proxy-Connection` and `Keep-Alive`).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers and every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Adds `X-Real-IP`, `X-Forwarded-For` (appended to an existing list),
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (the client's Host).
pub fn add_forwarded(headers: &mut HeaderMap, remote: IpAddr, client_host: Option<&HeaderValue>) {
    let remote_text = remote.to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {remote_text}"),
        _ => remote_text.clone(),
    };
    // An IP address and a visible-ASCII header value joined by ", " are valid header
    // bytes, so these conversions cannot fail; fall back to dropping the header anyway.
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_str(&remote_text) {
        headers.insert("x-real-ip", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(host) = client_host {
        headers.insert("x-forwarded-host", host.clone());
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
    }

    #[test]
    fn server_header_names_the_version() {
        assert!(SERVER.starts_with("split/"));
        assert_eq!(server_value(), SERVER);
    }
}
