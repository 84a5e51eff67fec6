//! The live configuration: an atomically swapped `Arc<Snapshot>` (requests load it once
//! and finish on the snapshot they started with), and the ticket pruning that follows
//! swaps.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use split_core::snapshot::Snapshot;

use crate::proxy::Gateway;

/// Shared live snapshot (the same type as `split_admin::Live`).
pub type Live = Arc<ArcSwap<Snapshot>>;

/// A snapshot with nothing configured (every request is a 404).
pub fn empty_snapshot() -> Snapshot {
    Snapshot::empty()
}

/// A new live cell holding `snapshot`.
pub fn new_live(snapshot: Snapshot) -> Live {
    Arc::new(ArcSwap::from_pointee(snapshot))
}

/// Rule and upstream keys a snapshot uses.
pub fn keys(snapshot: &Snapshot) -> (HashSet<u64>, HashSet<u64>) {
    let mut rules = HashSet::new();
    let mut upstreams = HashSet::new();
    for route in &snapshot.routes {
        if let Some(up) = &route.upstream {
            upstreams.insert(up.key.0);
        }
        for rule in &route.rules {
            rules.insert(rule.key.0);
            for arm in &rule.arms {
                if let Some(up) = &arm.upstream {
                    upstreams.insert(up.key.0);
                }
            }
        }
    }
    for up in snapshot.upstreams.values() {
        upstreams.insert(up.key.0);
    }
    (rules, upstreams)
}

/// Every `every`, drops ticket counters of rules and upstreams that the current snapshot
/// no longer has (counters of unchanged rules keep counting across swaps).
pub async fn prune_tickets(gw: Arc<Gateway>, every: Duration) {
    let mut seen: Option<Arc<Snapshot>> = None;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let current = gw.live.load_full();
        if seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &current)) {
            continue;
        }
        let (rules, upstreams) = keys(&current);
        gw.rule_tickets.retain(&rules);
        gw.shared.tickets.retain(&rules);
        gw.node_tickets.retain(&upstreams);
        seen = Some(current);
    }
}
