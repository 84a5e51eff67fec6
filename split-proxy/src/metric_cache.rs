//! Metric handles cached by label values, so the request path neither builds owned label
//! `String`s nor hashes them with SipHash for every metric it updates.
//!
//! `prometheus-client` families are keyed by owned label sets: every `get_or_create`
//! needs the labels as `String`s and takes the family's lock. A handle returned by a
//! family (`Counter`, `Gauge`, `Histogram`) shares its value with the family, so it can
//! be kept: this cache maps a hash of *borrowed* label values to the handles created for
//! them, and builds owned labels only the first time a label combination is seen.
//!
//! Cached keys keep their label values in one allocation ([`Labels`]): checking a hit
//! compares every value, and with one `String` per value those reads touched as many
//! cache lines, which the kernel's network work between two requests had mostly evicted
//! (`perf` put a fifth of the user time of `Metrics::finish` in `memcmp` on them).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::RwLock;

use split_core::word_hash::WordHash;

/// Entries by the hash of their label values (collisions share a bucket).
type Buckets<K, V> = HashMap<u64, Vec<(K, V)>, BuildHasherDefault<PassThrough>>;

/// Handles of type `V` keyed by label values `K` (owned), looked up by a borrowed view.
pub struct HandleCache<K, V> {
    map: RwLock<Buckets<K, V>>,
}

impl<K, V> Default for HandleCache<K, V> {
    fn default() -> Self {
        HandleCache {
            map: RwLock::new(HashMap::default()),
        }
    }
}

impl<K, V> HandleCache<K, V> {
    /// Calls `use_handle` with the handle for the labels `view`, created with `make`
    /// (owned key and handle) the first time, and returns what it returns. `matches`
    /// compares a stored key with `view`. The handle is lent, not cloned: a clone and its
    /// drop are two atomic reference-count updates per metric and request.
    pub fn with<Q: Hash, R>(
        &self,
        view: &Q,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, V),
        use_handle: impl FnOnce(&V) -> R,
    ) -> R {
        let hash = hash_of(view);
        {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(bucket) = map.get(&hash) {
                if let Some((_, v)) = bucket.iter().find(|(k, _)| matches(k)) {
                    return use_handle(v);
                }
            }
        }
        // A poisoned lock only means another thread panicked while inserting; the map
        // itself is consistent (pushes are atomic with respect to the lock), keep using it.
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        let bucket = map.entry(hash).or_default();
        if let Some((_, v)) = bucket.iter().find(|(k, _)| matches(k)) {
            return use_handle(v);
        }
        bucket.push(make());
        let (_, v) = &bucket[bucket.len() - 1];
        use_handle(v)
    }

    /// Number of label combinations cached.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }
}

/// `N` label values in one allocation, with their ends inline: a length mismatch is seen
/// without reading the text, and the text of all `N` usually shares a cache line.
pub struct Labels<const N: usize> {
    text: Box<str>,
    ends: [u32; N],
}

impl<const N: usize> Labels<N> {
    /// Packs `values`.
    pub fn new(values: [&str; N]) -> Labels<N> {
        let mut text = String::with_capacity(values.iter().map(|v| v.len()).sum());
        let mut ends = [0u32; N];
        for (end, value) in ends.iter_mut().zip(values) {
            text.push_str(value);
            // Label values come from the config and the request head (at most 64 KiB).
            *end = u32::try_from(text.len()).unwrap_or(u32::MAX);
        }
        Labels {
            text: text.into_boxed_str(),
            ends,
        }
    }

    /// True when the packed values are `values`, in order.
    pub fn matches(&self, values: [&str; N]) -> bool {
        let mut start = 0usize;
        for (&end, value) in self.ends.iter().zip(&values) {
            if end as usize - start != value.len() {
                return false;
            }
            start = end as usize;
        }
        let mut start = 0usize;
        for (&end, value) in self.ends.iter().zip(values) {
            let end = end as usize;
            if !value.is_empty() && self.text.get(start..end) != Some(value) {
                return false;
            }
            start = end;
        }
        true
    }
}

fn hash_of<Q: Hash>(view: &Q) -> u64 {
    let mut h = WordHash::default();
    view.hash(&mut h);
    h.finish()
}

/// The map's keys are already hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the key is a u64); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Hash)]
    struct View<'a>(&'a str, u16);

    #[test]
    fn a_handle_is_created_once_per_label_set() {
        let cache: HandleCache<(String, u16), usize> = HandleCache::default();
        let mut made = 0;
        for (name, code) in [("a", 1), ("a", 1), ("b", 1), ("a", 2), ("b", 1)] {
            let view = View(name, code);
            cache.with(
                &view,
                |k| k.0 == name && k.1 == code,
                || {
                    made += 1;
                    ((name.to_owned(), code), made)
                },
                |_| (),
            );
        }
        assert_eq!(made, 3);
        assert_eq!(cache.len(), 3);
        let again = cache.with(
            &View("a", 2),
            |k| k.0 == "a" && k.1 == 2,
            || unreachable!(),
            |v| *v,
        );
        assert_eq!(again, 3);
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_the_key() {
        // Every view hashes alike when the hash input is the same; keys still differ.
        #[derive(Hash)]
        struct Same;
        let cache: HandleCache<&'static str, u8> = HandleCache::default();
        let get = |name: &'static str, made: u8| {
            cache.with(&Same, |k| *k == name, || (name, made), |v| *v)
        };
        assert_eq!(get("x", 1), 1);
        assert_eq!(get("y", 2), 2);
        assert_eq!(get("x", 9), 1);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn packed_labels_match_only_the_same_values_in_order() {
        let l = Labels::new(["route-1", "", "/v1/chat", "a"]);
        assert!(l.matches(["route-1", "", "/v1/chat", "a"]));
        for other in [
            ["route-1", "", "/v1/chat", "b"],
            ["route-1", "/v1/chat", "", "a"],
            ["route-", "1", "/v1/chat", "a"],
            ["route-1", "", "/v1/chaT", "a"],
            ["", "", "", ""],
        ] {
            assert!(!l.matches(other), "{other:?}");
        }
        let empty = Labels::new(["", ""]);
        assert!(empty.matches(["", ""]));
        assert!(!empty.matches(["", "x"]));
        let utf8 = Labels::new(["é", "ü"]);
        assert!(utf8.matches(["é", "ü"]));
        assert!(!utf8.matches(["ü", "é"]));
    }

    #[test]
    fn word_hash_separates_tails() {
        assert_ne!(hash_of(&("ab", "c")), hash_of(&("a", "bc")));
        assert_ne!(hash_of(&"abcdefgh1"), hash_of(&"abcdefgh2"));
    }
}
