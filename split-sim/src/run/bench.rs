//! `--bench`: match + select throughput through `Snapshot::find` + `CompiledRoute::decide`
//! with one shared atomic ticket counter, as the proxy does it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use split_core::snapshot::{Lookup, Snapshot};

use super::traffic::Traffic;

/// Measured throughput.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Threads of the multi-threaded phase.
    pub threads: usize,
    /// Length of each phase, seconds.
    pub seconds: f64,
    /// Decisions per second on one thread.
    pub single_thread_rps: f64,
    /// Decisions per second on all threads together.
    pub multi_thread_rps: f64,
    /// Whether this binary was built with optimisations.
    pub optimized: bool,
}

/// Decisions made by one thread until `deadline`.
fn spin(snapshot: &Snapshot, traffic: &Traffic, ticket: &AtomicU64, deadline: Instant) -> u64 {
    const BATCH: u64 = 4096;
    let mut done = 0u64;
    let mut i = 0u64;
    // Bounded by the deadline; checked once per batch so the clock is not in the loop.
    while Instant::now() < deadline {
        for _ in 0..BATCH {
            let arm = traffic.with_request(i, |req| match snapshot.find(req) {
                Lookup::Found(route) => {
                    let mut take = |_k| ticket.fetch_add(1, Ordering::Relaxed);
                    route.decide(req, &mut take).ok().and_then(|d| d.arm)
                }
                Lookup::NeedBody | Lookup::NotFound => None,
            });
            std::hint::black_box(arm);
            i += 1;
        }
        done += BATCH;
    }
    done
}

/// Runs one phase on `threads` threads for `duration`; returns decisions per second.
fn phase(snapshot: &Snapshot, traffic: &Traffic, threads: usize, duration: Duration) -> f64 {
    let ticket = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + duration;
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| spin(snapshot, traffic, &ticket, deadline)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// Measures one thread, then `threads` threads, each for `duration`.
pub fn bench(
    snapshot: &Snapshot,
    traffic: &Traffic,
    threads: usize,
    duration: Duration,
) -> BenchReport {
    let threads = threads.max(1);
    let single = phase(snapshot, traffic, 1, duration);
    let multi = phase(snapshot, traffic, threads, duration);
    BenchReport {
        threads,
        seconds: duration.as_secs_f64(),
        single_thread_rps: single,
        multi_thread_rps: multi,
        optimized: !cfg!(debug_assertions),
    }
}
