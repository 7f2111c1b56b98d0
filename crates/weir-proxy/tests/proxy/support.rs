//! Test support: configs on top of `weir_config::test_util`, a proxy on 127.0.0.1:0,
//! hyper test backends with scripted behaviours, and raw/hyper clients. Loopback ports,
//! TCP echo servers and waits come from `weir_e2e`. Every wait is bounded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use weir_balance::{BackendRegistry, SharedTable};
use weir_config::{test_util, Config, ListenerConfig, PoolConfig};
use weir_proxy::{spawn_listener, ListenerHandle};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Pool `name`: round robin over `addrs`, the defaults of `weir_config::test_util::pool`.
pub(crate) fn pool(name: &str, addrs: &[SocketAddr]) -> PoolConfig {
    test_util::pool(
        name,
        addrs.iter().copied().map(test_util::backend).collect(),
    )
}

/// Listener `web` sending every request to `pool`, at most 100 connections.
pub(crate) fn http_listener(pool: &str) -> ListenerConfig {
    ListenerConfig {
        max_connections: 100,
        ..test_util::http_listener("web", pool)
    }
}

/// TCP listener `web` relaying to `pool`, at most 100 connections.
pub(crate) fn tcp_listener(pool: &str) -> ListenerConfig {
    ListenerConfig {
        max_connections: 100,
        ..test_util::tcp_listener("web", pool)
    }
}

/// A config of `listener` and `pools`, 5 s to drain.
pub(crate) fn config(listener: ListenerConfig, pools: Vec<PoolConfig>) -> Config {
    Config {
        shutdown_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::ZERO,
        ..test_util::config(vec![listener], pools)
    }
}

/// A TCP listener relaying to pool `name` over `backends`.
pub(crate) fn tcp_config(name: &str, backends: &[SocketAddr]) -> Config {
    config(tcp_listener(name), vec![pool(name, backends)])
}

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) handle: ListenerHandle,
    pub(crate) table: SharedTable,
    pub(crate) registry: BackendRegistry,
}

impl Proxy {
    pub(crate) async fn start(config: Config) -> Proxy {
        let registry = BackendRegistry::new();
        let table: SharedTable =
            Arc::new(ArcSwap::from_pointee(registry.build(Arc::new(config), 1)));
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let handle = spawn_listener(socket, Arc::from("web"), Arc::clone(&table)).expect("spawn");
        Proxy {
            addr: handle.local_addr(),
            handle,
            table,
            registry,
        }
    }

    /// An HTTP listener sending every request to pool `app` over `backends`.
    pub(crate) async fn http(backends: &[SocketAddr]) -> Proxy {
        Proxy::start(config(http_listener("app"), vec![pool("app", backends)])).await
    }

    /// [`Proxy::http`] in front of one backend named `a`.
    pub(crate) async fn http_to_a() -> (TestBackend, Proxy) {
        let b = backend(Behaviour::Name("a")).await;
        let proxy = Proxy::http(&[b.addr]).await;
        (b, proxy)
    }

    /// [`Proxy::http_to_a`] and an HTTP/1.1 client connected to it.
    pub(crate) async fn http_to_a_with_client() -> (TestBackend, Proxy, Client) {
        let (b, proxy) = Proxy::http_to_a().await;
        let c = client(proxy.addr).await;
        (b, proxy, c)
    }

    pub(crate) fn reload(&self, config: Config) {
        let generation = self.table.load().generation() + 1;
        self.table
            .store(Arc::new(self.registry.build(Arc::new(config), generation)));
    }
}

pub(crate) use weir_e2e::{closed_port, closed_ports};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Behaviour {
    /// Answers its name, with a few hop-by-hop headers the proxy must strip.
    Name(&'static str),
    /// Streams the request body back.
    Echo,
    /// Never answers.
    Hang,
    /// Answers 101 and echoes raw bytes on the upgraded stream.
    Upgrade,
    /// Signals `got`, waits for `gate`, then answers.
    Gate,
    /// Answers this status with a short body.
    Status(u16),
}

#[derive(Clone)]
pub(crate) struct TestBackend {
    pub(crate) addr: SocketAddr,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) conns: Arc<AtomicUsize>,
    pub(crate) seen: Arc<Mutex<Vec<(Uri, HeaderMap)>>>,
    pub(crate) got: Arc<Notify>,
    pub(crate) gate: Arc<Notify>,
}

impl TestBackend {
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn last_headers(&self) -> HeaderMap {
        self.seen
            .lock()
            .expect("lock")
            .last()
            .expect("a request")
            .1
            .clone()
    }
}

type TestBody = BoxBody<Bytes, hyper::Error>;

pub(crate) async fn backend(behaviour: Behaviour) -> TestBackend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let b = TestBackend {
        addr: listener.local_addr().expect("addr"),
        hits: Arc::default(),
        conns: Arc::default(),
        seen: Arc::default(),
        got: Arc::default(),
        gate: Arc::default(),
    };
    let state = b.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            state.conns.fetch_add(1, Ordering::SeqCst);
            let state = state.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req| respond(state.clone(), behaviour, req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades();
                if let Err(e) = conn.await {
                    eprintln!("test backend connection: {e}");
                }
            });
        }
    });
    b
}

async fn respond(
    state: TestBackend,
    behaviour: Behaviour,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, hyper::Error> {
    state.hits.fetch_add(1, Ordering::SeqCst);
    state
        .seen
        .lock()
        .expect("lock")
        .push((req.uri().clone(), req.headers().clone()));
    let full = |s: &'static str| {
        Full::new(Bytes::from_static(s.as_bytes()))
            .map_err(|e| match e {})
            .boxed()
    };
    match behaviour {
        Behaviour::Name(name) => {
            // Drain the body so the connection stays reusable.
            req.into_body().collect().await?;
            Ok(Response::builder()
                .header("keep-alive", "timeout=5")
                .header("connection", "x-backend-private")
                .header("x-backend-private", "1")
                .header("x-backend", name)
                .body(full(name))
                .expect("response"))
        }
        Behaviour::Echo => Ok(Response::new(req.into_body().boxed())),
        Behaviour::Status(status) => {
            req.into_body().collect().await?;
            Ok(Response::builder()
                .status(status)
                .body(full("status"))
                .expect("response"))
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Gate => {
            state.got.notify_one();
            state.gate.notified().await;
            Ok(Response::new(full("released")))
        }
        Behaviour::Upgrade => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let upgraded = on.await.expect("backend upgrade");
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                loop {
                    let n = io.read(&mut buf).await.expect("tunnel read");
                    if n == 0 {
                        break;
                    }
                    io.write_all(&buf[..n]).await.expect("tunnel write");
                }
            });
            Ok(Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("upgrade", "echo")
                .header("connection", "upgrade")
                .body(Empty::new().map_err(|e| match e {}).boxed())
                .expect("response"))
        }
    }
}

pub(crate) type Client = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub(crate) async fn client(addr: SocketAddr) -> Client {
    let stream = TcpStream::connect(addr).await.expect("connect to proxy");
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("test client connection: {e}");
        }
    });
    tx
}

/// An HTTP/2 client connection to `addr` whose requests carry bodies of type `B`.
pub(crate) async fn h2_client<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.expect("connect to proxy");
    let (tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("test h2 client connection: {e}");
        }
    });
    tx
}

/// `POST /` to host `x` with `body`.
pub(crate) fn post(body: &'static [u8]) -> Request<Full<Bytes>> {
    Request::post("/")
        .header("host", "x")
        .body(Full::new(Bytes::from_static(body)))
        .expect("request")
}

/// A bodiless `GET path` for host `example.com`.
pub(crate) fn get(path: &str) -> Request<Full<Bytes>> {
    get_with(path, &[("host", "example.com")])
}

/// A bodiless `GET path` with exactly `headers`, in order.
pub(crate) fn get_with(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    headers
        .iter()
        .fold(Request::get(path), |req, (name, value)| {
            req.header(*name, *value)
        })
        .body(Full::default())
        .expect("request")
}

/// Sends a request and returns status, headers and the whole body.
pub(crate) async fn send(
    client: &mut Client,
    req: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, Bytes) {
    tokio::time::timeout(WAIT, async {
        client.ready().await.expect("client ready");
        let res = client.send_request(req).await.expect("response");
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, headers, body)
    })
    .await
    .expect("response in time")
}

/// Writes raw bytes and reads until the proxy closes the connection.
pub(crate) async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "proxy did not close: got {:?}",
        String::from_utf8_lossy(&out)
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts that the raw bytes `reply` begin with `prefix` (a status line, say), showing
/// the reply when they do not.
#[track_caller]
pub(crate) fn assert_starts_with(reply: &[u8], prefix: &[u8]) {
    assert!(
        reply.starts_with(prefix),
        "{}",
        String::from_utf8_lossy(reply)
    );
}
