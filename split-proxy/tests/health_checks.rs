//! Upstream health checks (`upstream.checks`) against the real binary: a node failing its
//! health path stops receiving traffic within the interval and comes back when healthy;
//! passive checks trip on real responses; with every node unhealthy, all are used.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::gateway::{sample, start, Gateway};
use common::server::{respond, TestServer};
use common::Client;
use serde_json::{json, Value};

/// A node whose `/health` status and real-traffic status can be switched.
struct Node {
    addr: SocketAddr,
    health: Arc<AtomicU16>,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
    _server: TestServer,
}

impl Node {
    fn start() -> Node {
        let health = Arc::new(AtomicU16::new(200));
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let (h, s, c) = (Arc::clone(&health), Arc::clone(&status), Arc::clone(&hits));
        let server = TestServer::start(move |req| {
            let code = if req.uri().path() == "/health" {
                h.load(Ordering::SeqCst)
            } else {
                c.fetch_add(1, Ordering::SeqCst);
                s.load(Ordering::SeqCst)
            };
            Box::pin(async move { respond(code, b"{}") })
        });
        Node {
            addr: server.addr,
            health,
            status,
            hits,
            _server: server,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn route(nodes: &[&Node], checks: Value) -> Value {
    let nodes: serde_json::Map<String, Value> = nodes
        .iter()
        .map(|n| (n.addr.to_string(), json!(1)))
        .collect();
    json!({"routes": [{
        "id": "hc",
        "uri": "/chat",
        "upstream": {"type": "roundrobin", "nodes": nodes, "retries": 0, "checks": checks}
    }]})
}

fn gateway(doc: &Value) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let gw = start(dir.path(), &["--standalone", file.to_str().unwrap()]);
    (gw, dir)
}

/// `apisix_upstream_status` of `node`, waiting up to 10 s for it to equal `want`.
async fn wait_status(gw: &Gateway, node: &Node, want: f64) -> String {
    let line = format!(
        r#"apisix_upstream_status{{name="/apisix/routes/hc",ip="127.0.0.1",port="{}"}}"#,
        node.addr.port()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = gw.metrics_text().await;
        if sample(&text, &line) == Some(want) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{line} never became {want}:\n{text}\n{}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(client: &Client, gw: &Gateway, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(client.get(&gw.url("/chat")).await.status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_path_removes_the_node_until_it_recovers() {
    let (a, b) = (Node::start(), Node::start());
    let checks = json!({"active": {
        "http_path": "/health",
        "healthy": {"interval": 1, "successes": 1},
        "unhealthy": {"interval": 1, "http_failures": 1}
    }});
    let (gw, _dir) = gateway(&route(&[&a, &b], checks));
    let client = Client::new();
    wait_status(&gw, &b, 1.0).await;
    assert!(send(&client, &gw, 10).await.iter().all(|s| *s == 200));
    assert_eq!(
        (a.hits(), b.hits()),
        (5, 5),
        "both nodes serve while healthy"
    );

    b.health.store(500, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let text = wait_status(&gw, &b, 0.0).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "marked unhealthy within the interval (+ slack): {:?}",
        started.elapsed()
    );
    assert!(
        gw.stderr().contains("upstream node is unhealthy"),
        "{}",
        gw.stderr()
    );
    let line = format!(
        r#"apisix_upstream_status{{name="/apisix/routes/hc",ip="127.0.0.1",port="{}"}}"#,
        a.addr.port()
    );
    assert_eq!(sample(&text, &line), Some(1.0), "{text}");
    let before = (a.hits(), b.hits());
    assert!(send(&client, &gw, 10).await.iter().all(|s| *s == 200));
    assert_eq!((a.hits() - before.0, b.hits() - before.1), (10, 0));

    b.health.store(200, Ordering::SeqCst);
    wait_status(&gw, &b, 1.0).await;
    let before = (a.hits(), b.hits());
    assert!(send(&client, &gw, 10).await.iter().all(|s| *s == 200));
    assert_eq!(
        (a.hits() - before.0, b.hits() - before.1),
        (5, 5),
        "back in rotation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_nodes_unhealthy_means_all_are_used() {
    let (a, b) = (Node::start(), Node::start());
    a.health.store(503, Ordering::SeqCst);
    b.health.store(503, Ordering::SeqCst);
    let checks = json!({"active": {
        "http_path": "/health",
        "unhealthy": {"interval": 1, "http_failures": 1}
    }});
    let (gw, _dir) = gateway(&route(&[&a, &b], checks));
    wait_status(&gw, &a, 0.0).await;
    wait_status(&gw, &b, 0.0).await;
    let client = Client::new();
    assert!(send(&client, &gw, 10).await.iter().all(|s| *s == 200));
    assert_eq!((a.hits(), b.hits()), (5, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_failures_trip_and_active_probes_restore() {
    let (a, b) = (Node::start(), Node::start());
    let checks = json!({
        "active": {
            "http_path": "/health",
            "healthy": {"interval": 300, "successes": 1},
            "unhealthy": {"interval": 1, "http_failures": 5}
        },
        "passive": {"unhealthy": {"http_statuses": [500], "http_failures": 2}}
    });
    let (gw, _dir) = gateway(&route(&[&a, &b], checks));
    wait_status(&gw, &b, 1.0).await;
    b.status.store(500, Ordering::SeqCst);
    let client = Client::new();
    // Round robin: b answers every other request; its second 500 trips it.
    let statuses = send(&client, &gw, 4).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        2,
        "{statuses:?}"
    );
    let text = gw.metrics_text().await;
    let line = format!(
        r#"apisix_upstream_status{{name="/apisix/routes/hc",ip="127.0.0.1",port="{}"}}"#,
        b.addr.port()
    );
    assert_eq!(sample(&text, &line), Some(0.0), "{text}");
    let before = b.hits();
    assert!(send(&client, &gw, 6).await.iter().all(|s| *s == 200));
    assert_eq!(b.hits(), before, "b is skipped");
    // Unhealthy nodes are probed every second; /health answers 200 → healthy again.
    b.status.store(200, Ordering::SeqCst);
    wait_status(&gw, &b, 1.0).await;
    let before = b.hits();
    assert!(send(&client, &gw, 4).await.iter().all(|s| *s == 200));
    assert_eq!(b.hits() - before, 2);
}
