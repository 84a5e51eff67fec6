//! `split-sim run --from-admin` against a fake Admin API that lists the guide's route.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

const KEY: &str = "test-admin-key-0123456789abcdef0123456789";

/// Serves `/apisix/admin/routes` (the guide's route) and empty `/upstreams`; other kinds
/// are 404; a wrong key is 401. Stops after 30 s or when the sender is dropped.
fn fake_admin() -> (String, std::sync::mpsc::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while matches!(rx.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty))
                && tokio::time::Instant::now() < deadline
            {
                let Ok(Ok((tcp, _))) =
                    tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
                else {
                    continue;
                };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                        let route: Value =
                            serde_json::from_str(split_sim::run::cli::GUIDE_ROUTE).unwrap();
                        let (status, body) = if req.headers().get("x-api-key").map(|v| v.as_bytes())
                            != Some(KEY.as_bytes())
                        {
                            (401, json!({"error_msg": "failed to check token"}))
                        } else {
                            match req.uri().path() {
                                "/apisix/admin/routes" => (
                                    200,
                                    json!({"total": 1, "list": [{
                                        "key": "/apisix/routes/aimlapi-split",
                                        "value": route, "createdIndex": 1, "modifiedIndex": 1}]}),
                                ),
                                "/apisix/admin/upstreams" => (200, json!({"list": [], "total": 0})),
                                _ => (404, json!({"error_msg": "Unsupported resource type"})),
                            }
                        };
                        let mut resp =
                            hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    });
    (format!("http://{addr}"), tx)
}

#[test]
fn run_reads_the_live_config_from_the_admin_api() {
    let (url, stop) = fake_admin();
    let bin = env!("CARGO_BIN_EXE_split-sim");
    let o = std::process::Command::new(bin)
        .args([
            "run",
            "--from-admin",
            &url,
            "--key",
            KEY,
            "-n",
            "1000",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["route"], "aimlapi-split");
    assert_eq!(j["groups"][0]["arms"][0]["hits"], 500);

    let o = std::process::Command::new(bin)
        .args(["run", "--from-admin", &url, "--key", "wrong", "-n", "10"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"));
    drop(stop);
}
