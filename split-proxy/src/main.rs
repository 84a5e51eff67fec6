//! `split-proxy`: the split gateway's data plane, hosting the Admin API.

mod access_log;
mod admin_host;
mod admin_key;
#[cfg(not(feature = "system-alloc"))]
mod alloc;
mod body;
mod cli;
mod commands;
mod etcd;
mod fallback;
mod fallback_body;
mod fallback_sse;
mod forward;
mod guard;
mod guard_admin;
mod guard_store;
mod h1;
mod headers;
mod health;
mod health_probe;
mod live;
mod llm_limits;
mod llm_limits_redis;
mod llm_metrics;
mod llm_state;
mod log_control;
mod logging;
mod metric_cache;
mod metrics;
mod observe;
mod otel;
mod otel_context;
mod otel_export;
mod path;
mod plugins;
mod proxy;
mod readiness;
mod record;
mod redis;
mod redis_tickets;
mod reply;
mod request_edit;
mod roles;
mod secrets;
mod send;
mod serve;
mod server;
mod settings;
mod signals;
mod srm;
mod standalone;
mod status;
mod tickets;
mod upload;
mod upstream;
mod workers;

use std::process::ExitCode;

use clap::Parser;

/// The process allocator (see the `libmimalloc-sys` entry in Cargo.toml and `alloc`);
/// the system's with the `system-alloc` feature (for bench/allocs.sh).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: alloc::Mimalloc = alloc::Mimalloc;

/// Exit code for invalid configuration (EX_CONFIG-like `64`, as the contract says).
pub const EXIT_CONFIG: u8 = 64;

/// Prints `split-proxy: <path>: <reason>` and returns exit code 64.
pub fn exit_fatal(fatal: &settings::Fatal) -> ExitCode {
    eprintln!("split-proxy: {fatal}");
    ExitCode::from(EXIT_CONFIG)
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let log = match logging::init(cli.global.log_level.as_deref()) {
        Ok(handle) => handle,
        Err(reason) => return exit_fatal(&settings::Fatal::new("--log-level", reason)),
    };
    match cli.command {
        None | Some(cli::Command::Serve) => serve::run(&cli, log),
        Some(ref command) => commands::run(&cli, command),
    }
}
