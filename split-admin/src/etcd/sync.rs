//! The sync task of the etcd store: load the whole prefix, then apply the watch events
//! in revision order; on any failure mark the store out of sync (the last good snapshot
//! keeps serving), back off, reconnect and load everything again. A full reload after a
//! loss also covers a compacted watch revision.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions, WatchResponse};

use super::keys::{classify, entry, range_prefix, Key};
use super::EtcdStore;
use crate::catalog::Catalog;

/// First and largest pause between reconnect attempts.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Runs until the process ends.
pub(crate) async fn run(store: Arc<EtcdStore>) {
    let mut backoff = BACKOFF.0;
    loop {
        let Err(reason) = session(&store, &mut backoff).await;
        store.set_client(None);
        store.lost(&reason);
        tracing::debug!(reason, ?backoff, "etcd sync: retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// Why a sync session ended (it only ends on failure).
enum Never {}

/// Connects, loads the prefix, and follows the watch until something fails.
async fn session(store: &EtcdStore, backoff: &mut Duration) -> Result<Never, String> {
    let ep = &store.endpoint;
    let connect = Client::connect(&ep.hosts, Some(ep.options.clone()));
    let mut client = match tokio::time::timeout(ep.timeout, connect).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
        Err(_) => return Err("cannot connect: timed out".into()),
    };
    let range = range_prefix(&ep.prefix);
    let get = client.get(range.clone(), Some(GetOptions::new().with_prefix()));
    let response = match tokio::time::timeout(ep.timeout, get).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("cannot read {range}: {e}")),
        Err(_) => return Err(format!("cannot read {range}: timed out")),
    };
    let revision = response.header().map_or(0, |h| h.revision());
    let mut catalog = Catalog {
        revision: u64::try_from(revision).unwrap_or(0),
        ..Catalog::default()
    };
    for kv in response.kvs() {
        apply_put(store, &mut catalog, kv);
    }
    let objects: usize = catalog.entries.values().map(|m| m.len()).sum();
    store.set_client(Some(client.clone()));
    store.publish(catalog);
    tracing::info!(revision, objects, prefix = %ep.prefix, "etcd configuration loaded");
    *backoff = BACKOFF.0;

    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let watch = client.watch(range.clone(), Some(options));
    let stream = match tokio::time::timeout(ep.timeout, watch).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("cannot watch {range}: {e}")),
        Err(_) => return Err(format!("cannot watch {range}: timed out")),
    };
    let (mut requests, mut responses) = stream.split();
    loop {
        tokio::select! {
            message = responses.message() => match message {
                Ok(Some(response)) => on_response(store, &response)?,
                Ok(None) => return Err("watch stream closed".into()),
                Err(e) => return Err(format!("watch failed: {e}")),
            },
            () = store.progress.notified() => {
                if let Err(e) = requests.request_progress().await {
                    return Err(format!("watch failed: {e}"));
                }
            }
        }
    }
}

/// Applies one watch response to the view.
fn on_response(store: &EtcdStore, response: &WatchResponse) -> Result<(), String> {
    if response.canceled() {
        let compacted = response.compact_revision();
        return Err(if compacted > 0 {
            format!("watch revision compacted (now {compacted}); reloading everything")
        } else {
            format!("watch canceled: {}", response.cancel_reason())
        });
    }
    let events = response.events();
    if events.is_empty() {
        // A progress notification: every event up to the header's revision has been
        // delivered. (The response that confirms the watch's creation is not one.)
        if !response.created() {
            let revision = response.header().map_or(0, |h| h.revision());
            store.caught_up(u64::try_from(revision).unwrap_or(0));
        }
        return Ok(());
    }
    let current = store.view();
    let mut catalog = current.catalog.clone();
    // A transaction's events share one revision: compare with the revision before this
    // response, not with the one the loop advances.
    let applied = current.catalog.revision;
    for event in events {
        let Some(kv) = event.kv() else { continue };
        let revision = u64::try_from(kv.mod_revision()).unwrap_or(0);
        if revision <= applied {
            continue;
        }
        match event.event_type() {
            EventType::Put => apply_put(store, &mut catalog, kv),
            EventType::Delete => apply_delete(store, &mut catalog, kv),
        }
        catalog.revision = catalog.revision.max(revision);
    }
    store.publish(catalog);
    Ok(())
}

fn key_text<'a>(store: &EtcdStore, kv: &'a KeyValue) -> Option<&'a str> {
    match kv.key_str() {
        Ok(k) => Some(k),
        Err(_) => {
            store.report_once(&String::from_utf8_lossy(kv.key()), "key is not UTF-8");
            None
        }
    }
}

/// Puts one key-value into `catalog` (or reports why it is skipped; a previous version
/// of a now-unreadable object is removed rather than served stale).
fn apply_put(store: &EtcdStore, catalog: &mut Catalog, kv: &KeyValue) {
    let Some(key) = key_text(store, kv) else {
        return;
    };
    let (kind, id) = match classify(&store.endpoint.prefix, key) {
        Key::Object(kind, id) => (kind, id),
        Key::Marker => return,
        Key::Unsupported(reason) => {
            store.report_once(key, &reason);
            return;
        }
    };
    let objects = catalog.entries.entry(kind).or_default();
    match entry(kv.value(), kv.create_revision(), kv.mod_revision()) {
        Ok(e) => {
            objects.insert(id.to_owned(), e);
        }
        Err(reason) => {
            store.report_once(key, &reason);
            objects.remove(id);
        }
    }
    if objects.is_empty() {
        catalog.entries.remove(&kind);
    }
}

fn apply_delete(store: &EtcdStore, catalog: &mut Catalog, kv: &KeyValue) {
    let Some(key) = key_text(store, kv) else {
        return;
    };
    if let Key::Object(kind, id) = classify(&store.endpoint.prefix, key) {
        if let Some(objects) = catalog.entries.get_mut(&kind) {
            objects.remove(id);
            if objects.is_empty() {
                catalog.entries.remove(&kind);
            }
        }
    }
}
