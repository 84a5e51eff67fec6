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
    Box::into_pin(boxed(make))
}

/// `make()` in a box allocated before it is called, so the value can be built in place
/// rather than on the stack and then copied (`Box::new(value)`).
pub fn boxed<T>(make: impl FnOnce() -> T) -> Box<T> {
    Box::write(Box::new_uninit(), make())
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
        self.serve_on_workers(&[], listener, handler);
    }

    /// Serves `listener` with `handler` on the current worker and on each of `extra`
    /// (the other workers' runtimes). This worker accepts and hands the connections out
    /// in turn, itself included, so N connections spread N/workers to each worker (when
    /// every worker waits on the socket, the first to wake takes the connection, and one
    /// worker ends up with most of them); a connection then runs on its worker.
    pub fn serve_on_workers(
        &self,
        extra: &[tokio::runtime::Handle],
        listener: TcpListener,
        handler: Handler,
    ) {
        let lanes = extra
            .iter()
            .map(|worker| {
                let (lane, handed) = mpsc::unbounded_channel();
                worker.spawn(take_handed(
                    handed,
                    Arc::clone(&handler),
                    self.stop_tx.subscribe(),
                    self.alive_tx.clone(),
                ));
                lane
            })
            .collect();
        tokio::spawn(hand_out(
            listener,
            lanes,
            handler,
            self.stop_tx.subscribe(),
            self.alive_tx.clone(),
        ));
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

/// Accepts connections on `listener` until `stop` and hands them out in turn: to this
/// worker, then to each of `lanes` (the other workers; none with one worker).
async fn hand_out(
    listener: TcpListener,
    lanes: Vec<mpsc::UnboundedSender<Handed>>,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let mut turn = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let lane = turn;
                    turn = (turn + 1) % (lanes.len() + 1);
                    let Some(lane) = lane.checked_sub(1).and_then(|i| lanes.get(i)) else {
                        spawn_connection(stream, peer, Arc::clone(&handler), stop.clone(), alive.clone());
                        continue;
                    };
                    // Out of this worker's event loop, into the other's (`take_handed`).
                    match stream.into_std() {
                        // A worker that is gone (only while shutting down) drops it.
                        Ok(stream) => drop(lane.send((stream, peer))),
                        Err(e) => tracing::warn!(error = %e, %peer, "cannot hand a connection to another worker"),
                    }
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

/// A connection accepted by one worker for another.
type Handed = (std::net::TcpStream, SocketAddr);

/// Serves the connections handed to this worker until the acceptor stops.
async fn take_handed(
    mut handed: mpsc::UnboundedReceiver<Handed>,
    handler: Handler,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    while let Some((stream, peer)) = handed.recv().await {
        match tokio::net::TcpStream::from_std(stream) {
            Ok(stream) => spawn_connection(
                stream,
                peer,
                Arc::clone(&handler),
                stop.clone(),
                alive.clone(),
            ),
            Err(e) => tracing::warn!(error = %e, %peer, "cannot serve a handed connection"),
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::workers::{self, Extra};

    /// A handler answering with the index of the worker that runs it.
    fn which_worker() -> Handler {
        Arc::new(|_req, _peer| {
            Box::pin(async { Response::new(full(workers::current().to_string())) })
        })
    }

    fn ask(addr: SocketAddr) -> String {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer.rsplit("\r\n\r\n").next().unwrap().to_owned()
    }

    #[test]
    fn connections_are_handed_to_the_workers_in_turn_and_drained() {
        let runtime = workers::runtime(None).unwrap();
        let (extra, _) = Extra::start(3, None).unwrap();
        let served = runtime.block_on(async {
            let lifecycle = Lifecycle::new();
            let listener = bind("proxy", "127.0.0.1:0".parse().unwrap()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            lifecycle.serve_on_workers(extra.handles(), listener, which_worker());
            let served: Vec<String> =
                tokio::task::spawn_blocking(move || (0..7).map(|_| ask(addr)).collect())
                    .await
                    .unwrap();
            assert!(lifecycle.drain(Duration::from_secs(10)).await, "drained");
            served
        });
        extra.stop();
        assert_eq!(served, vec!["0", "1", "2", "0", "1", "2", "0"]);
    }

    #[test]
    fn one_worker_serves_alone() {
        let runtime = workers::runtime(None).unwrap();
        let served = runtime.block_on(async {
            let lifecycle = Lifecycle::new();
            let listener = bind("proxy", "127.0.0.1:0".parse().unwrap()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            lifecycle.serve_on_workers(&[], listener, which_worker());
            tokio::task::spawn_blocking(move || (0..3).map(|_| ask(addr)).collect::<Vec<_>>())
                .await
                .unwrap()
        });
        assert_eq!(served, vec!["0", "0", "0"]);
    }
}
