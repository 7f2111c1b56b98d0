//! A listener's client-connection limits, applied to weir's HTTP/2 connections (their
//! settings, `crate::h2_server`) and to both versions (the request cap; HTTP/1's head limits are weir's own
//! engine's, `crate::h1`).
//!
//! They are read from the listener's entry in the current table when the connection
//! opens, so a reload changes them for new connections and never under an open one.
//!
//! HTTP/2 "glitches" (HAProxy 3.x's name for protocol abuse that costs the server work
//! without being a request) are counted by weir-h2, per connection: streams the client
//! resets before weir took them (`max_pending_reset_streams`, the rapid-reset lever) and
//! streams weir had to reset for a client's protocol error (`max_stream_errors`); past
//! either, the connection gets GOAWAY `ENHANCE_YOUR_CALM`. A connection-level error
//! (bad frame, a header block over `max_header_list_size`, a window overflow) gets GOAWAY
//! at the first occurrence. On HTTP/1 a malformed or ambiguous head closes the
//! connection at once.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use weir_balance::ListenerTable;
use weir_config::{Http2Config, ListenerTimeouts};
use weir_telemetry::ListenerMetrics;

/// A listener's settings for one client connection, copied when it opens.
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    pub(crate) timeouts: ListenerTimeouts,
    pub(crate) http2: Http2Config,
    /// 0: no limit.
    pub(crate) max_requests: u32,
    /// Where a connection closed for a protocol error is counted.
    pub(crate) metrics: Option<ListenerMetrics>,
}

impl ConnLimits {
    pub(crate) fn of(listener: &ListenerTable) -> Self {
        ConnLimits {
            timeouts: *listener.timeouts(),
            http2: *listener.http2(),
            max_requests: listener.max_requests_per_connection(),
            metrics: listener.metrics().cloned(),
        }
    }
}

/// Counts a connection's requests against `max_requests_per_connection`.
#[derive(Debug)]
pub(crate) struct RequestCap {
    served: AtomicU64,
    /// `u64::MAX` for no limit.
    max: u64,
    /// Woken by the request that reaches the cap: the connection then shuts down
    /// gracefully (GOAWAY on HTTP/2; HTTP/1 gets `Connection: close` on that response).
    reached: Notify,
    /// Woken by an HTTP/2 connection's first request (its permit kept if nobody waits
    /// yet): a connection accepted during the shutdown grace serves that one before its
    /// GOAWAY, as an HTTP/1 one serves one response with `Connection: close`.
    first: Notify,
}

impl RequestCap {
    pub(crate) fn new(max: u32) -> Self {
        RequestCap {
            served: AtomicU64::new(0),
            max: if max == 0 { u64::MAX } else { u64::from(max) },
            reached: Notify::new(),
            first: Notify::new(),
        }
    }

    /// Counts one request; whether it is the last one this connection serves. An HTTP/2
    /// connection starts its graceful shutdown then (streams in flight finish); an HTTP/1
    /// one closes after this response, which the caller marks `Connection: close`
    /// (a shutdown would also close a 101 upgrade this request may be).
    #[inline]
    pub(crate) fn count(&self, h2: bool) -> bool {
        let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if h2 && n == 1 {
            self.first.notify_one();
        }
        if n == self.max && h2 {
            self.reached.notify_one();
        }
        n >= self.max
    }

    /// Resolves once the cap is reached.
    pub(crate) async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Resolves once an HTTP/2 connection has started serving its first request (at
    /// once if it already has).
    pub(crate) async fn first_served(&self) {
        self.first.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_marks_the_nth_request_last_and_wakes_an_h2_connection_once() {
        let cap = RequestCap::new(3);
        assert!(!cap.count(true));
        assert!(!cap.count(true));
        assert!(cap.count(true));
        // Streams already on their way when GOAWAY leaves are still last ones.
        assert!(cap.count(true));
        let woken = futures_now(cap.reached());
        assert!(woken, "the third request woke the connection");
        assert!(
            futures_now(cap.first_served()),
            "the first request was recorded for a later wait"
        );
    }

    #[test]
    fn first_served_waits_for_the_first_http2_request() {
        let cap = RequestCap::new(0);
        assert!(!futures_now(cap.first_served()), "nothing served yet");
        assert!(!cap.count(false));
        assert!(
            !futures_now(cap.first_served()),
            "HTTP/1 closes by its header instead"
        );
        let h2 = RequestCap::new(0);
        assert!(!h2.count(true));
        assert!(futures_now(h2.first_served()));
    }

    #[test]
    fn zero_means_no_cap_and_http1_never_wakes_the_connection() {
        let unlimited = RequestCap::new(0);
        assert!((0..10_000).all(|_| !unlimited.count(true)));
        let h1 = RequestCap::new(1);
        assert!(h1.count(false));
        assert!(
            !futures_now(h1.reached()),
            "HTTP/1 closes by its header instead"
        );
    }

    /// Whether `fut` is ready at its first poll.
    fn futures_now(fut: impl std::future::Future<Output = ()>) -> bool {
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        fut.as_mut().poll(&mut cx).is_ready()
    }
}
