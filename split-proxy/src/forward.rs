//! Sending one request upstream: walks the node plan (connect failures move on to the
//! next node, up to the plan's length = retries + 1, and only while the upstream's
//! `retry_timeout` budget lasts), sends over a pooled connection, and waits for the
//! response head within the send/read timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderValue, HOST};
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use split_core::config::upstream::{Node, Scheme, Timeout, Upstream};
use split_core::snapshot::CompiledUpstream;

use crate::body::{stream, ProxyBody};
use crate::upload::{Progress, ProgressBody};
use crate::upstream::connect::ConnectError;
use crate::upstream::pool::{Lease, Pool, PoolKey, Sender};

/// nginx's defaults for `proxy_{connect,send,read}_timeout`.
pub const DEFAULT_TIMEOUT: Timeout = Timeout {
    connect: Duration::from_secs(60),
    send: Duration::from_secs(60),
    read: Duration::from_secs(60),
};

/// The request to send, already rewritten (everything but the Host, which depends on the
/// node).
pub struct Outgoing {
    /// Method.
    pub method: Method,
    /// Path and query sent upstream.
    pub path_and_query: String,
    /// Headers (hop-by-hop removed, forwarded headers added, rewrites applied), no Host.
    pub headers: HeaderMap,
    /// Host set by a rewrite; wins over `pass_host`.
    pub host_override: Option<String>,
    /// The client's Host header as received (for `pass_host: pass`).
    pub client_host: Option<String>,
    /// Body.
    pub body: ProxyBody,
}

/// A response head from the upstream.
pub struct Answer {
    /// The response (body still streaming).
    pub response: Response<Incoming>,
    /// Address actually used.
    pub peer: SocketAddr,
    /// Index of the node that answered (into the upstream's `nodes`).
    pub node: usize,
    /// Time from the first attempt to the response head.
    pub latency: Duration,
}

/// Why forwarding failed.
#[derive(Debug)]
pub enum ForwardError {
    /// No node to try (empty `nodes`) → 502.
    NoNodes,
    /// Every node failed to connect or answer → 502 (or 504 when the last one timed out).
    Failed {
        /// The last failure was a timeout.
        timeout: bool,
        /// The last failure.
        reason: String,
    },
}

/// Per-attempt failures reported for metrics.
pub struct AttemptError<'a> {
    /// `host:port` of the node.
    pub node: String,
    /// `dns`, `connect`, `timeout`, `tls`, `http`.
    pub kind: &'a str,
}

/// Sends `out` to the nodes of `plan` in order.
pub async fn forward(
    pool: &Arc<Pool>,
    up: &CompiledUpstream,
    plan: &[usize],
    timeouts: Timeout,
    mut out: Outgoing,
    upload: Arc<Progress>,
    on_error: &mut (dyn FnMut(AttemptError<'_>) + Send),
) -> Result<Answer, ForwardError> {
    let upstream: &Upstream = &up.upstream;
    let started = Instant::now();
    let client_body = std::mem::replace(&mut out.body, crate::body::empty());
    let mut body = Some(stream(ProgressBody::new(client_body, Arc::clone(&upload))));
    let mut last: Option<(bool, String)> = None;
    let nodes: Vec<(usize, &Node)> = plan
        .iter()
        .filter_map(|&i| upstream.nodes.get(i).map(|n| (i, n)))
        .collect();
    if nodes.is_empty() {
        return Err(ForwardError::NoNodes);
    }
    let budget = retry_budget(upstream);
    for (attempt, (index, node)) in nodes.into_iter().enumerate() {
        if attempt > 0 && budget.is_some_and(|b| started.elapsed() >= b) {
            // `retry_timeout` (nginx's `proxy_next_upstream_timeout`): no next node once
            // the budget is spent; the last failure is the answer.
            tracing::warn!(
                retry_timeout = ?budget,
                tried = attempt,
                "upstream retry_timeout reached, not trying the next node"
            );
            break;
        }
        let key = PoolKey {
            host: node.host.clone(),
            port: node.port,
            tls: upstream.scheme == Scheme::Https,
        };
        let node_name = || format!("{}:{}", node.host, node.port);
        let host = out.host_override.clone().or_else(|| {
            split_core::rewrite::upstream_host(
                upstream,
                out.client_host.as_deref(),
                &node.host,
                node.port,
            )
        });
        let host = host.unwrap_or_else(|| default_host(node, upstream.scheme));
        // A pooled connection may have been closed by the peer in the meantime; then the
        // request comes back unsent and is tried once more on a fresh connection.
        for _ in 0..2 {
            let Some(current_body) = body.take() else {
                break;
            };
            let lease = match pool
                .lease(&key, &upstream.keepalive_pool, timeouts.connect)
                .await
            {
                Ok(lease) => lease,
                Err(e) => {
                    log_connect_error(&node_name(), &e);
                    on_error(AttemptError {
                        node: node_name(),
                        kind: e.kind(),
                    });
                    last = Some((matches!(e, ConnectError::Timeout(..)), e.to_string()));
                    body = Some(current_body);
                    break;
                }
            };
            let request = match build_request(&mut out, &host, &key, &lease, current_body) {
                Ok(r) => r,
                Err(reason) => {
                    return Err(ForwardError::Failed {
                        timeout: false,
                        reason,
                    })
                }
            };
            match send(lease, request, &timeouts, &upload).await {
                Sent::Answer(response, lease) => {
                    let peer = lease.peer;
                    pool.release(key, lease, upstream.keepalive_pool);
                    return Ok(Answer {
                        response,
                        peer,
                        node: index,
                        latency: started.elapsed(),
                    });
                }
                Sent::Unsent(returned, reused) => {
                    let (parts, returned) = returned.into_parts();
                    out.headers = parts.headers;
                    body = Some(returned);
                    if !reused {
                        break;
                    }
                }
                Sent::Failed { timeout, reason } => {
                    tracing::warn!(node = %node_name(), %reason, "upstream request failed");
                    on_error(AttemptError {
                        node: node_name(),
                        kind: if timeout { "timeout" } else { "http" },
                    });
                    // The body is gone (partly sent); no other node can be tried.
                    return Err(ForwardError::Failed { timeout, reason });
                }
            }
        }
    }
    let (timeout, reason) = last.unwrap_or((false, "no upstream node could be reached".into()));
    Err(ForwardError::Failed { timeout, reason })
}

/// `retry_timeout` as a duration; `None` when unset, zero (no limit) or unusable.
fn retry_budget(upstream: &Upstream) -> Option<Duration> {
    let secs = upstream.retry_timeout?;
    if secs > 0.0 {
        Duration::try_from_secs_f64(secs).ok()
    } else {
        None
    }
}

fn log_connect_error(node: &str, e: &ConnectError) {
    match e {
        ConnectError::Tls(..) => {
            tracing::error!(node, reason = %e, "upstream TLS verification failed")
        }
        _ => tracing::warn!(node, reason = %e, "upstream connect failed"),
    }
}

/// `host[:port]` with the port omitted when it is the scheme's default.
fn default_host(node: &Node, scheme: Scheme) -> String {
    let host = if node.host.contains(':') {
        format!("[{}]", node.host)
    } else {
        node.host.clone()
    };
    if node.port == scheme.default_port() {
        host
    } else {
        format!("{host}:{}", node.port)
    }
}

/// The request for one attempt; it takes `out.headers` (an unsent request gives them back).
fn build_request(
    out: &mut Outgoing,
    host: &str,
    key: &PoolKey,
    lease: &Lease,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, String> {
    let host_value =
        HeaderValue::from_str(host).map_err(|_| format!("invalid upstream host '{host}'"))?;
    let (uri, version) = match lease.sender {
        Sender::H1(_) => (out.path_and_query.parse::<Uri>(), Version::HTTP_11),
        Sender::H2(_) => {
            let scheme = if key.tls { "https" } else { "http" };
            (
                format!("{scheme}://{host}{}", out.path_and_query).parse::<Uri>(),
                Version::HTTP_2,
            )
        }
    };
    let uri = uri.map_err(|e| format!("invalid upstream uri '{}': {e}", out.path_and_query))?;
    let mut request = Request::new(body);
    *request.method_mut() = out.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = std::mem::take(&mut out.headers);
    if version == Version::HTTP_11 {
        request.headers_mut().insert(HOST, host_value);
    } else {
        request.headers_mut().remove(HOST);
    }
    Ok(request)
}

enum Sent {
    Answer(Response<Incoming>, Lease),
    /// Not sent (a pooled connection closed meanwhile): the request comes back, and
    /// whether the connection was a reused one.
    Unsent(Request<ProxyBody>, bool),
    Failed {
        timeout: bool,
        reason: String,
    },
}

async fn send(
    mut lease: Lease,
    request: Request<ProxyBody>,
    timeouts: &Timeout,
    upload: &Progress,
) -> Sent {
    let reused = lease.reused;
    let result = {
        let fut: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> =
            match &mut lease.sender {
                Sender::H1(s) => Box::pin(s.try_send_request(request)),
                Sender::H2(s) => Box::pin(s.try_send_request(request)),
            };
        wait_head(fut, timeouts, upload).await
    };
    match result {
        None => Sent::Failed {
            timeout: true,
            reason: "upstream timed out".into(),
        },
        Some(Ok(response)) => Sent::Answer(response, lease),
        Some(Err(mut e)) => match e.take_message() {
            Some(request) => Sent::Unsent(request, reused),
            None => Sent::Failed {
                timeout: false,
                reason: format!("upstream request failed: {}", e.error()),
            },
        },
    }
}

/// Waits for the response head: while the upload runs, each stall may last `send`; once
/// it is done the upstream has `read` to answer. `None` on timeout.
async fn wait_head<F, T>(fut: F, timeouts: &Timeout, upload: &Progress) -> Option<T>
where
    F: std::future::Future<Output = T> + Unpin,
{
    let mut fut = fut;
    loop {
        let limit = if upload.done() {
            timeouts.read
        } else {
            timeouts.send
        };
        let deadline = upload.last_activity() + limit;
        let was_done = upload.done();
        match tokio::time::timeout_at(deadline.into(), &mut fut).await {
            Ok(v) => return Some(v),
            Err(_) => {
                // Progress since the deadline was computed extends the wait.
                let moved = upload.last_activity() + limit > deadline || upload.done() != was_done;
                if !moved {
                    return None;
                }
            }
        }
    }
}
