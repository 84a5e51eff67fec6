//! Socket reads without a per-connection buffer: bytes are read into a thread-local
//! scratch buffer, and only what arrived is copied into the connection's (right-sized)
//! buffer. Reads go through tokio's `poll_read`, which notes that a short read drained
//! the socket, so waiting for the next request costs no extra `recvfrom`.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;

/// Largest single read.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer.
fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUF.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() < SCRATCH {
            scratch.resize(SCRATCH, 0);
        }
        f(&mut scratch[..])
    })
}

/// One read: what arrived is appended to `buf` (or thrown away when `buf` is `None`);
/// `Ok(0)` at end of stream.
pub fn poll_read(
    reader: &mut OwnedReadHalf,
    cx: &mut Context<'_>,
    buf: Option<&mut BytesMut>,
) -> Poll<io::Result<usize>> {
    with_scratch(|scratch| {
        let mut read = ReadBuf::new(scratch);
        ready!(Pin::new(reader).poll_read(cx, &mut read))?;
        let filled = read.filled();
        if let Some(buf) = buf {
            buf.extend_from_slice(filled);
        }
        Poll::Ready(Ok(filled.len()))
    })
}

/// [`poll_read`] into `buf`.
pub fn poll_read_more(
    reader: &mut OwnedReadHalf,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    poll_read(reader, cx, Some(buf))
}

/// Reads once into `buf`.
pub async fn read_more(reader: &mut OwnedReadHalf, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_more(reader, cx, buf)).await
}

/// Reads once and throws the bytes away.
pub async fn read_discard(reader: &mut OwnedReadHalf) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read(reader, cx, None)).await
}
