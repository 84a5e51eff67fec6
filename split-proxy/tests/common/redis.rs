//! A real `redis-server` for the shared-counter tests: a free loopback port, a fresh temp
//! dir, no persistence; killed on drop (also when a test panics). Missing binary → the
//! test fails saying how to install it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    /// Its loopback port.
    pub port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
}

const BINARY: &str = "redis-server";
/// Bind clashes (another process took the port between our probe and redis) retried.
const ATTEMPTS: usize = 5;

impl RedisServer {
    /// Starts redis-server on a free port; panics (failing the test) when it cannot.
    pub fn start() -> RedisServer {
        RedisServer::launch(None)
    }

    /// Like [`RedisServer::start`], with `requirepass`.
    pub fn start_with_password(password: &str) -> RedisServer {
        RedisServer::launch(Some(password.to_owned()))
    }

    fn launch(password: Option<String>) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let port = free_port();
            match spawn(dir.path(), port, password.as_deref()) {
                Ok(child) => {
                    return RedisServer {
                        child: Some(child),
                        port,
                        password,
                        dir,
                    }
                }
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start after {ATTEMPTS} attempts: {last}");
    }

    /// Stops the server (the port stays reserved for [`RedisServer::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match spawn(self.dir.path(), self.port, self.password.as_deref()) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(why) if Instant::now() > deadline => panic!("redis restart: {why}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `redis://[:password@]127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        url(self.port, self.password.as_deref())
    }

    /// Waits up to 5 s for `gw` to log a failed call to this server: a `redis call
    /// failed` line naming its target (`redis://127.0.0.1:<port>/0`) and containing
    /// `also` (`""` for any).
    pub fn failure_logged(&self, gw: &super::Gateway, also: &str) -> bool {
        let target = format!("redis://127.0.0.1:{}/0", self.port);
        super::wait_until(Duration::from_secs(5), || {
            gw.stderr()
                .lines()
                .any(|l| l.contains("redis call failed") && l.contains(&target) && l.contains(also))
        })
    }

    /// A synchronous connection for assertions.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("connect to the test redis")
    }

    /// `GET key` as an integer, `None` when absent.
    pub fn get_int(&self, key: &str) -> Option<i64> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection())
            .expect("GET")
    }

    /// Keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.connection())
            .expect("KEYS")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that was free a moment ago (bound, read, released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn url(port: u16, password: Option<&str>) -> String {
    match password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{port}/"),
        None => format!("redis://127.0.0.1:{port}/"),
    }
}

/// Starts redis-server on `port` and waits (max 10 s) until it answers PING.
fn spawn(dir: &Path, port: u16, password: Option<&str>) -> Result<Child, String> {
    let mut command = Command::new(BINARY);
    if let Some(p) = password {
        command.args(["--requirepass", p]);
    }
    let mut child = command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!("`{BINARY}` not found on PATH: ./test.sh installs it (Debian package redis-server)");
            }
            format!("spawn {BINARY}: {e}")
        })?;
    let url = url(port, password);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} (port {port} taken?)"));
        }
        let pong = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if pong.as_deref() == Ok("PONG") {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no PONG on port {port} within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
