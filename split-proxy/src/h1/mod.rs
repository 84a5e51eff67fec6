//! split's own HTTP/1.1 server for its listeners (proxy, admin, metrics).
//!
//! Why not hyper's: hyper keeps two 8 KiB buffers per connection, idle or not, and
//! re-allocates its read buffer per request. Here an idle connection holds no buffer,
//! heads are parsed from right-sized buffers (by `split_core::wire`, which also decodes
//! chunked bodies), and response heads are serialized into a Vec sized for them and
//! dropped once written. Clients that open with the HTTP/2 preface are handed to hyper's
//! h2 server ([`h2`]).
//!
//! - [`body`]: [`RequestBody`], the body handlers receive.
//! - [`response`]: response framing decisions and head serialization.
//! - [`write`]: writing the response body frame by frame.
//! - [`conn`]: the connection loop.
//! - [`io`]: socket reads through a thread-local scratch buffer.
//! - [`date`]: the cached `Date` header.
//! - [`error`]: split's JSON answer to refused heads.
//! - [`h2`]: the hand-off of h2 prior-knowledge clients to hyper.

pub mod body;
pub mod conn;
pub mod date;
pub mod error;
pub mod h2;
pub mod io;
pub mod response;
pub mod write;

pub use body::RequestBody;
