//! Lookup structures of the route table: a byte trie for raw string prefixes (longest
//! first) and string maps with a fast, fixed hasher.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a. The maps hold configured keys only (client input is only looked up, never
/// inserted), so flooding them with colliding keys is not possible and a keyed hash buys
/// nothing; FNV is much faster than SipHash on short paths and hosts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A string map using [`Fnv`].
pub(crate) type FastMap<V> = HashMap<Box<str>, V, BuildHasherDefault<Fnv>>;

/// Raw byte prefixes → a value, answering "all stored prefixes of `s`, longest first".
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixTrie<V> {
    nodes: Vec<Node>,
    values: Vec<V>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Sorted by byte.
    children: Vec<(u8, u32)>,
    /// Index into `values` if a prefix ends here.
    value: Option<u32>,
}

impl<V> PrefixTrie<V> {
    /// An empty trie.
    pub(crate) fn new() -> PrefixTrie<V> {
        PrefixTrie {
            nodes: vec![Node::default()],
            values: Vec::new(),
        }
    }

    /// The value stored for exactly `prefix`, inserted with `make` if absent.
    pub(crate) fn entry(&mut self, prefix: &str, make: impl FnOnce() -> V) -> &mut V {
        let mut at = 0usize;
        for &b in prefix.as_bytes() {
            at = match self.nodes[at].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[at].children[i].1 as usize,
                Err(i) => {
                    let id = self.nodes.len();
                    self.nodes.push(Node::default());
                    // Node count is bounded by total configured prefix bytes, far below u32::MAX.
                    let id32 = u32::try_from(id).unwrap_or(u32::MAX);
                    self.nodes[at].children.insert(i, (b, id32));
                    id
                }
            };
        }
        let slot = match self.nodes[at].value {
            Some(v) => v as usize,
            None => {
                self.values.push(make());
                let v = self.values.len() - 1;
                self.nodes[at].value = Some(u32::try_from(v).unwrap_or(u32::MAX));
                v
            }
        };
        &mut self.values[slot]
    }

    /// Applies `f` to every stored value.
    pub(crate) fn for_each_mut(&mut self, f: impl FnMut(&mut V)) {
        self.values.iter_mut().for_each(f);
    }

    /// Calls `f` with the value of every stored prefix of `s`, longest first, until `f`
    /// returns `Some`.
    pub(crate) fn longest_first<R>(
        &self,
        s: &str,
        mut f: impl FnMut(&V) -> Option<R>,
    ) -> Option<R> {
        // Values along the walk, shallow to deep; a small inline buffer covers typical
        // nesting, deeper chains spill to the heap.
        let mut inline = [0u32; 16];
        let mut n = 0usize;
        let mut spill: Vec<u32> = Vec::new();
        let mut at = 0usize;
        let bytes = s.as_bytes();
        let mut depth = 0usize;
        loop {
            if let Some(v) = self.nodes[at].value {
                if n < inline.len() {
                    inline[n] = v;
                    n += 1;
                } else {
                    spill.push(v);
                }
            }
            let Some(&b) = bytes.get(depth) else { break };
            match self.nodes[at].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => at = self.nodes[at].children[i].1 as usize,
                Err(_) => break,
            }
            depth += 1;
        }
        for &v in spill.iter().rev().chain(inline[..n].iter().rev()) {
            if let Some(r) = f(&self.values[v as usize]) {
                return Some(r);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_first_order() {
        let mut t: PrefixTrie<&str> = PrefixTrie::new();
        for p in ["", "/v1", "/v1/", "/v1/chat", "/v2"] {
            *t.entry(p, || "") = p;
        }
        let mut seen = Vec::new();
        let r: Option<()> = t.longest_first("/v1/chat/completions", |v| {
            seen.push(*v);
            None
        });
        assert_eq!(r, None);
        assert_eq!(seen, vec!["/v1/chat", "/v1/", "/v1", ""]);
        assert_eq!(t.longest_first("/v1beta", |v| Some(*v)), Some("/v1"));
        assert_eq!(t.longest_first("x", |v| Some(*v)), Some(""));
    }

    #[test]
    fn deep_chains_spill() {
        let mut t: PrefixTrie<usize> = PrefixTrie::new();
        let s = "a".repeat(40);
        for i in 0..=40 {
            *t.entry(&s[..i], || 0) = i;
        }
        let mut seen = Vec::new();
        let _: Option<()> = t.longest_first(&s, |v| {
            seen.push(*v);
            None
        });
        assert_eq!(seen, (0..=40).rev().collect::<Vec<_>>());
    }
}
