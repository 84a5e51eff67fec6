//! The HTTP/1.1 upstream client, driven by the request's own task: no task per
//! connection and no channels. An exchange writes the request (see [`super::h1_upload`])
//! while it reads the response head; the body is then read by [`super::h1_body`] in the
//! task that polls it, and the connection goes back to the pool when the body ended
//! cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use http::Method;
use http_body::Body;
use tokio::io::ReadBuf;

use super::connect::Io;
use split_core::wire::response::{parse_response, Parsed, ResponseHead};

use super::h1_head::{encode_request, request_framing, valid_target};
use super::h1_upload::{Upload, UploadError};
use crate::body::ProxyBody;
use crate::headers::UpstreamHeaders;

/// Bytes asked for by one read.
const READ_SIZE: usize = 32 * 1024;

thread_local! {
    /// Where reads land before the bytes are copied into the connection's buffer: zeroed
    /// once per thread, where reading straight into a `BytesMut` would zero its spare
    /// room on every read (no `unsafe` here to skip that).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_SIZE]);
}

/// An HTTP/1.1 connection to an upstream, idle or leased for one request.
pub struct H1Conn {
    io: Box<dyn Io>,
    /// Bytes read but not consumed yet.
    pub(super) buf: BytesMut,
    /// Address actually connected to.
    pub peer: SocketAddr,
    /// Requests answered on it so far.
    pub uses: u32,
}

impl H1Conn {
    /// A fresh connection over `io`.
    pub fn new(io: Box<dyn Io>, peer: SocketAddr) -> H1Conn {
        H1Conn {
            io,
            buf: BytesMut::new(),
            peer,
            uses: 0,
        }
    }

    /// The stream, for writing.
    pub(super) fn io(&mut self) -> &mut dyn Io {
        &mut *self.io
    }

    /// False when the upstream closed (or wrote to) this idle connection: a read that
    /// must not block finds end of file, an error, or unexpected bytes.
    pub fn is_alive(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        Pin::new(&mut *self.io)
            .poll_read(&mut cx, &mut probe)
            .is_pending()
    }

    /// Reads more bytes into `buf`; `Ready(Ok(0))` at end of file.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let (io, buf) = (&mut *self.io, &mut self.buf);
        let shared = SCRATCH.try_with(|scratch| {
            let mut scratch = scratch.try_borrow_mut().ok()?;
            Some(read_into(io, buf, &mut scratch[..], cx))
        });
        match shared {
            Ok(Some(polled)) => polled,
            // Only while the thread exits (or if a read ever nested): a small local one.
            _ => read_into(io, buf, &mut [0u8; 4096], cx),
        }
    }
}

/// Reads into `scratch` and appends what came to `buf`.
fn read_into(
    io: &mut dyn Io,
    buf: &mut BytesMut,
    scratch: &mut [u8],
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    let mut read = ReadBuf::new(scratch);
    let polled = Pin::new(io).poll_read(cx, &mut read);
    let filled = read.filled();
    buf.extend_from_slice(filled);
    match polled {
        Poll::Ready(Ok(())) => Poll::Ready(Ok(filled.len())),
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Pending => Poll::Pending,
    }
}

/// Why an exchange got no response head.
#[derive(Debug)]
pub struct ExchangeError {
    /// What went wrong (for the log and the 502 message).
    pub reason: String,
    /// Some response bytes had arrived (then the request is never sent again).
    pub started: bool,
}

/// Sends the request and waits for its final response head (1xx skipped). The upload
/// goes on concurrently: an upstream may answer early (e.g. 413) before it ends.
pub struct Exchange<'a> {
    conn: &'a mut H1Conn,
    upload: &'a mut Upload,
    method: &'a Method,
    write_error: Option<std::io::Error>,
    started: bool,
}

impl<'a> Exchange<'a> {
    /// An exchange of `upload` on `conn` for a request with `method`.
    pub fn new(conn: &'a mut H1Conn, upload: &'a mut Upload, method: &'a Method) -> Self {
        Exchange {
            conn,
            upload,
            method,
            write_error: None,
            started: false,
        }
    }

    fn fail(&mut self, reason: String) -> Poll<Result<ResponseHead, ExchangeError>> {
        Poll::Ready(Err(ExchangeError {
            reason,
            started: self.started,
        }))
    }
}

impl Future for Exchange<'_> {
    type Output = Result<ResponseHead, ExchangeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.write_error.is_none() {
            match this.upload.poll(this.conn.io(), cx) {
                // The upstream may have answered and closed: read what it sent.
                Poll::Ready(Err(UploadError::Io(e))) => this.write_error = Some(e),
                Poll::Ready(Err(e)) => return this.fail(e.to_string()),
                Poll::Ready(Ok(())) | Poll::Pending => {}
            }
        }
        loop {
            if !this.conn.buf.is_empty() {
                match parse_response(&mut this.conn.buf, this.method) {
                    Err(e) => return this.fail(e.to_string()),
                    Ok(Parsed::Partial) => {}
                    Ok(Parsed::Interim) => continue,
                    Ok(Parsed::Final(head)) => return Poll::Ready(Ok(head)),
                }
            }
            match this.conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    let reason = match &this.write_error {
                        Some(e) => format!("writing to upstream: {e}"),
                        None => "upstream closed the connection before answering".into(),
                    };
                    return this.fail(reason);
                }
                Poll::Ready(Ok(_)) => this.started = true,
                Poll::Ready(Err(e)) => return this.fail(format!("reading from upstream: {e}")),
            }
        }
    }
}

/// Sends `request` (origin-form target, `Host` among its headers) on `conn` and returns
/// the response status; the connection is closed afterwards. For health probes.
pub async fn status_of(
    mut conn: H1Conn,
    request: http::Request<ProxyBody>,
) -> Result<http::StatusCode, String> {
    let (mut parts, body) = request.into_parts();
    let host = parts
        .headers
        .get(http::header::HOST)
        .cloned()
        .unwrap_or_else(|| http::HeaderValue::from_static(""));
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if !valid_target(path) {
        return Err(format!("invalid request target '{path}'"));
    }
    let framing = request_framing(
        &parts.method,
        parts.headers.get(http::header::CONTENT_LENGTH),
        body.is_end_stream(),
        body.size_hint().exact(),
    );
    let headers = UpstreamHeaders::from_map(std::mem::take(&mut parts.headers));
    let mut head = BytesMut::new();
    encode_request(
        &mut head,
        &parts.method,
        path,
        host.as_bytes(),
        &headers,
        None,
        framing,
    );
    let mut upload = Upload::new(head, body, framing, false);
    Exchange::new(&mut conn, &mut upload, &parts.method)
        .await
        .map(|head| head.parts.status)
        .map_err(|e| e.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;
    use crate::upstream::h1_head::RequestFraming;
    use bytes::BytesMut;
    use split_core::wire::response::BodyFraming;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn h1(io: tokio::io::DuplexStream) -> H1Conn {
        H1Conn::new(Box::new(io), "127.0.0.1:1".parse().unwrap())
    }

    #[tokio::test]
    async fn interim_heads_are_skipped_and_leftovers_kept() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut conn = h1(ours);
        let mut upload = Upload::new(
            BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]),
            full("x"),
            RequestFraming::Length(1),
            true,
        );
        theirs
            .write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
            )
            .await
            .unwrap();
        let head = Exchange::new(&mut conn, &mut upload, &Method::GET)
            .await
            .unwrap();
        assert_eq!(head.parts.status, 200);
        assert_eq!(head.framing, BodyFraming::Length(2));
        assert_eq!(&conn.buf[..], b"hi");
        let mut sent = [0u8; 19];
        theirs.read_exact(&mut sent).await.unwrap();
        assert_eq!(&sent, b"GET / HTTP/1.1\r\n\r\nx");
        assert!(conn.buf.len() == 2 && !conn.is_alive());
    }

    #[tokio::test]
    async fn closed_before_answer_says_whether_bytes_came() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let mut conn = h1(ours);
        let mut upload = Upload::new(BytesMut::new(), full(""), RequestFraming::None, true);
        theirs.write_all(b"HTTP/1.1 2").await.unwrap();
        drop(theirs);
        let err = Exchange::new(&mut conn, &mut upload, &Method::GET)
            .await
            .unwrap_err();
        assert!(err.started, "{err:?}");

        let (ours, theirs) = tokio::io::duplex(4096);
        let mut conn = h1(ours);
        assert!(conn.is_alive());
        drop(theirs);
        assert!(!conn.is_alive());
        let mut upload = Upload::new(BytesMut::new(), full(""), RequestFraming::None, true);
        let err = Exchange::new(&mut conn, &mut upload, &Method::GET)
            .await
            .unwrap_err();
        assert!(!err.started, "{err:?}");
    }
}
