//! Positions of head parts, so a parsed head can share the bytes it was read into.
//!
//! `httparse` hands out slices borrowed from the read buffer; the buffer must be split
//! (`BytesMut::split_to`) before its bytes can be shared, which ends that borrow. Both
//! head parsers (client requests in [`super::request`], upstream responses in
//! [`super::response`]) therefore note where each part is, split the head off, and then
//! take header values as shared `Bytes` (one reference count each, no copy) and names
//! and methods as plain slices (no reference count at all).

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};

/// Where a part is in its head: start and length (heads are at most a few hundred KiB).
pub type Span = [u32; 2];

/// The span of `part`, a slice of `head`.
pub fn span(head: &[u8], part: &[u8]) -> Span {
    let start = (part.as_ptr() as usize).saturating_sub(head.as_ptr() as usize);
    [
        u32::try_from(start).unwrap_or(u32::MAX),
        u32::try_from(part.len()).unwrap_or(u32::MAX),
    ]
}

/// How many fields' spans a head parser keeps on the stack ([`note_fields`]); the spans
/// of a head with more go to the heap. Zeroed room for a hundred on every head cost about
/// 100 instructions and 1.6 KB of stores, for heads that mostly carry a handful.
pub const INLINE_FIELDS: usize = 32;

/// Notes the name and value spans of `fields` (parsed out of `head`): in `inline` when
/// they fit, else in `heap`. Returns them, one `[name, value]` per field.
pub fn note_fields<'s>(
    head: &[u8],
    fields: &[httparse::Header<'_>],
    inline: &'s mut [[Span; 2]; INLINE_FIELDS],
    heap: &'s mut Vec<[Span; 2]>,
) -> &'s [[Span; 2]] {
    let spans =
        |field: &httparse::Header<'_>| [span(head, field.name.as_bytes()), span(head, field.value)];
    if fields.len() <= INLINE_FIELDS {
        for (slot, field) in inline.iter_mut().zip(fields) {
            *slot = spans(field);
        }
        &inline[..fields.len()]
    } else {
        heap.clear();
        heap.extend(fields.iter().map(spans));
        heap
    }
}

/// The header name `raw` (token characters, as `httparse` accepts them, in any case);
/// `None` when it is not a valid name. Names most heads carry are matched first, by
/// length and then a word at a time: `HeaderName::from_bytes` lower-cases every name into
/// a scratch buffer and then looks it up among all the standard names, about 150
/// instructions a name.
pub fn header_name(raw: &[u8]) -> Option<HeaderName> {
    // Statics, not a slice literal in the match: a `HeaderName` has drop glue, so a
    // literal would be built and dropped on every call.
    static LEN_4: [(&[u8], HeaderName); 2] = [(b"host", header::HOST), (b"date", header::DATE)];
    static LEN_6: [(&[u8], HeaderName); 2] =
        [(b"server", header::SERVER), (b"accept", header::ACCEPT)];
    static LEN_10: [(&[u8], HeaderName); 2] = [
        (b"connection", header::CONNECTION),
        (b"user-agent", header::USER_AGENT),
    ];
    static LEN_12: [(&[u8], HeaderName); 1] = [(b"content-type", header::CONTENT_TYPE)];
    static LEN_13: [(&[u8], HeaderName); 2] = [
        (b"authorization", header::AUTHORIZATION),
        (b"cache-control", header::CACHE_CONTROL),
    ];
    static LEN_14: [(&[u8], HeaderName); 1] = [(b"content-length", header::CONTENT_LENGTH)];
    static LEN_15: [(&[u8], HeaderName); 1] = [(b"accept-encoding", header::ACCEPT_ENCODING)];
    static LEN_17: [(&[u8], HeaderName); 1] = [(b"transfer-encoding", header::TRANSFER_ENCODING)];
    let candidates: &[(&[u8], HeaderName)] = match raw.len() {
        4 => &LEN_4,
        6 => &LEN_6,
        10 => &LEN_10,
        12 => &LEN_12,
        13 => &LEN_13,
        14 => &LEN_14,
        15 => &LEN_15,
        17 => &LEN_17,
        _ => &[],
    };
    for (lower, name) in candidates {
        if is_lowercase_of(raw, lower) {
            return Some(name.clone());
        }
    }
    HeaderName::from_bytes(raw).ok()
}

/// True when token characters `raw` are `lower` (lower-case letters and `-`, same length)
/// in any case. Setting bit 0x20 lower-cases a letter and keeps `-`; among token
/// characters only the upper-case letters change, so no other byte can match.
fn is_lowercase_of(raw: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    let mut raw_words = raw.chunks_exact(8);
    let mut lower_words = lower.chunks_exact(8);
    for (r, l) in (&mut raw_words).zip(&mut lower_words) {
        let (Ok(r), Ok(l)) = (<[u8; 8]>::try_from(r), <[u8; 8]>::try_from(l)) else {
            return false;
        };
        if u64::from_ne_bytes(r) | CASE != u64::from_ne_bytes(l) {
            return false;
        }
    }
    let (raw_tail, lower_tail) = (raw_words.remainder(), lower_words.remainder());
    raw_tail.len() == lower_tail.len()
        && raw_tail
            .iter()
            .zip(lower_tail)
            .all(|(&r, &l)| r | 0x20 == l)
}

/// A head split off its buffer, read through spans noted before the split. `None` when a
/// span does not fit (it always does for spans of this head).
pub struct Split(pub Bytes);

impl Split {
    fn range(&self, [start, len]: Span) -> Option<std::ops::Range<usize>> {
        let start = start as usize;
        let end = start.checked_add(len as usize)?;
        (end <= self.0.len()).then_some(start..end)
    }

    /// The bytes at `span`, borrowed.
    pub fn raw(&self, span: Span) -> Option<&[u8]> {
        self.range(span).map(|r| &self.0[r])
    }

    /// The bytes at `span`, shared.
    pub fn shared(&self, span: Span) -> Option<Bytes> {
        self.range(span).map(|r| self.0.slice(r))
    }

    /// The header name at `span` ([`header_name`]); `None` when it is not a valid one.
    pub fn name(&self, span: Span) -> Option<HeaderName> {
        self.raw(span).and_then(header_name)
    }

    /// The header value at `span`, sharing the head's bytes; `None` when it is not a
    /// valid one.
    pub fn value(&self, span: Span) -> Option<HeaderValue> {
        self.shared(span)
            .and_then(|v| HeaderValue::from_maybe_shared(v).ok())
    }
}

/// Heads with many fields, for the head parsers' tests.
#[cfg(test)]
pub(crate) mod many_fields {
    use http::HeaderMap;

    /// Field counts around the stack room ([`super::INLINE_FIELDS`]) and up to `max`.
    pub fn counts(max: usize) -> [usize; 4] {
        let room = super::INLINE_FIELDS;
        [room - 1, room, room + 1, max - 1]
    }

    /// `n` fields `X-i: vi`, each with its CRLF.
    pub fn text(n: usize) -> String {
        (0..n).map(|i| format!("X-{i}: v{i}\r\n")).collect()
    }

    /// Asserts that `headers` holds the `n` fields of [`text`] plus `others`.
    pub fn check(headers: &HeaderMap, n: usize, others: usize) {
        assert_eq!(headers.len(), n + others, "{n} fields");
        for i in 0..n {
            let value = headers.get(format!("x-{i}").as_str());
            assert_eq!(
                value.map(|v| v.as_bytes()),
                Some(format!("v{i}").as_bytes())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name [`header_name`] matches before `from_bytes`.
    const COMMON: [&str; 12] = [
        "host",
        "date",
        "server",
        "accept",
        "connection",
        "user-agent",
        "content-type",
        "authorization",
        "cache-control",
        "content-length",
        "accept-encoding",
        "transfer-encoding",
    ];

    /// Every name the fast path knows, in lower, upper and title case.
    #[test]
    fn common_names_are_the_names_from_bytes_makes() {
        for text in COMMON {
            let name = HeaderName::from_bytes(text.as_bytes()).unwrap();
            let title: String = text
                .split('-')
                .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
                .collect::<Vec<_>>()
                .join("-");
            for variant in [text.to_owned(), text.to_ascii_uppercase(), title] {
                assert_eq!(
                    header_name(variant.as_bytes()),
                    Some(name.clone()),
                    "{variant}"
                );
            }
        }
    }

    proptest::proptest! {
        /// Any token characters: the same answer as `HeaderName::from_bytes`. Drawn from
        /// the letters of the common names, both cases, and the token characters whose
        /// bit 0x20 is clear (`@`-free: not a token character), so near misses abound.
        #[test]
        fn header_name_agrees_with_from_bytes(
            raw in proptest::collection::vec(
                proptest::sample::select(b"hostdaecnpy-lgHOSTDAECNPY!#$%&'*+.^_`|~019".to_vec()),
                0..20,
            ),
            pick in 0usize..12,
            at in 0usize..17,
            with in proptest::sample::select(b"hostdaecnpy-lgHOSTDAECNPY!#$%&'*+.^_`|~019".to_vec()),
        ) {
            proptest::prop_assert_eq!(header_name(&raw), HeaderName::from_bytes(&raw).ok());
            // And a common name with some letters' case flipped.
            let common = COMMON[pick].as_bytes();
            let flipped: Vec<u8> = common
                .iter()
                .zip(raw.iter().cycle())
                .map(|(&b, &r)| if r % 2 == 0 { b.to_ascii_uppercase() } else { b })
                .collect();
            proptest::prop_assert_eq!(header_name(&flipped), HeaderName::from_bytes(&flipped).ok());
            // And a near miss: one byte of a common name replaced.
            let mut near = common.to_vec();
            let i = at % near.len();
            near[i] = with;
            proptest::prop_assert_eq!(header_name(&near), HeaderName::from_bytes(&near).ok());
        }
    }

    #[test]
    fn spans_noted_before_the_split_read_the_same_bytes_after_it() {
        let mut buf =
            bytes::BytesMut::from(&b"HTTP/1.1 200 OK\r\nA: 1\r\nBee: two\r\n\r\nbody"[..]);
        let mut fields = [httparse::EMPTY_HEADER; 4];
        let mut res = httparse::Response::new(&mut fields);
        let len = match res.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            other => panic!("{other:?}"),
        };
        let (mut inline, mut heap) = ([[[0u32; 2]; 2]; INLINE_FIELDS], Vec::new());
        let spans = note_fields(&buf, res.headers, &mut inline, &mut heap);
        assert_eq!(spans.len(), 2);
        let head = Split(buf.split_to(len).freeze());
        assert_eq!(&buf[..], b"body");
        let read: Vec<(&[u8], Bytes)> = spans
            .iter()
            .map(|[n, v]| (head.raw(*n).unwrap(), head.shared(*v).unwrap()))
            .collect();
        assert_eq!(read[0], (&b"A"[..], Bytes::from_static(b"1")));
        assert_eq!(read[1], (&b"Bee"[..], Bytes::from_static(b"two")));
        // Spans outside the head are refused, not panics.
        assert_eq!(head.raw([u32::MAX, 1]), None);
        assert_eq!(head.shared([30, 100]), None);
    }
}
