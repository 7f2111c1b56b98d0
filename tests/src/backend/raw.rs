//! A scripted raw HTTP/1.1 backend: it reads request heads off keep-alive connections and
//! answers each with exactly the bytes a test scripts, framing errors included.
//!
//! hyper will not write a response with both `Content-Length` and `Transfer-Encoding`, a
//! body shorter than its length or a reset after the head, so the tests of what weir does
//! with a misbehaving backend script the bytes here. The backend counts what it received
//! (heads, per connection) and what it wrote, so a test can tell how many times a request
//! reached it and whether weir kept reading a body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::port::bind_loopback;

/// One request as the raw backend read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Which accepted connection it came on (0 for the first).
    pub connection: usize,
    /// Its index among that connection's requests (0 for the first).
    pub index: usize,
    /// The request line and headers, as text.
    pub head: String,
}

impl RawRequest {
    /// The request method.
    pub fn method(&self) -> &str {
        self.head.split_whitespace().next().unwrap_or_default()
    }
}

/// What the backend does with one request.
#[derive(Debug, Clone)]
pub enum RawAction {
    /// Writes these bytes and waits for the next request on the connection.
    Write(Vec<u8>),
    /// Writes these bytes, then closes the connection (FIN).
    WriteClose(Vec<u8>),
    /// Resets the connection (`SO_LINGER` 0, so an RST) without answering.
    Reset,
    /// Writes these bytes (a head and part of its body, say), then resets the connection.
    WriteReset(Vec<u8>),
    /// Writes `head`, then `len` body bytes in 16 KiB writes, counting each write in
    /// [`RawBackend::bytes_written`]; then waits for the next request.
    Stream {
        /// Status line and headers, blank line included.
        head: Vec<u8>,
        /// Body bytes to write after it.
        len: usize,
    },
}

type Script = dyn Fn(&RawRequest) -> RawAction + Send + Sync;

/// Observes a raw backend. Cheap to clone; clones share the backend.
#[derive(Debug, Clone, Default)]
pub struct RawBackend {
    requests: Arc<Mutex<Vec<RawRequest>>>,
    connections: Arc<AtomicUsize>,
    written: Arc<AtomicUsize>,
}

impl RawBackend {
    /// Every request read so far, in arrival order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many requests reached the backend.
    pub fn hits(&self) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Bytes written so far, over all connections.
    pub fn bytes_written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }
}

/// Starts a raw backend on `127.0.0.1:0` that answers each request with `script`'s action.
///
/// # Panics
/// When loopback cannot be bound.
pub async fn spawn_raw_backend(
    script: impl Fn(&RawRequest) -> RawAction + Send + Sync + 'static,
) -> (SocketAddr, RawBackend) {
    let (listener, addr) = bind_loopback("a raw backend").await;
    let backend = RawBackend::default();
    let state = backend.clone();
    let script: Arc<Script> = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let connection = state.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(
                stream,
                connection,
                state.clone(),
                Arc::clone(&script),
            ));
        }
    });
    (addr, backend)
}

async fn serve(mut stream: TcpStream, connection: usize, state: RawBackend, script: Arc<Script>) {
    let mut buf = Vec::new();
    for index in 0.. {
        let Some(head) = read_head(&mut stream, &mut buf).await else {
            return;
        };
        let request = RawRequest {
            connection,
            index,
            head,
        };
        let action = script(&request);
        state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
        let done = match action {
            RawAction::Write(bytes) => stream.write_all(&bytes).await.is_err(),
            RawAction::WriteClose(bytes) => {
                if let Err(e) = stream.write_all(&bytes).await {
                    eprintln!("raw backend write: {e}");
                }
                true
            }
            RawAction::WriteReset(bytes) => {
                if let Err(e) = stream.write_all(&bytes).await {
                    eprintln!("raw backend write: {e}");
                }
                // Let the bytes leave before the RST discards what is still queued.
                if let Err(e) = stream.flush().await {
                    eprintln!("raw backend flush: {e}");
                }
                if let Err(e) = stream.set_zero_linger() {
                    eprintln!("raw backend SO_LINGER: {e}");
                }
                true
            }
            RawAction::Reset => {
                if let Err(e) = stream.set_zero_linger() {
                    eprintln!("raw backend SO_LINGER: {e}");
                }
                true
            }
            RawAction::Stream { head, len } => stream_body(&mut stream, &head, len, &state.written)
                .await
                .is_err(),
        };
        if done {
            return;
        }
    }
}

async fn stream_body(
    stream: &mut TcpStream,
    head: &[u8],
    len: usize,
    written: &AtomicUsize,
) -> std::io::Result<()> {
    stream.write_all(head).await?;
    let chunk = [b'x'; 16 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).await?;
        written.fetch_add(n, Ordering::SeqCst);
        left -= n;
    }
    Ok(())
}

/// Reads one request head (and skips a `Content-Length` body); `None` at EOF or error.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
    buf.drain(..end);
    let body_len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < body_len {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.drain(..body_len);
    Some(head)
}
