//! HTTP/1.1 on the wire, sans IO: the bytes a client or an upstream sends, parsed within
//! limits. split-proxy's server and upstream client read sockets into a `BytesMut` and
//! hand it here; nothing here reads, writes or waits.
//!
//! Every function takes any bytes: what it cannot accept is an error (or "more bytes
//! needed"), never a panic. The `h1_request` and `h1_response` fuzz targets (module
//! `fuzzing`, feature `fuzzing`) hold them to that.
//!
//! - [`request`]: client request heads: limits, framing and keep-alive rules.
//! - [`chunked`]: chunked request bodies (decoder) and the chunk framing of responses.
//! - [`response`]: upstream response heads: framing and keep-alive.
//! - [`response_body`]: upstream response bodies (length, chunked, until close).
//! - [`spans`]: where head parts are, so a parsed head shares the bytes it was read into.

pub mod chunked;
pub mod request;
pub mod response;
pub mod response_body;
pub mod spans;
