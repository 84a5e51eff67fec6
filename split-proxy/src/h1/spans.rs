//! Positions of head parts, so a parsed head can share the bytes it was read into.
//!
//! `httparse` hands out slices borrowed from the read buffer; the buffer must be split
//! (`BytesMut::split_to`) before its bytes can be shared, which ends that borrow. Both
//! head parsers (client requests in [`super::head`], upstream responses in
//! `upstream::h1_head`) therefore note where each part is, split the head off, and then
//! take header values as shared `Bytes` (one reference count each, no copy) and names
//! and methods as plain slices (no reference count at all).

use bytes::Bytes;

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

/// Notes the name and value spans of `fields` (parsed out of `head`) in `out`; returns
/// how many were noted.
pub fn note_fields(head: &[u8], fields: &[httparse::Header<'_>], out: &mut [[Span; 2]]) -> usize {
    for (slot, field) in out.iter_mut().zip(fields) {
        *slot = [span(head, field.name.as_bytes()), span(head, field.value)];
    }
    fields.len().min(out.len())
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut spans = [[[0u32; 2]; 2]; 4];
        let count = note_fields(&buf, res.headers, &mut spans);
        assert_eq!(count, 2);
        let head = Split(buf.split_to(len).freeze());
        assert_eq!(&buf[..], b"body");
        let read: Vec<(&[u8], Bytes)> = spans[..count]
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
