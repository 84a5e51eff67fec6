//! `split-proxy status`: asks the running gateway, on its metrics listener, for
//! `/readyz` (store, revision, sync state) and the metrics (per-rule split counts), and
//! prints them. The metrics listener is used because it exists in every role and needs
//! no admin key. When no gateway answers, it falls back to reading the embedded store
//! offline (revision and object counts).
//!
//! Exit status: 0 when the gateway is ready and in sync (or the offline read worked),
//! 3 when it answers but is not ready or not in sync, 64 for a bad config.yaml.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{Cli, Command};
use crate::exit_fatal;
use crate::settings::{read_gateway_config, DEFAULT_METRICS_LISTEN};

/// Exit status when the gateway answers but is not ready or not in sync.
const EXIT_NOT_IN_SYNC: u8 = 3;
/// Budget for each request to the gateway.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs `status`.
pub fn run(cli: &Cli) -> ExitCode {
    let gateway = match &cli.global.config {
        Some(path) => match read_gateway_config(path) {
            Ok(g) => Some(g),
            Err(fatal) => return exit_fatal(&fatal),
        },
        None => None,
    };
    let addr = cli
        .serve
        .metrics_listen
        .or(gateway.as_ref().and_then(|g| g.prometheus_addr))
        .unwrap_or(DEFAULT_METRICS_LISTEN);
    let addr = reachable(addr);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("split-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let answers = runtime.block_on(async {
        let ready = get(addr, "/readyz").await?;
        let metrics = get(addr, "/apisix/prometheus/metrics").await?;
        Ok::<_, String>((ready, metrics))
    });
    match answers {
        Ok(((_, ready), (_, metrics))) => print_live(addr, &ready, &metrics),
        Err(reason) => {
            println!("gateway: not reachable at {addr} ({reason}); reading the store offline");
            match crate::admin_host::store_command(&cli.global, &Command::Status) {
                Ok(()) => ExitCode::SUCCESS,
                Err(fatal) => exit_fatal(&fatal),
            }
        }
    }
}

/// A listener on the unspecified address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// One HTTP/1.0 GET (the server closes the connection after the response).
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        // Bounded: metrics of a large fleet config stay far below 64 MiB.
        (&mut stream)
            .take(64 << 20)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(raw)
    };
    let raw = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out".to_owned())??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "malformed HTTP response".to_owned())?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "malformed HTTP status line".to_owned())?;
    Ok((status, body.to_owned()))
}

fn print_live(addr: SocketAddr, ready: &str, metrics: &str) -> ExitCode {
    let state: serde_json::Value = serde_json::from_str(ready).unwrap_or_default();
    let text = |k: &str| {
        state
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let flag = |k: &str| state.get(k).and_then(serde_json::Value::as_bool) == Some(true);
    let is_ready = flag("ready");
    let in_sync = flag("in_sync");
    println!(
        "gateway: {addr} ({})",
        if is_ready { "ready" } else { "NOT READY" }
    );
    println!("store: {} {}", text("store"), text("location"));
    println!(
        "revision: {}",
        state
            .get("revision")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    );
    if in_sync {
        println!("sync: ok");
    } else {
        println!("sync: LOST ({})", text("error"));
    }
    let counts = split_counts(metrics);
    if counts.is_empty() {
        println!("split counts: none yet");
    } else {
        println!("split counts (requests per arm since the gateway started):");
        for ((route, rule), arms) in &counts {
            let total: u64 = arms.iter().map(|(_, n)| n).sum();
            let arms: Vec<String> = arms.iter().map(|(a, n)| format!("{a}={n}")).collect();
            println!(
                "  route {route} rule {rule}: {} (total {total})",
                arms.join(" ")
            );
        }
    }
    if is_ready && in_sync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_IN_SYNC)
    }
}

/// (route, rule) → [(arm, count)] from `split_arm_requests_total{...} N` lines.
pub fn split_counts(metrics: &str) -> BTreeMap<(String, String), Vec<(String, u64)>> {
    let mut out: BTreeMap<(String, String), Vec<(String, u64)>> = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("split_arm_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let mut route = String::new();
        let mut rule = String::new();
        let mut arm = String::new();
        for pair in labels.split("\",") {
            let Some((k, v)) = pair.split_once("=\"") else {
                continue;
            };
            let v = v.trim_end_matches('"').to_owned();
            match k.trim() {
                "route" => route = v,
                "rule" => rule = v,
                "arm" => arm = v,
                _ => {}
            }
        }
        // Counter values are whole numbers; the cast cannot lose a realistic count.
        out.entry((route, rule))
            .or_default()
            .push((arm, value as u64));
    }
    // Index-named arms in numeric order (shorter first), named arms after.
    for arms in out.values_mut() {
        arms.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_counts_group_arms_per_rule() {
        let text = "# HELP x\nsplit_arm_requests_total{route=\"1\",rule=\"0\",arm=\"canary\"} 5\n\
                    split_arm_requests_total{route=\"1\",rule=\"0\",arm=\"0\"} 50\n\
                    split_arm_requests_total{route=\"2\",rule=\"1\",arm=\"0\"} 7\n\
                    apisix_http_status{code=\"200\"} 3\n";
        let c = split_counts(text);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[&("1".to_owned(), "0".to_owned())],
            [("0".to_owned(), 50), ("canary".to_owned(), 5)]
        );
        assert_eq!(c[&("2".to_owned(), "1".to_owned())], [("0".to_owned(), 7)]);
    }

    #[test]
    fn unspecified_addresses_are_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9091".parse().expect("addr")),
            "127.0.0.1:9091".parse().expect("addr")
        );
        assert_eq!(
            reachable("10.0.0.1:9091".parse().expect("addr")),
            "10.0.0.1:9091".parse().expect("addr")
        );
    }
}
