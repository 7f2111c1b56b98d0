//! Read buffers lent per request from a per-worker pool, so a connection waiting for its
//! next request holds none (HAProxy allocates its buffers the same way, only while data
//! moves: an idle keep-alive connection costs it about 1 KiB).
//!
//! Each worker thread keeps a short stack of released buffers; a request takes one when
//! its first bytes arrive and gives it back when it is answered. Buffers grown for an
//! unusually large head are not kept, so the pool holds only standard sizes.

use std::cell::RefCell;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Standard size of a read buffer (HAProxy's `tune.bufsize`): what one read or one
/// body chunk moves.
pub(crate) const BUF_SIZE: usize = 16 * 1024;

/// Buffers kept per worker thread (at most 2 MiB of them). An HTTP/2 connection holds
/// one per stream reading its backend's response, so one client at the default
/// `max_concurrent_streams` (100) has 100 taken at once: with 64 kept, about one request
/// in ten allocated and zeroed a fresh 16 KiB buffer and freed another (a twentieth of
/// an HTTP/2 request's instructions).
const KEPT_PER_WORKER: usize = 128;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer: bytes `start..end` of `data` are read and not consumed yet.
#[derive(Debug)]
pub(crate) struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    /// A standard-size buffer from this worker's pool, or a new one.
    pub(crate) fn take() -> Buf {
        let data = FREE
            .with(|free| free.borrow_mut().pop())
            .unwrap_or_else(|| vec![0; BUF_SIZE]);
        Buf {
            data,
            start: 0,
            end: 0,
        }
    }

    /// Returns the buffer to this worker's pool.
    pub(crate) fn give_back(self) {
        if self.data.len() != BUF_SIZE {
            return;
        }
        FREE.with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < KEPT_PER_WORKER {
                free.push(self.data);
            }
        });
    }

    /// The unconsumed bytes.
    #[inline]
    pub(crate) fn filled(&self) -> &[u8] {
        self.data.get(self.start..self.end).unwrap_or_default()
    }

    /// Unconsumed byte count.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether nothing is left unconsumed.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Marks `n` bytes consumed.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether the buffer has no room left after its unconsumed bytes, even compacted.
    pub(crate) fn is_full(&self) -> bool {
        self.len() == self.data.len()
    }

    /// Grows the buffer to hold `cap` bytes (a large head; such a buffer is not pooled).
    pub(crate) fn grow(&mut self, cap: usize) {
        if self.data.len() < cap {
            self.data.resize(cap, 0);
        }
    }

    /// [`Buf::read_from`] as a poll, for bodies polled by hyper.
    pub(crate) fn poll_read_from<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        src: &mut R,
    ) -> std::task::Poll<io::Result<usize>> {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(room) = self.data.get_mut(self.end..).filter(|r| !r.is_empty()) else {
            return std::task::Poll::Ready(Ok(0));
        };
        let mut rb = tokio::io::ReadBuf::new(room);
        match std::pin::Pin::new(src).poll_read(cx, &mut rb) {
            std::task::Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.end += n;
                std::task::Poll::Ready(Ok(n))
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    /// Reads once from `src` after the unconsumed bytes; returns the byte count (0: EOF,
    /// or no room).
    pub(crate) async fn read_from<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        src: &mut R,
    ) -> io::Result<usize> {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(room) = self.data.get_mut(self.end..).filter(|r| !r.is_empty()) else {
            return Ok(0);
        };
        let n = src.read(room).await?;
        self.end += n;
        Ok(n)
    }
}
