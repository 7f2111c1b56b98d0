//! weir's admin server: the `/` dashboard, `/metrics`, `/healthz` and `/status`, and the
//! runtime API ([`api`]).
//!
//! It reads the current table snapshot, the backends' atomics, the metrics registry,
//! and a view of the running listeners supplied by the binary (this crate cannot depend
//! on the proxy, the crate graph points the other way). Its one write is the runtime
//! API's, to a backend's admin mode and weight; a new table is built by the binary.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
mod server;
mod status;

pub use server::{serve, AdminState, ConfigStamp, ListenerStatus, ListenerView, DASHBOARD_CSP};
pub use status::status_json;
