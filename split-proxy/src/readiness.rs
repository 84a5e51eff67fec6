//! `/healthz` and `/readyz` on the metrics listener, and the `split_config_*` gauges.
//!
//! - `/healthz`: 200 `{"status":"ok"}` while the process serves requests.
//! - `/readyz`: 200 once the first configuration sync is done, 503 before; the JSON body
//!   is the [`SyncState`] plus `ready` (store, location, revision, in_sync, error), which
//!   is also what `split-proxy status` reads.
//!
//! Everything else goes to the Prometheus handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, SERVER};
use http::{HeaderValue, Response, StatusCode};
use split_admin::SyncState;
use tokio::sync::watch;

use crate::body::{full, ProxyBody};
use crate::headers::server_value;
use crate::metrics::Metrics;
use crate::server::Handler;

type Reply = Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>;

/// The metrics listener's handler: health endpoints, then `metrics`.
pub fn handler(metrics: Handler, sync: watch::Receiver<SyncState>) -> Handler {
    Arc::new(move |req, peer| -> Reply {
        match req.uri().path() {
            "/healthz" => Box::pin(std::future::ready(json(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            ))),
            "/readyz" => {
                let state = sync.borrow().clone();
                Box::pin(std::future::ready(readyz(&state)))
            }
            _ => metrics(req, peer),
        }
    })
}

fn readyz(state: &SyncState) -> Response<ProxyBody> {
    let status = if state.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_value(state).unwrap_or_default();
    json(status, &body)
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut res = Response::new(full(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.headers_mut().insert(SERVER, server_value());
    res
}

/// Keeps `split_config_sync_ok` and `split_config_revision` equal to the sync state;
/// logs when the source comes back in sync. Ends when the store is dropped.
pub async fn follow(metrics: Arc<Metrics>, mut sync: watch::Receiver<SyncState>) {
    let mut was_in_sync = None;
    loop {
        let state = sync.borrow_and_update().clone();
        metrics.set_config_sync(state.in_sync, state.revision);
        if state.in_sync && was_in_sync == Some(false) {
            tracing::info!(
                store = state.store,
                revision = state.revision,
                "configuration source back in sync"
            );
        }
        was_in_sync = Some(state.in_sync);
        if sync.changed().await.is_err() {
            return;
        }
    }
}
