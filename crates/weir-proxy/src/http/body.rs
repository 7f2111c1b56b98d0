//! The bodies weir streams: requests to backends, responses to clients.
//!
//! Nothing is buffered whole. A request body's first frame is read before a backend is
//! picked (to refuse a bad chunked body with 400 before any backend sees it); if that
//! frame ends the body, the body is kept as [`ReqBody::Buffered`] and can be replayed on
//! a retry, otherwise the first frame is sent ahead of the rest of the stream.
//!
//! A response from an HTTP/2 backend is streamed back as [`ResBody::Upstream`], which
//! also carries the backend's in-flight guard, released when hyper drops the body (the
//! connection is the backend's shared one, never queued); one from an HTTP/1 backend is
//! [`ResBody::H1`], read by weir's engine. A body the backend breaks off is counted as a
//! reset, for the metrics and passive checking, as one before the head is.
//!
//! With the access log on, both bodies also count the bytes they pass (request bytes
//! into a shared counter, response bytes into the [`Access`] record the response body
//! carries and logs when it is dropped). Off, those fields are `None` and cost a branch.

use std::pin::Pin;

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use weir_balance::{InFlight, Pool};
use weir_telemetry::UpstreamErrorKind;

use super::access::Access;
use crate::io::RequestGuard;
use crate::outlier;

pub(crate) use weir_upstream::ReqBody;

/// A response body on its way to a client.
#[derive(Debug)]
pub(crate) enum ResBody {
    /// A short body weir wrote itself (errors, 404).
    Text {
        data: Option<Bytes>,
        _request: Option<RequestGuard>,
        access: Option<Box<Access>>,
    },
    /// An HTTP/2 backend's body, streamed.
    Upstream(UpstreamBody),
    /// A backend's body read by weir's HTTP/1 engine ([`crate::h1`]), for an HTTP/2
    /// client.
    H1 {
        body: crate::h1::H1Body,
        _request: RequestGuard,
    },
    /// The same, for an answer that came while the request body was still uploading:
    /// read by a task of its own ([`crate::h1::H1Body::detach`]).
    H1Detached {
        frames: crate::h1::Detached,
        done: bool,
        access: Option<Box<Access>>,
        _request: RequestGuard,
    },
}

/// A backend's response body and what must be released when it ends.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Incoming,
    /// Whether `poll_frame` saw the end (for bodies whose end is known only then).
    done: bool,
    in_flight: InFlight,
    /// The backend's pool, told when the backend breaks the body off.
    pool: Arc<Pool>,
    /// The access-log record, logged when the body is dropped.
    access: Option<Box<Access>>,
    _request: RequestGuard,
}

impl ResBody {
    /// A text/plain body written by weir.
    pub(crate) fn text(data: impl Into<Bytes>, request: Option<RequestGuard>) -> Self {
        ResBody::Text {
            data: Some(data.into()),
            _request: request,
            access: None,
        }
    }

    /// An HTTP/2 backend's body.
    pub(crate) fn upstream(
        inner: Incoming,
        in_flight: InFlight,
        pool: Arc<Pool>,
        request: RequestGuard,
    ) -> Self {
        ResBody::Upstream(UpstreamBody {
            inner,
            done: false,
            in_flight,
            pool,
            access: None,
            _request: request,
        })
    }

    /// A body from weir's HTTP/1 engine.
    pub(crate) fn h1(body: crate::h1::H1Body, request: RequestGuard) -> Self {
        if body.uploading() {
            return ResBody::H1Detached {
                frames: body.detach(),
                done: false,
                access: None,
                _request: request,
            };
        }
        ResBody::H1 {
            body,
            _request: request,
        }
    }

    /// Attaches the request's access-log record: response bytes are added to it as they
    /// pass, and it is logged when this body is dropped.
    pub(crate) fn set_access(&mut self, record: Box<Access>) {
        match self {
            ResBody::Text { access, .. } => *access = Some(record),
            ResBody::Upstream(up) => up.access = Some(record),
            ResBody::H1 { body, .. } => body.access = Some(record),
            ResBody::H1Detached { access, .. } => *access = Some(record),
        }
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = crate::h1::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ResBody::Text { data, access, .. } => {
                let data = data.take();
                if let (Some(a), Some(d)) = (access.as_mut(), data.as_ref()) {
                    a.bytes_out += d.len() as u64;
                }
                Poll::Ready(data.map(|d| Ok(Frame::data(d))))
            }
            ResBody::Upstream(up) => {
                let res = Pin::new(&mut up.inner).poll_frame(cx);
                if let (Some(a), Poll::Ready(Some(Ok(frame)))) = (up.access.as_mut(), &res) {
                    a.bytes_out += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                match &res {
                    Poll::Ready(None) => up.done = true,
                    Poll::Ready(Some(Err(e))) => up.failed(e),
                    _ => {}
                }
                res.map(|r| r.map(|r| r.map_err(Into::into)))
            }
            ResBody::H1 { body, .. } => body.poll_data(cx),
            ResBody::H1Detached {
                frames,
                done,
                access,
                ..
            } => {
                if *done {
                    return Poll::Ready(None);
                }
                let next = match std::task::ready!(frames.poll_recv(cx)) {
                    Some(next) => next,
                    // The task ended without the body's end: reset, do not end, the
                    // client's stream.
                    None => Some(Err("backend answer cut off".into())),
                };
                match &next {
                    None => *done = true,
                    Some(Ok(frame)) => {
                        if let (Some(a), Some(d)) = (access.as_mut(), frame.data_ref()) {
                            a.bytes_out += d.len() as u64;
                        }
                    }
                    Some(Err(_)) => {}
                }
                Poll::Ready(next)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Text { data, .. } => data.is_none(),
            ResBody::Upstream(up) => up.done || up.inner.is_end_stream(),
            ResBody::H1 { body, .. } => body.is_done(),
            ResBody::H1Detached { done, .. } => *done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Text { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResBody::Upstream(up) => up.inner.size_hint(),
            ResBody::H1 { .. } | ResBody::H1Detached { .. } => SizeHint::new(),
        }
    }
}

// === impl UpstreamBody ===

impl UpstreamBody {
    /// The backend's body broke off (reset, closed early, bad chunk): counted as a reset
    /// and reported to passive checking like one before the head. A client that goes
    /// away never gets here (hyper drops the body unpolled); a user error is weir's own.
    #[cold]
    fn failed(&self, e: &hyper::Error) {
        let backend = self.in_flight.backend();
        tracing::debug!(backend = backend.address(), error = %e, "backend response body failed");
        if e.is_user() {
            return;
        }
        if let Some(m) = backend.metrics() {
            m.upstream_error(UpstreamErrorKind::Reset);
        }
        outlier::failure(&self.pool, backend, e);
    }
}
