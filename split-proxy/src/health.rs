//! Upstream health checks (`upstream.checks`): one background probe task per checked
//! upstream in use, passive checks from real responses, and the healthy-node mask the
//! planner reads. The state machine is split-core's `health`; this module owns the
//! tasks, the locks and the clock.
//!
//! Checked upstreams are found in the live snapshot (upstream resources, route and
//! service upstreams, inline traffic-split arms) by a supervisor that looks every
//! second; an upstream whose config changed starts over with every node healthy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use split_core::config::upstream::Upstream;
use split_core::health::{Outcome, UpstreamHealth};
use split_core::snapshot::{CompiledUpstream, Snapshot};
use tokio::task::JoinHandle;

use crate::live::Live;
use crate::upstream::pool::Pool;

/// Health state of the checked upstreams.
pub struct HealthChecks {
    epoch: Instant,
    pool: Arc<Pool>,
    tracked: RwLock<HashMap<u64, Arc<Tracked>>>,
}

/// One checked upstream.
struct Tracked {
    /// `apisix_upstream_status` `name` label.
    name: String,
    /// The config the state was built for.
    upstream: Arc<Upstream>,
    state: Mutex<UpstreamHealth>,
    /// Lock-free copy of the state for the request path.
    healthy: Vec<AtomicBool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

// A poisoned lock only means a thread panicked while holding it; health counters stay
// meaningful, so keep using them.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tracked {
    fn sync_mask(&self, state: &UpstreamHealth) {
        for (i, flag) in self.healthy.iter().enumerate() {
            flag.store(state.is_healthy(i), Ordering::Relaxed);
        }
    }

    fn mask(&self) -> Vec<bool> {
        self.healthy
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .collect()
    }

    fn log_change(&self, node: usize, healthy: bool, why: Outcome, how: &str) {
        let addr = self
            .upstream
            .nodes
            .get(node)
            .map(|n| format!("{}:{}", n.host, n.port))
            .unwrap_or_default();
        if healthy {
            tracing::warn!(upstream = %self.name, node = %addr, check = how, "upstream node is healthy again");
        } else {
            tracing::warn!(upstream = %self.name, node = %addr, check = how, outcome = ?why, "upstream node is unhealthy");
        }
    }
}

impl HealthChecks {
    /// No checked upstreams yet; probes use `pool`'s connector.
    pub fn new(pool: Arc<Pool>) -> Arc<HealthChecks> {
        Arc::new(HealthChecks {
            epoch: Instant::now(),
            pool,
            tracked: RwLock::new(HashMap::new()),
        })
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn get(&self, up: &CompiledUpstream) -> Option<Arc<Tracked>> {
        up.upstream.checks.as_ref()?;
        let tracked = self
            .tracked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&up.key.0)
            .cloned()?;
        // State built for another version of this upstream does not apply.
        let same =
            Arc::ptr_eq(&tracked.upstream, &up.upstream) || *tracked.upstream == *up.upstream;
        same.then_some(tracked)
    }

    /// The node plan for one request: [`CompiledUpstream::plan`], minus unhealthy nodes
    /// when the upstream has `checks`.
    pub fn plan(&self, up: &CompiledUpstream, ticket: u64, key: Option<&[u8]>) -> Vec<usize> {
        match self.get(up) {
            Some(tracked) => up.plan_healthy(ticket, key, &tracked.mask()),
            None => up.plan(ticket, key),
        }
    }

    /// Passive check: a real response from node `node` of `up`.
    pub fn passive(&self, up: &CompiledUpstream, node: usize, outcome: Outcome) {
        let Some(passive) = up.upstream.checks.as_ref().and_then(|c| c.passive.as_ref()) else {
            return;
        };
        let Some(tracked) = self.get(up) else {
            return;
        };
        let outcome = match (passive.kind, outcome) {
            // `tcp` passive checks judge connections only.
            (split_core::config::checks::CheckType::Tcp, Outcome::Status(_)) => Outcome::Connected,
            (_, o) => o,
        };
        let Some(active) = up.upstream.checks.as_ref().map(|c| &c.active) else {
            return;
        };
        let now = self.now();
        let mut state = lock(&tracked.state);
        if let Some(healthy) = state.observed(node, outcome, &passive.thresholds, now, active) {
            tracked.sync_mask(&state);
            drop(state);
            tracked.log_change(node, healthy, outcome, "passive");
        }
    }

    /// Passive check of a failed attempt (`node` is `host:port`, `kind` the
    /// forwarder's failure kind).
    pub fn passive_failure(&self, up: &CompiledUpstream, node: &str, kind: &str) {
        if up
            .upstream
            .checks
            .as_ref()
            .and_then(|c| c.passive.as_ref())
            .is_none()
        {
            return;
        }
        let index = up
            .upstream
            .nodes
            .iter()
            .position(|n| format!("{}:{}", n.host, n.port) == node);
        let outcome = if kind == "timeout" {
            Outcome::Timeout
        } else {
            Outcome::TcpFailure
        };
        if let Some(index) = index {
            self.passive(up, index, outcome);
        }
    }

    /// Every second, starts probing the checked upstreams of the live snapshot and stops
    /// probing those that are gone or changed.
    pub async fn supervise(self: Arc<Self>, live: Live, every: Duration) {
        let mut seen: Option<Arc<Snapshot>> = None;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let current = live.load_full();
            if seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &current)) {
                continue;
            }
            self.sync(&current);
            seen = Some(current);
        }
    }

    fn sync(self: &Arc<Self>, snapshot: &Snapshot) {
        let wanted = checked_upstreams(snapshot);
        let mut tracked = self.tracked.write().unwrap_or_else(|p| p.into_inner());
        tracked.retain(|key, t| {
            wanted
                .get(key)
                .is_some_and(|(_, up)| *t.upstream == *up.upstream)
        });
        for (key, (name, up)) in wanted {
            if tracked.contains_key(&key) {
                continue;
            }
            let nodes = up.upstream.nodes.len();
            let state = UpstreamHealth::new(nodes, self.now());
            let t = Arc::new(Tracked {
                name,
                upstream: Arc::clone(&up.upstream),
                state: Mutex::new(state),
                healthy: (0..nodes).map(|_| AtomicBool::new(true)).collect(),
                task: Mutex::new(None),
            });
            let task = tokio::spawn(probe_loop(Arc::downgrade(&t), Arc::clone(self)));
            *lock(&t.task) = Some(task);
            tracked.insert(key, t);
        }
    }
}

/// Checked upstreams of `snapshot` by key, with their `apisix_upstream_status` name.
fn checked_upstreams(snapshot: &Snapshot) -> HashMap<u64, (String, Arc<CompiledUpstream>)> {
    let mut out = HashMap::new();
    let mut add = |name: String, up: &Arc<CompiledUpstream>| {
        if up.upstream.checks.is_some() {
            out.entry(up.key.0)
                .or_insert_with(|| (name, Arc::clone(up)));
        }
    };
    for (id, up) in &snapshot.upstreams {
        add(format!("/apisix/upstreams/{id}"), up);
    }
    for route in &snapshot.routes {
        let id = &route.route.id;
        if let Some(up) = &route.upstream {
            add(format!("/apisix/routes/{id}"), up);
        }
        for (r, rule) in route.rules.iter().enumerate() {
            for (a, arm) in rule.arms.iter().enumerate() {
                if let Some(up) = &arm.upstream {
                    add(format!("/apisix/routes/{id}#traffic-split/{r}/{a}"), up);
                }
            }
        }
    }
    out
}

/// Probes the due nodes of one upstream until it is no longer tracked.
async fn probe_loop(tracked: std::sync::Weak<Tracked>, checks: Arc<HealthChecks>) {
    loop {
        let Some(t) = tracked.upgrade() else {
            return;
        };
        let Some(active) = t.upstream.checks.as_ref().map(|c| c.active.clone()) else {
            return;
        };
        let due = lock(&t.state).due(checks.now());
        let probes = due.iter().filter_map(|&i| {
            let node = t.upstream.nodes.get(i)?;
            let (pool, active) = (&checks.pool, &active);
            Some(async move { (i, crate::health_probe::probe(pool, node, active).await) })
        });
        let results = futures_util::future::join_all(probes).await;
        let now = checks.now();
        let mut changes = Vec::new();
        let next = {
            let mut state = lock(&t.state);
            for (i, outcome) in results {
                if let Some(healthy) = state.probed(i, outcome, now, &active) {
                    changes.push((i, healthy, outcome));
                }
            }
            t.sync_mask(&state);
            state.next_due()
        };
        for (i, healthy, outcome) in changes {
            t.log_change(i, healthy, outcome, "active");
        }
        drop(t);
        // Sleep until the next probe is due, but wake at least every 200 ms: a passive
        // check may have moved a node's next probe earlier. At least 10 ms, so a clock
        // quirk cannot spin.
        let wait = next.map_or(Duration::from_secs(1), |n| n.saturating_sub(checks.now()));
        let wait = wait.clamp(Duration::from_millis(10), Duration::from_millis(200));
        tokio::time::sleep(wait).await;
    }
}

/// `apisix_upstream_status{name,ip,port}`: 1 healthy, 0 unhealthy, per checked node.
pub struct HealthCollector {
    checks: Arc<HealthChecks>,
}

impl std::fmt::Debug for HealthCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthCollector")
    }
}

impl HealthCollector {
    /// Exposes the state of `checks`.
    pub fn new(checks: Arc<HealthChecks>) -> HealthCollector {
        HealthCollector { checks }
    }
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let tracked: Vec<Arc<Tracked>> = self
            .checks
            .tracked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        if tracked.is_empty() {
            return Ok(());
        }
        let mut samples = Vec::new();
        for t in &tracked {
            for (node, healthy) in t.upstream.nodes.iter().zip(t.mask()) {
                let labels = [
                    ("name", t.name.clone()),
                    ("ip", node.host.clone()),
                    ("port", node.port.to_string()),
                ];
                samples.push((labels, i64::from(healthy)));
            }
        }
        samples.sort();
        let kind = ConstGauge::new(0i64).metric_type();
        let mut family = encoder.encode_descriptor(
            "apisix_upstream_status",
            "Upstream node health from health checks (1 healthy, 0 unhealthy)",
            None,
            kind,
        )?;
        for (labels, value) in &samples {
            ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}
