//! Backend connections of the HTTP/1 engine: plain sockets or TLS streams, nothing
//! more. A pooled connection has no task, channel or buffer of its own: it waits in its
//! backend's idle queue (`weir_upstream::Conns`, a typed field of the backend) as a
//! bare stream, and the client task that takes it runs the whole exchange.
//!
//! Connections are opened by the pool's transport (`weir_upstream::Transport::connect`,
//! the connector the TCP relay and the health probes use too), and go back to the queue
//! tagged with it: a connection is reused only by requests routed on a table with the
//! same transport settings.
//!
//! Before reuse a connection is checked without waiting: a read that does not block
//! means the backend closed it (or sent bytes nobody asked for), and it is dropped, so
//! a request that cannot be replayed is never written on a dead socket. A connection
//! idle longer than the transport's idle timeout is closed by the idle sweeper
//! ([`crate::sweep`]), or at checkout if a request comes first.

use std::time::Duration;

use weir_balance::{Backend, Pool};
use weir_upstream::Alpn;
pub(crate) use weir_upstream::Stream;

use crate::http::UpstreamError;

/// Takes a live idle connection to `backend` of `pool`, if it has one.
pub(crate) fn checkout(backend: &Backend, pool: &Pool) -> Option<Stream> {
    backend.conns().checkout(pool.transport())
}

/// Returns a connection whose response was read to its end.
pub(crate) fn give_back(backend: &Backend, pool: &Pool, stream: Stream) {
    backend.conns().give_back(pool.transport(), stream);
}

/// Opens a connection to `backend` with `pool`'s transport (TCP, then TLS for a `tls`
/// pool, offering ALPN `http/1.1`) within `timeout`.
pub(crate) async fn connect(
    backend: &Backend,
    pool: &Pool,
    timeout: Duration,
) -> Result<Stream, UpstreamError> {
    pool.transport()
        .connect(backend.addr(), backend.address(), Alpn::Pool, None, timeout)
        .await
        .map_err(|e| crate::http::connect_error(backend, e, timeout))
}
