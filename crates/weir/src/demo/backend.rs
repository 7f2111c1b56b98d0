//! The demo's backends: tiny HTTP servers that name themselves, which the demo kills and
//! brings back on the same port.
//!
//! A kill is as abrupt as a crashed process: the listening socket is closed (connects are
//! refused) and every open connection is dropped, including weir's pooled keep-alive
//! ones and requests the backend is in the middle of. [`DemoBackend::kill`] returns only
//! when nothing of the old server runs any more, so the demo can state exactly which
//! answers came before the kill.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// The response header naming the demo backend that answered (`1`, `2` or `3`).
pub(super) const BACKEND_HEADER: &str = "x-demo-backend";

/// One demo backend, running or killed.
pub(super) struct DemoBackend {
    n: usize,
    addr: SocketAddr,
    running: Option<Running>,
}

/// The server task of a running backend; dropping `stop` also stops it.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl DemoBackend {
    /// Binds a free loopback port and serves on it.
    pub(super) async fn start(n: usize) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a demo backend on 127.0.0.1")?;
        let addr = listener.local_addr().context("demo backend address")?;
        let mut backend = DemoBackend {
            n,
            addr,
            running: None,
        };
        backend.serve(listener);
        Ok(backend)
    }

    /// Its number, as it names itself.
    pub(super) fn n(&self) -> usize {
        self.n
    }

    /// Its address (the same after a return).
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and drops every open connection; returns once all of it is gone.
    pub(super) async fn kill(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        // The task may have ended on its own; either way it is over once joined.
        let _ = running.stop.send(());
        if let Err(e) = running.task.await {
            tracing::debug!(backend = self.n, error = %e, "demo backend task ended badly");
        }
    }

    /// Binds its old port again. Nothing is answered until [`DemoBackend::serve`]: the
    /// kernel queues connections meanwhile.
    pub(super) async fn bind_again(&self) -> std::io::Result<TcpListener> {
        TcpListener::bind(self.addr).await
    }

    /// Starts answering on `listener`.
    pub(super) fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(self.n, listener, stopped));
        self.running = Some(Running { stop, task });
    }
}

async fn accept_loop(n: usize, listener: TcpListener, mut stopped: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(n, stream));
                }
                Err(e) => {
                    // Out of descriptors, most likely: back off instead of spinning.
                    tracing::debug!(backend = n, error = %e, "demo backend accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn connection(n: usize, stream: TcpStream) {
    let service = service_fn(
        move |req: hyper::Request<hyper::body::Incoming>| async move {
            let body = format!("demo backend {n}: {} {}\n", req.method(), req.uri().path());
            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
            resp.headers_mut()
                .insert(BACKEND_HEADER, hyper::header::HeaderValue::from(n));
            Ok::<_, Infallible>(resp)
        },
    );
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(backend = n, error = %e, "demo backend connection error");
    }
}
