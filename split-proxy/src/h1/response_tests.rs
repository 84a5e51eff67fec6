use super::*;
use http::header::SERVER;

fn cx(method: &Method, version: Version, keep_alive: bool) -> Context<'_> {
    Context {
        method,
        version,
        keep_alive,
    }
}

fn plan_for(status: u16, headers: &mut HeaderMap, hint: SizeHint, cx: Context<'_>) -> Plan {
    plan(StatusCode::from_u16(status).unwrap(), headers, &hint, cx)
}

#[test]
fn exact_bodies_get_a_content_length() {
    let mut h = HeaderMap::new();
    let p = plan_for(
        200,
        &mut h,
        SizeHint::with_exact(12),
        cx(&Method::GET, Version::HTTP_11, true),
    );
    assert_eq!(
        p,
        Plan {
            body: BodyPlan::Length(12),
            close: false
        }
    );
    assert_eq!(h[CONTENT_LENGTH], "12");
    assert!(h.contains_key(DATE));
    assert!(!h.contains_key(CONNECTION));
}

#[test]
fn unknown_lengths_are_chunked_on_11_and_close_delimited_on_10() {
    let mut h = HeaderMap::new();
    let p = plan_for(
        200,
        &mut h,
        SizeHint::default(),
        cx(&Method::GET, Version::HTTP_11, true),
    );
    assert_eq!(
        p,
        Plan {
            body: BodyPlan::Chunked,
            close: false
        }
    );
    assert_eq!(h[TRANSFER_ENCODING], "chunked");
    let mut h = HeaderMap::new();
    let p = plan_for(
        200,
        &mut h,
        SizeHint::default(),
        cx(&Method::GET, Version::HTTP_10, true),
    );
    assert_eq!(
        p,
        Plan {
            body: BodyPlan::UntilClose,
            close: true
        }
    );
    assert_eq!(h[CONNECTION], "close");
    assert!(!h.contains_key(TRANSFER_ENCODING));
}

#[test]
fn http10_keep_alive_is_announced() {
    let mut h = HeaderMap::new();
    let p = plan_for(
        200,
        &mut h,
        SizeHint::with_exact(0),
        cx(&Method::GET, Version::HTTP_10, true),
    );
    assert_eq!(
        p,
        Plan {
            body: BodyPlan::Length(0),
            close: false
        }
    );
    assert_eq!(h[CONNECTION], "keep-alive");
}

#[test]
fn a_declared_length_wins_and_head_has_no_body() {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("40"));
    h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    let p = plan_for(
        200,
        &mut h,
        SizeHint::default(),
        cx(&Method::GET, Version::HTTP_11, true),
    );
    assert_eq!(p.body, BodyPlan::Length(40));
    assert!(!h.contains_key(TRANSFER_ENCODING));
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("40"));
    let p = plan_for(
        200,
        &mut h,
        SizeHint::with_exact(0),
        cx(&Method::HEAD, Version::HTTP_11, true),
    );
    assert_eq!(p.body, BodyPlan::None);
    assert_eq!(h[CONTENT_LENGTH], "40");
    let mut h = HeaderMap::new();
    let p = plan_for(
        200,
        &mut h,
        SizeHint::with_exact(9),
        cx(&Method::HEAD, Version::HTTP_11, true),
    );
    assert_eq!(p.body, BodyPlan::None);
    assert_eq!(h[CONTENT_LENGTH], "9");
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
    let p = plan_for(
        204,
        &mut h,
        SizeHint::with_exact(3),
        cx(&Method::GET, Version::HTTP_11, true),
    );
    assert_eq!(p.body, BodyPlan::None);
    assert!(!h.contains_key(CONTENT_LENGTH));
    let mut h = HeaderMap::new();
    h.insert(CONTENT_LENGTH, HeaderValue::from_static("3"));
    let p = plan_for(
        304,
        &mut h,
        SizeHint::with_exact(0),
        cx(&Method::GET, Version::HTTP_11, true),
    );
    assert_eq!(p.body, BodyPlan::None);
    assert_eq!(h[CONTENT_LENGTH], "3");
}

#[test]
fn close_from_either_side() {
    let mut h = HeaderMap::new();
    let p = plan_for(
        200,
        &mut h,
        SizeHint::with_exact(0),
        cx(&Method::GET, Version::HTTP_11, false),
    );
    assert!(p.close);
    assert_eq!(h[CONNECTION], "close");
    let mut h = HeaderMap::new();
    h.insert(CONNECTION, HeaderValue::from_static("Close"));
    let p = plan_for(
        200,
        &mut h,
        SizeHint::with_exact(0),
        cx(&Method::GET, Version::HTTP_11, true),
    );
    assert!(p.close);
    assert_eq!(h[CONNECTION], "close");
}

#[test]
fn heads_are_title_case_with_the_reason() {
    let mut h = HeaderMap::new();
    h.insert(SERVER, HeaderValue::from_static("split/0"));
    h.insert("x-request-id", HeaderValue::from_static("abc"));
    h.append("set-cookie", HeaderValue::from_static("a=1"));
    h.append("set-cookie", HeaderValue::from_static("b=2"));
    let out = encode(StatusCode::NOT_FOUND, None, &h);
    // Sized exactly up front: no reallocation while writing (a growth would leave spare
    // capacity).
    assert_eq!(out.capacity(), out.len());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 404 Not Found\r\nServer: split/0\r\nX-Request-Id: abc\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n"
    );
    let out = encode(StatusCode::OK, Some(b"Fine"), &HeaderMap::new());
    assert_eq!(out.capacity(), out.len());
    assert_eq!(out, b"HTTP/1.1 200 Fine\r\n\r\n");
    let out = encode(StatusCode::from_u16(599).unwrap(), None, &HeaderMap::new());
    assert_eq!(out, b"HTTP/1.1 599 \r\n\r\n");
}

#[test]
fn listed_names_are_the_title_case_of_the_name() {
    for name in [
        "date",
        "server",
        "connection",
        "content-type",
        "cache-control",
        "content-length",
        "x-request-id",
        "transfer-encoding",
    ] {
        let mut cased = name.as_bytes().to_vec();
        title_case(&mut cased);
        assert_eq!(
            title_cased(name).map(str::as_bytes),
            Some(&cased[..]),
            "{name}"
        );
    }
    assert_eq!(title_cased("content-types"), None);
    assert_eq!(title_cased("x-other"), None);
}

/// [`plan`] as it was written with one lookup per name: the reference the one-pass
/// version must agree with.
fn plan_by_lookups(
    status: StatusCode,
    headers: &mut HeaderMap,
    hint: &SizeHint,
    cx: Context<'_>,
) -> Plan {
    let mut close = !cx.keep_alive
        || headers
            .get_all(CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        if status != StatusCode::NOT_MODIFIED {
            headers.remove(CONTENT_LENGTH);
        }
        headers.remove(TRANSFER_ENCODING);
        BodyPlan::None
    } else if cx.method == Method::HEAD {
        if declared.is_none() && !headers.contains_key(TRANSFER_ENCODING) {
            if let Some(n) = hint.exact().filter(|&n| n > 0) {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            }
        }
        BodyPlan::None
    } else if let Some(n) = declared {
        headers.remove(TRANSFER_ENCODING);
        BodyPlan::Length(n)
    } else {
        headers.remove(TRANSFER_ENCODING);
        headers.remove(CONTENT_LENGTH);
        if let Some(n) = hint.exact() {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            BodyPlan::Length(n)
        } else if cx.version == Version::HTTP_11 {
            headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            BodyPlan::Chunked
        } else {
            close = true;
            BodyPlan::UntilClose
        }
    };
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    } else if cx.version == Version::HTTP_10 {
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
    } else {
        headers.remove(CONNECTION);
    }
    if !headers.contains_key(DATE) {
        headers.insert(DATE, HeaderValue::from_static("fixed"));
    }
    Plan { body, close }
}

proptest::proptest! {
    /// Same plan and same edited head as the lookups, for heads that carry framing
    /// fields in any number and order.
    #[test]
    fn one_pass_plans_like_the_lookups(
        fields in proptest::collection::vec((0usize..6, 0usize..5), 0..7),
        status in proptest::sample::select(vec![100u16, 200, 204, 304, 404, 502]),
        head in proptest::bool::ANY,
        http10 in proptest::bool::ANY,
        keep_alive in proptest::bool::ANY,
        hint in proptest::option::of(0u64..3),
    ) {
        let names = ["connection", "content-length", "transfer-encoding", "date", "x-other", "content-type"];
        let values = ["close", "keep-alive, Close", "12", " 7 ", "chunked"];
        let mut headers = HeaderMap::new();
        for (n, v) in fields {
            headers.append(names[n], HeaderValue::from_static(values[v]));
        }
        // A `Date` from the upstream is kept; make the added one comparable.
        let mut reference = headers.clone();
        let method = if head { Method::HEAD } else { Method::GET };
        let version = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
        let hint = hint.map_or_else(SizeHint::new, SizeHint::with_exact);
        let status = StatusCode::from_u16(status).unwrap();
        let got = plan(status, &mut headers, &hint, cx(&method, version, keep_alive));
        let want = plan_by_lookups(status, &mut reference, &hint, cx(&method, version, keep_alive));
        proptest::prop_assert_eq!(got, want);
        if reference.get(DATE).is_some_and(|d| d == "fixed") {
            // Both added a Date: the reference's is fixed, ours is the clock's.
            proptest::prop_assert!(headers.contains_key(DATE));
            headers.insert(DATE, HeaderValue::from_static("fixed"));
        }
        proptest::prop_assert_eq!(headers, reference);
    }
}
