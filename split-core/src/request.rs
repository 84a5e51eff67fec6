//! The view of one client request that the core decides on.
//!
//! The proxy builds a [`Request`] from hyper's parsed request without copying bodies or
//! headers; the simulator builds one from its traffic model. Variable lookup follows
//! APISIX's `ctx.var` names (`arg_*`, `http_*`, `cookie_*`, `post_arg_*`, `post_arg.<path>`,
//! `uri`, `host`, `remote_addr`, `request_method`, `consumer_name`, `route_id`, ...).

use std::borrow::Cow;
use std::net::IpAddr;

/// One request as seen by the decision core. All fields borrow from the caller.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a http::Method,
    /// Host the client asked for (Host header or :authority), without port, as received.
    pub host: Option<&'a str>,
    /// Decoded, normalised path without query (APISIX `$uri`).
    pub path: &'a str,
    /// Raw query string without `?`, if any.
    pub query: Option<&'a str>,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
    /// Client address, already normalised (IPv4-mapped IPv6 → IPv4).
    pub remote_addr: IpAddr,
    /// Client port.
    pub remote_port: u16,
    /// The request body, when the proxy has read it (only after the core asked for it).
    pub body: Option<&'a [u8]>,
    /// Authenticated consumer name (set by key-auth), if any.
    pub consumer: Option<&'a str>,
    /// Matched route id, once a route matched (for `route_id` in traffic-split `vars`).
    pub route_id: Option<&'a str>,
}

/// Why a variable could not be evaluated yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarError {
    /// The variable reads the request body (`post_arg_*`, `post_arg.*`) and
    /// [`Request::body`] is `None`: the caller must read the body and ask again.
    NeedBody,
}

impl<'a> Request<'a> {
    /// Looks up an APISIX variable. `Ok(None)` means the variable is absent (APISIX `nil`).
    ///
    /// Lists (repeated query args) yield the first value, as APISIX does.
    pub fn var(&self, name: &str) -> Result<Option<Cow<'a, str>>, VarError> {
        let _ = name;
        todo!("request::Request::var")
    }
}

/// Normalises an address for CIDR checks: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) → IPv4.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}
