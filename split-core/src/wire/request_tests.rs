use super::*;
use proptest::prelude::*;

/// [`parse`] on a copy of `raw`.
fn parse_slice(raw: &[u8]) -> Result<Option<Head>, HeadError> {
    parse(&mut BytesMut::from(raw))
}

fn ok(raw: &str) -> Head {
    parse_slice(raw.as_bytes()).unwrap().expect("complete head")
}

#[test]
fn parses_a_request_head() {
    let raw = "POST /v1/chat?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nx-two: 2\r\nContent-Length: 5\r\n\r\nhello";
    let mut buf = BytesMut::from(raw.as_bytes());
    let head = parse(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..], b"hello");
    assert_eq!(head.method, Method::POST);
    assert_eq!(head.uri, "/v1/chat?x=1");
    assert_eq!(head.version, Version::HTTP_11);
    assert_eq!(head.headers.get_all("x-two").iter().count(), 2);
    assert_eq!(head.framing, Framing::Length(5));
    assert!(head.keep_alive);
    assert!(!head.expect_continue);
}

#[test]
fn heads_with_more_fields_than_the_stack_room_parse_whole() {
    // Up to INLINE_FIELDS spans stay on the stack, more go to the heap: the same head
    // either way, up to the limit.
    use super::spans::many_fields;
    for n in many_fields::counts(MAX_HEADERS) {
        let fields = many_fields::text(n);
        let raw = format!("POST /p HTTP/1.1\r\n{fields}Content-Length: 2\r\n\r\nok");
        let mut buf = BytesMut::from(raw.as_bytes());
        let head = parse(&mut buf).unwrap().expect("complete head");
        assert_eq!(&buf[..], b"ok", "{n} fields");
        many_fields::check(&head.headers, n, 1);
        assert_eq!(head.framing, Framing::Length(2), "{n} fields");
    }
}

#[test]
fn leading_empty_lines_are_skipped() {
    let mut buf = BytesMut::from(&b"\r\nGET / HTTP/1.1\r\n\r\nX"[..]);
    assert!(parse(&mut buf).unwrap().is_some());
    assert_eq!(&buf[..], b"X");
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    assert!(ok("GET / HTTP/1.1\r\n\r\n").keep_alive);
    assert!(!ok("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(!ok("GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n").keep_alive);
    assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
}

#[test]
fn body_framing() {
    let framing = |fields: &str| {
        parse_slice(format!("POST / HTTP/1.1\r\n{fields}\r\n").as_bytes())
            .map(|h| h.map(|h| h.framing))
    };
    assert_eq!(framing(""), Ok(Some(Framing::Empty)));
    assert_eq!(framing("Content-Length: 0\r\n"), Ok(Some(Framing::Empty)));
    assert_eq!(
        framing("Content-Length: 7\r\n"),
        Ok(Some(Framing::Length(7)))
    );
    assert_eq!(
        framing("Content-Length: 9999999999999999999\r\n"),
        Ok(Some(Framing::Length(9_999_999_999_999_999_999)))
    );
    assert_eq!(
        framing("Content-Length: 7, 7\r\nContent-Length: 7\r\n"),
        Ok(Some(Framing::Length(7)))
    );
    // One field (read from the head's bytes) and several (looked up) alike.
    assert_eq!(
        framing("Content-Length: 7 , 7,\r\n"),
        Ok(Some(Framing::Length(7)))
    );
    assert_eq!(
        framing("X-A: 1\r\nContent-Length: 3\r\nX-B: 2\r\n"),
        Ok(Some(Framing::Length(3)))
    );
    assert_eq!(
        framing("Transfer-Encoding: Chunked\r\n"),
        Ok(Some(Framing::Chunked))
    );
    for bad in [
        "Content-Length: 7\r\nContent-Length: 8\r\n",
        "Content-Length: 7, 8\r\n",
        "Content-Length: 7\r\nContent-Length: 7, 8\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: +7\r\n",
        "Content-Length: 99999999999999999999\r\n",
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ] {
        assert!(matches!(framing(bad), Err(HeadError::Framing(_))), "{bad}");
    }
    let old = parse_slice(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(matches!(old, Err(HeadError::Framing(_))));
}

#[test]
fn expect_continue_needs_http11_and_a_body() {
    assert!(
        ok("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expect_continue
    );
    assert!(!ok("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    assert!(
        !ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue
    );
}

#[test]
fn limits_and_malformed_heads() {
    assert_eq!(
        parse_slice(b"GET / HTTP/1.1\r\nBad\x01Header: 1\r\n\r\n").unwrap_err(),
        HeadError::Malformed
    );
    assert_eq!(
        parse_slice(b"GET / HTTP/2.0\r\n\r\n").unwrap_err(),
        HeadError::Malformed
    );
    assert_eq!(
        parse_slice(b"\x16\x03\x01\x02\x00").unwrap_err(),
        HeadError::Malformed
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    assert_eq!(
        parse_slice(long_uri.as_bytes()).unwrap_err(),
        HeadError::UriTooLong
    );
    assert_eq!(
        parse_slice(&long_uri.as_bytes()[..66_000]).unwrap_err(),
        HeadError::UriTooLong
    );
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: 1\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(
        parse_slice(many.as_bytes()).unwrap_err(),
        HeadError::TooLarge
    );
    let big: String = (0..50)
        .map(|i| format!("X-{i}: {}\r\n", "v".repeat(2000)))
        .collect();
    let big = format!("GET / HTTP/1.1\r\n{big}\r\n");
    assert!(big.len() > MAX_HEAD);
    assert_eq!(
        parse_slice(big.as_bytes()).unwrap_err(),
        HeadError::TooLarge
    );
    assert_eq!(
        parse_slice(&big.as_bytes()[..MAX_HEAD + 1]).unwrap_err(),
        HeadError::TooLarge
    );
    assert!(matches!(
        parse_slice(&big.as_bytes()[..MAX_HEAD - 10]),
        Ok(None)
    ));
}

/// What the gateway's read loop makes of `raw` arriving `step` bytes at a time: the first
/// verdict that is not "more bytes needed" (`Ok(None)` if none).
fn read_in_steps(raw: &[u8], step: usize) -> Result<Option<String>, HeadError> {
    let mut buf = BytesMut::new();
    for piece in raw.chunks(step) {
        buf.extend_from_slice(piece);
        if let Some(head) = parse(&mut buf)? {
            return Ok(Some(summary(&head)));
        }
    }
    Ok(None)
}

/// The verdict on a head does not depend on how its bytes arrive: a limit passed before a
/// malformed byte arrives wins, and a malformed byte that arrives first wins, in one read
/// as in many.
#[test]
fn verdicts_do_not_depend_on_read_sizes() {
    // Two 70,000-byte fields, then a line without a colon after the 96 KiB limit.
    let long = "a".repeat(70_000);
    let past_limit = format!("GET / HTTP/1.1\r\nX-A: {long}\r\nX-B: {long}\r\nBroken\r\n\r\n");
    // A 70,000-byte request line with a control byte at its start.
    let bad_then_long = format!("GET /\x01{long} HTTP/1.1\r\nHost: x\r\n\r\n");
    // The same line with the control byte past the 64 KiB line limit.
    let long_then_bad = format!("GET /{long}\x01 HTTP/1.1\r\nHost: x\r\n\r\n");
    // A head between the two limits that completes.
    let fine = format!(
        "GET / HTTP/1.1\r\nX-A: {long}\r\nX-B: {}\r\n\r\n",
        "b".repeat(20_000)
    );
    for (raw, expected) in [
        (past_limit.as_bytes(), Err(HeadError::TooLarge)),
        (bad_then_long.as_bytes(), Err(HeadError::Malformed)),
        (long_then_bad.as_bytes(), Err(HeadError::UriTooLong)),
    ] {
        for step in [raw.len(), 65_536, 8_192, 1_000, 61] {
            assert_eq!(
                read_in_steps(raw, step).map(|_| ()),
                expected,
                "{} bytes, step {step}",
                raw.len()
            );
        }
    }
    let whole = read_in_steps(fine.as_bytes(), fine.len()).unwrap();
    assert!(whole.is_some());
    for step in [65_536, 8_192, 1_000, 61] {
        assert_eq!(
            read_in_steps(fine.as_bytes(), step).unwrap(),
            whole,
            "step {step}"
        );
    }
}

fn summary(head: &Head) -> String {
    format!(
        "{} {} {:?} {:?} {:?} {} {}",
        head.method,
        head.uri,
        head.version,
        head.headers,
        head.framing,
        head.keep_alive,
        head.expect_continue
    )
}

proptest! {
    /// Any prefix of a valid head needs more bytes; the whole parses the same whatever
    /// follows it.
    #[test]
    fn any_split_point_parses_the_same(
        path in "/[a-z0-9/]{0,40}",
        fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}"), 0..12),
        tail in proptest::collection::vec(any::<u8>(), 0..40),
        cut in any::<usize>(),
    ) {
        let mut raw = format!("GET {path} HTTP/1.1\r\n");
        for (name, value) in &fields {
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
            raw.push_str(&format!("{name}: {}\r\n", value.trim()));
        }
        raw.push_str("\r\n");
        let whole = parse_slice(raw.as_bytes()).unwrap().unwrap();
        let cut = cut % raw.len();
        prop_assert!(parse_slice(&raw.as_bytes()[..cut]).unwrap().is_none());
        let mut with_tail = BytesMut::from(raw.as_bytes());
        with_tail.extend_from_slice(&tail);
        let again = parse(&mut with_tail).unwrap().unwrap();
        prop_assert_eq!(&with_tail[..], &tail[..]);
        prop_assert_eq!(summary(&whole), summary(&again));
    }

    /// Arbitrary bytes never panic, and a complete head never claims more than the buffer.
    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..800)) {
        let mut buf = BytesMut::from(&input[..]);
        if let Ok(Some(_)) = parse(&mut buf) {
            prop_assert!(buf.len() < input.len());
            prop_assert!(input.ends_with(&buf));
        }
    }
}
