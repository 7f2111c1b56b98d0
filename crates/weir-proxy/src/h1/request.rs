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

use http::HeaderValue;
use tokio::time::Instant;
use weir_balance::ListenerTable;
use weir_h1::{Framing, Method, RequestHead, ResponseHead, Version};

use super::admit::{first_bytes, read_head, refuse, target};
use super::answer::{bad_body, body_then_reply, reply, Answer, RequestId};
use super::body::{self, Dechunk, Sink};
use super::buf::Buf;
use super::exchange::{Exchange, Streamed};
use super::respond::respond;
use super::server::{ClientStream, Ctx};
use super::upload::{Rest, Upload};
use super::write::{self, Forwarding};
use crate::http::access::Access;
use crate::http::{forward, host};

pub(crate) const BAD_BODY: &str = "invalid request body";

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
    pub(crate) resp: ResponseHead,
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
    let mut answer = Answer::new(listener.unrouted_metrics(), start);
    let next = proxy(stream, ctx, &listener, buf, sc, &id, &mut answer, served).await;
    drop(answer);
    next
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
                    return bad_body(stream, ctx, sc, id, version, answer).await;
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
        frames: None,
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
            return bad_body(stream, ctx, sc, id, version, answer).await;
        }
        Err(err) => {
            crate::http::access::upstream_failed(
                &err,
                id.as_str(),
                pool.name(),
                answer.access.as_deref_mut(),
            );
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
    pool.transport().is_h2()
}
