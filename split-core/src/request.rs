//! The view of one client request that the core decides on.
//!
//! The proxy builds a [`Request`] from hyper's parsed request without copying bodies or
//! headers; the simulator builds one from its traffic model. Variable lookup follows
//! APISIX's `ctx.var` names (`arg_*`, `http_*`, `cookie_*`, `post_arg_*`, `post_arg.<path>`,
//! `uri`, `host`, `remote_addr`, `request_method`, `consumer_name`, `route_id`, ...).
//!
//! Two views of a variable: [`Request::value`] keeps JSON types of body fields (what
//! lua-resty-expr compares: `5 == "5"` is false in Lua) and [`Request::var`] renders
//! everything as text (what chash keys and logs need).
//!
//! Body variables only need the body when the Content-Type makes them readable
//! (`post_arg_*`: form; `post_arg.*`: JSON or form); otherwise they are absent and the
//! body is never requested. Multipart bodies are not parsed (the variable is absent).

use std::borrow::Cow;
use std::net::IpAddr;

pub(crate) mod args;
mod body;
pub mod jsonpath;
mod var_name;

use var_name::VarKind;
pub use var_name::VarName;

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

/// A variable's value as lua-resty-expr sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue<'a> {
    /// A string (every non-body variable, and JSON strings).
    Str(Cow<'a, str>),
    /// A non-string JSON value from a body: number, boolean, null, array or object
    /// (arrays also carry JSONPath results and repeated form fields; a bare form key or
    /// query key is `true`). Never `Value::String`.
    Json(serde_json::Value),
}

impl<'a> VarValue<'a> {
    /// Wraps a JSON value, turning JSON strings into [`VarValue::Str`].
    pub fn from_json(v: serde_json::Value) -> VarValue<'static> {
        match v {
            serde_json::Value::String(s) => VarValue::Str(Cow::Owned(s)),
            other => VarValue::Json(other),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            VarValue::Str(s) => Some(s),
            VarValue::Json(_) => None,
        }
    }

    /// Text form: strings as they are, other JSON values as compact JSON text
    /// (`42`, `true`, `null`, `["a","b"]`).
    pub fn into_text(self) -> Cow<'a, str> {
        match self {
            VarValue::Str(s) => s,
            VarValue::Json(v) => Cow::Owned(v.to_string()),
        }
    }
}

impl<'a> Request<'a> {
    /// Looks up an APISIX variable. `Ok(None)` means the variable is absent (APISIX `nil`).
    ///
    /// Lists (repeated query args) yield the first value, as APISIX does. Body fields that
    /// are not strings are rendered as JSON text (see [`VarValue::into_text`]).
    pub fn var(&self, name: &str) -> Result<Option<Cow<'a, str>>, VarError> {
        Ok(self.value(name)?.map(VarValue::into_text))
    }

    /// True if `name` reads the request body (`post_arg_*`, `post_arg.*`), so
    /// [`Request::var`] may answer [`VarError::NeedBody`].
    pub fn needs_body_for(name: &str) -> bool {
        name.starts_with("post_arg_") || name.starts_with("post_arg.")
    }

    /// Looks up an APISIX variable keeping body JSON types.
    ///
    /// - `uri`: path; `request_uri`: path and `?query`; `query_string`/`args`: raw query;
    ///   `host`: lower case; `remote_addr`, `remote_port`, `request_method`;
    ///   `consumer_name`, `route_id`.
    /// - `arg_<n>`: first query value, `+` and `%XY` decoded (a bare `?n` is `true`).
    /// - `http_<n>`: header, case-insensitive, `_` = `-`; repeated headers joined with
    ///   `", "` (`"; "` for Cookie), as nginx does. `http_host` falls back to
    ///   [`Request::host`] when there is no Host header (HTTP/2).
    /// - `cookie_<n>`: cookie value, case-sensitive name, raw.
    /// - `post_arg_<n>`: form field (Content-Type starts with
    ///   `application/x-www-form-urlencoded`).
    /// - `post_arg.<path>`: JSON or form body field, see [`jsonpath`] for JSONPath forms.
    /// - Anything else (e.g. `scheme`, `server_port`, which this view does not carry): absent.
    pub fn value(&self, name: &str) -> Result<Option<VarValue<'a>>, VarError> {
        self.value_of(&VarName::parse(name))
    }

    /// [`Request::value`] for a name parsed once with [`VarName::parse`] (the fast path
    /// for compiled expressions).
    pub fn value_of(&self, var: &VarName) -> Result<Option<VarValue<'a>>, VarError> {
        let s: Option<Cow<'a, str>> = match &var.kind {
            VarKind::Arg(n) => return Ok(self.arg(n)),
            VarKind::Header(Some(h)) if *h == http::header::HOST => {
                // HTTP/2 carries the host in `:authority`, not a Host header.
                self.header(h).or(self.host.map(Cow::Borrowed))
            }
            VarKind::Header(h) => h.as_ref().and_then(|h| self.header(h)),
            VarKind::Cookie(n) => self.cookie(n).map(Cow::Borrowed),
            VarKind::PostArg(n) => {
                if !body::is_form(self.content_type().as_deref()) {
                    return Ok(None);
                }
                let body = self.body.ok_or(VarError::NeedBody)?;
                return Ok(body::form_arg(body, n));
            }
            VarKind::PostPath(path) => {
                let kind = body::path_body_kind(self.content_type().as_deref());
                if kind == body::BodyKind::Unsupported {
                    return Ok(None);
                }
                let body = self.body.ok_or(VarError::NeedBody)?;
                return Ok(body::post_arg_path(body, kind, path));
            }
            VarKind::Uri => Some(Cow::Borrowed(self.path)),
            VarKind::RequestUri => Some(match self.query {
                Some(q) => Cow::Owned(format!("{}?{q}", self.path)),
                None => Cow::Borrowed(self.path),
            }),
            VarKind::QueryString => self.query.map(Cow::Borrowed),
            VarKind::Host => self.host.map(lower),
            VarKind::RemoteAddr => Some(Cow::Owned(self.remote_addr.to_string())),
            VarKind::RemotePort => Some(Cow::Owned(self.remote_port.to_string())),
            VarKind::Method => Some(Cow::Borrowed(self.method.as_str())),
            VarKind::Consumer => self.consumer.map(Cow::Borrowed),
            VarKind::RouteId => self.route_id.map(Cow::Borrowed),
            VarKind::Unknown => None,
        };
        Ok(s.map(VarValue::Str))
    }

    fn arg(&self, name: &str) -> Option<VarValue<'a>> {
        let first = args::first_arg(self.query?, name)?;
        Some(match first.value {
            Some(v) => VarValue::Str(args::decode_component(v)),
            None => VarValue::Json(serde_json::Value::Bool(true)),
        })
    }

    fn header(&self, name: &http::HeaderName) -> Option<Cow<'a, str>> {
        let mut values = self.headers.get_all(name).iter();
        let first = String::from_utf8_lossy(values.next()?.as_bytes());
        let sep = if *name == http::header::COOKIE {
            "; "
        } else {
            ", "
        };
        let mut joined: Option<String> = None;
        for v in values {
            let acc = joined.get_or_insert_with(|| first.to_string());
            acc.push_str(sep);
            acc.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        Some(match joined {
            Some(all) => Cow::Owned(all),
            None => first,
        })
    }

    fn cookie(&self, name: &str) -> Option<&'a str> {
        self.headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| args::cookie(h, name))
    }

    fn content_type(&self) -> Option<Cow<'a, str>> {
        let v = self.headers.get(http::header::CONTENT_TYPE)?;
        Some(String::from_utf8_lossy(v.as_bytes()))
    }
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
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
