//! Request rewrites: `uri`, `regex_uri`, headers `set/add/remove`, JSON body field
//! overrides (e.g. `model`), and the upstream Host per `pass_host`. Pure functions.

use crate::config::upstream::{PassHost, Upstream};

/// A validated rewrite (per traffic-split arm, or the route's `proxy-rewrite`).
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// Replacement path (may contain a `?query`, which then replaces the client's query).
    pub uri: Option<String>,
    /// Regex rewrite applied to the path when `uri` is not set.
    pub regex_uri: Option<RegexUri>,
    /// Host to send upstream (overrides `pass_host`).
    pub host: Option<String>,
    /// Header edits, applied in APISIX proxy-rewrite order.
    pub headers: HeaderEdits,
    /// Top-level JSON body fields to set (`{"model": "gpt-4o-mini"}`); `null` removes a field.
    pub body: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `regex_uri: [regex, template]` with `$1`-style captures.
#[derive(Debug, Clone)]
pub struct RegexUri {
    /// Compiled pattern.
    pub regex: regex::Regex,
    /// Replacement template (`$1`, `${name}`).
    pub template: String,
}

/// Header edits: `set` replaces, `add` appends, `remove` deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Replace these headers.
    pub set: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Append these headers.
    pub add: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Remove these headers.
    pub remove: Vec<http::HeaderName>,
}

/// Errors while applying a rewrite to a request (not config errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// The body rewrite needs a JSON object body and got something else.
    #[error("request body is not a JSON object: {0}")]
    BodyNotJsonObject(String),
}

impl Rewrite {
    /// The upstream path-and-query for a client `path` and `query`
    /// (`None` = unchanged). Result always starts with `/`.
    pub fn apply_uri(&self, path: &str, query: Option<&str>) -> Option<String> {
        let _ = (path, query);
        todo!("rewrite::Rewrite::apply_uri")
    }

    /// Applies header edits in place.
    pub fn apply_headers(&self, headers: &mut http::HeaderMap) {
        let _ = headers;
        todo!("rewrite::Rewrite::apply_headers")
    }

    /// Applies JSON body overrides; `Ok(None)` when there is no body rewrite.
    pub fn apply_body(&self, body: &[u8]) -> Result<Option<Vec<u8>>, RewriteError> {
        let _ = body;
        todo!("rewrite::Rewrite::apply_body")
    }

    /// True if this rewrite needs the request body in memory.
    pub fn needs_body(&self) -> bool {
        self.body.is_some()
    }
}

/// The Host header to send upstream: `pass` keeps the client's, `node` uses the node's
/// host (with `:port` unless it is the scheme default), `rewrite` uses `upstream_host`.
pub fn upstream_host(
    upstream: &Upstream,
    client_host: Option<&str>,
    node_host: &str,
    node_port: u16,
) -> Option<String> {
    let _ = (upstream, client_host, node_host, node_port, PassHost::Pass);
    todo!("rewrite::upstream_host")
}
