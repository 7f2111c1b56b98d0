//! weir's data plane: listeners, HTTP proxying and TCP relaying.
//!
//! ```text
//! client -> listener (accept, max_connections) -> HTTP (hyper, h1 + h2c) or TCP
//!        -> table.load() -> route -> pool.pick() -> backend (pooled keep-alive conns)
//! ```
//! This crate only reads [`weir_balance::Table`] snapshots: it loads the current one per
//! request (HTTP) or per connection (TCP), so a reload takes effect for the very next
//! request, even on a keep-alive connection, while requests already running finish on
//! the snapshot they started with.
//!
//! ```text
//! listener.rs  accept loops, max_connections, drain
//! io.rs        client socket wrapper: activity for idle timeouts, head scanning
//! http/        HTTP/1.1 + h2c clients proxied to pooled HTTP/1.1 backends
//! tcp.rs       TCP connections: pick, connect, retry, PROXY header, relay
//! relay/       bytes between client and backend: splice(2) on Linux, else copying
//! proxy_protocol.rs  PROXY protocol v1/v2 headers, sent and accepted
//! tls/         rustls termination: SNI, ALPN, handshake timeout
//! retry.rs     one request's attempts (HTTP and TCP): backends, retries, budget, decision
//! outlier.rs   passive health checking: failures reported, ejections logged and timed
//! policy.rs    rate limits and access lists of listeners and routes (429, 403)
//! sweep.rs     the idle sweeper: pooled backend connections closed after their timeout
//! ```
//!
//! # Life of a request
//!
//! Both HTTP paths run the same phases in the same order, one function each, so a
//! question ("where is the 404 decided?", "when is the body read?") has one place to
//! look. A phase that stops the request returns a typed `Refusal` (status, `&'static`
//! reason, its metric and access-log effect); the phase's caller writes the answer.
//!
//! HTTP/1 clients, weir's own engine (`h1/`, from `h1/server.rs::serve`):
//!
//! ```text
//! admit    h1/admit.rs::read_head      the head within its timeouts, codec refusals
//!          h1/request.rs::handle       HTTP/1.0 chunked, the listener, the request id
//!          h1/phases.rs::admit         keep-alive, CONNECT, target and Host, access record
//!          h1/phases.rs::police    the listener's rate limit (429)
//! route    h1/phases.rs::route         the listener's route (404)
//!          h1/phases.rs::police    the route's access list (403), rate limit (429)
//! pick     h1/phases.rs::pick          the first backend (503)
//! prepare  h1/phases.rs::prepare       the backend's head, the body held or streamed
//! forward  h1/phases.rs::forward_phase  attempts and retries (http/forward.rs::forward,
//!                                      one attempt: h1/exchange.rs); h2 pools go to
//!                                      h1/hyper_bridge.rs::forward_h2 after route
//! respond  h1/respond.rs::respond      the backend's answer sent on; 101 into a tunnel
//! refusal  h1/refusal.rs::Refusal::answer  weir's own short text answer
//! log      h1/answer.rs::Answer        metrics when the head is sent; the access-log
//!                                      line when it drops (http/access.rs, Drop)
//! ```
//!
//! HTTP/2 clients (TLS with ALPN h2, or the h2c preface), `http/service.rs` and
//! `http/phases.rs`, from `h2_server/mod.rs::serve` (weir-h2's codec, one task per
//! connection):
//!
//! ```text
//! admit    http/service.rs::handle     the listener, the request id, access record
//!          http/phases.rs::admit       HTTP/1 framing, CONNECT, the Host rules
//!          http/phases.rs::police  the listener's rate limit (429)
//! route    http/phases.rs::route       the listener's route (404)
//!          http/phases.rs::police  the route's access list (403), rate limit (429)
//! pick     http/phases.rs::pick        the first backend (503)
//! prepare  http/phases.rs::prepare     the body's first frame (408, 400)
//! forward  http/phases.rs::forward     h1/from_h2.rs for HTTP/1 pools, hyper's
//!                                      client (http/upstream.rs) for h2 pools
//! respond  http/phases.rs::respond     the backend's answer wrapped for hyper
//! refusal  http/phases.rs::Refusal::answer  weir's own short text answer
//! log      http/service.rs::Answer::finish  metrics; the access-log record rides
//!                                      the response body, logged when it ends
//! ```
//!
//! Every connection to a backend (HTTP and TCP alike) is opened by its pool's transport
//! (`weir_upstream::Transport`, part of the table, so a request connects with the
//! settings of the table it was routed on), which the health probes use too; idle
//! HTTP/1 connections wait in the backend's typed `weir_upstream::Conns`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod affinity;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod h1;
mod h2_server;
mod http;
mod io;
mod listener;
mod outlier;
mod policy;
mod proxy_protocol;
mod relay;
mod retry;
mod sticky;
mod sweep;
mod tcp;
pub mod tls;

pub use http::{ResetCause, UpstreamError, MAX_HEAD_BYTES};
pub use listener::{spawn_listener, spawn_tls_listener, start_tls_listener, ListenerHandle};
pub use outlier::REASON_EJECTION_OVER;
pub use sweep::{spawn_idle_sweeper, MAX_SWEEP_PERIOD};
