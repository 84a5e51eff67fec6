//! Time to the first SSE chunk: request sent → first non-empty body frame received.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http_body_util::BodyExt;
use hyper::Uri;

use crate::args::Args;
use crate::{body, request};

/// Unmeasured requests first, so connection setup and pools are warm on every path.
const WARMUP: usize = 5;
/// No single request may take longer than this.
const PER_REQUEST: Duration = Duration::from_secs(10);

/// Measures `--requests` streamed requests to `--url` over one keep-alive connection.
pub fn run(args: &Args) -> Result<()> {
    let uri: Uri = args
        .required("url")?
        .parse()
        .context("--url: not a valid URL")?;
    let requests: usize = args.get("requests", 50)?;
    if requests == 0 {
        bail!("--requests must be at least 1");
    }
    let authority = uri
        .authority()
        .context("--url: needs host:port")?
        .to_string();
    let path = uri.path().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("ttfb: build the tokio runtime")?;
    let mut samples = runtime.block_on(async {
        let mut sender = request::connect(&authority).await?;
        let mut samples = Vec::with_capacity(requests);
        for i in 0..WARMUP + requests {
            let elapsed = tokio::time::timeout(PER_REQUEST, one(&mut sender, &authority, &path))
                .await
                .with_context(|| format!("request {i} took over {PER_REQUEST:?}"))??;
            if i >= WARMUP {
                samples.push(elapsed);
            }
        }
        anyhow::Ok(samples)
    })?;
    // `requests >= 1` was checked, so `samples` is non-empty and every index below is
    // within `0..len` (q <= 1).
    samples.sort_unstable();
    let us = |d: Duration| d.as_micros();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "median_us={} p90_us={} min_us={} max_us={} n={}",
        us(pick(0.5)),
        us(pick(0.9)),
        us(samples[0]),
        us(samples[samples.len() - 1]),
        samples.len()
    );
    Ok(())
}

/// One streamed request: returns the time to the first body bytes, then drains the rest.
async fn one(
    sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    authority: &str,
    path: &str,
) -> Result<Duration> {
    sender.ready().await.context("connection closed")?;
    let req = request::post(authority, path, body::CHAT_STREAM_REQUEST)?;
    let start = Instant::now();
    let response = sender.send_request(req).await.context("send request")?;
    if !response.status().is_success() {
        bail!("status {}", response.status());
    }
    let mut incoming = response.into_body();
    let mut first = None;
    while let Some(frame) = incoming.frame().await {
        let frame = frame.context("read body")?;
        if frame.data_ref().is_some_and(|d| !d.is_empty()) && first.is_none() {
            first = Some(start.elapsed());
        }
    }
    first.context("streamed response had an empty body")
}
