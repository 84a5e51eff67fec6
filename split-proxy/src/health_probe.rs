//! One active health probe of one node (`checks.active`): a TCP connect, or an HTTP(S)
//! request judged by its status, within `active.timeout`. Connections come from the
//! upstream pool's connector, so `--connect-to` and `--ca-file` apply to probes too.

use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, HOST, USER_AGENT};
use http::{Request, Uri, Version};
use split_core::config::checks::{ActiveCheck, CheckType};
use split_core::config::upstream::{KeepalivePool, Node};
use split_core::health::Outcome;

use crate::upstream::connect::ConnectError;
use crate::upstream::pool::{Pool, PoolKey, Sender};

/// Probes `node` once.
pub async fn probe(pool: &Arc<Pool>, node: &Node, active: &ActiveCheck) -> Outcome {
    match tokio::time::timeout(active.timeout, probe_inner(pool, node, active)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Timeout,
    }
}

async fn probe_inner(pool: &Arc<Pool>, node: &Node, active: &ActiveCheck) -> Outcome {
    let port = active.port.unwrap_or(node.port);
    let key = PoolKey {
        host: node.host.as_str().into(),
        port,
        tls: active.kind == CheckType::Https,
    };
    // Probes never go back to the pool: each one opens (or takes) a connection and drops it.
    let limits = KeepalivePool::default();
    let lease = match pool
        .lease(&key, &limits, active.timeout, Instant::now())
        .await
    {
        Ok(lease) => lease,
        Err(ConnectError::Timeout(..)) => return Outcome::Timeout,
        Err(_) => return Outcome::TcpFailure,
    };
    if active.kind == CheckType::Tcp {
        return Outcome::Connected;
    }
    let host = active
        .host
        .clone()
        .unwrap_or_else(|| host_header(node, port, key.tls));
    let Ok(host_value) = HeaderValue::from_str(&host) else {
        return Outcome::TcpFailure;
    };
    let (uri, version) = match lease.sender {
        Sender::H1(_) => (active.http_path.parse::<Uri>(), Version::HTTP_11),
        Sender::H2(_) => {
            let scheme = if key.tls { "https" } else { "http" };
            (
                format!("{scheme}://{host}{}", active.http_path).parse::<Uri>(),
                Version::HTTP_2,
            )
        }
    };
    let Ok(uri) = uri else {
        return Outcome::TcpFailure;
    };
    let mut request = Request::new(crate::body::empty());
    *request.method_mut() = active.http_method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    let headers = request.headers_mut();
    if version == Version::HTTP_11 {
        headers.insert(HOST, host_value);
    }
    headers.insert(USER_AGENT, HeaderValue::from_static("split-healthcheck"));
    for (name, value) in &active.req_headers {
        headers.insert(name.clone(), value.clone());
    }
    let sent = match lease.sender {
        Sender::H1(conn) => {
            return match crate::upstream::h1::status_of(conn, request).await {
                Ok(status) => Outcome::Status(status.as_u16()),
                Err(_) => Outcome::TcpFailure,
            };
        }
        Sender::H2(mut s) => {
            if s.ready().await.is_err() {
                return Outcome::TcpFailure;
            }
            s.send_request(request).await
        }
    };
    match sent {
        Ok(response) => Outcome::Status(response.status().as_u16()),
        Err(_) => Outcome::TcpFailure,
    }
}

/// `host[:port]`, the port left out when it is the scheme's default.
fn host_header(node: &Node, port: u16, tls: bool) -> String {
    let host = if node.host.contains(':') {
        format!("[{}]", node.host)
    } else {
        node.host.clone()
    };
    let default = if tls { 443 } else { 80 };
    if port == default {
        host
    } else {
        format!("{host}:{port}")
    }
}
