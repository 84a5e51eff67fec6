//! Variable names parsed once, at config time, so evaluation does no string work on the
//! name (header names are validated and lower-cased up front).

/// A parsed APISIX variable name; see [`super::Request::value`] for the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarName {
    name: String,
    pub(super) kind: VarKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum VarKind {
    Arg(String),
    /// `None`: not a valid header name, the variable is always absent.
    Header(Option<http::HeaderName>),
    Cookie(String),
    PostArg(String),
    PostPath(String),
    Uri,
    RequestUri,
    QueryString,
    Host,
    RemoteAddr,
    RemotePort,
    Method,
    Consumer,
    RouteId,
    Unknown,
}

impl VarName {
    /// Parses `name` (`arg_x`, `http_x_y`, `post_arg.model`, `uri`, ...).
    pub fn parse(name: &str) -> VarName {
        let kind = if let Some(n) = name.strip_prefix("arg_") {
            VarKind::Arg(n.to_owned())
        } else if let Some(n) = name.strip_prefix("http_") {
            let header = n.to_ascii_lowercase().replace('_', "-");
            VarKind::Header(http::HeaderName::from_bytes(header.as_bytes()).ok())
        } else if let Some(n) = name.strip_prefix("cookie_") {
            VarKind::Cookie(n.to_owned())
        } else if let Some(n) = name.strip_prefix("post_arg_") {
            VarKind::PostArg(n.to_owned())
        } else if let Some(p) = name.strip_prefix("post_arg.") {
            VarKind::PostPath(p.to_owned())
        } else {
            match name {
                "uri" => VarKind::Uri,
                "request_uri" => VarKind::RequestUri,
                "query_string" | "args" => VarKind::QueryString,
                "host" => VarKind::Host,
                "remote_addr" => VarKind::RemoteAddr,
                "remote_port" => VarKind::RemotePort,
                "request_method" => VarKind::Method,
                "consumer_name" => VarKind::Consumer,
                "route_id" => VarKind::RouteId,
                _ => VarKind::Unknown,
            }
        };
        VarName {
            name: name.to_owned(),
            kind,
        }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// True if the variable reads the request body.
    pub fn needs_body(&self) -> bool {
        matches!(self.kind, VarKind::PostArg(_) | VarKind::PostPath(_))
    }
}
