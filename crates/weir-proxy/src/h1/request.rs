//! One request on a client connection: admit → route → pick → body → forward →
//! respond, each early answer a short text of weir's own.
//!
//! The checks run in the order the hyper path applies them, so both give the same
//! answers: the head's framing (in [`weir_h1`]), CONNECT (501), the target's form and
//! the `Host` rules (400), the route (404), a backend (503). A body held whole after its
//! head (it fits in the read buffer that brought it) makes the request replayable on
//! another backend; a longer one is streamed during the first attempt that reaches a
//! backend. A refused or broken head closes the connection; so does any answer given
//! before a request body was read, since what follows cannot be told from that body.

use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use tokio::time::Instant;
use weir_balance::{Backend, InFlight, ListenerTable, Route};
use weir_h1::{Framing, Method, Parsed, RequestHead, ResponseHead, Version};
use weir_telemetry::{RouteMetrics, UpstreamErrorKind};

use super::body::{self, pump, Dechunk, PumpError, Sink, Source};
use super::buf::Buf;
use super::conn;
use super::exchange::{Answered, Exchange, Streamed};
use super::server::{ClientStream, Ctx};
use super::upload::{Rest, Upload};
use super::write::{self, Forwarding, Out};
use crate::http::access::Access;
use crate::http::{forward, host, request_id};
use crate::outlier;

pub(crate) const BAD_BODY: &str = "invalid request body";
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the connection does after a request.
#[derive(Debug)]
pub(crate) enum Next {
    KeepAlive,
    Close,
    /// The client sent the HTTP/2 preface: hyper takes the connection.
    Http2,
    /// The backend switched protocols: relay bytes from now on.
    Upgrade(Box<super::tunnel::Tunnel>),
}

/// A request's reusable state, lent per request like the read buffer.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) out: Vec<u8>,
    pub(crate) spare: Vec<u8>,
    pub(crate) req: RequestHead,
    resp: ResponseHead,
}

thread_local! {
    // Boxed: a request moves its scratch by pointer, not by its size.
    #[allow(clippy::vec_box)]
    static SCRATCH: std::cell::RefCell<Vec<Box<Scratch>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    pub(crate) fn take() -> Box<Scratch> {
        SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_else(|| {
            Box::new(Scratch {
                out: Vec::with_capacity(super::buf::BUF_SIZE + 4096),
                ..Scratch::default()
            })
        })
    }

    pub(crate) fn give_back(self: Box<Self>) {
        if self.out.capacity() > 4 * super::buf::BUF_SIZE {
            return;
        }
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < 16 {
                s.push(self);
            }
        });
    }
}

/// The request's `X-Request-Id`: the client's single valid one, else a fresh one.
pub(crate) struct RequestId {
    bytes: [u8; 128],
    len: usize,
}

impl RequestId {
    fn of(head: &RequestHead, src: &[u8]) -> RequestId {
        let mut ids = head
            .headers
            .iter()
            .filter(|h| h.kind == weir_h1::HeaderKind::XRequestId);
        let mut id = RequestId {
            bytes: [0; 128],
            len: 0,
        };
        if let (Some(h), None) = (ids.next(), ids.next()) {
            let v = h.value.of(src);
            if request_id::is_valid(v) {
                if let Some(slot) = id.bytes.get_mut(..v.len()) {
                    slot.copy_from_slice(v);
                    id.len = v.len();
                    return id;
                }
            }
        }
        id.fresh();
        id
    }

    fn fresh(&mut self) {
        let made = request_id::fresh();
        if let Some(slot) = self.bytes.get_mut(..made.len()) {
            slot.copy_from_slice(&made);
        }
        self.len = made.len();
    }

    fn new_fresh() -> RequestId {
        let mut id = RequestId {
            bytes: [0; 128],
            len: 0,
        };
        id.fresh();
        id
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("-")
    }
}

/// How a request was answered, for its metrics and access-log record.
pub(crate) struct Answer<'t> {
    route: Option<&'t RouteMetrics>,
    counted: bool,
    pub(crate) access: Option<Box<Access>>,
    start: Instant,
    finished: bool,
}

impl<'t> Answer<'t> {
    fn routed(&mut self, route: &'t Route) {
        self.route = route.metrics();
        if let Some(a) = self.access.as_mut() {
            a.pool = Some(Arc::clone(route.pool().name_arc()));
        }
    }

    pub(crate) fn backend_answered(&mut self, backend: &Backend, status: u16) {
        if let (Some(route), Some(m)) = (self.route, backend.metrics()) {
            route.count(m, status);
            self.counted = true;
        }
        if let Some(a) = self.access.as_mut() {
            a.backend = Some(backend.address().to_owned());
        }
    }

    /// The response head is handed over: latency, and weir's own answer if no backend's
    /// was counted.
    pub(crate) fn head_sent(&mut self, status: u16) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(route) = self.route {
            route.observe_request(self.start.elapsed());
            if !self.counted {
                route.count_without_backend(status);
            }
        }
        if let Some(a) = self.access.as_mut() {
            a.status = status;
        }
    }
}

/// Reads one request head from `buf` (reading more from `stream`) and answers it.
pub(crate) async fn handle<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    served: u64,
    wait: std::time::Duration,
) -> Next {
    let start = Instant::now();
    if let Some(next) = read_head(stream, ctx, buf, sc, served, wait).await {
        return next;
    }
    let head = &sc.req;
    let version = head.version;
    if version == Version::Http10 && head.framing == Framing::Chunked {
        // HTTP/1.0 has no chunked coding (RFC 9112 §6.1): a 1.0 message that claims it
        // is read one way by a 1.0 backend and another by a 1.1 one.
        let refusal = weir_h1::Refusal {
            status: 400,
            reason: "Transfer-Encoding in an HTTP/1.0 request",
        };
        return refuse(stream, ctx, sc, refusal).await;
    }
    let id = RequestId::of(head, buf.filled());
    let Some(listener) = ctx
        .table
        .load()
        .listener(&ctx.scope.name.load())
        .map(Arc::clone)
    else {
        let msg = "listener is shutting down";
        return reply(stream, ctx, sc, 503, msg, &id, version, true, None).await;
    };
    let mut answer = Answer {
        route: listener.unrouted_metrics(),
        counted: false,
        access: None,
        start,
        finished: false,
    };
    let next = proxy(stream, ctx, &listener, buf, sc, &id, &mut answer, served).await;
    drop(answer);
    next
}

/// Reads until a whole head is in `buf` and parsed into `sc.req`; `Some` when the
/// connection ends instead (answered or not).
async fn read_head<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    served: u64,
    wait: std::time::Duration,
) -> Option<Next> {
    // A refusal before the head parses must not read the last request's method
    // (a HEAD would leave its body out).
    sc.req.method = Method::Get;
    let limit = ctx.limits.timeouts.header_read;
    // Set when a head needs a second read (most arrive in one).
    let mut deadline = None;
    if buf.is_empty() {
        // Woken by readiness that may have been a false positive: the first byte
        // still gets only the wait it was due.
        let first = super::within(wait, buf.read_from(stream));
        let read = if S::READINESS {
            first.await
        } else {
            // The wait is this read (TLS): a drain must end it as it ends a wait.
            tokio::select! {
                r = first => r,
                () = ctx.scope.drain.cancelled() => return Some(Next::Close),
            }
        };
        match read {
            Ok(Ok(n)) if n > 0 => {}
            _ => return Some(Next::Close),
        }
    }
    loop {
        if served == 0 {
            let seen = buf.filled();
            let n = seen.len().min(PREFACE.len());
            if n > 0 && seen.get(..n) == PREFACE.get(..n) {
                if n == PREFACE.len() {
                    return Some(Next::Http2);
                }
            } else {
                match sc.req.parse(seen) {
                    Ok(Parsed::Complete) => return None,
                    Ok(Parsed::Partial) => {}
                    Err(refusal) => return Some(refuse(stream, ctx, sc, refusal).await),
                }
            }
        } else {
            match sc.req.parse(buf.filled()) {
                Ok(Parsed::Complete) => return None,
                Ok(Parsed::Partial) => {}
                Err(refusal) => return Some(refuse(stream, ctx, sc, refusal).await),
            }
        }
        if buf.is_full() {
            buf.grow(weir_h1::MAX_HEAD_BYTES + 1);
        }
        let d = *deadline.get_or_insert_with(|| Instant::now() + limit);
        let read = if limit.is_zero() {
            Ok(buf.read_from(stream).await)
        } else {
            tokio::time::timeout_at(d, buf.read_from(stream)).await
        };
        match read {
            Err(_) => {
                tracing::debug!(peer = %ctx.peer, "request head did not arrive in time");
                if buf.is_empty() {
                    return Some(Next::Close);
                }
                let id = RequestId::new_fresh();
                let msg = "request head did not arrive in time";
                return Some(
                    reply(stream, ctx, sc, 408, msg, &id, Version::Http11, true, None).await,
                );
            }
            Ok(Ok(0) | Err(_)) => return Some(Next::Close),
            Ok(Ok(_)) => {}
        }
    }
}

/// Answers a head the codec refused, and counts it as a protocol error.
#[cold]
async fn refuse<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    refusal: weir_h1::Refusal,
) -> Next {
    tracing::debug!(peer = %ctx.peer, reason = refusal.reason, "refused request head");
    if let Some(m) = &ctx.limits.metrics {
        m.protocol_error();
    }
    let id = RequestId::new_fresh();
    reply(
        stream,
        ctx,
        sc,
        refusal.status,
        refusal.reason,
        &id,
        Version::Http11,
        true,
        None,
    )
    .await
}

/// Where a request goes, read from its target and `Host`.
struct Target {
    /// Origin-form target to send instead of the client's (absolute-form requests).
    origin: Option<Vec<u8>>,
    /// `Host` to send instead of the client's (absolute-form requests).
    host: Option<Vec<u8>>,
    route_host: Option<String>,
    path: String,
}

/// The target's form and the `Host` rules of RFC 9112 §3.2 (see [`host`]).
fn target(head: &RequestHead, src: &[u8]) -> Result<Target, &'static str> {
    let raw = head.target.of(src);
    let mut t = Target {
        origin: None,
        host: None,
        route_host: None,
        path: String::new(),
    };
    let mut authority_host = None;
    if let Some(path) = head.origin_path(src) {
        t.path = std::str::from_utf8(path)
            .map_err(|_| "malformed request head")?
            .to_owned();
    } else if raw == b"*" {
        if head.method != Method::Options {
            return Err("asterisk-form request target outside OPTIONS");
        }
        "*".clone_into(&mut t.path);
    } else {
        let uri = http::Uri::try_from(raw).map_err(|_| "malformed request head")?;
        match (uri.scheme(), uri.authority()) {
            (None, Some(_)) => return Err("authority-form request target outside CONNECT"),
            (Some(_), Some(authority)) => {
                authority_host = Some(host::strip_root_dot(authority.host()).to_owned());
                t.host = host::forwarded(authority).map(|v| v.as_bytes().to_vec());
                let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
                t.origin = Some(pq.as_bytes().to_vec());
            }
            _ => return Err("malformed request head"),
        }
        uri.path().clone_into(&mut t.path);
    }
    match (head.host_count, head.host) {
        (2.., _) => return Err("more than one Host header"),
        (1, Some(h)) if !host::is_valid_host(h.of(src)) => return Err("invalid Host header"),
        (0, _) if head.version == Version::Http11 => return Err("HTTP/1.1 request without Host"),
        _ => {}
    }
    t.route_host = authority_host.or_else(|| {
        let h = std::str::from_utf8(head.host?.of(src)).ok()?;
        Some(host::strip_root_dot(host::strip_port(h)).to_owned())
    });
    Ok(t)
}

#[allow(clippy::too_many_arguments)]
async fn proxy<'t, S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    listener: &'t ListenerTable,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
    answer: &mut Answer<'t>,
    served: u64,
) -> Next {
    let head = &sc.req;
    let version = head.version;
    let method = head.method;
    let head_len = head.len;
    let cap = ctx.limits.max_requests;
    let last = cap != 0 && served + 1 >= u64::from(cap);
    let mut keep = !head.connection.close
        && (version == Version::Http11 || head.connection.keep_alive)
        && !last;
    let fast = head.origin_path(buf.filled()).is_some() && head.host_count == 1;
    // The common case (origin-form, one valid Host) needs no allocation to route.
    let mut owned = None;
    let (route_host, path): (Option<&str>, &str) = if fast && method != Method::Connect {
        let src = buf.filled();
        let host_ok = head.host.is_some_and(|h| host::is_valid_host(h.of(src)));
        let path = head
            .origin_path(src)
            .and_then(|p| std::str::from_utf8(p).ok());
        let host = head
            .host
            .and_then(|h| std::str::from_utf8(h.of(src)).ok())
            .map(|h| host::strip_root_dot(host::strip_port(h)));
        match (host_ok, path) {
            (true, Some(path)) => (host, path),
            _ => {
                owned = Some(target(head, src));
                (None, "")
            }
        }
    } else {
        (None, "")
    };
    if answer.access.is_none() && Access::enabled(listener.access_log()) {
        let m = http::Method::from_bytes(head.method_span.of(buf.filled()))
            .unwrap_or(http::Method::GET);
        let (h, p) = match (&owned, fast) {
            (Some(Ok(t)), _) => (t.route_host.as_deref(), t.path.as_str()),
            (None, true) => (route_host, path),
            _ => (None, ""),
        };
        let hv = HeaderValue::from_bytes(id.as_bytes()).unwrap_or(HeaderValue::from_static("-"));
        answer.access = Some(Access::record(
            answer.start,
            ctx.peer,
            listener.name_arc(),
            hv,
            m,
            h,
            p,
        ));
    }
    if method == Method::Connect {
        // weir is a reverse proxy and tunnels nothing on request. The client may
        // already be sending tunnel bytes: the connection closes.
        let msg = "CONNECT is not supported";
        return reply(stream, ctx, sc, 501, msg, id, version, true, Some(answer)).await;
    }
    if !fast && owned.is_none() {
        owned = Some(target(&sc.req, buf.filled()));
    }
    let owned = match owned {
        Some(Ok(t)) => Some(t),
        Some(Err(msg)) => {
            tracing::debug!(peer = %ctx.peer, reason = msg, "refused request target or host");
            return reply(stream, ctx, sc, 400, msg, id, version, true, Some(answer)).await;
        }
        None => None,
    };
    let (route_host, path) = match &owned {
        Some(t) => (t.route_host.as_deref(), t.path.as_str()),
        None => (route_host, path),
    };
    let Some(route) = listener.find_route(route_host, path) else {
        let msg = "no route for this host and path";
        return body_then_reply(stream, ctx, sc, buf, 404, msg, id, answer, keep).await;
    };
    answer.routed(route);
    let pool = route.pool();
    if pool_is_h2(pool) {
        return super::hyper_bridge::forward_h2(stream, ctx, buf, sc, id, route, answer, keep)
            .await;
    }
    let Some(first) = pool.pick() else {
        tracing::debug!(
            pool = pool.name(),
            request_id = id.as_str(),
            "no backend up"
        );
        let err = crate::http::UpstreamError::NoBackend {
            pool: Arc::clone(pool.name_arc()),
        };
        if let Some(a) = answer.access.as_mut() {
            a.error = Some(err.to_string());
        }
        let msg = err.reason(pool.name());
        return body_then_reply(stream, ctx, sc, buf, 503, &msg, id, answer, keep).await;
    };
    let head = &sc.req;
    let upgrade = version == Version::Http11 && head.upgrade.is_some() && head.connection.upgrade;
    let expect = head.expect_continue;
    let framing = head.framing;
    sc.out.clear();
    let fwd = Forwarding {
        target: owned.as_ref().and_then(|t| t.origin.as_deref()),
        host: owned.as_ref().and_then(|t| t.host.as_deref()),
        request_id: id.as_bytes(),
        client_ip: ctx.client_ip.as_bytes(),
        is_tls: ctx.is_tls,
        upgrade,
    };
    write::request(head, buf.filled(), &fwd, &mut sc.out);
    buf.consume(head_len);

    // The body: held whole if it came with the head, else streamed.
    let idle = listener.timeouts().idle;
    let mut streamed: Option<Rest> = None;
    let mut bytes_in = 0u64;
    match framing {
        Framing::None | Framing::Close | Framing::Length(0) => {}
        Framing::Length(n) => {
            if buf.is_empty() {
                if let Some(next) =
                    first_bytes(stream, ctx, buf, sc, id, version, expect, idle, answer).await
                {
                    return next;
                }
            }
            if buf.len() as u64 >= n {
                let n = n as usize;
                sc.out
                    .extend_from_slice(buf.filled().get(..n).unwrap_or_default());
                buf.consume(n);
                bytes_in = n as u64;
            } else {
                streamed = Some(Rest::Length(n));
            }
        }
        Framing::Chunked => {
            if buf.is_empty() {
                if let Some(next) =
                    first_bytes(stream, ctx, buf, sc, id, version, expect, idle, answer).await
                {
                    return next;
                }
            }
            let mark = sc.out.len();
            let mut decoder = Dechunk::default();
            let sink = Sink::Chunked { trailers: true };
            match body::decode(&mut decoder, buf.filled(), &mut sc.out, sink, &mut bytes_in) {
                Ok((n, true)) => buf.consume(n),
                Ok((_, false)) => {
                    sc.out.truncate(mark);
                    bytes_in = 0;
                    streamed = Some(Rest::Chunked(Dechunk::default()));
                }
                Err(e) => {
                    tracing::debug!(peer = %ctx.peer, error = ?e, "invalid request body");
                    return reply(
                        stream,
                        ctx,
                        sc,
                        400,
                        BAD_BODY,
                        id,
                        version,
                        true,
                        Some(answer),
                    )
                    .await;
                }
            }
        }
    }
    let replayable = method.is_idempotent() && streamed.is_none();
    let was_streamed = streamed.is_some();
    let Scratch {
        out, spare, resp, ..
    } = sc;
    let mut ex = Exchange {
        wire: out,
        body: streamed.map(|rest| Streamed {
            client: &mut *stream,
            buf: &mut *buf,
            upload: Upload::new(rest, std::mem::take(spare), idle),
            started: false,
        }),
        method,
        replayable,
        head: resp,
        client_failed: false,
    };
    let mut retries = 0;
    let result = forward(pool, first, &mut ex, &mut retries).await;
    let client_failed = ex.client_failed;
    // The upload goes on beside the response when the response came first.
    let upload = ex.body.take().map(|b| b.upload);
    drop(ex);
    let body_done = !client_failed && upload.as_ref().is_none_or(|u| u.done);
    if let Some(a) = answer.access.as_mut() {
        a.retries = retries;
        a.bytes_in
            .fetch_add(bytes_in, std::sync::atomic::Ordering::Relaxed);
    }
    let pending = match upload {
        Some(u) if !u.done && result.is_ok() => Some(u),
        Some(u) => {
            if let Some(a) = answer.access.as_mut() {
                a.bytes_in
                    .fetch_add(u.moved, std::sync::atomic::Ordering::Relaxed);
            }
            sc.spare = u.into_buffer();
            None
        }
        None => None,
    };
    let (answered, in_flight) = match result {
        Ok(ok) => ok,
        Err(_) if client_failed => {
            tracing::debug!(peer = %ctx.peer, "request body failed while forwarding");
            return reply(
                stream,
                ctx,
                sc,
                400,
                BAD_BODY,
                id,
                version,
                true,
                Some(answer),
            )
            .await;
        }
        Err(err) => {
            tracing::warn!(
                request_id = id.as_str(),
                pool = pool.name(),
                backend = err.backend().unwrap_or("-"),
                status = err.status().as_u16(),
                error = %err,
                "request failed"
            );
            if let Some(a) = answer.access.as_mut() {
                a.backend = err.backend().map(str::to_owned);
                a.error = Some(err.to_string());
            }
            let close = !body_done || (was_streamed && !keep);
            let msg = err.reason(pool.name());
            let status = err.status().as_u16();
            return reply(
                stream,
                ctx,
                sc,
                status,
                &msg,
                id,
                version,
                close || !keep,
                Some(answer),
            )
            .await;
        }
    };
    if pending.is_none() && !body_done {
        keep = false;
    }
    respond(
        stream, ctx, buf, sc, id, version, keep, upgrade, answered, in_flight, pool, idle, answer,
        pending,
    )
    .await
}

/// Whether `pool` speaks HTTP/2 to its backends (`upstream_protocol: h2`).
pub(crate) fn pool_is_h2(pool: &weir_balance::Pool) -> bool {
    pool.backends().next().is_some_and(|b| {
        b.extension::<crate::http::UpstreamPool>()
            .is_some_and(|p| p.h2.load(std::sync::atomic::Ordering::Relaxed))
    })
}

/// Waits for the first body bytes (after `100 Continue` if the client asked for it);
/// `Some` when the connection ends instead.
#[allow(clippy::too_many_arguments)]
async fn first_bytes<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
    version: Version,
    expect: bool,
    idle: std::time::Duration,
    answer: &mut Answer<'_>,
) -> Option<Next> {
    if expect && version == Version::Http11 && body::write(stream, CONTINUE, idle).await.is_err() {
        return Some(Next::Close);
    }
    match super::within(idle, buf.read_from(stream)).await {
        Ok(Ok(n)) if n > 0 => None,
        Ok(_) => {
            tracing::debug!(peer = %ctx.peer, "client closed before its request body");
            Some(Next::Close)
        }
        Err(_) => {
            let msg = "request body did not arrive in time";
            Some(reply(stream, ctx, sc, 408, msg, id, version, true, Some(answer)).await)
        }
    }
}

/// Answers weir's own response to a request whose body has not been read: the body is
/// skipped if it is already here and short; otherwise the connection closes after.
#[allow(clippy::too_many_arguments)]
async fn body_then_reply<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    buf: &mut Buf,
    status: u16,
    msg: &str,
    id: &RequestId,
    answer: &mut Answer<'_>,
    keep: bool,
) -> Next {
    let head = &sc.req;
    let version = head.version;
    let skip = match head.framing {
        Framing::None | Framing::Close => Some(head.len),
        // Saturating: a huge length must not wrap into "already read".
        Framing::Length(n) if (buf.len().saturating_sub(head.len) as u64) >= n => {
            usize::try_from(n).ok().map(|n| head.len + n)
        }
        _ => None,
    };
    match skip {
        Some(n) => {
            buf.consume(n);
            reply(
                stream,
                ctx,
                sc,
                status,
                msg,
                id,
                version,
                !keep,
                Some(answer),
            )
            .await
        }
        None => {
            reply(
                stream,
                ctx,
                sc,
                status,
                msg,
                id,
                version,
                true,
                Some(answer),
            )
            .await
        }
    }
}

/// Sends the backend's response head and body to the client.
#[allow(clippy::too_many_arguments)]
async fn respond<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
    version: Version,
    mut keep: bool,
    upgrade: bool,
    answered: Answered,
    in_flight: InFlight,
    pool: &Arc<weir_balance::Pool>,
    idle: std::time::Duration,
    answer: &mut Answer<'_>,
    mut upload: Option<Upload>,
) -> Next {
    let Answered {
        stream: mut up,
        buf: mut upbuf,
        status,
    } = answered;
    let backend = Arc::clone(in_flight.backend());
    if status == 101 {
        if !upgrade || upload.is_some() {
            tracing::debug!(
                pool = pool.name(),
                backend = backend.address(),
                "101 without an upgrade request"
            );
            upbuf.give_back();
            let msg = "backend switched protocols unasked";
            return reply(stream, ctx, sc, 502, msg, id, version, true, Some(answer)).await;
        }
        answer.backend_answered(&backend, 101);
        sc.out.clear();
        write::response(
            &sc.resp,
            upbuf.filled(),
            version,
            Out::AsIs,
            id.as_bytes(),
            None,
            &mut sc.out,
        );
        upbuf.consume(sc.resp.len);
        sc.out.extend_from_slice(upbuf.filled());
        upbuf.give_back();
        answer.head_sent(101);
        if body::write(stream, &sc.out, idle).await.is_err() {
            return Next::Close;
        }
        if !buf.is_empty() {
            if body::write(&mut up, buf.filled(), idle).await.is_err() {
                return Next::Close;
            }
            let n = buf.len();
            buf.consume(n);
        }
        return Next::Upgrade(Box::new(super::tunnel::Tunnel::new(up, in_flight, idle)));
    }
    answer.backend_answered(&backend, status);
    let resp = &sc.resp;
    let (out_mode, source) = match resp.framing {
        Framing::None => (Out::AsIs, None),
        Framing::Length(n) => (Out::AsIs, Some(Source::Length(n))),
        Framing::Chunked if version == Version::Http11 => {
            (Out::Chunked, Some(Source::Chunked(Dechunk::default())))
        }
        Framing::Chunked => (Out::Close, Some(Source::Chunked(Dechunk::default()))),
        Framing::Close if version == Version::Http11 => (Out::Chunked, Some(Source::Close)),
        Framing::Close => (Out::Close, Some(Source::Close)),
    };
    if out_mode == Out::Close
        || ctx
            .scope
            .draining
            .load(std::sync::atomic::Ordering::Acquire)
    {
        keep = false;
    }
    let keep_alive = match (keep, version) {
        (false, _) => None,
        (true, Version::Http10) => Some(true),
        (true, Version::Http11) => Some(false),
    };
    let reusable = resp.reusable();
    let te_trailers = sc.req.te_trailers;
    sc.out.clear();
    write::response(
        resp,
        upbuf.filled(),
        version,
        out_mode,
        id.as_bytes(),
        keep_alive,
        &mut sc.out,
    );
    upbuf.consume(resp.len);
    answer.head_sent(status);
    let sink = match out_mode {
        Out::Chunked => Sink::Chunked {
            trailers: te_trailers,
        },
        Out::AsIs | Out::Close => Sink::Raw,
    };
    let moved = match upload.as_mut() {
        None => match source {
            None => body::write(stream, &sc.out, idle).await.map(|()| 0),
            Some(source) => {
                pump(&mut up, &mut upbuf, stream, source, sink, &mut sc.out, idle).await
            }
        },
        Some(upload) => {
            // Both directions at once: the rest of the request body up, the response down.
            let (mut client_rd, mut client_wr) = tokio::io::split(&mut *stream);
            let (mut up_rd, mut up_wr) = tokio::io::split(&mut up);
            let down = async {
                match source {
                    None => body::write(&mut client_wr, &sc.out, idle).await.map(|()| 0),
                    Some(source) => {
                        pump(
                            &mut up_rd,
                            &mut upbuf,
                            &mut client_wr,
                            source,
                            sink,
                            &mut sc.out,
                            idle,
                        )
                        .await
                    }
                }
            };
            let rest = upload.finish(&mut client_rd, buf, &mut up_wr);
            let (down, rest) = tokio::join!(down, rest);
            if let Some(a) = answer.access.as_mut() {
                a.bytes_in
                    .fetch_add(upload.moved, std::sync::atomic::Ordering::Relaxed);
            }
            if rest.is_err() {
                keep = false;
            }
            down
        }
    };
    let upload_ok = upload.as_ref().is_none_or(|u| u.done);
    if let Some(u) = upload.take() {
        sc.spare = u.into_buffer();
    }
    match moved {
        Ok(n) => {
            if let Some(a) = answer.access.as_mut() {
                a.bytes_out = n;
            }
            if reusable && upload_ok && upbuf.is_empty() {
                conn::give_back(&backend, up);
            }
            upbuf.give_back();
            drop(in_flight);
            if keep {
                Next::KeepAlive
            } else {
                Next::Close
            }
        }
        Err(e @ (PumpError::Source(_) | PumpError::Framing(_))) => {
            upbuf.give_back();
            // The backend broke its body off: counted as a reset, reported to passive
            // checking like one before the head; the client sees its connection close.
            tracing::debug!(backend = backend.address(), error = %e, "backend response body failed");
            if let Some(m) = backend.metrics() {
                m.upstream_error(UpstreamErrorKind::Reset);
            }
            outlier::failure(pool, &backend, &"response body broken off");
            Next::Close
        }
        Err(PumpError::Sink(_) | PumpError::Idle) => {
            upbuf.give_back();
            Next::Close
        }
    }
}

/// Writes a short text response of weir's own: `{status}: {reason}` and the request
/// id, so a client's error report leads to the log line with the detail.
#[allow(clippy::too_many_arguments)]
async fn reply<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    status: u16,
    reason: &str,
    id: &RequestId,
    version: Version,
    close: bool,
    answer: Option<&mut Answer<'_>>,
) -> Next {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = format!("{code}: {reason}\nrequest id: {}\n", id.as_str());
    let out = &mut sc.out;
    out.clear();
    out.extend_from_slice(match version {
        Version::Http10 => b"HTTP/1.0 ",
        Version::Http11 => b"HTTP/1.1 ",
    });
    out.extend_from_slice(code.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(code.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    write::decimal(out, body.len() as u64);
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(id.as_bytes());
    // A drain closes after this answer too.
    let close = close
        || ctx
            .scope
            .draining
            .load(std::sync::atomic::Ordering::Acquire);
    out.extend_from_slice(match (close, version) {
        (true, _) => b"\r\nconnection: close\r\n\r\n".as_slice(),
        (false, Version::Http10) => b"\r\nconnection: keep-alive\r\n\r\n",
        (false, Version::Http11) => b"\r\n\r\n",
    });
    if sc.req.method != Method::Head {
        out.extend_from_slice(body.as_bytes());
    }
    if let Some(a) = answer {
        a.head_sent(status);
        if let Some(rec) = a.access.as_mut() {
            rec.bytes_out = body.len() as u64;
        }
    }
    let idle = ctx.limits.timeouts.idle;
    if body::write(stream, out, idle).await.is_err() || close {
        return Next::Close;
    }
    Next::KeepAlive
}

/// [`reply`] for a request whose answer is recorded.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn reply_for<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    sc: &mut Scratch,
    status: u16,
    reason: &str,
    id: &RequestId,
    version: Version,
    close: bool,
    answer: &mut Answer<'_>,
) -> Next {
    reply(
        stream,
        ctx,
        sc,
        status,
        reason,
        id,
        version,
        close,
        Some(answer),
    )
    .await
}
