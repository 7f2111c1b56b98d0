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

/// Sends the backend's response head and body to the client, in the request's HTTP
/// version.
#[allow(clippy::too_many_arguments)]
pub(super) async fn respond<S: ClientStream>(
    stream: &mut S,
    ctx: &Ctx,
    buf: &mut Buf,
    sc: &mut Scratch,
    id: &RequestId,
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
    let version = sc.req.version;
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
            let own = Own::closing(502, msg, id, version);
            return reply(stream, ctx, sc, own, Some(answer)).await;
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
