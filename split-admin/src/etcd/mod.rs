//! The etcd store: many gateways share one configuration in APISIX's key layout
//! (`<prefix>/routes/<id>`, values in APISIX's JSON).
//!
//! - Reads come from a local [`View`] that only the sync task ([`sync::run`]) changes:
//!   a full load of the prefix, then the watch events in revision order.
//! - A write plans against that view, runs the same checks as the embedded store, and
//!   commits in one etcd transaction whose compares pin every written key to the mod
//!   revision the plan saw (0 = absent). A concurrent change of the same key fails the
//!   compare; the write then waits until the view has caught up and plans again (at
//!   most [`MAX_ATTEMPTS`] times), so no update is lost. Before its first plan a write
//!   asks etcd for its current revision and waits (bounded by `deployment.etcd.timeout`)
//!   until the view has applied it, so it sees every write committed before it through
//!   any gateway: a PATCH of an object just created through another gateway is not a
//!   404, and a reference to it is not refused. After a commit the write waits
//!   (bounded by `deployment.etcd.timeout`) until its own revision has come back through
//!   the watch, so the writing gateway reads its own writes. One gateway's writes are
//!   serialised locally, so compares only race between gateways.
//! - Limitation: compares cover the written keys only. A route written while another
//!   gateway deletes the upstream it references can leave the route dangling; every
//!   gateway then skips that route with a log line (as after a forced delete).

pub(crate) mod keys;
pub(crate) mod sync;
mod tls;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use http::StatusCode;
use split_core::config::gateway::EtcdSettings;

use crate::catalog::{Catalog, Change};
use crate::check::check;
use crate::compile::{compile_lenient, Broken};
use crate::embedded::View;
use crate::reply::Reply;
use crate::sync::{channel, SyncSender};
use crate::write::Planner;
use crate::{AdminError, Live, SyncState};

/// How often a write plans again after losing a compare to a concurrent writer.
pub(crate) const MAX_ATTEMPTS: usize = 16;

/// Connection settings derived from `deployment.etcd`.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// Endpoint URLs.
    pub hosts: Vec<String>,
    /// Key prefix, e.g. `/apisix`.
    pub prefix: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Client options (auth, TLS, keep-alive).
    pub options: ConnectOptions,
}

/// The etcd-backed configuration of one gateway.
pub(crate) struct EtcdStore {
    pub(crate) endpoint: Endpoint,
    live: Live,
    view: ArcSwap<View>,
    sync: SyncSender,
    client: ArcSwapOption<Client>,
    /// Asks the sync task for a watch progress notification (the view then catches up to
    /// the store's current revision even when no event in the prefix is pending).
    pub(crate) progress: tokio::sync::Notify,
    /// Keys already reported as unsupported, so each is logged once.
    reported: Mutex<BTreeSet<String>>,
    /// Serialises this gateway's writes: they would only conflict with each other in
    /// etcd (e.g. POSTs planning the same id); conflicts are then only between gateways.
    writing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("hosts", &self.endpoint.hosts)
            .field("prefix", &self.endpoint.prefix)
            .field("revision", &self.view.load().catalog.revision)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Checks the settings and reads the TLS files; connects nothing.
    pub fn new(settings: &EtcdSettings, live: Live) -> Result<EtcdStore, AdminError> {
        let timeout = Duration::from_secs(settings.timeout_secs.max(1));
        let mut options = ConnectOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(timeout.min(Duration::from_secs(2)))
            // etcd refuses pings more often than every 5 s (too_many_pings).
            .with_keep_alive(Duration::from_secs(10), timeout.min(Duration::from_secs(5)));
        if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
            options = options.with_user(user.clone(), password.clone());
        }
        let https = settings.hosts.iter().any(|h| h.starts_with("https://"));
        if let Some(tls) = tls::options(settings.tls.as_ref(), https)? {
            options = options.with_tls(tls);
        }
        let prefix = settings.prefix.trim_end_matches('/').to_owned();
        let location = format!("{} {}", settings.hosts.join(","), settings.prefix);
        Ok(EtcdStore {
            endpoint: Endpoint {
                hosts: settings.hosts.clone(),
                prefix,
                timeout,
                options,
            },
            live,
            view: ArcSwap::from_pointee(View::default()),
            sync: channel(SyncState {
                store: "etcd",
                location,
                revision: 0,
                in_sync: false,
                ready: false,
                error: Some("not loaded yet".into()),
            }),
            client: ArcSwapOption::empty(),
            progress: tokio::sync::Notify::new(),
            reported: Mutex::new(BTreeSet::new()),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// The sending side of the sync state (shared with the [`crate::Admin`]).
    pub fn sync_sender(&self) -> SyncSender {
        Arc::clone(&self.sync)
    }

    /// The current view (lock-free).
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// The connected client, if any (cheap clone).
    fn client(&self) -> Option<Client> {
        self.client.load_full().map(|c| (*c).clone())
    }

    pub(crate) fn set_client(&self, client: Option<Client>) {
        self.client.store(client.map(Arc::new));
    }

    /// Logs `key` once with `reason` (unsupported or invalid keys in the prefix).
    pub(crate) fn report_once(&self, key: &str, reason: &str) {
        let fresh = self
            .reported
            .lock()
            .map(|mut r| r.insert(format!("{key}\u{0}{reason}")))
            .unwrap_or(true);
        if fresh {
            tracing::warn!(key, reason, "etcd key skipped");
        }
    }

    /// Compiles `catalog`, publishes it into `Live` and marks the store in sync at
    /// `catalog.revision`. Objects that fail validation are left out, each logged once
    /// with its etcd key and the field path.
    pub(crate) fn publish(&self, catalog: Catalog) {
        let previous = self.view.load_full();
        let compiled = match compile_lenient(|| catalog.config_set()) {
            Ok(c) => c,
            Err(e) => {
                // Only an internal inconsistency gets here; keep the last good snapshot.
                tracing::error!(error = %e.error, "etcd configuration does not compile; keeping the previous one");
                self.advance(catalog.revision, &previous.broken, catalog);
                return;
            }
        };
        for e in &compiled.broken {
            let key = keys::etcd_key(&self.endpoint.prefix, e.kind, &e.id);
            if !previous.broken.contains(&(e.kind, e.id.clone())) {
                tracing::warn!(key, error = %e.error, "etcd object skipped: it does not validate; the others still load");
            }
        }
        let broken = compiled.broken_keys();
        self.live.store(Arc::new(compiled.snapshot));
        self.advance(catalog.revision, &broken, catalog);
    }

    /// Installs `catalog` as the view (without recompiling) and reports the revision.
    fn advance(&self, revision: u64, broken: &Broken, catalog: Catalog) {
        self.view.store(Arc::new(View {
            catalog,
            broken: broken.clone(),
        }));
        self.sync.send_modify(|s| {
            s.revision = revision;
            s.in_sync = true;
            s.ready = true;
            s.error = None;
        });
    }

    /// Moves the view's revision forward without changes (a progress notification).
    pub(crate) fn caught_up(&self, revision: u64) {
        let view = self.view.load_full();
        if revision <= view.catalog.revision {
            return;
        }
        let mut catalog = view.catalog.clone();
        catalog.revision = revision;
        self.advance(revision, &view.broken, catalog);
    }

    /// Marks the store out of sync (the last good snapshot keeps serving).
    pub(crate) fn lost(&self, reason: &str) {
        let mut was_in_sync = false;
        self.sync.send_modify(|s| {
            was_in_sync = s.in_sync;
            s.in_sync = false;
            s.error = Some(reason.to_owned());
        });
        if was_in_sync {
            tracing::error!(
                reason,
                revision = self.view.load().catalog.revision,
                "etcd sync lost; serving the last good configuration until etcd is back"
            );
        }
    }

    /// Waits (bounded by the etcd timeout) until the view has applied `revision`.
    async fn wait_applied(&self, revision: u64) -> bool {
        let mut rx = self.sync.subscribe();
        tokio::time::timeout(
            self.endpoint.timeout,
            rx.wait_for(|s| s.revision >= revision),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// One etcd call, bounded by the etcd timeout; a failure or timeout is a 503.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Reply> {
        match tokio::time::timeout(self.endpoint.timeout, call).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(unavailable(&e.to_string())),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    /// Waits until the view has applied etcd's current revision (see the module docs).
    /// A view that does not catch up within the timeout is planned against anyway: the
    /// transaction's compares still keep any update from being lost.
    async fn catch_up(&self, client: &mut Client) -> Result<(), Reply> {
        let count_only = etcd_client::GetOptions::new().with_count_only();
        let get = client.get(self.endpoint.prefix.as_bytes(), Some(count_only));
        let response = self.bounded(get).await?;
        let revision = header_revision(response.header());
        if self.view.load().catalog.revision < revision {
            self.progress.notify_one();
            if !self.wait_applied(revision).await {
                tracing::warn!(
                    revision,
                    "etcd view did not reach the current revision before a write"
                );
            }
        }
        Ok(())
    }

    /// Plans, checks and commits one write with optimistic concurrency (see the module
    /// docs). Returns the commit revision and the client's reply.
    pub async fn write(&self, planner: &Planner) -> Result<(u64, Reply), Reply> {
        let _serial = self.writing.lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            let state = self.sync.borrow().clone();
            if !state.in_sync {
                return Err(unavailable(state.error.as_deref().unwrap_or("not in sync")));
            }
            let Some(mut client) = self.client() else {
                return Err(unavailable("not connected"));
            };
            if attempt == 0 {
                self.catch_up(&mut client).await?;
            }
            let current = self.view.load_full();
            let plan = planner(&current.catalog)?;
            check(&current, &plan, current.catalog.revision + 1)?;
            let txn = transaction(&self.endpoint.prefix, &current.catalog, &plan.changes)?;
            let response = self.bounded(client.txn(txn)).await?;
            let revision = header_revision(response.header());
            if response.succeeded() {
                if !self.wait_applied(revision).await {
                    tracing::warn!(
                        revision,
                        "etcd write committed but not seen through the watch yet"
                    );
                }
                return Ok((revision, plan.outcome));
            }
            // A concurrent writer changed a key this plan read: catch up and plan again.
            self.progress.notify_one();
            self.wait_applied(revision).await;
        }
        Err(Reply::error(
            StatusCode::CONFLICT,
            "the object kept changing under concurrent writes; retry",
        ))
    }
}

/// The store revision a response was answered at (0 without a header).
fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0))
}

fn unavailable(reason: &str) -> Reply {
    Reply::unavailable(format!(
        "etcd is unavailable ({reason}); nothing was written"
    ))
}

/// One transaction: every written key must still have the mod revision the plan saw
/// (0 = absent), then all puts and deletes apply together.
fn transaction(prefix: &str, seen: &Catalog, changes: &[Change]) -> Result<Txn, Reply> {
    let mut compares = Vec::with_capacity(changes.len());
    let mut ops = Vec::with_capacity(changes.len());
    for change in changes {
        let (kind, id) = match change {
            Change::Put { kind, id, .. } | Change::Delete { kind, id } => (*kind, id),
        };
        let key = keys::etcd_key(prefix, kind, id);
        let modified = seen.get(kind, id).map_or(0, |e| e.modified);
        let modified = i64::try_from(modified)
            .map_err(|_| Reply::unavailable("etcd revision out of range"))?;
        compares.push(Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            modified,
        ));
        ops.push(match change {
            Change::Put { value, .. } => TxnOp::put(key, value.to_string(), None),
            Change::Delete { .. } => TxnOp::delete(key, None),
        });
    }
    Ok(Txn::new().when(compares).and_then(ops))
}
