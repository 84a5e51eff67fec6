//! Lookup structures of the route table: a byte trie for raw string prefixes (longest
//! first) and string maps with a fast, fixed hasher.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::word_hash::WordHash;

/// A string map using [`WordHash`].
pub(crate) type FastMap<V> = HashMap<Box<str>, V, BuildHasherDefault<WordHash>>;

/// Raw byte prefixes → a value, answering "all stored prefixes of `s`, longest first".
#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixTrie<V> {
    nodes: Vec<Node>,
    values: Vec<V>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Bytes after the edge byte that lead into this node (path compression; empty until
    /// [`PrefixTrie::compact`]).
    label: Box<[u8]>,
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

    /// Merges chains of single-child nodes without a value into one node with a label, so
    /// a lookup makes one step per branching point instead of one per byte. Call once,
    /// after the last [`PrefixTrie::entry`].
    pub(crate) fn compact(&mut self) {
        let old = std::mem::take(&mut self.nodes);
        let Some(root) = old.first() else {
            self.nodes = vec![Node::default()];
            return;
        };
        let mut new = vec![Node {
            label: Box::default(),
            children: Vec::new(),
            value: root.value,
        }];
        let mut stack = vec![(0usize, 0usize)];
        while let Some((o, n)) = stack.pop() {
            for &(b, child) in &old[o].children {
                let mut label = Vec::new();
                let mut cur = child as usize;
                while old[cur].value.is_none() && old[cur].children.len() == 1 {
                    let (next_b, next) = old[cur].children[0];
                    label.push(next_b);
                    cur = next as usize;
                }
                let id = new.len();
                new.push(Node {
                    label: label.into_boxed_slice(),
                    children: Vec::new(),
                    value: old[cur].value,
                });
                // Fewer nodes than before compaction, so the id fits as it did then.
                new[n]
                    .children
                    .push((b, u32::try_from(id).unwrap_or(u32::MAX)));
                stack.push((cur, id));
            }
        }
        self.nodes = new;
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
            let Ok(i) = self.nodes[at].children.binary_search_by_key(&b, |c| c.0) else {
                break;
            };
            let child = self.nodes[at].children[i].1 as usize;
            let label = &self.nodes[child].label;
            // `depth < bytes.len()` since `bytes.get(depth)` matched.
            if !has_prefix(&bytes[depth + 1..], label) {
                break;
            }
            at = child;
            depth += 1 + label.len();
        }
        for &v in spill.iter().rev().chain(inline[..n].iter().rev()) {
            if let Some(r) = f(&self.values[v as usize]) {
                return Some(r);
            }
        }
        None
    }
}

/// `s.starts_with(prefix)` for the short labels of the trie, as a plain loop: a libc
/// `memcmp` call per trie step measured several times slower than the walk itself.
#[inline]
fn has_prefix(s: &[u8], prefix: &[u8]) -> bool {
    if prefix.len() > s.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if s[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(s: &str) -> u64 {
        BuildHasherDefault::<WordHash>::default().hash_one(s)
    }

    #[test]
    fn word_hash_separates_lengths_and_tails() {
        let keys = [
            "",
            "a",
            "ab",
            "ab\0",
            "/chat/completions",
            "/chat/completionz",
            "/chat/completion",
            "12345678",
            "123456781",
            "1234567",
            "12345678\0",
        ];
        let hashes: std::collections::HashSet<u64> = keys.iter().map(|k| hash(k)).collect();
        assert_eq!(hashes.len(), keys.len());
        assert_eq!(hash("/v1/chat"), hash(&String::from("/v1/chat")));
        let mut map: FastMap<usize> = FastMap::default();
        for (i, k) in keys.iter().enumerate() {
            map.insert((*k).into(), i);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.get(*k), Some(&i));
        }
        assert_eq!(map.get("/chat/completions/"), None);
    }

    #[test]
    fn compaction_merges_chains() {
        let mut t: PrefixTrie<u8> = PrefixTrie::new();
        *t.entry("/api/v1/chat", || 0) = 1;
        *t.entry("/api/v2/chat", || 0) = 2;
        *t.entry("/b", || 0) = 3;
        t.compact();
        // root, "/" (branch a|b), "api/v" (branch 1|2), "/chat" x2, "b".
        assert_eq!(t.nodes.len(), 6);
        assert_eq!(t.longest_first("/api/v2/chat/x", |v| Some(*v)), Some(2));
        assert_eq!(t.longest_first("/api/v3/chat", |v| Some(*v)), None);
        assert_eq!(t.longest_first("/b", |v| Some(*v)), Some(3));
        let mut empty: PrefixTrie<u8> = PrefixTrie::new();
        empty.compact();
        assert_eq!(empty.longest_first("/x", |v| Some(*v)), None);
    }

    #[test]
    fn longest_first_order() {
        let mut t: PrefixTrie<&str> = PrefixTrie::new();
        for p in ["", "/v1", "/v1/", "/v1/chat", "/v2"] {
            *t.entry(p, || "") = p;
        }
        for compacted in [false, true] {
            if compacted {
                t.compact();
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
            assert_eq!(t.longest_first("/v1/cha", |v| Some(*v)), Some("/v1/"));
            assert_eq!(t.longest_first("/v2x", |v| Some(*v)), Some("/v2"));
        }
    }

    #[test]
    fn deep_chains_spill() {
        let mut t: PrefixTrie<usize> = PrefixTrie::new();
        let s = "a".repeat(40);
        for i in 0..=40 {
            *t.entry(&s[..i], || 0) = i;
        }
        t.compact();
        let mut seen = Vec::new();
        let _: Option<()> = t.longest_first(&s, |v| {
            seen.push(*v);
            None
        });
        assert_eq!(seen, (0..=40).rev().collect::<Vec<_>>());
    }
}
