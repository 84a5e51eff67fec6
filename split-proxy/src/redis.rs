//! Async Redis client layer for counters shared by several gateways (limit-count
//! `policy: redis`, traffic-split `ticket: redis`).
//!
//! One multiplexed connection per distinct [`RedisTarget`] (host, port, credentials,
//! database, timeout), opened on first use and shared by every request: commands are
//! pipelined on it, nothing blocks a runtime thread. Each call — connecting included — is
//! bounded by the target's `timeout`. After a connection-level failure (refused, reset,
//! timeout) the connection is dropped and the target is skipped for [`BACKOFF`], so an
//! outage costs callers one failed attempt, not one timeout per request; the next call
//! after that reconnects. Failures are logged with the target (never its password), at
//! most once per second per target.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, RedisConnectionInfo};
use split_core::config::redis_target::RedisTarget;

/// How long a target that failed at the connection level is skipped.
pub const BACKOFF: Duration = Duration::from_millis(500);
/// Least time between two failure log lines of one target.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// A Redis call that did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {reason}")]
pub struct RedisFailure {
    /// `redis://host:port/db` (no credentials).
    pub target: String,
    /// What went wrong.
    pub reason: String,
}

/// Every counter that lives in Redis: the connections and the ticket batches.
#[derive(Default)]
pub struct SharedCounters {
    /// Connections per target.
    pub clients: RedisClients,
    /// Reserved `ticket: redis` batches per rule.
    pub tickets: crate::redis_tickets::FleetTicketSlots,
}

/// Connections per Redis target.
#[derive(Default)]
pub struct RedisClients {
    targets: Mutex<HashMap<RedisTarget, Arc<Slot>>>,
}

/// One target's connection and health.
struct Slot {
    target: RedisTarget,
    /// Display form of the target (no password), for errors and logs.
    name: String,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// Serialises connection attempts, so a burst of requests opens one connection.
    connecting: tokio::sync::Mutex<()>,
    down_until: Mutex<Option<Instant>>,
    healthy: AtomicBool,
    /// Milliseconds since `epoch` of the last failure log line; failures since.
    last_log_ms: AtomicU64,
    suppressed: AtomicU64,
    epoch: Instant,
}

impl RedisClients {
    /// Runs `op` on `target`'s connection within the target's timeout. `what` names the
    /// caller in log lines (`limit-count route 1`).
    pub async fn call<T, F, Fut>(
        &self,
        target: &RedisTarget,
        what: &str,
        op: F,
    ) -> Result<T, RedisFailure>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let slot = self.slot(target);
        let attempt = async {
            let conn = slot.connection().await?;
            op(conn).await.map_err(|e| Failure::from_redis(&e))
        };
        let outcome = match tokio::time::timeout(target.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Failure {
                reason: format!("timed out after {} ms", target.timeout.as_millis()),
                connection: true,
            }),
        };
        match outcome {
            Ok(value) => {
                slot.succeeded();
                Ok(value)
            }
            Err(failure) => Err(slot.failed(failure, what)),
        }
    }

    /// Number of targets with a slot (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.targets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn slot(&self, target: &RedisTarget) -> Arc<Slot> {
        // A poisoned lock only means a thread panicked while holding it; the map itself
        // is still valid.
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = targets.get(target) {
            return Arc::clone(slot);
        }
        let slot = Arc::new(Slot::new(target.clone()));
        targets.insert(target.clone(), Arc::clone(&slot));
        slot
    }
}

/// A failure before it is reported.
struct Failure {
    reason: String,
    /// Connection-level (refused, reset, timeout): drop the connection and back off.
    connection: bool,
}

impl Failure {
    fn from_redis(e: &redis::RedisError) -> Failure {
        Failure {
            reason: e.to_string(),
            connection: e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout(),
        }
    }
}

impl Slot {
    fn new(target: RedisTarget) -> Slot {
        Slot {
            name: target.to_string(),
            target,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            down_until: Mutex::new(None),
            healthy: AtomicBool::new(true),
            last_log_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The shared connection, opening it if needed (one attempt at a time).
    async fn connection(&self) -> Result<MultiplexedConnection, Failure> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        // Someone else may have connected (or failed) while this call waited.
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let down_until = *self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = down_until {
            if Instant::now() < until {
                return Err(Failure {
                    reason: "unavailable (retrying shortly after the last failure)".to_owned(),
                    connection: false,
                });
            }
        }
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(self.target.host.clone(), self.target.port),
            redis: RedisConnectionInfo {
                db: i64::from(self.target.database),
                username: self.target.username.clone(),
                password: self.target.password.clone(),
                ..RedisConnectionInfo::default()
            },
        };
        let client = redis::Client::open(info).map_err(|e| Failure::from_redis(&e))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.target.timeout)
            .set_response_timeout(self.target.timeout);
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => {
                *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                Ok(conn)
            }
            // Authentication and `SELECT` errors also land here: back off from them too.
            Err(e) => Err(Failure {
                reason: format!("connect: {e}"),
                connection: true,
            }),
        }
    }

    fn succeeded(&self) {
        if !self.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(redis = %self.name, "redis reachable again");
        }
    }

    fn failed(&self, failure: Failure, what: &str) -> RedisFailure {
        if failure.connection {
            *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
            *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Instant::now() + BACKOFF);
            self.healthy.store(false, Ordering::Relaxed);
        }
        self.log(&failure.reason, what);
        RedisFailure {
            target: self.name.clone(),
            reason: failure.reason,
        }
    }

    /// One warning per target per [`LOG_EVERY`], counting the ones left out.
    fn log(&self, reason: &str, what: &str) {
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_log_ms.load(Ordering::Relaxed);
        let due = last == 0 || now_ms.saturating_sub(last) >= millis(LOG_EVERY);
        let won = due
            && self
                .last_log_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if won {
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                redis = %self.name,
                caller = what,
                suppressed,
                "redis call failed: {reason}"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16, timeout_ms: u64) -> RedisTarget {
        RedisTarget {
            host: "127.0.0.1".into(),
            port,
            username: None,
            password: Some("secret-password".into()),
            database: 0,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    /// A loopback port with nothing listening (bound, read, dropped).
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn refused_connection_fails_fast_then_backs_off() {
        let clients = RedisClients::default();
        let t = target(closed_port(), 1000);
        let started = Instant::now();
        let first = clients
            .call(&t, "test", |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .unwrap_err();
        assert!(first.reason.starts_with("connect:"), "{first}");
        assert!(!first.to_string().contains("secret-password"));
        assert_eq!(first.target, format!("redis://127.0.0.1:{}/0", t.port));
        let second = clients
            .call(&t, "test", |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .unwrap_err();
        assert!(second.reason.contains("unavailable"), "{second}");
        assert!(started.elapsed() < Duration::from_millis(900));
        assert_eq!(clients.len(), 1);
    }

    #[tokio::test]
    async fn silent_server_times_out_within_the_target_timeout() {
        // Accepts TCP but never answers: the handshake-free PING must time out.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let clients = RedisClients::default();
        let t = target(port, 150);
        let started = Instant::now();
        let err = clients
            .call(&t, "test", |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert!(took >= Duration::from_millis(100), "{took:?} {err}");
        drop(listener);
    }
}
