//! The upstream side: TLS config, connecting (with `--connect-to`), pooling, and the
//! HTTP/1.1 client (h2 upstreams use hyper's).

pub mod connect;
pub mod h1;
pub mod h1_body;
pub mod h1_head;
pub mod h1_upload;
pub mod pool;
pub mod tls;
