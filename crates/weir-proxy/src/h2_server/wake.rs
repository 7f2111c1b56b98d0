//! Which of a connection's streams need polling, and whose body credit to give back.
//!
//! A stream's work (its backend answering, a body frame arriving) can happen in any
//! task: the response body of an HTTP/1 backend is polled here, but an upload may be
//! read by hyper's HTTP/2 client task of an `h2` pool. Each stream's waker therefore
//! queues its id and wakes the connection's task, which then polls only the streams
//! queued (as `FuturesUnordered` does), never all of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

use crossbeam_queue::SegQueue;
use futures_util::task::AtomicWaker;

/// Shared by a connection's task and everything that wakes it.
#[derive(Debug, Default)]
pub(super) struct Ready {
    /// Streams woken since the connection last looked.
    streams: SegQueue<u32>,
    /// Streams whose request body was read from (their credit is owed to the client).
    released: SegQueue<u32>,
    conn: AtomicWaker,
}

impl Ready {
    /// Makes `waker` the one woken for this connection (each poll of its task).
    pub(super) fn register(&self, waker: &Waker) {
        self.conn.register(waker);
    }

    /// The next woken stream.
    pub(super) fn next_stream(&self) -> Option<u32> {
        self.streams.pop()
    }

    /// How many streams are queued (the connection polls at most this many per round,
    /// so a stream that wakes itself at once cannot keep it in one round forever).
    pub(super) fn queued(&self) -> usize {
        self.streams.len()
    }

    /// Queues `stream` for polling and wakes the connection.
    pub(super) fn wake_stream(&self, stream: u32) {
        self.streams.push(stream);
        self.conn.wake();
    }

    /// A body reader consumed bytes of `stream`: the connection gives their credit back.
    pub(super) fn released(&self, stream: u32) {
        self.released.push(stream);
        self.conn.wake();
    }

    /// The next stream whose credit is owed.
    pub(super) fn next_released(&self) -> Option<u32> {
        self.released.pop()
    }
}

/// One stream's waker: queues the stream once until the connection polls it.
#[derive(Debug)]
pub(super) struct StreamWaker {
    id: u32,
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl StreamWaker {
    /// The waker of `id` and the handle that re-arms it.
    pub(super) fn new(id: u32, ready: &Arc<Ready>) -> (Arc<StreamWaker>, Waker) {
        let this = Arc::new(StreamWaker {
            id,
            // Queued from the start: a new stream is polled once without being woken.
            queued: AtomicBool::new(true),
            ready: Arc::clone(ready),
        });
        let waker = Waker::from(Arc::clone(&this));
        (this, waker)
    }

    /// Called before the stream is polled: a wake from now on queues it again.
    pub(super) fn rearm(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

impl Wake for StreamWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.wake_stream(self.id);
        } else {
            self.ready.conn.wake();
        }
    }
}
