//! Upstream response heads: parsed with `httparse` within bounds ([`MAX_HEAD`] bytes,
//! [`MAX_HEADERS`] fields), with the body framing and keep-alive they announce.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::{HeaderMap, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{Method, StatusCode, Version};

use super::request::{connection_kept, value_tokens};
use super::spans::{self, Split};

/// Largest response head accepted (status line and headers).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in a response head.
pub const MAX_HEADERS: usize = 100;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (HEAD, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed final response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status, version and headers (as received, framing headers included).
    pub parts: http::response::Parts,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// The upstream allows another request on this connection afterwards.
    pub keep_alive: bool,
}

/// What the bytes read so far hold.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet (nothing consumed).
    Partial,
    /// A 1xx interim response, consumed.
    Interim,
    /// The final head, split off the buffer.
    Final(ResponseHead),
}

/// Why a response head is refused (the gateway answers 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Larger than [`MAX_HEAD`].
    #[error("upstream response head larger than {MAX_HEAD} bytes")]
    TooLarge,
    /// More than [`MAX_HEADERS`] fields.
    #[error("upstream response head has more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// Not HTTP/1.x or malformed.
    #[error("invalid upstream response head: {0}")]
    Invalid(String),
}

/// Parses the response head at the start of `buf`, for a request with `method`. A
/// complete head is taken off `buf` (what follows stays), and the header values share
/// its bytes instead of copying them.
pub fn parse_response(buf: &mut BytesMut, method: &Method) -> Result<Parsed, HeadError> {
    let (mut inline, mut heap) = ([[[0u32; 2]; 2]; spans::INLINE_FIELDS], Vec::new());
    let (len, fields_at, code, version) = {
        // Uninitialised, as in the client head parser: httparse writes what it fills.
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        // Bytes past the limit are never looked at, so the verdict does not depend on
        // how the bytes arrived (a head malformed only after the limit is too large).
        let window = &buf[..buf.len().min(MAX_HEAD)];
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut response,
            window,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                return if buf.len() >= MAX_HEAD {
                    Err(HeadError::TooLarge)
                } else {
                    Ok(Parsed::Partial)
                };
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(e) => return Err(HeadError::Invalid(e.to_string())),
        };
        let fields_at = spans::note_fields(buf, response.headers, &mut inline, &mut heap);
        // httparse only completes a head with a version and a 3-digit code.
        (len, fields_at, response.code.unwrap_or(0), response.version)
    };
    let status = StatusCode::from_u16(code)
        .map_err(|_| HeadError::Invalid(format!("status code {code}")))?;
    if status.is_informational() {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(HeadError::Invalid(
                "unexpected 101 Switching Protocols".into(),
            ));
        }
        buf.advance(len);
        return Ok(Parsed::Interim);
    }
    let version = if version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let head = Split(buf.split_to(len).freeze());
    // Room for the headers split adds to an answer (`Server`, the quota and token
    // budget headers) without rehashing.
    let mut headers = HeaderMap::with_capacity(fields_at.len() + 4);
    // Noted while building the map: looking up an absent name still costs a hash and a
    // probe, and most answers carry neither field.
    let (mut connection, mut transfer_encoding) = (false, false);
    // Where the only Content-Length field's value is, if there is exactly one (and
    // `None` again at a second).
    let (mut length_at, mut lengths) = (None, 0);
    for &[name_at, value_at] in fields_at {
        let name = head.name(name_at).ok_or_else(|| {
            let raw = head.raw(name_at).unwrap_or_default();
            HeadError::Invalid(format!("header name '{}'", String::from_utf8_lossy(raw)))
        })?;
        let value = head
            .value(value_at)
            .ok_or_else(|| HeadError::Invalid(format!("value of header '{name}'")))?;
        connection |= name == http::header::CONNECTION;
        transfer_encoding |= name == TRANSFER_ENCODING;
        if name == CONTENT_LENGTH {
            lengths += 1;
            length_at = (lengths == 1).then_some(value_at);
        }
        headers.append(name, value);
    }
    let keep_alive = keep_alive(version, &headers, connection);
    let length_field = length_at.and_then(|at| head.raw(at));
    let framing = body_framing(method, status, &headers, transfer_encoding, length_field)?;
    let keep_alive = keep_alive && framing != BodyFraming::Close;
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Parsed::Final(ResponseHead {
        parts,
        framing,
        keep_alive,
    }))
}

/// Whether the upstream keeps the connection ([`super::request::connection_kept`]);
/// `connection` tells whether the head has a `Connection` field at all. Only values
/// `HeaderValue::to_str` accepts (visible ASCII and tab) give tokens.
fn keep_alive(version: Version, headers: &HeaderMap, connection: bool) -> bool {
    let tokens = || {
        headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter(|v| v.to_str().is_ok())
            .flat_map(|v| value_tokens(v.as_bytes()))
    };
    connection_kept(version, connection.then(tokens))
}

/// The body framing of a response (RFC 9112 §6.3). `length_field` is the value of the
/// head's only Content-Length field, if it has exactly one (else its values are looked
/// up).
fn body_framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    transfer_encoding: bool,
    length_field: Option<&[u8]>,
) -> Result<BodyFraming, HeadError> {
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(BodyFraming::Empty);
    }
    if transfer_encoding {
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|t| !t.is_empty());
        let chunked = last.is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
        return Ok(if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::Close
        });
    }
    let mut length: Option<u64> = None;
    let mut add = |value: &[u8]| {
        // The usual field, a plain number of up to 19 digits: what the general rule
        // below makes of it, without its text steps (about 350 instructions).
        if let Some(n) = super::request::parse_length(value) {
            return settle(&mut length, n);
        }
        // What `HeaderValue::to_str` accepts (visible ASCII and tab), else invalid.
        let visible = value.iter().all(|&b| (32..127).contains(&b) || b == b'\t');
        let text = std::str::from_utf8(value).ok().filter(|_| visible);
        for part in text.unwrap_or("x").split(',') {
            let part = part.trim();
            let n = if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse::<u64>().ok()
            } else {
                None
            };
            let n = n.ok_or_else(|| HeadError::Invalid(format!("content-length '{part}'")))?;
            settle(&mut length, n)?;
        }
        Ok(())
    };
    match length_field {
        Some(value) => add(value)?,
        None => {
            for value in headers.get_all(CONTENT_LENGTH) {
                add(value.as_bytes())?;
            }
        }
    }
    Ok(match length {
        Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::Close,
    })
}

/// Takes `n` as the length, unless another value was taken before.
fn settle(length: &mut Option<u64>, n: u64) -> Result<(), HeadError> {
    if length.is_some_and(|l| l != n) {
        return Err(HeadError::Invalid(
            "conflicting content-length values".into(),
        ));
    }
    *length = Some(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Parses `text` in a buffer of its own; also returns what the parse left there.
    fn parse_with(text: &[u8], method: &Method) -> (Result<Parsed, HeadError>, BytesMut) {
        let mut buf = BytesMut::from(text);
        let parsed = parse_response(&mut buf, method);
        (parsed, buf)
    }

    fn parse(text: &str) -> Result<Parsed, HeadError> {
        parse_with(text.as_bytes(), &Method::GET).0
    }

    #[test]
    fn heads_with_more_fields_than_the_stack_room_parse_whole() {
        use super::spans::many_fields;
        for n in many_fields::counts(MAX_HEADERS) {
            let fields = many_fields::text(n);
            let h = head(&format!(
                "HTTP/1.1 200 OK\r\n{fields}content-length: 2\r\n\r\n"
            ));
            many_fields::check(&h.parts.headers, n, 1);
            assert_eq!(h.framing, BodyFraming::Length(2), "{n} fields");
        }
    }

    fn head(text: &str) -> ResponseHead {
        match parse_with(text.as_bytes(), &Method::GET) {
            (Ok(Parsed::Final(head)), rest) => {
                assert!(rest.is_empty(), "{rest:?} left of {text:?}");
                head
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn framing_follows_the_headers() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Length(5), true));
        assert_eq!(h.parts.headers["x-a"], "b");
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Close, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Close, false));
        let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Empty, true));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nConnection: close\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Length(7), false));
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive);
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
        match parse_with(text.as_bytes(), &Method::HEAD).0 {
            Ok(Parsed::Final(h)) => assert_eq!(h.framing, BodyFraming::Empty),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_heads_are_refused_with_a_reason() {
        let conflict = parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert!(matches!(conflict, Err(HeadError::Invalid(m)) if m.contains("conflicting")));
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n").is_err());
        // The only field (read from the head's bytes) as strictly as several (looked up):
        // a list must agree, and only what `HeaderValue::to_str` accepts is read (no
        // Unicode space trimmed off a number).
        let listed = parse("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n");
        assert!(matches!(listed, Err(HeadError::Invalid(m)) if m.contains("conflicting")));
        for fields in [
            "Content-Length: 5\u{a0}",
            "X: y\r\nContent-Length: 5\r\nContent-Length: 5\u{a0}",
        ] {
            let text = format!("HTTP/1.1 200 OK\r\n{fields}\r\n\r\n");
            assert!(
                matches!(parse(&text), Err(HeadError::Invalid(_))),
                "{fields:?}"
            );
        }
        assert!(parse("SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse("HTTP/1.1 101 Switching\r\n\r\n").is_err());
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        let text = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(parse(&text).err(), Some(HeadError::TooManyHeaders));
        let big = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(&big).err(), Some(HeadError::TooLarge));
        assert!(matches!(
            parse("HTTP/1.1 200 OK\r\nx: y\r\n"),
            Ok(Parsed::Partial)
        ));
    }

    /// A head malformed only past the limit is too large whether it arrives in one read
    /// or in many (bytes past the limit are never looked at).
    #[test]
    fn a_head_broken_past_the_limit_is_too_large_however_it_arrives() {
        let long = "a".repeat(40_000);
        let text = format!("HTTP/1.1 200 OK\r\nx-a: {long}\r\nx-b: {long}\r\nBroken\r\n\r\n");
        assert!(text.find("Broken").unwrap() > MAX_HEAD);
        for step in [text.len(), 16_384, 1_000] {
            let mut buf = BytesMut::new();
            let mut verdict = Ok(Parsed::Partial);
            for piece in text.as_bytes().chunks(step) {
                buf.extend_from_slice(piece);
                verdict = parse_response(&mut buf, &Method::GET);
                if !matches!(verdict, Ok(Parsed::Partial)) {
                    break;
                }
            }
            assert_eq!(verdict.err(), Some(HeadError::TooLarge), "step {step}");
        }
    }

    #[test]
    fn interim_responses_are_consumed_and_the_rest_stays() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
        match parse_with(text.as_bytes(), &Method::GET) {
            (Ok(Parsed::Interim), rest) => assert_eq!(&rest[..], b"HTTP/1.1 200 OK\r\n"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_share_the_head_and_what_follows_stays_in_the_buffer() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Up: a b\r\n\r\nbody";
        let (parsed, rest) = parse_with(text.as_bytes(), &Method::GET);
        let Ok(Parsed::Final(h)) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(&rest[..], b"body");
        assert_eq!(h.parts.headers["x-up"], "a b");
        assert_eq!(h.framing, BodyFraming::Length(4));
        // Invalid values are still refused.
        let bad = parse("HTTP/1.1 200 OK\r\nX-Up: a\x7fb\r\n\r\n");
        assert!(matches!(&bad, Err(HeadError::Invalid(_))), "{bad:?}");
    }

    proptest! {
        #[test]
        fn a_content_length_reads_as_the_text_rule_says(
            text in "[0-9]{1,21}|[0-9, +\\-\t]{0,24}|[0-9a\u{a0}]{0,6}",
            n in any::<u64>(),
        ) {
            // The rule written out on the value's text: comma-separated plain numbers
            // that fit a u64 and agree, in a value `HeaderValue::to_str` accepts.
            let rule = |value: &str| -> Result<u64, ()> {
                let visible = value.bytes().all(|b| (32..127).contains(&b) || b == b'\t');
                if !visible {
                    return Err(());
                }
                let mut length = None;
                for part in value.split(',').map(str::trim) {
                    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(());
                    }
                    let n = part.parse::<u64>().map_err(|_| ())?;
                    if length.is_some_and(|l| l != n) {
                        return Err(());
                    }
                    length = Some(n);
                }
                length.ok_or(())
            };
            for value in [text.clone(), n.to_string()] {
                let framing = body_framing(
                    &Method::GET,
                    StatusCode::OK,
                    &HeaderMap::new(),
                    false,
                    Some(value.as_bytes()),
                );
                let got = match framing {
                    Ok(BodyFraming::Length(n)) => Ok(n),
                    Ok(BodyFraming::Empty) => Ok(0),
                    Ok(other) => panic!("{other:?} for {value:?}"),
                    Err(_) => Err(()),
                };
                prop_assert_eq!(got, rule(&value), "{:?}", value);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_with(&bytes, &Method::GET);
        }

        #[test]
        fn every_prefix_is_partial_and_the_whole_parses_the_same(
            values in proptest::collection::vec("[a-z0-9 ]{0,20}", 0..8),
            len in 0u64..100_000,
        ) {
            let mut text = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n");
            for (i, v) in values.iter().enumerate() {
                text.push_str(&format!("x-{i}: {v}\r\n"));
            }
            text.push_str("\r\nbody");
            let full = text.len() - 4;
            for cut in 0..full {
                let (parsed, rest) = parse_with(&text.as_bytes()[..cut], &Method::GET);
                prop_assert!(matches!(parsed, Ok(Parsed::Partial)), "cut {}", cut);
                prop_assert_eq!(rest.len(), cut);
            }
            match parse_with(text.as_bytes(), &Method::GET) {
                (Ok(Parsed::Final(h)), rest) => {
                    prop_assert_eq!(text.len() - rest.len(), full);
                    let expect = if len == 0 { BodyFraming::Empty } else { BodyFraming::Length(len) };
                    prop_assert_eq!(h.framing, expect);
                    for (i, v) in values.iter().enumerate() {
                        prop_assert_eq!(h.parts.headers[format!("x-{i}").as_str()].as_bytes(), v.trim().as_bytes());
                    }
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
