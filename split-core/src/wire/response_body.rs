//! Response body framing: takes body bytes out of the connection's read buffer as they
//! arrive (Content-Length, chunked with trailers skipped, until close). Bounded: a chunk
//! size line or the trailers may not exceed [`MAX_LINE`] / [`MAX_TRAILERS`] bytes.

use bytes::{Buf, Bytes, BytesMut};

use super::response::BodyFraming;

/// Longest chunk-size line (with extensions).
pub const MAX_LINE: usize = 4096;
/// Most trailer bytes skipped after the last chunk.
pub const MAX_TRAILERS: usize = 64 * 1024;

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes.
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The body ended.
    End,
}

/// Why a body cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Malformed chunked encoding.
    #[error("invalid chunked encoding from upstream: {0}")]
    Chunked(&'static str),
    /// The upstream closed before the body ended.
    #[error("upstream closed the connection before the response body ended")]
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Close,
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
    Done,
}

/// Decoder of one response body.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// A decoder for `framing`.
    pub fn new(framing: BodyFraming) -> Decoder {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::Size,
            BodyFraming::Close => State::Close,
        };
        Decoder { state }
    }

    /// True once the body ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes still expected, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next body bytes out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, DecodeError> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Close => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                State::Length(rest) | State::Data(rest) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = usize::try_from(rest).unwrap_or(usize::MAX).min(buf.len());
                    let left = rest - n as u64;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::DataEnd,
                        _ => State::Data(left),
                    };
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                State::Size => {
                    let Some(line) = take_line(buf, MAX_LINE)? else {
                        return Ok(Step::NeedMore);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers(0)
                    } else {
                        State::Data(size)
                    };
                }
                State::DataEnd => {
                    let Some(line) = take_line(buf, 2)? else {
                        return Ok(Step::NeedMore);
                    };
                    if !line.is_empty() {
                        return Err(DecodeError::Chunked("missing CRLF after chunk data"));
                    }
                    self.state = State::Size;
                }
                State::Trailers(seen) => {
                    let room = MAX_TRAILERS.saturating_sub(seen);
                    let Some(line) = take_line(buf, room)? else {
                        return Ok(Step::NeedMore);
                    };
                    self.state = if line.is_empty() {
                        State::Done
                    } else {
                        State::Trailers(seen + line.len() + 2)
                    };
                }
            }
        }
    }

    /// The connection reached end of file: fine only for a close-delimited or ended body.
    pub fn eof(&mut self) -> Result<(), DecodeError> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(DecodeError::Truncated),
        }
    }
}

/// Takes one line (without its `\r\n` or `\n`) off `buf`; `None` when no full line is
/// there yet; an error when the line is longer than `max`.
fn take_line(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, DecodeError> {
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    let Some(end) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() > max.saturating_add(1) {
            return Err(DecodeError::Chunked("line too long"));
        }
        return Ok(None);
    };
    let mut line = buf.split_to(end + 1);
    line.truncate(end);
    if line.last() == Some(&b'\r') {
        line.truncate(end - 1);
    }
    if line.len() > max {
        return Err(DecodeError::Chunked("line too long"));
    }
    Ok(Some(line))
}

/// The hex size at the start of a chunk-size line (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<u64, DecodeError> {
    let mut line = line;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(DecodeError::Chunked("bad chunk size"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        // Checked above: an ASCII hex digit.
        let d = (b as char).to_digit(16).unwrap_or(0);
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or(DecodeError::Chunked("chunk size overflows"))?;
    }
    line.advance(digits);
    let rest = line.iter().skip_while(|b| **b == b' ' || **b == b'\t');
    match rest.clone().next() {
        None | Some(b';') => Ok(size),
        Some(_) => Err(DecodeError::Chunked("bad chunk size")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `wire` in pieces cut at `cuts`, collecting data; `Err` on a decode error,
    /// `Ok((data, ended))`.
    fn feed(
        framing: BodyFraming,
        wire: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, bool), DecodeError> {
        let mut decoder = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut at = 0;
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        points.push(wire.len());
        for point in points {
            buf.extend_from_slice(&wire[at..point.max(at)]);
            at = point.max(at);
            loop {
                match decoder.decode(&mut buf)? {
                    Step::Data(b) => {
                        assert!(!b.is_empty());
                        data.extend_from_slice(&b);
                    }
                    Step::NeedMore => break,
                    Step::End => return Ok((data, true)),
                }
            }
        }
        Ok((data, false))
    }

    fn chunked(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            wire.extend_from_slice(format!("{:X};ext=1\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\nx-trailer: 1\r\n\r\n");
        wire
    }

    #[test]
    fn length_and_close_bodies() {
        let (data, ended) = feed(BodyFraming::Length(3), b"abcdef", &[1]).unwrap();
        assert_eq!((data.as_slice(), ended), (&b"abc"[..], true));
        let (data, ended) = feed(BodyFraming::Close, b"abcdef", &[2, 4]).unwrap();
        assert_eq!((data.as_slice(), ended), (&b"abcdef"[..], false));
        let mut d = Decoder::new(BodyFraming::Close);
        assert!(d.eof().is_ok() && d.is_done());
        let mut d = Decoder::new(BodyFraming::Length(2));
        assert_eq!(d.eof(), Err(DecodeError::Truncated));
        assert!(Decoder::new(BodyFraming::Empty).is_done());
    }

    #[test]
    fn chunked_errors_are_reported() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nabcdeXXXX",
            b"1 x\r\n",
            b"11111111111111111\r\n",
        ] {
            assert!(feed(BodyFraming::Chunked, bad, &[]).is_err(), "{bad:?}");
        }
        let long = vec![b'1'; MAX_LINE + 10];
        assert!(feed(BodyFraming::Chunked, &long, &[]).is_err());
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(b"x: yyyyyyyyyy\r\n", 5000).flatten());
        assert!(feed(BodyFraming::Chunked, &trailers, &[]).is_err());
        let (data, ended) = feed(BodyFraming::Chunked, b"3\nabc\n0\n\n", &[]).unwrap();
        assert_eq!((data.as_slice(), ended), (&b"abc"[..], true));
    }

    proptest! {
        #[test]
        fn chunked_round_trips_at_any_split(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let wire = chunked(&chunks);
            let (data, ended) = feed(BodyFraming::Chunked, &wire, &cuts).unwrap();
            prop_assert!(ended);
            prop_assert_eq!(data, chunks.concat());
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            wire in proptest::collection::vec(any::<u8>(), 0..400),
            cuts in proptest::collection::vec(any::<usize>(), 0..4),
            len in 0u64..500,
        ) {
            let _ = feed(BodyFraming::Chunked, &wire, &cuts);
            let _ = feed(BodyFraming::Length(len), &wire, &cuts);
            let _ = feed(BodyFraming::Close, &wire, &cuts);
        }
    }
}
