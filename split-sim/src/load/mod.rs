//! `split-sim load`: sends N real requests to a running gateway, scrapes its metrics
//! before and after, and reports the per-arm distribution, statuses, latency and how well
//! the split matched the expected weights.

pub mod cli;
pub mod metrics;
mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

pub use report::{
    render_text, Accuracy, AccuracyArm, ArmHits, Latency, LoadReport, MetricsView, Tolerance,
    UpstreamHits,
};

use crate::client::Client;
use metrics::ArmCounts;

/// What to send and how to judge it.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Gateway URL.
    pub url: String,
    /// HTTP method.
    pub method: http::Method,
    /// Request body.
    pub body: Bytes,
    /// Extra request headers.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Requests to send.
    pub requests: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Per-request timeout (headers and body).
    pub timeout: Duration,
    /// Stop starting new requests after this long.
    pub duration: Duration,
    /// Prometheus endpoint of the gateway; `None` skips scraping.
    pub metrics_url: Option<String>,
    /// Only count this route's arms (metrics label `route`).
    pub route: Option<String>,
    /// Expected weights, in arm order.
    pub expect: Option<Vec<u32>>,
    /// Allowed deviation from the expected counts.
    pub tolerance: Tolerance,
    /// Extra trust roots (PEM) for `https://` URLs.
    pub ca_pem: Option<String>,
}

/// One finished request.
#[derive(Debug, Clone)]
struct Sample {
    outcome: Result<u16, String>,
    latency_ms: f64,
    upstream: Option<(String, String)>,
}

/// Runs the load and builds the report. Errors only when the client cannot be built or
/// the request template is invalid; request failures are counted in the report.
pub async fn run_load(cfg: &LoadConfig) -> anyhow::Result<LoadReport> {
    let client = crate::client::build(cfg.ca_pem.as_deref())?;
    // Fail early on a bad URL/header rather than counting N identical errors.
    build_request(cfg)?;
    let before = match &cfg.metrics_url {
        Some(url) => Some(scrape(&client, url).await),
        None => None,
    };
    let started = Instant::now();
    let samples = send_all(cfg, &client).await;
    let elapsed = started.elapsed();
    let after = match &cfg.metrics_url {
        Some(url) => Some(scrape(&client, url).await),
        None => None,
    };
    let metrics = match (cfg.metrics_url.as_ref(), before, after) {
        (Some(url), Some(Ok(b)), Some(Ok(a))) => Some(MetricsView::ok(url, &b, &a)),
        (Some(url), Some(Err(e)), _) | (Some(url), _, Some(Err(e))) => {
            Some(MetricsView::failed(url, e))
        }
        _ => None,
    };
    Ok(report::build(cfg, &samples, elapsed, metrics))
}

fn build_request(cfg: &LoadConfig) -> anyhow::Result<http::Request<Full<Bytes>>> {
    let mut builder = http::Request::builder()
        .method(cfg.method.clone())
        .uri(&cfg.url);
    for (k, v) in &cfg.headers {
        builder = builder.header(k, v);
    }
    Ok(builder.body(Full::new(cfg.body.clone()))?)
}

async fn send_all(cfg: &LoadConfig, client: &Client) -> Vec<Sample> {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + cfg.duration;
    let mut tasks = Vec::new();
    for _ in 0..cfg.concurrency.max(1) {
        let next = Arc::clone(&next);
        let client = client.clone();
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < cfg.requests && Instant::now() < deadline {
                out.push(send_one(&cfg, &client).await);
            }
            out
        }));
    }
    let mut samples = Vec::new();
    for t in tasks {
        // A worker only panics on a bug; its samples are lost, the rest still count.
        if let Ok(mut s) = t.await {
            samples.append(&mut s);
        }
    }
    samples
}

async fn send_one(cfg: &LoadConfig, client: &Client) -> Sample {
    let start = Instant::now();
    let outcome = async {
        let req = build_request(cfg).map_err(|e| e.to_string())?;
        let resp = client.request(req).await.map_err(classify)?;
        let status = resp.status().as_u16();
        let h = resp.headers();
        let upstream = h.get("x-split-mock").map(|name| {
            let path = h
                .get("x-split-mock-path")
                .and_then(|p| p.to_str().ok())
                .unwrap_or("");
            (
                String::from_utf8_lossy(name.as_bytes()).into_owned(),
                path.to_owned(),
            )
        });
        resp.into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        Ok::<_, String>((status, upstream))
    };
    let (outcome, upstream) = match tokio::time::timeout(cfg.timeout, outcome).await {
        Ok(Ok((status, upstream))) => (Ok(status), upstream),
        Ok(Err(e)) => (Err(e), None),
        Err(_) => (Err("timeout".to_owned()), None),
    };
    Sample {
        outcome,
        latency_ms: start.elapsed().as_secs_f64() * 1e3,
        upstream,
    }
}

fn classify(e: hyper_util::client::legacy::Error) -> String {
    if e.is_connect() {
        "connect".to_owned()
    } else {
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        msg
    }
}

async fn scrape(client: &Client, url: &str) -> Result<ArmCounts, String> {
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let fetch = async {
        let resp = client.request(req).await.map_err(classify)?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("status {status}"));
        }
        Ok(metrics::parse_arm_counts(&String::from_utf8_lossy(&body)))
    };
    match tokio::time::timeout(Duration::from_secs(5), fetch).await {
        Ok(r) => r,
        Err(_) => Err("timeout".to_owned()),
    }
}

/// Counts by key, sorted.
fn tally<K: Ord>(items: impl Iterator<Item = K>) -> BTreeMap<K, u64> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_default() += 1;
    }
    m
}
