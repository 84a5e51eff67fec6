//! Hit counters of the mock, served as JSON on `GET /_stats`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Counters shared by all connections of one mock.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    injected_failures: AtomicU64,
    streams: AtomicU64,
    resets: AtomicU64,
    // Path and status tables are small and written once per request; a mutex is simpler
    // than a concurrent map and far from the bottleneck of a mock.
    tables: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    paths: BTreeMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// The mock's name (`X-Split-Mock`).
    pub name: String,
    /// Requests answered (excluding `/_stats`).
    pub requests: u64,
    /// Requests per path.
    pub paths: BTreeMap<String, u64>,
    /// Responses per status code (as strings, JSON object keys).
    pub statuses: BTreeMap<String, u64>,
    /// Failures injected by `--fail-rate`.
    pub injected_failures: u64,
    /// SSE responses started.
    pub streams: u64,
    /// Streams reset on purpose (`--reset-after-chunks`).
    pub resets: u64,
}

impl Stats {
    /// Counts a request on `path`.
    pub fn hit(&self, path: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut t = self.lock();
        *t.paths.entry(path.to_owned()).or_default() += 1;
    }

    /// Counts a response status.
    pub fn status(&self, status: u16) {
        *self.lock().statuses.entry(status).or_default() += 1;
    }

    /// Counts an injected failure.
    pub fn injected(&self) {
        self.injected_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a started stream.
    pub fn stream(&self) {
        self.streams.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a deliberate reset.
    pub fn reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// The current counters.
    pub fn snapshot(&self, name: &str) -> StatsSnapshot {
        let t = self.lock();
        StatsSnapshot {
            name: name.to_owned(),
            requests: self.requests.load(Ordering::Relaxed),
            paths: t.paths.clone(),
            statuses: t
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            injected_failures: self.injected_failures.load(Ordering::Relaxed),
            streams: self.streams.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding this lock cannot leave the maps inconsistent (each update
        // is a single insert), so a poisoned lock is still safe to use.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}
