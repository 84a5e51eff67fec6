//! Measures Admin API write → live latency: the time from handing a PUT to
//! `Admin::handle` until the proxy's `live.load()` sees the new route (the snapshot is
//! published before the response, so this is the PUT's duration), for stores holding
//! `N` routes already. Includes validation, whole-set compile and the durable redb commit.
//!
//! `cargo run --release -p split-admin --example write_latency -- [N ...]`
//!
//! The store lives in the system temp dir, so fsync cost depends on what backs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use split_admin::{Admin, AdminOptions, Snapshot};
use split_core::admin_auth::AdminAuth;
use split_core::config::ResourceKind;

const SAMPLES: usize = 50;

fn route(i: usize) -> String {
    format!(
        r#"{{"uri":"/r/{i}","upstream":{{"type":"roundrobin","nodes":{{"127.0.0.1:1980":1}}}}}}"#
    )
}

async fn put(admin: &Admin, id: &str, body: String) -> http::StatusCode {
    let req = http::Request::put(format!("/apisix/admin/routes/{id}"))
        .body(Full::new(Bytes::from(body)))
        .expect("valid request");
    admin.handle(req, [127, 0, 0, 1].into()).await.status()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![0, 100, 1000]
    } else {
        sizes
    };
    for n in sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = Arc::new(ArcSwap::from_pointee(Snapshot::empty()));
        let auth = AdminAuth {
            keys: Vec::new(),
            required: false,
            allow: Vec::new(),
        };
        let admin = Admin::open_embedded(
            dir.path(),
            live.clone(),
            AdminOptions {
                auth,
                read_only: None,
            },
        )
        .expect("open");
        for i in 0..n {
            assert!(put(&admin, &format!("base{i}"), route(i))
                .await
                .is_success());
        }
        let mut times = Vec::with_capacity(SAMPLES);
        for s in 0..SAMPLES {
            let id = format!("probe{s}");
            let start = Instant::now();
            let status = put(&admin, &id, route(n + s)).await;
            let seen = live
                .load()
                .source
                .objects
                .get(&ResourceKind::Routes)
                .is_some_and(|m| m.contains_key(&id));
            times.push(start.elapsed());
            assert!(status.is_success() && seen, "write {id} not live");
        }
        times.sort();
        // The share of split-core's whole-set compile in each write.
        let set = admin.export();
        let start = Instant::now();
        let compiled = Snapshot::compile(set);
        let compile = start.elapsed();
        assert!(compiled.is_ok());
        println!(
            "{n:>6} routes stored: write->live p50 {:?}  p90 {:?}  max {:?}  ({SAMPLES} PUTs); one Snapshot::compile {:?}",
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            times[times.len() - 1],
            compile
        );
    }
}
