//! Socket reads without a per-connection buffer: bytes are read into a thread-local
//! scratch buffer, and only what arrived is copied into the connection's (right-sized)
//! buffer.

use std::cell::RefCell;
use std::io;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
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

/// One non-blocking read appended to `buf`: `Ok(0)` at end of stream, `WouldBlock` when
/// nothing is there.
pub fn read_more(reader: &OwnedReadHalf, buf: &mut BytesMut) -> io::Result<usize> {
    with_scratch(|scratch| {
        let n = reader.try_read(scratch)?;
        buf.extend_from_slice(&scratch[..n]);
        Ok(n)
    })
}

/// One non-blocking read whose bytes are thrown away.
pub fn read_discard(reader: &OwnedReadHalf) -> io::Result<usize> {
    with_scratch(|scratch| reader.try_read(scratch))
}

/// [`read_more`], waiting for the socket to be readable.
pub fn poll_read_more(
    reader: &OwnedReadHalf,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    // Bounded: each WouldBlock clears readiness, so the next poll is Pending.
    for _ in 0..64 {
        ready!(reader.as_ref().poll_read_ready(cx))?;
        match read_more(reader, buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return Poll::Ready(other),
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}
