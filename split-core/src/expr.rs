//! The lua-resty-expr language of APISIX `vars` (route `vars`, traffic-split `match`).
//!
//! Forms: `[var, op, val]`, `[var, "!", op, val]`, `[var, val]` (`==`); a list of
//! expressions is ANDed unless it starts with `"AND"|"OR"|"!AND"|"!OR"`; lists nest.
//! Operators (case-insensitive): `== ~= > >= < <= ~~ ~* in has ipmatch`.
//! Edge semantics follow APISIX exactly (reference §1.3), e.g. `~=` on a missing var is
//! true, numeric comparisons on a missing var are false.

use crate::request::{Request, VarError};

/// A compiled expression (regexes and CIDRs compiled once, at config time).
#[derive(Debug, Clone)]
pub struct Expr {
    _private: (),
}

impl Expr {
    /// Compiles a `vars` JSON array. Errors read like APISIX's
    /// (`invalid operator '123'`); the caller adds the field path.
    pub fn compile(value: &serde_json::Value) -> Result<Expr, String> {
        let _ = value;
        todo!("expr::Expr::compile")
    }

    /// Evaluates against a request. `Err(NeedBody)` if a body variable is needed and the
    /// request carries no body yet.
    pub fn eval(&self, req: &Request<'_>) -> Result<bool, VarError> {
        let _ = req;
        todo!("expr::Expr::eval")
    }

    /// True if evaluation may read the request body (`post_arg_*`, `post_arg.*`).
    pub fn needs_body(&self) -> bool {
        todo!("expr::Expr::needs_body")
    }
}
