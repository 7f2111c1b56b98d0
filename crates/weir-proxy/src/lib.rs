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
//! retry.rs     the next attempt's backend and the pool's retry budget
//! outlier.rs   passive health checking: failures reported, ejections logged and timed
//! sweep.rs     the idle sweeper: pooled backend connections closed after their timeout
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

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod h1;
mod http;
mod io;
mod listener;
mod outlier;
mod proxy_protocol;
mod relay;
mod retry;
mod sweep;
mod tcp;
pub mod tls;

pub use http::{ResetCause, UpstreamError, MAX_HEAD_BYTES};
pub use listener::{spawn_listener, spawn_tls_listener, start_tls_listener, ListenerHandle};
pub use outlier::REASON_EJECTION_OVER;
pub use sweep::{spawn_idle_sweeper, MAX_SWEEP_PERIOD};
