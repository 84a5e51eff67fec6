use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;

use super::*;
use crate::body::{full, BoxError};

/// A body yielding `frames` one per poll (each after one Pending), then maybe an error.
struct Frames {
    frames: std::collections::VecDeque<Result<Bytes, &'static str>>,
    pending: bool,
}

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.pending = !self.pending;
        if self.pending {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(
            self.frames
                .pop_front()
                .map(|f| f.map(Frame::data).map_err(Into::into)),
        )
    }
}

fn frames(items: &[Result<&'static [u8], &'static str>]) -> ProxyBody {
    crate::body::stream(Frames {
        frames: items.iter().map(|r| r.map(Bytes::from_static)).collect(),
        pending: false,
    })
}

async fn run(body: ProxyBody, plan: BodyPlan) -> (Vec<u8>, Result<(), WriteError>) {
    let mut out = Vec::new();
    let r = response(&mut out, b"", b"HEAD\r\n\r\n", body, plan).await;
    (out, r)
}

#[tokio::test]
async fn full_bodies_go_out_with_the_head() {
    let (out, r) = run(full("hello"), BodyPlan::Length(5)).await;
    assert!(r.is_ok());
    assert_eq!(out, b"HEAD\r\n\r\nhello");
}

#[tokio::test]
async fn streams_are_chunked_frame_by_frame() {
    let (out, r) = run(
        frames(&[Ok(b"data: 1\n\n"), Ok(b""), Ok(b"data: 2\n\n")]),
        BodyPlan::Chunked,
    )
    .await;
    assert!(r.is_ok());
    assert_eq!(
        out,
        b"HEAD\r\n\r\n9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
    );
    let (out, r) = run(full("abc"), BodyPlan::Chunked).await;
    assert!(r.is_ok());
    assert_eq!(out, b"HEAD\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    let (out, r) = run(crate::body::empty(), BodyPlan::Chunked).await;
    assert!(r.is_ok());
    assert_eq!(out, b"HEAD\r\n\r\n0\r\n\r\n");
}

#[tokio::test]
async fn a_failing_body_gets_no_last_chunk() {
    let (out, r) = run(
        frames(&[Ok(b"abc"), Err("upstream reset")]),
        BodyPlan::Chunked,
    )
    .await;
    assert!(matches!(r, Err(WriteError::Body(e)) if e.contains("upstream reset")));
    assert_eq!(out, b"HEAD\r\n\r\n3\r\nabc\r\n");
}

#[tokio::test]
async fn lengths_must_match() {
    let (out, r) = run(frames(&[Ok(b"abc")]), BodyPlan::Length(5)).await;
    assert!(matches!(r, Err(WriteError::Body(_))));
    assert_eq!(out, b"HEAD\r\n\r\nabc");
    let (out, r) = run(frames(&[Ok(b"abcdef")]), BodyPlan::Length(4)).await;
    assert!(matches!(r, Err(WriteError::Body(_))));
    assert_eq!(out, b"HEAD\r\n\r\nabcd");
}

#[tokio::test]
async fn no_body_plans_do_not_poll_the_body() {
    struct Never;
    impl http_body::Body for Never {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            panic!("polled a body that must not be sent");
        }
    }
    let mut out = Vec::new();
    let r = response(
        &mut out,
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HEAD\r\n\r\n",
        crate::body::stream(Never),
        BodyPlan::None,
    )
    .await;
    assert!(r.is_ok());
    assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\nHEAD\r\n\r\n");
}

#[tokio::test]
async fn until_close_writes_the_data_as_is() {
    let (out, r) = run(frames(&[Ok(b"ab"), Ok(b"cd")]), BodyPlan::UntilClose).await;
    assert!(r.is_ok());
    assert_eq!(out, b"HEAD\r\n\r\nabcd");
}
