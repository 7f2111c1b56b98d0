//! Raw TCP backends for the relaying tests: an echo server and a recorder.
//!
//! Both half-close the way a well-behaved peer does, so a test can check that weir
//! passes a FIN through in each direction instead of closing the whole connection.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::port::bind_loopback;

/// Starts a TCP echo server on `127.0.0.1:0`: every connection gets its bytes back, and
/// after the client's EOF the server's own (so a reply EOF proves the half-close went
/// through the relay).
///
/// # Panics
/// When loopback cannot be bound.
pub async fn spawn_tcp_echo() -> SocketAddr {
    let (listener, addr) = bind_loopback("a TCP echo server").await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                if let Err(e) = tokio::io::copy(&mut r, &mut w).await {
                    eprintln!("echo: {e}");
                }
                if let Err(e) = w.shutdown().await {
                    eprintln!("echo shutdown: {e}");
                }
            });
        }
    });
    addr
}

/// Starts a TCP server on `127.0.0.1:0` that reports, per connection, every byte it
/// received until the client's EOF (it holds the connection open until then and never
/// writes).
///
/// # Panics
/// When loopback cannot be bound.
pub async fn spawn_tcp_recorder() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let (listener, addr) = bind_loopback("a TCP recorder").await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                if let Err(e) = stream.read_to_end(&mut got).await {
                    eprintln!("recording server: {e}");
                }
                if tx.send(got).is_err() {
                    eprintln!("recording server: test ended");
                }
            });
        }
    });
    (addr, rx)
}
