//! TCP listeners: each client connection relayed to one backend of the listener's pool.
//!
//! The backend is picked once per connection; a connect failure (refused, timeout) counts
//! against the backend (passive checking) and is retried on another backend, within the
//! pool's retry budget, which is safe because no byte has been relayed yet. The
//! backend's in-flight count includes the connection for its whole life, so
//! `least_connections` balances open connections. Half-closes propagate (a client's
//! EOF becomes a `shutdown(Write)` towards the backend and back). With nothing up, the
//! client connection is closed at once. With `proxy_protocol`, the PROXY header goes to
//! the backend right after the connect, before any relayed byte. A pool with `tls` gets
//! a TLS handshake after that (no ALPN, verified as for HTTP), within the same connect
//! timeout; a failed handshake or refused certificate is a connect failure like a
//! refused connect. The bytes themselves move in [`crate::relay`] (splice(2) on Linux
//! between plain sockets, bounded buffers when either side is TLS), counted in
//! `weir_tcp_bytes_total` as they pass, so a long stream shows its traffic while it runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use weir_balance::{Backend, ListenerTable, MAX_ATTEMPTS};

use crate::io::ConnShared;
use crate::listener::ConnScope;
use crate::proxy_protocol::{self, Origin};
use crate::relay::{self, Meter};
use crate::tls::{backend_tls, Alpn};
use crate::{outlier, retry};

/// Relays one client connection until either side closes, it idles out, or is killed.
///
/// `client` is the accepted socket (spliced on Linux) or any stream over it (TLS).
pub(crate) async fn serve<C>(client: C, origin: Origin, listener: &ListenerTable, scope: &ConnScope)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(pool) = listener.tcp_pool().map(Arc::clone) else {
        tracing::warn!(listener = listener.name(), "TCP listener without a pool");
        return;
    };
    let Some(first) = pool.pick() else {
        tracing::debug!(pool = pool.name(), "no backend up, closing client");
        return;
    };
    let settings = *pool.settings();
    let max_attempts = retry::max_attempts(&settings);
    retry::record_request(&pool);
    let mut tried: [&Arc<Backend>; MAX_ATTEMPTS] = [first; MAX_ATTEMPTS];
    let mut attempts = 0;
    let mut backend = first;
    let (upstream, in_flight) = loop {
        if let Some(slot) = tried.get_mut(attempts) {
            *slot = backend;
        }
        if attempts > 0 {
            if let Some(m) = pool.metrics() {
                m.retry();
            }
        }
        attempts += 1;
        let in_flight = backend.start_request();
        let error = match open(backend, &origin, settings.connect_timeout).await {
            Ok(stream) => {
                outlier::success(&pool, backend);
                break (stream, in_flight);
            }
            Err(error) => error,
        };
        drop(in_flight);
        if let Some(m) = backend.metrics() {
            // A connect timeout is a `connect` failure, as for HTTP.
            m.upstream_error(weir_telemetry::UpstreamErrorKind::Connect);
        }
        outlier::failure(&pool, backend, &error);
        let next = if !settings.retry_on.connect_failure {
            Err(retry::Stop::NotRetryable)
        } else if attempts >= max_attempts {
            Err(retry::Stop::Attempts)
        } else {
            retry::next(
                &pool,
                tried.get(..attempts).unwrap_or_default(),
                retry::Cost::Free,
            )
        };
        match next {
            Ok(b) => {
                tracing::debug!(pool = pool.name(), backend = backend.address(), kind = "connect",
                    %error, next = b.address(), "TCP connect failed, retrying");
                backend = b;
            }
            Err(stop) => {
                tracing::warn!(pool = pool.name(), backend = backend.address(), kind = "connect",
                    %error, attempts, stop = stop.as_str(), "TCP connect failed, closing client");
                return;
            }
        }
    };
    let backend_addr = backend.addr();
    let shared = Arc::new(ConnShared::new());
    let meter = Meter {
        shared: &shared,
        bytes: listener.metrics(),
    };
    let idle = listener.timeouts().idle;
    tokio::select! {
        r = async {
            match upstream {
                Upstream::Plain(tcp) => relay::relay(client, tcp, meter).await,
                Upstream::Tls(tls) => relay::relay_buffered(client, tls, meter).await,
            }
        } => match r {
            Ok(t) => tracing::debug!(backend = %backend_addr, to_backend = t.from_client, to_client = t.to_client, "TCP stream closed"),
            Err(e) => tracing::debug!(backend = %backend_addr, error = %e, "TCP stream failed"),
        },
        () = shared.idle_expired(idle) => tracing::debug!(backend = %backend_addr, ?idle, "TCP stream idle, closing"),
        () = scope.kill.cancelled() => tracing::debug!(backend = %backend_addr, "TCP stream closed by force"),
    }
    drop(in_flight);
}

/// A connected backend: the socket itself, or TLS over it for a pool with `tls`.
enum Upstream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Opens a connection to `backend` within `timeout`: the TCP connect, then the PROXY
/// header if the listener sends one, then the TLS handshake if the pool has `tls`.
///
/// The PROXY header goes first and in the clear, as HAProxy's `send-proxy` with `ssl`
/// does: it describes the TCP connection, and a backend reads it before its TLS
/// handshake (nginx's `listen ... ssl proxy_protocol`). Any failure, a refused
/// certificate included, is a connect failure: no client byte has been sent yet.
async fn open(backend: &Backend, origin: &Origin, timeout: Duration) -> Result<Upstream, String> {
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        format!(
            "connect to {} timed out after {timeout:?}",
            backend.address()
        )
    };
    let mut tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(backend.addr())).await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(format!("connect to {} failed: {e}", backend.address())),
        Err(_) => return Err(timed_out()),
    };
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY failed on backend socket");
    }
    if let Some(version) = origin.send {
        let header = proxy_protocol::encode(version, origin.client, origin.local);
        match tokio::time::timeout_at(deadline, tcp.write_all(&header)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(format!(
                    "sending the PROXY header to {} failed: {e}",
                    backend.address()
                ))
            }
            Err(_) => return Err(timed_out()),
        }
    }
    let Some(tls) = backend_tls(backend) else {
        return Ok(Upstream::Plain(tcp));
    };
    match tokio::time::timeout_at(deadline, tls.connect_as(backend, tcp, Alpn::None)).await {
        Ok(Ok(stream)) => Ok(Upstream::Tls(Box::new(stream))),
        Ok(Err(e)) => Err(format!(
            "TLS handshake with {} failed: {e}",
            backend.address()
        )),
        Err(_) => Err(timed_out()),
    }
}
