//! The canary guardrail on the request path: per-arm outcomes of guarded split rules,
//! the tripped overrides (a tripped canary arm gets weight 0), and the operator view.
//!
//! Overrides are keyed by the rule's [`RuleKey`] (route id, rule index and the rule's
//! arms), so they survive config swaps that leave the rule's arms unchanged (including
//! edits of the `guard` itself) and end with a rule whose arms changed. They hold until
//! cleared with `DELETE /apisix/admin/routes/{id}/guard` (see [`crate::guard_admin`]),
//! across restarts too when the gateway has a data dir (see [`crate::guard_store`]).

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use split_core::guard::{primary_arm, ArmHealth, Guard, Outcome, Verdict};
use split_core::limits::fallback_arm;
use split_core::snapshot::{CompiledRoute, Decision, Rewrites, RuleKey, Snapshot};

use crate::guard_store::TripStore;
use crate::llm_metrics::LlmMetrics;
use crate::plugins::state::Sharded;
use crate::record::RequestRecord;

/// A tripped arm.
#[derive(Debug, Clone)]
pub struct Trip {
    /// Route id.
    pub route: String,
    /// Rule index.
    pub rule: usize,
    /// Arm index.
    pub arm: usize,
    /// Arm label.
    pub label: String,
    /// Why.
    pub reason: String,
    /// When.
    pub since: SystemTime,
}

/// What a finished request reports to the guard.
#[derive(Debug, Clone)]
pub struct GuardTarget {
    route: String,
    rule: usize,
    key: RuleKey,
    arm: usize,
    label: String,
    guard: Guard,
    canary: bool,
}

/// Guard state of the process.
pub struct GuardState {
    epoch: Instant,
    /// Outcomes per arm, with the guard they were judged by (for eviction).
    health: Sharded<(RuleKey, usize), (ArmHealth, Guard)>,
    trips: RwLock<HashMap<(RuleKey, usize), Trip>>,
    /// Where trips are persisted, once [`GuardState::restore`] set it.
    store: OnceLock<TripStore>,
}

impl Default for GuardState {
    fn default() -> Self {
        GuardState {
            epoch: Instant::now(),
            health: Sharded::default(),
            trips: RwLock::new(HashMap::new()),
            store: OnceLock::new(),
        }
    }
}

impl GuardState {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn is_tripped(&self, key: RuleKey, arm: usize) -> bool {
        let trips = self.trips.read().unwrap_or_else(|p| p.into_inner());
        !trips.is_empty() && trips.contains_key(&(key, arm))
    }

    /// Moves a request off a tripped arm: the arm is picked again among the others by
    /// the rule's weights (a tripped arm weighs 0). Unchanged when nothing is tripped or
    /// no other arm can take it.
    pub fn steer<'s>(
        &self,
        route: &'s CompiledRoute,
        decision: Decision<'s>,
        ticket: u64,
    ) -> Decision<'s> {
        let (Some(rule_index), Some(arm)) = (decision.rule, decision.arm) else {
            return decision;
        };
        let Some(rule) = route.rules.get(rule_index) else {
            return decision;
        };
        if rule.guard.is_none() || !self.is_tripped(rule.key, arm) {
            return decision;
        }
        let Some(other) = fallback_arm(&rule.weights, ticket, |i| self.is_tripped(rule.key, i))
        else {
            return decision;
        };
        let Some(compiled) = rule.arms.get(other) else {
            return decision;
        };
        Decision {
            rule: Some(rule_index),
            arm: Some(other),
            arm_label: Some(&compiled.label),
            upstream: compiled.upstream.as_ref(),
            rewrites: Rewrites::new(
                route.plugins.proxy_rewrite.as_ref(),
                compiled.rewrite.as_ref(),
            ),
        }
    }

    /// What to report when the request picked by `decision` ends, if its rule is guarded.
    pub fn target(route: &CompiledRoute, decision: &Decision<'_>) -> Option<GuardTarget> {
        let (rule_index, arm) = decision.rule.zip(decision.arm)?;
        let rule = route.rules.get(rule_index)?;
        let guard = rule.guard.clone()?;
        Some(GuardTarget {
            route: route.route.id.clone(),
            rule: rule_index,
            key: rule.key,
            arm,
            label: decision
                .arm_label
                .map(|l| l.to_string())
                .unwrap_or_default(),
            guard,
            canary: primary_arm(&rule.weights) != Some(arm),
        })
    }

    /// Records a finished request and trips the arm if it is a canary that broke the
    /// guard.
    pub fn record(&self, target: &GuardTarget, record: &RequestRecord, metrics: &LlmMetrics) {
        // A client that went away says nothing about the arm.
        if record.status == 499 {
            return;
        }
        let outcome = Outcome {
            error: record.status >= 500,
            ttft: record.ttft.or(record.upstream_latency),
        };
        let now = self.now();
        let mut verdict = None;
        self.health.update(
            (target.key, target.arm),
            || (ArmHealth::new(), target.guard.clone()),
            |(h, g)| {
                *g = target.guard.clone();
                h.record(now, outcome, &target.guard);
                if target.canary {
                    verdict = Some(h.verdict(now, &target.guard));
                }
                true
            },
        );
        self.health.evict_some(|(h, g)| h.is_idle(now, g));
        let Some(Verdict::Broken(breach)) = verdict else {
            return;
        };
        let mut trips = self.trips.write().unwrap_or_else(|p| p.into_inner());
        if trips.contains_key(&(target.key, target.arm)) {
            return;
        }
        tracing::warn!(
            route = %target.route, rule = target.rule, arm = %target.label,
            reason = %breach.reason,
            "canary guardrail tripped: the arm's weight is 0 until cleared"
        );
        trips.insert(
            (target.key, target.arm),
            Trip {
                route: target.route.clone(),
                rule: target.rule,
                arm: target.arm,
                label: target.label.clone(),
                reason: breach.reason,
                since: SystemTime::now(),
            },
        );
        drop(trips);
        // Persisted before it is exported: whoever sees `split_guard_tripped` = 1 can
        // rely on the trip surviving a restart (even a `kill -9` right after).
        self.persist();
        metrics.set_guard(&target.route, target.rule, &target.label, true);
    }

    /// The trips of route `id`.
    pub fn trips_of(&self, id: &str) -> Vec<Trip> {
        let trips = self.trips.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Trip> = trips.values().filter(|t| t.route == id).cloned().collect();
        out.sort_by_key(|t| (t.rule, t.arm));
        out
    }

    /// Clears the trips of route `id` (and their arms' outcome windows, so a cleared arm
    /// starts afresh); returns them.
    pub fn clear(&self, id: &str, metrics: &LlmMetrics) -> Vec<Trip> {
        let mut trips = self.trips.write().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<(RuleKey, usize)> = trips
            .iter()
            .filter(|(_, t)| t.route == id)
            .map(|(k, _)| *k)
            .collect();
        let mut cleared = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(trip) = trips.remove(&key) {
                self.health
                    .update(key, || (ArmHealth::new(), trip_guard()), |_| false);
                metrics.set_guard(&trip.route, trip.rule, &trip.label, false);
                cleared.push(trip);
            }
        }
        drop(trips);
        if !cleared.is_empty() {
            self.persist();
        }
        cleared.sort_by_key(|t| (t.rule, t.arm));
        cleared
    }

    /// Loads the trips persisted in `store` that still apply to `snapshot` (see
    /// [`crate::guard_store`]), exports them, and persists every later trip and clear
    /// there. Called once at start; a second call changes nothing.
    pub fn restore(&self, store: TripStore, snapshot: &Snapshot, metrics: &LlmMetrics) {
        let stored = store.load();
        let mut trips = self.trips.write().unwrap_or_else(|p| p.into_inner());
        if self.store.set(store).is_err() {
            return;
        }
        let mut dropped = 0;
        for (key, trip) in stored {
            if !crate::guard_store::still_valid(snapshot, key, &trip) {
                dropped += 1;
                continue;
            }
            tracing::warn!(
                route = %trip.route, rule = trip.rule, arm = %trip.label,
                reason = %trip.reason,
                "canary guardrail trip restored: the arm's weight is 0 until cleared"
            );
            metrics.set_guard(&trip.route, trip.rule, &trip.label, true);
            trips.insert((key, trip.arm), trip);
        }
        drop(trips);
        if dropped > 0 {
            tracing::info!(
                dropped,
                "guard trips of rules that changed or are gone were dropped"
            );
            self.persist();
        }
    }

    /// Writes the current trips to the store, if there is one; a failure is logged (the
    /// trips still hold in memory).
    fn persist(&self) {
        let Some(store) = self.store.get() else {
            return;
        };
        let current = || {
            let trips = self.trips.read().unwrap_or_else(|p| p.into_inner());
            trips
                .iter()
                .map(|((key, _), t)| (*key, t.clone()))
                .collect()
        };
        if let Err(e) = store.save(current) {
            tracing::warn!(file = %store.path().display(), error = %e,
                "cannot persist the guard trips; they hold until restart only");
        }
    }
}

/// A placeholder guard for an entry that is removed right away.
fn trip_guard() -> Guard {
    Guard {
        max_error_rate: None,
        max_ttft_p95_ms: None,
        min_requests: 1,
        window: Duration::ZERO,
    }
}
