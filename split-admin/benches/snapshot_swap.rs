//! Criterion benches of publishing a compiled snapshot the way the Admin API does
//! (`ArcSwap::store`) and of the proxy's per-request `load`, with and without a reader
//! thread loading concurrently. Snapshots are compiled outside the timed closures.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use split_core::config::ResourceKind;
use split_core::snapshot::{ConfigSet, Snapshot};

/// A compiled snapshot of `n` routes (the guide's split on every tenth).
fn snapshot(n: usize, tag: &str) -> Arc<Snapshot> {
    let upstream =
        json!({"type": "roundrobin", "nodes": {"api.example.com:443": 1}, "scheme": "https"});
    let mut routes = BTreeMap::new();
    for i in 0..n {
        let mut route = json!({"uri": format!("/{tag}/svc{i}/*"), "upstream": upstream});
        if i % 10 == 0 {
            route["plugins"] = json!({"traffic-split": {"rules": [
                {"weight": 50, "upstream": upstream, "rewrite": {"uri": "/v1/chat/completions"}},
                {"weight": 50, "upstream": upstream, "rewrite": {"uri": "/v2/chat/completions"}}
            ]}});
        }
        routes.insert(format!("r{i}"), route);
    }
    let mut objects = BTreeMap::new();
    objects.insert(ResourceKind::Routes, routes);
    Arc::new(Snapshot::compile(ConfigSet { objects }).expect("valid set"))
}

fn bench_swap(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot");
    g.throughput(Throughput::Elements(1));
    let a = snapshot(1_000, "a");
    let b = snapshot(1_000, "b");
    let live = Arc::new(ArcSwap::new(Arc::clone(&a)));

    g.bench_function("load", |bench| {
        bench.iter(|| black_box(live.load().routes.len()))
    });

    let mut flip = false;
    g.bench_function("store_uncontended", |bench| {
        bench.iter(|| {
            flip = !flip;
            let next = if flip { &b } else { &a };
            live.store(Arc::clone(black_box(next)));
        })
    });

    // A reader thread loads in a loop (the proxy's request path) while the writer swaps.
    let stop = Arc::new(AtomicBool::new(false));
    let loads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (live, stop, loads) = (Arc::clone(&live), Arc::clone(&stop), Arc::clone(&loads));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += black_box(live.load().routes.len()) as u64 & 1;
                loads.fetch_add(1, Ordering::Relaxed);
            }
            n
        })
    };
    // Bounded wait until the reader runs.
    for _ in 0..1_000 {
        if loads.load(Ordering::Relaxed) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    g.bench_function("store_with_reader", |bench| {
        bench.iter(|| {
            flip = !flip;
            let next = if flip { &b } else { &a };
            live.store(Arc::clone(black_box(next)));
        })
    });
    g.bench_function("load_with_writer_idle_reader_busy", |bench| {
        bench.iter(|| black_box(live.load().routes.len()))
    });
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    g.finish();
}

criterion_group!(benches, bench_swap);
criterion_main!(benches);
