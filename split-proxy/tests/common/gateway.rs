//! The `split-proxy` binary under test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running gateway; killed on drop.
pub struct Gateway {
    child: Child,
    /// Proxy listener.
    pub proxy: SocketAddr,
    /// Admin listener, if enabled.
    pub admin: Option<SocketAddr>,
    /// Metrics listener.
    pub metrics: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// Scratch directory (data dir lives in `dir/data`).
    pub dir: PathBuf,
}

/// The binary the tests start: `SPLIT_PROXY_BIN` when set (to run this suite against
/// another build of the same source, e.g. the profile-guided one of `bench/pgo.sh`),
/// else the one cargo built for this test run.
pub fn binary() -> PathBuf {
    std::env::var_os("SPLIT_PROXY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_split-proxy")))
}

/// A config.yaml with one admin key `key` (the guide's Admin API setup).
pub fn admin_yaml(key: &str) -> String {
    format!("deployment:\n  admin:\n    admin_key:\n      - name: admin\n        key: {key}\n        role: admin\n")
}

/// Writes [`admin_yaml`] to `dir/config.yaml` and returns its path (for `-c`).
pub fn write_admin_config(dir: &Path, key: &str) -> String {
    let path = dir.join("config.yaml");
    std::fs::write(&path, admin_yaml(key)).expect("write config.yaml");
    path.to_str().expect("utf-8 temp path").to_owned()
}

/// Starts the binary with `args` plus port-0 listeners and a data dir under `dir`.
/// Waits until it printed its listeners (max 30 s).
pub fn start(dir: &Path, args: &[&str]) -> Gateway {
    try_start(dir, args)
        .unwrap_or_else(|(status, err)| panic!("gateway did not start ({status:?}):\n{err}"))
}

/// Writes `doc` to `dir/apisix.json` and starts the binary serving it (`--standalone`).
pub fn start_standalone(dir: &Path, doc: &serde_json::Value) -> Gateway {
    let file = dir.join("apisix.json");
    std::fs::write(&file, doc.to_string()).expect("write apisix.json");
    start(
        dir,
        &["--standalone", file.to_str().expect("utf-8 temp path")],
    )
}

/// Like [`start`], with extra environment variables for the process.
pub fn start_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
    try_start_with_env(dir, args, env)
        .unwrap_or_else(|(status, err)| panic!("gateway did not start ({status:?}):\n{err}"))
}

/// Like [`start`], but returns the exit status and stderr if the process exits instead.
pub fn try_start(dir: &Path, args: &[&str]) -> Result<Gateway, (Option<ExitStatus>, String)> {
    try_start_with_env(dir, args, &[])
}

/// Like [`start`], without the default `--workers 2`: the gateway picks its number of
/// workers itself (config.yaml's `nginx_config.worker_processes`, or one per core).
pub fn start_with_own_workers(dir: &Path, args: &[&str]) -> Gateway {
    try_start_inner(dir, args, &[], false)
        .unwrap_or_else(|(status, err)| panic!("gateway did not start ({status:?}):\n{err}"))
}

fn try_start_with_env(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Gateway, (Option<ExitStatus>, String)> {
    try_start_inner(dir, args, env, true)
}

fn try_start_inner(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    default_workers: bool,
) -> Result<Gateway, (Option<ExitStatus>, String)> {
    let mut cmd = Command::new(binary());
    cmd.envs(env.iter().copied());
    // Two workers unless the test picks its own number, so every test goes through the
    // hand-out of connections between workers.
    if default_workers && !args.contains(&"--workers") {
        cmd.args(["--workers", "2"]);
    }
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--data-dir",
    ])
    .arg(dir.join("data"))
    .args(args)
    .env("RUST_LOG", "info")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn split-proxy");
    let stderr_pipe = child.stderr.take().expect("piped stderr");
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        let reader = BufReader::new(stderr_pipe);
        for line in reader.lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = stderr.lock().unwrap().clone();
        if text.contains("config source:") {
            let find = |what: &str| {
                text.lines().find_map(|l| {
                    l.split_once(&format!("{what} listening on "))
                        .map(|(_, a)| a.trim().parse().expect("addr"))
                })
            };
            return Ok(Gateway {
                proxy: find("proxy").expect("proxy addr"),
                admin: find("admin API"),
                metrics: find("metrics").expect("metrics addr"),
                child,
                stderr,
                dir: dir.to_path_buf(),
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            let text = stderr.lock().unwrap().clone();
            return Err((Some(status), text));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err((None, text));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary to completion with `args`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run split-proxy");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Gateway {
    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://<proxy><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// Sends a signal (`TERM`, `HUP`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The metrics exposition text.
    pub async fn metrics_text(&self) -> String {
        let reply = super::Client::new()
            .get(&format!(
                "http://{}/apisix/prometheus/metrics",
                self.metrics
            ))
            .await;
        assert_eq!(reply.status, 200);
        reply.text()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample line starting with `prefix` (`name{labels}`) in `text`.
pub fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
        .and_then(|l| l[prefix.len()..].trim().parse().ok())
}
