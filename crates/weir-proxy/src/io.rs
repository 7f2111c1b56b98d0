//! The client socket wrapper shared by HTTP and TCP connections.
//!
//! [`ClientIo`] counts traffic so a watchdog can close idle connections without a timer
//! per read (HTTP/2 connections, served by hyper, and TCP relays; the HTTP/1 engine
//! times its own waits). [`ConnShared`] is the small block of atomics the socket, the
//! request handler and the watchdog share.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use weir_telemetry::ListenerMetrics;

/// State shared by a client connection's socket, its requests and its idle watchdog.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// Bumped on every read or write that moved bytes.
    activity: AtomicU64,
    /// Requests whose response is not finished yet (an idle connection has none).
    in_flight: AtomicU32,
    /// Set once the client sent the HTTP/2 preface. From then on bytes are no activity:
    /// weir's own keep-alive PINGs, and a client's PING or SETTINGS frames, must not keep
    /// a connection without requests open past its idle timeout. Requests still count.
    h2: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new() -> Self {
        ConnShared {
            activity: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            h2: AtomicBool::new(false),
        }
    }

    /// Records traffic (the idle watchdog sees it).
    #[inline]
    pub(crate) fn touch(&self) {
        self.activity.fetch_add(1, Ordering::Relaxed);
    }

    /// Records socket traffic, which is activity on all but HTTP/2 connections.
    #[inline]
    fn touch_io(&self) {
        if !self.h2.load(Ordering::Relaxed) {
            self.touch();
        }
    }

    /// Counts a request as in flight until the guard is dropped.
    #[inline]
    pub(crate) fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(Arc::clone(self))
    }

    /// Resolves once the connection has had no request in flight and no traffic for
    /// `idle`. Checks four times per period, so it fires between `idle` and 1.25 x `idle`;
    /// never resolves when `idle` is zero.
    pub(crate) async fn idle_expired(&self, idle: Duration) {
        if idle.is_zero() {
            return std::future::pending().await;
        }
        let tick = (idle / 4).max(Duration::from_millis(1));
        let mut last = self.activity.load(Ordering::Relaxed);
        let mut quiet = Duration::ZERO;
        loop {
            tokio::time::sleep(tick).await;
            let now = self.activity.load(Ordering::Relaxed);
            if now != last || self.in_flight.load(Ordering::Relaxed) > 0 {
                last = now;
                quiet = Duration::ZERO;
                continue;
            }
            quiet += tick;
            if quiet >= idle {
                return;
            }
        }
    }
}

/// Keeps a connection from being idle while its request is being answered.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<ConnShared>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        // Finishing a response is activity: the idle period starts now.
        self.0.touch();
    }
}

/// A client stream that records activity and, for HTTP/1, scans request heads.
///
/// `S` is the plain socket, or the TLS stream over it on a TLS listener (the scanner then
/// sees the decrypted bytes).
#[derive(Debug)]
pub(crate) struct ClientIo<S = TcpStream> {
    stream: S,
    shared: Arc<ConnShared>,
    /// HTTP connections: how much of the HTTP/2 preface the first bytes matched
    /// (`None` once decided either way, and on TCP).
    preface: Option<usize>,
    /// TCP listeners: `weir_tcp_bytes_total` rx (read from the client) and tx.
    bytes: Option<ListenerMetrics>,
}

impl<S> ClientIo<S> {
    /// Wraps `stream`; `http` follows the first bytes for the HTTP/2 preface.
    pub(crate) fn new(stream: S, shared: Arc<ConnShared>, http: bool) -> Self {
        ClientIo {
            stream,
            shared,
            preface: http.then_some(0),
            bytes: None,
        }
    }

    /// Counts the bytes read from and written to the client in `metrics`.
    pub(crate) fn count_bytes(&mut self, metrics: ListenerMetrics) {
        self.bytes = Some(metrics);
    }

    /// Records a write's outcome `res`: activity, and the bytes sent to the client.
    fn wrote(&self, res: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n @ 1..)) = res {
            self.shared.touch_io();
            if let Some(m) = &self.bytes {
                m.add_tx_bytes(*n as u64);
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let new = buf.filled().get(before..).unwrap_or_default();
            if !new.is_empty() {
                this.shared.touch_io();
                if let Some(pos) = this.preface {
                    this.preface = match_preface(pos, new, &this.shared);
                }
                if let Some(m) = &this.bytes {
                    m.add_rx_bytes(new.len() as u64);
                }
            }
        }
        res
    }
}

/// The client connection preface of HTTP/2 (RFC 9113 §3.4); the HTTP/1 engine looks for
/// it too, to hand such a client to hyper.
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Follows the first bytes of a connection against the HTTP/2 preface, `pos` of it
/// matched so far; marks `shared` as HTTP/2 on a full match. `None`: decided.
fn match_preface(pos: usize, new: &[u8], shared: &ConnShared) -> Option<usize> {
    let want = H2_PREFACE.get(pos..).unwrap_or_default();
    let n = want.len().min(new.len());
    if want.get(..n) != new.get(..n) {
        return None;
    }
    if pos + n == H2_PREFACE.len() {
        shared.h2.store(true, Ordering::Relaxed);
        return None;
    }
    Some(pos + n)
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(&res);
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(&res);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http2_preface_is_recognised_even_split_across_reads() {
        let shared = ConnShared::new();
        assert_eq!(match_preface(0, b"PRI * HTTP/2.0\r\n", &shared), Some(16));
        assert!(!shared.h2.load(Ordering::Relaxed));
        assert_eq!(match_preface(16, b"\r\nSM\r\n\r\n\x00\x00", &shared), None);
        assert!(shared.h2.load(Ordering::Relaxed));
    }

    #[test]
    fn http1_bytes_stay_activity() {
        let shared = ConnShared::new();
        assert_eq!(match_preface(0, b"GET / HTTP/1.1\r\n", &shared), None);
        assert_eq!(match_preface(0, b"PRI / HTTP/1.1\r\n", &shared), None);
        assert!(!shared.h2.load(Ordering::Relaxed));
        shared.touch_io();
        assert_eq!(shared.activity.load(Ordering::Relaxed), 1);
        shared.h2.store(true, Ordering::Relaxed);
        shared.touch_io();
        assert_eq!(
            shared.activity.load(Ordering::Relaxed),
            1,
            "h2: bytes are no activity"
        );
    }
}
