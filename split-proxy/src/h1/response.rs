//! Response heads: how the body is framed on the wire and the head's bytes (header
//! names in title case, `Date` added, `Connection` set to what the server will do).

use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use http_body::SizeHint;

/// How the response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyPlan {
    /// No body (HEAD, 1xx, 204, 304): the body is not polled.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (HTTP/1.0 client, unknown length).
    UntilClose,
}

/// What the request and the server state say about the response.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request version.
    pub version: Version,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
}

/// The decided framing and whether the connection closes after the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Body framing.
    pub body: BodyPlan,
    /// Close after the response.
    pub close: bool,
}

/// Decides the framing of a response and edits `headers` to match (framing headers,
/// `Connection`, `Date`).
pub fn plan(status: StatusCode, headers: &mut HeaderMap, hint: &SizeHint, cx: Context<'_>) -> Plan {
    // One pass over the fields finds what the framing depends on: a lookup per name
    // costs a hash and a probe each, and most of them miss.
    let mut close_token = false;
    let mut connection = false;
    let mut length = None;
    let mut transfer_encoding = false;
    let mut date = false;
    for (name, value) in headers.iter() {
        if name == CONNECTION {
            connection = true;
            close_token |= value
                .as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if name == CONTENT_LENGTH {
            // The first value decides, as a lookup would find it.
            length.get_or_insert(value);
        } else if name == TRANSFER_ENCODING {
            transfer_encoding = true;
        } else if name == DATE {
            date = true;
        }
    }
    let has_length = length.is_some();
    let declared = length
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut close = !cx.keep_alive || close_token;
    let body = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        if status != StatusCode::NOT_MODIFIED && has_length {
            headers.remove(CONTENT_LENGTH);
        }
        if transfer_encoding {
            headers.remove(TRANSFER_ENCODING);
        }
        BodyPlan::None
    } else if cx.method == Method::HEAD {
        if declared.is_none() && !transfer_encoding {
            if let Some(n) = hint.exact().filter(|&n| n > 0) {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            }
        }
        BodyPlan::None
    } else if let Some(n) = declared {
        if transfer_encoding {
            headers.remove(TRANSFER_ENCODING);
        }
        BodyPlan::Length(n)
    } else {
        if transfer_encoding {
            headers.remove(TRANSFER_ENCODING);
        }
        if has_length {
            headers.remove(CONTENT_LENGTH);
        }
        if let Some(n) = hint.exact() {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            BodyPlan::Length(n)
        } else if cx.version == Version::HTTP_11 {
            headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            BodyPlan::Chunked
        } else {
            close = true;
            BodyPlan::UntilClose
        }
    };
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    } else if cx.version == Version::HTTP_10 {
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
    } else if connection {
        headers.remove(CONNECTION);
    }
    if !date {
        headers.insert(DATE, super::date::now());
    }
    Plan { body, close }
}

/// The head's bytes: status line (always HTTP/1.1, with `reason` or the canonical
/// phrase) and every field with its name in title case.
pub fn encode(status: StatusCode, reason: Option<&[u8]>, headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, status, reason, headers);
    out
}

/// [`encode`] into `out` (cleared first): a connection keeps one buffer for the heads
/// of its answers instead of allocating one per answer.
pub fn encode_into(
    out: &mut Vec<u8>,
    status: StatusCode,
    reason: Option<&[u8]>,
    headers: &HeaderMap,
) {
    let reason = reason.unwrap_or_else(|| status.canonical_reason().unwrap_or("").as_bytes());
    // "HTTP/1.1 ", the status, a space, the reason, CRLF; each field; the final CRLF.
    let size = 17
        + reason.len()
        + headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>();
    out.clear();
    out.reserve(size);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        match title_cased(name.as_str()) {
            Some(title) => out.extend_from_slice(title.as_bytes()),
            None => {
                let start = out.len();
                out.extend_from_slice(name.as_str().as_bytes());
                title_case(&mut out[start..]);
            }
        }
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The title case of the names most responses carry, copied whole instead of cased a
/// byte at a time; `None` for other names.
fn title_cased(name: &str) -> Option<&'static str> {
    Some(match name {
        "date" => "Date",
        "server" => "Server",
        "connection" => "Connection",
        "content-type" => "Content-Type",
        "cache-control" => "Cache-Control",
        "content-length" => "Content-Length",
        "x-request-id" => "X-Request-Id",
        "transfer-encoding" => "Transfer-Encoding",
        _ => return None,
    })
}

/// `content-type` → `Content-Type` in place (hyper's `title_case_headers`).
fn title_case(name: &mut [u8]) {
    let mut upper = true;
    for b in name {
        if upper {
            b.make_ascii_uppercase();
        }
        upper = *b == b'-';
    }
}

#[cfg(test)]
#[path = "response_tests.rs"]
mod tests;
