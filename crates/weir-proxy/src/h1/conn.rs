//! Backend connections of the HTTP/1 engine: plain sockets or TLS streams, nothing
//! more. A pooled connection has no task, channel or buffer of its own: it waits in its
//! backend's idle queue ([`crate::http::UpstreamPool`]) as a bare stream, and the client
//! task that takes it runs the whole exchange.
//!
//! Before reuse a connection is checked without waiting: a read that does not block
//! means the backend closed it (or sent bytes nobody asked for), and it is dropped, so
//! a request that cannot be replayed is never written on a dead socket. A connection
//! idle longer than [`POOL_IDLE_TIMEOUT`] is dropped at the next checkout too.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use weir_balance::Backend;

use crate::http::{UpstreamError, UpstreamPool};

/// Longest a backend connection waits in the idle queue: shorter than the keep-alive
/// timeouts of common servers (nginx 75 s, Apache 5 s is caught by the readiness check),
/// and what Envoy and Pingora use for upstream idle connections by default (60 s).
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A connected backend stream.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS to the backend (`tls` on the pool).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the connection is still open and quiet: a one-byte read that would block.
    /// Anything else (EOF, an error, bytes nobody asked for) makes it unusable.
    fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.tcp().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// An idle connection in its backend's queue.
#[derive(Debug)]
pub(crate) struct Idle {
    stream: Stream,
    since: Instant,
}

/// Takes a live idle connection to `backend`, if it has one.
pub(crate) fn checkout(backend: &Backend) -> Option<Stream> {
    let pool = backend.extension::<UpstreamPool>()?;
    let now = Instant::now();
    while let Some(idle) = pool.h1_idle.pop() {
        if now.duration_since(idle.since) < POOL_IDLE_TIMEOUT && idle.stream.is_quiet() {
            return Some(idle.stream);
        }
        tracing::trace!(
            backend = backend.address(),
            "idle connection closed or expired"
        );
    }
    None
}

/// Returns a connection whose response was read to its end.
pub(crate) fn give_back(backend: &Backend, stream: Stream) {
    let Some(pool) = backend.extension::<UpstreamPool>() else {
        return;
    };
    let idle = Idle {
        stream,
        since: Instant::now(),
    };
    if pool.h1_idle.push(idle).is_err() {
        tracing::trace!(backend = backend.address(), "idle queue full, closing");
    }
}

/// Opens a connection to `backend` (TCP, then TLS for a `tls` pool) within `timeout`.
pub(crate) async fn connect(backend: &Backend, timeout: Duration) -> Result<Stream, UpstreamError> {
    let addr = backend.addr();
    let deadline = Instant::now() + timeout;
    let timed_out = || UpstreamError::ConnectTimeout {
        backend: Arc::from(backend.address()),
        timeout,
    };
    let failed = |source| UpstreamError::Connect {
        backend: Arc::from(backend.address()),
        source,
    };
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(failed(source)),
        Err(_) => return Err(timed_out()),
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend = %addr, error = %e, "TCP_NODELAY failed");
    }
    let Some(tls) = crate::tls::backend_tls(backend) else {
        return Ok(Stream::Plain(stream));
    };
    match tokio::time::timeout_at(deadline, tls.connect(backend, stream)).await {
        Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream))),
        Ok(Err(source)) => Err(failed(source)),
        Err(_) => Err(timed_out()),
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
