//! A raw TCP listener that records whether anything reached it.
//!
//! For "must never reach a backend" checks where even a connection or a single byte
//! counts: unlike an HTTP backend, it never parses, so nothing can hide in a parser error.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use crate::port::bind_loopback;

/// Counts connections and bytes that reached a raw TCP listener. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TcpSink {
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

impl TcpSink {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Bytes received so far, over all connections.
    pub fn bytes_received(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }

    /// Waits until exactly `n` bytes were received (`what` names the wait).
    ///
    /// # Panics
    /// As [`crate::eventually`], when that does not happen in time.
    pub async fn wait_bytes(&self, n: usize, what: &str) {
        crate::eventually(what, || {
            let now = self.bytes_received();
            async move { (now == n).then_some(()) }
        })
        .await;
    }
}

/// Starts a sink on `127.0.0.1:0`; it reads and discards, and never answers.
///
/// # Panics
/// When loopback cannot be bound.
pub async fn spawn_tcp_sink() -> (SocketAddr, TcpSink) {
    let (listener, addr) = bind_loopback("a TCP sink").await;
    let sink = TcpSink::default();
    let counters = sink.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counters.connections.fetch_add(1, Ordering::SeqCst);
            let bytes = Arc::clone(&counters.bytes);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    bytes.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, sink)
}
