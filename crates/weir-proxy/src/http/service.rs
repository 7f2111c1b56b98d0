//! The per-request path of HTTP/2 clients (`crate::h2_server`), in named phases: admit, route (and the
//! route's actions: redirect, rewrite, request headers), pick, prepare (the first body
//! frame), forward, respond (response headers); a phase that stops the request returns
//! a `Refusal`, answered in one place.
//!
//! Runs once per request on every HTTP/2 stream, so it takes no lock and allocates
//! only what the `http` types require: the table is an `ArcSwap` load, the pick works on
//! the snapshot's slices, the backends tried are a stack array. Every request gets an
//! `X-Request-Id` ([`super::request_id`]) that goes to the backend and back to the client.
//! Responses weir writes itself are short `text/plain` bodies with the status, a generic
//! reason and the request id; what went wrong in detail (backend address, OS error) is
//! logged with the same id, never sent.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::time::Instant;
use weir_balance::{ListenerTable, RouteTarget};

use super::access::Access;
use super::body::{ReqBody, ResBody};
use super::phases::{admit, forward, pick, police, prepare, respond, route};
use super::request_id::{self, X_REQUEST_ID};
use super::upstream::BodySource;
use super::ConnCtx;
pub(super) use crate::h1::Answer;
use crate::h2_server::RequestBody;
use crate::io::RequestGuard;
use crate::policy::Scope;

const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const CLOSE: HeaderValue = HeaderValue::from_static("close");
pub(super) const BAD_BODY: &str = "invalid request body";

/// Answers one client request, and records it: latency and request counters of its
/// route, and the access-log record when the listener has one.
///
/// The latency (`weir_http_request_duration_seconds`) runs from the request's arrival
/// to its response headers being handed to the connection, retries included: the part weir
/// controls. The access log's `duration_ms` runs until the response body ends.
pub(crate) async fn handle(
    ctx: Arc<ConnCtx>,
    req: Request<RequestBody>,
) -> Result<Response<ResBody>, Infallible> {
    let start = Instant::now();
    let guard = ctx.shared.request_started();
    // HTTP/1 clients have weir's engine (`crate::h1`); only HTTP/2 streams come here,
    // and their connection sends GOAWAY when the cap is reached.
    ctx.cap.count(true);
    let request_id = request_id::of(req.headers());
    // A fresh snapshot per request: a reload applies to the next request on a
    // kept-alive connection.
    let listener = ctx
        .table
        .load()
        .listener(&ctx.listener.load())
        .map(Arc::clone);
    let mut resp = match listener {
        None => {
            let msg = "listener is shutting down";
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                msg,
                &request_id,
                guard,
                false,
            )
        }
        Some(listener) => {
            let access = Access::begin(
                listener.access_log(),
                start,
                ctx.peer,
                listener.name_arc(),
                &request_id,
                &req,
            );
            let mut answer = Answer::new(listener.unrouted_metrics(), start);
            answer.access = access;
            // Boxed: the stream's future is itself boxed by its connection and moved
            // there; unboxed, `proxy`'s states (the engine's exchange, hyper's HTTP/2
            // client handshake) made that about 10 KiB of `memcpy` per request, half of
            // an HTTP/2 request's instructions under hyper. One allocation costs less.
            let proxied = Box::pin(proxy(&ctx, &listener, req, &request_id, guard, &mut answer));
            let mut resp = proxied.await;
            finish(&mut answer, &mut resp);
            resp
        }
    };
    // Replaces a backend's own id: the client gets the one weir logged.
    let mut request_id = request_id;
    // HPACK: a value unique to each response is never worth a place in a dynamic table
    // (weir-h2's encoder has none; h2's inserted one id and evicted another per
    // response). Marked sensitive it goes out as a never-indexed literal, as HAProxy's
    // encoder sends it, and an HPACK-aware peer keeps it out of its tables too.
    request_id.set_sensitive(true);
    resp.headers_mut().insert(X_REQUEST_ID.clone(), request_id);
    Ok(resp)
}

/// Counts an ambiguous HTTP/1 head weir refused with a closing `400`, in
/// `weir_http_protocol_errors_total` (an unparsable one is counted as its connection
/// ends; this one ends without a hyper error).
#[cold]
pub(super) fn protocol_error(listener: &ListenerTable) {
    if let Some(m) = listener.metrics() {
        m.protocol_error();
    }
}

/// Records latency and, if no backend's answer was counted, weir's own answer (the
/// HTTP/1 engine's [`Answer`], which both paths share); hands the access-log record to the
/// response body.
fn finish(answer: &mut Answer<'_>, resp: &mut Response<ResBody>) {
    answer.head_sent(resp.status().as_u16());
    if let Some(record) = answer.access.take() {
        resp.body_mut().set_access(record);
    }
}

/// The phases of one request, in order: admit, route, pick, prepare, forward, respond.
/// A phase that stops the request returns a [`Refusal`](super::phases::Refusal); it
/// is answered here, where
/// the request's guard is still held.
async fn proxy<'t>(
    ctx: &ConnCtx,
    listener: &'t ListenerTable,
    req: Request<RequestBody>,
    id: &HeaderValue,
    guard: RequestGuard,
    answer: &mut Answer<'t>,
) -> Response<ResBody> {
    let (mut parts, body) = req.into_parts();
    let version = parts.version;
    let routed = admit(ctx, &parts)
        .and_then(|()| police(ctx, Scope::Listener(listener), &parts))
        .and_then(|()| route(listener, &parts, answer))
        .and_then(|route| police(ctx, Scope::Route(route), &parts).map(|()| route));
    let route = match routed {
        Ok(route) => route,
        Err(r) => return r.answer(ctx, listener, id, guard, answer),
    };
    // Redirect: answered here, nothing reaches a backend.
    let pool = match route.target() {
        RouteTarget::Pool(pool) => pool,
        RouteTarget::Redirect(r) => return super::actions::redirect(r, &parts, ctx.is_tls, guard),
    };
    // The client's own cookie, before any header edit: the backend it sticks to.
    let headers = parts.headers.iter();
    let presented = crate::sticky::presented(
        pool,
        headers.map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
    );
    // Rewrite, then the request's header edits: the head the backend gets.
    if let Some(rw) = route.rewrite() {
        super::actions::rewrite(rw, &mut parts.uri);
    }
    if let Some(e) = route.request_headers() {
        e.apply(&mut parts.headers);
    }
    let first = match pick(ctx, pool, &parts, id, presented).await {
        Ok(first) => first,
        Err(r) => return r.answer(ctx, listener, id, guard, answer),
    };
    let prepared = match prepare(ctx, listener, &parts, body, answer).await {
        Ok(p) => p,
        Err(r) => return r.answer(ctx, listener, id, guard, answer),
    };
    match forward(ctx, pool, first, &mut parts, prepared, id, answer).await {
        Ok(forwarded) => {
            let edits = route.response_headers();
            let sticky = (presented, ctx.is_tls);
            respond(forwarded, pool, edits, sticky, version, guard, answer)
        }
        Err(r) => r.answer(ctx, listener, id, guard, answer),
    }
}

pub(super) enum FirstFrame {
    Timeout,
    Invalid(crate::h1::BoxError),
}

/// Reads the body's first frame before any backend is contacted: a malformed chunked
/// body is refused here, and a body that fits in one frame can be replayed on retry.
///
/// `counted` (access log on) receives the body bytes that are passed on.
pub(super) async fn read_first_frame(
    mut body: RequestBody,
    limit: Duration,
    counted: Option<Arc<AtomicU64>>,
) -> Result<BodySource, FirstFrame> {
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
            rest: weir_upstream::ClientBody(Box::pin(body)),
            counted,
        })));
    }
    if let (Some(counter), Some(data)) = (counted, frame.data_ref()) {
        // Buffered: counted once here, however many attempts replay it.
        counter.fetch_add(data.len() as u64, Ordering::Relaxed);
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

/// A short text response written by weir: `{status}: {reason}` and the request id, so a
/// client's error report leads to the log line with the detail. `close` asks an HTTP/1
/// client to reconnect: after a framing error the rest of its stream cannot be trusted.
pub(super) fn reply(
    status: StatusCode,
    reason: impl std::fmt::Display,
    id: &HeaderValue,
    guard: RequestGuard,
    close: bool,
) -> Response<ResBody> {
    let body = format!("{status}: {reason}\nrequest id: {}\n", log_id(id));
    let mut res = Response::new(ResBody::text(body, Some(guard)));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, TEXT);
    if close {
        res.headers_mut().insert(header::CONNECTION, CLOSE);
    }
    res
}

/// The id as text: always valid ASCII (checked, or made by weir).
pub(super) fn log_id(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or("-")
}
