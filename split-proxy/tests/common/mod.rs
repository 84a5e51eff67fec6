//! Shared harness of the integration tests: the real `split-proxy` binary, mock
//! upstreams (HTTP, HTTPS with a test CA, SSE, slow, failing, resetting) and a client.
//! Everything binds 127.0.0.1 port 0 and is torn down on drop.

#![allow(dead_code)]

pub mod client;
pub mod fleet;
pub mod gateway;
pub mod guide;
pub mod redis;
pub mod server;
pub mod tls;
pub mod upstream;

#[allow(unused_imports)]
pub use client::{raw_request, Client, Reply};
#[allow(unused_imports)]
pub use gateway::Gateway;
#[allow(unused_imports)]
pub use tls::TestCa;
#[allow(unused_imports)]
pub use upstream::{Hit, Mock};

/// A standalone document for `routes` and `upstreams` JSON values, with the `#END` marker.
pub fn standalone_yaml(body: &str) -> String {
    format!("{body}\n#END\n")
}

/// Polls `check` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    check()
}
