//! The phases of one request on weir's HTTP/1 engine, in the order
//! `request.rs::proxy` runs them: admit, route (a redirect route is answered there, by
//! [`super::actions::redirect`]), pick, prepare (the path rewrite and request header
//! edits are written with the head), forward (the backend's answer is then sent on by
//! [`super::respond::respond`], with the response header edits).
//!
//! Each phase decides and does not answer: where it stops the request it returns a
//! [`Refusal`], which the caller answers once the phase has let go of the buffers it
//! borrowed. The checks run in the order the hyper path applies them
//! (`http/service.rs`), so both give the same answers.

use http::HeaderValue;
use weir_balance::{InFlight, ListenerTable, Pool, Presented, Refused, Reserved, Route};
use weir_h1::{Framing, Method, RequestHead, Version};

use super::actions::HeadFacts;
use super::admit::{first_bytes, target, Target};
use super::answer::{Answer, RequestId};
use super::body::{self, Dechunk, Sink};
use super::buf::Buf;
use super::exchange::{Answered, Exchange, Streamed};
use super::refusal::Refusal;
use super::request::Scratch;
use super::server::{ClientStream, Ctx};
use super::upload::{Rest, Upload};
use super::write::{self, Forwarding};
use crate::http::access::Access;
use crate::http::{forward, host};
use crate::policy::Scope;

/// What admitting a request decided.
pub(super) struct Admitted<'b> {
    /// Whether the connection may stay open after this request.
    pub(super) keep: bool,
    /// The target and `Host` checked the slow way (absolute-form, unusual `Host`);
    /// `None` on the fast path, whose route key is `host` and `path`.
    pub(super) owned: Option<Target>,
    pub(super) host: Option<&'b str>,
    pub(super) path: &'b str,
}

/// Admit: keep-alive, the target's form and the `Host` rules, and the access-log
/// record (started before any refusal, so a refused request is logged too).
pub(super) fn admit<'b>(
    ctx: &Ctx,
    listener: &ListenerTable,
    head: &RequestHead,
    src: &'b [u8],
    id: &RequestId,
    answer: &mut Answer<'_>,
    served: u64,
) -> Result<Admitted<'b>, Refusal<'static>> {
    let version = head.version;
    let method = head.method;
    let cap = ctx.limits.max_requests;
    let last = cap != 0 && served + 1 >= u64::from(cap);
    let keep = !head.connection.close
        && (version == Version::Http11 || head.connection.keep_alive)
        && !last;
    let fast = head.origin_path(src).is_some() && head.host_count == 1;
    // The common case (origin-form, one valid Host) needs no allocation to route.
    let mut owned = None;
    let (route_host, path): (Option<&str>, &str) = if fast && method != Method::Connect {
        fast_key(head, src).unwrap_or_else(|| {
            owned = Some(target(head, src));
            (None, "")
        })
    } else {
        (None, "")
    };
    if answer.access.is_none() && Access::enabled(listener.access_log()) {
        let m = http::Method::from_bytes(head.method_span.of(src)).unwrap_or(http::Method::GET);
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
        return Err(Refusal::Close {
            status: 501,
            reason: "CONNECT is not supported",
        });
    }
    if !fast && owned.is_none() {
        owned = Some(target(head, src));
    }
    let owned = match owned {
        Some(Ok(t)) => Some(t),
        Some(Err(msg)) => {
            tracing::debug!(peer = %ctx.peer, reason = msg, "refused request target or host");
            return Err(Refusal::Close {
                status: 400,
                reason: msg,
            });
        }
        None => None,
    };
    Ok(Admitted {
        keep,
        owned,
        host: route_host,
        path,
    })
}

/// The route key of an origin-form request with one valid `Host`, read from the head
/// in place; `None` when the target needs the slow way ([`target`]).
pub(super) fn fast_key<'b>(
    head: &RequestHead,
    src: &'b [u8],
) -> Option<(Option<&'b str>, &'b str)> {
    let host_ok = head.host.is_some_and(|h| host::is_valid_host(h.of(src)));
    let path = head
        .origin_path(src)
        .and_then(|p| std::str::from_utf8(p).ok());
    let host = head
        .host
        .and_then(|h| std::str::from_utf8(h.of(src)).ok())
        .map(|h| host::strip_root_dot(host::strip_port(h)));
    match (host_ok, path) {
        (true, Some(path)) => Some((host, path)),
        _ => None,
    }
}

/// Route: the listener's first route for the host and path; its metrics count the
/// request from here on.
pub(super) fn route<'t>(
    listener: &'t ListenerTable,
    owned: Option<&Target>,
    host: Option<&str>,
    path: &str,
    facts: &HeadFacts<'_>,
    answer: &mut Answer<'t>,
) -> Result<&'t Route, Refusal<'static>> {
    let (host, path) = match owned {
        Some(t) => (t.route_host.as_deref(), t.path.as_str()),
        None => (host, path),
    };
    let Some(route) = listener.find_route(host, path, facts) else {
        return Err(Refusal::Unread {
            status: 404,
            reason: "no route for this host and path",
        });
    };
    answer.routed(route);
    Ok(route)
}

/// The value of header `name` (lower-case) in `head`, the first if repeated.
fn header_value<'b>(head: &RequestHead, src: &'b [u8], name: &str) -> Option<&'b [u8]> {
    head.headers
        .iter()
        .find(|h| h.name.of(src).eq_ignore_ascii_case(name.as_bytes()))
        .map(|h| h.value.of(src))
}

/// The listener's rate limit (before routing) or the route's access list and rate
/// limit (`crate::policy`).
pub(super) fn police(
    ctx: &Ctx,
    scope: Scope<'_>,
    head: &RequestHead,
    src: &[u8],
) -> Result<(), Refusal<'static>> {
    crate::policy::police(scope, ctx.peer.ip(), |name| header_value(head, src, name))
        .map_err(refusal)
}

fn refusal(verdict: crate::policy::Verdict) -> Refusal<'static> {
    match verdict {
        crate::policy::Verdict::Limited(retry_after) => Refusal::Limited { retry_after },
        crate::policy::Verdict::Denied => Refusal::Unread {
            status: 403,
            reason: crate::policy::DENIED,
        },
    }
}

/// The hash of the request's affinity key, for a consistent-hash pool.
pub(super) fn affinity_key(ctx: &Ctx, pool: &Pool, head: &RequestHead, src: &[u8]) -> Option<u64> {
    let hash_on = pool.hash_on()?;
    let headers = head
        .headers
        .iter()
        .map(|h| (h.name.of(src), h.value.of(src)));
    crate::affinity::key(hash_on, ctx.peer.ip(), head.origin_path(src), headers)
}

/// What the request's sticky cookie names, for a pool with one.
pub(super) fn sticky_presented(pool: &Pool, head: &RequestHead, src: &[u8]) -> Presented {
    let headers = head
        .headers
        .iter()
        .map(|h| (h.name.of(src), h.value.of(src)));
    crate::sticky::presented(pool, headers)
}

/// Pick: the first attempt's backend and its in-flight slot (the retries pick their
/// own in `forward`), by the request's affinity `key` in a consistent-hash pool and the
/// backend its sticky cookie names (`presented`). Over every backend's
/// `max_in_flight` the request waits in the pool's queue, watching the client
/// meanwhile: one that closes ends the wait.
pub(super) async fn pick<'t, S: ClientStream>(
    pool: &'t Pool,
    id: &RequestId,
    key: Option<u64>,
    presented: Presented,
    stream: &mut S,
    buf: &mut Buf,
) -> Result<Reserved<'t>, Refusal<'t>> {
    let gone = client_gone(stream, buf);
    // Two calls, not one that branches: a pool without a cookie pays no extra future.
    let reserved = if pool.sticky().is_some() {
        pool.reserve_sticky(presented, key, gone).await
    } else {
        pool.reserve_keyed(key, gone).await
    };
    match reserved {
        Ok(first) => Ok(first),
        Err(why) => {
            tracing::debug!(
                pool = pool.name(),
                request_id = id.as_str(),
                why = why.as_str(),
                "no backend free"
            );
            Err(match why {
                Refused::Gone => Refusal::Gone,
                why => Refusal::Unavailable(pool, why),
            })
        }
    }
}

/// Resolves when the client closes its connection (or it fails) while its request
/// waits for a backend, as HAProxy's `option abortonclose` does. What it sends
/// meanwhile (its body, a pipelined request) is kept in `buf` for the phases after;
/// once `buf` is full the client is no longer watched and the queue's timeout decides.
pub(super) async fn client_gone<S: ClientStream>(stream: &mut S, buf: &mut Buf) {
    while !buf.is_full() {
        match buf.read_from(stream).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    std::future::pending::<()>().await;
}

/// A request ready for its first attempt: its head, and its body if held whole, in
/// `sc.out`; `streamed` the rest of a body still to come.
pub(super) struct Prepared {
    pub(super) upgrade: bool,
    pub(super) streamed: Option<Rest>,
    pub(super) bytes_in: u64,
}

/// Prepare: the head for the backend, and the body held whole if it came with the
/// head, else left to be streamed during the first attempt.
#[allow(clippy::too_many_arguments)]
pub(super) async fn prepare<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
    owned: Option<&Target>,
    route: &Route,
    idle: std::time::Duration,
) -> Result<Prepared, Refusal<'static>> {
    let head = &sc.req;
    let version = head.version;
    let head_len = head.len;
    let upgrade = version == Version::Http11 && head.upgrade.is_some() && head.connection.upgrade;
    let expect = head.expect_continue;
    let framing = head.framing;
    sc.out.clear();
    let fwd = Forwarding {
        target: owned.and_then(|t| t.origin.as_deref()),
        host: owned.and_then(|t| t.host.as_deref()),
        request_id: id.as_bytes(),
        client_ip: ctx.client_ip.as_bytes(),
        is_tls: ctx.is_tls,
        upgrade,
        rewrite: route.rewrite(),
        edits: route.request_headers(),
    };
    write::request(head, buf.filled(), &fwd, &mut sc.out);
    buf.consume(head_len);

    let mut streamed: Option<Rest> = None;
    let mut bytes_in = 0u64;
    match framing {
        Framing::None | Framing::Close | Framing::Length(0) => {}
        Framing::Length(n) => {
            if buf.is_empty() {
                first_bytes(stream, ctx, buf, version, expect, idle).await?;
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
                first_bytes(stream, ctx, buf, version, expect, idle).await?;
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
                    return Err(Refusal::BadBody);
                }
            }
        }
    }
    Ok(Prepared {
        upgrade,
        streamed,
        bytes_in,
    })
}

/// A backend's answer, ready to be sent on.
pub(super) struct Forwarded {
    pub(super) answered: Answered,
    pub(super) in_flight: InFlight,
    /// The upload still going on beside the response (the response came first).
    pub(super) pending: Option<Upload>,
    /// Whether the client's body was read to its end.
    pub(super) body_done: bool,
}

/// Forward: the attempts (retried where `http::forward` allows), the body's bytes and
/// the retries recorded for the access log.
#[allow(clippy::too_many_arguments)]
pub(super) async fn forward_phase<'t, S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    pool: &'t Pool,
    first: weir_balance::Reserved<'_>,
    prepared: Prepared,
    idle: std::time::Duration,
    answer: &mut Answer<'_>,
    keep: bool,
) -> Result<Forwarded, Refusal<'t>> {
    let Prepared {
        streamed, bytes_in, ..
    } = prepared;
    let method = sc.req.method;
    let replayable = method.is_idempotent() && streamed.is_none();
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
    match result {
        Ok((answered, in_flight)) => Ok(Forwarded {
            answered,
            in_flight,
            pending,
            body_done,
        }),
        Err(_) if client_failed => {
            tracing::debug!(peer = %ctx.peer, "request body failed while forwarding");
            Err(Refusal::BadBody)
        }
        // Closing when the body's end was not reached, or when the connection would
        // close anyway (`!keep` covers a streamed body's `!keep` as well).
        Err(err) => Err(Refusal::Upstream {
            err,
            pool,
            close: !body_done || !keep,
        }),
    }
}
