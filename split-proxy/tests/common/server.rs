//! A minimal HTTP/1 test server: a handler closure served on 127.0.0.1:0 by its own
//! thread and runtime, stopped and joined on drop. For tests that need a purpose-built
//! peer (a switchable health endpoint, an OTLP receiver); ordinary upstreams are
//! [`super::Mock`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// What a handler returns.
pub type BoxResponse = Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// A running test server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Serves `handler` until dropped.
    pub fn start<F>(handler: F) -> TestServer
    where
        F: Fn(Request<Incoming>) -> BoxResponse + Send + Sync + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(handler);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let serve = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let handler = Arc::clone(&handler);
                        tokio::spawn(async move {
                            let service = service_fn(move |req| {
                                let reply = handler(req);
                                async move { Ok::<_, Infallible>(reply.await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
        });
        TestServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A response with `status` and `body`.
pub fn respond(status: u16, body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body)));
    *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    res
}
