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
