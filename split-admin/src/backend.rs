//! The store behind the Admin API: the embedded redb database or, with the `etcd`
//! feature, etcd in APISIX's key layout. Both take the same [`Planner`]s (the HTTP
//! semantics live in `write.rs`), run them through the same checks (`check.rs`) and
//! answer with the same bodies and status codes.

use std::sync::Arc;

use http::StatusCode;

use crate::embedded::{Embedded, View};
use crate::reply::Reply;
use crate::write::Planner;

/// One of the stores.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// redb in the data directory.
    Embedded(Arc<Embedded>),
    /// etcd, shared by many gateways.
    #[cfg(feature = "etcd")]
    Etcd(Arc<crate::etcd::EtcdStore>),
}

impl Backend {
    /// What readers see now (lock-free).
    pub fn view(&self) -> Arc<View> {
        match self {
            Backend::Embedded(e) => e.view(),
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.view(),
        }
    }

    /// Plans, checks and commits one write; returns the revision it was committed at
    /// and the reply for the client.
    pub async fn write(&self, planner: Planner) -> Result<(u64, Reply), Reply> {
        match self {
            Backend::Embedded(e) => {
                let e = Arc::clone(e);
                // redb commits fsync; keep that off the async worker threads.
                match tokio::task::spawn_blocking(move || e.write(planner)).await {
                    Ok(Ok((view, outcome))) => Ok((view.catalog.revision, outcome)),
                    Ok(Err(reply)) => Err(reply),
                    Err(e) => {
                        tracing::error!(error = %e, "admin write task failed");
                        Err(Reply::error(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal error while writing",
                        ))
                    }
                }
            }
            #[cfg(feature = "etcd")]
            Backend::Etcd(e) => e.write(&planner).await,
        }
    }
}
