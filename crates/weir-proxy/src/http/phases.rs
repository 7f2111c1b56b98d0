//! The phases of one HTTP/2 client's request, in the order `service.rs::proxy` runs
//! them: admit, route, pick, prepare, forward, respond.
//!
//! Each phase decides and does not answer: where it stops the request it returns a
//! [`Refusal`], which `proxy` answers while it still holds the request's guard. The
//! checks run in the order weir's HTTP/1 engine applies them (`h1/phases.rs`), so both
//! give the same answers.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use hyper::body::Incoming;
use weir_balance::{Backend, InFlight, ListenerTable, Route};

use super::body::ResBody;
use super::error::UpstreamError;
use super::service::{
    log_id, protocol_error, read_first_frame, reply, Answer, FirstFrame, BAD_BODY,
};
use super::upstream::{self, BodySource, HyperAttempt, Outgoing};
use super::{headers, host, ConnCtx};
use crate::io::RequestGuard;
use crate::policy::Scope;

/// Why weir answers a request itself: what each phase decided, turned into the
/// answer by [`Refusal::answer`]. Reasons are `&'static` text; an upstream error is
/// the one the attempts already made.
pub(super) enum Refusal<'t> {
    /// A short text answer; `close` ends an HTTP/1 client's connection after it.
    Text {
        status: StatusCode,
        reason: &'static str,
        close: bool,
    },
    /// An ambiguous HTTP/1 framing: 400, closing, and counted as a protocol error.
    Framing(&'static str),
    /// No backend of the pool is up: 503, and the access log records the error.
    NoBackend(&'t weir_balance::Pool),
    /// Every backend up is at its `max_in_flight` and the queue refused the request:
    /// 503, answered like `NoBackend`.
    Busy(&'t weir_balance::Pool, UpstreamError),
    /// The last attempt failed (see [`failed`]).
    Failed(&'t weir_balance::Pool, UpstreamError),
    /// A rate limit refused the request: 429 with `Retry-After` (seconds).
    Limited(u64),
}

impl Refusal<'_> {
    pub(super) fn answer(
        self,
        ctx: &ConnCtx,
        listener: &ListenerTable,
        id: &HeaderValue,
        guard: RequestGuard,
        answer: &mut Answer<'_>,
    ) -> Response<ResBody> {
        match self {
            Refusal::Text {
                status,
                reason,
                close,
            } => reply(status, reason, id, guard, close),
            Refusal::Framing(msg) => {
                protocol_error(listener);
                reply(StatusCode::BAD_REQUEST, msg, id, guard, true)
            }
            Refusal::NoBackend(pool) => {
                let err = UpstreamError::NoBackend {
                    pool: Arc::clone(pool.name_arc()),
                };
                if let Some(a) = answer.access.as_mut() {
                    a.error = Some(err.to_string());
                }
                reply(err.status(), err.reason(pool.name()), id, guard, false)
            }
            Refusal::Failed(pool, err) => failed(ctx, pool, id, guard, answer, err),
            Refusal::Busy(pool, err) => {
                if let Some(a) = answer.access.as_mut() {
                    a.error = Some(err.to_string());
                }
                reply(err.status(), err.reason(pool.name()), id, guard, false)
            }
            Refusal::Limited(retry_after) => {
                let status = StatusCode::TOO_MANY_REQUESTS;
                let mut resp = reply(status, crate::policy::LIMITED, id, guard, false);
                resp.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
                resp
            }
        }
    }
}

/// Admit: an HTTP/1 head's framing, CONNECT, the `Host` rules and the target's form.
pub(super) fn admit(ctx: &ConnCtx, req: &Parts) -> Result<(), Refusal<'static>> {
    let version = req.version;
    let h1 = version != Version::HTTP_2;
    if h1 {
        if let Err(msg) = headers::check_framing(&req.headers) {
            tracing::debug!(peer = %ctx.peer, reason = msg, "refused ambiguous framing");
            return Err(Refusal::Framing(msg));
        }
    }
    if req.method == Method::CONNECT {
        // weir is a reverse proxy and tunnels nothing on request. 501, not 405: no
        // resource of weir's supports CONNECT, and 405 would owe an `Allow` list. An
        // HTTP/1 connection is closed: the client may already be sending tunnel bytes,
        // which must never be read as a next request.
        return Err(Refusal::Text {
            status: StatusCode::NOT_IMPLEMENTED,
            reason: "CONNECT is not supported",
            close: h1,
        });
    }
    let checked = host::check(version, &req.uri, &req.headers)
        .and_then(|()| host::check_asterisk(&req.method, &req.uri));
    if let Err(msg) = checked {
        tracing::debug!(peer = %ctx.peer, reason = msg, "refused request host");
        return Err(Refusal::Text {
            status: StatusCode::BAD_REQUEST,
            reason: msg,
            close: h1,
        });
    }
    Ok(())
}

/// Route: the listener's first route for the host and path; its metrics count the
/// request from here on.
pub(super) fn route<'t>(
    listener: &'t ListenerTable,
    req: &Parts,
    answer: &mut Answer<'t>,
) -> Result<&'t Route, Refusal<'static>> {
    let host = host::request_host(&req.uri, &req.headers);
    let facts = super::actions::PartsFacts(req);
    let Some(route) = listener.find_route(host, req.uri.path(), &facts) else {
        return Err(Refusal::Text {
            status: StatusCode::NOT_FOUND,
            reason: "no route for this host and path",
            close: false,
        });
    };
    answer.routed(route);
    Ok(route)
}

/// The listener's rate limit (before routing) or the route's access list and rate
/// limit (`crate::policy`).
pub(super) fn police(ctx: &ConnCtx, scope: Scope<'_>, req: &Parts) -> Result<(), Refusal<'static>> {
    let header = |name: &str| req.headers.get(name).map(HeaderValue::as_bytes);
    crate::policy::police(scope, ctx.peer.ip(), header).map_err(refusal)
}

fn refusal(verdict: crate::policy::Verdict) -> Refusal<'static> {
    match verdict {
        crate::policy::Verdict::Limited(retry_after) => Refusal::Limited(retry_after),
        crate::policy::Verdict::Denied => Refusal::Text {
            status: StatusCode::FORBIDDEN,
            reason: crate::policy::DENIED,
            close: false,
        },
    }
}

/// Pick: the first attempt's backend and its in-flight slot (the retries pick their
/// own), by the request's affinity key in a consistent-hash pool and the backend its
/// sticky cookie names (`presented`). Over every backend's `max_in_flight` the request
/// waits in the pool's queue; a client that goes away meanwhile drops this future
/// (hyper does), which ends the wait.
pub(super) async fn pick<'t>(
    ctx: &ConnCtx,
    pool: &'t weir_balance::Pool,
    parts: &Parts,
    id: &HeaderValue,
    presented: weir_balance::Presented,
) -> Result<weir_balance::Reserved<'t>, Refusal<'t>> {
    let key = pool.hash_on().and_then(|hash_on| {
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
        let path = Some(parts.uri.path().as_bytes());
        crate::affinity::key(hash_on, ctx.peer.ip(), path, headers)
    });
    let gone = std::future::pending();
    // Two calls, not one that branches: a pool without a cookie pays no extra future.
    let reserved = if pool.sticky().is_some() {
        pool.reserve_sticky(presented, key, gone).await
    } else {
        pool.reserve_keyed(key, gone).await
    };
    reserved.map_err(|why| {
        tracing::debug!(
            pool = pool.name(),
            request_id = log_id(id),
            why = why.as_str(),
            "no backend free"
        );
        match UpstreamError::refused(pool, why) {
            Some(UpstreamError::NoBackend { .. }) | None => Refusal::NoBackend(pool),
            Some(err) => Refusal::Busy(pool, err),
        }
    })
}

/// A request's body ready for its attempts (its first frame read); the head stays in
/// the caller's `Parts`, borrowed by each phase: moved from phase to phase, it was
/// copied about a dozen times per request.
pub(super) struct Prepared {
    source: BodySource,
    upgrade: bool,
    /// The listener's `timeouts.idle`: how long a streamed upload may stall once the
    /// backend has answered.
    idle: std::time::Duration,
}

/// Prepare: the body's first frame, read before any backend is contacted.
pub(super) async fn prepare(
    ctx: &ConnCtx,
    listener: &ListenerTable,
    parts: &Parts,
    body: crate::h2_server::RequestBody,
    answer: &Answer<'_>,
) -> Result<Prepared, Refusal<'static>> {
    let h1 = parts.version != Version::HTTP_2;
    let body_timeout = listener.timeouts().idle;
    let upgrade = headers::is_upgrade(parts.version, &parts.headers);
    let counted = answer.access.as_ref().map(|a| Arc::clone(&a.bytes_in));
    match read_first_frame(body, body_timeout, counted).await {
        Ok(source) => Ok(Prepared {
            source,
            upgrade,
            idle: body_timeout,
        }),
        Err(FirstFrame::Timeout) => Err(Refusal::Text {
            status: StatusCode::REQUEST_TIMEOUT,
            reason: "request body did not arrive in time",
            close: h1,
        }),
        Err(FirstFrame::Invalid(e)) => {
            tracing::debug!(peer = %ctx.peer, error = %e, "invalid request body");
            Err(Refusal::Text {
                status: StatusCode::BAD_REQUEST,
                reason: BAD_BODY,
                close: h1,
            })
        }
    }
}

/// A backend's answer, from weir's HTTP/1 engine or hyper's HTTP/2 client.
pub(super) enum Forwarded {
    H1(Response<crate::h1::H1Body>, Arc<Backend>),
    Upstream(Response<Incoming>, InFlight),
}

/// Forward: the head written for the backend and the attempts, retried where
/// [`upstream::forward`]'s rules allow, with weir's own HTTP/1 engine or, for
/// `upstream_protocol: h2` pools, hyper's client. Either way the retries are recorded,
/// a failure is the pool's refusal and a 101 nobody asked for is refused.
pub(super) async fn forward<'t>(
    ctx: &ConnCtx,
    pool: &'t Arc<weir_balance::Pool>,
    first: weir_balance::Reserved<'_>,
    parts: &mut Parts,
    prepared: Prepared,
    id: &HeaderValue,
    answer: &mut Answer<'_>,
) -> Result<Forwarded, Refusal<'t>> {
    let h1 = parts.version != Version::HTTP_2;
    let mut retries = 0;
    let forwarded = if crate::h1::pool_is_h2(pool) {
        let Prepared {
            source, upgrade, ..
        } = prepared;
        headers::prepare_request(parts, &ctx.client_ip, id, upgrade, ctx.is_tls);
        forward_hyper(pool, first, parts, source, &mut retries).await
    } else {
        forward_engine(ctx, pool, first, parts, prepared, id, &mut retries).await
    };
    if let Some(a) = answer.access.as_mut() {
        a.retries = retries;
    }
    let forwarded = forwarded.map_err(|err| Refusal::Failed(pool, err))?;
    match &forwarded {
        Forwarded::H1(response, _) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            Err(unasked_101(h1))
        }
        Forwarded::Upstream(response, in_flight)
            if response.status() == StatusCode::SWITCHING_PROTOCOLS =>
        {
            // HTTP/2 has no Upgrade (RFC 9113 §8.6), and weir forwards none from an HTTP/2
            // client: a 101 was not asked for.
            tracing::debug!(
                pool = pool.name(),
                backend = in_flight.backend().address(),
                "101 without an upgrade request"
            );
            Err(unasked_101(h1))
        }
        _ => Ok(forwarded),
    }
}

/// [`forward`] to an HTTP/1 pool, by weir's own engine (see `crate::h1::from_h2`).
async fn forward_engine(
    ctx: &ConnCtx,
    pool: &Arc<weir_balance::Pool>,
    first: weir_balance::Reserved<'_>,
    parts: &mut Parts,
    prepared: Prepared,
    id: &HeaderValue,
    retries: &mut u32,
) -> Result<Forwarded, UpstreamError> {
    let Prepared {
        source,
        upgrade,
        idle,
    } = prepared;
    let direct = headers::writes_directly(parts).then_some(headers::Forwarding {
        client_ip: &ctx.client_ip,
        request_id: id,
        is_tls: ctx.is_tls,
    });
    if direct.is_none() {
        headers::prepare_request(parts, &ctx.client_ip, id, upgrade, ctx.is_tls);
    }
    let forwarded = match source {
        BodySource::Streaming(Some(body)) => {
            let mut wire = Vec::with_capacity(1024);
            let framing = crate::h1::wire_streamed(parts, direct, &mut wire);
            let upload = crate::h1::FrameUpload::new(body, framing, idle);
            crate::h1::forward_streamed(pool, first, &wire, &parts.method, upload, retries).await
        }
        // Trailers alone after an empty body are dropped, as hyper's client did (it
        // sent them only on a chunked body, and weir strips `Trailer`).
        source => {
            let data = match source {
                BodySource::Buffered { data, .. } => data,
                _ => Bytes::new(),
            };
            let mut wire = Vec::with_capacity(1024 + data.len());
            crate::h1::wire(parts, direct, &data, &mut wire);
            crate::h1::forward_buffered(pool, first, &wire, &parts.method, retries).await
        }
    };
    forwarded.map(|(response, backend)| Forwarded::H1(response, backend))
}

/// [`forward`] to an `upstream_protocol: h2` pool, by hyper's client; `parts` are
/// prepared for forwarding already (hyper's request takes their fields).
async fn forward_hyper(
    pool: &Arc<weir_balance::Pool>,
    first: weir_balance::Reserved<'_>,
    parts: &mut Parts,
    source: BodySource,
    retries: &mut u32,
) -> Result<Forwarded, UpstreamError> {
    let mut out = HyperAttempt::new(Outgoing::new(
        std::mem::take(&mut parts.method),
        std::mem::take(&mut parts.uri),
        std::mem::take(&mut parts.headers),
        source,
    ));
    let forwarded = upstream::forward(pool, first, &mut out, retries).await;
    forwarded.map(|(response, in_flight)| Forwarded::Upstream(response, in_flight))
}

/// A 101 the request did not ask for: 502.
pub(super) fn unasked_101(h1: bool) -> Refusal<'static> {
    Refusal::Text {
        status: StatusCode::BAD_GATEWAY,
        reason: "backend switched protocols unasked",
        close: h1,
    }
}

/// Respond: the backend's answer counted and sent on in the client's version, with
/// the route's header edits and, for a sticky pool, the cookie naming the backend that
/// answered (`sticky`: what the request's cookie named, and whether the client is on
/// TLS).
pub(super) fn respond(
    forwarded: Forwarded,
    pool: &Arc<weir_balance::Pool>,
    edits: Option<&weir_balance::HeaderEdits>,
    sticky: (weir_balance::Presented, bool),
    version: Version,
    guard: RequestGuard,
    answer: &mut Answer<'_>,
) -> Response<ResBody> {
    match forwarded {
        Forwarded::H1(mut response, backend) => {
            answer.backend_answered(&backend, response.status().as_u16());
            *response.version_mut() = version;
            if let Some(e) = edits {
                e.apply(response.headers_mut());
            }
            if let Some(c) = pool.sticky_answer(sticky.0, &backend, sticky.1) {
                response
                    .headers_mut()
                    .append(http::header::SET_COOKIE, c.clone());
            }
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, ResBody::h1(body, guard))
        }
        Forwarded::Upstream(response, in_flight) => {
            answer.backend_answered(in_flight.backend(), response.status().as_u16());
            let (mut parts, body) = response.into_parts();
            headers::prepare_response(&mut parts.headers, false);
            if let Some(e) = edits {
                e.apply(&mut parts.headers);
            }
            let served = in_flight.backend();
            if let Some(c) = pool.sticky_answer(sticky.0, served, sticky.1) {
                parts.headers.append(http::header::SET_COOKIE, c.clone());
            }
            parts.version = version;
            let pool = Arc::clone(pool);
            let body = ResBody::upstream(body, in_flight, pool, guard);
            Response::from_parts(parts, body)
        }
    }
}

/// Answers a request no backend answered: the client's own body failing is its 400,
/// anything else the error's status with a generic reason; the detail goes to the log
/// and the access log under the request id.
pub(super) fn failed(
    ctx: &ConnCtx,
    pool: &weir_balance::Pool,
    id: &HeaderValue,
    guard: RequestGuard,
    answer: &mut Answer<'_>,
    err: UpstreamError,
) -> Response<ResBody> {
    if let UpstreamError::Reset { source, .. } = &err {
        if source.is_user() {
            // The client's own body failed mid-stream (bad chunk, early close).
            tracing::debug!(peer = %ctx.peer, error = %source, "request body failed while forwarding");
            return reply(StatusCode::BAD_REQUEST, BAD_BODY, id, guard, false);
        }
    }
    super::access::upstream_failed(&err, log_id(id), pool.name(), answer.access.as_deref_mut());
    reply(err.status(), err.reason(pool.name()), id, guard, false)
}
