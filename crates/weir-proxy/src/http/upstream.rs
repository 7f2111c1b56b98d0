//! Connections to backends: per-backend idle pools, connecting, handshakes.
//!
//! Each backend keeps its idle HTTP/1.1 keep-alive connections in its own lock-free
//! queue ([`UpstreamPool`], stored in the backend's extension slot), so concurrent
//! requests never contend on a global lock and a backend kept across a reload keeps its
//! warm connections. A request takes an idle connection or opens one; when the response
//! body has been read to its end, the connection goes back (see [`super::body`]). A
//! pool with `upstream_protocol: h2` shares one HTTP/2 connection per backend instead
//! ([`super::sender`]); a pool with `tls` runs the TLS handshake after the TCP connect,
//! within the same connect timeout ([`crate::tls::UpstreamTls`]). Sending a request and
//! retrying it is [`super::forward`]'s.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use weir_balance::Backend;

use super::body::ReqBody;
use super::error::UpstreamError;

pub(crate) use super::forward::{forward, BodySource, HyperAttempt, Outgoing};
pub(crate) use super::sender::Sender;

/// Idle connections kept per backend; more are closed when they come back.
const IDLE_PER_BACKEND: usize = 256;

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

/// A backend's idle keep-alive connections (lives in `Backend::extension`).
#[derive(Debug)]
pub struct UpstreamPool {
    idle: ArrayQueue<Sender>,
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
            idle: ArrayQueue::new(IDLE_PER_BACKEND),
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
        self.idle.len() + self.h1_idle.len()
    }

    /// Closes every idle connection (their transport settings changed).
    pub(crate) fn clear_idle(&self) {
        while self.idle.pop().is_some() {}
        while self.h1_idle.pop().is_some() {}
        self.h2_conn.store(None);
    }
}

/// Returns a connection whose response was read fully to its backend's idle queue.
pub(crate) fn give_back(backend: &Backend, sender: Sender) {
    // An HTTP/2 clone is just dropped: the connection stays shared in `h2_conn`.
    if sender.is_closed() || sender.is_h2() {
        return;
    }
    match backend.extension::<UpstreamPool>() {
        Some(pool) => {
            if pool.idle.push(sender).is_err() {
                tracing::trace!(backend = backend.address(), "idle queue full, closing");
            }
        }
        None => tracing::error!(backend = backend.address(), "backend extension slot taken"),
    }
}

/// Takes a live idle connection to `backend`, if it has one.
pub(super) async fn checkout(backend: &Backend) -> Option<Sender> {
    let pool = backend.extension::<UpstreamPool>()?;
    if pool.h2.load(std::sync::atomic::Ordering::Relaxed) {
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

/// Opens a new HTTP/1.1 connection to `backend` within `timeout`.
pub(super) async fn connect(backend: &Backend, timeout: Duration) -> Result<Sender, UpstreamError> {
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

/// HTTP/1.1, or HTTP/2 for an `h2` pool, over a connected (plain or TLS) stream; its
/// connection task is spawned.
async fn handshake<I>(backend: &Backend, io: I) -> Result<Sender, UpstreamError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let addr = backend.addr();
    if let Some(pool) = backend
        .extension::<UpstreamPool>()
        .filter(|p| p.h2.load(std::sync::atomic::Ordering::Relaxed))
    {
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
        pool.h2_conn.store(Some(Arc::new(sender.clone())));
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
