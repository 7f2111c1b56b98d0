//! HTTP/1.1 and HTTP/2 client connections (plain with h2c prior knowledge, or over TLS
//! after ALPN), proxied to HTTP/1.1 backends, or HTTP/2 ones for `upstream_protocol: h2`.
//!
//! HTTP/1 clients are served by weir's own engine ([`crate::h1`]), which hands a
//! connection that opens with the HTTP/2 preface to hyper's HTTP/2 server (the stream is
//! the socket or its TLS session, see [`crate::tls`]). Each request goes through [`service::handle`], which loads the
//! current table, routes, picks, and streams. The connection task also enforces the
//! client-side limits: header size (431) and header read time come from hyper's h1
//! settings, idle time from a watchdog over the socket's activity counter, and a drain
//! turns into hyper's graceful shutdown (`Connection: close` on HTTP/1.1, GOAWAY on h2).
//!
//! ```text
//! service.rs   one request: its phases run in order, a refusal answered
//! phases.rs    the phases: admit, route, pick, prepare (first body frame), forward, respond
//! upstream.rs  hyper's per-backend HTTP/2 state, connect, handshakes
//! forward.rs   attempts and retries (both engines), hyper's HTTP/2 attempt
//! sender.rs    requests rewritten for shared HTTP/2 backend connections
//! headers.rs   hop-by-hop, X-Forwarded-*, framing checks
//! host.rs      which host a request is for; the Host rules (400s)
//! request_id.rs X-Request-Id: kept or made
//! body.rs      request/response bodies and what they release at the end
//! streams.rs   an HTTP/2 connection's streams, run in the connection's own task
//! access.rs    the access log (`weir::access`), one event per request when enabled
//! error.rs     UpstreamError and the texts clients see
//! ```

pub(crate) mod access;
pub(crate) mod actions;
mod body;
mod error;
mod forward;
pub(crate) mod headers;
pub(crate) mod host;
mod limits;
mod phases;
pub(crate) mod request_id;
mod sender;
mod service;
mod streams;
mod upstream;

use std::future::Future as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use weir_balance::SharedTable;

pub(crate) use body::ReqBody;
pub use error::{ResetCause, UpstreamError};
pub(crate) use forward::{forward, Attempt, BodySource, HyperAttempt, Outgoing};
pub(crate) use limits::ConnLimits;
pub(crate) use upstream::connect_error;

use self::streams::{StreamExec, Streams};
use crate::io::{ClientIo, ConnShared};
use crate::listener::{ConnScope, ListenerName};

/// Largest HTTP/1 request head accepted (hyper's read buffer): beyond it the client gets
/// 431. HTTP/2's is the listener's `http2.max_header_list_size`.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What every request of one client connection needs.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    table: SharedTable,
    /// Read per request: a reload may rename the listener.
    listener: ListenerName,
    peer: SocketAddr,
    /// The peer's IP, formatted once for `X-Forwarded-For`.
    client_ip: HeaderValue,
    /// The client came over TLS: `X-Forwarded-Proto: https`.
    is_tls: bool,
    shared: Arc<ConnShared>,
    /// `max_requests_per_connection`.
    cap: limits::RequestCap,
}

impl ConnCtx {
    /// The context of an HTTP/2 connection the engine's connection `conn` handed over.
    fn new(conn: &crate::h1::Ctx, shared: &Arc<ConnShared>, limits: &ConnLimits) -> Self {
        let client_ip = HeaderValue::from_str(&conn.client_ip)
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ConnCtx {
            table: Arc::clone(&conn.table),
            listener: Arc::clone(&conn.scope.name),
            peer: conn.peer,
            client_ip,
            is_tls: conn.is_tls,
            shared: Arc::clone(shared),
            cap: limits::RequestCap::new(limits.max_requests),
        }
    }
}

/// Serves one HTTP client connection until it closes, drains, idles out or is killed:
/// HTTP/1 on weir's own engine ([`crate::h1`]), which hands HTTP/2 clients to
/// [`serve_hyper`].
pub(crate) async fn serve<S: crate::h1::ClientStream>(
    stream: S,
    is_tls: bool,
    peer: SocketAddr,
    limits: ConnLimits,
    table: SharedTable,
    scope: &ConnScope,
) {
    crate::h1::serve(stream, is_tls, peer, limits, table, scope).await;
}

/// Serves an HTTP/2 client connection with hyper (its preface is among the bytes the
/// stream yields first).
pub(crate) async fn serve_hyper<S>(stream: S, conn: &crate::h1::Ctx)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let scope = &conn.scope;
    let limits = conn.limits.clone();
    let shared = Arc::new(ConnShared::new());
    let io = ClientIo::new(stream, Arc::clone(&shared), true);
    let ctx = Arc::new(ConnCtx::new(conn, &shared, &limits));

    let exec = StreamExec::default();
    let mut streams = Streams::new(&exec);
    let builder = limits.builder(exec);
    let timeouts = limits.timeouts;
    let cap_ctx = Arc::clone(&ctx);
    let svc = service_fn(move |req| service::handle(Arc::clone(&ctx), req));
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let killed = scope.kill.cancelled();
    tokio::pin!(killed);
    let drained = scope.drain.cancelled();
    tokio::pin!(drained);
    let wound = scope.winding_down.cancelled();
    tokio::pin!(wound);
    let idle = shared.idle_expired(timeouts.idle);
    tokio::pin!(idle);
    let capped = cap_ctx.cap.reached();
    tokio::pin!(capped);
    let mut closing = false;
    // Winding down (the shutdown grace): GOAWAY once the connection has served a
    // request, so one accepted during the grace is served before it is sent away.
    let mut winding = false;
    let first = cap_ctx.cap.first_served();
    tokio::pin!(first);
    loop {
        // The order of the `select!` this replaces (kill, the connection, then the
        // reasons to close), with the connection's streams polled before hyper's
        // connection, so the frames they queued go out in the same poll.
        let event = std::future::poll_fn(|cx| {
            if killed.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Killed);
            }
            loop {
                streams.poll_run(cx);
                if let Poll::Ready(res) = conn.as_mut().poll(cx) {
                    return Poll::Ready(Event::Ended(res));
                }
                // The connection took new streams: their first poll sends their
                // requests now, not at the next wake-up.
                if !streams.adopt() {
                    break;
                }
            }
            if !closing {
                if drained.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Drain);
                }
                // The shutdown grace: the client's next connection goes wherever
                // traffic goes now (a moved VIP), after this one has served a request.
                if !winding && wound.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::WindingDown);
                }
                if winding && first.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Wound);
                }
                if capped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Capped);
                }
                if idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Idle);
                }
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Killed | Event::Ended(_) => {
                ended(event, &limits);
                break;
            }
            Event::WindingDown => {
                winding = true;
                continue;
            }
            Event::Drain => {}
            Event::Wound => tracing::debug!("winding down, sending GOAWAY"),
            Event::Capped => {
                tracing::debug!("max_requests_per_connection reached, sending GOAWAY");
            }
            Event::Idle => {
                tracing::debug!(idle = ?timeouts.idle, "closing idle connection");
            }
        }
        closing = true;
        conn.as_mut().graceful_shutdown();
    }
    streams.detach();
}

/// Logs how a connection ended, and counts a client's protocol error.
fn ended(event: Event, limits: &ConnLimits) {
    match event {
        Event::Killed => tracing::debug!("connection closed by force"),
        Event::Ended(Ok(())) => tracing::debug!("connection closed"),
        Event::Ended(Err(e)) => {
            tracing::debug!(error = %e, "connection ended with an error");
            if let (true, Some(m)) = (limits::is_protocol_error(&e), &limits.metrics) {
                m.protocol_error();
            }
        }
        _ => {}
    }
}

/// Why [`serve_hyper`]'s loop woke.
enum Event {
    Killed,
    Ended(Result<(), hyper::Error>),
    Drain,
    /// The shutdown grace began: GOAWAY after the first request served.
    WindingDown,
    /// Winding down and a request was served.
    Wound,
    Capped,
    Idle,
}

/// A header map with `name` once for each of `values`, in order (for tests).
#[cfg(test)]
pub(crate) fn repeated(name: http::HeaderName, values: &[&str]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for v in values {
        h.append(
            name.clone(),
            http::HeaderValue::from_str(v).expect("test header"),
        );
    }
    h
}
