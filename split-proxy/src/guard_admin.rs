//! The operator's view of the canary guardrail, on the Admin API listener:
//!
//! - `GET /apisix/admin/routes/{id}/guard` → `{"route_id", "tripped": [{rule, arm,
//!   arm_index, reason, since}]}` (`since` in Unix seconds).
//! - `DELETE /apisix/admin/routes/{id}/guard` → `{"route_id", "cleared": [...]}`: the
//!   arms get their configured weights back and start a fresh window.
//!
//! Same admin auth as the rest of the Admin API (`allow_admin`, then the key; a viewer
//! may only GET).

use std::net::IpAddr;
use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use split_core::admin_auth::{extract_token, AdminAuth, AuthDecision};

use crate::body::ProxyBody;
use crate::guard::Trip;
use crate::llm_state::LlmState;
use crate::reply;

const PREFIX: &str = "/apisix/admin/routes/";
const SUFFIX: &str = "/guard";

/// The route id of a guard path, if `path` is one.
pub fn route_of(path: &str) -> Option<&str> {
    let id = path.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Answers a guard request for route `id`.
pub fn handle<B>(
    req: &Request<B>,
    remote: IpAddr,
    auth: &AdminAuth,
    id: &str,
    llm: &LlmState,
) -> Response<ProxyBody> {
    let token = extract_token(req.uri().query(), req.headers());
    match auth.check(remote, token.as_deref(), req.method()) {
        AuthDecision::Allowed(_) => {}
        AuthDecision::Forbidden => return reply::error(StatusCode::FORBIDDEN, "403 Forbidden"),
        AuthDecision::Unauthorized(description) => {
            return reply::json(
                StatusCode::UNAUTHORIZED,
                json!({"error_msg": "failed to check token", "description": description})
                    .to_string(),
            )
        }
    }
    match *req.method() {
        Method::GET => {
            let tripped = llm.guard.trips_of(id);
            reply::json(
                StatusCode::OK,
                json!({"route_id": id, "tripped": trips_json(&tripped)}).to_string(),
            )
        }
        Method::DELETE => {
            let cleared = llm.guard.clear(id, &llm.metrics.llm);
            for trip in &cleared {
                tracing::warn!(
                    route = %trip.route, rule = trip.rule, arm = %trip.label,
                    "canary guardrail cleared by an operator"
                );
            }
            reply::json(
                StatusCode::OK,
                json!({"route_id": id, "cleared": trips_json(&cleared)}).to_string(),
            )
        }
        _ => reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and DELETE are allowed on a route's guard",
        ),
    }
}

fn trips_json(trips: &[Trip]) -> Value {
    trips
        .iter()
        .map(|t| {
            let since = t
                .since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            json!({
                "rule": t.rule,
                "arm": t.label,
                "arm_index": t.arm,
                "reason": t.reason,
                "since": since,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_paths() {
        assert_eq!(route_of("/apisix/admin/routes/r1/guard"), Some("r1"));
        assert_eq!(route_of("/apisix/admin/routes//guard"), None);
        assert_eq!(route_of("/apisix/admin/routes/a/b/guard"), None);
        assert_eq!(route_of("/apisix/admin/routes/r1"), None);
    }
}
