//! The upstream side: TLS config, connecting (with `--connect-to`), and pooling.

pub mod connect;
pub mod pool;
pub mod tls;
