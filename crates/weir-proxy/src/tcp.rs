//! TCP listeners: each client connection relayed to one backend of the listener's pool.
//!
//! The backend is picked once per connection; a connect failure (refused, timeout) is
//! retried on another backend, which is safe because no byte has been relayed yet. The
//! backend's in-flight count includes the connection for its whole life, so
//! `least_connections` balances open connections. Half-closes propagate (a client's
//! EOF becomes a `shutdown(Write)` towards the backend and back). With nothing up, the
//! client connection is closed at once.

use std::sync::Arc;

use tokio::net::TcpStream;
use weir_balance::{Backend, ListenerTable, MAX_ATTEMPTS};

use crate::io::{ClientIo, ConnShared};
use crate::listener::ConnScope;

/// Relays one client connection until either side closes, it idles out, or is killed.
pub(crate) async fn serve(client: TcpStream, listener: &ListenerTable, scope: &ConnScope) {
    let Some(pool) = listener.tcp_pool().map(Arc::clone) else {
        tracing::warn!(listener = listener.name(), "TCP listener without a pool");
        return;
    };
    let Some(first) = pool.pick() else {
        tracing::debug!(pool = pool.name(), "no backend up, closing client");
        return;
    };
    let settings = *pool.settings();
    let max_attempts = usize::try_from(settings.retries)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(MAX_ATTEMPTS);
    let mut tried: [&Arc<Backend>; MAX_ATTEMPTS] = [first; MAX_ATTEMPTS];
    let mut attempts = 0;
    let mut backend = first;
    let (upstream, in_flight) = loop {
        if let Some(slot) = tried.get_mut(attempts) {
            *slot = backend;
        }
        attempts += 1;
        let in_flight = backend.start_request();
        let connect = TcpStream::connect(backend.addr());
        let error = match tokio::time::timeout(settings.connect_timeout, connect).await {
            Ok(Ok(stream)) => break (stream, in_flight),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("timed out after {:?}", settings.connect_timeout),
        };
        drop(in_flight);
        let next = if attempts < max_attempts {
            pool.pick_excluding(tried.get(..attempts).unwrap_or_default())
        } else {
            None
        };
        match next {
            Some(b) => {
                tracing::debug!(pool = pool.name(), backend = backend.address(), kind = "connect",
                    %error, next = b.address(), "TCP connect failed, retrying");
                backend = b;
            }
            None => {
                tracing::warn!(pool = pool.name(), backend = backend.address(), kind = "connect",
                    %error, attempts, "TCP connect failed, closing client");
                return;
            }
        }
    };
    if let Err(e) = upstream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY failed on backend socket");
    }
    let backend_addr = backend.addr();
    let shared = Arc::new(ConnShared::new());
    let mut client = ClientIo::new(client, Arc::clone(&shared), false);
    let mut upstream = upstream;
    let idle = listener.timeouts().idle;
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match r {
            Ok((tx, rx)) => tracing::debug!(backend = %backend_addr, to_backend = tx, to_client = rx, "TCP stream closed"),
            Err(e) => tracing::debug!(backend = %backend_addr, error = %e, "TCP stream failed"),
        },
        () = shared.idle_expired(idle) => tracing::debug!(backend = %backend_addr, ?idle, "TCP stream idle, closing"),
        () = scope.kill.cancelled() => tracing::debug!(backend = %backend_addr, "TCP stream closed by force"),
    }
    drop(in_flight);
}
