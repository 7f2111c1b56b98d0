//! Upgraded connections (WebSocket and any other `Upgrade` protocol) after the
//! backend's 101: the TCP relay moves the bytes (spliced when neither side has TLS),
//! in the client connection's own task, so the tunnel keeps its listener's
//! `max_connections` permit, counts as the backend's in-flight request, closes after
//! `timeouts.idle` without traffic, and ends with a drain's deadline or a forced
//! shutdown like any connection.

use std::sync::Arc;
use std::time::Duration;

use weir_balance::InFlight;

use super::conn::Stream;
use super::server::{ClientStream, Ctx};
use crate::io::ConnShared;
use crate::relay::{self, Meter};

/// A switched connection waiting to be relayed.
#[derive(Debug)]
pub(crate) struct Tunnel {
    upstream: Stream,
    in_flight: InFlight,
    idle: Duration,
}

impl Tunnel {
    pub(crate) fn new(upstream: Stream, in_flight: InFlight, idle: Duration) -> Self {
        Tunnel {
            upstream,
            in_flight,
            idle,
        }
    }

    /// Relays until both sides close, the tunnel idles out, or the listener is killed.
    pub(crate) async fn run<S: ClientStream>(self, client: S, ctx: &Ctx) {
        let shared = Arc::new(ConnShared::new());
        let meter = Meter {
            shared: &shared,
            bytes: None,
        };
        let backend = self.in_flight.backend().addr();
        let peer = ctx.peer;
        let relayed = async {
            match self.upstream {
                Stream::Plain(tcp) => relay::relay(client, tcp, meter).await,
                Stream::Tls(tls) => relay::relay_buffered(client, *tls, meter).await,
            }
        };
        tokio::select! {
            r = relayed => match r {
                Ok(t) => tracing::debug!(%peer, %backend, to_backend = t.from_client, to_client = t.to_client, "tunnel closed"),
                Err(e) => tracing::debug!(%peer, %backend, error = %e, "tunnel failed"),
            },
            () = shared.idle_expired(self.idle) => tracing::debug!(%peer, %backend, "tunnel idle, closed"),
            () = ctx.scope.kill.cancelled() => tracing::debug!(%peer, %backend, "tunnel closed by shutdown"),
        }
        drop(self.in_flight);
    }
}
