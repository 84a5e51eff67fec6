//! The helper binary end to end: serve on port 0, then the client subcommands against it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bench-backend");

/// A running `serve`; killed on drop.
struct Server {
    child: Child,
    addrs: Vec<String>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut addrs = Vec::new();
        while addrs.len() < 2 {
            let line = lines.next().expect("serve printed its listeners").unwrap();
            addrs.push(
                line.strip_prefix("listening on ")
                    .expect("listener line")
                    .to_string(),
            );
        }
        Server { child, addrs }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run bench-backend")
}

fn field(text: &str, name: &str) -> u64 {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {text:?}"))
        .parse()
        .expect("number")
}

#[test]
fn serves_two_distinct_listeners() {
    let server = Server::start(&[]);
    assert_ne!(server.addrs[0], server.addrs[1]);
    for addr in &server.addrs {
        let out = run(&["idle", "--addr", addr, "--conns", "3", "--hold-secs", "0"]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ready conns=3 failed=0"
        );
    }
}

#[test]
fn first_chunk_arrives_before_the_rest_of_the_stream() {
    // With a 150 ms gap between the first SSE event and the rest, a streamed first chunk
    // arrives long before 150 ms; a buffered one could not.
    let server = Server::start(&["--sse-gap-ms", "150"]);
    let url = format!("http://{}/chat/completions", server.addrs[0]);
    let started = Instant::now();
    let out = run(&["ttfb", "--url", &url, "--requests", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(field(&text, "n"), 3);
    assert!(field(&text, "median_us") < 100_000, "{text}");
    // 5 warm-up + 3 measured requests each waited for the gap before ending.
    assert!(started.elapsed() >= Duration::from_millis(8 * 150));
}

#[test]
fn idle_reports_failures_when_nothing_listens() {
    let ports = run(&["ports", "1"]);
    let port = String::from_utf8_lossy(&ports.stdout).trim().to_string();
    let addr = format!("127.0.0.1:{port}");
    let out = run(&["idle", "--addr", &addr, "--conns", "4", "--hold-secs", "0"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ready conns=0 failed=4"
    );
}

#[test]
fn ports_are_distinct_and_nonzero() {
    let out = run(&["ports", "5"]);
    assert!(out.status.success());
    let mut ports: Vec<u16> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().expect("port number"))
        .collect();
    assert_eq!(ports.len(), 5);
    assert!(ports.iter().all(|&p| p != 0));
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 5);
}

#[test]
fn bad_usage_fails_with_a_reason() {
    let out = run(&["frobnicate"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown command 'frobnicate'"));
    let out = run(&["ttfb"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--url is required"));
    let out = run(&["idle", "--addr"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--addr: missing value"));
}
