//! One request on a client connection: admit → route (→ redirect) → pick → prepare
//! (rewrite, request headers) → forward → respond (response headers), one function each (in [`super::phases`], then [`respond`]). A phase that
//! stops the request returns a [`Refusal`](super::refusal::Refusal), which [`proxy`]
//! turns into a short text answer of weir's own. The access-log line is written when
//! the request's [`Answer`] is dropped, in [`handle`].
//!
//! The checks run in the order the hyper path applies them, so both give the same
//! answers: the head's framing (in [`weir_h1`]), CONNECT (501), the target's form and
//! the `Host` rules (400), the route (404), a backend (503). A body held whole after its
//! head (it fits in the read buffer that brought it) makes the request replayable on
//! another backend; a longer one is streamed during the first attempt that reaches a
//! backend. A refused or broken head closes the connection; so does any answer given
//! before a request body was read, since what follows cannot be told from that body.

use std::sync::Arc;

use tokio::time::Instant;
use weir_balance::{ListenerTable, RouteTarget};
use weir_h1::{Framing, RequestHead, ResponseHead, Version};

use super::actions::HeadFacts;
use super::admit::{read_head, refuse};
use super::answer::{reply, Answer, Own, RequestId};
use super::buf::Buf;
use super::phases::{admit, forward_phase, pick, police, prepare, route, Admitted};
use super::respond::respond;
use super::server::{ClientStream, Ctx};
use crate::policy::Scope;

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
        return reply(stream, ctx, sc, Own::closing(503, msg, &id, version), None).await;
    };
    let mut answer = Answer::new(listener.unrouted_metrics(), start);
    let next = proxy(stream, ctx, &listener, buf, sc, &id, &mut answer, served).await;
    drop(answer);
    next
}

/// The phases of one request, in order; each that can stop the request says why
/// ([`Refusal`](super::refusal::Refusal)) and the answer is written here, after the
/// phase has let go of what it borrowed.
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
    let admitted = admit(ctx, listener, &sc.req, buf.filled(), id, answer, served);
    let Admitted {
        mut keep,
        owned,
        host,
        path,
    } = match admitted {
        Ok(a) => a,
        // Admit refuses only with `Close`: `keep` is not looked at.
        Err(r) => return r.answer(stream, ctx, sc, buf, id, answer, false).await,
    };
    if let Err(r) = police(ctx, Scope::Listener(listener), &sc.req, buf.filled()) {
        return r.answer(stream, ctx, sc, buf, id, answer, keep).await;
    }
    let facts = HeadFacts::new(&sc.req, buf.filled());
    let route = match route(listener, owned.as_ref(), host, path, &facts, answer) {
        Ok(route) => route,
        Err(r) => return r.answer(stream, ctx, sc, buf, id, answer, keep).await,
    };
    if let Err(r) = police(ctx, Scope::Route(route), &sc.req, buf.filled()) {
        return r.answer(stream, ctx, sc, buf, id, answer, keep).await;
    }
    let pool = match route.target() {
        RouteTarget::Pool(pool) => pool,
        RouteTarget::Redirect(r) => {
            let from = owned.as_ref();
            return super::actions::redirect(stream, ctx, buf, sc, id, r, from, answer, keep).await;
        }
    };
    if pool_is_h2(pool) {
        return super::hyper_bridge::forward_h2(stream, ctx, buf, sc, id, route, answer, keep)
            .await;
    }
    let key = super::phases::affinity_key(ctx, pool, &sc.req, buf.filled());
    let presented = super::phases::sticky_presented(pool, &sc.req, buf.filled());
    let first = match pick(pool, id, key, presented, stream, buf).await {
        Ok(first) => first,
        Err(r) => return r.answer(stream, ctx, sc, buf, id, answer, keep).await,
    };
    let idle = listener.timeouts().idle;
    let prepared = match prepare(stream, ctx, buf, sc, id, owned.as_ref(), route, idle).await {
        Ok(p) => p,
        Err(r) => return r.answer(stream, ctx, sc, buf, id, answer, keep).await,
    };
    let upgrade = prepared.upgrade;
    let done = forward_phase(
        stream, ctx, buf, sc, pool, first, prepared, idle, answer, keep,
    )
    .await;
    let done = match done {
        Ok(done) => done,
        Err(r) => return r.answer(stream, ctx, sc, buf, id, answer, keep).await,
    };
    if done.pending.is_none() && !done.body_done {
        keep = false;
    }
    let served = done.in_flight.backend();
    let stamps = super::write::Stamps {
        edits: route.response_headers(),
        set_cookie: pool
            .sticky_answer(presented, served, ctx.is_tls)
            .map(http::HeaderValue::as_bytes),
    };
    respond(
        stream,
        ctx,
        buf,
        sc,
        id,
        keep,
        upgrade,
        done.answered,
        done.in_flight,
        pool,
        stamps,
        idle,
        answer,
        done.pending,
    )
    .await
}

/// Whether `pool` speaks HTTP/2 to its backends (`upstream_protocol: h2`).
pub(crate) fn pool_is_h2(pool: &weir_balance::Pool) -> bool {
    pool.transport().is_h2()
}
