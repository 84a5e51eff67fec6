//! Writing a response: the head, then the body frame by frame as the handler's body
//! yields it (never collected), framed by the [`BodyPlan`].

use std::io::{self, IoSlice};

use futures_util::FutureExt;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use split_core::wire::chunked::{size_line, LAST_CHUNK};

/// The end of a chunk's data followed by the last chunk.
const CRLF_LAST_CHUNK: &[u8] = b"\r\n0\r\n\r\n";
use super::response::BodyPlan;
use crate::body::ProxyBody;

/// Why a response could not be written completely; the connection must close.
#[derive(Debug)]
pub enum WriteError {
    /// The socket failed (the client went away).
    Io(io::Error),
    /// The body failed mid-stream or did not match its declared length.
    Body(String),
}

/// Writes every slice.
pub async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut slices = &mut slices[..];
    IoSlice::advance_slices(&mut slices, 0);
    // Bounded: every pass writes at least one byte (zero is an error).
    while !slices.is_empty() {
        let n = w.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Writes `head` (after `prefix`, the rest of an interim answer) and `body` as `plan`
/// says. `Ok` when the response was written completely and framed correctly.
pub async fn response<W: AsyncWrite + Unpin>(
    w: &mut W,
    prefix: &[u8],
    head: &[u8],
    mut body: ProxyBody,
    plan: BodyPlan,
) -> Result<(), WriteError> {
    if plan == BodyPlan::None {
        drop(body);
        return write_all(w, &mut [IoSlice::new(prefix), IoSlice::new(head)])
            .await
            .map_err(WriteError::Io);
    }
    // The head goes out with the first frame when that frame is already there.
    let mut head = Some((prefix, head));
    let mut sent: u64 = 0;
    loop {
        let ready = match head {
            Some(_) => body.frame().now_or_never(),
            None => None,
        };
        let frame = match ready {
            Some(frame) => frame,
            None => {
                if let Some((prefix, bytes)) = head.take() {
                    write_all(w, &mut [IoSlice::new(prefix), IoSlice::new(bytes)])
                        .await
                        .map_err(WriteError::Io)?;
                }
                body.frame().await
            }
        };
        let data = match frame {
            None => return finish(w, head, plan, sent).await,
            Some(Err(e)) => return Err(WriteError::Body(e.to_string())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers are not forwarded on HTTP/1.1; empty frames carry nothing.
                _ => continue,
            },
        };
        let (prefix, head_bytes) = head.take().unwrap_or((&[], &[]));
        let end = body.is_end_stream();
        let mut too_long = false;
        let data = match plan {
            BodyPlan::Length(n) => {
                let room = n - sent;
                too_long = data.len() as u64 > room;
                // room < data.len() when cut, so it fits in usize.
                let data = if too_long {
                    data.slice(..room as usize)
                } else {
                    data
                };
                sent += data.len() as u64;
                data
            }
            _ => data,
        };
        // Chunked framing around the data: the size line before, CRLF (and the last
        // chunk when the body ends with this frame) after; nothing for other plans.
        let (size, len) = size_line(data.len());
        let (line, tail): (&[u8], &[u8]) = match (plan, end) {
            (BodyPlan::Chunked, false) => (&size[..len], b"\r\n"),
            (BodyPlan::Chunked, true) => (&size[..len], CRLF_LAST_CHUNK),
            _ => (&[], &[]),
        };
        write_all(
            w,
            &mut [
                IoSlice::new(prefix),
                IoSlice::new(head_bytes),
                IoSlice::new(line),
                IoSlice::new(&data),
                IoSlice::new(tail),
            ],
        )
        .await
        .map_err(WriteError::Io)?;
        match plan {
            BodyPlan::Length(n) if too_long => {
                return Err(WriteError::Body(format!(
                    "response body longer than its Content-Length {n}"
                )));
            }
            BodyPlan::Length(n) if end && sent == n => return Ok(()),
            BodyPlan::Chunked if end => return Ok(()),
            _ => {}
        }
    }
}

/// The body ended: the last chunk, or a check that the length was met.
async fn finish<W: AsyncWrite + Unpin>(
    w: &mut W,
    head: Option<(&[u8], &[u8])>,
    plan: BodyPlan,
    sent: u64,
) -> Result<(), WriteError> {
    let (prefix, head) = head.unwrap_or((&[], &[]));
    let tail: &[u8] = if plan == BodyPlan::Chunked {
        LAST_CHUNK
    } else {
        &[]
    };
    write_all(
        w,
        &mut [IoSlice::new(prefix), IoSlice::new(head), IoSlice::new(tail)],
    )
    .await
    .map_err(WriteError::Io)?;
    match plan {
        BodyPlan::Length(n) if sent != n => Err(WriteError::Body(format!(
            "response body ended after {sent} of its Content-Length {n} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Writes a whole, already encoded answer and flushes.
pub async fn raw<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
