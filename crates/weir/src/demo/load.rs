//! The demo's own traffic: a few keep-alive HTTP/1.1 clients through the demo listener.
//!
//! Each client sends one request at a time at a fixed pace and counts the answer under
//! the backend that gave it (the [`BACKEND_HEADER`] of a `200`); anything else, a
//! transport error or no answer within [`REQUEST_TIMEOUT`], is a failure. Every request
//! holds a read guard of [`Counters::gate`] while it runs, so the show can wait for the
//! requests in flight at a kill to finish before it prints the counts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use super::backend::BACKEND_HEADER;

/// Concurrent clients.
pub(super) const CLIENTS: u32 = 4;
/// Requests per second of one client (so 100 req/s in all).
pub(super) const CLIENT_RATE: u32 = 25;
/// A request without an answer by then counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the clients counted so far.
pub(super) struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) failed: AtomicU64,
    /// Answers per demo backend (index `n - 1`); `ok` is their sum, so the two always agree.
    pub(super) per_backend: Vec<AtomicU64>,
    /// Held shared by every request in flight; taken exclusively to wait them out.
    pub(super) gate: RwLock<()>,
}

/// One reading of [`Counters`].
#[derive(Clone, Default)]
pub(super) struct Snapshot {
    pub(super) sent: u64,
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) per_backend: Vec<u64>,
}

impl Counters {
    pub(super) fn new(backends: usize) -> Self {
        Counters {
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            per_backend: (0..backends).map(|_| AtomicU64::new(0)).collect(),
            gate: RwLock::new(()),
        }
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        // `sent` first: a request is counted sent before its outcome, so a reading never
        // shows more outcomes than requests.
        let sent = self.sent.load(Ordering::SeqCst);
        let per_backend: Vec<u64> = self
            .per_backend
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect();
        Snapshot {
            sent,
            ok: per_backend.iter().sum(),
            failed: self.failed.load(Ordering::SeqCst),
            per_backend,
        }
    }
}

/// Starts the clients; they stop when `stop` is cancelled.
pub(super) fn start(
    web: SocketAddr,
    counters: &Arc<Counters>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|_| tokio::spawn(client(web, Arc::clone(counters), stop.clone())))
        .collect()
}

async fn client(web: SocketAddr, counters: Arc<Counters>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / CLIENT_RATE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _in_flight = counters.gate.read().await;
        counters.sent.fetch_add(1, Ordering::SeqCst);
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, request(web, &mut conn)).await;
        match answer {
            Ok(Ok(n)) => match counters.per_backend.get(n.wrapping_sub(1)) {
                Some(count) => {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                None => {
                    counters.failed.fetch_add(1, Ordering::SeqCst);
                }
            },
            // weir is shutting down and closing connections: not a failure of the demo.
            _ if stop.is_cancelled() => return,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "demo request failed");
                counters.failed.fetch_add(1, Ordering::SeqCst);
                conn = None;
            }
            Err(_) => {
                tracing::warn!("demo request timed out");
                counters.failed.fetch_add(1, Ordering::SeqCst);
                conn = None;
            }
        }
    }
}

/// Sends `GET /` on the kept-alive connection (opening one if needed); returns the number
/// of the backend that answered `200`.
async fn request(
    web: SocketAddr,
    conn: &mut Option<SendRequest<Empty<Bytes>>>,
) -> Result<usize, String> {
    let sender = match conn {
        Some(sender) if !sender.is_closed() => sender,
        _ => conn.insert(connect(web).await?),
    };
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = hyper::Request::get("/")
        .header(hyper::header::HOST, web.to_string())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    // weir closes a connection after `max_requests_per_connection`: open a new one.
    if resp
        .headers()
        .get(hyper::header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
    {
        *conn = None;
    }
    let status = resp.status();
    let backend = resp
        .headers()
        .get(BACKEND_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    match backend {
        Some(n) if status == hyper::StatusCode::OK => Ok(n),
        _ => Err(format!("answer {status} from backend {backend:?}")),
    }
}

async fn connect(web: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(web)
        .await
        .map_err(|e| format!("connect {web}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "demo client connection ended");
        }
    });
    Ok(sender)
}
