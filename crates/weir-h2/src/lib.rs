//! weir's HTTP/2 codec, being built to serve HTTP/2 clients without hyper's and h2's
//! general-purpose server (issue 9: an HTTP/2 request costs weir about 1.2× HAProxy's
//! instructions, and h2's own HPACK, stream and frame work is more than the whole gap).
//!
//! Like `weir-h1` it does no I/O, so every part is tested and fuzzed on its own before
//! the connection uses it. What exists so far:
//!
//! ```text
//! hpack/    header compression (RFC 7541): decoder with its dynamic table, encoder
//! frame.rs  frames (RFC 9113 §4, §6): checked parsing, header blocks across
//!           CONTINUATION (bounded), the writers a server needs
//! request.rs a request's head from its block (RFC 9113 §8): malformed requests refused
//! conn.rs   one connection's protocol state (streams, flow control, limits), no I/O
//! ```
//!
//! Not yet here, and not yet used by the data plane (which still serves HTTP/2 with
//! hyper): the I/O around [`conn::Connection`] (timers, keep-alive pings, the socket
//! and its buffers) and the wiring to the HTTP/1 engine's upstream side. The README's "Not built yet" says how far it is.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod conn;
pub mod frame;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod hpack;
pub mod request;
