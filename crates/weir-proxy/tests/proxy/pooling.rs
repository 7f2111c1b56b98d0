//! Pooled backend connections: closed by the idle sweeper after their timeout, kept by
//! a reload that keeps the pool's transport settings, closed by one that changes them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use weir_balance::{BackendRegistry, SharedTable};
use weir_config::{Config, UpstreamProtocol};
use weir_proxy::{spawn_idle_sweeper, spawn_listener, ListenerHandle};
use weir_upstream::Transports;

use crate::support::{assert_starts_with, config, http_listener, pool, WAIT};

/// A keep-alive HTTP/1.1 backend written by hand, so the test sees exactly when weir
/// opens and closes its connections: every request gets `200 ok`; each connection's
/// EOF is reported on `closed` with when it came.
struct RawBackend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<Instant>,
}

async fn raw_backend() -> RawBackend {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, closed) = mpsc::unbounded_channel();
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
                let _ = tx.send(Instant::now());
            });
        }
    });
    RawBackend {
        addr,
        accepted,
        closed,
    }
}

struct Proxy {
    addr: SocketAddr,
    table: SharedTable,
    registry: BackendRegistry,
    _handle: ListenerHandle,
    _sweeper: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn transports(config: &Config, idle: Duration) -> Transports {
    Transports::load(config)
        .expect("transports load")
        .with_idle_timeout(idle)
}

/// A proxy whose pooled connections expire after `idle`, with the idle sweeper running.
async fn start(config: Config, idle: Duration) -> Proxy {
    let registry = BackendRegistry::new();
    let t = transports(&config, idle);
    let table: SharedTable = Arc::new(ArcSwap::from_pointee(registry.build_with(
        Arc::new(config),
        1,
        &t,
    )));
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let handle = spawn_listener(socket, Arc::from("web"), Arc::clone(&table)).expect("spawn");
    let sweeper = AbortOnDrop(spawn_idle_sweeper(Arc::clone(&table)));
    Proxy {
        addr: handle.local_addr(),
        table,
        registry,
        _handle: handle,
        _sweeper: sweeper,
    }
}

impl Proxy {
    fn reload(&self, config: Config, idle: Duration) {
        let generation = self.table.load().generation() + 1;
        let t = transports(&config, idle);
        let table = self.registry.build_with(Arc::new(config), generation, &t);
        self.table.store(Arc::new(table));
    }
}

/// One keep-alive GET through the proxy on a new client connection, read to its end.
async fn get(proxy: SocketAddr) {
    let mut client = TcpStream::connect(proxy).await.expect("connect proxy");
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: pooled.test\r\n\r\n")
        .await
        .expect("write request");
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        while !got.ends_with(b"\r\n\r\nok") {
            let n = client.read(&mut chunk).await.expect("read response");
            assert!(n > 0, "proxy closed before the response ended");
            got.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("response in time");
    assert_starts_with(&got, b"HTTP/1.1 200");
}

#[tokio::test]
async fn an_idle_pooled_connection_is_closed_by_weir_after_its_idle_timeout() {
    let idle = Duration::from_millis(300);
    let mut backend = raw_backend().await;
    let proxy = start(
        config(http_listener("p"), vec![pool("p", &[backend.addr])]),
        idle,
    )
    .await;
    get(proxy.addr).await;
    let answered = Instant::now();
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);
    let closed = tokio::time::timeout(WAIT, backend.closed.recv())
        .await
        .expect("weir closed the idle backend connection within the wait")
        .expect("backend running");
    assert!(
        closed.duration_since(answered) >= idle,
        "closed after {:?}, before the idle timeout",
        closed.duration_since(answered)
    );
    // The pool is empty now: the next request opens a new connection.
    get(proxy.addr).await;
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_reload_keeping_the_transport_settings_keeps_warm_connections() {
    let idle = Duration::from_secs(60);
    let backend = raw_backend().await;
    let cfg = || config(http_listener("p"), vec![pool("p", &[backend.addr])]);
    let proxy = start(cfg(), idle).await;
    get(proxy.addr).await;
    proxy.reload(cfg(), idle);
    get(proxy.addr).await;
    assert_eq!(
        backend.accepted.load(Ordering::SeqCst),
        1,
        "the second request reused the pooled connection"
    );
}

#[tokio::test]
async fn a_reload_changing_the_upstream_protocol_closes_idle_connections() {
    let idle = Duration::from_secs(60);
    let mut backend = raw_backend().await;
    let cfg = |protocol| {
        let mut p = pool("p", &[backend.addr]);
        p.upstream_protocol = protocol;
        config(http_listener("p"), vec![p])
    };
    let proxy = start(cfg(UpstreamProtocol::Http1), idle).await;
    get(proxy.addr).await;
    proxy.reload(cfg(UpstreamProtocol::H2), idle);
    tokio::time::timeout(WAIT, backend.closed.recv())
        .await
        .expect("the reload closed the HTTP/1.1 idle connection")
        .expect("backend running");
}
