//! A sharded map of plugin state: one lock per shard, held only for one update.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

const SHARDS: usize = 32;
/// Entries looked at per eviction sweep (bounds the work added to one request).
const SWEEP: usize = 8;

/// `K → V` behind `SHARDS` mutexes.
pub struct Sharded<K, V> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, V>>>,
}

impl<K: Hash + Eq + Clone, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl<K: Hash + Eq + Clone, V> Sharded<K, V> {
    fn shard(&self, key: &K) -> &Mutex<HashMap<K, V>> {
        // `SHARDS` > 0, so the index is in range.
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[i]
    }

    /// Reads the value of `key`, if any.
    pub fn with<R>(&self, key: &K, read: impl FnOnce(Option<&V>) -> R) -> R {
        let map = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        read(map.get(key))
    }

    /// Updates (or creates) `key`'s value; `update` returns false to drop the entry.
    pub fn update(&self, key: K, init: impl FnOnce() -> V, update: impl FnOnce(&mut V) -> bool) {
        let shard = self.shard(&key);
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let keep = update(map.entry(key.clone()).or_insert_with(init));
        if !keep {
            map.remove(&key);
        }
    }

    /// Drops up to `SWEEP` entries `stale` says are over, from one shard, so maps do not
    /// grow with every client ever seen.
    pub fn evict_some(&self, stale: impl Fn(&V) -> bool) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS;
        let Some(shard) = self.shards.get(i) else {
            return;
        };
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        let victims: Vec<K> = map
            .iter()
            .filter(|(_, v)| stale(v))
            .take(SWEEP)
            .map(|(k, _)| k.clone())
            .collect();
        for k in victims {
            map.remove(&k);
        }
    }
}
