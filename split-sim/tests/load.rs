//! `split-sim load` against a real server: the mock upstream plays the gateway, and a fake
//! metrics endpoint reports `split_arm_requests_total` derived from the mock's hit count.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use split_sim::load::{self, LoadConfig, Tolerance};
use split_sim::upstream::{self, RunningUpstream, UpstreamConfig};

/// Serves `/metrics` as `render(hits of the mock)`, on its own thread; returns its URL.
fn fake_metrics(
    mock: Arc<RunningUpstream>,
    render: fn(u64) -> String,
) -> (String, std::sync::mpsc::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            // Bounded: the test ends it, and it gives up after 60 s regardless.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while stop_rx.try_recv().is_err() && tokio::time::Instant::now() < deadline {
                let Ok(Ok((tcp, _))) =
                    tokio::time::timeout(Duration::from_millis(100), listener.accept()).await
                else {
                    continue;
                };
                let mock = Arc::clone(&mock);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        let text = render(mock.stats().requests);
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(text),
                            )))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    });
    (format!("http://{addr}/apisix/prometheus/metrics"), stop_tx)
}

/// An exact 50/50 gateway that had already served 7 + 5 requests before the run.
fn exact_half(hits: u64) -> String {
    format!(
        "# TYPE split_arm_requests_total counter\n\
         split_arm_requests_total{{route=\"aimlapi-split\",rule=\"0\",arm=\"0\"}} {}\n\
         split_arm_requests_total{{route=\"aimlapi-split\",rule=\"0\",arm=\"1\"}} {}\n\
         apisix_http_status{{code=\"200\"}} {hits}\n",
        7 + hits.div_ceil(2),
        5 + hits / 2
    )
}

/// A 60/40 gateway.
fn sixty_forty(hits: u64) -> String {
    format!(
        "split_arm_requests_total{{route=\"r\",rule=\"0\",arm=\"0\"}} {}\n\
         split_arm_requests_total{{route=\"r\",rule=\"0\",arm=\"1\"}} {}\n",
        hits * 6 / 10,
        hits - hits * 6 / 10
    )
}

fn config(url: String, metrics: Option<String>, expect: Option<Vec<u32>>) -> LoadConfig {
    LoadConfig {
        url,
        method: http::Method::POST,
        body: Bytes::from_static(load::cli::GUIDE_BODY.as_bytes()),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        requests: 100,
        concurrency: 8,
        timeout: Duration::from_secs(10),
        duration: Duration::from_secs(30),
        metrics_url: metrics,
        route: None,
        expect,
        tolerance: Tolerance::Requests(0.0),
        ca_pem: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_gateway_passes_with_zero_tolerance() {
    let mock = Arc::new(upstream::spawn(UpstreamConfig::default()).unwrap());
    let (metrics, stop) = fake_metrics(Arc::clone(&mock), exact_half);
    let url = format!("{}/chat/completions", mock.url());
    let report = load::run_load(&config(url, Some(metrics), Some(vec![50, 50])))
        .await
        .unwrap();
    let _ = stop.send(());
    assert_eq!(report.responses, 100);
    assert_eq!(report.errors, 0);
    assert_eq!(report.statuses["200"], 100);
    assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.p50 <= report.latency_ms.max);
    let m = report.metrics.as_ref().unwrap();
    assert!(m.error.is_none());
    // The diff removes the 7 + 5 that were there before the run.
    let hits: Vec<u64> = m.arms.iter().map(|a| a.hits).collect();
    assert_eq!(hits, vec![50, 50]);
    let a = report.accuracy.as_ref().unwrap();
    assert_eq!(a.source, "metrics");
    assert!(a.pass, "{a:?}");
    assert_eq!(a.chi_square.statistic, 0.0);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.upstreams.len(), 1);
    assert_eq!(report.upstreams[0].hits, 100);
    assert_eq!(mock.stats().requests, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_gateway_fails_and_reports_chi_square() {
    let mock = Arc::new(upstream::spawn(UpstreamConfig::default()).unwrap());
    let (metrics, stop) = fake_metrics(Arc::clone(&mock), sixty_forty);
    let url = format!("{}/v1/chat/completions", mock.url());
    let report = load::run_load(&config(url, Some(metrics), Some(vec![50, 50])))
        .await
        .unwrap();
    let _ = stop.send(());
    let a = report.accuracy.as_ref().unwrap();
    assert!(!a.pass);
    assert_eq!(a.arms[0].hits, 60);
    assert_eq!(a.arms[1].hits, 40);
    assert!((a.chi_square.statistic - 4.0).abs() < 1e-9);
    assert!((a.chi_square.p_value - 0.0455).abs() < 5e-4);
    assert_eq!(a.worst_deviation, 10.0);
    assert_eq!(report.exit_code(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_the_mock_headers_are_counted() {
    let mock = upstream::spawn(UpstreamConfig {
        name: "solo".into(),
        ..UpstreamConfig::default()
    })
    .unwrap();
    let url = format!("{}/v2/chat/completions", mock.url());
    let mut cfg = config(url, None, Some(vec![1]));
    cfg.requests = 40;
    cfg.concurrency = 3;
    let report = load::run_load(&cfg).await.unwrap();
    assert_eq!(report.responses, 40);
    let a = report.accuracy.as_ref().unwrap();
    assert_eq!(a.source, "upstream");
    assert_eq!(a.arms[0].arm, "solo /v2/chat/completions");
    assert!(a.pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_gateway_is_counted_not_fatal() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/chat/completions");
    let mut cfg = config(url.clone(), Some(url), Some(vec![50, 50]));
    cfg.requests = 5;
    let report = load::run_load(&cfg).await.unwrap();
    assert_eq!(report.errors, 5);
    assert_eq!(report.error_kinds["connect"], 5);
    assert!(report.metrics.as_ref().unwrap().error.is_some());
    assert_eq!(report.exit_code(), 2);
}

#[test]
fn cli_exit_code_and_json() {
    let mock = Arc::new(upstream::spawn(UpstreamConfig::default()).unwrap());
    let (metrics, stop) = fake_metrics(Arc::clone(&mock), sixty_forty);
    let url = format!("{}/chat/completions", mock.url());
    let run = |tolerance: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_split-sim"))
            .args(["load", &url, "-n", "100", "-c", "4", "--metrics", &metrics])
            .args(["--expect", "50,50", "--tolerance", tolerance, "--json"])
            .output()
            .unwrap()
    };
    let strict = run("0");
    assert_eq!(strict.status.code(), Some(2), "{strict:?}");
    let json: serde_json::Value = serde_json::from_slice(&strict.stdout).unwrap();
    assert_eq!(json["accuracy"]["pass"], false);
    assert_eq!(json["accuracy"]["chi_square"]["statistic"], 4.0);
    // 10 requests off: inside a 10% share tolerance, outside 9 requests.
    let loose = run("10%");
    assert_eq!(loose.status.code(), Some(0), "{loose:?}");
    assert_eq!(run("9").status.code(), Some(2));
    let _ = stop.send(());
}
