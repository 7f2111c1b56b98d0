//! A listener's client-connection limits, applied to hyper's HTTP/2 connection (its
//! settings) and to both versions (the request cap; HTTP/1's head limits are weir's own
//! engine's, `crate::h1`).
//!
//! They are read from the listener's entry in the current table when the connection
//! opens, so a reload changes them for new connections and never under an open one.
//!
//! HTTP/2 "glitches" (HAProxy 3.x's name for protocol abuse that costs the server work
//! without being a request) are counted by h2 itself, per connection: streams the client
//! resets before weir took them (`max_pending_reset_streams`, the rapid-reset lever) and
//! streams weir had to reset for a client's protocol error (`max_stream_errors`); past
//! either, the connection gets GOAWAY `ENHANCE_YOUR_CALM`. A connection-level error
//! (bad frame, a header block over `max_header_list_size`, a window overflow) gets GOAWAY
//! at the first occurrence. On HTTP/1 a malformed or ambiguous head closes the
//! connection at once.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::server::conn::http2;
use hyper_util::rt::TokioTimer;
use tokio::sync::Notify;
use weir_balance::ListenerTable;
use weir_config::{Http2Config, ListenerTimeouts};
use weir_telemetry::ListenerMetrics;

use super::streams::StreamExec;

/// Response bytes one HTTP/2 stream may have queued in weir for its client. hyper's
/// default (~400 KiB) let a client that grants a large window and stops reading hold
/// that per stream: 100 streams, 40 MB per connection. A stream window's worth (64 KiB,
/// the default `initial_stream_window`, which clients mirror) keeps a reading client's
/// pipe full (the socket buffer holds what is in flight), and back-pressure stops the
/// backend beyond it.
const H2_SEND_BUF: usize = 64 * 1024;

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

    /// hyper's HTTP/2 server for one connection, with the listener's limits; its
    /// streams go to `exec` (see [`super::streams`]).
    pub(crate) fn builder(&self, exec: StreamExec) -> http2::Builder<StreamExec> {
        let h2 = &self.http2;
        let mut builder = http2::Builder::new(exec);
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(h2.max_concurrent_streams)
            .max_header_list_size(h2.max_header_list_size)
            .max_pending_accept_reset_streams(h2.max_pending_reset_streams as usize)
            .max_local_error_reset_streams(h2.max_stream_errors as usize)
            .initial_stream_window_size(h2.initial_stream_window)
            .initial_connection_window_size(h2.initial_connection_window)
            .max_send_buf_size(H2_SEND_BUF)
            .keep_alive_interval(h2.keepalive_interval)
            .keep_alive_timeout(h2.keepalive_timeout);
        builder
    }
}

/// Whether a connection ended because the client broke the protocol: hyper could not
/// parse an HTTP/1 head, or h2 sent GOAWAY with an error (a flood, too many resets, a
/// bad frame). A client that just went away, or a timeout, is not one.
pub(crate) fn is_protocol_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    // Bounded: hyper's chains are two or three deep.
    for _ in 0..8 {
        let Some(e) = cause else {
            return false;
        };
        if let Some(h1) = e.downcast_ref::<hyper::Error>() {
            if h1.is_parse() || h1.is_parse_too_large() {
                return true;
            }
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_library() && h2.reason() != Some(h2::Reason::NO_ERROR);
        }
        cause = e.source();
    }
    false
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
