//! Sending a backend's answer on: the response head written from the backend's spans,
//! the body pumped (beside the rest of a streamed upload when the answer came first),
//! the backend connection given back when it can be reused, and a 101 turned into a
//! tunnel.

use std::sync::Arc;

use weir_balance::InFlight;
use weir_h1::{Framing, Version};
use weir_telemetry::UpstreamErrorKind;

use super::answer::{reply, Answer, Own, RequestId};
use super::body::{self, pump, Dechunk, PumpError, Sink, Source};
use super::buf::Buf;
use super::conn;
use super::exchange::Answered;
use super::request::{Next, Scratch};
use super::server::{ClientStream, Ctx};
use super::upload::Upload;
use super::write::{self, Out};
use crate::outlier;

/// Sends the backend's response to the client, in the request's HTTP version: a 101
/// the request asked for becomes a tunnel ([`tunnel`]); any other answer is its head
/// ([`framing`], [`write::response`]), its body ([`send_body`], beside the rest of a
/// streamed upload) and the backend connection given back or dropped ([`finish`]).
#[allow(clippy::too_many_arguments)]
pub(super) async fn respond<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
    keep: bool,
    upgrade: bool,
    mut answered: Answered,
    in_flight: InFlight,
    pool: &Arc<weir_balance::Pool>,
    stamps: write::Stamps<'_>,
    idle: std::time::Duration,
    answer: &mut Answer<'_>,
    mut upload: Option<Upload>,
) -> Next {
    let version = sc.req.version;
    let backend = Arc::clone(in_flight.backend());
    let status = answered.status;
    if status == 101 {
        if !upgrade || upload.is_some() {
            tracing::debug!(
                pool = pool.name(),
                backend = backend.address(),
                "101 without an upgrade request"
            );
            answered.buf.give_back();
            let msg = "backend switched protocols unasked";
            let own = Own::closing(502, msg, id, version);
            return reply(stream, ctx, sc, own, Some(answer)).await;
        }
        answer.backend_answered(&backend, 101);
        return tunnel(stream, buf, sc, id, answered, in_flight, idle, answer).await;
    }
    answer.backend_answered(&backend, status);
    let (out_mode, source) = framing(sc.resp.framing, version);
    let mut keep = keep && out_mode != Out::Close && !ctx.scope.says_close();
    let keep_alive = match (keep, version) {
        (false, _) => None,
        (true, Version::Http10) => Some(true),
        (true, Version::Http11) => Some(false),
    };
    let reusable = sc.resp.reusable();
    sc.out.clear();
    write::response(
        &sc.resp,
        answered.buf.filled(),
        version,
        out_mode,
        id.as_bytes(),
        keep_alive,
        stamps,
        &mut sc.out,
    );
    answered.buf.consume(sc.resp.len);
    answer.head_sent(status);
    let sink = match out_mode {
        Out::Chunked => Sink::Chunked {
            trailers: sc.req.te_trailers,
        },
        Out::AsIs | Out::Close => Sink::Raw,
    };
    let body = (source, sink);
    let moved = send_body(
        stream,
        buf,
        sc,
        &mut answered,
        body,
        idle,
        answer,
        upload.as_mut(),
    );
    let (moved, rest_ok) = moved.await;
    keep &= rest_ok;
    let upload_ok = upload.as_ref().is_none_or(|u| u.done);
    if let Some(u) = upload.take() {
        sc.spare = u.into_buffer();
    }
    let reusable = reusable && upload_ok;
    finish(moved, answered, in_flight, pool, reusable, keep, answer)
}

/// Turns an asked-for 101 into a tunnel: the backend's head (and whatever came after
/// it) to the client, what the client sent early to the backend, then both ways.
#[allow(clippy::too_many_arguments)]
async fn tunnel<S: ClientStream>(
    stream: &mut S,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
    answered: Answered,
    in_flight: InFlight,
    idle: std::time::Duration,
    answer: &mut Answer<'_>,
) -> Next {
    let Answered {
        stream: mut up,
        buf: mut upbuf,
        ..
    } = answered;
    sc.out.clear();
    write::response(
        &sc.resp,
        upbuf.filled(),
        sc.req.version,
        Out::AsIs,
        id.as_bytes(),
        None,
        write::Stamps::default(),
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
    Next::Upgrade(Box::new(super::tunnel::Tunnel::new(up, in_flight, idle)))
}

/// How a response framed as `framing` goes to a client speaking `version`: the framing
/// written, and how its body is read from the backend (`None`: it has none). An
/// HTTP/1.0 client gets a body of unknown length by the connection's close.
fn framing(framing: Framing, version: Version) -> (Out, Option<Source>) {
    match framing {
        Framing::None => (Out::AsIs, None),
        Framing::Length(n) => (Out::AsIs, Some(Source::Length(n))),
        Framing::Chunked if version == Version::Http11 => {
            (Out::Chunked, Some(Source::Chunked(Dechunk::default())))
        }
        Framing::Chunked => (Out::Close, Some(Source::Chunked(Dechunk::default()))),
        Framing::Close if version == Version::Http11 => (Out::Chunked, Some(Source::Close)),
        Framing::Close => (Out::Close, Some(Source::Close)),
    }
}

/// Sends the head in `sc.out` and the body (read as `source`, written as `sink`) to the
/// client; with a streamed `upload` still going, moves its rest to the backend at the
/// same time. The bytes of body sent, and whether the upload's rest went through.
#[allow(clippy::too_many_arguments)]
async fn send_body<S: ClientStream>(
    stream: &mut S,
    buf: &mut Buf,
    sc: &mut Scratch,
    answered: &mut Answered,
    (source, sink): (Option<Source>, Sink),
    idle: std::time::Duration,
    answer: &mut Answer<'_>,
    upload: Option<&mut Upload>,
) -> (Result<u64, PumpError>, bool) {
    let Answered {
        stream: up,
        buf: upbuf,
        ..
    } = answered;
    let Some(upload) = upload else {
        let moved = match source {
            None => body::write(stream, &sc.out, idle).await.map(|()| 0),
            Some(source) => pump(up, upbuf, stream, source, sink, &mut sc.out, idle).await,
        };
        return (moved, true);
    };
    // Both directions at once: the rest of the request body up, the response down.
    let (mut client_rd, mut client_wr) = tokio::io::split(&mut *stream);
    let (mut up_rd, mut up_wr) = tokio::io::split(up);
    let down = async {
        match source {
            None => body::write(&mut client_wr, &sc.out, idle).await.map(|()| 0),
            Some(source) => {
                pump(
                    &mut up_rd,
                    upbuf,
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
    (down, rest.is_ok())
}

/// After the body: on success the backend connection is given back if `reusable` and
/// nothing of the next response is buffered; a body the backend broke off counts as a
/// reset for passive checks. The connection to the client stays open if `keep`.
fn finish(
    moved: Result<u64, PumpError>,
    answered: Answered,
    in_flight: InFlight,
    pool: &Arc<weir_balance::Pool>,
    reusable: bool,
    keep: bool,
    answer: &mut Answer<'_>,
) -> Next {
    let Answered {
        stream: up,
        buf: upbuf,
        ..
    } = answered;
    let backend = Arc::clone(in_flight.backend());
    match moved {
        Ok(n) => {
            if let Some(a) = answer.access.as_mut() {
                a.bytes_out = n;
            }
            if reusable && upbuf.is_empty() {
                conn::give_back(&backend, pool, up);
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
