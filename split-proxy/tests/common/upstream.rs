//! Mock upstreams. Each runs on its own thread and tokio runtime and records every
//! request it receives. Behaviour by path:
//! - `/slow/<ms>/...`: answers after `<ms>` milliseconds;
//! - `/sse`: `text/event-stream`, four events 300 ms apart;
//! - `/status/<code>`: answers `<code>`;
//! - anything else: 200 JSON `{"mock", "path", "host", "usage"}`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::{mpsc, oneshot};

type MockBody = UnsyncBoxBody<Bytes, Infallible>;

/// One request a mock received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// HTTP version used.
    pub version: http::Version,
    /// When it arrived.
    pub at: Instant,
}

/// A running mock upstream; stopped on drop.
pub struct Mock {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mock {
    /// A plain HTTP mock named `name`.
    pub fn http(name: &str) -> Mock {
        Mock::start(name, None, false)
    }

    /// An HTTPS mock with `tls`.
    pub fn https(name: &str, tls: Arc<rustls::ServerConfig>) -> Mock {
        Mock::start(name, Some(tls), false)
    }

    /// Accepts connections and closes them at once (a node that resets).
    pub fn resetting() -> Mock {
        Mock::start("reset", None, true)
    }

    fn start(name: &str, tls: Option<Arc<rustls::ServerConfig>>, reset: bool) -> Mock {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind mock");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("mock addr");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let name = name.to_owned();
        let (h, c) = (Arc::clone(&hits), Arc::clone(&connections));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("mock runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
                let serve = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        c.fetch_add(1, Ordering::SeqCst);
                        if reset {
                            // Zero linger makes the close an RST; nothing blocks.
                            #[allow(deprecated)]
                            let _ = stream.set_linger(Some(Duration::ZERO));
                            drop(stream);
                            continue;
                        }
                        let (name, hits, acceptor) =
                            (name.clone(), Arc::clone(&h), acceptor.clone());
                        tokio::spawn(async move {
                            let service = service_fn(move |req| {
                                let (name, hits) = (name.clone(), Arc::clone(&hits));
                                async move { Ok::<_, Infallible>(respond(&name, &hits, req).await) }
                            });
                            let builder = auto::Builder::new(TokioExecutor::new());
                            match acceptor {
                                Some(acceptor) => {
                                    if let Ok(tls) = acceptor.accept(stream).await {
                                        let _ = builder
                                            .serve_connection(TokioIo::new(tls), service)
                                            .await;
                                    }
                                }
                                None => {
                                    let _ = builder
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                }
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
        });
        Mock {
            addr,
            hits,
            connections,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Every request received so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Requests whose path and query start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.uri.starts_with(prefix))
            .count()
    }

    /// `127.0.0.1:<port>`.
    pub fn node(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn respond(name: &str, hits: &Mutex<Vec<Hit>>, req: Request<Incoming>) -> Response<MockBody> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    hits.lock().unwrap().push(Hit {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts.headers.clone(),
        body,
        version: parts.version,
        at: Instant::now(),
    });
    let path = parts.uri.path();
    if let Some(rest) = path.strip_prefix("/slow/") {
        let ms: u64 = rest
            .split('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/sse" {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        tokio::spawn(async move {
            for i in 0..4 {
                if tx
                    .send(Bytes::from(format!("data: {{\"n\":{i}}}\n\n")))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        let mut res = Response::new(ChannelBody(rx).boxed_unsync());
        res.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return res;
    }
    let status = path
        .strip_prefix("/status/")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let json = serde_json::json!({
        "mock": name,
        "path": uri,
        "host": host,
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    });
    let mut res = Response::new(Full::new(Bytes::from(json.to_string())).boxed_unsync());
    *res.status_mut() = status;
    res.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    res.headers_mut().insert("x-mock", name.parse().unwrap());
    res.headers_mut().insert("server", "mock".parse().unwrap());
    res
}

/// A body fed by a channel (for SSE).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
