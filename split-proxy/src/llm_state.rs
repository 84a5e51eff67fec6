//! The LLM side of the data plane: token budgets and the canary guardrail, and the
//! [`Settle`] a request carries so that, when it ends, its usage is charged and its
//! outcome reported to the guard.

use std::sync::Arc;

use split_core::config::plugins::LimitStrategy;
use split_core::llm::Usage;
use split_core::snapshot::{CompiledRoute, Decision};

use crate::guard::{GuardState, GuardTarget};
use crate::llm_limits::{Charge, TokenAdmission, TokenBudgets};
use crate::llm_limits_redis::SharedBudgets;
use crate::metrics::Metrics;
use crate::record::RequestRecord;
use crate::redis::RedisClients;

/// Token budgets, guard, and the metrics they report to.
pub struct LlmState {
    /// `ai-rate-limiting` counters.
    pub budgets: TokenBudgets,
    /// Connections of ai-rate-limiting `policy: redis` (the same client layer as
    /// limit-count's, its own connections per target).
    pub redis: RedisClients,
    /// Canary guardrail.
    pub guard: GuardState,
    /// Where trips are exported.
    pub metrics: Arc<Metrics>,
}

impl LlmState {
    /// Empty state reporting to `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Arc<LlmState> {
        Arc::new(LlmState {
            budgets: TokenBudgets::default(),
            redis: RedisClients::default(),
            guard: GuardState::default(),
            metrics,
        })
    }

    /// What the request picked by `decision` must settle when it ends; `None` when it
    /// has no budget and no guard.
    pub fn settle_for(
        self: &Arc<Self>,
        route: &CompiledRoute,
        decision: &Decision<'_>,
        tokens: Option<&TokenAdmission>,
    ) -> Option<Settle> {
        let guard = GuardState::target(route, decision);
        if guard.is_none() && tokens.is_none() {
            return None;
        }
        Some(Settle {
            state: Arc::clone(self),
            charges: tokens.map(|t| t.charges.clone()).unwrap_or_default(),
            shared: tokens.and_then(|t| t.shared.clone()),
            strategy: tokens.map_or(LimitStrategy::TotalTokens, |t| t.strategy),
            guard,
        })
    }
}

/// Work left for when a request ends.
#[derive(Clone)]
pub struct Settle {
    state: Arc<LlmState>,
    charges: Vec<Charge>,
    shared: Option<Box<SharedBudgets>>,
    strategy: LimitStrategy,
    guard: Option<GuardTarget>,
}

impl std::fmt::Debug for Settle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settle")
            .field("charges", &self.charges)
            .field("shared", &self.shared)
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl Settle {
    /// Charges the usage of `record` and reports its outcome to the guard.
    pub fn apply(&self, record: &RequestRecord) {
        if !self.charges.is_empty() || self.shared.is_some() {
            let usage = Usage {
                prompt_tokens: record.prompt_tokens,
                completion_tokens: record.completion_tokens,
                total_tokens: record.total_tokens,
            };
            let tokens = self.strategy.tokens(&usage);
            if tokens > 0 {
                self.state.budgets.charge(&self.charges, tokens);
                if let Some(shared) = &self.shared {
                    crate::llm_limits_redis::charge(&self.state, shared, tokens);
                }
            }
        }
        if let Some(target) = &self.guard {
            self.state
                .guard
                .record(target, record, &self.state.metrics.llm);
        }
    }
}

/// True when the arm picked by `decision` asks for usage in streamed replies.
pub fn include_usage(route: &CompiledRoute, decision: &Decision<'_>) -> bool {
    decision
        .rule
        .zip(decision.arm)
        .and_then(|(rule, arm)| route.rules.get(rule)?.arms.get(arm))
        .is_some_and(|arm| arm.llm.include_usage)
}

/// A usage scanner for a response with these headers (JSON or SSE), if any.
pub fn usage_scanner(headers: &http::HeaderMap) -> Option<split_core::llm::UsageScanner> {
    let content_type = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let format = split_core::llm::BodyFormat::from_content_type(content_type)?;
    Some(split_core::llm::UsageScanner::new(format))
}
