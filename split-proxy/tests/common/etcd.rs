//! A throwaway etcd for the etcd-store tests: free loopback ports, a temp data dir,
//! readiness polled with a bounded loop, killed on drop (also on panic). Keys are read
//! and written through etcd's JSON gateway (`/v3/kv/...`), as another APISIX or an
//! operator's tool would, so the tests need no etcd client of their own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd; killed on drop.
pub struct Etcd {
    child: Option<Child>,
    /// Client port on 127.0.0.1.
    pub port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn binary() -> &'static str {
    const PATH: &str = "etcd";
    let found = Command::new(PATH)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "etcd is not installed: ./test.sh installs it (Debian package etcd-server)"
    );
    PATH
}

impl Etcd {
    /// Starts etcd on free ports (retrying a few times on a port clash).
    pub fn start() -> Etcd {
        for _ in 0..5 {
            let mut etcd = Etcd {
                child: None,
                port: free_port(),
                peer_port: free_port(),
                dir: tempfile::tempdir().expect("tempdir"),
            };
            if etcd.spawn() {
                return etcd;
            }
        }
        panic!("etcd did not start on free ports after 5 attempts");
    }

    /// Starts etcd on `port` (for tests that point a gateway at a dead port first).
    pub fn start_on(port: u16) -> Etcd {
        let mut etcd = Etcd {
            child: None,
            port,
            peer_port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        assert!(etcd.spawn(), "etcd did not start on port {port}");
        etcd
    }

    fn spawn(&mut self) -> bool {
        let client = format!("http://127.0.0.1:{}", self.port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let data = self.dir.path().join("data");
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("log file");
        let child = Command::new(binary())
            .arg("--data-dir")
            .arg(&data)
            .args(["--name", "split-test"])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("split-test={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            if self.healthy() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop();
        false
    }

    fn healthy(&self) -> bool {
        http(self.addr(), "GET", "/health", "")
            .is_some_and(|(status, body)| status == 200 && body.contains("true"))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills etcd (data dir kept).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data dir.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("etcd did not restart on port {}", self.port);
    }

    /// Puts `key` = `value` directly (as another tool would); returns the revision.
    pub fn put(&self, key: &str, value: &str) -> i64 {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{}\"}}",
            b64(key.as_bytes()),
            b64(value.as_bytes())
        );
        let (status, reply) =
            http(self.addr(), "POST", "/v3/kv/put", &body).expect("etcd put reachable");
        assert_eq!(status, 200, "{reply}");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("json");
        v["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .expect("revision")
    }

    /// `(value, create_revision, mod_revision)` of `key`, if present.
    pub fn get(&self, key: &str) -> Option<(String, u64, u64)> {
        let body = format!("{{\"key\":\"{}\"}}", b64(key.as_bytes()));
        let (status, reply) =
            http(self.addr(), "POST", "/v3/kv/range", &body).expect("etcd range reachable");
        assert_eq!(status, 200, "{reply}");
        let v: serde_json::Value = serde_json::from_str(&reply).expect("json");
        let kv = v["kvs"].get(0)?;
        let num = |k: &str| kv[k].as_str().and_then(|r| r.parse().ok()).unwrap_or(0);
        let value = unb64(kv["value"].as_str().unwrap_or(""));
        Some((
            String::from_utf8(value).expect("utf-8 value"),
            num("create_revision"),
            num("mod_revision"),
        ))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP/1.0 request; `None` when nothing answers.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what etcd's JSON gateway expects for bytes).
pub fn b64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unb64(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let Some(v) = B64.iter().position(|&x| x == c) else {
            continue;
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

#[test]
fn base64_round_trips() {
    for s in ["", "a", "ab", "abc", "/apisix/routes/1", "{\"uri\":\"/x\"}"] {
        assert_eq!(unb64(&b64(s.as_bytes())), s.as_bytes());
    }
    assert_eq!(b64(b"ab"), "YWI=");
}
