//! HTTP/1.1 request heads on the upstream side, written into one buffer. Response heads
//! are parsed by `split_core::wire::response`.

use bytes::BytesMut;
use http::header::{HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::Method;

use crate::headers::{write_field, Forwarded, UpstreamHeaders};

/// How a request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body and no framing header (e.g. a GET).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Picks the framing of a request body: `Content-Length` when its size is known (exact
/// size hint, else the request's `Content-Length` value, `content_length`), otherwise chunked. An empty
/// body gets `Content-Length: 0` only when the method usually carries one or the client
/// sent the header.
pub fn request_framing(
    method: &Method,
    content_length: Option<&HeaderValue>,
    end_stream: bool,
    exact: Option<u64>,
) -> RequestFraming {
    let declared = content_length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if end_stream || exact == Some(0) {
        let wants_length =
            declared.is_some() || matches!(*method, Method::POST | Method::PUT | Method::PATCH);
        return if wants_length {
            RequestFraming::Length(0)
        } else {
            RequestFraming::None
        };
    }
    match exact.or(declared) {
        Some(n) => RequestFraming::Length(n),
        None => RequestFraming::Chunked,
    }
}

/// True when `host` can be a `Host` value as is: the bytes `HeaderValue::from_str`
/// accepts (tab, and 32 to 255 but DEL), checked without building the value.
pub fn valid_host(host: &str) -> bool {
    host.bytes().all(|b| (b >= 32 && b != 127) || b == b'\t')
}

/// True when `path` can go on a request line as is (visible ASCII, no spaces).
pub fn valid_target(path: &str) -> bool {
    !path.is_empty() && path.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Appends the request head to `buf`: request line, `Host`, the headers (except any
/// `Host`, `Content-Length` and `Transfer-Encoding` in `headers`, replaced by `framing`),
/// the `forwarded` headers, blank line. `path` must pass [`valid_target`] and `host` be a
/// valid header value ([`valid_host`]).
pub fn encode_request(
    buf: &mut BytesMut,
    method: &Method,
    path: &str,
    host: &[u8],
    headers: &UpstreamHeaders<'_>,
    forwarded: Option<&Forwarded>,
    framing: RequestFraming,
) {
    buf.reserve(64 + path.len() + headers.len() * 32 + forwarded.map_or(0, Forwarded::encoded_len));
    buf.extend_from_slice(method.as_str().as_bytes());
    buf.extend_from_slice(b" ");
    buf.extend_from_slice(path.as_bytes());
    buf.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    buf.extend_from_slice(host);
    buf.extend_from_slice(b"\r\n");
    headers.each(|name, value| {
        if name != HOST && name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            write_field(buf, name, value);
        }
    });
    if let Some(forwarded) = forwarded {
        forwarded.write(buf);
    }
    match framing {
        RequestFraming::None => {}
        RequestFraming::Length(n) => {
            buf.extend_from_slice(b"content-length: ");
            push_decimal(buf, n);
            buf.extend_from_slice(b"\r\n");
        }
        RequestFraming::Chunked => buf.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    buf.extend_from_slice(b"\r\n");
}

/// `n` in decimal, without the `String` that `to_string` allocates.
fn push_decimal(buf: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        // n % 10 < 10: the cast keeps the value.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use proptest::prelude::*;

    /// Parses `text` in a buffer of its own; also returns what the parse left there.
    #[test]
    fn decimals_are_written_as_to_string_would() {
        for n in [0, 7, 10, 64, 1_000_000, u64::MAX] {
            let mut buf = BytesMut::new();
            push_decimal(&mut buf, n);
            assert_eq!(&buf[..], n.to_string().as_bytes());
        }
    }

    proptest! {
        #[test]
        fn any_decimal_is_written_as_to_string_would(n in any::<u64>()) {
            let mut buf = BytesMut::new();
            push_decimal(&mut buf, n);
            let text = n.to_string();
            prop_assert_eq!(&buf[..], text.as_bytes());
        }
    }

    #[test]
    fn request_head_carries_host_headers_and_framing() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert(HOST, HeaderValue::from_static("ignored"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
        let declared = headers.get(CONTENT_LENGTH).cloned();
        let headers = UpstreamHeaders::from_map(headers);
        let mut buf = BytesMut::new();
        let host = b"up:8080";
        encode_request(
            &mut buf,
            &Method::POST,
            "/v1?q=1",
            host,
            &headers,
            None,
            RequestFraming::Length(3),
        );
        assert_eq!(
            &buf[..],
            b"POST /v1?q=1 HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\ncontent-length: 3\r\n\r\n"
        );
        // Forwarded headers kept out of the map are written after the map's fields.
        let mut client = HeaderMap::new();
        client.insert(HOST, HeaderValue::from_static("client.example"));
        let (_, forwarded) =
            crate::headers::ClientFields::new(&client, "192.0.2.9".parse().unwrap());
        buf.clear();
        encode_request(
            &mut buf,
            &Method::GET,
            "/",
            host,
            &headers,
            Some(&forwarded),
            RequestFraming::None,
        );
        assert_eq!(
            &buf[..],
            &b"GET / HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\nx-forwarded-for: 192.0.2.9\r\n\
               x-real-ip: 192.0.2.9\r\nx-forwarded-proto: http\r\n\
               x-forwarded-host: client.example\r\n\r\n"[..]
        );
        let get = request_framing(&Method::GET, None, true, Some(0));
        assert_eq!(get, RequestFraming::None);
        let post = request_framing(&Method::POST, None, true, Some(0));
        assert_eq!(post, RequestFraming::Length(0));
        let streamed = request_framing(&Method::POST, None, false, None);
        assert_eq!(streamed, RequestFraming::Chunked);
        let declared = request_framing(&Method::POST, declared.as_ref(), false, None);
        assert_eq!(declared, RequestFraming::Length(99));
        assert!(valid_target("/a?b=%20"));
        assert!(!valid_target("/a b") && !valid_target("/a\r\n") && !valid_target(""));
    }

    proptest! {
        #[test]
        fn a_valid_host_is_a_valid_header_value(host in ".{0,12}", byte in any::<u8>()) {
            let with_byte = format!("{host}{}", char::from(byte));
            for host in [host.as_str(), with_byte.as_str()] {
                prop_assert_eq!(valid_host(host), HeaderValue::from_str(host).is_ok(), "{:?}", host);
            }
        }

    }
}
