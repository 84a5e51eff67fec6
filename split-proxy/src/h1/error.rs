//! Split's answer to a request head it refuses: the status, `Server`, a JSON
//! `{"error_msg": …}` body and `Connection: close` (the connection closes after it).

use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, DATE, SERVER};
use http::{HeaderMap, HeaderValue, StatusCode};

use split_core::wire::request::HeadError;

/// Status and message for `error`.
pub fn status_and_message(error: HeadError) -> (StatusCode, String) {
    match error {
        HeadError::Malformed => (
            StatusCode::BAD_REQUEST,
            "400 Bad Request: invalid method, URI, version or header bytes".to_owned(),
        ),
        HeadError::Framing(why) => (StatusCode::BAD_REQUEST, format!("400 Bad Request: {why}")),
        HeadError::UriTooLong => (
            StatusCode::URI_TOO_LONG,
            "414 Request-URI Too Large".to_owned(),
        ),
        HeadError::TooLarge => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "431 Request Header Fields Too Large".to_owned(),
        ),
    }
}

/// The whole answer (head and body) for `error`.
pub fn answer(error: HeadError) -> Vec<u8> {
    let (status, message) = status_and_message(error);
    let body = serde_json::json!({ "error_msg": message }).to_string();
    let mut headers = HeaderMap::with_capacity(5);
    headers.insert(SERVER, crate::headers::server_value());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    headers.insert(DATE, super::date::now());
    let mut out = super::response::encode(status, None, &headers);
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_json_with_server_and_close() {
        for (error, status) in [
            (HeadError::Malformed, "400 Bad Request"),
            (HeadError::Framing("x"), "400 Bad Request"),
            (HeadError::UriTooLong, "414 URI Too Long"),
            (HeadError::TooLarge, "431 Request Header Fields Too Large"),
        ] {
            let raw = String::from_utf8(answer(error)).unwrap();
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(head.contains("\r\nServer: split/"), "{head}");
            assert!(
                head.contains("\r\nContent-Type: application/json\r\n"),
                "{head}"
            );
            assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
            assert!(
                head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
                "{head}"
            );
            assert!(head.contains("\r\nDate: "), "{head}");
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            let msg = json["error_msg"].as_str().unwrap();
            assert!(msg.starts_with(&status[..4]), "{msg}");
        }
    }
}
