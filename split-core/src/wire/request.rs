//! Request heads: incremental parsing with `httparse`, the limits split enforces, and
//! what the head says about the body (framing) and the connection (keep-alive).
//!
//! Limits (a head over them gets split's JSON error and the connection is closed):
//! - request line over [`MAX_REQUEST_LINE`] (64 KiB) → 414;
//! - whole head over [`MAX_HEAD`] (96 KiB), or more than [`MAX_HEADERS`] (100) header
//!   fields → 431;
//! - anything `httparse` or `http` refuses (method, URI, version, header bytes), an
//!   unsupported `Transfer-Encoding`, `Transfer-Encoding` on HTTP/1.0, both
//!   `Transfer-Encoding` and `Content-Length`, or conflicting `Content-Length` values → 400.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Uri, Version};

use super::spans;

/// Most header fields in one request head (hyper's default too).
pub const MAX_HEADERS: usize = 100;
/// Longest request line (method, target, version).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// Longest request head (request line and header fields).
pub const MAX_HEAD: usize = 96 * 1024;

/// Why a request head is refused; each maps to one status and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Bytes `httparse` or `http` refuses, or a framing it cannot trust → 400.
    Malformed,
    /// An unsupported or ambiguous body framing → 400.
    Framing(&'static str),
    /// Request line over [`MAX_REQUEST_LINE`] → 414.
    UriTooLong,
    /// Head over [`MAX_HEAD`] or more than [`MAX_HEADERS`] fields → 431.
    TooLarge,
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` (never 0: that is [`Framing::Empty`]).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete, valid request head.
#[derive(Debug)]
pub struct Head {
    /// Method.
    pub method: Method,
    /// Request target.
    pub uri: Uri,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Header fields in order.
    pub headers: HeaderMap,
    /// Body framing.
    pub framing: Framing,
    /// Whether the client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1 with a body.
    pub expect_continue: bool,
}

/// Parses the head at the start of `buf`: `Ok(None)` when more bytes are needed. A
/// complete head is split off `buf` (what follows stays), and the header values and
/// target share its bytes instead of copying them.
///
/// The verdict does not depend on how the bytes arrived: the limits are checked in the
/// order their bytes come, so bytes past a limit are never looked at. A head that is
/// malformed only after 96 KiB is too large (431), as it is when read piece by piece; a
/// malformed byte within the first 64 KiB of a long request line is a 400 however it
/// arrives.
pub fn parse(buf: &mut BytesMut) -> Result<Option<Head>, HeadError> {
    // Nearly every buffer is shorter than the request line's limit: one parse, its
    // answer handed straight back.
    if buf.len() <= MAX_REQUEST_LINE + 1 {
        let end = buf.len();
        return parse_within(buf, end, true);
    }
    // The request line ends within its limit or is too long once this many bytes are
    // there (after any empty lines before it).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line_window = (start + MAX_REQUEST_LINE + 1).min(buf.len());
    if line_window == buf.len() {
        return parse_within(buf, line_window, true);
    }
    if let Some(head) = parse_within(buf, line_window, false)? {
        return Ok(Some(head));
    }
    // No verdict within the line's window: the line is too long, or it ended and the
    // rest of the head is read up to its own limit.
    check_request_line(&buf[..line_window])?;
    let head_window = MAX_HEAD.min(buf.len());
    parse_within(buf, head_window, true)
}

/// [`parse`] looking at the first `end` bytes of `buf` only: `Ok(None)` when they hold
/// no complete head and nothing wrong. `last` when no larger window follows: the limits
/// are then checked on the whole buffer.
fn parse_within(buf: &mut BytesMut, end: usize, last: bool) -> Result<Option<Head>, HeadError> {
    // Where method, target and every field are in the head.
    let (mut inline, mut heap) = ([[[0u32; 2]; 2]; spans::INLINE_FIELDS], Vec::new());
    let (len, fields_at, method, target, version) = {
        // Left uninitialised: httparse writes the slots it fills, and zeroing 100 of
        // them (3.2 KB) cost more than parsing a short head.
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(&buf[..end], &mut fields) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if last {
                    check_limits(buf)?;
                }
                return Ok(None);
            }
            // Found within the window, so before any limit was passed (a byte that is
            // both malformed and one too many for the line counts as malformed).
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Malformed),
        };
        check_limits(&buf[..len])?;
        let fields_at = spans::note_fields(buf, req.headers, &mut inline, &mut heap);
        let version = match req.version {
            Some(0) => Version::HTTP_10,
            Some(1) => Version::HTTP_11,
            _ => return Err(HeadError::Malformed),
        };
        let method = req
            .method
            .map(|m| spans::span(buf, m.as_bytes()))
            .ok_or(HeadError::Malformed)?;
        let target = req
            .path
            .map(|p| spans::span(buf, p.as_bytes()))
            .ok_or(HeadError::Malformed)?;
        (len, fields_at, method, target, version)
    };
    let head = spans::Split(buf.split_to(len).freeze());
    let method = head
        .raw(method)
        .and_then(|m| Method::from_bytes(m).ok())
        .ok_or(HeadError::Malformed)?;
    let uri = head
        .shared(target)
        .and_then(|t| Uri::from_maybe_shared(t).ok())
        .ok_or(HeadError::Malformed)?;
    let mut headers = HeaderMap::with_capacity(fields_at.len());
    // Which of the fields read below are present, noted while the map is built: most
    // heads carry none but Content-Length, and looking up an absent name still costs a
    // hash and a probe.
    let mut seen = Seen::default();
    // Where the only Content-Length field's value is, when there is one: read from the
    // head's bytes rather than looked up again.
    let mut length_at = None;
    for &[name_at, value_at] in fields_at {
        let name = head.name(name_at).ok_or(HeadError::Malformed)?;
        let value = head.value(value_at).ok_or(HeadError::Malformed)?;
        if name == CONTENT_LENGTH {
            length_at = (!seen.content_length).then_some(value_at);
        }
        seen.note(&name);
        headers.append(name, value);
    }
    let length_field = length_at.and_then(|at| head.raw(at));
    let framing = framing(version, &headers, seen, length_field)?;
    let keep_alive = keep_alive(version, &headers, seen.connection);
    let expect_continue = version == Version::HTTP_11
        && framing != Framing::Empty
        && seen.expect
        && headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    Ok(Some(Head {
        method,
        uri,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// The framing and connection fields a head carries.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    transfer_encoding: bool,
    content_length: bool,
    connection: bool,
    expect: bool,
}

impl Seen {
    fn note(&mut self, name: &HeaderName) {
        if name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
        } else if name == CONTENT_LENGTH {
            self.content_length = true;
        } else if name == CONNECTION {
            self.connection = true;
        } else if name == EXPECT {
            self.expect = true;
        }
    }
}

/// The limits on a head (complete or not) of `buf`.
fn check_limits(buf: &[u8]) -> Result<(), HeadError> {
    check_request_line(buf)?;
    if buf.len() > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    Ok(())
}

/// 414 when the request line (after leading empty lines) is, or will be, too long.
fn check_request_line(buf: &[u8]) -> Result<(), HeadError> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    if end > MAX_REQUEST_LINE {
        return Err(HeadError::UriTooLong);
    }
    Ok(())
}

/// Comma-separated tokens of every `name` field, trimmed.
fn tokens<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a [u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| value_tokens(v.as_bytes()))
}

/// Comma-separated tokens of one field value, trimmed.
pub(crate) fn value_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The body framing; `length_field` is the value of the head's only Content-Length
/// field, if it has exactly one (else its values are looked up).
fn framing(
    version: Version,
    headers: &HeaderMap,
    seen: Seen,
    length_field: Option<&[u8]>,
) -> Result<Framing, HeadError> {
    if seen.transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(HeadError::Framing(
                "Transfer-Encoding is not allowed in HTTP/1.0",
            ));
        }
        if seen.content_length {
            return Err(HeadError::Framing(
                "both Transfer-Encoding and Content-Length are set",
            ));
        }
        let codings: Vec<&[u8]> = tokens(headers, &TRANSFER_ENCODING).collect();
        return match codings.as_slice() {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(HeadError::Framing(
                "unsupported Transfer-Encoding (only chunked is accepted)",
            )),
        };
    }
    if !seen.content_length {
        return Ok(Framing::Empty);
    }
    let mut length = None;
    let mut check = |token: &[u8]| {
        let n = parse_length(token).ok_or(HeadError::Framing("invalid Content-Length"))?;
        if length.is_some_and(|l| l != n) {
            return Err(HeadError::Framing("conflicting Content-Length values"));
        }
        length = Some(n);
        Ok(())
    };
    match length_field {
        Some(value) => value_tokens(value).try_for_each(&mut check)?,
        None => tokens(headers, &CONTENT_LENGTH).try_for_each(&mut check)?,
    }
    Ok(match length {
        None | Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

/// Digits only (no sign, no spaces), at most 19 of them (no overflow).
pub(crate) fn parse_length(token: &[u8]) -> Option<u64> {
    if token.is_empty() || token.len() > 19 || !token.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 19 digits: below 10^19 < u64::MAX, so this cannot overflow.
    Some(
        token
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// Whether the client wants the connection kept; `connection` tells whether the head
/// has a `Connection` field at all (without one, only HTTP/1.1 keeps it).
fn keep_alive(version: Version, headers: &HeaderMap, connection: bool) -> bool {
    connection_kept(version, connection.then(|| tokens(headers, &CONNECTION)))
}

/// The keep-alive rule of both sides (RFC 9112 §9.3): HTTP/1.1 keeps the connection
/// unless a `Connection` token is `close`; HTTP/1.0 only with `keep-alive` and no
/// `close`. `tokens` are the `Connection` tokens, `None` when the head has no such field.
pub(crate) fn connection_kept<'a>(
    version: Version,
    tokens: Option<impl Iterator<Item = &'a [u8]>>,
) -> bool {
    let Some(tokens) = tokens else {
        return version == Version::HTTP_11;
    };
    let (mut close, mut keep) = (false, false);
    for token in tokens {
        close |= token.eq_ignore_ascii_case(b"close");
        keep |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    !close && (version == Version::HTTP_11 || keep)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
