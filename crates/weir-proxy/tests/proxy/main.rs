//! weir-proxy against real sockets on loopback: proxied requests, errors, limits,
//! streaming, upgrades, h2c, drain and TCP relaying.

#![allow(missing_docs)]

mod http;
mod limits;
mod retry;
mod support;
mod tcp;
