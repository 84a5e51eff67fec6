//! `bench-backend`: the helper binary of `bench/run.sh`.
//!
//! - `serve --listen ADDR [--listen ADDR]... [--threads N] [--sse-gap-ms MS]`: a minimal
//!   OpenAI-shaped upstream answering every request with one fixed small JSON body, or an
//!   SSE stream when the request body asks for `"stream":true`. Prints
//!   `listening on ADDR` per listener on stdout.
//! - `ports N`: prints N distinct free 127.0.0.1 TCP ports (for nginx and haproxy).
//! - `ttfb --url URL [--requests N]`: time to the first SSE body chunk over one keep-alive
//!   connection; prints `median_us=… p90_us=… min_us=… max_us=… n=…`.
//! - `idle --addr ADDR [--conns N] [--hold-secs S]`: opens N keep-alive connections, sends
//!   one request on each, prints `ready conns=… failed=…` and keeps them idle for S seconds.

mod args;
mod body;
mod idle;
mod request;
mod serve;
mod ttfb;

use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let rest = args::Args::parse(argv.collect())?;
    match command.as_str() {
        "serve" => serve::run(&rest),
        "ports" => ports(&rest),
        "ttfb" => ttfb::run(&rest),
        "idle" => idle::run(&rest),
        other => bail!("unknown command '{other}': expected serve, ports, ttfb or idle"),
    }
}

/// Binds `N` listeners on 127.0.0.1 port 0 at once (so the ports are distinct), prints
/// their ports and releases them.
fn ports(args: &args::Args) -> Result<()> {
    let count: usize = args
        .positional(0)
        .context("ports: missing count")?
        .parse()
        .context("ports: count must be a number")?;
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("ports: bind 127.0.0.1:0")?;
    for listener in &listeners {
        println!("{}", listener.local_addr()?.port());
    }
    Ok(())
}
