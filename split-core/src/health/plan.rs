//! Node plans that skip unhealthy nodes.

use crate::select::{PickInput, Select};
use crate::snapshot::CompiledUpstream;

impl CompiledUpstream {
    /// Like [`CompiledUpstream::plan`], without the nodes whose `healthy[i]` is false.
    ///
    /// The selector's pick stands when that node is healthy (round-robin order and chash
    /// stickiness are kept); otherwise the ticket picks among the healthy nodes of the
    /// highest priority group that has any, by weight. Lower groups follow, in config
    /// order. When no node is healthy, every node is used (APISIX). Missing entries of
    /// `healthy` count as healthy.
    pub fn plan_healthy(&self, ticket: u64, key: Option<&[u8]>, healthy: &[bool]) -> Vec<usize> {
        let ok = |i: usize| healthy.get(i).copied().unwrap_or(true);
        let nodes = &self.upstream.nodes;
        if (0..nodes.len()).all(ok) {
            return self.plan(ticket, key);
        }
        let groups = &self.groups;
        let healthy_groups: Vec<Vec<usize>> = groups
            .iter()
            .map(|g| g.iter().copied().filter(|&i| ok(i)).collect::<Vec<_>>())
            .filter(|g| !g.is_empty())
            .collect();
        let Some(top) = healthy_groups.first() else {
            // Every eligible node is unhealthy: use them all.
            return self.plan(ticket, key);
        };
        let limit = usize::try_from(self.upstream.effective_retries())
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let selected = self
            .selector
            .pick(PickInput { ticket, key })
            .and_then(|i| groups.first().and_then(|g| g.get(i)).copied())
            .filter(|i| top.contains(i));
        let pick = selected.or_else(|| weighted_pick(top, ticket, |i| nodes[i].weight));
        let mut plan = Vec::with_capacity(limit.min(nodes.len()));
        plan.extend(pick);
        plan.extend(
            healthy_groups
                .iter()
                .flatten()
                .copied()
                .filter(|i| Some(*i) != pick),
        );
        plan.truncate(limit);
        plan
    }
}

/// The node of `group` that `ticket` lands on when each node owns `weight` consecutive
/// tickets of every `sum(weights)` (all zero: one each).
fn weighted_pick(group: &[usize], ticket: u64, weight: impl Fn(usize) -> u32) -> Option<usize> {
    let total: u64 = group.iter().map(|&i| u64::from(weight(i))).sum();
    let (total, weight): (u64, Box<dyn Fn(usize) -> u64>) = if total == 0 {
        (group.len() as u64, Box::new(|_| 1))
    } else {
        (total, Box::new(|i| u64::from(weight(i))))
    };
    if total == 0 {
        return None;
    }
    let mut at = ticket % total;
    for &i in group {
        let w = weight(i);
        if at < w {
            return Some(i);
        }
        at -= w;
    }
    group.last().copied()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::config::upstream::Upstream;
    use crate::snapshot::{compile_upstream, UpstreamKey};

    fn upstream(v: serde_json::Value) -> Arc<crate::snapshot::CompiledUpstream> {
        compile_upstream(Arc::new(Upstream::from_json(&v).unwrap()), UpstreamKey(0))
    }

    fn firsts(up: &crate::snapshot::CompiledUpstream, healthy: &[bool], n: u64) -> Vec<usize> {
        (0..n)
            .map(|t| up.plan_healthy(t, None, healthy)[0])
            .collect()
    }

    #[test]
    fn unhealthy_nodes_are_skipped_and_their_share_spread() {
        let up = upstream(json!({"nodes": {"a:80": 1, "b:80": 1, "c:80": 1}}));
        assert_eq!(firsts(&up, &[true, true, true], 6), firsts(&up, &[], 6));
        let picks = firsts(&up, &[true, true, false], 600);
        assert!(!picks.contains(&2));
        let a = picks.iter().filter(|&&p| p == 0).count();
        assert_eq!(a, 300, "a and b share c's tickets evenly");
        for t in 0..10 {
            let plan = up.plan_healthy(t, None, &[true, true, false]);
            assert_eq!(plan.len(), 2);
            assert!(!plan.contains(&2));
        }
    }

    #[test]
    fn all_unhealthy_uses_all() {
        let up = upstream(json!({"nodes": {"a:80": 1, "b:80": 1}}));
        for t in 0..4 {
            assert_eq!(up.plan_healthy(t, None, &[false, false]), up.plan(t, None));
        }
    }

    #[test]
    fn a_dead_top_group_falls_to_the_next_priority() {
        let up = upstream(json!({"nodes": [
            {"host": "p1", "weight": 1, "priority": 1},
            {"host": "p2", "weight": 1, "priority": 1},
            {"host": "low", "weight": 3, "priority": 0}
        ]}));
        for t in 0..5 {
            assert_eq!(up.plan_healthy(t, None, &[false, false, true]), vec![2]);
        }
    }

    #[test]
    fn chash_keeps_a_healthy_sticky_node() {
        let up = upstream(
            json!({"type": "chash", "hash_on": "header", "key": "x-user",
            "nodes": {"a:80": 1, "b:80": 1, "c:80": 1}}),
        );
        for k in 0..50u32 {
            let key = k.to_string();
            let sticky = up.plan(0, Some(key.as_bytes()))[0];
            let mut healthy = vec![true; 3];
            healthy[(sticky + 1) % 3] = false;
            assert_eq!(
                up.plan_healthy(7, Some(key.as_bytes()), &healthy)[0],
                sticky
            );
            healthy[sticky] = false;
            let other = up.plan_healthy(7, Some(key.as_bytes()), &healthy)[0];
            assert!(healthy[other]);
        }
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let counts = (0..10u64).fold([0; 3], |mut c, t| {
            if let Some(i) = super::weighted_pick(&[0, 1, 2], t, |i| [5, 0, 5][i]) {
                c[i] += 1;
            }
            c
        });
        assert_eq!(counts, [5, 0, 5]);
        assert_eq!(super::weighted_pick(&[], 3, |_| 1), None);
        assert_eq!(super::weighted_pick(&[4, 7], 3, |_| 0), Some(7));
    }
}
