//! TCP listeners: each client connection relayed to one backend of the listener's pool.
//!
//! The backend is picked once per connection; a connect failure (refused, timeout) counts
//! against the backend (passive checking) and is retried on another backend, within the
//! pool's retry budget, which is safe because no byte has been relayed yet. The
//! backend's in-flight count includes the connection for its whole life, so
//! `least_connections` balances open connections. Half-closes propagate (a client's
//! EOF becomes a `shutdown(Write)` towards the backend and back). With nothing up, the
//! client connection is closed at once. The connection is opened by the pool's
//! transport (`weir_upstream::Transport::connect`, the connector of the HTTP path and
//! the health probes): with `proxy_protocol`, the PROXY header goes to the backend right
//! after the connect, before any relayed byte; a pool with `tls` gets a TLS handshake
//! after that (no ALPN, verified as for HTTP), within the same connect timeout; a failed
//! handshake or refused certificate is a connect failure like a refused connect. The bytes themselves move in [`crate::relay`] (splice(2) on Linux
//! between plain sockets, bounded buffers when either side is TLS), counted in
//! `weir_tcp_bytes_total` as they pass, so a long stream shows its traffic while it runs.
//!
//! A pool's `max_in_flight` counts open connections here: a connection over it waits in
//! the pool's queue before any connect, and one the queue refuses (full, timed out) is
//! closed without a byte. The wait does not watch the client (reading it would take
//! bytes meant for the backend); `queue.timeout` bounds it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use weir_balance::{Backend, ListenerTable};
use weir_upstream::{Alpn, ConnectError, Stream, Transport};

use crate::io::ConnShared;
use crate::listener::ConnScope;
use crate::proxy_protocol::{self, Origin};
use crate::relay::{self, Meter};
use crate::retry::{Attempts, Cost, Decision, Failure};

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
    // Over every backend's `max_in_flight`, the connection waits in the pool's queue
    // (bounded by its timeout); refused, it is closed like one with no backend up.
    let key = pool
        .hash_on()
        .and_then(|on| crate::affinity::key(on, origin.client.ip(), None, std::iter::empty()));
    let first = match pool.reserve_keyed(key, scope.kill.cancelled()).await {
        Ok(first) => first,
        Err(why) => {
            tracing::debug!(
                pool = pool.name(),
                why = why.as_str(),
                "no backend free, closing client"
            );
            return;
        }
    };
    let settings = *pool.settings();
    let mut attempts = Attempts::new(&pool, first);
    let (backend, upstream, in_flight) = loop {
        let (backend, in_flight) = attempts.start();
        let error = match open(backend, pool.transport(), &origin, settings.connect_timeout).await {
            Ok(stream) => {
                attempts.succeeded();
                break (backend, stream, in_flight);
            }
            Err(error) => error,
        };
        // A connect timeout is a `connect` failure, as for HTTP; connects are retried free.
        let failure = Failure {
            retryable: settings.retry_on.connect_failure,
            cost: Cost::Free,
            counted: Some(weir_telemetry::UpstreamErrorKind::Connect),
            passive: true,
            reset_on_reused: false,
        };
        match attempts.failed(failure, &error, in_flight) {
            Decision::Retry(b) => {
                tracing::debug!(pool = pool.name(), backend = backend.address(), kind = "connect",
                    %error, next = b.address(), "TCP connect failed, retrying");
            }
            Decision::Stop(stop) => {
                tracing::warn!(pool = pool.name(), backend = backend.address(), kind = "connect",
                    %error, attempts = attempts.made(), stop = stop.as_str(), "TCP connect failed, closing client");
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
                Stream::Plain(tcp) => relay::relay(client, tcp, meter).await,
                Stream::Tls(tls) => relay::relay_buffered(client, tls, meter).await,
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

/// Opens a connection to `backend` with the pool's `transport` within `timeout`: the TCP
/// connect, then the PROXY header if the listener sends one, then the TLS handshake if
/// the pool has `tls` (see [`Transport::connect`]). Any failure, a refused certificate
/// included, is a connect failure: no client byte has been sent yet.
async fn open(
    backend: &Backend,
    transport: &Transport,
    origin: &Origin,
    timeout: Duration,
) -> Result<Stream, String> {
    let header = origin
        .send
        .map(|version| proxy_protocol::encode(version, origin.client, origin.local));
    let address = backend.address();
    transport
        .connect(
            backend.addr(),
            address,
            Alpn::None,
            header.as_deref(),
            timeout,
        )
        .await
        .map_err(|e| match e {
            ConnectError::Connect(e) => format!("connect to {address} failed: {e}"),
            ConnectError::Preamble(e) => {
                format!("sending the PROXY header to {address} failed: {e}")
            }
            ConnectError::Tls(e) => format!("TLS handshake with {address} failed: {e}"),
            ConnectError::Timeout => format!("connect to {address} timed out after {timeout:?}"),
        })
}
