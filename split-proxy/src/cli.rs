//! Command line of `split-proxy` (clap). `serve` is the default subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The split gateway: a weighted traffic-splitting proxy for OpenAI-compatible APIs that
/// speaks the Apache APISIX Admin API.
#[derive(Debug, Parser)]
#[command(name = "split-proxy", version, about)]
pub struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: Global,
    /// Options of `serve` (accepted before or after the subcommand name).
    #[command(flatten)]
    pub serve: ServeArgs,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// APISIX-style config.yaml (admin keys, allow_admin, listeners, deployment role).
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded store (`split.redb`) and the generated `admin.key`.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "./split-data"
    )]
    pub data_dir: PathBuf,
    /// Serve from a declarative apisix.yaml (ends with `#END`) or JSON file, polled every
    /// second; the Admin API becomes read-only.
    #[arg(long, global = true, value_name = "FILE")]
    pub standalone: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter; overrides RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (default).
    Serve,
    /// Print the embedded store as a standalone apisix.yaml document.
    Dump,
    /// Validate a standalone apisix.yaml/JSON file and replace the store with it atomically.
    Load {
        /// The file to load.
        file: PathBuf,
    },
    /// Validate a config.yaml or apisix.yaml/JSON file: exit 0, or 64 with the field path.
    Validate {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the running gateway's store, revision, sync state and per-rule split counts
    /// (read from its metrics listener: `--metrics-listen` or config.yaml); when no
    /// gateway answers there, the embedded store's revision and object counts.
    Status,
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Proxy listen address (default 0.0.0.0:9080 or `apisix.node_listen`).
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin API listen address (default 127.0.0.1:9180 or `deployment.admin.admin_listen`).
    #[arg(long, global = true, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// Prometheus listen address (default 127.0.0.1:9091 or
    /// `plugin_attr.prometheus.export_addr`).
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Connect to HOST2:PORT2 where HOST:PORT was asked (repeatable, like curl); Host,
    /// SNI and the certificate check stay those of HOST.
    #[arg(
        long = "connect-to",
        global = true,
        value_name = "HOST:PORT:HOST2:PORT2"
    )]
    pub connect_to: Vec<String>,
    /// Extra PEM trust roots for upstream TLS (the webpki roots stay trusted).
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Write one JSON line per request to FILE, or `-` for stdout.
    #[arg(long, global = true, value_name = "FILE|-")]
    pub access_log: Option<String>,
    /// Data plane workers (default: config.yaml's `nginx_config.worker_processes` when a
    /// number, else the number of cores). Each is a single-thread event loop on its own
    /// thread, like an nginx worker: a client connection stays on the worker that
    /// accepted it, and idle upstream connections are kept per worker. The main thread
    /// is the first worker and also serves the Admin API and metrics.
    #[arg(long, global = true, value_name = "N")]
    pub workers: Option<usize>,
    /// Pin each worker to its own CPU (worker i to the i-th CPU this process may use,
    /// wrapping around), like nginx's `worker_cpu_affinity auto`; also config.yaml's
    /// `nginx_config.enable_cpu_affinity: true`. Steadier tail latency on a host whose
    /// CPUs are the gateway's; off by default, since a pinned worker cannot move away
    /// from a core that other processes keep busy.
    #[arg(long, global = true)]
    pub cpu_affinity: bool,
    /// How long SIGTERM/SIGINT waits for in-flight requests, e.g. `30s`, `500ms`.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Largest request body read into memory (for `post_arg` matching or a body rewrite);
    /// bigger bodies get 413.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub max_body_size: usize,
}

/// Parses `30s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}': expected e.g. 30s, 500ms, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("invalid duration unit in '{text}': use ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration '{text}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn serve_is_default_and_flags_parse() {
        let cli = Cli::try_parse_from([
            "split-proxy",
            "--connect-to",
            "a:443:127.0.0.1:1",
            "--connect-to",
            "b:80:c:81",
            "--listen",
            "127.0.0.1:0",
        ])
        .expect("valid flags");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.connect_to, ["a:443:127.0.0.1:1", "b:80:c:81"]);
        assert_eq!(cli.serve.grace, Duration::from_secs(30));
        let cli = Cli::try_parse_from(["split-proxy", "serve", "--workers", "1", "-c", "x.yaml"])
            .expect("valid flags");
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert_eq!(cli.serve.workers, Some(1));
        assert_eq!(cli.global.config, Some(PathBuf::from("x.yaml")));
    }
}
