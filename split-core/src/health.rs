//! Upstream node health (APISIX `checks`, lua-resty-healthcheck semantics), pure: the
//! proxy runs the probes and feeds outcomes in, with `now` passed as a parameter.
//!
//! - Every node starts healthy.
//! - A success (a status in the `healthy` list) resets the failure counters and counts
//!   toward `successes`; an unhealthy node with that many successes becomes healthy.
//! - A failure (a status in the `unhealthy` list, a connect failure, a timeout) resets the
//!   success counter and counts toward its own threshold (`http_failures`,
//!   `tcp_failures`, `timeouts`); a healthy node reaching one becomes unhealthy.
//!   A threshold of 0 never trips.
//! - Statuses in neither list change nothing.
//! - Active probes of a node are due every `healthy.interval` while it is healthy and
//!   every `unhealthy.interval` while it is not.
//! - Planning skips unhealthy nodes; when every node is unhealthy, all are used
//!   ([`CompiledUpstream::plan_healthy`](crate::snapshot::CompiledUpstream::plan_healthy)).

use std::time::Duration;

use crate::config::checks::{ActiveCheck, Thresholds};

mod plan;

/// The outcome of one probe or one real request to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP response with this status (or, for `tcp` checks, [`Outcome::Connected`]).
    Status(u16),
    /// A TCP connection could be opened (`tcp` checks).
    Connected,
    /// The connection failed (refused, reset, TLS, DNS).
    TcpFailure,
    /// No answer within the timeout.
    Timeout,
}

/// Counters of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeHealth {
    /// Current state.
    pub healthy: bool,
    successes: u32,
    http_failures: u32,
    tcp_failures: u32,
    timeouts: u32,
}

impl Default for NodeHealth {
    fn default() -> Self {
        NodeHealth {
            healthy: true,
            successes: 0,
            http_failures: 0,
            tcp_failures: 0,
            timeouts: 0,
        }
    }
}

impl NodeHealth {
    /// Applies `outcome` under `t`; returns the new state if it changed.
    pub fn observe(&mut self, outcome: Outcome, t: &Thresholds) -> Option<bool> {
        enum Kind {
            Success,
            Http,
            Tcp,
            Timeout,
        }
        let kind = match outcome {
            Outcome::Connected => Kind::Success,
            Outcome::Status(s) if t.healthy_statuses.contains(&s) => Kind::Success,
            Outcome::Status(s) if t.unhealthy_statuses.contains(&s) => Kind::Http,
            Outcome::Status(_) => return None,
            Outcome::TcpFailure => Kind::Tcp,
            Outcome::Timeout => Kind::Timeout,
        };
        let was = self.healthy;
        match kind {
            Kind::Success => {
                self.http_failures = 0;
                self.tcp_failures = 0;
                self.timeouts = 0;
                self.successes = self.successes.saturating_add(1);
                if !self.healthy && t.successes > 0 && self.successes >= t.successes {
                    self.healthy = true;
                }
            }
            Kind::Http | Kind::Tcp | Kind::Timeout => {
                self.successes = 0;
                let (counter, limit) = match kind {
                    Kind::Http => (&mut self.http_failures, t.http_failures),
                    Kind::Tcp => (&mut self.tcp_failures, t.tcp_failures),
                    _ => (&mut self.timeouts, t.timeouts),
                };
                *counter = counter.saturating_add(1);
                if self.healthy && limit > 0 && *counter >= limit {
                    self.healthy = false;
                }
            }
        }
        if self.healthy != was {
            // A transition starts counting afresh, as lua-resty-healthcheck does.
            let healthy = self.healthy;
            *self = NodeHealth {
                healthy,
                ..NodeHealth::default()
            };
            return Some(healthy);
        }
        None
    }
}

/// Health of every node of one upstream, and when each is next due for a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHealth {
    nodes: Vec<NodeHealth>,
    next_probe: Vec<Duration>,
}

impl UpstreamHealth {
    /// `nodes` healthy nodes, each due for a probe at `now`.
    pub fn new(nodes: usize, now: Duration) -> UpstreamHealth {
        UpstreamHealth {
            nodes: vec![NodeHealth::default(); nodes],
            next_probe: vec![now; nodes],
        }
    }

    /// Node indexes whose active probe is due at `now`.
    pub fn due(&self, now: Duration) -> Vec<usize> {
        (0..self.next_probe.len())
            .filter(|&i| self.next_probe[i] <= now)
            .collect()
    }

    /// The earliest time any probe is due (`None` without nodes).
    pub fn next_due(&self) -> Option<Duration> {
        self.next_probe.iter().copied().min()
    }

    /// Records an active probe of `node` finished at `now`; schedules its next probe by
    /// the interval of its (new) state. Returns the new state if it changed.
    pub fn probed(
        &mut self,
        node: usize,
        outcome: Outcome,
        now: Duration,
        active: &ActiveCheck,
    ) -> Option<bool> {
        let health = self.nodes.get_mut(node)?;
        let changed = health.observe(outcome, &active.thresholds);
        let interval = if health.healthy {
            active.healthy_interval
        } else {
            active.unhealthy_interval
        };
        if let Some(next) = self.next_probe.get_mut(node) {
            *next = now.saturating_add(interval);
        }
        changed
    }

    /// Records a real response (passive check) of `node` at `now`. Returns the new state
    /// if it changed; then the node's next active probe follows the new state's interval
    /// (an unhealthy node is probed every `unhealthy.interval` from now on).
    pub fn observed(
        &mut self,
        node: usize,
        outcome: Outcome,
        passive: &Thresholds,
        now: Duration,
        active: &ActiveCheck,
    ) -> Option<bool> {
        let healthy = self.nodes.get_mut(node)?.observe(outcome, passive)?;
        let interval = if healthy {
            active.healthy_interval
        } else {
            active.unhealthy_interval
        };
        if let Some(next) = self.next_probe.get_mut(node) {
            *next = now.saturating_add(interval);
        }
        Some(healthy)
    }

    /// `healthy[i]` for every node.
    pub fn mask(&self) -> Vec<bool> {
        self.nodes.iter().map(|n| n.healthy).collect()
    }

    /// True if node `i` is healthy (unknown nodes count as healthy).
    pub fn is_healthy(&self, i: usize) -> bool {
        self.nodes.get(i).is_none_or(|n| n.healthy)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::checks::Checks;

    fn active(v: serde_json::Value) -> ActiveCheck {
        Checks::from_json(&json!({ "active": v })).unwrap().active
    }

    #[test]
    fn http_failures_trip_and_successes_restore() {
        let a = active(json!({"healthy": {"successes": 2}, "unhealthy": {"http_failures": 3}}));
        let t = &a.thresholds;
        let mut n = NodeHealth::default();
        assert_eq!(n.observe(Outcome::Status(500), t), None);
        assert_eq!(n.observe(Outcome::Status(500), t), None);
        // A success in between resets the failure count.
        assert_eq!(n.observe(Outcome::Status(200), t), None);
        assert_eq!(n.observe(Outcome::Status(500), t), None);
        assert_eq!(n.observe(Outcome::Status(500), t), None);
        assert_eq!(n.observe(Outcome::Status(500), t), Some(false));
        assert!(!n.healthy);
        // Neither list: ignored.
        assert_eq!(n.observe(Outcome::Status(201), t), None);
        assert_eq!(n.observe(Outcome::Status(200), t), None);
        assert_eq!(
            n.observe(Outcome::Status(503), t),
            None,
            "a failure resets successes"
        );
        assert_eq!(n.observe(Outcome::Status(200), t), None);
        assert_eq!(n.observe(Outcome::Status(302), t), Some(true));
        assert!(n.healthy);
    }

    #[test]
    fn tcp_failures_and_timeouts_count_separately() {
        let a = active(json!({"unhealthy": {"tcp_failures": 2, "timeouts": 3}}));
        let t = &a.thresholds;
        let mut n = NodeHealth::default();
        assert_eq!(n.observe(Outcome::Timeout, t), None);
        assert_eq!(n.observe(Outcome::TcpFailure, t), None);
        assert_eq!(n.observe(Outcome::Timeout, t), None);
        assert_eq!(n.observe(Outcome::Timeout, t), Some(false));
        let mut n = NodeHealth::default();
        assert_eq!(n.observe(Outcome::TcpFailure, t), None);
        assert_eq!(n.observe(Outcome::TcpFailure, t), Some(false));
        assert_eq!(n.observe(Outcome::Connected, t), None);
        assert_eq!(n.observe(Outcome::Connected, t), Some(true));
    }

    #[test]
    fn zero_thresholds_never_trip() {
        let c = Checks::from_json(&json!({"active": {}, "passive": {"unhealthy": {
            "http_failures": 0, "tcp_failures": 0, "timeouts": 0}}}))
        .unwrap();
        let t = c.passive.unwrap().thresholds;
        let mut n = NodeHealth::default();
        for _ in 0..100 {
            assert_eq!(n.observe(Outcome::Status(500), &t), None);
            assert_eq!(n.observe(Outcome::TcpFailure, &t), None);
            assert_eq!(n.observe(Outcome::Timeout, &t), None);
        }
        assert!(n.healthy);
    }

    #[test]
    fn probes_are_scheduled_by_the_state_interval() {
        let a = active(json!({
            "healthy": {"interval": 5, "successes": 1},
            "unhealthy": {"interval": 1, "http_failures": 1}
        }));
        let s = Duration::from_secs;
        let mut h = UpstreamHealth::new(2, s(0));
        assert_eq!(h.due(s(0)), vec![0, 1]);
        assert_eq!(h.probed(0, Outcome::Status(200), s(0), &a), None);
        assert_eq!(h.probed(1, Outcome::Status(500), s(0), &a), Some(false));
        assert_eq!(h.mask(), vec![true, false]);
        assert_eq!(h.next_due(), Some(s(1)));
        assert_eq!(h.due(s(1)), vec![1]);
        assert_eq!(h.probed(1, Outcome::Status(200), s(1), &a), Some(true));
        assert_eq!(h.due(s(4)), Vec::<usize>::new());
        assert_eq!(h.due(s(5)), vec![0]);
        assert_eq!(h.due(s(6)), vec![0, 1]);
        assert!(h.is_healthy(1));
        assert!(h.is_healthy(9), "unknown nodes are healthy");
        assert_eq!(h.probed(9, Outcome::Timeout, s(6), &a), None);
    }

    #[test]
    fn passive_outcomes_use_the_passive_thresholds() {
        let c = Checks::from_json(&json!({
            "active": {"healthy": {"interval": 300}, "unhealthy": {"interval": 2}},
            "passive": {"unhealthy": {"http_failures": 2}}
        }))
        .unwrap();
        let p = c.passive.as_ref().unwrap().thresholds.clone();
        let a = &c.active;
        let s = Duration::from_secs;
        let mut h = UpstreamHealth::new(1, s(0));
        assert_eq!(h.probed(0, Outcome::Status(200), s(0), a), None);
        assert_eq!(h.next_due(), Some(s(300)));
        assert_eq!(h.observed(0, Outcome::Status(500), &p, s(10), a), None);
        assert_eq!(h.next_due(), Some(s(300)), "no change, no reschedule");
        assert_eq!(
            h.observed(0, Outcome::Status(500), &p, s(10), a),
            Some(false)
        );
        assert_eq!(h.mask(), vec![false]);
        assert_eq!(
            h.next_due(),
            Some(s(12)),
            "unhealthy nodes are probed at their interval"
        );
    }
}
