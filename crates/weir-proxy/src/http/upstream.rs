//! hyper's backend connections: the shared HTTP/2 connection of an `h2` pool.
//!
//! HTTP/1.1 backends are spoken to by weir's own engine ([`crate::h1`]), whose idle
//! connections are bare streams in the backend's `Conns`. A pool with
//! `upstream_protocol: h2` shares one HTTP/2 connection per backend instead, opened here:
//! the pool's transport connects (`weir_upstream::Transport::connect`: TCP, then TLS with
//! the pool's ALPN, within the connect timeout), the one connector every backend
//! connection goes through, and hyper runs its HTTP/2 handshake over the stream. What
//! hyper keeps per backend (`weir_upstream::H2Client`) lives in the backend's `Conns`
//! (`Conns::h2_client`), tagged with the transport it was made under: a request routed
//! on an older table than the one whose settings the backend now uses shares nothing.
//! Sending a request and retrying it is [`super::forward`]'s.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http2;
use hyper_util::rt::TokioIo;
use weir_balance::Backend;
use weir_upstream::{Alpn, ConnectError, Transport};

use super::body::ReqBody;
use super::error::UpstreamError;

pub(crate) use super::forward::{forward, BodySource, HyperAttempt, Outgoing};

/// Flow-control window of one stream on a shared HTTP/2 backend connection: what a
/// client that stops reading can make weir hold for it (hyper's default is 2 MiB).
const H2_STREAM_WINDOW: u32 = 64 * 1024;

/// The shared connection's window: data held for stalled streams counts against it
/// until their clients read it, so it must cover every stream a backend allows at once
/// (250 × 64 KiB; Go's servers allow 250, nginx 128, hyper 200), or a few stalled
/// clients would stall every other response from that backend (with hyper's defaults,
/// 2 MiB per stream in 5 MiB, three of them did).
const H2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// The backend's shared HTTP/2 connection, if it is open and made under `transport`.
pub(super) fn checkout(
    backend: &Backend,
    transport: &Transport,
) -> Option<http2::SendRequest<ReqBody>> {
    let client = backend.conns().h2_client(transport)?;
    client
        .conn
        .load_full()
        .filter(|s| !s.is_closed())
        .map(|s| (*s).clone())
}

/// Opens a new HTTP/2 connection to `backend` with the pool's `transport` within
/// `timeout` (TLS, if any, included) and runs hyper's handshake over it (HTTP/1
/// backends are connected by [`crate::h1`]).
pub(super) async fn connect(
    backend: &Backend,
    transport: &Transport,
    timeout: Duration,
) -> Result<http2::SendRequest<ReqBody>, UpstreamError> {
    let stream = transport
        .connect(backend.addr(), backend.address(), Alpn::Pool, None, timeout)
        .await
        .map_err(|e| connect_error(backend, e, timeout))?;
    handshake(backend, transport, stream).await
}

/// A failed [`Transport::connect`] as the HTTP path reports it.
pub(crate) fn connect_error(
    backend: &Backend,
    e: ConnectError,
    timeout: Duration,
) -> UpstreamError {
    match e.into_io() {
        Some(source) => UpstreamError::Connect {
            backend: Arc::from(backend.address()),
            source,
        },
        None => UpstreamError::ConnectTimeout {
            backend: Arc::from(backend.address()),
            timeout,
        },
    }
}

/// The HTTP/2 handshake over a connected (plain or TLS) stream; its connection task is
/// spawned and the connection shared from the backend's pool.
async fn handshake<I>(
    backend: &Backend,
    transport: &Transport,
    io: I,
) -> Result<http2::SendRequest<ReqBody>, UpstreamError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let addr = backend.addr();
    let (sender, conn) = http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|source| UpstreamError::Reset {
            backend: Arc::from(backend.address()),
            source: source.into(),
            request_sent: false,
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(backend = %addr, error = %e, "backend HTTP/2 connection failed");
        }
    });
    // Shared from now on, unless the pool has other settings by now.
    if let Some(client) = backend.conns().h2_client(transport) {
        client.conn.store(Some(Arc::new(sender.clone())));
    }
    Ok(sender)
}
