//! `split-proxy`: the split gateway's data plane, hosting the Admin API.

mod access_log;
mod admin_host;
mod admin_key;
mod body;
mod cli;
mod commands;
mod etcd;
mod forward;
mod headers;
mod health;
mod live;
mod logging;
mod metrics;
mod observe;
mod path;
mod plugins;
mod proxy;
mod record;
mod reply;
mod request_edit;
mod roles;
mod serve;
mod server;
mod settings;
mod signals;
mod standalone;
mod status;
mod tickets;
mod upload;
mod upstream;

use std::process::ExitCode;

use clap::Parser;

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
