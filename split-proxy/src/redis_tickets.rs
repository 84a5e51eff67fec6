//! traffic-split `ticket: redis`: a rule's tickets come from one Redis counter shared by
//! every gateway, so the split is exact across the fleet, not only per process.
//!
//! Each gateway reserves `batch` consecutive tickets per round trip (`INCRBY key batch`
//! returns the end of its range) and hands them out locally; the fleet's requests then
//! walk the rule's schedule exactly, except for at most `batch − 1` reserved-but-unused
//! tickets per gateway (`batch: 1` is exact per request and costs one round trip each).
//! The key is `split:ticket:<route id>:<rule key>`: the rule key changes when the rule's
//! arms or balancer change, so an edit elsewhere keeps the shared sequence.
//!
//! Redis down or slow → the rule's local ticket (still exact per process), a log line
//! (see [`crate::redis`]) and `split_ticket_fallback_total{route,rule}`.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use split_core::config::traffic_split::FleetTickets;
use split_core::snapshot::{CompiledRoute, RuleKey};

use crate::proxy::Gateway;
use crate::redis::{RedisClients, RedisFailure};

/// Reserved ticket ranges per rule key.
#[derive(Default)]
pub struct FleetTicketSlots {
    slots: Mutex<HashMap<u64, Arc<RuleSlot>>>,
}

#[derive(Default)]
struct RuleSlot {
    reserved: Mutex<Range<u64>>,
    /// One refill at a time per rule: the others wait and take from the new range.
    refill: tokio::sync::Mutex<()>,
}

impl RuleSlot {
    fn take(&self) -> Option<u64> {
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        reserved.next()
    }
}

impl FleetTicketSlots {
    /// The next fleet-wide ticket of `key`, reserving a new batch from Redis when this
    /// gateway's range is used up.
    pub async fn next(
        &self,
        clients: &RedisClients,
        redis_key: &str,
        key: RuleKey,
        conf: &FleetTickets,
        what: &str,
    ) -> Result<u64, RedisFailure> {
        let slot = self.slot(key);
        if let Some(ticket) = slot.take() {
            return Ok(ticket);
        }
        let _refill = slot.refill.lock().await;
        if let Some(ticket) = slot.take() {
            return Ok(ticket);
        }
        let batch = u64::from(conf.batch.max(1));
        let end: u64 = clients
            .call(&conf.target, what, |mut conn| async move {
                redis::cmd("INCRBY")
                    .arg(redis_key)
                    .arg(batch)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let mut range = end.saturating_sub(batch)..end;
        let ticket = range.next();
        *slot.reserved.lock().unwrap_or_else(|p| p.into_inner()) = range;
        ticket.ok_or_else(|| RedisFailure {
            target: conf.target.to_string(),
            reason: format!("INCRBY {redis_key} answered {end}, below the batch {batch}"),
        })
    }

    /// Drops the slots of rules the live snapshot no longer has.
    pub fn retain(&self, live: &HashSet<u64>) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|key, _| live.contains(key));
    }

    fn slot(&self, key: RuleKey) -> Arc<RuleSlot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(slots.entry(key.0).or_default())
    }
}

/// The Redis key of a rule's shared ticket counter.
pub fn ticket_key(route_id: &str, key: RuleKey) -> String {
    format!("split:ticket:{route_id}:{:016x}", key.0)
}

/// The ticket for rule `key` of `route` (whose traffic-split has `ticket: redis`): from
/// Redis, or the local counter when Redis fails.
pub async fn fleet_ticket(
    gw: &Gateway,
    route: &CompiledRoute,
    key: RuleKey,
    conf: &FleetTickets,
) -> u64 {
    let route_id = route.route.id.as_str();
    let rule = route
        .rules
        .iter()
        .position(|r| r.key == key)
        .map_or_else(|| "?".to_owned(), |i| i.to_string());
    let redis_key = ticket_key(route_id, key);
    let what = format!("traffic-split ticket route {route_id} rule {rule}");
    let shared = &gw.shared;
    match shared
        .tickets
        .next(&shared.clients, &redis_key, key, conf, &what)
        .await
    {
        Ok(ticket) => ticket,
        Err(_) => {
            gw.observer.metrics.ticket_fallback(route_id, &rule);
            gw.rule_tickets.next(key.0)
        }
    }
}
