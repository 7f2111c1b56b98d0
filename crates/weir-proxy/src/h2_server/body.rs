//! An HTTP/2 client's request body, between the connection's task, which receives its
//! DATA frames, and whoever passes it on (the HTTP/1 engine's upload, or hyper's client
//! task for an `h2` pool).
//!
//! The bytes wait in the stream's [`Inbound`] until they are read; only then is their
//! flow-control credit given back to the client (by the connection's task, told through
//! [`Ready::released`]). So a stream holds at most its window (`initial_stream_window`)
//! however slow its backend: back-pressure reaches the client, never memory.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::wake::Ready;
use crate::h1::BoxError;

/// What the connection received for one stream's body and the reader has not taken.
#[derive(Debug)]
pub(super) struct Inbound {
    stream: u32,
    state: Mutex<InState>,
    ready: Arc<Ready>,
}

#[derive(Debug, Default)]
struct InState {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    /// The client ended the body.
    end: bool,
    /// The client reset the stream (or the connection ended) before the end.
    failed: bool,
    /// Bytes read and not yet given back to the client.
    consumed: u32,
    /// The reader is gone: what arrives from now on is given back at once.
    dropped: bool,
    reader: Option<Waker>,
}

impl Inbound {
    pub(super) fn new(stream: u32, ready: &Arc<Ready>) -> Arc<Inbound> {
        Arc::new(Inbound {
            stream,
            state: Mutex::new(InState::default()),
            ready: Arc::clone(ready),
        })
    }

    fn lock(&self) -> MutexGuard<'_, InState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a DATA frame's bytes; `false` if nobody reads them any more (the caller
    /// gives their credit back itself).
    pub(super) fn push(&self, data: &[u8], end: bool) -> bool {
        let mut s = self.lock();
        if s.dropped {
            return false;
        }
        if !data.is_empty() {
            s.chunks.push_back(Bytes::copy_from_slice(data));
        }
        s.end |= end;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        true
    }

    /// The client's trailers, which end the body.
    pub(super) fn trailers(&self, trailers: HeaderMap) {
        let mut s = self.lock();
        s.trailers = Some(trailers);
        s.end = true;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// The stream is gone before its body ended: the reader gets an error, not a short
    /// body that looks whole.
    pub(super) fn fail(&self) {
        let mut s = self.lock();
        if !s.end {
            s.failed = true;
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// Whether the client ended the body.
    pub(super) fn ended(&self) -> bool {
        self.lock().end
    }

    /// Bytes read since the last call, to give back to the client.
    pub(super) fn take_consumed(&self) -> u32 {
        std::mem::take(&mut self.lock().consumed)
    }
}

/// The request body handed to the request's handler.
#[derive(Debug)]
pub(crate) struct RequestBody {
    inbound: Option<Arc<Inbound>>,
    /// What is left of the declared `Content-Length`, for the size hint.
    length: Option<u64>,
}

impl RequestBody {
    /// No body (the request's HEADERS ended the stream).
    pub(super) fn empty() -> Self {
        RequestBody {
            inbound: None,
            length: Some(0),
        }
    }

    pub(super) fn streaming(inbound: Arc<Inbound>, length: Option<u64>) -> Self {
        RequestBody {
            inbound: Some(inbound),
            length,
        }
    }
}

/// The error a reader sees when the client reset its stream mid-body.
#[derive(Debug, thiserror::Error)]
#[error("the client reset the stream before the end of its request body")]
pub(crate) struct ClientReset;

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(inbound) = &this.inbound else {
            return Poll::Ready(None);
        };
        let mut s = inbound.lock();
        if let Some(chunk) = s.chunks.pop_front() {
            let first = s.consumed == 0;
            s.consumed = s.consumed.saturating_add(chunk.len() as u32);
            drop(s);
            if let Some(left) = &mut this.length {
                *left = left.saturating_sub(chunk.len() as u64);
            }
            if first {
                inbound.ready.released(inbound.stream);
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if s.failed {
            return Poll::Ready(Some(Err(Box::new(ClientReset))));
        }
        if s.end {
            return Poll::Ready(s.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        s.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let Some(inbound) = &self.inbound else {
            return true;
        };
        let s = inbound.lock();
        s.end && s.chunks.is_empty() && s.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::new(),
        }
    }
}

impl Drop for RequestBody {
    /// What was received and not read goes back to the client as credit, and what comes
    /// later too: a request answered without its body must not stall the connection's
    /// window.
    fn drop(&mut self) {
        let Some(inbound) = self.inbound.take() else {
            return;
        };
        let mut s = inbound.lock();
        s.dropped = true;
        let unread: usize = s.chunks.drain(..).map(|c| c.len()).sum();
        s.consumed = s.consumed.saturating_add(unread as u32);
        let owed = s.consumed > 0;
        drop(s);
        if owed {
            inbound.ready.released(inbound.stream);
        }
    }
}
