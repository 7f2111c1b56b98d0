//! hyper's backend connections: per-backend state, connecting, handshakes.
//!
//! Connections are opened by the pool's transport (`weir_upstream::Transport::connect`:
//! TCP, then TLS with the pool's ALPN, within the connect timeout), the one connector
//! every backend connection goes through; hyper then runs its handshake over the stream.
//! What hyper keeps per backend ([`UpstreamPool`]: idle HTTP/1.1 senders, the shared
//! HTTP/2 connection of a pool with `upstream_protocol: h2`, see [`super::sender`])
//! lives in the backend's `Conns` (`Conns::client_state`), tagged with the transport it
//! was made under: a request routed on an older table than the one whose settings the
//! backend now uses shares nothing and pools nothing. A request takes an idle
//! connection or opens one; when the response body has been read to its end, the
//! connection goes back (see [`super::body`]). Sending a request and retrying it is
//! [`super::forward`]'s.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use weir_balance::Backend;
use weir_upstream::{Alpn, ConnectError, Transport};

use super::body::ReqBody;
use super::error::UpstreamError;

pub(crate) use super::forward::{forward, BodySource, HyperAttempt, Outgoing};
pub(crate) use super::sender::Sender;

/// Idle connections kept per backend; more are closed when they come back.
const IDLE_PER_BACKEND: usize = weir_upstream::IDLE_PER_BACKEND;

/// Largest read buffer of a backend HTTP/1.1 connection, so the largest response head
/// (a larger one is a `502`, see `forward::invalid_head`) and body chunk: hyper bounds
/// both with this one setting, and a larger head cap would cost every stalled reader a
/// larger chunk (32 KiB: ~35 KiB more each). hyper's default (~400 KiB) let a client that
/// stops reading hold that much in the read buffer, again in the body channel and again
/// in the client connection's write queue (~1.1 MB per stalled client); at 16 KiB
/// (HAProxy's `tune.bufsize`, which also caps its heads) a stalled reader holds a few
/// chunks this size beside the client side's 64 KiB write buffer, and back-pressure
/// stops the backend.
const UPSTREAM_READ_BUF: usize = 16 * 1024;

/// Flow-control window of one stream on a shared HTTP/2 backend connection: what a
/// client that stops reading can make weir hold for it (hyper's default is 2 MiB).
const H2_STREAM_WINDOW: u32 = 64 * 1024;

/// The shared connection's window: data held for stalled streams counts against it
/// until their clients read it, so it must cover every stream a backend allows at once
/// (250 × 64 KiB; Go's servers allow 250, nginx 128, hyper 200), or a few stalled
/// clients would stall every other response from that backend (with hyper's defaults,
/// 2 MiB per stream in 5 MiB, three of them did).
const H2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// How long a returned connection may take to become ready again: hyper's connection
/// task marks it idle just after the body's last frame was handed over.
const READY_GRACE: Duration = Duration::from_millis(100);

/// What hyper keeps per backend (lives in `Conns::client_state`, under one transport).
#[derive(Debug)]
pub(crate) struct UpstreamPool {
    idle: ArrayQueue<Sender>,
    /// The shared HTTP/2 connection, once opened.
    h2_conn: arc_swap::ArcSwapOption<http2::SendRequest<ReqBody>>,
}

impl Default for UpstreamPool {
    fn default() -> Self {
        UpstreamPool {
            idle: ArrayQueue::new(IDLE_PER_BACKEND),
            h2_conn: arc_swap::ArcSwapOption::empty(),
        }
    }
}

/// Returns a connection whose response was read fully to its backend's idle queue.
pub(crate) fn give_back(backend: &Backend, transport: &Transport, sender: Sender) {
    // An HTTP/2 clone is just dropped: the connection stays shared in `h2_conn`.
    if sender.is_closed() || sender.is_h2() {
        return;
    }
    // `None`: the backend's pool has other settings now; the connection closes.
    if let Some(pool) = backend.conns().client_state::<UpstreamPool>(transport) {
        if pool.idle.push(sender).is_err() {
            tracing::trace!(backend = backend.address(), "idle queue full, closing");
        }
    }
}

/// Takes a live idle connection to `backend`, if it has one.
pub(super) async fn checkout(backend: &Backend, transport: &Transport) -> Option<Sender> {
    let pool = backend.conns().client_state::<UpstreamPool>(transport)?;
    if transport.is_h2() {
        return pool
            .h2_conn
            .load_full()
            .filter(|s| !s.is_closed())
            .map(|s| Sender::H2((*s).clone()));
    }
    while let Some(mut sender) = pool.idle.pop() {
        if sender.is_closed() {
            continue;
        }
        if sender.is_ready() {
            return Some(sender);
        }
        match tokio::time::timeout(READY_GRACE, sender.ready()).await {
            Ok(Ok(())) => return Some(sender),
            Ok(Err(e)) => tracing::trace!(error = %e, "idle connection closed"),
            Err(_) => tracing::debug!(backend = backend.address(), "idle connection not ready"),
        }
    }
    None
}

/// Opens a new connection to `backend` with the pool's `transport` within `timeout`
/// (TLS, if any, included) and runs hyper's handshake over it.
pub(super) async fn connect(
    backend: &Backend,
    transport: &Transport,
    timeout: Duration,
) -> Result<Sender, UpstreamError> {
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

/// HTTP/1.1, or HTTP/2 for an `h2` pool, over a connected (plain or TLS) stream; its
/// connection task is spawned.
async fn handshake<I>(
    backend: &Backend,
    transport: &Transport,
    io: I,
) -> Result<Sender, UpstreamError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let addr = backend.addr();
    if transport.is_h2() {
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
        if let Some(pool) = backend.conns().client_state::<UpstreamPool>(transport) {
            pool.h2_conn.store(Some(Arc::new(sender.clone())));
        }
        return Ok(Sender::H2(sender));
    }
    let (sender, conn) = http1::Builder::new()
        .max_buf_size(UPSTREAM_READ_BUF)
        // The buffer bounds only a head read in pieces (a read may fill past it);
        // this bounds the head however it arrives.
        .max_header_size(UPSTREAM_READ_BUF)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|source| UpstreamError::Reset {
            backend: Arc::from(backend.address()),
            source: source.into(),
            request_sent: false,
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(backend = %addr, error = %e, "backend connection failed");
        }
    });
    Ok(Sender::H1(sender))
}
