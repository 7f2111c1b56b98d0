//! The bodies weir streams: requests to backends, responses to clients.
//!
//! Nothing is buffered whole. A request body's first frame is read before a backend is
//! picked (to refuse a bad chunked body with 400 before any backend sees it); if that
//! frame ends the body, the body is kept as [`ReqBody::Buffered`] and can be replayed on
//! a retry, otherwise the first frame is sent ahead of the rest of the stream.
//!
//! A backend response is streamed back as [`ResBody::Upstream`], which also carries the
//! backend's in-flight guard and the pooled connection: both are released when hyper
//! drops the body, the connection going back to its backend's idle queue only if the
//! body was read to its end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use weir_balance::InFlight;

use super::upstream::{self, Sender};
use crate::io::RequestGuard;

/// A request body on its way to a backend.
#[derive(Debug)]
pub(crate) enum ReqBody {
    /// No body.
    Empty,
    /// The whole body, read with its first frame; cheap to clone for a retry.
    Buffered {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// The first frame, already read, then the rest of the client's stream.
    Streaming {
        first: Option<Frame<Bytes>>,
        rest: Incoming,
    },
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            ReqBody::Streaming { first, rest } => {
                if let Some(frame) = first.take() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                Pin::new(rest).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            ReqBody::Streaming { first, rest } => first.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ReqBody::Streaming { first, rest } => {
                let ahead = first
                    .as_ref()
                    .and_then(Frame::data_ref)
                    .map_or(0, |d| d.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(ahead));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(ahead));
                }
                hint
            }
        }
    }
}

/// A response body on its way to a client.
#[derive(Debug)]
pub(crate) enum ResBody {
    /// A short body weir wrote itself (errors, 404).
    Text {
        data: Option<Bytes>,
        _request: Option<RequestGuard>,
    },
    /// A backend's body, streamed.
    Upstream(UpstreamBody),
}

/// A backend's response body and what must be released when it ends.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Incoming,
    /// Whether `poll_frame` saw the end (for bodies whose end is known only then).
    done: bool,
    /// The connection, to return to its backend's idle queue once the body is read.
    sender: Option<Sender>,
    in_flight: InFlight,
    _request: RequestGuard,
}

impl ResBody {
    /// A text/plain body written by weir.
    pub(crate) fn text(data: impl Into<Bytes>, request: Option<RequestGuard>) -> Self {
        ResBody::Text {
            data: Some(data.into()),
            _request: request,
        }
    }

    /// No body (a 101's).
    pub(crate) fn empty() -> Self {
        ResBody::Text {
            data: None,
            _request: None,
        }
    }

    /// A backend's body; `sender` is returned to the idle queue when it is read fully.
    pub(crate) fn upstream(
        inner: Incoming,
        sender: Option<Sender>,
        in_flight: InFlight,
        request: RequestGuard,
    ) -> Self {
        ResBody::Upstream(UpstreamBody {
            inner,
            done: false,
            sender,
            in_flight,
            _request: request,
        })
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResBody::Text { data, .. } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ResBody::Upstream(up) => {
                let res = Pin::new(&mut up.inner).poll_frame(cx);
                match &res {
                    Poll::Ready(None) => {
                        up.done = true;
                        up.release();
                    }
                    Poll::Ready(Some(Ok(_))) if up.inner.is_end_stream() => up.release(),
                    Poll::Ready(Some(Err(e))) => {
                        tracing::debug!(error = %e, "backend response body failed");
                        up.sender = None;
                    }
                    _ => {}
                }
                res
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Text { data, .. } => data.is_none(),
            ResBody::Upstream(up) => up.done || up.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Text { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResBody::Upstream(up) => up.inner.size_hint(),
        }
    }
}

// === impl UpstreamBody ===

impl UpstreamBody {
    /// Returns the connection to the idle queue if the body was read to its end.
    fn release(&mut self) {
        if let Some(sender) = self.sender.take() {
            if self.done || self.inner.is_end_stream() {
                upstream::give_back(self.in_flight.backend(), sender);
            }
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // hyper drops the body without polling it when it is empty from the start (HEAD,
        // 204, 304, `content-length: 0`); the connection is still reusable then. A body
        // dropped half-read leaves the connection mid-message: it is closed instead.
        self.release();
    }
}
