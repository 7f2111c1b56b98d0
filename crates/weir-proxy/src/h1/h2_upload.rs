//! A request body streamed from an HTTP/2 client to an HTTP/1 backend: hyper's DATA
//! frames written to the backend socket as they come, `Content-Length` bytes as they are
//! when the client declared a length, chunks framed by weir otherwise, with the
//! client's trailers as chunked trailers.
//!
//! The upload is a poll-driven state (no task, no channel, no second buffer): one frame
//! at a time is framed into a small output buffer and written before the next is
//! polled, so what it holds is bounded by one DATA frame (hyper's 16 KiB). It is
//! polled first beside the backend's response head ([`super::exchange`]), then, if the
//! backend answered before the upload ended, from the response body that hyper polls
//! ([`super::from_h2::H1Body`]): the same task moves both directions, as
//! [`super::upload`] does for HTTP/1 clients.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::HeaderMap;
use http_body::{Body, Frame};
use tokio::io::AsyncWrite;
use weir_h1::{chunk_header, LAST_CHUNK};

use super::body::PumpError;
use crate::http::ReqBody;

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
}

impl FrameUpload {
    pub(crate) fn new(body: ReqBody, framing: Framing) -> FrameUpload {
        FrameUpload {
            body,
            framing,
            out: Vec::new(),
            pos: 0,
            read_all: false,
            done: false,
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
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
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
    !matches!(
        *name,
        header::AUTHORIZATION
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
