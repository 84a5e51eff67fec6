//! The `split-sim` command line: one subcommand per tool.

use crate::load::cli::LoadArgs;
use crate::replay::cli::ReplayArgs;
use crate::run::cli::RunArgs;
use crate::upstream::cli::UpstreamArgs;

/// Simulate traffic splits offline, load-check a live gateway, mock an OpenAI-compatible
/// LLM API.
#[derive(Debug, clap::Parser)]
#[command(name = "split-sim", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run an OpenAI-compatible mock LLM server (HTTP/HTTPS, SSE, faults).
    Upstream(UpstreamArgs),
    /// Send N real requests to a running gateway and check the per-arm split.
    Load(LoadArgs),
    /// Simulate traffic through a split configuration offline (same code as the proxy).
    Run(RunArgs),
    /// Replay an access log through a candidate configuration (or diff two).
    Replay(ReplayArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Upstream(args) => crate::upstream::cli::run(&args).map(|()| 0),
        Command::Load(args) => crate::load::cli::run(&args),
        Command::Run(args) => crate::run::cli::run(&args),
        Command::Replay(args) => crate::replay::cli::run(&args),
    }
}

/// Writes `text` to standard output. A closed pipe (`split-sim run | head`) is not an
/// error: the reader has what it wanted.
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
