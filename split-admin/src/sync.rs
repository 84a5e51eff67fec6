//! What a gateway knows about its configuration source — which store, the revision it
//! serves, whether it is in sync — published on a `tokio::sync::watch` channel so the
//! gateway can serve `/readyz`, the `split_config_sync_ok` gauge and `split-proxy status`.

use serde::Serialize;

/// The configuration source's state as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncState {
    /// `embedded`, `standalone` or `etcd`.
    pub store: &'static str,
    /// Where: the redb file, the standalone file, or `<endpoints> <prefix>`.
    pub location: String,
    /// Revision of the configuration being served (the etcd revision for etcd; the store
    /// revision for the embedded store; 0 for a standalone file).
    pub revision: u64,
    /// The source is reachable and changes are being applied (`split_config_sync_ok`).
    pub in_sync: bool,
    /// A first full configuration has been loaded (`/readyz` is 200 from then on).
    pub ready: bool,
    /// The last sync error while not in sync.
    pub error: Option<String>,
}

impl SyncState {
    /// A source that is loaded before the gateway starts serving (redb, standalone file):
    /// ready and in sync from the start.
    pub fn local(store: &'static str, location: String, revision: u64) -> SyncState {
        SyncState {
            store,
            location,
            revision,
            in_sync: true,
            ready: true,
            error: None,
        }
    }
}

/// The sending side, shared by the store and the [`crate::Admin`].
pub(crate) type SyncSender = std::sync::Arc<tokio::sync::watch::Sender<SyncState>>;

/// A new channel holding `state`.
pub(crate) fn channel(state: SyncState) -> SyncSender {
    std::sync::Arc::new(tokio::sync::watch::Sender::new(state))
}
