//! Requests of HTTP/2 clients to HTTP/1 backends, sent by the HTTP/1 engine: the head
//! is written from hyper's request parts into one buffer, the backend connection is a
//! bare pooled socket as for HTTP/1 clients, and the response body is read by polling
//! that socket from the HTTP/2 stream's own body (no connection task, no channel).
//!
//! Requests whose body is streamed from the client keep hyper's HTTP/1 client (the
//! engine's uploads read from an HTTP/1 connection); bodyless and buffered ones, the
//! common case, come here.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{request, HeaderMap, Response, StatusCode};
use http_body::Frame;
use weir_balance::{Backend, InFlight, Pool};
use weir_h1::{ChunkedDecoder, Decoded, Framing, HeaderKind, Method, ResponseHead};
use weir_telemetry::UpstreamErrorKind;

use super::buf::Buf;
use super::conn::{self, Stream};
use super::exchange::{Answered, Exchange};
use super::write::decimal;
use crate::http::{forward, UpstreamError};
use crate::outlier;

/// Error type of the bodies weir hands hyper.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The head of an HTTP/1.1 request for `parts` (already prepared for the backend), with
/// `body` (held whole) after it.
pub(crate) fn wire(parts: &request::Parts, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(pq.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || needs_length(&parts.method) {
        out.extend_from_slice(b"content-length: ");
        decimal(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Methods whose empty body is still said (`Content-Length: 0`), as hyper's client did.
fn needs_length(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}

/// Sends a prepared HTTP/2 client's request (head and whole body in `wire`) to `first`
/// of `pool`, with the engine's attempts and retry rules.
///
/// # Errors
///
/// The last attempt's error.
pub(crate) async fn forward_buffered(
    pool: &Arc<Pool>,
    first: &Arc<Backend>,
    wire: &[u8],
    method: &http::Method,
    retries: &mut u32,
) -> Result<(Response<H1Body>, Arc<Backend>), UpstreamError> {
    let m = to_method(method);
    let mut head = Box::<ResponseHead>::default();
    let mut ex: Exchange<'_, tokio::net::TcpStream> = Exchange {
        wire,
        body: None,
        method: m,
        replayable: method_idempotent(method),
        head: &mut head,
        client_failed: false,
    };
    let (answered, in_flight) = forward(pool, first, &mut ex, retries).await?;
    drop(ex);
    let Answered {
        stream,
        mut buf,
        status,
    } = answered;
    let src = buf.filled();
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
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(h.name.of(src)),
            HeaderValue::from_bytes(h.value.of(src)),
        ) {
            headers.append(n, v);
        }
    }
    let reusable = head.reusable();
    let framing = head.framing;
    buf.consume(head.len);
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

/// A backend's HTTP/1 response body, read from its connection as hyper polls it.
#[derive(Debug)]
pub(crate) struct H1Body {
    stream: Option<Stream>,
    buf: Option<Buf>,
    state: State,
    reusable: bool,
    in_flight: Option<InFlight>,
    pool: Arc<Pool>,
    pub(crate) access: Option<Box<crate::http::access::Access>>,
}

impl H1Body {
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The body ended: its connection goes back if it can be reused.
    fn release(&mut self) {
        let (Some(stream), Some(buf)) = (self.stream.take(), self.buf.take()) else {
            return;
        };
        if let Some(f) = self.in_flight.take() {
            if self.reusable && buf.is_empty() {
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

    pub(crate) fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(buf) = self.buf.as_mut() else {
                return Poll::Ready(None);
            };
            if !buf.is_empty() {
                let input = buf.filled();
                let (used, data, end) = match &mut self.state {
                    State::Done => (0, None, true),
                    State::Length(left) => {
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
                    State::Close => (input.len(), Some(Bytes::copy_from_slice(input)), false),
                    State::Chunked(d) => match d.decode(input) {
                        Err(e) => {
                            self.failed(e.0);
                            return Poll::Ready(Some(Err(
                                "bad chunked framing from the backend".into()
                            )));
                        }
                        Ok((n, Decoded::Data { start, len })) => (
                            n,
                            input.get(start..start + len).map(Bytes::copy_from_slice),
                            false,
                        ),
                        Ok((n, Decoded::End)) => (n, None, true),
                        Ok((n, _)) => (n, None, false),
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
