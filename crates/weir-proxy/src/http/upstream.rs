//! Connections to backends: per-backend idle pools, and hyper's HTTP/2 connections.
//!
//! Each backend keeps its idle HTTP/1.1 keep-alive connections, bare sockets of weir's
//! own engine ([`crate::h1`]), in its own lock-free queue ([`UpstreamPool`], stored in
//! the backend's extension slot), so concurrent requests never contend on a global lock
//! and a backend kept across a reload keeps its warm connections. A pool with
//! `upstream_protocol: h2` shares one HTTP/2 connection per backend instead, opened here
//! through hyper ([`super::sender`]); a pool with `tls` runs the TLS handshake after the
//! TCP connect, within the same connect timeout ([`crate::tls::UpstreamTls`]). Sending a
//! request and retrying it is [`super::forward`]'s.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::http2;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use weir_balance::Backend;

use super::body::ReqBody;
use super::error::UpstreamError;

pub(crate) use super::forward::{forward, BodySource, HyperAttempt, Outgoing};

/// Idle connections kept per backend; more are closed when they come back.
const IDLE_PER_BACKEND: usize = 256;

/// Flow-control window of one stream on a shared HTTP/2 backend connection: what a
/// client that stops reading can make weir hold for it (hyper's default is 2 MiB).
const H2_STREAM_WINDOW: u32 = 64 * 1024;

/// The shared connection's window: data held for stalled streams counts against it
/// until their clients read it, so it must cover every stream a backend allows at once
/// (250 × 64 KiB; Go's servers allow 250, nginx 128, hyper 200), or a few stalled
/// clients would stall every other response from that backend (with hyper's defaults,
/// 2 MiB per stream in 5 MiB, three of them did).
const H2_CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// A backend's idle keep-alive connections (lives in `Backend::extension`).
#[derive(Debug)]
pub struct UpstreamPool {
    /// Idle connections of weir's own HTTP/1 engine ([`crate::h1`]): bare streams.
    pub(crate) h1_idle: ArrayQueue<crate::h1::Idle>,
    /// The pool's TLS settings, set by [`crate::tls::apply_upstream`]; `None`: plain.
    pub(crate) tls: arc_swap::ArcSwapOption<crate::tls::UpstreamTls>,
    /// `upstream_protocol: h2`: new connections speak HTTP/2 and are shared.
    pub(crate) h2: std::sync::atomic::AtomicBool,
    /// The shared HTTP/2 connection, once opened.
    pub(crate) h2_conn: arc_swap::ArcSwapOption<http2::SendRequest<ReqBody>>,
}

impl Default for UpstreamPool {
    fn default() -> Self {
        UpstreamPool {
            h1_idle: ArrayQueue::new(IDLE_PER_BACKEND),
            tls: arc_swap::ArcSwapOption::empty(),
            h2: std::sync::atomic::AtomicBool::new(false),
            h2_conn: arc_swap::ArcSwapOption::empty(),
        }
    }
}

impl UpstreamPool {
    /// Idle connections currently held (some may have been closed by the backend).
    pub fn idle(&self) -> usize {
        self.h1_idle.len()
    }

    /// Closes every idle connection (their transport settings changed).
    pub(crate) fn clear_idle(&self) {
        while self.h1_idle.pop().is_some() {}
        self.h2_conn.store(None);
    }
}

/// The backend's shared HTTP/2 connection, if it is open.
pub(super) fn checkout(backend: &Backend) -> Option<http2::SendRequest<ReqBody>> {
    let pool = backend.extension::<UpstreamPool>()?;
    pool.h2_conn
        .load_full()
        .filter(|s| !s.is_closed())
        .map(|s| (*s).clone())
}

/// Opens a new HTTP/2 connection to `backend` within `timeout` (HTTP/1 backends are
/// connected by [`crate::h1`]).
pub(super) async fn connect(
    backend: &Backend,
    timeout: Duration,
) -> Result<http2::SendRequest<ReqBody>, UpstreamError> {
    let addr = backend.addr();
    // The TLS handshake, if any, shares the connect timeout.
    let deadline = Instant::now() + timeout;
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => {
            return Err(UpstreamError::Connect {
                backend: Arc::from(backend.address()),
                source,
            })
        }
        Err(_) => {
            return Err(UpstreamError::ConnectTimeout {
                backend: Arc::from(backend.address()),
                timeout,
            })
        }
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend = %addr, error = %e, "TCP_NODELAY failed");
    }
    let Some(tls) = crate::tls::backend_tls(backend) else {
        return handshake(backend, stream).await;
    };
    match tokio::time::timeout_at(deadline, tls.connect(backend, stream)).await {
        Ok(Ok(stream)) => handshake(backend, stream).await,
        Ok(Err(source)) => Err(UpstreamError::Connect {
            backend: Arc::from(backend.address()),
            source,
        }),
        Err(_) => Err(UpstreamError::ConnectTimeout {
            backend: Arc::from(backend.address()),
            timeout,
        }),
    }
}

/// The HTTP/2 handshake over a connected (plain or TLS) stream; its connection task is
/// spawned and the connection shared from the backend's pool.
async fn handshake<I>(
    backend: &Backend,
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
    if let Some(pool) = backend.extension::<UpstreamPool>() {
        pool.h2_conn.store(Some(Arc::new(sender.clone())));
    }
    Ok(sender)
}
