//! Flags of `split-sim upstream`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::units::parse_duration;

use super::{FaultPlan, TlsSettings, UpstreamConfig};

/// `split-sim upstream`: run the OpenAI-compatible mock LLM server until Ctrl-C/SIGTERM.
#[derive(Debug, Clone, clap::Args)]
pub struct UpstreamArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:1980")]
    pub listen: SocketAddr,
    /// Name sent in the `X-Split-Mock` header and the `x_split_mock.name` field.
    #[arg(long, default_value = "mock")]
    pub name: String,
    /// Serve HTTPS with a freshly generated self-signed certificate.
    #[arg(long)]
    pub tls: bool,
    /// Names (DNS or IP) in the certificate; repeatable. Default: localhost, 127.0.0.1.
    #[arg(long = "tls-name", value_name = "NAME")]
    pub tls_names: Vec<String>,
    /// Write the certificate (PEM) here so clients can trust it.
    #[arg(long, value_name = "FILE")]
    pub cert_out: Option<PathBuf>,
    /// The assistant's reply text.
    #[arg(long, default_value = "Pong! How can I assist you today?")]
    pub reply: String,
    /// Models listed by `GET /v1/models` (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "gpt-4,gpt-4o-mini")]
    pub models: Vec<String>,
    /// Content chunks in a streamed reply.
    #[arg(long, default_value_t = 4)]
    pub chunks: u32,
    /// Pause before each streamed content chunk (e.g. 20ms).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    pub chunk_interval: Duration,
    /// Delay before answering each API request (e.g. 50ms).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub latency: Duration,
    /// Share of chat requests that fail with `--status` (0..1), chosen by `--seed`.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub fail_rate: f64,
    /// Status of injected failures (e.g. 429, 500, 503).
    #[arg(long, default_value_t = 503, value_parser = clap::value_parser!(u16).range(400..=599))]
    pub status: u16,
    /// Seed of the failure injection.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Abort streamed replies after this many content chunks.
    #[arg(long, value_name = "N")]
    pub reset_after_chunks: Option<u32>,
    /// `Retry-After: SECS` on every injected failure (default: `1` on a 429 only).
    #[arg(long, value_name = "SECS")]
    pub retry_after: Option<u64>,
    /// Streamed replies are a 200 SSE stream whose first event is an error object.
    #[arg(long)]
    pub first_event_error: bool,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{text} is not in 0..1"))
    }
}

impl UpstreamArgs {
    /// The library configuration these flags describe.
    pub fn to_config(&self) -> UpstreamConfig {
        let tls = (self.tls || self.cert_out.is_some()).then(|| {
            let mut t = TlsSettings {
                cert_out: self.cert_out.clone(),
                ..TlsSettings::default()
            };
            if !self.tls_names.is_empty() {
                t.names.clone_from(&self.tls_names);
            }
            t
        });
        UpstreamConfig {
            name: self.name.clone(),
            listen: self.listen,
            tls,
            reply: self.reply.clone(),
            models: self.models.clone(),
            chunks: self.chunks,
            chunk_interval: self.chunk_interval,
            latency: self.latency,
            fault: FaultPlan {
                rate: self.fail_rate,
                status: self.status,
                seed: self.seed,
            },
            reset_after_chunks: self.reset_after_chunks,
            retry_after: self.retry_after,
            first_event_error: self.first_event_error,
            workers: self.workers,
        }
    }
}

/// Runs the mock until Ctrl-C or SIGTERM.
pub fn run(args: &UpstreamArgs) -> anyhow::Result<()> {
    let running = super::spawn(args.to_config())
        .map_err(|e| anyhow::anyhow!("cannot start the mock on {}: {e}", args.listen))?;
    eprintln!(
        "split-sim upstream {:?} listening on {}{}",
        running.name(),
        running.url(),
        args.cert_out
            .as_ref()
            .map(|p| format!(" (certificate: {})", p.display()))
            .unwrap_or_default()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(wait_for_signal())?;
    running.stop();
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
