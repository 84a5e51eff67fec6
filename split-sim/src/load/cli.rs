//! Flags of `split-sim load`.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;

use super::{report, LoadConfig, Tolerance};
use crate::units::{parse_count, parse_duration};

/// The guide's request body, sent when `-d` is not given.
pub const GUIDE_BODY: &str = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;

/// Metrics endpoint of the gateway by default (APISIX's and split's).
pub const DEFAULT_METRICS: &str = "http://127.0.0.1:9091/apisix/prometheus/metrics";

/// `split-sim load`: send N real requests to a gateway and check the split.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Gateway URL.
    #[arg(default_value = "http://127.0.0.1:9080/chat/completions")]
    pub url: String,
    /// Requests to send (k/m suffixes allowed).
    #[arg(short = 'n', long = "requests", default_value = "100", value_parser = parse_count)]
    pub requests: u64,
    /// Requests in flight at once.
    #[arg(short = 'c', long, default_value_t = 8)]
    pub concurrency: usize,
    /// HTTP method.
    #[arg(short = 'X', long = "method", default_value = "POST")]
    pub method: String,
    /// Request body, or `@FILE` (default: the guide's chat request).
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// Request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Stop starting requests after this long.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Prometheus endpoint to scrape before and after (`none` to skip).
    #[arg(long, default_value = DEFAULT_METRICS)]
    pub metrics: String,
    /// Only judge this route's arms.
    #[arg(long)]
    pub route: Option<String>,
    /// Expected weights in arm order, e.g. 50,50; exit 2 when the split is off.
    #[arg(long, value_delimiter = ',')]
    pub expect: Option<Vec<u32>>,
    /// Allowed deviation: requests beyond rounding (0 = exact), or a share like 2%.
    #[arg(long, default_value = "0")]
    pub tolerance: Tolerance,
    /// Extra CA certificate (PEM) for https URLs, e.g. the mock's --cert-out file.
    #[arg(long, value_name = "PEM")]
    pub cacert: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// The run these flags describe (reads `@FILE` bodies and the CA file).
    pub fn to_config(&self) -> anyhow::Result<LoadConfig> {
        let method: http::Method = self
            .method
            .parse()
            .with_context(|| format!("--method {:?} is not an HTTP method", self.method))?;
        let body = match &self.data {
            Some(d) => match d.strip_prefix('@') {
                Some(path) => Bytes::from(
                    std::fs::read(path).with_context(|| format!("--data: cannot read {path}"))?,
                ),
                None => Bytes::from(d.clone()),
            },
            None if method == http::Method::POST => Bytes::from_static(GUIDE_BODY.as_bytes()),
            None => Bytes::new(),
        };
        let mut headers = Vec::new();
        for h in &self.headers {
            let (k, v) = h
                .split_once(':')
                .with_context(|| format!("--header {h:?}: expected `Name: value`"))?;
            let name: http::HeaderName = k
                .trim()
                .parse()
                .with_context(|| format!("--header {h:?}: bad header name"))?;
            let value: http::HeaderValue = v
                .trim()
                .parse()
                .with_context(|| format!("--header {h:?}: bad header value"))?;
            headers.push((name, value));
        }
        if !body.is_empty() && !headers.iter().any(|(k, _)| k == http::header::CONTENT_TYPE) {
            headers.push((
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            ));
        }
        if let Some(w) = &self.expect {
            anyhow::ensure!(!w.is_empty(), "--expect needs at least one weight");
        }
        let ca_pem = match &self.cacert {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("--cacert: cannot read {}", p.display()))?,
            ),
            None => None,
        };
        Ok(LoadConfig {
            url: self.url.clone(),
            method,
            body,
            headers,
            requests: self.requests,
            concurrency: self.concurrency.max(1),
            timeout: self.timeout,
            duration: self.duration,
            metrics_url: (self.metrics != "none").then(|| self.metrics.clone()),
            route: self.route.clone(),
            expect: self.expect.clone(),
            tolerance: self.tolerance,
            ca_pem,
        })
    }
}

/// Runs `split-sim load`; returns the exit code (2 when `--expect` fails).
pub fn run(args: &LoadArgs) -> anyhow::Result<i32> {
    let cfg = args.to_config()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(super::run_load(&cfg))?;
    if args.json {
        crate::cli::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::cli::emit(&report::render_text(&report))?;
    }
    Ok(report.exit_code())
}
