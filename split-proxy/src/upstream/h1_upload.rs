//! Writing one request to an HTTP/1.1 upstream: the head, then the body framed by
//! `Content-Length` or chunked, polled by whichever future drives the exchange (the
//! response-head wait, then the response body), so an upstream may answer before the
//! upload ends. At most [`MAX_QUEUED`] bytes wait to be written; the head and the first
//! body frames go out in one vectored write.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use smallvec::SmallVec;

use super::connect::Io;
use super::h1_head::RequestFraming;
use crate::body::{BoxError, ProxyBody};

/// Most bytes queued for writing before the body is polled again.
pub const MAX_QUEUED: usize = 64 * 1024;
/// Most buffers handed to one vectored write.
const MAX_SLICES: usize = 16;

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The request body (the client) failed.
    #[error("request body failed: {0}")]
    Body(BoxError),
    /// Writing to the upstream failed.
    #[error("writing to upstream: {0}")]
    Io(#[from] std::io::Error),
    /// The body's length differs from its `Content-Length`.
    #[error("request body length differs from its content-length")]
    Length,
}

/// Body frames kept for a second attempt: the first one apart, so the usual one-frame
/// body needs no vector.
#[derive(Default)]
struct Retained {
    first: Option<Bytes>,
    rest: Vec<Bytes>,
}

impl Retained {
    fn push(&mut self, frame: Bytes) {
        if self.first.is_none() {
            self.first = Some(frame);
        } else {
            self.rest.push(frame);
        }
    }

    fn into_bytes(self) -> Bytes {
        match (self.first, self.rest.is_empty()) {
            (None, _) => Bytes::new(),
            (Some(first), true) => first,
            (Some(first), false) => {
                let mut all = Vec::with_capacity(
                    first.len() + self.rest.iter().map(Bytes::len).sum::<usize>(),
                );
                all.extend_from_slice(&first);
                for frame in &self.rest {
                    all.extend_from_slice(frame);
                }
                Bytes::from(all)
            }
        }
    }
}

/// Body pieces queued at once in the usual case (a chunk's size line, data and CRLF, or
/// one `Content-Length` frame): room for them without an allocation.
const PENDING_ROOM: usize = 4;

/// Pieces written (and dropped) before the queue is compacted while it still holds more.
/// They must also be half of it or more: a compaction then moves no more pieces than it
/// drops, so shifting stays linear however many tiny pieces a body queues.
const COMPACT_AFTER: usize = 16;

/// The request being written.
pub struct Upload {
    /// The unwritten rest of the head, written before any body piece. Kept as the
    /// encoder's buffer: turning it into `Bytes` would allocate a shared header for it.
    head: BytesMut,
    /// Body pieces to write; those before `written_pieces` are already written.
    pending: SmallVec<[Bytes; PENDING_ROOM]>,
    written_pieces: usize,
    queued: usize,
    body: Option<ProxyBody>,
    framing: RequestFraming,
    /// Bytes still allowed by `Content-Length`.
    left: u64,
    /// Copies of the body frames taken so far, while the body can be sent again.
    retained: Option<Retained>,
    consumed: bool,
    finished: bool,
}

impl Upload {
    /// An upload of `head` then `body` framed by `framing`; `in_memory` bodies are kept
    /// (by reference) until the response head so the request can be sent again.
    pub fn new(
        head: BytesMut,
        body: ProxyBody,
        framing: RequestFraming,
        in_memory: bool,
    ) -> Upload {
        let queued = head.len();
        let body = (!body.is_end_stream()).then_some(body);
        let left = match framing {
            RequestFraming::Length(n) => n,
            _ => 0,
        };
        Upload {
            head,
            pending: SmallVec::new(),
            written_pieces: 0,
            queued,
            body,
            framing,
            left,
            retained: in_memory.then(Retained::default),
            consumed: false,
            finished: false,
        }
    }

    /// True once the whole request went out.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The body again, for a second attempt: the untouched body, or the in-memory body
    /// read to its end; `None` once a streamed body was partly consumed.
    pub fn into_replay(mut self) -> Option<ProxyBody> {
        if !self.consumed {
            return Some(self.body.take().unwrap_or_else(crate::body::empty));
        }
        if self.body.is_some() {
            return None;
        }
        Some(crate::body::full(self.retained?.into_bytes()))
    }

    /// Moves the upload forward: `Ready(Ok)` once all of it is written and flushed.
    pub fn poll(&mut self, io: &mut dyn Io, cx: &mut Context<'_>) -> Poll<Result<(), UploadError>> {
        if self.finished {
            return Poll::Ready(Ok(()));
        }
        loop {
            self.fill(cx)?;
            let unwritten = &self.pending[self.written_pieces..];
            if self.head.is_empty() && unwritten.is_empty() {
                std::task::ready!(Pin::new(&mut *io).poll_flush(cx))?;
                if self.body.is_none() {
                    self.finished = true;
                    return Poll::Ready(Ok(()));
                }
                return Poll::Pending;
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let head = (!self.head.is_empty()).then_some(&self.head[..]);
            let mut count = 0;
            for (slot, bytes) in slices
                .iter_mut()
                .zip(head.into_iter().chain(unwritten.iter().map(|b| &b[..])))
            {
                *slot = IoSlice::new(bytes);
                count += 1;
            }
            let written =
                std::task::ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(
                    std::io::Error::from(std::io::ErrorKind::WriteZero).into()
                ));
            }
            self.advance(written);
        }
    }

    fn advance(&mut self, mut written: usize) {
        self.queued = self.queued.saturating_sub(written);
        if !self.head.is_empty() {
            let from_head = written.min(self.head.len());
            self.head.advance(from_head);
            written -= from_head;
            if self.head.is_empty() {
                // Written: its buffer is released now, not when the exchange ends.
                self.head = BytesMut::new();
            }
        }
        while written > 0 {
            let Some(front) = self.pending.get_mut(self.written_pieces) else {
                break;
            };
            if front.len() > written {
                front.advance(written);
                break;
            }
            written -= front.len();
            // Written: its buffer is released now, not when the queue empties.
            *front = Bytes::new();
            self.written_pieces += 1;
        }
        if self.written_pieces == self.pending.len() {
            self.pending.clear();
            self.written_pieces = 0;
        } else if self.written_pieces >= COMPACT_AFTER
            && self.written_pieces * 2 >= self.pending.len()
        {
            self.pending.drain(..self.written_pieces);
            self.written_pieces = 0;
        }
    }

    /// Queues body frames while the body has them ready and the queue has room.
    fn fill(&mut self, cx: &mut Context<'_>) -> Result<(), UploadError> {
        while self.queued < MAX_QUEUED {
            let Some(body) = self.body.as_mut() else {
                return Ok(());
            };
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Some(Err(e))) => {
                    self.body = None;
                    return Err(UploadError::Body(e));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    self.consumed = true;
                    // Trailers are not forwarded.
                    if let Ok(data) = frame.into_data() {
                        self.queue_data(data)?;
                    }
                }
                Poll::Ready(None) => {
                    self.consumed = true;
                    self.body = None;
                    match self.framing {
                        RequestFraming::Chunked => self.push(Bytes::from_static(b"0\r\n\r\n")),
                        RequestFraming::Length(_) if self.left != 0 => {
                            return Err(UploadError::Length)
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    fn queue_data(&mut self, data: Bytes) -> Result<(), UploadError> {
        if data.is_empty() {
            // An empty chunk would end a chunked body.
            return Ok(());
        }
        if let Some(retained) = &mut self.retained {
            retained.push(data.clone());
        }
        match self.framing {
            RequestFraming::Chunked => {
                let mut size = BytesMut::with_capacity(18);
                size.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                self.push(size.freeze());
                self.push(data);
                self.push(Bytes::from_static(b"\r\n"));
            }
            RequestFraming::Length(_) | RequestFraming::None => {
                let n = data.len() as u64;
                if n > self.left {
                    self.body = None;
                    return Err(UploadError::Length);
                }
                self.left -= n;
                self.push(data);
            }
        }
        Ok(())
    }

    fn push(&mut self, bytes: Bytes) {
        self.queued += bytes.len();
        self.pending.push(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{full, stream};
    use http_body_util::StreamBody;
    use tokio::io::AsyncReadExt;

    async fn run(body: ProxyBody, framing: RequestFraming) -> (Result<(), String>, Vec<u8>) {
        run_through(1024, body, framing).await
    }

    /// [`run`] through a pipe of `room` bytes (small ones split every write).
    async fn run_through(
        room: usize,
        body: ProxyBody,
        framing: RequestFraming,
    ) -> (Result<(), String>, Vec<u8>) {
        let (mut ours, mut theirs) = tokio::io::duplex(room);
        let reader = tokio::spawn(async move {
            let mut wire = Vec::new();
            theirs.read_to_end(&mut wire).await.unwrap();
            wire
        });
        let mut upload = Upload::new(BytesMut::from(&b"HEAD\r\n"[..]), body, framing, true);
        let result = std::future::poll_fn(|cx| upload.poll(&mut ours, cx)).await;
        drop(ours);
        let wire = reader.await.unwrap();
        (result.map_err(|e| e.to_string()), wire)
    }

    fn frames(parts: &[&'static [u8]]) -> ProxyBody {
        let frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(http_body::Frame::data(Bytes::from_static(p))))
            .collect();
        stream(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn bodies_are_framed_and_checked() {
        let (r, wire) = run(full("abc"), RequestFraming::Length(3)).await;
        assert_eq!((r, wire.as_slice()), (Ok(()), &b"HEAD\r\nabc"[..]));
        let (r, wire) = run(frames(&[b"ab", b"", b"cde"]), RequestFraming::Chunked).await;
        assert_eq!(r, Ok(()));
        assert_eq!(wire, b"HEAD\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n");
        let (r, _) = run(full("abcd"), RequestFraming::Length(3)).await;
        assert!(r.unwrap_err().contains("length"));
        let (r, _) = run(frames(&[b"ab"]), RequestFraming::Length(3)).await;
        assert!(r.unwrap_err().contains("length"));
        let big = vec![7u8; 3 * MAX_QUEUED];
        let (r, wire) = run(full(big.clone()), RequestFraming::Length(big.len() as u64)).await;
        assert_eq!(r, Ok(()));
        assert_eq!(&wire[6..], &big[..]);
    }

    #[tokio::test]
    async fn many_pieces_through_a_narrow_pipe_arrive_whole_and_in_order() {
        // 200 chunks make 600 queued pieces; a 7-byte pipe splits the head and most
        // pieces across writes, so written pieces are dropped and the queue compacted
        // while later ones are still pending.
        let texts: Vec<String> = (0..200).map(|i| format!("piece-{i};")).collect();
        let pieces: Vec<&'static [u8]> = texts
            .iter()
            .map(|t| &*Box::leak(t.clone().into_bytes().into_boxed_slice()))
            .collect();
        let (r, wire) = run_through(7, frames(&pieces), RequestFraming::Chunked).await;
        assert_eq!(r, Ok(()));
        let mut expected = b"HEAD\r\n".to_vec();
        for t in &texts {
            expected.extend_from_slice(format!("{:x}\r\n{t}\r\n", t.len()).as_bytes());
        }
        expected.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(
            String::from_utf8_lossy(&wire),
            String::from_utf8_lossy(&expected)
        );

        let all: Vec<u8> = texts.concat().into_bytes();
        let (r, wire) =
            run_through(5, frames(&pieces), RequestFraming::Length(all.len() as u64)).await;
        assert_eq!(r, Ok(()));
        assert_eq!(&wire[6..], &all[..]);
    }

    /// Sends an in-memory body of `pieces` once, then returns its replay's bytes.
    async fn replayed(pieces: &[&'static [u8]], framing: RequestFraming) -> Bytes {
        let (mut sink, _peer) = tokio::io::duplex(1 << 16);
        let mut upload = Upload::new(BytesMut::new(), frames(pieces), framing, true);
        std::future::poll_fn(|cx| upload.poll(&mut sink, cx))
            .await
            .unwrap();
        let replay = upload.into_replay().expect("in memory");
        http_body_util::BodyExt::collect(replay)
            .await
            .unwrap()
            .to_bytes()
    }

    #[tokio::test]
    async fn in_memory_bodies_replay_and_streamed_ones_only_untouched() {
        let two = replayed(&[b"ab", b"c"], RequestFraming::Chunked).await;
        assert_eq!(&two[..], b"abc");
        let one = replayed(&[b"xyz"], RequestFraming::Length(3)).await;
        assert_eq!(&one[..], b"xyz");

        let (mut sink, _peer) = tokio::io::duplex(1 << 16);
        let mut upload = Upload::new(
            BytesMut::new(),
            frames(&[b"ab"]),
            RequestFraming::Chunked,
            false,
        );
        std::future::poll_fn(|cx| upload.poll(&mut sink, cx))
            .await
            .unwrap();
        assert!(upload.into_replay().is_none());
        let upload = Upload::new(
            BytesMut::new(),
            frames(&[b"ab"]),
            RequestFraming::Chunked,
            false,
        );
        assert!(upload.into_replay().is_some());
    }
}
