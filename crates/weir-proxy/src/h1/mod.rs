//! weir's own HTTP/1.1 engine: client connections, backend connections, and the
//! exchange between them, all in the client connection's task.
//!
//! hyper's server and client are general-purpose: a `HeaderMap` built and rebuilt per
//! request, a task and a channel per backend connection, and read and write buffers
//! held for the whole life of every connection. A proxy needs less. Here a head is
//! parsed once into spans ([`weir_h1`]), every framing rule is decided there, the head
//! for the other side is written straight from those spans into one output buffer, and
//! bodies stream through the one read buffer with their framing checked. The backend
//! connection is a bare socket (or TLS stream) taken from its backend's idle queue and
//! driven by this task; it goes back when its response has been read to the end.
//!
//! A connection waiting for its next request holds no buffer: it waits for readiness
//! only, and a buffer is lent from a per-worker pool when bytes arrive
//! ([`buf`]). HTTP/2 (the client's preface) is handed to hyper with the bytes already
//! read; so are requests to `upstream_protocol: h2` pools, through the hyper path.
//!
//! ```text
//! server.rs    the connection loop: wait, read a head, answer, keep alive or close
//! request.rs   one request: its phases run in order, a refusal answered
//! phases.rs    the phases: admit, route, pick, prepare, forward
//! refusal.rs   why weir answers a request itself, and that answer written
//! admit.rs     reading a head within its timeouts, refusals, target and Host rules
//! answer.rs    request ids, what is recorded of an answer, weir's own answers
//! respond.rs   a backend's answer sent on; 101 into a tunnel
//! exchange.rs  one attempt on one backend (driven by http::forward's retry rules)
//! from_h2.rs   requests of HTTP/2 clients (crate::h2_server) to HTTP/1 backends
//! h2_upload.rs an HTTP/2 client's request head and streamed body, in HTTP/1
//! write.rs     the heads weir writes, from the spans of the heads it read
//! body.rs      bodies, both ways, framing checked and rewritten
//! conn.rs      backend connections and their idle queue
//! buf.rs       read buffers lent per request
//! ```

mod actions;
mod admit;
mod answer;
mod body;
mod buf;
mod conn;
mod exchange;
mod from_h2;
mod h2_upload;
mod hyper_bridge;
mod phases;
mod refusal;
mod request;
mod respond;
mod rewind;
mod server;
mod tunnel;
mod upload;
mod write;

use std::future::Future;
use std::time::Duration;

pub(crate) use answer::Answer;
pub(crate) use from_h2::{forward_buffered, forward_streamed, BoxError, Detached, H1Body};
pub(crate) use h2_upload::{wire, wire_streamed, FrameUpload};
pub(crate) use request::pool_is_h2;
pub(crate) use server::{serve, ClientStream, Ctx};

/// Runs `fut` for at most `limit`; a zero limit means none (a timeout of 0 is "off"
/// in weir's config).
pub(crate) async fn within<F: Future>(
    limit: Duration,
    fut: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    if limit.is_zero() {
        return Ok(fut.await);
    }
    tokio::time::timeout(limit, fut).await
}
