//! Requests of HTTP/2 clients to HTTP/1 backends, sent by the HTTP/1 engine: the head
//! is written from hyper's request parts into one buffer, the backend connection is a
//! bare pooled socket as for HTTP/1 clients, and the response body is read by polling
//! that socket from the HTTP/2 stream's own body (no connection task, no channel).
//!
//! A body that arrived whole (the common case) goes out with the head in one write and
//! can be replayed on a retry. A body still streaming from the client
//! ([`super::h2_upload`]) goes out once, `Content-Length` bytes when the client declared
//! a length, chunked otherwise (its trailers as chunked trailers); only attempts that
//! sent nothing are retried. A backend may answer before the upload ends: the response
//! body then moves to a task of its own ([`H1Body::detach`]) that drives the rest of the
//! upload beside it, and the connection is reused only if the upload ended too.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body::Frame;
use weir_balance::{Backend, InFlight, Pool};
use weir_h1::{ChunkedDecoder, Decoded, Framing, HeaderKind, Method, ResponseHead};
use weir_telemetry::UpstreamErrorKind;

use super::buf::Buf;
use super::conn::{self, Stream};
use super::exchange::{Answered, Exchange};
use super::h2_upload::FrameUpload;
use crate::http::{forward, UpstreamError};
use crate::outlier;

/// Error type of the bodies weir hands hyper (one definition, in weir-upstream, whose
/// request bodies carry it too).
pub(crate) use weir_upstream::BoxError;

/// Sends a prepared HTTP/2 client's request (head and whole body in `wire`) to `first`
/// of `pool`, with the engine's attempts and retry rules.
///
/// # Errors
///
/// The last attempt's error.
pub(crate) async fn forward_buffered(
    pool: &Arc<Pool>,
    first: weir_balance::Reserved<'_>,
    wire: &[u8],
    method: &http::Method,
    retries: &mut u32,
) -> Result<(Response<H1Body>, Arc<Backend>), UpstreamError> {
    let replayable = method_idempotent(method);
    forward_h1(pool, first, wire, method, replayable, None, retries).await
}

/// Sends a prepared HTTP/2 client's request whose body is streamed: its head in `wire`
/// (from [`wire_streamed`]), then `upload`. Never replayed: only an attempt that sent
/// nothing (a connect failure) is retried.
///
/// # Errors
///
/// The last attempt's error; the client's own body failing is a `Reset` whose cause
/// [`is_user`](crate::http::ResetCause::is_user).
pub(crate) async fn forward_streamed(
    pool: &Arc<Pool>,
    first: weir_balance::Reserved<'_>,
    wire: &[u8],
    method: &http::Method,
    upload: FrameUpload,
    retries: &mut u32,
) -> Result<(Response<H1Body>, Arc<Backend>), UpstreamError> {
    let upload = Some(Box::new(upload));
    forward_h1(pool, first, wire, method, false, upload, retries).await
}

async fn forward_h1(
    pool: &Arc<Pool>,
    first: weir_balance::Reserved<'_>,
    wire: &[u8],
    method: &http::Method,
    replayable: bool,
    frames: Option<Box<FrameUpload>>,
    retries: &mut u32,
) -> Result<(Response<H1Body>, Arc<Backend>), UpstreamError> {
    let m = to_method(method);
    let mut head = take_head();
    let mut ex: Exchange<'_, tokio::net::TcpStream> = Exchange {
        wire,
        body: None,
        frames,
        method: m,
        replayable,
        head: &mut head,
        client_failed: false,
    };
    let (answered, in_flight) = forward(pool, first, &mut ex, retries).await?;
    // What is left of a streamed upload goes on from the response body.
    let upload = ex.frames.take().filter(|f| !f.done);
    drop(ex);
    let Answered {
        stream,
        mut buf,
        status,
    } = answered;
    let headers = response_headers(&head, buf.filled(), status);
    let reusable = head.reusable();
    let framing = head.framing;
    buf.consume(head.len);
    give_back_head(head);
    let mut response = Response::new(H1Body {
        stream: Some(stream),
        buf: Some(buf),
        state: match framing {
            Framing::None => State::Done,
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::default()),
            Framing::Close => State::Close,
        },
        reusable,
        upload,
        idled: false,
        in_flight: None,
        pool: Arc::clone(pool),
        access: None,
    });
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    *response.headers_mut() = headers;
    let backend = Arc::clone(in_flight.backend());
    let body = response.body_mut();
    body.in_flight = Some(in_flight);
    if matches!(body.state, State::Done) {
        body.release();
    }
    Ok((response, backend))
}

/// The backend's header fields as hyper's map, without the hop-by-hop ones, its
/// `X-Request-Id` (weir sets its own) and a `Content-Length` that chunked framing or a
/// 204 voids. The head's bytes are copied once and every value is a slice of that copy:
/// two allocations per head instead of one per value.
fn response_headers(head: &ResponseHead, src: &[u8], status: u16) -> HeaderMap {
    let raw = Bytes::copy_from_slice(src.get(..head.len).unwrap_or_default());
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for h in &head.headers {
        let keep = match h.kind {
            HeaderKind::HopByHop | HeaderKind::ConnectionNamed | HeaderKind::XRequestId => false,
            HeaderKind::ContentLength => head.framing != Framing::Chunked,
            _ => true,
        };
        if !keep || (status == 204 && h.kind == HeaderKind::ContentLength) {
            continue;
        }
        let Ok(name) = HeaderName::from_bytes(h.name.of(src)) else {
            continue;
        };
        // As `Span::of`: a span outside the head is an empty value.
        let (start, end) = (h.value.start as usize, h.value.end as usize);
        let value = if start < end && end <= raw.len() {
            raw.slice(start..end)
        } else {
            Bytes::new()
        };
        if let Ok(v) = HeaderValue::from_maybe_shared(value) {
            headers.append(name, v);
        }
    }
    headers
}

/// Response heads kept per worker thread, as many as read buffers
/// ([`super::buf`]): one per stream waiting for its backend.
const HEADS_KEPT: usize = 128;

/// Field capacity beyond which a head is not kept.
const HEAD_FIELDS_KEPT: usize = 64;

thread_local! {
    // Boxed: the exchange's future holds the head by pointer, not inline, so moving the
    // future does not copy it.
    #[allow(clippy::vec_box)]
    static HEADS: std::cell::RefCell<Vec<Box<ResponseHead>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A response head from this worker's pool, its field vector keeping its capacity: a
/// fresh one per request cost an allocation and two growths of that vector (about 700
/// instructions, as much as the parse's own work on the fields). [`ResponseHead::parse`]
/// sets every field, so what an earlier exchange left is never read.
fn take_head() -> Box<ResponseHead> {
    HEADS.with(|h| h.borrow_mut().pop()).unwrap_or_default()
}

/// Returns a head to the pool (a failed exchange just drops its own).
fn give_back_head(head: Box<ResponseHead>) {
    // A head with an unusual number of fields does not keep its large vector.
    if head.headers.capacity() > HEAD_FIELDS_KEPT {
        return;
    }
    HEADS.with(|h| {
        let mut h = h.borrow_mut();
        if h.len() < HEADS_KEPT {
            h.push(head);
        }
    });
}

fn to_method(m: &http::Method) -> Method {
    match *m {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::OPTIONS => Method::Options,
        http::Method::TRACE => Method::Trace,
        http::Method::PATCH => Method::Patch,
        http::Method::CONNECT => Method::Connect,
        _ => Method::Other,
    }
}

fn method_idempotent(m: &http::Method) -> bool {
    to_method(m).is_idempotent()
}

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
    Done,
}

/// Writes of a pending upload per poll of the response body, so neither direction
/// starves the other.
const UPLOAD_STEPS_PER_POLL: usize = 16;

/// Response frames a detached body ([`H1Body::detach`]) may hold for its client: each
/// is at most one read of the backend (16 KiB).
const DETACHED_FRAMES: usize = 4;

/// The frames of a detached response body, as its task reads them; `None` is the
/// body's end. The channel closing without it means the task gave up (the upload
/// stalled, the backend failed): the client's stream must be reset, not ended, or a
/// cut-off answer would look complete.
pub(crate) type Detached = tokio::sync::mpsc::Receiver<Option<Result<Frame<Bytes>, BoxError>>>;

/// A backend's HTTP/1 response body, read from its connection as hyper polls it.
#[derive(Debug)]
pub(crate) struct H1Body {
    stream: Option<Stream>,
    buf: Option<Buf>,
    state: State,
    reusable: bool,
    /// The rest of a streamed request body, when the backend answered before it ended.
    upload: Option<Box<FrameUpload>>,
    /// The upload stalled for `timeouts.idle` after the answer: the exchange was torn
    /// down and the client's stream is to be reset (an error, not a clean end).
    idled: bool,
    in_flight: Option<InFlight>,
    pool: Arc<Pool>,
    pub(crate) access: Option<Box<crate::http::access::Access>>,
}

impl H1Body {
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the backend answered while the request body was still being uploaded.
    pub(crate) fn uploading(&self) -> bool {
        self.upload.is_some()
    }

    /// Moves this body into a task of its own that drives the rest of the upload
    /// whether or not the client reads the answer, and hands the answer over a channel
    /// of [`DETACHED_FRAMES`]. hyper polls a response body only while its stream has
    /// flow-control window, so an upload driven from the body stalled once a client that
    /// sends everything before reading had filled it (hyper's HTTP/1 client ran a task
    /// per connection for the same reason). Only for early answers: the task and its
    /// channel cost what the common case avoids.
    pub(crate) fn detach(mut self) -> Detached {
        let (tx, rx) = tokio::sync::mpsc::channel(DETACHED_FRAMES);
        tokio::spawn(async move {
            loop {
                let permit = {
                    let reserve = tx.reserve();
                    tokio::pin!(reserve);
                    std::future::poll_fn(|cx| {
                        if self.upload.is_some() {
                            self.drive_upload(cx);
                        }
                        if self.idled {
                            return Poll::Ready(None);
                        }
                        std::future::Future::poll(reserve.as_mut(), cx).map(Some)
                    })
                    .await
                };
                // Err: the client is gone (its stream reset); dropping `self` closes
                // the connection, left mid-message. None: the upload stalled while the
                // client read nothing either; closing the channel resets its stream.
                let Some(Ok(permit)) = permit else {
                    return;
                };
                let next = tokio::select! {
                    next = std::future::poll_fn(|cx| self.poll_data(cx)) => next,
                    () = tx.closed() => return,
                };
                match next {
                    Some(Err(e)) => {
                        permit.send(Some(Err(e)));
                        return;
                    }
                    Some(frame) => permit.send(Some(frame)),
                    None => {
                        permit.send(None);
                        return;
                    }
                }
            }
        });
        rx
    }

    /// The body ended: its connection goes back if it can be reused. An upload still
    /// going is cut off (dropping the client's body resets its HTTP/2 stream, as RFC
    /// 9113 §8.1 has a server do once it answered early) and the connection, left
    /// mid-request, is closed.
    fn release(&mut self) {
        let (Some(stream), Some(buf)) = (self.stream.take(), self.buf.take()) else {
            return;
        };
        let upload_done = self.upload.take().is_none();
        if let Some(f) = self.in_flight.take() {
            if self.reusable && upload_done && buf.is_empty() {
                conn::give_back(f.backend(), &self.pool, stream);
            }
        }
        buf.give_back();
    }

    #[cold]
    fn failed(&mut self, why: &str) {
        self.state = State::Done;
        self.stream = None;
        if let Some(b) = self.buf.take() {
            b.give_back();
        }
        if let Some(f) = self.in_flight.take() {
            let backend = f.backend();
            tracing::debug!(
                backend = backend.address(),
                error = why,
                "backend response body failed"
            );
            if let Some(m) = backend.metrics() {
                m.upstream_error(UpstreamErrorKind::Reset);
            }
            outlier::failure(&self.pool, backend, &why);
        }
    }

    /// Moves the rest of the upload on as far as it goes without blocking (its wake-ups
    /// come back here: hyper polls this body again).
    fn drive_upload(&mut self, cx: &mut Context<'_>) {
        let (Some(up), Some(stream)) = (self.upload.as_mut(), self.stream.as_mut()) else {
            return;
        };
        for _ in 0..UPLOAD_STEPS_PER_POLL {
            match up.poll_step(cx, stream) {
                Poll::Pending => {
                    if up.idle_expired(cx) {
                        self.idle_out();
                    }
                    return;
                }
                Poll::Ready(Ok(false)) => up.touch(),
                Poll::Ready(Ok(true)) => {
                    self.upload = None;
                    return;
                }
                Poll::Ready(Err(e)) => {
                    // The response may still come whole; the connection is not reused.
                    tracing::debug!(error = %e, "streamed request body failed after the response head");
                    self.reusable = false;
                    self.upload = None;
                    return;
                }
            }
        }
        // More to move: come back after the response side had its turn.
        cx.waker().wake_by_ref();
    }

    /// The upload stalled for `timeouts.idle` after the answer's head: the backend
    /// connection (left mid-request and mid-answer) is closed. Not a failure of the
    /// backend's: the client may be the one that stopped, and a client must not get
    /// healthy backends ejected.
    #[cold]
    fn idle_out(&mut self) {
        tracing::debug!(
            backend = self.in_flight.as_ref().map(|f| f.backend().address()),
            "streamed request body idle after the response head: stream reset"
        );
        self.idled = true;
        self.upload = None;
        self.state = State::Done;
        self.stream = None;
        self.in_flight = None;
        if let Some(b) = self.buf.take() {
            b.give_back();
        }
    }

    pub(crate) fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.upload.is_some() {
            self.drive_upload(cx);
        }
        if self.idled {
            return Poll::Ready(Some(
                Err("request body idle after the response head".into()),
            ));
        }
        loop {
            let Some(buf) = self.buf.as_mut() else {
                return Poll::Ready(None);
            };
            if !buf.is_empty() {
                let input = buf.filled();
                let (used, data, end) = match &mut self.state {
                    State::Done => (0, None, true),
                    State::Length(left) => length_step(left, input),
                    State::Close => (input.len(), Some(Bytes::copy_from_slice(input)), false),
                    State::Chunked(d) => match d.decode(input) {
                        Err(e) => {
                            self.failed(e.0);
                            return Poll::Ready(Some(Err(
                                "bad chunked framing from the backend".into()
                            )));
                        }
                        Ok(step) => chunked_step(step, input),
                    },
                };
                buf.consume(used);
                if end {
                    self.state = State::Done;
                    self.release();
                }
                if let Some(d) = data.filter(|d| !d.is_empty()) {
                    if let Some(a) = self.access.as_mut() {
                        a.bytes_out += d.len() as u64;
                    }
                    if let Some(up) = self.upload.as_mut() {
                        up.touch();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                if end {
                    return Poll::Ready(None);
                }
                if used > 0 {
                    continue;
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(None);
            };
            let Some(buf) = self.buf.as_mut() else {
                return Poll::Ready(None);
            };
            match buf.poll_read_from(cx, stream) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if matches!(self.state, State::Close) => {
                    self.state = State::Done;
                    self.stream = None;
                    if let Some(b) = self.buf.take() {
                        b.give_back();
                    }
                    self.in_flight = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    self.failed("closed before the end of the body");
                    return Poll::Ready(Some(Err("backend closed the body early".into())));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    self.failed("read failed");
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }
}

impl Drop for H1Body {
    fn drop(&mut self) {
        // A body dropped half-read leaves its connection mid-message: closed, not reused.
        if !matches!(self.state, State::Done) {
            self.stream = None;
        }
        if let Some(b) = self.buf.take() {
            b.give_back();
        }
    }
}

/// One step through a body of `left` more bytes, over the buffered `input`: the bytes
/// used, the data among them (copied out), and whether the body is now complete.
pub(super) fn length_step(left: &mut u64, input: &[u8]) -> (usize, Option<Bytes>, bool) {
    let take = usize::try_from(*left)
        .unwrap_or(usize::MAX)
        .min(input.len());
    *left -= take as u64;
    (
        take,
        input.get(..take).map(Bytes::copy_from_slice),
        *left == 0,
    )
}

/// [`length_step`] for a chunked body: what the decoder made of `input` (`used`
/// bytes and what they were) as bytes used, data (copied out) and whether it ended;
/// trailers are dropped.
pub(super) fn chunked_step(
    (used, decoded): (usize, Decoded),
    input: &[u8],
) -> (usize, Option<Bytes>, bool) {
    match decoded {
        Decoded::Data { start, len } => (
            used,
            input.get(start..start + len).map(Bytes::copy_from_slice),
            false,
        ),
        Decoded::End => (used, None, true),
        _ => (used, None, false),
    }
}
