//! The per-request path: route, pick, read the first body frame, forward, wrap.
//!
//! Runs once per request on every client connection, so it takes no lock and allocates
//! only what hyper's types require: the table is an `ArcSwap` load, the pick works on
//! the snapshot's slices, the backends tried are a stack array. Responses weir writes
//! itself are short `text/plain` bodies naming the cause.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::{ReqBody, ResBody};
use super::error::UpstreamError;
use super::upstream::{self, BodySource, Forwarded, Outgoing};
use super::{headers, upgrade, ConnCtx};
use crate::io::RequestGuard;

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const CLOSE: HeaderValue = HeaderValue::from_static("close");

/// Answers one client request.
pub(crate) async fn handle(
    ctx: Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let guard = ctx.shared.request_started();
    let version = req.version();
    let h1 = version != Version::HTTP_2;
    if h1 {
        let index = ctx.h1_requests.fetch_add(1, Ordering::Relaxed);
        if ctx.shared.is_bad_head(index) {
            tracing::debug!(peer = %ctx.peer, "refused Transfer-Encoding with Content-Length");
            let msg = "request has both Transfer-Encoding and Content-Length";
            return Ok(reply(StatusCode::BAD_REQUEST, msg, guard, h1));
        }
        if let Err(msg) = headers::check_framing(req.headers()) {
            tracing::debug!(peer = %ctx.peer, reason = msg, "refused ambiguous framing");
            return Ok(reply(StatusCode::BAD_REQUEST, msg, guard, h1));
        }
    }
    if req.method() == Method::CONNECT {
        let msg = "CONNECT is not supported";
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, msg, guard, false));
    }

    // A fresh snapshot per request: a reload applies to the next request on a
    // kept-alive connection.
    let (pool, body_timeout) = {
        let table = ctx.table.load();
        let Some(listener) = table.listener(&ctx.listener) else {
            let msg = "listener is shutting down";
            return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, msg, guard, h1));
        };
        let host = headers::request_host(req.uri(), req.headers());
        match listener.route(host, req.uri().path()) {
            Some(pool) => (Arc::clone(pool), listener.timeouts().idle),
            None => {
                let msg = "no route for this host and path";
                return Ok(reply(StatusCode::NOT_FOUND, msg, guard, false));
            }
        }
    };
    let Some(first) = pool.pick() else {
        let err = UpstreamError::NoBackend {
            pool: Arc::clone(pool.name_arc()),
        };
        tracing::debug!(pool = pool.name(), "no backend up");
        return Ok(reply(err.status(), err.body(pool.name()), guard, false));
    };

    let upgrade = headers::is_upgrade(version, req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let source = match read_first_frame(body, body_timeout).await {
        Ok(source) => source,
        Err(FirstFrame::Timeout) => {
            let msg = "request body did not arrive in time";
            return Ok(reply(StatusCode::REQUEST_TIMEOUT, msg, guard, h1));
        }
        Err(FirstFrame::Invalid(e)) => {
            tracing::debug!(peer = %ctx.peer, error = %e, "invalid request body");
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                "invalid request body",
                guard,
                h1,
            ));
        }
    };
    headers::prepare_request(&mut parts, &ctx.client_ip, upgrade);
    let out = Outgoing::new(parts.method, parts.uri, parts.headers, source);

    let Forwarded {
        mut response,
        sender,
        in_flight,
    } = match upstream::forward(&pool, first, out).await {
        Ok(forwarded) => forwarded,
        Err(UpstreamError::Reset { source, .. }) if source.is_user() => {
            // The client's own body failed mid-stream (bad chunk, early close).
            tracing::debug!(peer = %ctx.peer, error = %source, "request body failed while forwarding");
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                "invalid request body",
                guard,
                h1,
            ));
        }
        Err(err) => return Ok(reply(err.status(), err.body(pool.name()), guard, false)),
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            tracing::debug!(
                pool = pool.name(),
                backend = in_flight.backend().address(),
                "101 without an upgrade request"
            );
            let msg = "backend switched protocols unasked";
            return Ok(reply(StatusCode::BAD_GATEWAY, msg, guard, h1));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        ctx.shared.stop_scanning();
        upgrade::tunnel(&ctx, client_upgrade, upstream_upgrade, in_flight);
        let (mut parts, _) = response.into_parts();
        headers::prepare_response(&mut parts.headers, true);
        parts.version = version;
        return Ok(Response::from_parts(parts, ResBody::empty()));
    }

    let reusable = headers::response_keeps_alive(&response);
    let (mut parts, body) = response.into_parts();
    headers::prepare_response(&mut parts.headers, false);
    parts.version = version;
    let body = ResBody::upstream(body, reusable.then_some(sender), in_flight, guard);
    Ok(Response::from_parts(parts, body))
}

enum FirstFrame {
    Timeout,
    Invalid(hyper::Error),
}

/// Reads the body's first frame before any backend is contacted: a malformed chunked
/// body is refused here, and a body that fits in one frame can be replayed on retry.
async fn read_first_frame(mut body: Incoming, limit: Duration) -> Result<BodySource, FirstFrame> {
    if body.is_end_stream() {
        return Ok(BodySource::Empty);
    }
    let frame = match tokio::time::timeout(limit, body.frame()).await {
        Err(_) => return Err(FirstFrame::Timeout),
        Ok(None) => return Ok(BodySource::Empty),
        Ok(Some(Err(e))) => return Err(FirstFrame::Invalid(e)),
        Ok(Some(Ok(frame))) => frame,
    };
    if !body.is_end_stream() {
        return Ok(BodySource::Streaming(Some(ReqBody::Streaming {
            first: Some(frame),
            rest: body,
        })));
    }
    Ok(match frame.into_data() {
        Ok(data) => BodySource::Buffered {
            data,
            trailers: None,
        },
        Err(frame) => BodySource::Buffered {
            data: Bytes::new(),
            trailers: frame.into_trailers().ok(),
        },
    })
}

/// A short text response written by weir. `close` asks an HTTP/1 client to reconnect:
/// after a framing error the rest of its stream cannot be trusted.
fn reply(
    status: StatusCode,
    body: impl Into<Bytes>,
    guard: RequestGuard,
    close: bool,
) -> Response<ResBody> {
    let mut res = Response::new(ResBody::text(body, Some(guard)));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, TEXT);
    if close {
        res.headers_mut().insert(header::CONNECTION, CLOSE);
    }
    res
}
