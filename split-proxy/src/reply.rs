//! Responses the gateway writes itself: JSON errors in APISIX form and plain bodies.

use http::header::{HeaderValue, CONTENT_TYPE, SERVER};
use http::{Response, StatusCode};

use crate::body::{full, ProxyBody};
use crate::headers::server_value;

/// `{"error_msg": msg}` with `status`.
pub fn error(status: StatusCode, msg: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error_msg": msg }).to_string();
    json(status, body)
}

/// A JSON body with `status`.
pub fn json(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(SERVER, server_value());
    res
}

/// 404 for a request no route matches.
pub fn route_not_found() -> Response<ProxyBody> {
    error(StatusCode::NOT_FOUND, "404 Route Not Found")
}

/// 503 when the chosen target has no upstream.
pub fn missing_upstream() -> Response<ProxyBody> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "missing upstream configuration in Route or Service",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn not_found_matches_apisix_body() {
        let res = route_not_found();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()[SERVER], crate::headers::SERVER);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"error_msg":"404 Route Not Found"}"#);
    }
}
