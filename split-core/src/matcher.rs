//! The route table: APISIX `radixtree_host_uri` semantics.
//!
//! Candidates are ordered: routes with hosts before host-less ones (exact hosts before
//! wildcards, longer wildcard suffixes first); within that, exact paths before prefixes
//! (`*` is a raw string prefix), longest prefix first; for the identical path string,
//! higher `priority` first, then the longer original path. The first candidate passing
//! method, remote_addr, host and `vars` wins. Priority never beats a more specific path.

use crate::expr::Expr;
use crate::request::Request;

/// The matching part of one route.
#[derive(Debug, Clone)]
pub struct MatchSpec {
    /// Exact paths and `*` prefixes.
    pub uris: Vec<String>,
    /// Allowed methods; empty = any.
    pub methods: Vec<http::Method>,
    /// Hosts (lower case, `*.x` wildcards); empty = any.
    pub hosts: Vec<String>,
    /// Client CIDRs; empty = any.
    pub remote_addrs: Vec<ipnet::IpNet>,
    /// `vars` expression.
    pub vars: Option<Expr>,
    /// Priority.
    pub priority: i64,
}

/// Result of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOutcome {
    /// Index (into the specs given to [`RouteTable::build`]) of the winning route.
    Found(usize),
    /// A candidate's `vars` reads the body and the request has none: read it, ask again.
    NeedBody,
    /// No route matched → 404 `{"error_msg":"404 Route Not Found"}`.
    NotFound,
}

/// An immutable route table.
#[derive(Debug, Clone)]
pub struct RouteTable {
    _private: (),
}

impl RouteTable {
    /// Builds the table. Lookups must not scan all routes: use maps for exact paths and a
    /// prefix structure for `*` routes (target: 1,000 routes matched in ≤ 200 ns).
    pub fn build(specs: Vec<MatchSpec>) -> RouteTable {
        let _ = specs;
        todo!("matcher::RouteTable::build")
    }

    /// Finds the route for `req`.
    pub fn find(&self, req: &Request<'_>) -> MatchOutcome {
        let _ = req;
        todo!("matcher::RouteTable::find")
    }

    /// True if any route's `vars` may read the body (so the proxy knows bodies can matter).
    pub fn any_needs_body(&self) -> bool {
        todo!("matcher::RouteTable::any_needs_body")
    }
}
