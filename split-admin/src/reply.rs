//! Building Admin API responses: JSON bodies with `Content-Type: application/json` and
//! `X-API-VERSION: v3` on every response.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

/// A response before it becomes bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// JSON body (`None`: empty body, e.g. HEAD).
    pub body: Option<Value>,
}

impl Reply {
    /// `status` with a JSON body.
    pub fn json(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
        }
    }

    /// `status` with `{"error_msg": msg}`.
    pub fn error(status: StatusCode, msg: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "error_msg": msg.into() }))
    }

    /// 400 `{"error_msg": msg}`.
    pub fn bad_request(msg: impl Into<String>) -> Reply {
        Reply::error(StatusCode::BAD_REQUEST, msg)
    }

    /// 400 `{"error_msg": "invalid configuration: <detail>"}`.
    pub fn invalid(detail: impl std::fmt::Display) -> Reply {
        Reply::bad_request(format!("invalid configuration: {detail}"))
    }

    /// 404 `{"message":"Key not found"}` (APISIX's body for a missing object).
    pub fn key_not_found() -> Reply {
        Reply::json(StatusCode::NOT_FOUND, json!({"message": "Key not found"}))
    }

    /// 404 `{"error_msg":"not found"}`.
    pub fn not_found() -> Reply {
        Reply::error(StatusCode::NOT_FOUND, "not found")
    }

    /// 503 for a store failure (the detail is logged, not sent).
    pub fn unavailable(msg: impl Into<String>) -> Reply {
        Reply::error(StatusCode::SERVICE_UNAVAILABLE, msg)
    }

    /// An empty-bodied response.
    pub fn empty(status: StatusCode) -> Reply {
        Reply { status, body: None }
    }

    /// The hyper response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = match &self.body {
            Some(v) => Bytes::from(v.to_string()),
            None => Bytes::new(),
        };
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("X-API-VERSION", HeaderValue::from_static("v3"));
        resp
    }
}
