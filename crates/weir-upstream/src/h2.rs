//! hyper's client state for HTTP/2 backends, typed: the request body hyper sends to
//! them and the one shared connection each backend keeps.
//!
//! HTTP/1 backends are spoken to by weir's own engine over bare streams
//! ([`crate::Conns`]'s idle queue). A pool with `upstream_protocol: h2` shares one hyper
//! HTTP/2 connection per backend instead, and hyper's `SendRequest` is generic over the
//! request body: the body type lives here, below both the balancer (whose `Backend`
//! owns the [`Conns`](crate::Conns) holding the connection) and the proxy (which builds
//! the bodies and drives the connection), so the slot has its type instead of `Any`.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use hyper::client::conn::http2;

/// What hyper keeps per backend of an `h2` pool, under one transport
/// ([`Conns::h2_client`](crate::Conns::h2_client)).
#[derive(Debug, Default)]
pub struct H2Client {
    /// The shared HTTP/2 connection, once opened.
    pub conn: arc_swap::ArcSwapOption<http2::SendRequest<ReqBody>>,
}

/// Error type of the request bodies weir passes on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The rest of a client's streamed request body.
pub struct ClientBody(pub Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>);

impl std::fmt::Debug for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody").finish_non_exhaustive()
    }
}

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum ReqBody {
    /// No body.
    Empty,
    /// The whole body, read with its first frame; cheap to clone for a retry.
    Buffered {
        /// The data, taken when sent.
        data: Option<Bytes>,
        /// Trailers, taken when sent.
        trailers: Option<HeaderMap>,
    },
    /// The first frame, already read, then the rest of the client's stream.
    Streaming {
        /// The frame read before a backend was picked.
        first: Option<Frame<Bytes>>,
        /// The rest of the client's body (weir's HTTP/2 server's, boxed so this crate
        /// needs not know it).
        rest: ClientBody,
        /// Data bytes passed on, for the access log (`None` when it is off).
        counted: Option<Arc<AtomicU64>>,
    },
    /// Fed by weir's HTTP/1 engine from an HTTP/1 client's connection, for an HTTP/2
    /// backend: the body's data in order, then its end.
    Channel(tokio::sync::mpsc::Receiver<Bytes>),
}

/// Adds a data frame's length to the access log's request byte count.
#[inline]
fn count_in(counted: Option<&Arc<AtomicU64>>, frame: &Frame<Bytes>) {
    if let (Some(counter), Some(data)) = (counted, frame.data_ref()) {
        counter.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            ReqBody::Streaming {
                first,
                rest,
                counted,
            } => {
                if let Some(frame) = first.take() {
                    count_in(counted.as_ref(), &frame);
                    return Poll::Ready(Some(Ok(frame)));
                }
                let res = rest.0.as_mut().poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &res {
                    count_in(counted.as_ref(), frame);
                }
                res
            }
            ReqBody::Channel(rx) => rx.poll_recv(cx).map(|d| d.map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            ReqBody::Streaming { first, rest, .. } => first.is_none() && rest.0.is_end_stream(),
            ReqBody::Channel(rx) => rx.is_closed() && rx.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ReqBody::Streaming { first, rest, .. } => {
                let ahead = first
                    .as_ref()
                    .and_then(Frame::data_ref)
                    .map_or(0, |d| d.len() as u64);
                let inner = rest.0.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(ahead));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(ahead));
                }
                hint
            }
            ReqBody::Channel(_) => SizeHint::new(),
        }
    }
}
