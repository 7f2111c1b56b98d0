//! weir's HTTP/2 codec, which serves HTTP/2 clients in place of hyper's and h2's
//! general-purpose server (issue 9: under them an HTTP/2 request cost weir about 1.2×
//! HAProxy's instructions, and h2's own HPACK, stream and frame work was more than the
//! whole gap; on this codec it costs about 0.70×).
//!
//! Like `weir-h1` it does no I/O, so every part is tested and fuzzed on its own; the
//! socket, timers and streams' work around it are `weir-proxy`'s `h2_server`.
//!
//! ```text
//! hpack/    header compression (RFC 7541): decoder with its dynamic table, encoder
//! frame.rs  frames (RFC 9113 §4, §6): checked parsing, header blocks across
//!           CONTINUATION (bounded), the writers a server needs
//! request.rs a request's head from its block (RFC 9113 §8): malformed requests refused
//! conn.rs   one connection's protocol state (streams, flow control, limits), no I/O
//! ```

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
