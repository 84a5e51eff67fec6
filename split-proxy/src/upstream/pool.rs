//! Keep-alive connection pool per upstream node.
//!
//! HTTP/1.1 connections are our own ([`H1Conn`]): leased for one request, given back by
//! the response body once it ended cleanly ([`Pool::give_back`]), so every pooled
//! connection is idle. The newest is leased first, after a non-blocking read checked
//! the upstream did not close it meanwhile. h2 connections (hyper) are shared by every
//! request to the node. Pooled HTTP/1.1 connections are bounded by the upstream's
//! `keepalive_pool {size, idle_timeout, requests}`.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use split_core::config::upstream::KeepalivePool;
use split_core::word_hash::WordHash;

use super::connect::{ConnectError, Connector};
use super::h1::H1Conn;
use crate::body::ProxyBody;

/// Identity of a node connection: the host and port asked for (before `--connect-to`)
/// and whether TLS is used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// Node host (shared: see `CompiledUpstream::node_names`).
    pub host: Arc<str>,
    /// Node port.
    pub port: u16,
    /// TLS (`scheme: https`).
    pub tls: bool,
}

/// A request sender on one connection.
pub enum Sender {
    /// HTTP/1.1: the connection itself, one request at a time.
    H1(H1Conn),
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
}

struct IdleH1 {
    conn: H1Conn,
    /// When it was given back.
    since: Instant,
}

#[derive(Default)]
struct Idle {
    /// Oldest first; leases take the newest.
    // Keys are node addresses from the configuration: a fast unkeyed hash (WordHash).
    h1: HashMap<PoolKey, VecDeque<IdleH1>, BuildHasherDefault<WordHash>>,
    h2: HashMap<PoolKey, (http2::SendRequest<ProxyBody>, SocketAddr), BuildHasherDefault<WordHash>>,
}

/// The pool: one idle list per worker ([`crate::workers`]), so a connection is reused on
/// the event loop it is registered with (APISIX's keepalive pool is per worker too).
pub struct Pool {
    idle: Box<[Mutex<Idle>]>,
    connector: Connector,
}

impl Pool {
    /// An empty pool for `workers` workers opening connections with `connector`.
    pub fn new(connector: Connector, workers: usize) -> Arc<Pool> {
        Arc::new(Pool {
            idle: (0..workers.max(1))
                .map(|_| Mutex::new(Idle::default()))
                .collect(),
            connector,
        })
    }

    /// Leases a connection to `key`: a pooled one if any is alive and idle for less than
    /// the `idle_timeout` at `now`, else a new one opened (TCP + TLS + HTTP handshake)
    /// within `connect_timeout`.
    pub async fn lease(
        &self,
        key: &PoolKey,
        limits: &KeepalivePool,
        connect_timeout: Duration,
        now: Instant,
    ) -> Result<Lease, ConnectError> {
        if let Some(lease) = self.take_idle(key, limits, now) {
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
        if conn.h2 {
            let name = format!("{}:{}", key.host, key.port);
            let io = TokioIo::new(conn.io);
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
            });
        }
        Ok(Lease {
            sender: Sender::H1(H1Conn::new(conn.io, conn.peer)),
            peer: conn.peer,
            reused: false,
        })
    }

    fn take_idle(&self, key: &PoolKey, limits: &KeepalivePool, now: Instant) -> Option<Lease> {
        // Bounded: each turn removes one connection from the list.
        loop {
            // One lock for both maps: most nodes have no h2 entry, and every request
            // comes here.
            let entry = {
                let mut idle = self.lock();
                if let Some((sender, peer)) = idle.h2.get(key) {
                    if !sender.is_closed() && sender.is_ready() {
                        return Some(Lease {
                            sender: Sender::H2(sender.clone()),
                            peer: *peer,
                            reused: true,
                        });
                    }
                    idle.h2.remove(key);
                }
                let list = idle.h1.get_mut(key)?;
                let entry = list.pop_back()?;
                // Given back after `now` (by another request) counts as not idle.
                if now.saturating_duration_since(entry.since) >= limits.idle_timeout {
                    // The newest is stale, so are the older ones.
                    list.clear();
                    return None;
                }
                entry
            };
            let mut conn = entry.conn;
            if conn.is_alive() {
                return Some(Lease {
                    peer: conn.peer,
                    sender: Sender::H1(conn),
                    reused: true,
                });
            }
        }
    }

    /// Takes back an HTTP/1.1 connection whose response ended cleanly, within the
    /// upstream's `keepalive_pool` limits (else it is closed).
    pub fn give_back(&self, key: PoolKey, conn: H1Conn, limits: KeepalivePool) {
        if conn.uses >= limits.requests || limits.size == 0 {
            return;
        }
        let mut idle = self.lock();
        let list = idle.h1.entry(key).or_default();
        if list.len() >= limits.size as usize {
            // Full: the oldest goes.
            list.pop_front();
        }
        list.push_back(IdleH1 {
            conn,
            since: Instant::now(),
        });
    }

    // A poisoned lock only means a thread panicked while holding it; the map itself is
    // still consistent (each operation is a single insert/remove), so keep using it.
    fn lock(&self) -> MutexGuard<'_, Idle> {
        let list = &self.idle[crate::workers::current() % self.idle.len()];
        list.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool, a key for a loopback listener, and the listener's accepted sockets (kept
    /// open, so pooled connections stay alive).
    async fn pool_and_node() -> (Arc<Pool>, PoolKey, tokio::sync::mpsc::Receiver<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (accepted, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
                if accepted.send(()).await.is_err() {
                    break;
                }
            }
        });
        let tls = super::super::tls::client_config(None).unwrap();
        let pool = Pool::new(Connector::new(vec![], tls), 1);
        let key = PoolKey {
            host: "127.0.0.1".into(),
            port,
            tls: false,
        };
        (pool, key, rx)
    }

    fn h1(lease: Lease) -> H1Conn {
        match lease.sender {
            Sender::H1(conn) => conn,
            Sender::H2(_) => panic!("a plain listener speaks HTTP/1.1"),
        }
    }

    #[tokio::test]
    async fn idle_connections_expire_by_the_time_the_lease_is_asked_at() {
        let (pool, key, mut accepted) = pool_and_node().await;
        let limits = KeepalivePool {
            idle_timeout: Duration::from_secs(60),
            ..KeepalivePool::default()
        };
        let connect = Duration::from_secs(5);
        let lease = pool
            .lease(&key, &limits, connect, Instant::now())
            .await
            .unwrap();
        assert!(!lease.reused);
        accepted.recv().await.unwrap();
        pool.give_back(key.clone(), h1(lease), limits);

        // Asked at a time within the idle timeout: the pooled connection.
        let lease = pool
            .lease(&key, &limits, connect, Instant::now())
            .await
            .unwrap();
        assert!(lease.reused);
        pool.give_back(key.clone(), h1(lease), limits);

        // Asked at a time before it was given back (another request's start): not idle.
        let earlier = Instant::now() - Duration::from_secs(1);
        let lease = pool.lease(&key, &limits, connect, earlier).await.unwrap();
        assert!(lease.reused);
        pool.give_back(key.clone(), h1(lease), limits);

        // Asked at a time past the idle timeout: stale, so a new connection is opened.
        let later = Instant::now() + Duration::from_secs(61);
        let lease = pool.lease(&key, &limits, connect, later).await.unwrap();
        assert!(!lease.reused);
        tokio::time::timeout(Duration::from_secs(5), accepted.recv())
            .await
            .expect("a second connection")
            .unwrap();
    }
}
