//! Many gateways, one etcd: the Admin API writes through etcd in APISIX's key layout and
//! every gateway follows the prefix with a watch. etcd runs on free loopback ports in a
//! temp dir (see `common/etcd.rs`); `./test.sh` installs it.

mod common;
#[path = "common/etcd.rs"]
mod etcd_harness;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gateway::{sample, start};
use common::{Client, Gateway, Mock};
use etcd_harness::Etcd;
use http::Method;
use serde_json::{json, Value};

const KEY: &str = "etcd-fleet-test-admin-key-0123456789abcdef";

fn config(dir: &Path, etcd_url: &str, role: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "deployment:\n  role: {role}\n  admin:\n    admin_key:\n      - name: admin\n        key: {KEY}\n        role: admin\n  etcd:\n    host:\n      - \"{etcd_url}\"\n    prefix: /apisix\n    timeout: 3\n"
        ),
    )
    .expect("write config.yaml");
    path
}

/// A gateway of `role` on `etcd`, in its own temp dir (kept alive by the returned guard).
fn gateway(etcd_url: &str, role: &str) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), etcd_url, role);
    let gw = start(dir.path(), &["-c", cfg.to_str().expect("utf-8 path")]);
    (gw, dir)
}

async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn readyz(client: &Client, metrics: SocketAddr) -> (u16, Value) {
    let r = client.get(&format!("http://{metrics}/readyz")).await;
    (r.status, r.json())
}

async fn wait_ready(client: &Client, gw: &Gateway) {
    let ok = eventually(Duration::from_secs(15), || async {
        readyz(client, gw.metrics).await.0 == 200
    })
    .await;
    assert!(ok, "gateway never became ready:\n{}", gw.stderr());
}

async fn admin(
    client: &Client,
    gw: &Gateway,
    method: Method,
    path: &str,
    body: &str,
) -> common::Reply {
    let admin = gw.admin.expect("admin listener");
    client
        .send(
            method,
            &format!("http://{admin}/apisix/admin{path}"),
            &[("X-API-KEY", KEY)],
            body.to_owned(),
        )
        .await
}

/// PUTs `body` through `gw`'s Admin API at `path`, asserting 201 Created.
async fn put_created(client: &Client, gw: &Gateway, path: &str, body: &str) {
    let r = admin(client, gw, Method::PUT, path, body).await;
    assert_eq!(r.status, 201, "PUT {path}: {}", r.text());
}

/// Two `traditional` gateways on `etcd_url`, both ready.
async fn two_ready_gateways(client: &Client, etcd_url: &str) -> [(Gateway, tempfile::TempDir); 2] {
    let pair = [
        gateway(etcd_url, "traditional"),
        gateway(etcd_url, "traditional"),
    ];
    for (gw, _) in &pair {
        wait_ready(client, gw).await;
    }
    pair
}

fn route(uri: &str, node: &str) -> String {
    json!({"uri": uri, "upstream": {"type": "roundrobin", "nodes": {node: 1}}}).to_string()
}

async fn sync_ok(gw: &Gateway) -> Option<f64> {
    sample(&gw.metrics_text().await, "split_config_sync_ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_through_gateway_a_is_live_on_gateway_b_within_a_second() {
    let etcd = Etcd::start();
    let mock = Mock::http("m");
    let client = Client::new();
    let [(a, _da), (b, _db)] = two_ready_gateways(&client, &etcd.url()).await;
    assert_eq!(
        client
            .get(&format!("http://{}/healthz", b.metrics))
            .await
            .status,
        200
    );
    let (_, state) = readyz(&client, b.metrics).await;
    assert_eq!(state["store"], "etcd", "{state}");
    assert_eq!(state["in_sync"], true, "{state}");
    assert_eq!(sync_ok(&b).await, Some(1.0));

    let started = Instant::now();
    let r = admin(
        &client,
        &a,
        Method::PUT,
        "/routes/1",
        &route("/fleet", &mock.node()),
    )
    .await;
    let put_took = started.elapsed();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["key"], "/apisix/routes/1");
    let live = eventually(Duration::from_secs(1), || async {
        client.get(&b.url("/fleet")).await.status == 200
    })
    .await;
    let latency = started.elapsed();
    assert!(live, "not live on B within 1 s:\n{}", b.stderr());
    println!(
        "admin PUT on gateway A live on gateway B after {:.1} ms (the PUT reply took {:.1} ms)",
        latency.as_secs_f64() * 1000.0,
        put_took.as_secs_f64() * 1000.0
    );
    // Gateway A answers from its own view right after its write returns.
    assert_eq!(client.get(&a.url("/fleet")).await.status, 200);

    // The key holds APISIX's JSON; the indexes are etcd's create/mod revisions.
    let (value, created, modified) = etcd.get("/apisix/routes/1").expect("key in etcd");
    let value: Value = serde_json::from_str(&value).expect("json value");
    assert_eq!(value["uri"], "/fleet");
    assert_eq!(value["id"], "1");
    let got = admin(&client, &b, Method::GET, "/routes/1", "")
        .await
        .json();
    assert_eq!(got["createdIndex"], created, "{got}");
    assert_eq!(got["modifiedIndex"], modified, "{got}");

    // Replacing is 200 and moves only modifiedIndex.
    let r = admin(
        &client,
        &b,
        Method::PUT,
        "/routes/1",
        &route("/fleet2", &mock.node()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Gateway A sees B's write once the watch delivers it.
    let replaced = eventually(Duration::from_secs(1), || async {
        let got = admin(&client, &a, Method::GET, "/routes/1", "")
            .await
            .json();
        got["createdIndex"] == created && got["modifiedIndex"].as_u64() > Some(modified)
    })
    .await;
    assert!(replaced, "B's replace not seen on A");
    let r = admin(&client, &a, Method::DELETE, "/routes/1", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(etcd.get("/apisix/routes/1").is_none());
    let gone = eventually(Duration::from_secs(1), || async {
        client.get(&b.url("/fleet2")).await.status == 404
    })
    .await;
    assert!(gone, "delete not applied on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_loss_keeps_serving_and_recovery_picks_up_writes_made_meanwhile() {
    let mut etcd = Etcd::start();
    let mock = Mock::http("m");
    let client = Client::new();
    let [(a, _da), (b, _db)] = two_ready_gateways(&client, &etcd.url()).await;
    put_created(
        &client,
        &a,
        "/routes/before",
        &route("/before", &mock.node()),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(2), || async {
            client.get(&b.url("/before")).await.status == 200
        })
        .await
    );

    etcd.stop();
    for gw in [&a, &b] {
        let lost = eventually(Duration::from_secs(20), || async {
            sync_ok(gw).await == Some(0.0)
        })
        .await;
        assert!(
            lost,
            "split_config_sync_ok never went to 0:\n{}",
            gw.stderr()
        );
        assert_eq!(client.get(&gw.url("/before")).await.status, 200);
        let (status, state) = readyz(&client, gw.metrics).await;
        assert_eq!(
            status, 200,
            "ready stays true after the first sync: {state}"
        );
        assert_eq!(state["in_sync"], false, "{state}");
        assert!(gw.stderr().contains("etcd sync lost"), "{}", gw.stderr());
    }
    let r = admin(
        &client,
        &a,
        Method::PUT,
        "/routes/x",
        &route("/x", &mock.node()),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());

    etcd.restart();
    let apisix_route = json!({
        "id": "after", "uri": "/after", "status": 1, "priority": 0,
        "create_time": 1_700_000_000, "update_time": 1_700_000_000,
        "upstream": {"type": "roundrobin", "nodes": {mock.node(): 1}}
    });
    etcd.put("/apisix/routes/after", &apisix_route.to_string());
    for gw in [&a, &b] {
        let back = eventually(Duration::from_secs(15), || async {
            client.get(&gw.url("/after")).await.status == 200
        })
        .await;
        assert!(
            back,
            "write made during the outage not picked up:\n{}",
            gw.stderr()
        );
        assert_eq!(client.get(&gw.url("/before")).await.status, 200);
        assert!(
            eventually(Duration::from_secs(2), || async {
                sync_ok(gw).await == Some(1.0)
            })
            .await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_serves_keys_written_in_apisix_format_and_reports_bad_ones() {
    let etcd = Etcd::start();
    let mock = Mock::http("m");
    let client = Client::new();
    let now = 1_700_000_000;
    etcd.put(
        "/apisix/upstreams/1",
        &json!({"id": "1", "type": "roundrobin", "nodes": {mock.node(): 1},
                "create_time": now, "update_time": now})
        .to_string(),
    );
    etcd.put(
        "/apisix/routes/1",
        &json!({"id": "1", "uri": "/apisix-format", "methods": ["GET"], "upstream_id": "1",
                "status": 1, "priority": 0, "create_time": now, "update_time": now})
        .to_string(),
    );
    etcd.put(
        "/apisix/routes/bad",
        &json!({"id": "bad", "uri": "/bad", "upstream_id": "1", "websocket_typo": true})
            .to_string(),
    );
    etcd.put(
        "/apisix/stream_routes/1",
        r#"{"id":"1","server_port":9100}"#,
    );

    let (dp, _d) = gateway(&etcd.url(), "data_plane");
    assert_eq!(
        dp.admin,
        None,
        "a data plane has no Admin API:\n{}",
        dp.stderr()
    );
    wait_ready(&client, &dp).await;
    let r = client.get(&dp.url("/apisix-format")).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), dp.stderr());
    assert_eq!(mock.count("/apisix-format"), 1);
    assert_eq!(client.get(&dp.url("/bad")).await.status, 404);
    let log = dp.stderr();
    let bad = log.lines().find(|l| l.contains("/apisix/routes/bad"));
    assert!(
        bad.is_some_and(|l| l.contains("websocket_typo")),
        "the skipped key and its field must be logged:\n{log}"
    );
    assert!(log.contains("/apisix/stream_routes/1"), "{log}");

    // Fixing the object in etcd makes it load, without a restart.
    etcd.put(
        "/apisix/routes/bad",
        &json!({"id": "bad", "uri": "/bad", "upstream_id": "1"}).to_string(),
    );
    assert!(
        eventually(Duration::from_secs(1), || async {
            client.get(&dp.url("/bad")).await.status == 200
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sees_what_another_gateway_committed_just_before() {
    let etcd = Etcd::start();
    let client = Client::new();
    let [(a, _da), (b, _db)] = two_ready_gateways(&client, &etcd.url()).await;
    let gws = Arc::new([a, b]);
    // Each PATCH through B goes out right after A's PUT answered, while B is busy with
    // the other rounds, before B's watch may have delivered the PUT.
    let mut rounds = Vec::new();
    for i in 0..24 {
        let gws = Arc::clone(&gws);
        let client = client.clone();
        rounds.push(tokio::spawn(async move {
            let [a, b] = &*gws;
            let body = format!(r#"{{"nodes":{{"127.0.0.1:1":1}},"labels":{{"round":"{i}"}}}}"#);
            put_created(&client, a, &format!("/upstreams/fresh{i}"), &body).await;
            let patch = admin(
                &client,
                b,
                Method::PATCH,
                &format!("/upstreams/fresh{i}"),
                r#"{"labels":{"patched":"yes"}}"#,
            )
            .await;
            (
                i,
                patch.status,
                patch.json()["value"]["labels"]["round"].clone(),
            )
        }));
    }
    for round in rounds {
        let (i, status, label) = round.await.expect("round");
        assert_eq!((status, label), (200, json!(i.to_string())), "round {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_admin_writes_through_two_gateways_lose_no_update() {
    let etcd = Etcd::start();
    let client = Client::new();
    let [(a, _da), (b, _db)] = two_ready_gateways(&client, &etcd.url()).await;
    put_created(
        &client,
        &a,
        "/upstreams/u",
        r#"{"nodes":{"127.0.0.1:1":1},"labels":{"base":"1"}}"#,
    )
    .await;
    let gws = Arc::new([a, b]);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let gws = Arc::clone(&gws);
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let gw = &gws[i % 2];
            let patch = admin(
                &client,
                gw,
                Method::PATCH,
                "/upstreams/u",
                &json!({"labels": {format!("k{i}"): "v"}}).to_string(),
            )
            .await;
            let post = admin(
                &client,
                gw,
                Method::POST,
                "/upstreams",
                r#"{"nodes":{"127.0.0.1:2":1}}"#,
            )
            .await;
            (patch.status, post.status, post.json()["key"].clone())
        }));
    }
    let mut keys = std::collections::BTreeSet::new();
    for t in tasks {
        let (patch, post, key) = t.await.expect("task");
        assert_eq!((patch, post), (200, 201), "key {key}");
        keys.insert(key.as_str().expect("key").to_owned());
    }
    assert_eq!(keys.len(), 20, "every POST got its own id: {keys:?}");
    for key in &keys {
        assert!(etcd.get(key).is_some(), "{key} missing in etcd");
    }
    let (value, _, _) = etcd.get("/apisix/upstreams/u").expect("upstream");
    let value: Value = serde_json::from_str(&value).expect("json");
    let labels = value["labels"].as_object().expect("labels");
    assert_eq!(labels.len(), 21, "a PATCH was lost: {value}");
}

/// A process without a proxy port (control plane): admin and metrics addresses only.
struct ControlPlane {
    child: Child,
    admin: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_control_plane(dir: &Path, cfg: &Path) -> ControlPlane {
    let mut child = Command::new(common::gateway::binary())
        .args([
            "--admin-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "-c",
        ])
        .arg(cfg)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn split-proxy");
    let pipe = child.stderr.take().expect("stderr");
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().expect("lock");
            s.push_str(&line);
            s.push('\n');
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let text = stderr.lock().expect("lock").clone();
        if text.contains("config source:") {
            let admin = text
                .lines()
                .find_map(|l| {
                    l.split_once("admin API listening on ")
                        .map(|(_, a)| a.trim().parse())
                })
                .expect("admin listener")
                .expect("admin addr");
            return ControlPlane {
                child,
                admin,
                stderr,
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "control plane did not start:\n{}",
        stderr.lock().expect("lock")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_has_no_proxy_port_and_feeds_the_data_planes() {
    let etcd = Etcd::start();
    let mock = Mock::http("m");
    let client = Client::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), &etcd.url(), "control_plane");
    let cp = start_control_plane(dir.path(), &cfg);
    let log = cp.stderr.lock().expect("lock").clone();
    assert!(!log.contains("proxy listening"), "{log}");
    assert!(log.contains("no proxy port"), "{log}");
    let (dp, _d) = gateway(&etcd.url(), "data_plane");
    wait_ready(&client, &dp).await;
    let url = format!("http://{}/apisix/admin/routes/cp", cp.admin);
    let ok = eventually(Duration::from_secs(10), || async {
        client
            .send(
                Method::PUT,
                &url,
                &[("X-API-KEY", KEY)],
                route("/cp", &mock.node()),
            )
            .await
            .status
            == 201
    })
    .await;
    assert!(
        ok,
        "control plane admin write failed:\n{}",
        cp.stderr.lock().expect("lock")
    );
    assert!(
        eventually(Duration::from_secs(1), || async {
            client.get(&dp.url("/cp")).await.status == 200
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_the_first_sync_and_healthz_is_200() {
    // A port nothing listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let client = Client::new();
    let (gw, _d) = gateway(&format!("http://127.0.0.1:{port}"), "traditional");
    assert_eq!(
        client
            .get(&format!("http://{}/healthz", gw.metrics))
            .await
            .status,
        200
    );
    let (status, state) = readyz(&client, gw.metrics).await;
    assert_eq!(status, 503, "{state}");
    assert_eq!(state["ready"], false, "{state}");
    assert_eq!(sync_ok(&gw).await, Some(0.0));
    let r = admin(
        &client,
        &gw,
        Method::PUT,
        "/routes/1",
        &route("/x", "127.0.0.1:1"),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());

    let _etcd = Etcd::start_on(port);
    wait_ready(&client, &gw).await;
    assert_eq!(sync_ok(&gw).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_trips_are_restored_after_the_first_etcd_sync() {
    let etcd = Etcd::start();
    let mock = Mock::http("m");
    let client = Client::new();
    let (gw, dir) = gateway(&etcd.url(), "traditional");
    wait_ready(&client, &gw).await;
    let up = json!({"type": "roundrobin", "nodes": {mock.node(): 1}});
    let route = json!({
        "uri": "/chat",
        "plugins": {"traffic-split": {"rules": [{
            "guard": {"max_error_rate": 0.5, "min_requests": 3, "window": 60},
            "weighted_upstreams": [
                {"name": "stable", "weight": 3, "upstream": up, "rewrite": {"uri": "/ok"}},
                {"name": "canary", "weight": 1, "upstream": up, "rewrite": {"uri": "/status/503"}}
            ]
        }]}}
    });
    put_created(&client, &gw, "/routes/g", &route.to_string()).await;
    assert!(
        eventually(Duration::from_secs(2), || async {
            client.get(&gw.url("/chat")).await.status != 404
        })
        .await
    );
    let tripped = r#"split_guard_tripped{route="g",rule="0",arm="canary"}"#;
    let mut sent = 1;
    while sent < 40 && sample(&gw.metrics_text().await, tripped) != Some(1.0) {
        client.get(&gw.url("/chat")).await;
        sent += 1;
    }
    assert_eq!(sample(&gw.metrics_text().await, tripped), Some(1.0));
    let canary_before = mock.count("/status/503");

    // Restart on the same data dir: the routes arrive with the first sync, then the trip.
    let cfg = dir.path().join("config.yaml");
    drop(gw);
    let gw = start(dir.path(), &["-c", cfg.to_str().expect("utf-8 path")]);
    wait_ready(&client, &gw).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            sample(&gw.metrics_text().await, tripped) == Some(1.0)
        })
        .await,
        "trip not restored:\n{}",
        gw.stderr()
    );
    for _ in 0..8 {
        assert_eq!(client.get(&gw.url("/chat")).await.status, 200);
    }
    assert_eq!(mock.count("/status/503"), canary_before, "canary kept at 0");
}
