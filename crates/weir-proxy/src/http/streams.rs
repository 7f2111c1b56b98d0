//! The streams of one HTTP/2 client connection, run inside that connection's own task.
//!
//! hyper hands every request stream to an executor. With tokio's, each stream was a task
//! of its own: an aligned allocation and a spawn per request, and a trip through the
//! scheduler at each wake-up, although a stream's work (its backend answering) has to
//! wake the connection's task anyway to send the frames. Here hyper's executor only
//! queues the stream ([`StreamExec`]), and the connection's task polls the streams in a
//! `FuturesUnordered` beside hyper's connection ([`Streams`]), so one poll moves a
//! backend's answer and flushes it (HAProxy and h2o drive a connection's streams from the
//! connection the same way). hyper's stream limits, reset accounting and flow control are
//! unchanged: they decide which streams exist, not where they run.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// hyper's executor for one connection: queues each stream for that connection's
/// [`Streams`].
#[derive(Clone, Default)]
pub(crate) struct StreamExec {
    queued: Arc<Mutex<Vec<StreamFuture>>>,
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        self.queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(fut));
    }
}

/// The running streams of one connection, polled by its task.
pub(crate) struct Streams {
    exec: StreamExec,
    running: FuturesUnordered<StreamFuture>,
}

impl Streams {
    pub(crate) fn new(exec: &StreamExec) -> Self {
        Streams {
            exec: exec.clone(),
            running: FuturesUnordered::new(),
        }
    }

    /// Takes over the streams hyper queued since the last call; `true` if there were any.
    pub(crate) fn adopt(&mut self) -> bool {
        let mut queued = self
            .exec
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if queued.is_empty() {
            return false;
        }
        for fut in queued.drain(..) {
            self.running.push(fut);
        }
        true
    }

    /// Polls the streams that were woken (and new ones) until none is ready. A stream
    /// that ends is dropped here; the connection decides when everything has ended.
    pub(crate) fn poll_run(&mut self, cx: &mut Context<'_>) {
        self.adopt();
        // Bounded: `FuturesUnordered` yields (wakes itself, returns `Pending`) after
        // polling a batch, so one busy stream cannot keep this loop going.
        while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {}
    }

    /// Hands the streams still running to a task of their own, as when each stream was
    /// a task: they end by themselves once their connection is gone.
    pub(crate) fn detach(mut self) {
        self.adopt();
        if self.running.is_empty() {
            return;
        }
        let mut running = self.running;
        tokio::spawn(async move { while running.next().await.is_some() {} });
    }
}
