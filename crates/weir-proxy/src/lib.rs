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

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod listener;

pub use listener::{spawn_listener, ListenerHandle};
