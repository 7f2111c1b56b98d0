//! How weir reaches a backend: each pool's transport settings, the one connector, and
//! each backend's idle connections.
//!
//! ```text
//! Config --Transports::load--> Transport per pool { tls, HTTP version, idle timeout }
//!   held by the routing table (weir_balance::Pool::transport), swapped with it
//! Transport::connect   TCP connect, PROXY header, TLS with the caller's ALPN; one timeout
//! Conns                a backend's idle streams, tagged with the transport that made them
//! ```
//! The HTTP path (weir's HTTP/1 engine, hyper's HTTP/2 client), the TCP relay and the
//! health probes all connect through [`Transport::connect`], so they connect, send the
//! PROXY header and verify certificates alike.
//!
//! **Why a crate of its own, under `weir-balance`.** The transport settings belong in
//! the routing snapshot, so that a request uses the settings of the table it was routed
//! on and a reload changes them only for requests routed on the new table; and the idle
//! connections belong to the backend, so that they live exactly as long as it does.
//! Both are therefore typed fields of `weir-balance`'s `Pool` and `Backend`, which must
//! not depend on the proxy; and the health probes, which sit beside the proxy, need the
//! same connector. The crate knows sockets and rustls, nothing of HTTP or balancing.
//!
//! ```text
//! transport.rs  Transport, Transports, the connector, carry_over across reloads
//! tls.rs        UpstreamTls (rustls client configs per ALPN), TlsError, PEM reading
//! stream.rs     Stream: plain TCP or TLS
//! conns.rs      Conns: the idle queue, expiry, the settings tag
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod conns;
mod h2;
mod stream;
pub mod tls;
mod transport;

pub use conns::{Conns, IDLE_PER_BACKEND};
pub use h2::{BoxError, ClientBody, H2Client, ReqBody};
pub use stream::Stream;
pub use tls::{Alpn, TlsError, UpstreamTls};
pub use transport::{carry_over, ConnectError, Transport, Transports, POOL_IDLE_TIMEOUT};
