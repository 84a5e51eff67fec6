//! Split's own answer to requests hyper cannot parse.
//!
//! hyper's HTTP/1 server answers a request head it cannot parse by itself, before any
//! handler runs: invalid method, URI, version or header bytes → 400, a header section
//! over its limits → 431, a URI over its limit → 414. That answer is a bare head
//! (`Connection: close`, `Content-Length: 0`, `Date`) and the connection is closed right
//! after it. hyper offers no hook for it, so [`ParseErrorIo`] wraps the client socket and
//! recognises it on the way out:
//!
//! - hyper writes it last on the connection, so it is the tail of a write;
//! - it is exactly a status line with 400, 414 or 431 and those three headers; every
//!   response split produces carries `Server`, so a head without it is not one of ours.
//!
//! The recognised head is replaced by split's answer: the same status line and `Date`,
//! plus `Server: split/<version>`, `Content-Type: application/json` and a
//! `{"error_msg": …}` body, still with `Connection: close`. Only the last bytes of writes
//! that end a head (`\r\n\r\n`) are looked at; requests are not parsed here.
//!
//! A response body that itself ends with a byte-exact copy of such a head (only possible
//! when an upstream sends one) would have that copy replaced; split accepts this, as the
//! only party affected is the one that sent it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::headers::SERVER;

/// How far back from the end of a write hyper's answer can start (its head is about
/// 120 bytes long).
const WINDOW: usize = 256;

/// A client connection whose parse-error answers from hyper are rewritten (see the
/// module documentation).
pub struct ParseErrorIo<T> {
    inner: T,
    /// Bytes accepted from hyper but not yet written to `inner` (only ever set once, for
    /// the rewritten answer).
    pending: Vec<u8>,
    sent: usize,
}

impl<T> ParseErrorIo<T> {
    /// Wraps a client connection.
    pub fn new(inner: T) -> ParseErrorIo<T> {
        ParseErrorIo {
            inner,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> ParseErrorIo<T> {
    /// Writes what is pending; ready once nothing is.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        if !self.pending.is_empty() {
            self.pending = Vec::new();
            self.sent = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `prefix` + the rewritten answer as pending and starts writing it; reports
    /// `accepted` bytes as written (hyper's whole buffer).
    fn replace(
        &mut self,
        cx: &mut Context<'_>,
        pending: Vec<u8>,
        accepted: usize,
    ) -> Poll<io::Result<usize>> {
        self.pending = pending;
        self.sent = 0;
        // What does not fit now is written by the flush hyper always does next.
        if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(accepted))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParseErrorIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParseErrorIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if let Some((start, answer)) = rewrite_tail(buf) {
            let mut pending = Vec::with_capacity(start + answer.len());
            pending.extend_from_slice(&buf[..start]);
            pending.extend_from_slice(&answer);
            return this.replace(cx, pending, buf.len());
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        let last = bufs.iter().rposition(|b| !b.is_empty());
        if let Some(i) = last {
            if let Some((start, answer)) = rewrite_tail(&bufs[i]) {
                let total: usize = bufs.iter().map(|b| b.len()).sum();
                let mut pending = Vec::with_capacity(total + answer.len());
                for b in &bufs[..i] {
                    pending.extend_from_slice(b);
                }
                pending.extend_from_slice(&bufs[i][..start]);
                pending.extend_from_slice(&answer);
                return this.replace(cx, pending, total);
            }
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// If `buf` ends with hyper's parse-error answer: where it starts and split's answer.
fn rewrite_tail(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(WINDOW);
    let start = from + buf[from..].windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let head = std::str::from_utf8(&buf[start..]).ok()?;
    let (status_line, rest) = head.split_once("\r\n")?;
    let code = status_line.get(9..12)?;
    let message = match code {
        "400" => "400 Bad Request: invalid method, URI, version or header bytes",
        "414" => "414 Request-URI Too Large",
        "431" => "431 Request Header Fields Too Large",
        _ => return None,
    };
    if status_line.as_bytes().get(12) != Some(&b' ') {
        return None;
    }
    let fields = rest.strip_suffix("\r\n\r\n")?;
    let mut date = None;
    let (mut close, mut empty) = (false, false);
    for line in fields.split("\r\n") {
        let (name, value) = line.split_once(": ")?;
        match name.to_ascii_lowercase().as_str() {
            "connection" if value == "close" && !close => close = true,
            "content-length" if value == "0" && !empty => empty = true,
            "date" if date.is_none() => date = Some(value),
            _ => return None,
        }
    }
    let date = date?;
    if !(close && empty) {
        return None;
    }
    let body = serde_json::json!({ "error_msg": message }).to_string();
    let answer = format!(
        "{status_line}\r\nServer: {SERVER}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nDate: {date}\r\n\r\n{body}",
        body.len()
    );
    Some((start, answer.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const DATE: &str = "Thu, 26 Nov 2026 12:00:24 GMT";

    fn hyper_answer(status: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: 0\r\nDate: {DATE}\r\n\r\n"
        )
    }

    fn split_body(answer: &[u8]) -> (String, serde_json::Value) {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn hyper_answers_become_json_with_server() {
        for (status, msg) in [
            (
                "400 Bad Request",
                "400 Bad Request: invalid method, URI, version or header bytes",
            ),
            ("414 URI Too Long", "414 Request-URI Too Large"),
            (
                "431 Request Header Fields Too Large",
                "431 Request Header Fields Too Large",
            ),
        ] {
            let (start, answer) = rewrite_tail(hyper_answer(status).as_bytes()).unwrap();
            assert_eq!(start, 0);
            let (head, body) = split_body(&answer);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(
                head.contains(&format!("\r\nServer: {SERVER}\r\n")),
                "{head}"
            );
            assert!(head.contains("\r\nContent-Type: application/json\r\n"));
            assert!(head.contains("\r\nConnection: close\r\n"));
            assert!(head.ends_with(&format!("\r\nDate: {DATE}")), "{head}");
            assert_eq!(body, serde_json::json!({ "error_msg": msg }));
            let len = answer.len() - head.len() - 4;
            assert!(
                head.contains(&format!("\r\nContent-Length: {len}\r\n")),
                "{head}"
            );
        }
    }

    #[test]
    fn the_answer_is_found_after_an_earlier_response() {
        let earlier =
            format!("HTTP/1.1 404 Not Found\r\nServer: {SERVER}\r\nContent-Length: 2\r\n\r\n{{}}");
        let buf = format!("{earlier}{}", hyper_answer("400 Bad Request"));
        let (start, answer) = rewrite_tail(buf.as_bytes()).unwrap();
        assert_eq!(start, earlier.len());
        assert!(answer.starts_with(b"HTTP/1.1 400 Bad Request\r\nServer: "));
    }

    #[test]
    fn other_writes_are_left_alone() {
        let ours = format!(
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\nServer: {SERVER}\r\nDate: {DATE}\r\n\r\n"
        );
        for buf in [
            ours.as_str(),
            // Other statuses, other headers, a body, a missing header, a repeated one.
            &hyper_answer("404 Not Found"),
            &hyper_answer("500 Internal Server Error"),
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 2\r\nDate: x\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nConnection: keep-alive\r\nContent-Length: 0\r\nDate: x\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nDate: x\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nConnection: close\r\nContent-Length: 0\r\nDate: x\r\n\r\n",
            "HTTP/1.1 400Bad Request\r\nConnection: close\r\nContent-Length: 0\r\nDate: x\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\nDate: x\r\n\r\n{}",
            "0\r\n\r\n",
            "",
            "\r\n\r\n",
        ] {
            assert!(rewrite_tail(buf.as_bytes()).is_none(), "{buf:?}");
        }
        // A long body ending in `\r\n\r\n` with no head near its end.
        let long = format!("HTTP/1.1 400 {}\r\n\r\n", "x".repeat(WINDOW));
        assert!(rewrite_tail(long.as_bytes()).is_none());
    }

    proptest::proptest! {
        /// Any bytes: no panic, and a rewrite only ever answers 400, 414 or 431.
        #[test]
        fn arbitrary_writes_never_panic(buf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Some((start, answer)) = rewrite_tail(&buf) {
                proptest::prop_assert!(start <= buf.len());
                proptest::prop_assert!(
                    answer.starts_with(b"HTTP/1.1 400 ")
                        || answer.starts_with(b"HTTP/1.1 414 ")
                        || answer.starts_with(b"HTTP/1.1 431 ")
                );
            }
        }

        /// Whatever came before on the connection, hyper's answer at the end is found
        /// where it starts, and what came before is kept.
        #[test]
        fn the_answer_is_found_after_any_bytes(
            prefix in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            which in 0usize..3,
        ) {
            let status = ["400 Bad Request", "414 URI Too Long", "431 Request Header Fields Too Large"][which];
            let mut buf = prefix.clone();
            buf.extend_from_slice(hyper_answer(status).as_bytes());
            let found = rewrite_tail(&buf);
            proptest::prop_assert_eq!(found.map(|(start, _)| start), Some(prefix.len()));
        }
    }

    /// A writer that takes at most `step` bytes per call and is pending every other call.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
        flip: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.flip = !self.flip;
            if self.flip {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = buf.len().min(self.step);
            self.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_slow_socket_gets_the_whole_rewritten_answer_and_nothing_else() {
        let earlier =
            format!("HTTP/1.1 200 OK\r\nServer: {SERVER}\r\nContent-Length: 3\r\n\r\nabc");
        let hyper = hyper_answer("431 Request Header Fields Too Large");
        let mut io = ParseErrorIo::new(Trickle {
            out: Vec::new(),
            step: 7,
            flip: false,
        });
        io.write_all(earlier.as_bytes()).await.unwrap();
        io.write_all(hyper.as_bytes()).await.unwrap();
        io.flush().await.unwrap();
        io.shutdown().await.unwrap();
        let out = String::from_utf8(io.inner.out).unwrap();
        let (_, expected) = rewrite_tail(hyper.as_bytes()).unwrap();
        assert_eq!(
            out,
            format!("{earlier}{}", String::from_utf8(expected).unwrap())
        );
    }

    #[tokio::test]
    async fn vectored_writes_keep_the_earlier_slices() {
        let head = format!("HTTP/1.1 200 OK\r\nServer: {SERVER}\r\nContent-Length: 3\r\n\r\n");
        let hyper = hyper_answer("400 Bad Request");
        let mut io = ParseErrorIo::new(Trickle {
            out: Vec::new(),
            step: 5,
            flip: false,
        });
        let slices = [
            io::IoSlice::new(head.as_bytes()),
            io::IoSlice::new(b"abc"),
            io::IoSlice::new(hyper.as_bytes()),
            io::IoSlice::new(b""),
        ];
        let n = std::future::poll_fn(|cx| Pin::new(&mut io).poll_write_vectored(cx, &slices))
            .await
            .unwrap();
        assert_eq!(n, head.len() + 3 + hyper.len());
        io.flush().await.unwrap();
        let out = String::from_utf8(io.inner.out).unwrap();
        let (_, expected) = rewrite_tail(hyper.as_bytes()).unwrap();
        assert_eq!(
            out,
            format!("{head}abc{}", String::from_utf8(expected).unwrap())
        );
    }
}
