//! The data plane's worker threads, nginx-style: `--workers N` runs N event loops, each a
//! tokio single-thread runtime on its own thread. The main thread is worker 0; it also
//! runs the Admin API, the metrics listener and the background tasks. Every worker
//! serves the proxy listeners: the main thread accepts and hands the connections to the
//! workers in turn ([`crate::server::Lifecycle::serve_on_workers`]), and a connection
//! stays on its worker, so a request never moves between threads.
//!
//! Why not one multi-thread runtime: it costs more per request (work-stealing
//! bookkeeping, hand-offs on wake-ups). With two workers against nginx's two on a 2-core
//! machine, split served 0.71× and 0.80× nginx's req/s that way and 0.89× and 0.90× with
//! one event loop per worker (BENCHMARKS.md, "Latest: one event loop per worker"). And a
//! connection pinned to its worker can keep its upstream connections there too
//! ([`crate::upstream::pool`] keeps one idle list per worker). What workers share is
//! process-wide and lock-free on the request path or nearly so: the live config (an
//! `ArcSwap`), the exact-split ticket counters (one atomic per rule) and the metrics.
//! The trade-off is nginx's: a connection is served by its worker even when another
//! worker is idle; connections are spread evenly, not their requests.

use std::cell::Cell;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running on this thread: 0 on the main thread and on any
/// thread that is not a worker (the blocking pool, tests).
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// A worker's single-thread runtime (worker 0's is run by the main thread); its blocking
/// pool (store writes, file reads) has named threads.
pub fn runtime() -> std::io::Result<Runtime> {
    Builder::new_current_thread()
        .enable_all()
        .thread_name("split-blocking")
        .build()
}

/// Workers 1..N, each on its own thread, running until [`Extra::stop`].
pub struct Extra {
    handles: Vec<Handle>,
    threads: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Extra {
    /// Starts workers `1..workers` (none when `workers` is 1).
    pub fn start(workers: usize) -> Result<Extra, String> {
        let mut extra = Extra {
            handles: Vec::new(),
            threads: Vec::new(),
        };
        for index in 1..workers {
            let runtime = runtime().map_err(|e| format!("cannot start worker {index}: {e}"))?;
            extra.handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("split-worker-{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    // The runtime runs its tasks while this waits; dropping it afterwards
                    // ends whatever is left (connections past the grace period).
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })
                .map_err(|e| format!("cannot start worker {index}: {e}"))?;
            extra.threads.push((stop, thread));
        }
        Ok(extra)
    }

    /// Handles of workers 1..N, whose event loops take the connections handed to them.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stops the workers and waits for their threads.
    pub fn stop(self) {
        for (stop, thread) in self.threads {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_thread_knows_its_index_and_runs_spawned_tasks() {
        assert_eq!(current(), 0);
        let extra = Extra::start(3).unwrap();
        assert_eq!(extra.handles().len(), 2);
        let mut seen = Vec::new();
        for handle in extra.handles() {
            let (tx, rx) = std::sync::mpsc::channel();
            handle.spawn(async move {
                tx.send((current(), std::thread::current().name().map(str::to_owned)))
                    .unwrap();
            });
            seen.push(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap());
        }
        assert_eq!(
            seen,
            vec![
                (1, Some("split-worker-1".to_owned())),
                (2, Some("split-worker-2".to_owned()))
            ]
        );
        extra.stop();
        assert!(Extra::start(1).unwrap().handles().is_empty());
    }
}
