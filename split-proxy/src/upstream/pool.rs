//! Keep-alive connection pool per upstream node.
//!
//! HTTP/1.1 connections are leased one request at a time. They go back to the pool as
//! soon as their response head arrived, while the body may still be streaming: a lease
//! takes the oldest pooled connection that hyper reports ready (previous response read to
//! the end), skips busy ones, and drops closed ones. This costs no task per request (the
//! alternative, waiting for `ready()` in a spawned task, was a tenth of the proxy's
//! instructions per request). h2 connections are shared by every request to the node.
//! Pooled HTTP/1.1 connections are bounded by the upstream's
//! `keepalive_pool {size, idle_timeout, requests}`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use split_core::config::upstream::KeepalivePool;

use super::connect::{ConnectError, Connector};
use crate::body::ProxyBody;

/// Identity of a node connection: the host and port asked for (before `--connect-to`)
/// and whether TLS is used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// Node host.
    pub host: String,
    /// Node port.
    pub port: u16,
    /// TLS (`scheme: https`).
    pub tls: bool,
}

/// A request sender on one connection.
pub enum Sender {
    /// HTTP/1.1: one request at a time.
    H1(http1::SendRequest<ProxyBody>),
    /// h2: multiplexed.
    H2(http2::SendRequest<ProxyBody>),
}

/// A connection leased for one request.
pub struct Lease {
    /// The sender.
    pub sender: Sender,
    /// Address actually connected to.
    pub peer: SocketAddr,
    /// True when the connection was reused from the pool.
    pub reused: bool,
    uses: u32,
}

struct IdleH1 {
    sender: http1::SendRequest<ProxyBody>,
    peer: SocketAddr,
    /// When it was given back (its response body may have ended later).
    since: Instant,
    uses: u32,
}

#[derive(Default)]
struct Idle {
    /// Oldest first: the longer ago a connection was given back, the likelier its
    /// response body has been read to the end.
    h1: HashMap<PoolKey, VecDeque<IdleH1>>,
    h2: HashMap<PoolKey, (http2::SendRequest<ProxyBody>, SocketAddr)>,
}

/// The pool.
pub struct Pool {
    idle: Mutex<Idle>,
    connector: Connector,
}

impl Pool {
    /// An empty pool opening connections with `connector`.
    pub fn new(connector: Connector) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(Idle::default()),
            connector,
        })
    }

    /// Leases a connection to `key`: a pooled one if any is alive, else a new one opened
    /// (TCP + TLS + HTTP handshake) within `connect_timeout`.
    pub async fn lease(
        &self,
        key: &PoolKey,
        limits: &KeepalivePool,
        connect_timeout: Duration,
    ) -> Result<Lease, ConnectError> {
        if let Some(lease) = self.take_idle(key, limits) {
            return Ok(lease);
        }
        let name = format!("{}:{}", key.host, key.port);
        // Boxed: opening (TCP, TLS, handshake) is the rare path and its state is large;
        // unboxed it would be part of every request's future.
        let fresh =
            tokio::time::timeout(connect_timeout, Box::pin(self.open(key, connect_timeout)));
        match fresh.await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout(connect_timeout, name)),
        }
    }

    async fn open(&self, key: &PoolKey, connect_timeout: Duration) -> Result<Lease, ConnectError> {
        let conn = self
            .connector
            .connect(&key.host, key.port, key.tls, connect_timeout)
            .await?;
        let name = format!("{}:{}", key.host, key.port);
        let io = TokioIo::new(conn.io);
        if conn.h2 {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .handshake(io)
                .await
                .map_err(|e| ConnectError::Tcp(name, format!("h2 handshake: {e}")))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "upstream h2 connection ended");
                }
            });
            self.lock()
                .h2
                .insert(key.clone(), (sender.clone(), conn.peer));
            return Ok(Lease {
                sender: Sender::H2(sender),
                peer: conn.peer,
                reused: false,
                uses: 0,
            });
        }
        let (sender, connection) = http1::Builder::new()
            .title_case_headers(true)
            .handshake(io)
            .await
            .map_err(|e| ConnectError::Tcp(name, format!("http/1.1 handshake: {e}")))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(Lease {
            sender: Sender::H1(sender),
            peer: conn.peer,
            reused: false,
            uses: 0,
        })
    }

    fn take_idle(&self, key: &PoolKey, limits: &KeepalivePool) -> Option<Lease> {
        let mut idle = self.lock();
        if let Some((sender, peer)) = idle.h2.get(key) {
            if !sender.is_closed() && sender.is_ready() {
                return Some(Lease {
                    sender: Sender::H2(sender.clone()),
                    peer: *peer,
                    reused: true,
                    uses: 0,
                });
            }
            idle.h2.remove(key);
        }
        let list = idle.h1.get_mut(key)?;
        let mut now = None;
        let mut i = 0;
        while i < list.len() {
            let entry = &list[i];
            if entry.sender.is_closed() {
                list.remove(i);
                continue;
            }
            if !entry.sender.is_ready() {
                // Still reading its previous response: leave it for a later lease.
                i += 1;
                continue;
            }
            let now = *now.get_or_insert_with(Instant::now);
            let stale = now.saturating_duration_since(entry.since) >= limits.idle_timeout;
            let Some(entry) = list.remove(i) else { break };
            if stale {
                continue;
            }
            return Some(Lease {
                sender: Sender::H1(entry.sender),
                peer: entry.peer,
                reused: true,
                uses: entry.uses,
            });
        }
        None
    }

    /// Gives an HTTP/1.1 connection back as soon as its response head arrived; it is
    /// leased again only once hyper reports it ready (an abandoned body closes it).
    /// `lease` must be the one whose response just arrived; h2 leases need no release.
    pub fn release(&self, key: PoolKey, lease: Lease, limits: KeepalivePool) {
        let Sender::H1(sender) = lease.sender else {
            return;
        };
        let uses = lease.uses.saturating_add(1);
        if uses >= limits.requests || limits.size == 0 || sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = idle.h1.entry(key).or_default();
        if list.len() >= limits.size as usize {
            list.retain(|e| !e.sender.is_closed());
        }
        if list.len() < limits.size as usize {
            list.push_back(IdleH1 {
                sender,
                peer: lease.peer,
                since: Instant::now(),
                uses,
            });
        }
    }

    // A poisoned lock only means a thread panicked while holding it; the map itself is
    // still consistent (each operation is a single insert/remove), so keep using it.
    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
