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
use std::sync::Arc;
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
/// pool (store writes, file reads) has named threads. With `affinity`, those threads
/// may run on every CPU of the process, not only on the CPU of the worker that started
/// them (a thread starts with its creator's affinity).
pub fn runtime(affinity: Option<&Arc<Affinity>>) -> std::io::Result<Runtime> {
    let mut builder = Builder::new_current_thread();
    builder.enable_all().thread_name("split-blocking");
    if let Some(affinity) = affinity {
        let affinity = Arc::clone(affinity);
        builder.on_thread_start(move || {
            if let Err(e) = affinity.unpin() {
                tracing::warn!(reason = %e, "cannot widen a blocking thread's CPU affinity");
            }
        });
    }
    builder.build()
}

/// Worker CPU affinity (`--cpu-affinity`, `nginx_config.enable_cpu_affinity`), like
/// nginx's `worker_cpu_affinity auto`: worker `i` runs only on the `i`-th CPU the
/// process may use, wrapping around when there are more workers than CPUs.
///
/// Why: with two workers on a 2-core machine shared with the load generator and the
/// backend, p99 latency was 1.6× nginx's, and pinned it was below nginx's (BENCHMARKS.md,
/// "Worker CPU affinity"): unpinned, the scheduler can put both workers on one core for
/// a while, and every connection of the waiting worker stalls.
///
/// Off by default, as in APISIX: on a host whose CPUs are shared with other busy
/// processes, a pinned worker cannot move away from a busy core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    /// The CPUs the process may run on, ascending.
    cpus: Vec<usize>,
}

impl Affinity {
    /// The CPUs the calling thread may run on (call it before any worker is pinned).
    pub fn of_process() -> Result<Affinity, String> {
        Affinity::new(sys::allowed()?)
    }

    /// Affinity over `cpus` (CPU numbers, ascending); an error when there is none.
    pub fn new(cpus: Vec<usize>) -> Result<Affinity, String> {
        if cpus.is_empty() {
            return Err("no CPU is available to this process".into());
        }
        Ok(Affinity { cpus })
    }

    /// The CPU of worker `index`.
    pub fn cpu_for(&self, index: usize) -> usize {
        self.cpus[index % self.cpus.len()]
    }

    /// Pins the calling thread to the CPU of worker `index`; returns that CPU.
    pub fn pin(&self, index: usize) -> Result<usize, String> {
        let cpu = self.cpu_for(index);
        sys::set(&[cpu]).map(|()| cpu)
    }

    /// Lets the calling thread run on every CPU of the process again.
    pub fn unpin(&self) -> Result<(), String> {
        sys::set(&self.cpus)
    }
}

/// How a worker's pinning went, for the startup summary.
pub type Pinned = (usize, Result<usize, String>);

#[cfg(target_os = "linux")]
mod sys {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

    /// The CPUs the calling thread may run on.
    pub fn allowed() -> Result<Vec<usize>, String> {
        let set = sched_getaffinity(None).map_err(|e| format!("sched_getaffinity: {e}"))?;
        Ok((0..CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect())
    }

    /// Restricts the calling thread to `cpus`.
    pub fn set(cpus: &[usize]) -> Result<(), String> {
        let mut set = CpuSet::new();
        for &cpu in cpus {
            if cpu >= CpuSet::MAX_CPU {
                return Err(format!(
                    "CPU {cpu} is past the largest CPU number supported"
                ));
            }
            set.set(cpu);
        }
        sched_setaffinity(None, &set).map_err(|e| format!("sched_setaffinity: {e}"))
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    const UNSUPPORTED: &str = "CPU affinity is supported on Linux only";

    pub fn allowed() -> Result<Vec<usize>, String> {
        Err(UNSUPPORTED.into())
    }

    pub fn set(_cpus: &[usize]) -> Result<(), String> {
        Err(UNSUPPORTED.into())
    }
}

/// Workers 1..N, each on its own thread, running until [`Extra::stop`].
pub struct Extra {
    handles: Vec<Handle>,
    threads: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Extra {
    /// Starts workers `1..workers` (none when `workers` is 1), each pinned to its CPU
    /// with `affinity`; returns them and how each pinning went.
    pub fn start(
        workers: usize,
        affinity: Option<&Arc<Affinity>>,
    ) -> Result<(Extra, Vec<Pinned>), String> {
        let mut extra = Extra {
            handles: Vec::new(),
            threads: Vec::new(),
        };
        let mut pinned = Vec::new();
        for index in 1..workers {
            let runtime =
                runtime(affinity).map_err(|e| format!("cannot start worker {index}: {e}"))?;
            extra.handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let (report, reported) = std::sync::mpsc::channel();
            let pin = affinity.map(Arc::clone);
            let thread = std::thread::Builder::new()
                .name(format!("split-worker-{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    if let Some(affinity) = pin {
                        let _ = report.send(affinity.pin(index));
                    }
                    // The runtime runs its tasks while this waits; dropping it afterwards
                    // ends whatever is left (connections past the grace period).
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })
                .map_err(|e| format!("cannot start worker {index}: {e}"))?;
            extra.threads.push((stop, thread));
            if affinity.is_some() {
                // The thread pins itself first thing; a thread that died before
                // reporting leaves its worker unpinned, not the start undone.
                let outcome = reported
                    .recv()
                    .unwrap_or_else(|_| Err("the worker thread ended before pinning".into()));
                pinned.push((index, outcome));
            }
        }
        Ok((extra, pinned))
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
    fn workers_take_the_allowed_cpus_in_turn() {
        let affinity = Affinity::new(vec![2, 5, 7]).unwrap();
        let cpus: Vec<usize> = (0..7).map(|i| affinity.cpu_for(i)).collect();
        assert_eq!(cpus, [2, 5, 7, 2, 5, 7, 2]);
        assert!(Affinity::new(Vec::new()).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pinned_thread_runs_on_one_cpu_and_its_blocking_pool_on_all() {
        let affinity = Arc::new(Affinity::of_process().unwrap());
        let all = sys::allowed().unwrap();
        let last = all.len() - 1;
        // A thread of its own: the test harness's thread keeps its affinity.
        let (pinned, blocking, unpinned) = std::thread::spawn(move || {
            let cpu = affinity.pin(last).unwrap();
            assert_eq!(cpu, all[last]);
            let pinned = sys::allowed().unwrap();
            // A blocking thread started by this (pinned) thread gets every CPU back.
            let runtime = runtime(Some(&affinity)).unwrap();
            let blocking = runtime
                .block_on(async { tokio::task::spawn_blocking(|| sys::allowed().unwrap()).await })
                .unwrap();
            affinity.unpin().unwrap();
            (pinned, blocking, sys::allowed().unwrap())
        })
        .join()
        .unwrap();
        let all = sys::allowed().unwrap();
        assert_eq!(pinned, [all[last]]);
        assert_eq!(blocking, all);
        assert_eq!(unpinned, all);
    }

    #[test]
    fn each_worker_thread_knows_its_index_and_runs_spawned_tasks() {
        assert_eq!(current(), 0);
        let (extra, pinned) = Extra::start(3, None).unwrap();
        assert!(pinned.is_empty());
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
        assert!(Extra::start(1, None).unwrap().0.handles().is_empty());
    }
}
