//! The client connection loop of the HTTP/1 engine.
//!
//! Between requests the connection waits for readiness only, holding no buffer (TLS
//! streams excepted: rustls keeps its own, and a TLS stream cannot tell readiness
//! without reading). The first head must arrive within `timeouts.header_read` of the
//! accept; later ones may wait `timeouts.idle` for their first byte and then get
//! `header_read` to complete (HAProxy's `timeout http-request` and `timeout
//! http-keep-alive`). A drain closes a waiting connection at once and makes the
//! response in progress say `Connection: close`; the shutdown grace does the same to a
//! connection waiting for its next request (not its first); a forced shutdown ends everything at
//! the next poll. The request future is boxed, so what a waiting connection's task
//! holds is this loop's few words, not the largest state of a request.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::WaitForCancellationFuture;
use weir_balance::SharedTable;

use super::buf::Buf;
use super::request::{self, Next, Scratch};
use crate::http::ConnLimits;
use crate::listener::ConnScope;

/// A client stream the engine can serve: it can wait for readability without a buffer.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether [`ClientStream::poll_read_ready_idle`] really waits (else the first read
    /// of a request is the wait, and must watch the drain itself).
    const READINESS: bool;

    /// Ready when a read would not block (or cannot tell: then at once).
    fn poll_read_ready_idle(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ClientStream for TcpStream {
    const READINESS: bool = true;

    fn poll_read_ready_idle(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    const READINESS: bool = false;

    fn poll_read_ready_idle(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // rustls may hold decrypted bytes already: only a read can tell.
        Poll::Ready(Ok(()))
    }
}

/// What every request of one client connection needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) table: SharedTable,
    pub(crate) peer: SocketAddr,
    /// The peer's IP, formatted once for `X-Forwarded-For`.
    pub(crate) client_ip: String,
    pub(crate) is_tls: bool,
    pub(crate) limits: ConnLimits,
    pub(crate) scope: ConnScope,
}

/// Serves one client connection until it closes, drains, idles out or is killed; an
/// HTTP/2 client is handed to hyper with what was read of it.
pub(crate) async fn serve<S: ClientStream>(
    mut stream: S,
    is_tls: bool,
    peer: SocketAddr,
    limits: ConnLimits,
    table: SharedTable,
    scope: &ConnScope,
) {
    let ctx = Ctx {
        table,
        peer,
        client_ip: peer.ip().to_string(),
        is_tls,
        limits,
        scope: scope.clone(),
    };
    let mut held: Option<Buf> = None;
    let mut served: u64 = 0;
    // Registered once for the connection's life: a fresh wait per request, or even a
    // re-poll of a registered one, locks each token's waiter list.
    let kill = scope.kill.cancelled();
    tokio::pin!(kill);
    let mut kill = Signal::new(&scope.killed, kill);
    let drain = scope.drain.cancelled();
    tokio::pin!(drain);
    let mut drain = Signal::new(&scope.draining, drain);
    // The shutdown grace closes a connection waiting for its *next* request (nginx's
    // and HAProxy's soft stop do the same): the client sees a FIN while the VIP is still
    // here and reconnects through its new owner, instead of sending that request on a
    // connection the new owner will reset. One waiting for its first request was
    // accepted for a request that is on its way: it is served (and told to close).
    let winding = scope.winding_down.cancelled();
    tokio::pin!(winding);
    let mut winding = Signal::new(&scope.closes, winding);
    loop {
        let t = &ctx.limits.timeouts;
        // The first head is also bounded by `header_read` from the accept.
        let wait = match (served, t.idle, t.header_read) {
            (0, idle, head) if idle.is_zero() => head,
            (0, idle, head) if head.is_zero() => idle,
            (0, idle, head) => idle.min(head),
            (_, idle, _) => idle,
        };
        let mut buf = match held.take() {
            Some(buf) if !buf.is_empty() => buf,
            other => {
                if let Some(buf) = other {
                    buf.give_back();
                }
                let stop = if served == 0 {
                    &mut drain
                } else {
                    &mut winding
                };
                if !wait_for_bytes(&stream, wait, &mut kill, stop).await {
                    tracing::debug!("closing idle connection");
                    return;
                }
                Buf::take()
            }
        };
        let mut scratch = Scratch::take();
        let next = {
            let fut = Box::pin(request::handle(
                &mut stream,
                &ctx,
                &mut buf,
                &mut scratch,
                served,
                wait,
            ));
            tokio::select! {
                biased;
                () = &mut kill => {
                    tracing::debug!("connection closed by force");
                    return;
                }
                next = fut => next,
            }
        };
        scratch.give_back();
        served += 1;
        match next {
            Next::KeepAlive => held = Some(buf),
            Next::Close => {
                buf.give_back();
                // FIN after the last response, so the client reads it before the close.
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
                return;
            }
            Next::Http2 => {
                Box::pin(crate::h2_server::serve(
                    super::rewind::Rewind::new(buf, stream),
                    &ctx,
                ))
                .await;
                return;
            }
            Next::Upgrade(tunnel) => {
                buf.give_back();
                Box::pin(tunnel.run(stream, &ctx)).await;
                return;
            }
        }
    }
}

/// Waits until the client's socket is readable; `false` when the wait timed out, `stop`
/// came (the drain, or the grace for a connection that has served a request), or the
/// socket failed. Readiness can be a false positive (and is
/// always claimed for TLS): the first read is bounded by the same wait.
async fn wait_for_bytes<S: ClientStream>(
    stream: &S,
    limit: Duration,
    kill: &mut Signal<'_, '_>,
    stop: &mut Signal<'_, '_>,
) -> bool {
    let ready = super::within(limit, poll_fn(|cx| stream.poll_read_ready_idle(cx)));
    tokio::select! {
        biased;
        () = &mut *kill => false,
        r = ready => matches!(r, Ok(Ok(()))),
        () = &mut *stop => false,
    }
}

/// A listener's drain or kill as this connection's task sees it: the token's wait is
/// registered with the task's waker once (a task's waker does not change), after which
/// a poll reads only the flag set just before the token is cancelled.
struct Signal<'f, 't> {
    flag: &'f AtomicBool,
    wait: Pin<&'f mut WaitForCancellationFuture<'t>>,
    registered: bool,
}

impl<'f, 't> Signal<'f, 't> {
    fn new(flag: &'f AtomicBool, wait: Pin<&'f mut WaitForCancellationFuture<'t>>) -> Self {
        Signal {
            flag,
            wait,
            registered: false,
        }
    }
}

impl std::future::Future for Signal<'_, '_> {
    type Output = ();

    /// Ready once the signal is given.
    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.flag.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if this.registered {
            return Poll::Pending;
        }
        this.registered = true;
        std::future::Future::poll(this.wait.as_mut(), cx)
    }
}
