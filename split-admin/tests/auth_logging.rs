//! Failed Admin API auth attempts are logged with the client address, never the key.
//!
//! Alone in its own test binary: tracing caches per-callsite interest process-wide, so a
//! scoped subscriber can miss events that concurrently running tests registered first.

mod common;

use std::net::IpAddr;

use common::*;
use http::{Method, StatusCode};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failed_attempts_are_logged_with_the_client_but_never_the_key() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = Harness::new();
    let secret = "guessed-SECRET-value";
    let r = call(
        &h.admin,
        Method::GET,
        &format!("/apisix/admin/routes?api_key={secret}"),
        "",
        None,
        ip("127.0.0.9"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &h.admin,
        Method::GET,
        "/apisix/admin/routes",
        "",
        Some(secret),
        ip("10.9.9.9"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let text = String::from_utf8(logs.0.lock().expect("log lock").clone()).expect("utf8");
    assert!(
        text.contains("127.0.0.9") && text.contains("wrong apikey"),
        "{text}"
    );
    assert!(
        text.contains("10.9.9.9") && text.contains("allow_admin"),
        "{text}"
    );
    assert!(
        !text.contains("SECRET"),
        "the key leaked into the log: {text}"
    );
}
