//! Process-wide ticket counters: one `AtomicU64` per split rule (or upstream), shared by
//! every worker thread, so a rule's schedule is walked exactly once per request no matter
//! which thread serves it. A counter survives config swaps while its key still exists.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use split_core::word_hash::WordHash;

/// The counters by key (config-derived keys: a fast unkeyed hash, see [`WordHash`]).
type Counters = HashMap<u64, Arc<AtomicU64>, BuildHasherDefault<WordHash>>;

/// Ticket counters keyed by a stable 64-bit key (`RuleKey.0` or `UpstreamKey.0`).
#[derive(Debug, Default)]
pub struct Tickets {
    counters: RwLock<Counters>,
}

impl Tickets {
    /// Returns the next ticket for `key` (0, 1, 2, ... across all threads).
    pub fn next(&self, key: u64) -> u64 {
        if let Some(counter) = self.read().get(&key) {
            return counter.fetch_add(1, Ordering::Relaxed);
        }
        let counter = Arc::clone(self.write().entry(key).or_default());
        counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Drops the counters whose key is not in `live` (called after a config swap).
    pub fn retain(&self, live: &HashSet<u64>) {
        self.write().retain(|key, _| live.contains(key));
    }

    /// Number of counters held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.read().len()
    }

    // A poisoned lock only means another thread panicked while holding it; the map is
    // still a valid map of counters, so keep serving with it.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Counters> {
        self.counters.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Counters> {
        self.counters.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_dense_across_threads() {
        let tickets = Arc::new(Tickets::default());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let t = Arc::clone(&tickets);
                std::thread::spawn(move || (0..1000).map(|_| t.next(7)).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..8000).collect::<Vec<u64>>());
    }

    #[test]
    fn counters_survive_retain_while_key_exists() {
        let tickets = Tickets::default();
        assert_eq!(tickets.next(1), 0);
        assert_eq!(tickets.next(1), 1);
        assert_eq!(tickets.next(2), 0);
        tickets.retain(&HashSet::from([1]));
        assert_eq!(tickets.len(), 1);
        assert_eq!(tickets.next(1), 2);
        assert_eq!(tickets.next(2), 0);
    }
}
