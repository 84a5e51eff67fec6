//! Chunked transfer coding (RFC 9112 §7.1): an incremental decoder for request bodies
//! and the framing written around response body frames.
//!
//! The decoder accepts chunk extensions (`;` after the size and optional whitespace;
//! skipped, at most [`MAX_LINE`] bytes per line) and trailer fields (skipped, at most
//! [`MAX_TRAILERS`] bytes in all); line ends must be CRLF.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (size and extensions).
pub const MAX_LINE: usize = 4096;
/// Largest trailer section.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is in the chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { value: u64, digits: u8 },
    /// Whitespace after the size digits: more of it, `;` or CR may follow.
    SizeWs { value: u64 },
    /// Skipping an extension (after `;`) up to CR.
    Extension { value: u64 },
    /// CR seen after a size line.
    SizeLf { value: u64 },
    /// Inside chunk data: bytes left.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field.
    Trailer,
    /// CR seen after a trailer field.
    TrailerLf,
    /// CR seen on the final empty line.
    EndLf,
    /// The body ended.
    Done,
}

/// An invalid chunked body; the message says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedError(pub &'static str);

impl std::fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid chunked request body: {}", self.0)
    }
}

impl std::error::Error for ChunkedError {}

/// Incremental chunked decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoder {
    state: State,
    /// Bytes of the current size line, or of the trailer section.
    counted: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    /// A decoder at the start of a body.
    pub fn new() -> Decoder {
        Decoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            counted: 0,
        }
    }

    /// True once the last chunk and the trailer section were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes framing bytes from `buf` and returns the next piece of chunk data, or
    /// `Ok(None)` when `buf` holds no data yet (more bytes needed, or the body is done).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ChunkedError> {
        loop {
            if let State::Data(left) = self.state {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                // n <= left, so the subtraction cannot underflow.
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                return Ok(Some(buf.split_to(n).freeze()));
            }
            if self.state == State::Done || buf.is_empty() {
                return Ok(None);
            }
            let byte = buf[0];
            buf.advance(1);
            self.step(byte)?;
        }
    }

    /// One framing byte.
    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { value, digits } => {
                self.line()?;
                match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 16 {
                            return Err(ChunkedError("chunk size too large"));
                        }
                        let d = (byte as char).to_digit(16).map_or(0, u64::from);
                        State::Size {
                            value: value * 16 + d,
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(ChunkedError("chunk size is not hexadecimal")),
                    b' ' | b'\t' => State::SizeWs { value },
                    b';' => State::Extension { value },
                    b'\r' => State::SizeLf { value },
                    _ => return Err(ChunkedError("chunk size is not hexadecimal")),
                }
            }
            State::SizeWs { value } => {
                self.line()?;
                match byte {
                    b' ' | b'\t' => State::SizeWs { value },
                    b';' => State::Extension { value },
                    b'\r' => State::SizeLf { value },
                    _ => {
                        return Err(ChunkedError(
                            "chunk size is followed by neither `;` nor CRLF",
                        ))
                    }
                }
            }
            State::Extension { value } => {
                self.line()?;
                match byte {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(ChunkedError("bare LF in chunk extension")),
                    _ => State::Extension { value },
                }
            }
            State::SizeLf { value } => {
                if byte != b'\n' {
                    return Err(ChunkedError("chunk size line does not end with CRLF"));
                }
                self.counted = 0;
                if value == 0 {
                    State::TrailerStart
                } else {
                    State::Data(value)
                }
            }
            State::DataCr if byte == b'\r' => State::DataLf,
            State::DataLf if byte == b'\n' => State::Size {
                value: 0,
                digits: 0,
            },
            State::DataCr | State::DataLf => {
                return Err(ChunkedError("chunk data does not end with CRLF"))
            }
            State::TrailerStart if byte == b'\r' => State::EndLf,
            State::TrailerStart | State::Trailer => {
                self.trailer()?;
                match byte {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(ChunkedError("bare LF in trailer")),
                    _ => State::Trailer,
                }
            }
            State::TrailerLf if byte == b'\n' => State::TrailerStart,
            State::TrailerLf => return Err(ChunkedError("trailer does not end with CRLF")),
            State::EndLf if byte == b'\n' => State::Done,
            State::EndLf => return Err(ChunkedError("body does not end with CRLF")),
            // `decode` handles these states without calling `step`.
            State::Data(_) | State::Done => self.state,
        };
        Ok(())
    }

    fn line(&mut self) -> Result<(), ChunkedError> {
        self.counted += 1;
        if self.counted > MAX_LINE {
            return Err(ChunkedError("chunk size line too long"));
        }
        Ok(())
    }

    fn trailer(&mut self) -> Result<(), ChunkedError> {
        self.counted += 1;
        if self.counted > MAX_TRAILERS {
            return Err(ChunkedError("trailer section too large"));
        }
        Ok(())
    }
}

/// The line before a chunk of `len` bytes: hex size and CRLF (at most 18 bytes).
pub fn size_line(len: usize) -> ([u8; 18], usize) {
    let mut out = [0u8; 18];
    let digits = if len == 0 {
        1
    } else {
        (usize::BITS - len.leading_zeros()).div_ceil(4) as usize
    };
    for (i, slot) in out[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = b"0123456789abcdef"[(len >> shift) & 0xf];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    (out, digits + 2)
}

/// What ends a chunked body: the last chunk and an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
