//! HTTP/1 clients of `upstream_protocol: h2` pools: the request goes through hyper's
//! HTTP/2 client (one shared connection per backend), with the same retry rules.
//!
//! This path builds hyper's types (a header map, a URI), which the HTTP/1 fast path
//! avoids; it serves the pools that ask for HTTP/2 backends. A request body held whole
//! is replayable as on the fast path; a longer one is fed to hyper through a channel of
//! one chunk while the response head is awaited.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use weir_balance::{InFlight, Route};
use weir_h1::{ChunkedDecoder, Decoded, Framing, HeaderKind, RequestHead, Version};

use super::answer::{reply_for, Answer, RequestId};
use super::buf::Buf;
use super::request::{Next, Scratch, BAD_BODY};
use super::server::{ClientStream, Ctx};
use crate::http::{forward, headers, BodySource, HyperAttempt, Outgoing, ReqBody};

/// Forwards the request in `sc.req` (its head still at the start of `buf`) to `route`'s
/// HTTP/2 pool and answers the client: pick, the request's parts, its body, the attempts,
/// then the response head and body in the client's HTTP/1 version.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn forward_h2<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
    route: &Route,
    answer: &mut Answer<'_>,
    keep: bool,
) -> Next {
    let head = &sc.req;
    let version = head.version;
    let Some(pool) = route.pool() else {
        // The caller answers redirect routes before any pool is looked at.
        return Next::Close;
    };
    let key = super::phases::affinity_key(ctx, pool, head, buf.filled());
    let presented = super::phases::sticky_presented(pool, head, buf.filled());
    let gone = super::phases::client_gone(stream, buf);
    let first = match pool.reserve_sticky(presented, key, gone).await {
        Ok(first) => first,
        Err(why) => {
            let Some(err) = crate::http::UpstreamError::refused(pool, why) else {
                return Next::Close;
            };
            let msg = err.reason(pool.name());
            return reply_for(stream, ctx, sc, 503, &msg, id, version, true, answer).await;
        }
    };
    let Some(mut parts) = request_parts(head, buf.filled()) else {
        let msg = "malformed request head";
        return reply_for(stream, ctx, sc, 400, msg, id, version, true, answer).await;
    };
    let framing = head.framing;
    let expect = head.expect_continue && version == Version::Http11;
    let method_is_head = head.method == weir_h1::Method::Head;
    buf.consume(head.len);
    let ip = HeaderValue::from_str(&ctx.client_ip).unwrap_or(HeaderValue::from_static("unknown"));
    let hid = HeaderValue::from_bytes(id.as_bytes()).unwrap_or(HeaderValue::from_static("-"));
    if let Some(rw) = route.rewrite() {
        crate::http::actions::rewrite(rw, &mut parts.uri);
    }
    if let Some(e) = route.request_headers() {
        e.apply(&mut parts.headers);
    }
    headers::prepare_request(&mut parts, &ip, &hid, false, ctx.is_tls);

    let idle = ctx.limits.timeouts.idle;
    let Some((tx, body)) = request_body(stream, buf, framing, expect, idle).await else {
        return Next::Close;
    };
    let mut out = HyperAttempt::new(Outgoing::new(parts.method, parts.uri, parts.headers, body));
    let mut retries = 0;
    let sent = send(
        stream,
        buf,
        pool,
        first,
        &mut out,
        &mut retries,
        tx,
        framing,
        idle,
    )
    .await;
    let (result, body_done) = sent;
    if let Some(a) = answer.access.as_mut() {
        a.retries = retries;
    }
    let (response, in_flight) = match result {
        Ok(ok) => ok,
        Err(_) if !body_done => {
            return reply_for(stream, ctx, sc, 400, BAD_BODY, id, version, true, answer).await;
        }
        Err(err) => {
            let access = answer.access.as_deref_mut();
            crate::http::access::upstream_failed(&err, id.as_str(), pool.name(), access);
            let msg = err.reason(pool.name());
            let status = err.status().as_u16();
            return reply_for(stream, ctx, sc, status, &msg, id, version, !keep, answer).await;
        }
    };
    let status = response.status();
    answer.backend_answered(in_flight.backend(), status.as_u16());
    let (mut parts, body) = response.into_parts();
    headers::prepare_response(&mut parts.headers, false);
    if let Some(e) = route.response_headers() {
        e.apply(&mut parts.headers);
    }
    let served = in_flight.backend();
    if let Some(c) = pool.sticky_answer(presented, served, ctx.is_tls) {
        parts.headers.append(http::header::SET_COOKIE, c.clone());
    }
    let no_body = method_is_head || status.as_u16() == 204 || status.as_u16() == 304;
    let length = parts.headers.contains_key(http::header::CONTENT_LENGTH);
    let chunked = !no_body && !length && version == Version::Http11;
    let keep = keep && (no_body || length || chunked) && !ctx.scope.says_close();
    let out = &mut sc.out;
    let framing = Reframe {
        version,
        keep,
        chunked,
    };
    response_head(out, status, &parts.headers, id, framing);
    answer.head_sent(status.as_u16());
    if super::body::write(stream, out, idle).await.is_err() {
        return Next::Close;
    }
    let moved = if no_body {
        0
    } else {
        match relay_body(stream, body, out, chunked, idle).await {
            Some(moved) => moved,
            None => return Next::Close,
        }
    };
    if let Some(a) = answer.access.as_mut() {
        a.bytes_out = moved;
    }
    drop(in_flight);
    if keep && body_done {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

/// hyper's request parts for `head` (parsed from `src`): method, target, version and
/// every header but `Content-Length` (hyper frames the body). `None` if hyper's types
/// refuse the method or target.
fn request_parts(head: &RequestHead, src: &[u8]) -> Option<http::request::Parts> {
    let mut builder = Request::builder()
        .method(head.method_span.of(src))
        .uri(head.target.of(src));
    let mut map = HeaderMap::with_capacity(head.headers.len() + 4);
    for h in &head.headers {
        if matches!(h.kind, HeaderKind::ContentLength) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.of(src)),
            HeaderValue::from_bytes(h.value.of(src)),
        ) {
            map.append(n, v);
        }
    }
    if let Some(h) = builder.headers_mut() {
        *h = map;
    }
    builder = builder.version(match head.version {
        Version::Http10 => http::Version::HTTP_10,
        Version::Http11 => http::Version::HTTP_11,
    });
    builder.body(()).ok().map(|req| req.into_parts().0)
}

/// The request body for hyper: empty, whole if it is all in `buf`, else a channel that
/// [`feed`] fills (after `100 Continue` when the client waits for it). `None` if the
/// client could not be written to.
async fn request_body<S: ClientStream>(
    stream: &mut S,
    buf: &mut Buf,
    framing: Framing,
    expect: bool,
    idle: std::time::Duration,
) -> Option<(Option<BodyTx>, BodySource)> {
    Some(match framing {
        Framing::None | Framing::Close | Framing::Length(0) => (None, BodySource::Empty),
        Framing::Length(n) if buf.len() as u64 >= n => {
            let data = Bytes::copy_from_slice(buf.filled().get(..n as usize).unwrap_or_default());
            buf.consume(n as usize);
            (
                None,
                BodySource::Buffered {
                    data,
                    trailers: None,
                },
            )
        }
        _ => {
            if expect {
                let go_on = b"HTTP/1.1 100 Continue\r\n\r\n";
                if super::body::write(stream, go_on, idle).await.is_err() {
                    return None;
                }
            }
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            (Some(tx), BodySource::Streaming(Some(ReqBody::Channel(rx))))
        }
    })
}

/// What feeds a streamed request body to hyper.
type BodyTx = tokio::sync::mpsc::Sender<Bytes>;

/// The attempts, with the rest of a streamed body fed beside them; the result and
/// whether the client's body was read whole.
#[allow(clippy::too_many_arguments)]
async fn send<S: ClientStream>(
    stream: &mut S,
    buf: &mut Buf,
    pool: &Arc<weir_balance::Pool>,
    first: weir_balance::Reserved<'_>,
    out: &mut HyperAttempt,
    retries: &mut u32,
    tx: Option<BodyTx>,
    framing: Framing,
    idle: std::time::Duration,
) -> (
    Result<(http::Response<hyper::body::Incoming>, InFlight), crate::http::UpstreamError>,
    bool,
) {
    let fwd = forward(pool, first, out, retries);
    tokio::pin!(fwd);
    let mut feeding = tx.map(|tx| Box::pin(feed(&mut *stream, &mut *buf, framing, tx, idle)));
    let mut fed = true;
    let result = loop {
        match feeding.as_mut() {
            Some(f) => tokio::select! {
                r = &mut fwd => break r,
                ok = f => { fed = ok; feeding = None; }
            },
            None => break (&mut fwd).await,
        }
    };
    // The rest of the body goes on only to a request that was sent: a failed one
    // holds its channel until this function returns.
    let body_done = match feeding.take() {
        Some(f) if result.is_ok() => f.await,
        Some(_) => false,
        None => fed,
    };
    (result, body_done)
}

/// How the response is framed for the HTTP/1 client.
#[derive(Clone, Copy)]
struct Reframe {
    version: Version,
    keep: bool,
    chunked: bool,
}

/// Writes the response head for the client into `out`: status line, the backend's
/// headers (already prepared) but its `X-Request-Id`, then chunked framing when the
/// client's HTTP/1.1 body needs it, weir's id and the connection's fate.
fn response_head(
    out: &mut Vec<u8>,
    status: http::StatusCode,
    headers: &HeaderMap,
    id: &RequestId,
    f: Reframe,
) {
    out.clear();
    out.extend_from_slice(if f.version == Version::Http10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (n, v) in headers {
        if n == "x-request-id" {
            continue;
        }
        out.extend_from_slice(n.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if f.chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"x-request-id: ");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(match (f.keep, f.version) {
        (false, _) => b"\r\nconnection: close\r\n\r\n".as_slice(),
        (true, Version::Http10) => b"\r\nconnection: keep-alive\r\n\r\n",
        (true, Version::Http11) => b"\r\n\r\n",
    });
}

/// Relays the response body to the client, chunked if `chunked`; the data bytes moved,
/// or `None` when the backend's body or the client failed (the connection closes).
async fn relay_body<S: ClientStream>(
    stream: &mut S,
    mut body: hyper::body::Incoming,
    out: &mut Vec<u8>,
    chunked: bool,
    idle: std::time::Duration,
) -> Option<u64> {
    let mut moved = 0u64;
    loop {
        let frame = match super::within(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => break,
            _ => return None,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        moved += data.len() as u64;
        out.clear();
        if chunked {
            weir_h1::chunk_header(data.len(), out);
        }
        out.extend_from_slice(&data);
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        if super::body::write(stream, out, idle).await.is_err() {
            return None;
        }
    }
    if chunked
        && super::body::write(stream, weir_h1::LAST_CHUNK, idle)
            .await
            .is_err()
    {
        return None;
    }
    Some(moved)
}

/// Reads the rest of the client's body and sends its data down `tx`; `false` when the
/// body failed (bad framing, the client gone or idle).
async fn feed<S: ClientStream>(
    stream: &mut S,
    buf: &mut Buf,
    framing: Framing,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    idle: std::time::Duration,
) -> bool {
    let mut left = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mut decoder = ChunkedDecoder::default();
    loop {
        let input = buf.filled();
        let (n, data, done) = match left.as_mut() {
            Some(l) => {
                let take = usize::try_from(*l).unwrap_or(usize::MAX).min(input.len());
                *l -= take as u64;
                (take, input.get(..take).map(Bytes::copy_from_slice), *l == 0)
            }
            None => match decoder.decode(input) {
                Err(_) => return false,
                Ok((n, Decoded::Data { start, len })) => (
                    n,
                    input.get(start..start + len).map(Bytes::copy_from_slice),
                    false,
                ),
                Ok((n, Decoded::End)) => (n, None, true),
                Ok((n, _)) => (n, None, false),
            },
        };
        buf.consume(n);
        if let Some(d) = data.filter(|d| !d.is_empty()) {
            // A backend that stops taking the body must not hold the client forever.
            match super::within(idle, tx.send(d)).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
        if done {
            return true;
        }
        if n == 0 || buf.is_empty() {
            match super::within(idle, buf.read_from(stream)).await {
                Ok(Ok(r)) if r > 0 => {}
                _ => return false,
            }
        }
    }
}
