//! HTTP/1.1 and HTTP/2 client connections (plain with h2c prior knowledge, or over TLS
//! after ALPN), proxied to HTTP/1.1 backends, or HTTP/2 ones for `upstream_protocol: h2`.
//!
//! HTTP/1 clients are served by weir's own engine ([`crate::h1`]), which hands a
//! connection that opens with the HTTP/2 preface to weir's HTTP/2 server
//! ([`crate::h2_server`]; the stream is the socket or its TLS session, see
//! [`crate::tls`]). Each HTTP/2 request goes through [`service::handle`], which loads the
//! current table, routes, picks, and streams; this module holds that path and what both
//! versions share (the connection's context and limits, the request cap, the
//! forwarding rules, hyper's client for `h2` pools).
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
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use weir_balance::SharedTable;

pub(crate) use body::{ReqBody, ResBody};
pub use error::{ResetCause, UpstreamError};
pub(crate) use forward::{forward, Attempt, BodySource, HyperAttempt, Outgoing};
pub(crate) use limits::ConnLimits;
pub(crate) use upstream::connect_error;

use crate::io::ConnShared;
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
    pub(crate) cap: limits::RequestCap,
}

impl ConnCtx {
    /// The context of an HTTP/2 connection the engine's connection `conn` handed over.
    pub(crate) fn new(
        conn: &crate::h1::Ctx,
        shared: &Arc<ConnShared>,
        limits: &ConnLimits,
    ) -> Self {
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
/// [`crate::h2_server::serve`].
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

/// Answers one HTTP/2 client request (from [`crate::h2_server`]).
pub(crate) async fn handle_h2(
    ctx: Arc<ConnCtx>,
    req: http::Request<crate::h2_server::RequestBody>,
) -> http::Response<ResBody> {
    match service::handle(ctx, req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
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
