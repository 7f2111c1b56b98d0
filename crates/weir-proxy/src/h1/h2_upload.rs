//! An HTTP/2 client's request as an HTTP/1 backend gets it: the head written from
//! hyper's request parts, and a body streamed from the client as hyper's DATA frames
//! come, `Content-Length` bytes as they are when the client declared a length, chunks
//! framed by weir otherwise, with the client's trailers as chunked trailers.
//!
//! The upload is a poll-driven state (no task, no channel, no second buffer): one frame
//! at a time is framed into a small output buffer and written before the next is
//! polled, so what it holds is bounded by one DATA frame (hyper's 16 KiB). It is
//! polled first beside the backend's response head ([`super::exchange`]), then, if the
//! backend answered before the upload ended, from the response body that hyper polls
//! ([`super::from_h2::H1Body`]): the same task moves both directions, as
//! [`super::upload`] does for HTTP/1 clients.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{request, HeaderMap};
use http_body::{Body, Frame};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};
use weir_h1::{chunk_header, LAST_CHUNK};

use super::body::PumpError;
use super::write::decimal;
use crate::http::headers::{self, Forwarding};
use crate::http::ReqBody;

/// The head of an HTTP/1.1 request for `parts`, with `body` (held whole) after it.
/// `direct`: `parts` is the client's and its prepared lines are written straight from it
/// ([`headers::write_prepared`]); `None`: `parts` was prepared already.
pub(crate) fn wire(
    parts: &request::Parts,
    direct: Option<Forwarding<'_>>,
    body: &[u8],
    out: &mut Vec<u8>,
) {
    head_lines(parts, direct, out);
    if !body.is_empty() || needs_length(&parts.method) {
        out.extend_from_slice(b"content-length: ");
        decimal(out, body.len() as u64);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// The head of an HTTP/1.1 request for `parts` whose body is streamed after it: the
/// client's `Content-Length` when it declared one (every value the same number), else
/// `Transfer-Encoding: chunked`, as hyper's client framed such a body.
pub(crate) fn wire_streamed(
    parts: &request::Parts,
    direct: Option<Forwarding<'_>>,
    out: &mut Vec<u8>,
) -> Framing {
    let mut length = None;
    let mut agreed = true;
    for v in parts.headers.get_all(http::header::CONTENT_LENGTH) {
        let n = std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        match (n, length) {
            (Some(n), None) => length = Some(n),
            (Some(n), Some(m)) if n == m => {}
            _ => agreed = false,
        }
    }
    head_lines(parts, direct, out);
    let framing = match length.filter(|_| agreed) {
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            decimal(out, n);
            out.extend_from_slice(b"\r\n");
            Framing::Length(n)
        }
        None => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// The request line and every header but `Content-Length` (the caller frames the body).
#[inline]
fn head_lines(parts: &request::Parts, direct: Option<Forwarding<'_>>, out: &mut Vec<u8>) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(pq.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(fwd) = direct {
        headers::write_prepared(parts, fwd, out);
        return;
    }
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Methods whose empty body is still said (`Content-Length: 0`), as hyper's client did.
fn needs_length(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}

/// How the body is framed to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` from the client: exactly this many bytes are left.
    Length(u64),
    /// `Transfer-Encoding: chunked`, written by weir.
    Chunked,
}

/// A streamed HTTP/2 request body on its way to an HTTP/1 backend.
#[derive(Debug)]
pub(crate) struct FrameUpload {
    body: ReqBody,
    framing: Framing,
    /// Framed bytes to write, from `pos`.
    out: Vec<u8>,
    pos: usize,
    /// The client's body ended (what is left is in `out`).
    read_all: bool,
    /// Everything is written and flushed.
    pub(crate) done: bool,
    /// Bytes were written since the last flush.
    unflushed: bool,
    /// The listener's `timeouts.idle`.
    idle: Duration,
    /// Runs once the backend answered with the upload still going (before that, the
    /// response timeout bounds the exchange); reset by traffic in either direction.
    idle_timer: Option<Pin<Box<Sleep>>>,
}

impl FrameUpload {
    pub(crate) fn new(body: ReqBody, framing: Framing, idle: Duration) -> FrameUpload {
        FrameUpload {
            body,
            framing,
            out: Vec::new(),
            pos: 0,
            read_all: false,
            done: false,
            unflushed: false,
            idle,
            idle_timer: None,
        }
    }

    /// Whether the upload, polled after the backend's answer, has moved nothing either
    /// way for `idle` (the timer starts at the first call). A client that stops sending
    /// or a backend that stops reading would otherwise hold the stream and the backend
    /// connection until the HTTP/2 connection ends.
    pub(crate) fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let idle = self.idle;
        let timer = self
            .idle_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        timer.as_mut().poll(cx).is_ready()
    }

    /// Traffic moved (a write of the upload, a frame of the answer): the idle timer,
    /// if it runs, starts again.
    pub(crate) fn touch(&mut self) {
        if let Some(t) = self.idle_timer.as_mut() {
            t.as_mut().reset(Instant::now() + self.idle);
        }
    }

    /// Moves the upload on until it would block: `Ready(Ok(true))` once all of it is
    /// written and flushed, `Ready(Ok(false))` after each write (so a caller polling the
    /// response beside it gets its turn).
    ///
    /// # Errors
    ///
    /// `Source`/`Framing`: the client's body failed; `Sink`: writing to the backend.
    pub(crate) fn poll_step<W>(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut W,
    ) -> Poll<Result<bool, PumpError>>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        loop {
            if self.done {
                return Poll::Ready(Ok(true));
            }
            if let Some(pending) = self.out.get(self.pos..).filter(|p| !p.is_empty()) {
                let n =
                    ready!(Pin::new(&mut *dst).poll_write(cx, pending)).map_err(PumpError::Sink)?;
                if n == 0 {
                    return Poll::Ready(Err(PumpError::Sink(std::io::ErrorKind::WriteZero.into())));
                }
                self.pos += n;
                self.unflushed = true;
                if self.pos >= self.out.len() {
                    self.out.clear();
                    self.pos = 0;
                }
                return Poll::Ready(Ok(false));
            }
            if self.read_all {
                ready!(Pin::new(&mut *dst).poll_flush(cx)).map_err(PumpError::Sink)?;
                self.done = true;
                return Poll::Ready(Ok(true));
            }
            let frame = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    // A TLS stream may hold written bytes in its own buffer: flush them
                    // before waiting for the client, or the backend might never see
                    // what it needs to answer.
                    if self.unflushed {
                        ready!(Pin::new(&mut *dst).poll_flush(cx)).map_err(PumpError::Sink)?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
            };
            match frame {
                None => self.end(None)?,
                Some(Ok(frame)) => self.frame(frame)?,
                Some(Err(e)) => {
                    return Poll::Ready(Err(PumpError::Source(std::io::Error::other(e))))
                }
            }
        }
    }

    /// The next step, as a future (dropping it loses nothing: the state is `self`'s).
    pub(crate) async fn step<W>(&mut self, dst: &mut W) -> Result<bool, PumpError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        std::future::poll_fn(|cx| self.poll_step(cx, dst)).await
    }

    /// Frames one of the client's frames into `out`.
    fn frame(&mut self, frame: Frame<Bytes>) -> Result<(), PumpError> {
        match frame.into_data() {
            Ok(data) => self.data(&data),
            Err(frame) => match frame.into_trailers() {
                // Trailers end an HTTP/2 stream.
                Ok(trailers) => self.end(Some(&trailers)),
                Err(_) => Ok(()),
            },
        }
    }

    fn data(&mut self, data: &[u8]) -> Result<(), PumpError> {
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.framing {
            Framing::Length(left) => {
                // h2 checks DATA against `content-length` too; this keeps the backend's
                // framing exact whatever reaches here.
                let len = data.len() as u64;
                if len > *left {
                    return Err(PumpError::Framing("body longer than its content-length"));
                }
                *left -= len;
                self.out.extend_from_slice(data);
            }
            Framing::Chunked => {
                chunk_header(data.len(), &mut self.out);
                self.out.extend_from_slice(data);
                self.out.extend_from_slice(b"\r\n");
            }
        }
        Ok(())
    }

    /// The client's body ended, with `trailers` if it sent some.
    fn end(&mut self, trailers: Option<&HeaderMap>) -> Result<(), PumpError> {
        self.read_all = true;
        match self.framing {
            Framing::Length(0) => Ok(()),
            Framing::Length(_) => Err(PumpError::Framing("body shorter than its content-length")),
            Framing::Chunked => {
                match trailers.filter(|t| !t.is_empty()) {
                    None => self.out.extend_from_slice(LAST_CHUNK),
                    Some(trailers) => {
                        self.out.extend_from_slice(b"0\r\n");
                        for (name, value) in trailers {
                            if !allowed_in_trailers(name) {
                                continue;
                            }
                            self.out.extend_from_slice(name.as_str().as_bytes());
                            self.out.extend_from_slice(b": ");
                            self.out.extend_from_slice(value.as_bytes());
                            self.out.extend_from_slice(b"\r\n");
                        }
                        self.out.extend_from_slice(b"\r\n");
                    }
                }
                Ok(())
            }
        }
    }
}

/// Fields that must not arrive as trailers (framing, routing, authentication: RFC 9110
/// §6.5.1), dropped as hyper's encoder drops them.
fn allowed_in_trailers(name: &HeaderName) -> bool {
    // Hop-by-hop and weir's own fields too: a backend merging trailers into the head
    // must not find a spoofed `X-Forwarded-For` or request id there.
    let name_str = name.as_str();
    if name_str.starts_with("x-forwarded-")
        || matches!(name_str, "x-request-id" | "keep-alive" | "proxy-connection")
    {
        return false;
    }
    !matches!(
        *name,
        header::CONNECTION
            | header::UPGRADE
            | header::PROXY_AUTHORIZATION
            | header::PROXY_AUTHENTICATE
            | header::EXPECT
            | header::RANGE
            | header::PRAGMA
            | header::AUTHORIZATION
            | header::CACHE_CONTROL
            | header::CONTENT_ENCODING
            | header::CONTENT_LENGTH
            | header::CONTENT_RANGE
            | header::CONTENT_TYPE
            | header::HOST
            | header::MAX_FORWARDS
            | header::SET_COOKIE
            | header::TRAILER
            | header::TRANSFER_ENCODING
            | header::TE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed_head(req: http::request::Builder) -> (String, Framing) {
        let (parts, ()) = req.body(()).expect("request").into_parts();
        let mut out = Vec::new();
        let framing = wire_streamed(&parts, None, &mut out);
        (String::from_utf8(out).expect("ascii head"), framing)
    }

    #[test]
    fn a_declared_length_is_kept_and_any_other_body_is_chunked() {
        let (head, framing) = streamed_head(
            http::Request::put("/f?x=1")
                .header("host", "a.test")
                .header("content-length", "12"),
        );
        assert_eq!(framing, Framing::Length(12));
        assert_eq!(
            head,
            "PUT /f?x=1 HTTP/1.1\r\nhost: a.test\r\ncontent-length: 12\r\n\r\n"
        );
        let (head, framing) = streamed_head(http::Request::post("/").header("host", "a.test"));
        assert_eq!(framing, Framing::Chunked);
        assert_eq!(
            head,
            "POST / HTTP/1.1\r\nhost: a.test\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        // Lengths that disagree (or are not numbers) are not trusted: chunked, without them.
        for (a, b) in [("5", "6"), ("5", "x5")] {
            let (head, framing) = streamed_head(
                http::Request::post("/")
                    .header("content-length", a)
                    .header("content-length", b),
            );
            assert_eq!(framing, Framing::Chunked, "{a}, {b}");
            assert!(!head.contains("content-length"), "{head}");
        }
    }
}
