//! Tunnels for upgraded connections (WebSocket and any other `Upgrade` protocol).
//!
//! When a backend answers an upgrade request with 101, both sides stop speaking HTTP:
//! weir takes the raw streams from hyper on both sides and copies bytes between them in
//! a task of its own, tracked with the listener's connections so a drain waits for it
//! and a forced shutdown ends it. The backend's in-flight count includes the tunnel for
//! as long as it lives.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use weir_balance::InFlight;

use super::ConnCtx;

/// Joins the client's and the backend's upgraded streams once both are handed over.
pub(crate) fn tunnel(ctx: &ConnCtx, client: OnUpgrade, upstream: OnUpgrade, in_flight: InFlight) {
    let kill = ctx.kill.clone();
    let peer = ctx.peer;
    ctx.tasks.spawn(async move {
        let backend = in_flight.backend().addr();
        let streams = tokio::select! {
            r = async { tokio::try_join!(client, upstream) } => r,
            () = kill.cancelled() => return,
        };
        let (client, upstream) = match streams {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(%peer, %backend, error = %e, "upgrade failed");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match r {
                Ok((tx, rx)) => tracing::debug!(%peer, %backend, to_backend = tx, to_client = rx, "tunnel closed"),
                Err(e) => tracing::debug!(%peer, %backend, error = %e, "tunnel failed"),
            },
            () = kill.cancelled() => tracing::debug!(%peer, %backend, "tunnel closed by shutdown"),
        }
        drop(in_flight);
    });
}
