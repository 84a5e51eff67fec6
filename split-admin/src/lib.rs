//! # split-admin
//!
//! The APISIX v3 compatible Admin API of the `split` gateway, as a library: the binary
//! (`split-proxy`) hosts [`Admin::handle`] on its admin listener.
//!
//! - Every write is validated by split-core (`validate_object`, then
//!   `Snapshot::compile` of the whole candidate set) before it is stored; a rejected
//!   write changes nothing.
//! - The embedded store is a redb database (`data_dir/split.redb`); every acknowledged
//!   write is committed durably before the response, then the compiled snapshot is
//!   published into [`Live`] so the proxy serves it on its next request.
//! - With the `etcd` feature, `Admin::open_etcd` keeps the objects in etcd in APISIX's
//!   key layout instead (many gateways share them; see the `etcd` module for the
//!   transaction, watch and resync rules). [`Admin::sync_state`] tells either store's
//!   revision and sync state (for `/readyz` and the metrics).
//! - In read-only mode (standalone file) GETs read the live snapshot's source set
//!   (`createdIndex`/`modifiedIndex` are then 0) and writes get 405.
//!
//! Deliberate differences from APISIX:
//! - An `allow_admin` miss is 403 `{"error_msg":"403 Forbidden"}` (JSON), where APISIX's
//!   nginx sends an HTML page.
//! - A forced delete (`?force=true`) of a referenced object leaves the referencing
//!   objects in the store but out of the live snapshot (their requests find no route)
//!   until fixed; APISIX keeps serving them and fails each request with 5xx.
//! - An invalid regex in the `name`/`uri` list filters is 400, not an empty list.
//! - `?ttl=` on writes is refused with 400 (keys never expire).
//! - `PUT plugins/reload` answers "done" without doing anything: plugins are compiled in.

#![warn(missing_docs)]

mod backend;
mod body;
mod catalog;
mod check;
mod compile;
mod embedded;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod openapi;
mod patch;
mod query;
mod read;
mod references;
mod reply;
mod resource;
mod schema;
mod service;
mod store;
mod sync;
mod target;
mod write;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use split_core::admin_auth::AdminAuth;
use split_core::snapshot::ConfigSet;

pub use body::MAX_BODY;
pub use error::AdminError;
pub use split_core::snapshot::Snapshot;
pub use store::DB_FILE;
pub use sync::SyncState;

use backend::Backend;
use embedded::Embedded;
use sync::SyncSender;

/// Shared live snapshot: the admin publishes a new compiled `Arc<Snapshot>` after every
/// successful write; the proxy does `live.load()` per request.
pub type Live = Arc<ArcSwap<Snapshot>>;

/// How an [`Admin`] behaves.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// Who may use the Admin API.
    pub auth: AdminAuth,
    /// `Some(msg)`: read-only (standalone file is the source of truth) → writes get 405
    /// `{"error_msg": msg}`.
    pub read_only: Option<String>,
}

/// The Admin API service. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("backend", &self.inner.backend)
            .field("read_only", &self.inner.read_only)
            .finish_non_exhaustive()
    }
}

struct Inner {
    live: Live,
    auth: ArcSwap<AdminAuth>,
    read_only: Option<String>,
    backend: Option<Backend>,
    sync: SyncSender,
}

impl Admin {
    /// Opens (creating if needed) the embedded redb store at `data_dir/split.redb`,
    /// compiles what it holds and publishes it into `live` before returning.
    pub fn open_embedded(
        data_dir: &Path,
        live: Live,
        opts: AdminOptions,
    ) -> Result<Admin, AdminError> {
        let embedded = Embedded::open(data_dir, live.clone())?;
        let sync = sync::channel(SyncState::local(
            "embedded",
            data_dir.join(DB_FILE).display().to_string(),
            embedded.view().catalog.revision,
        ));
        Ok(Admin {
            inner: Arc::new(Inner {
                live,
                auth: ArcSwap::from_pointee(opts.auth),
                read_only: opts.read_only,
                backend: Some(Backend::Embedded(Arc::new(embedded))),
                sync,
            }),
        })
    }

    /// An Admin API over etcd (APISIX key layout under `settings.prefix`). Nothing is
    /// read here: call [`Admin::spawn_sync`] inside the runtime to load and watch the
    /// prefix; until the first load, [`Admin::sync_state`] is not ready and writes get 503.
    #[cfg(feature = "etcd")]
    pub fn open_etcd(
        settings: &split_core::config::gateway::EtcdSettings,
        live: Live,
        opts: AdminOptions,
    ) -> Result<Admin, AdminError> {
        let store = etcd::EtcdStore::new(settings, live.clone())?;
        let sync = store.sync_sender();
        Ok(Admin {
            inner: Arc::new(Inner {
                live,
                auth: ArcSwap::from_pointee(opts.auth),
                read_only: opts.read_only,
                backend: Some(Backend::Etcd(Arc::new(store))),
                sync,
            }),
        })
    }

    /// Starts the background sync of a shared store (etcd: load, watch, resync after a
    /// loss). Does nothing for local stores. Must be called inside a tokio runtime.
    pub fn spawn_sync(&self) {
        #[cfg(feature = "etcd")]
        if let Some(Backend::Etcd(store)) = &self.inner.backend {
            tokio::spawn(etcd::sync::run(Arc::clone(store)));
        }
    }

    /// The configuration source's state, updated as it changes.
    pub fn sync_state(&self) -> tokio::sync::watch::Receiver<SyncState> {
        self.inner.sync.subscribe()
    }

    /// An Admin API over config managed elsewhere (standalone file): GETs read
    /// `live.load().source`; writes → 405 with `opts.read_only` message (or a default
    /// one when `None`).
    pub fn read_only(live: Live, opts: AdminOptions) -> Admin {
        let msg = opts.read_only.unwrap_or_else(|| {
            "the Admin API is read-only: configuration is managed by a standalone file".into()
        });
        Admin {
            inner: Arc::new(Inner {
                live,
                auth: ArcSwap::from_pointee(opts.auth),
                read_only: Some(msg),
                backend: None,
                sync: sync::channel(SyncState::local("standalone", String::new(), 0)),
            }),
        }
    }

    /// The current auth policy (for admin endpoints hosted beside this API).
    pub fn auth(&self) -> Arc<AdminAuth> {
        self.inner.auth.load_full()
    }

    /// Replaces the auth policy (SIGHUP reload of config.yaml).
    pub fn set_auth(&self, auth: AdminAuth) {
        self.inner.auth.store(Arc::new(auth));
    }

    /// Whole store (for `split-proxy dump`); in read-only mode, the live source set.
    pub fn export(&self) -> ConfigSet {
        match &self.inner.backend {
            Some(b) => b.view().catalog.config_set(),
            None => (*self.inner.live.load().source).clone(),
        }
    }

    /// Validates and applies a whole set atomically, replacing everything (for
    /// `split-proxy load`). Read-only mode → [`AdminError::ReadOnly`].
    pub fn import(&self, set: ConfigSet) -> Result<(), AdminError> {
        match (&self.inner.backend, &self.inner.read_only) {
            (Some(Backend::Embedded(e)), None) => e.import(set),
            #[cfg(feature = "etcd")]
            (Some(Backend::Etcd(_)), None) => Err(AdminError::ReadOnly(
                "loading a whole file into etcd is not supported; use the Admin API".into(),
            )),
            (_, Some(msg)) => Err(AdminError::ReadOnly(msg.clone())),
            (None, None) => Err(AdminError::ReadOnly("no store".into())),
        }
    }

    /// Current store revision (0 in read-only mode).
    pub fn revision(&self) -> u64 {
        self.inner
            .backend
            .as_ref()
            .map_or(0, |b| b.view().catalog.revision)
    }

    /// Serves one Admin API request (path starts with `/apisix/admin`). Enforces the
    /// 1.5 MiB body limit itself. `remote` is the client IP (for allow_admin + logging).
    pub async fn handle<B>(
        &self,
        req: http::Request<B>,
        remote: IpAddr,
    ) -> http::Response<Full<Bytes>>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::fmt::Display,
    {
        self.serve(req, remote).await.into_response()
    }
}
