use super::*;
use proptest::prelude::*;

/// Decodes `input` fed in pieces cut at `cuts`: data, whether done, what is left.
fn decode_in_pieces(
    input: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, bool, Vec<u8>), ChunkedError> {
    let mut decoder = Decoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    for point in points {
        buf.extend_from_slice(&input[at..point.max(at)]);
        at = point.max(at);
        while let Some(data) = decoder.decode(&mut buf)? {
            out.extend_from_slice(&data);
        }
        if decoder.is_done() {
            break;
        }
    }
    buf.extend_from_slice(&input[at..]);
    Ok((out, decoder.is_done(), buf.to_vec()))
}

fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        let (line, len) = size_line(chunk.len());
        out.extend_from_slice(&line[..len]);
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(LAST_CHUNK);
    out
}

#[test]
fn decodes_chunks_extensions_and_trailers() {
    let input =
        b"5;name=value\r\nhello\r\n6 \r\n world\r\n1 \t; x\r\n!\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
    let (data, done, rest) = decode_in_pieces(input, &[]).unwrap();
    assert_eq!(data, b"hello world!");
    assert!(done);
    assert_eq!(rest, b"NEXT");
}

#[test]
fn refuses_broken_framing() {
    for (input, why) in [
        (
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            "chunk size is not hexadecimal",
        ),
        (b"\r\n", "chunk size is not hexadecimal"),
        (b"5\nhello", "chunk size is not hexadecimal"),
        (b"5\r\nhelloXX", "chunk data does not end with CRLF"),
        (b"5\r\nhello\rX", "chunk data does not end with CRLF"),
        (b"5\rX", "chunk size line does not end with CRLF"),
        (b"11111111111111111\r\n", "chunk size too large"),
        (b"0\r\n\rX", "body does not end with CRLF"),
        (b"0\r\nA: b\n", "bare LF in trailer"),
        (b"5;a\n", "bare LF in chunk extension"),
        // Only whitespace, then `;` or CRLF, may follow the size (RFC 9112 §7.1.1):
        // what follows a stray word is not an extension.
        (
            b"5 abc\r\n",
            "chunk size is followed by neither `;` nor CRLF",
        ),
        (
            b"5 \t 0\r\n",
            "chunk size is followed by neither `;` nor CRLF",
        ),
    ] {
        assert_eq!(
            decode_in_pieces(input, &[]).unwrap_err(),
            ChunkedError(why),
            "{input:?}"
        );
    }
    let long_extension = format!("5;{}\r\n", "a".repeat(MAX_LINE));
    assert_eq!(
        decode_in_pieces(long_extension.as_bytes(), &[]).unwrap_err(),
        ChunkedError("chunk size line too long")
    );
    let long_trailer = format!("0\r\nX: {}\r\n\r\n", "a".repeat(MAX_TRAILERS));
    assert_eq!(
        decode_in_pieces(long_trailer.as_bytes(), &[]).unwrap_err(),
        ChunkedError("trailer section too large")
    );
}

#[test]
fn sixteen_hex_digits_are_the_most() {
    let input = b"ffffffffffffffff\r\nabc";
    let (data, done, _) = decode_in_pieces(input, &[]).unwrap();
    assert_eq!(data, b"abc");
    assert!(!done);
}

#[test]
fn size_lines_are_lowercase_hex() {
    for len in [
        0usize,
        1,
        9,
        10,
        15,
        16,
        255,
        4096,
        65_535,
        1 << 40,
        usize::MAX,
    ] {
        let (line, n) = size_line(len);
        assert_eq!(&line[..n], format!("{len:x}\r\n").as_bytes());
    }
}

proptest! {
    /// Any chunks, cut anywhere: decoded data is the concatenation, the body ends, and
    /// bytes after it are left in the buffer.
    #[test]
    fn round_trip_at_any_split(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        tail in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut input = encode(&chunks);
        input.extend_from_slice(&tail);
        let (data, done, rest) = decode_in_pieces(&input, &cuts).unwrap();
        prop_assert_eq!(data, chunks.concat());
        prop_assert!(done);
        prop_assert_eq!(rest, tail);
    }

    /// Arbitrary bytes never panic and never produce more data than they hold.
    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        if let Ok((data, _, _)) = decode_in_pieces(&input, &cuts) {
            prop_assert!(data.len() <= input.len());
        }
    }
}
