//! weir-proxy against real sockets on loopback: proxied requests, errors, limits,
//! streaming, upgrades, h2c, drain, TCP relaying, passive ejection, fail-open, retry
//! conditions and the retry budget.

#![allow(missing_docs)]

mod h2_upload;
mod http;
mod limits;
mod pooling;
mod resilience;
mod retry;
mod support;
mod tcp;
