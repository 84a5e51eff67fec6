//! The upstream: one fixed JSON answer per request, or a two-event SSE stream.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::args::Args;
use crate::body;

/// Runs the upstream on every `--listen` address until killed.
pub fn run(args: &Args) -> Result<()> {
    let listen = args.all("listen");
    let addrs = if listen.is_empty() {
        vec!["127.0.0.1:0"]
    } else {
        listen
    };
    let addrs = addrs
        .iter()
        .map(|a| {
            a.parse::<SocketAddr>()
                .with_context(|| format!("--listen: invalid address '{a}'"))
        })
        .collect::<Result<Vec<_>>>()?;
    let threads: usize = args.get("threads", 1)?;
    let gap = Duration::from_millis(args.get("sse-gap-ms", 10)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("serve: build the tokio runtime")?;
    runtime.block_on(async move {
        let mut listeners = Vec::new();
        for addr in addrs {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("serve: bind {addr}"))?;
            println!("listening on {}", listener.local_addr()?);
            listeners.push(listener);
        }
        let tasks: Vec<_> = listeners
            .into_iter()
            .map(|l| tokio::spawn(accept_loop(l, gap)))
            .collect();
        for task in tasks {
            task.await.context("serve: accept loop panicked")?;
        }
        Ok(())
    })
}

async fn accept_loop(listener: TcpListener, gap: Duration) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of fds or similar: back off briefly instead of spinning.
                eprintln!("bench-backend: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, gap));
            // Errors here are clients going away; nothing to report for a benchmark.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<Either<Full<Bytes>, SseBody>>;

async fn answer(req: Request<Incoming>, gap: Duration) -> Result<Reply, hyper::Error> {
    let request_body = req.into_body().collect().await?.to_bytes();
    if body::wants_stream(&request_body) {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            if tx
                .send(Bytes::from_static(body::SSE_FIRST.as_bytes()))
                .await
                .is_ok()
            {
                tokio::time::sleep(gap).await;
                let _ = tx.send(Bytes::from_static(body::SSE_REST.as_bytes())).await;
            }
        });
        let mut reply = Response::new(Either::Right(SseBody { rx }));
        let headers = reply.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Tells nginx not to buffer this response (what streaming APIs do).
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        return Ok(reply);
    }
    let mut reply = Response::new(Either::Left(Full::new(Bytes::from_static(
        body::CHAT_RESPONSE.as_bytes(),
    ))));
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(reply)
}

/// A response body fed chunk by chunk from a channel (each chunk goes out as it comes).
pub struct SseBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}
