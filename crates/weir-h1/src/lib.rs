//! weir's HTTP/1.1 codec, shared by the data plane (client and backend connections) and
//! the health probes, so weir reads HTTP/1 one way only.
//!
//! It does no I/O and allocates nothing per header: a head is parsed with `httparse` into
//! [`Span`]s (offsets into the caller's buffer), and every rule weir enforces on framing
//! is decided here, once, as the head is parsed: a request that could be read two ways
//! gets a [`Refusal`] (status and reason) and is never forwarded.
//!
//! ```text
//! head.rs     request and response heads: spans, header kinds, Connection tokens
//! framing.rs  Content-Length / Transfer-Encoding rules for requests and responses
//! chunked.rs  streaming chunked decoder (bounded) and encoder
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod chunked;
mod framing;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod head;

pub use chunked::{chunk_header, is_tchar, ChunkError, ChunkedDecoder, Decoded, LAST_CHUNK};
pub use head::{
    Connection, Framing, Header, HeaderKind, Method, Parsed, Refusal, RequestHead, ResponseHead,
    Span, Version,
};

/// Largest request head accepted; beyond it the client gets 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most header fields in one head; beyond it a request gets 431 (hyper's default was 100).
pub const MAX_HEADERS: usize = 100;
