//! `/healthz`, `/readyz` and `split-proxy status` against a running gateway (embedded
//! store), and `status`'s offline fallback when nothing answers.

mod common;

use common::gateway::{run, start};
use common::{Client, Mock};
use http::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_and_status_report_store_revision_and_split_counts() {
    let (a, b) = (Mock::http("a"), Mock::http("b"));
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &[]);
    let key = std::fs::read_to_string(dir.path().join("data/admin.key")).unwrap();
    let client = Client::new();

    let healthz = client.get(&format!("http://{}/healthz", gw.metrics)).await;
    assert_eq!(healthz.status, 200);
    assert_eq!(healthz.json()["status"], "ok");
    let ready = client.get(&format!("http://{}/readyz", gw.metrics)).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["store"], "embedded");
    assert_eq!(ready.json()["in_sync"], true);

    let route = json!({
        "uri": "/split",
        "upstream": {"nodes": {a.node(): 1}},
        "plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [
            {"upstream": {"nodes": {b.node(): 1}}, "weight": 1},
            {"weight": 1}
        ]}]}}
    });
    let admin = format!("http://{}/apisix/admin/routes/s", gw.admin.unwrap());
    let r = client
        .send(
            Method::PUT,
            &admin,
            &[("X-API-KEY", key.trim())],
            route.to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for _ in 0..10 {
        assert_eq!(client.get(&gw.url("/split")).await.status, 200);
    }
    let metrics = gw.metrics.to_string();
    let (code, out, err) = run(&["status", "--metrics-listen", &metrics]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains(&format!("gateway: {metrics} (ready)")),
        "{out}"
    );
    assert!(out.contains("store: embedded "), "{out}");
    assert!(out.contains("revision: 1\n"), "{out}");
    assert!(out.contains("sync: ok"), "{out}");
    assert!(out.contains("route s rule 0: 0=5 1=5 (total 10)"), "{out}");
    let text = gw.metrics_text().await;
    assert!(text.contains("split_config_sync_ok 1"), "{text}");
    assert!(text.contains("split_config_revision 1"), "{text}");
}

#[test]
fn status_falls_back_to_the_store_when_no_gateway_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A free port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let (code, out, err) = run(&[
        "--data-dir",
        data.to_str().unwrap(),
        "status",
        "--metrics-listen",
        &metrics,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("not reachable"), "{out}");
    assert!(out.contains("revision: 0"), "{out}");
}
