//! Listeners: accept loops serving HTTP/1.1 with split's own server ([`crate::h1`]) and
//! h2c (prior knowledge) with hyper, and graceful drain: on shutdown every loop stops
//! accepting, idle connections close, open connections finish their in-flight requests
//! (answered with `Connection: close`), and `drain` waits for them up to the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONTENT_TYPE, SERVER};
use http::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::body::{full, ProxyBody};
use crate::h1::RequestBody;
use crate::headers::server_value;
use crate::metrics::Metrics;
use crate::reply;

/// The future of one handled request.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;

/// `make()`, pinned in a box allocated before it is called, so the value can be built in
/// place: `Box::pin(value)` builds a future on the stack and then copies all of it (the
/// room of every state it may reach, not just its arguments) into the box.
pub fn pin_boxed<T>(make: impl FnOnce() -> T) -> Pin<Box<T>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// A request handler: request + client address → response.
pub type Handler = Arc<dyn Fn(Request<RequestBody>, SocketAddr) -> HandlerFuture + Send + Sync>;

/// Shutdown signalling shared by every listener and connection.
pub struct Lifecycle {
    stop_tx: watch::Sender<bool>,
    alive_tx: mpsc::Sender<()>,
    alive_rx: mpsc::Receiver<()>,
}

impl Lifecycle {
    /// A running lifecycle.
    pub fn new() -> Lifecycle {
        let (stop_tx, _) = watch::channel(false);
        let (alive_tx, alive_rx) = mpsc::channel(1);
        Lifecycle {
            stop_tx,
            alive_tx,
            alive_rx,
        }
    }

    /// Serves `listener` with `handler` until shutdown, on the current worker.
    pub fn serve(&self, listener: TcpListener, handler: Handler) {
        tokio::spawn(accept_loop(
            listener,
            handler,
            self.stop_tx.subscribe(),
            self.alive_tx.clone(),
        ));
    }

    /// Serves `listener` with `handler` on the current worker and on each of `extra`
    /// (the other workers' runtimes): each worker accepts from the same socket, and the
    /// connections it accepts run on it. A new connection wakes every worker's loop; one
    /// accepts it, and the others' `accept` finds nothing and waits again.
    pub fn serve_on_workers(
        &self,
        extra: &[tokio::runtime::Handle],
        listener: TcpListener,
        handler: Handler,
    ) -> Result<(), String> {
        if extra.is_empty() {
            self.serve(listener, handler);
            return Ok(());
        }
        let shared = listener
            .into_std()
            .map_err(|e| format!("cannot share a listener between workers: {e}"))?;
        for worker in extra {
            let clone = shared
                .try_clone()
                .map_err(|e| format!("cannot share a listener between workers: {e}"))?;
            // Registered with that worker's event loop, so its readiness wakes that worker.
            let _entered = worker.enter();
            let listener = TcpListener::from_std(clone)
                .map_err(|e| format!("cannot share a listener between workers: {e}"))?;
            worker.spawn(accept_loop(
                listener,
                Arc::clone(&handler),
                self.stop_tx.subscribe(),
                self.alive_tx.clone(),
            ));
        }
        let own = TcpListener::from_std(shared)
            .map_err(|e| format!("cannot share a listener between workers: {e}"))?;
        self.serve(own, handler);
        Ok(())
    }

    /// Stops accepting and waits up to `grace` for open connections to finish.
    /// Returns `true` when every connection finished, `false` when the grace period ran out.
    pub async fn drain(self, grace: Duration) -> bool {
        let Lifecycle {
            stop_tx,
            alive_tx,
            mut alive_rx,
        } = self;
        let _ = stop_tx.send(true);
        drop(alive_tx);
        // `recv` returns `None` once every connection task dropped its sender.
        tokio::time::timeout(grace, async { while alive_rx.recv().await.is_some() {} })
            .await
            .is_ok()
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

/// Accepts connections on `listener` and serves each on the current worker until `stop`.
async fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    spawn_connection(stream, peer, Arc::clone(&handler), stop.clone(), alive.clone());
                }
                Err(e) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}

fn spawn_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    handler: Handler,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    tokio::spawn(async move {
        let _alive = alive;
        crate::h1::conn::serve(stream, peer, handler, stop).await;
    });
}

/// The Prometheus endpoint: `/apisix/prometheus/metrics` and `/metrics`.
pub fn metrics_handler(metrics: Arc<Metrics>) -> Handler {
    Arc::new(move |req, _peer| {
        let metrics = Arc::clone(&metrics);
        Box::pin(async move {
            match req.uri().path() {
                "/metrics" | "/apisix/prometheus/metrics" => {
                    let mut res = Response::new(full(metrics.encode()));
                    res.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    res.headers_mut().insert(SERVER, server_value());
                    res
                }
                _ => reply::error(StatusCode::NOT_FOUND, "404 Route Not Found"),
            }
        })
    })
}

/// Binds `addr`; the error names the address.
pub async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}
