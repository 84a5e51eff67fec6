//! `split-sim upstream`: an OpenAI-compatible mock LLM server for demos and tests.
//!
//! - `POST …/chat/completions` (any prefix: `/v1/…`, `/v2/…`, `/chat/completions`):
//!   a `chat.completion` JSON, or SSE `chat.completion.chunk`s with `"stream": true`.
//! - `GET …/models`: the model list. `GET /_stats`: hit counts per path and status.
//! - Every answer carries `X-Split-Mock: <name>` and `X-Split-Mock-Path: <path>`; JSON
//!   replies also carry an `x_split_mock` object echoing name, method, path, query and
//!   request headers, so a test can tell which upstream and which path served it.
//! - Faults: a seeded failure rate with a chosen status (and `Retry-After`), fixed
//!   latency, streams reset after N chunks, streams whose first event is an error.
//!
//! [`spawn`] binds synchronously and serves on its own thread and runtime, so it works
//! from plain `#[test]`s and from inside any tokio runtime alike.

pub mod cli;
mod fault;
mod handler;
pub mod openai;
mod stats;
pub mod tls;

use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use fault::FaultPlan;
pub use stats::StatsSnapshot;

/// HTTPS settings of the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// DNS names / IPs in the self-signed certificate.
    pub names: Vec<String>,
    /// Where to write the certificate PEM, if anywhere.
    pub cert_out: Option<std::path::PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            cert_out: None,
        }
    }
}

/// Everything the mock can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Name sent in `X-Split-Mock`.
    pub name: String,
    /// Address to bind (port 0 = any free port).
    pub listen: SocketAddr,
    /// Serve HTTPS with a self-signed certificate.
    pub tls: Option<TlsSettings>,
    /// The assistant's reply text.
    pub reply: String,
    /// Models listed by `GET /v1/models`.
    pub models: Vec<String>,
    /// Content chunks of a streamed reply.
    pub chunks: u32,
    /// Pause before each streamed content chunk.
    pub chunk_interval: Duration,
    /// Delay before answering any API request.
    pub latency: Duration,
    /// Seeded failure injection (rate 0 = off).
    pub fault: FaultPlan,
    /// Abort streams after this many content chunks.
    pub reset_after_chunks: Option<u32>,
    /// `Retry-After` seconds on every injected failure (default: `1` on a 429 only).
    pub retry_after: Option<u64>,
    /// Streamed replies are a 200 SSE stream whose first event is an error.
    pub first_event_error: bool,
    /// Runtime worker threads.
    pub workers: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            name: "mock".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            reply: "Pong! How can I assist you today?".to_owned(),
            models: vec!["gpt-4".to_owned(), "gpt-4o-mini".to_owned()],
            chunks: 4,
            chunk_interval: Duration::from_millis(20),
            latency: Duration::ZERO,
            fault: FaultPlan {
                rate: 0.0,
                status: 503,
                seed: 0,
            },
            reset_after_chunks: None,
            retry_after: None,
            first_event_error: false,
            workers: 1,
        }
    }
}

/// A running mock. Dropping it stops the server and frees the port.
#[derive(Debug)]
pub struct RunningUpstream {
    addr: SocketAddr,
    cert_pem: Option<String>,
    name: String,
    stats: Arc<stats::Stats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Binds `config.listen` and starts serving on a background thread.
pub fn spawn(config: UpstreamConfig) -> io::Result<RunningUpstream> {
    let tls = match &config.tls {
        Some(settings) => {
            let cert = tls::self_signed(&settings.names)?;
            if let Some(path) = &settings.cert_out {
                std::fs::write(path, &cert.cert_pem)?;
            }
            Some(cert)
        }
        None => None,
    };
    let std_listener = StdTcpListener::bind(config.listen)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers.max(1))
        .thread_name("split-mock")
        .enable_all()
        .build()?;
    let stats = Arc::new(stats::Stats::default());
    let state = Arc::new(handler::State::new(config.clone(), Arc::clone(&stats)));
    let acceptor = tls
        .as_ref()
        .map(|t| tokio_rustls::TlsAcceptor::from(Arc::clone(&t.server_config)));
    let (stop_tx, stop_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("split-mock-{}", config.name))
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(listener) => accept_loop(listener, acceptor, state, stop_rx).await,
                    Err(e) => eprintln!("split-sim upstream: cannot listen: {e}"),
                }
            });
            // Dropping the runtime cancels the connection tasks still running.
            runtime.shutdown_timeout(Duration::from_millis(100));
        })?;
    Ok(RunningUpstream {
        addr,
        cert_pem: tls.map(|t| t.cert_pem),
        name: config.name,
        stats,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<handler::State>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let (tcp, _peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    eprintln!("split-sim upstream: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(state.handle(req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Title-case header names on HTTP/1.1, as most servers send them.
            builder.http1().title_case_headers(true);
            // Connection errors (client went away, reset streams) end that connection only.
            let _ = match acceptor {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                    Err(_) => return,
                },
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
        });
    }
}

impl RunningUpstream {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port` or `https://ip:port`.
    pub fn url(&self) -> String {
        let scheme = if self.cert_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The self-signed certificate (PEM) in TLS mode.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// The mock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hit counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot(&self.name)
    }

    /// Stops the server and waits until its thread has ended and the port is free.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningUpstream {
    fn drop(&mut self) {
        self.shutdown();
    }
}
