//! Sending one request upstream: walks the node plan (connect failures move on to the
//! next node, up to the plan's length = retries + 1, and only while the upstream's
//! `retry_timeout` budget lasts), sends over a pooled connection, and waits for the
//! response head within the send/read timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::header::{HeaderMap, CONTENT_LENGTH, HOST};
use http::{Method, Request, Response, Uri, Version};
use http_body::Body;
use split_core::config::upstream::{KeepalivePool, Node, Scheme, Timeout, Upstream};
use split_core::snapshot::CompiledUpstream;

use crate::body::{stream, ProxyBody};
use crate::headers::{Forwarded, UpstreamHeaders};
use crate::upload::{Progress, ProgressBody};
use crate::upstream::connect::ConnectError;
use crate::upstream::h1::{Exchange, H1Conn};
use crate::upstream::h1_body::{H1Body, Reuse};
use crate::upstream::h1_head::{encode_request, request_framing, valid_host, valid_target};
use crate::upstream::h1_upload::Upload;
use crate::upstream::pool::{Pool, PoolKey, Sender};

/// nginx's defaults for `proxy_{connect,send,read}_timeout`.
pub const DEFAULT_TIMEOUT: Timeout = Timeout {
    connect: Duration::from_secs(60),
    send: Duration::from_secs(60),
    read: Duration::from_secs(60),
};

/// The request to send, already rewritten (everything but the Host, which depends on the
/// node).
pub struct Outgoing<'a> {
    /// Method.
    pub method: Method,
    /// Path and query sent upstream.
    pub path_and_query: &'a str,
    /// Headers (hop-by-hop removed, forwarded headers added, rewrites applied), no Host.
    pub headers: UpstreamHeaders<'a>,
    /// The forwarded headers when they are not in `headers`: written with the head.
    pub forwarded: Option<Forwarded>,
    /// Host set by a rewrite; wins over `pass_host`.
    pub host_override: Option<&'a str>,
    /// The client's Host header as received (for `pass_host: pass`).
    pub client_host: Option<&'a str>,
    /// Body.
    pub body: ProxyBody,
    /// The body is in memory: it may be sent again when a reused connection turns out
    /// closed before any answer.
    pub in_memory: bool,
}

/// A response head from the upstream.
pub struct Answer {
    /// The response (body still streaming).
    pub response: Response<ProxyBody>,
    /// Address actually used.
    pub peer: SocketAddr,
    /// Index of the node that answered (into the upstream's `nodes`).
    pub node: usize,
    /// Time from the first attempt to the response head.
    pub latency: Duration,
    /// When the response head arrived.
    pub at: Instant,
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
    /// The client's request body failed (bad chunked framing, the client gone) while it
    /// was sent → 400. Not the upstream's fault: no node is marked, no arm is retried.
    ClientBody(String),
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
    mut out: Outgoing<'_>,
    upload: Arc<Progress>,
    on_error: &mut (dyn FnMut(AttemptError<'_>) + Send),
) -> Result<Answer, ForwardError> {
    let upstream: &Upstream = &up.upstream;
    // `upload` was made just before this call: its origin is when forwarding started.
    let started = upload.origin();
    let client_body = std::mem::replace(&mut out.body, crate::body::empty());
    let (host_override, client_host) = (out.host_override, out.client_host);
    let mut body = Some(stream(ProgressBody::new(client_body, Arc::clone(&upload))));
    let mut last: Option<(bool, String)> = None;
    // Walked in place (no vector of them per request).
    let nodes = || {
        plan.iter()
            .filter_map(|&i| upstream.nodes.get(i).map(|n: &Node| (i, n)))
    };
    if nodes().next().is_none() {
        return Err(ForwardError::NoNodes);
    }
    let budget = retry_budget(upstream);
    for (attempt, (index, node)) in nodes().enumerate() {
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
            host: up
                .node_names
                .get(index)
                .map_or_else(|| node.host.as_str().into(), Arc::clone),
            port: node.port,
            tls: upstream.scheme == Scheme::Https,
        };
        let node_name = || format!("{}:{}", node.host, node.port);
        let host: &str = match host_override {
            Some(host) => host,
            None => up.host_header(index, client_host),
        };
        // A pooled connection may have been closed by the peer in the meantime; then the
        // request comes back unsent and is tried once more on a fresh connection.
        for turn in 0..2 {
            let Some(current_body) = body.take() else {
                break;
            };
            // The first lease is taken as forwarding starts: no need to read the clock
            // again to judge how long its connection has been idle.
            let now = if attempt == 0 && turn == 0 {
                started
            } else {
                Instant::now()
            };
            let lease = match pool
                .lease(&key, &upstream.keepalive_pool, timeouts.connect, now)
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
            let (peer, reused) = (lease.peer, lease.reused);
            let sent = match lease.sender {
                Sender::H1(conn) => {
                    let target = H1Target {
                        pool,
                        key: &key,
                        limits: upstream.keepalive_pool,
                        host,
                        method: &out.method,
                        path: out.path_and_query,
                        headers: &out.headers,
                        forwarded: out.forwarded.as_ref(),
                        in_memory: out.in_memory,
                    };
                    match send_h1(target, conn, current_body, &timeouts, &upload).await {
                        Ok(sent) => sent,
                        Err(reason) => {
                            return Err(ForwardError::Failed {
                                timeout: false,
                                reason,
                            })
                        }
                    }
                }
                Sender::H2(sender) => {
                    // h2 heads are built from the map (and an unsent one gives it back
                    // for the next attempt): the forwarded headers go in for good.
                    if let Some(forwarded) = out.forwarded.take() {
                        forwarded.insert_into(out.headers.map_mut());
                    }
                    let request = match build_h2_request(&mut out, host, &key, current_body) {
                        Ok(r) => r,
                        Err(reason) => {
                            return Err(ForwardError::Failed {
                                timeout: false,
                                reason,
                            })
                        }
                    };
                    send_h2(sender, request, out.headers.map_mut(), &timeouts, &upload).await
                }
            };
            match sent {
                Sent::Answer(response) => {
                    let at = Instant::now();
                    return Ok(Answer {
                        response,
                        peer,
                        node: index,
                        latency: at.saturating_duration_since(started),
                        at,
                    });
                }
                Sent::Unsent(returned) => {
                    body = Some(returned);
                    if !reused {
                        break;
                    }
                }
                Sent::Failed { timeout, reason } => {
                    if let Some(why) = upload.client_error() {
                        tracing::info!(node = %node_name(), reason = why, "request body failed");
                        return Err(ForwardError::ClientBody(why.to_owned()));
                    }
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

/// The h2 request for one attempt; it takes `out.headers` (an unsent request gives
/// them back).
fn build_h2_request(
    out: &mut Outgoing<'_>,
    host: &str,
    key: &PoolKey,
    body: ProxyBody,
) -> Result<Request<ProxyBody>, String> {
    let scheme = if key.tls { "https" } else { "http" };
    let uri = format!("{scheme}://{host}{}", out.path_and_query).parse::<Uri>();
    let uri = uri.map_err(|e| format!("invalid upstream uri '{}': {e}", out.path_and_query))?;
    let mut request = Request::new(body);
    *request.method_mut() = out.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    *request.headers_mut() = std::mem::take(out.headers.map_mut());
    request.headers_mut().remove(HOST);
    Ok(request)
}

// The answer is the common case: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Sent {
    Answer(Response<ProxyBody>),
    /// Not sent (a pooled connection closed meanwhile): the body comes back.
    Unsent(ProxyBody),
    Failed {
        timeout: bool,
        reason: String,
    },
}

/// Where an HTTP/1.1 attempt goes, and the request head.
struct H1Target<'a> {
    pool: &'a Arc<Pool>,
    key: &'a PoolKey,
    limits: KeepalivePool,
    host: &'a str,
    method: &'a Method,
    path: &'a str,
    headers: &'a UpstreamHeaders<'a>,
    forwarded: Option<&'a Forwarded>,
    in_memory: bool,
}

/// One attempt on an HTTP/1.1 connection; `Err` when the request cannot be written
/// (invalid host or target).
async fn send_h1(
    target: H1Target<'_>,
    mut conn: H1Conn,
    body: ProxyBody,
    timeouts: &Timeout,
    upload: &Progress,
) -> Result<Sent, String> {
    if !valid_host(target.host) {
        return Err(format!("invalid upstream host '{}'", target.host));
    }
    if !valid_target(target.path) {
        return Err(format!("invalid upstream uri '{}'", target.path));
    }
    let framing = request_framing(
        target.method,
        target.headers.get(&CONTENT_LENGTH),
        body.is_end_stream(),
        body.size_hint().exact(),
    );
    let mut head = BytesMut::new();
    encode_request(
        &mut head,
        target.method,
        target.path,
        target.host.as_bytes(),
        target.headers,
        target.forwarded,
        framing,
    );
    let mut writer = Upload::new(head, body, framing, target.in_memory);
    let result = {
        let exchange = Exchange::new(&mut conn, &mut writer, target.method);
        wait_head(exchange, timeouts, upload).await
    };
    Ok(match result {
        None => Sent::Failed {
            timeout: true,
            reason: "upstream timed out".into(),
        },
        Some(Ok(head)) => {
            let reuse = Reuse {
                pool: Arc::clone(target.pool),
                key: target.key.clone(),
                limits: target.limits,
            };
            let body = H1Body::new(conn, writer, &head, Some(reuse));
            // Boxed here, where it is made: the 320-byte body would otherwise be copied
            // at every level the answer goes up through.
            Sent::Answer(Response::from_parts(head.parts, stream(body)))
        }
        Some(Err(e)) => {
            // A reused connection the upstream closed before answering: the request
            // goes again on a fresh one if its body can be sent again.
            let replay = if e.started || conn.uses == 0 {
                None
            } else {
                writer.into_replay()
            };
            match replay {
                Some(body) => {
                    tracing::debug!(reason = %e.reason, "pooled upstream connection failed, retrying");
                    Sent::Unsent(body)
                }
                None => Sent::Failed {
                    timeout: false,
                    reason: format!("upstream request failed: {}", e.reason),
                },
            }
        }
    })
}

/// One attempt on an h2 connection; an unsent request gives its headers back.
async fn send_h2(
    mut sender: hyper::client::conn::http2::SendRequest<ProxyBody>,
    request: Request<ProxyBody>,
    headers: &mut HeaderMap,
    timeouts: &Timeout,
    upload: &Progress,
) -> Sent {
    let result = wait_head(Box::pin(sender.try_send_request(request)), timeouts, upload).await;
    match result {
        None => Sent::Failed {
            timeout: true,
            reason: "upstream timed out".into(),
        },
        Some(Ok(response)) => Sent::Answer(response.map(stream)),
        Some(Err(mut e)) => match e.take_message() {
            Some(request) => {
                let (parts, body) = request.into_parts();
                *headers = parts.headers;
                Sent::Unsent(body)
            }
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
