//! Proxies with TLS listeners, plain and TLS backends, and a rustls client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use weir_balance::{BackendRegistry, SharedTable};
use weir_config::{
    test_util, CertificateConfig, Config, ListenerConfig, ListenerTlsConfig, Origin, PoolConfig,
    Protocol, UpstreamTlsConfig,
};
use weir_proxy::tls::ListenerTls;
use weir_proxy::{spawn_tls_listener, ListenerHandle};
use weir_upstream::Transports;

use weir_e2e::tls::{Ca, Dir, Leaf};

pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `{ cert, key }` entries for `leaves`, written to `dir`.
pub(crate) fn tls_config(dir: &Dir, leaves: &[&Leaf]) -> ListenerTlsConfig {
    let certificates = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| CertificateConfig {
            cert: dir.write(&format!("cert{i}.pem"), &l.cert_pem),
            key: dir.write(&format!("key{i}.pem"), &l.key_pem),
            origin: Origin {
                file: "weir.yaml".into(),
                line: 5 + i,
                column: 11,
                path: format!("listeners[0].tls.certificates[{i}]"),
            },
        })
        .collect();
    ListenerTlsConfig {
        certificates,
        handshake_timeout: Duration::from_secs(5),
    }
}

/// Pool `web` with the one backend `addr` (over TLS with `tls`): response 10 s, no retries.
pub(crate) fn pool(addr: SocketAddr, tls: Option<UpstreamTlsConfig>) -> PoolConfig {
    let mut pool = test_util::pool("web", vec![test_util::backend(addr)]);
    pool.timeouts.response = Duration::from_secs(10);
    pool.retries = 0;
    pool.tls = tls;
    pool
}

/// Listener `web` of `protocol` terminating `tls`, to pool `web`, at most 100 connections.
pub(crate) fn listener(protocol: Protocol, tls: ListenerTlsConfig) -> ListenerConfig {
    let plain = match protocol {
        Protocol::Http => test_util::http_listener("web", "web"),
        Protocol::Tcp => test_util::tcp_listener("web", "web"),
    };
    ListenerConfig {
        tls: Some(tls),
        max_connections: 100,
        ..plain
    }
}

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) handle: ListenerHandle,
    #[allow(dead_code)] // keeps the table alive alongside the handle
    pub(crate) table: SharedTable,
}

impl Proxy {
    /// A proxy for `listener` and `pool`, TLS loaded the way the binary loads it.
    pub(crate) async fn start(listener: ListenerConfig, pool: PoolConfig) -> Proxy {
        let protocol = listener.protocol;
        let tls = listener
            .tls
            .as_ref()
            .map(|t| ListenerTls::load(t, protocol).expect("listener TLS loads"));
        let config = Config {
            shutdown_timeout: Duration::from_secs(5),
            shutdown_grace: Duration::ZERO,
            ..test_util::config(vec![listener], vec![pool])
        };
        let upstream = Transports::load(&config).expect("upstream TLS loads");
        let table = BackendRegistry::new().build_with(Arc::new(config), 1, &upstream);
        let table: SharedTable = Arc::new(ArcSwap::from_pointee(table));
        let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let handle = spawn_tls_listener(socket, Arc::from("web"), Arc::clone(&table), tls)
            .expect("spawn listener");
        Proxy {
            addr: handle.local_addr(),
            handle,
            table,
        }
    }
}

/// A backend's TLS side: `leaf`'s certificate, offering `alpn`.
pub(crate) fn acceptor(leaf: &Leaf, alpn: &[&[u8]]) -> TlsAcceptor {
    let key =
        <rustls_pki_types::PrivateKeyDer<'_> as rustls_pki_types::pem::PemObject>::from_pem_slice(
            leaf.key_pem.as_bytes(),
        )
        .expect("key PEM");
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der.clone()], key)
        .expect("backend server config");
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsAcceptor::from(Arc::new(config))
}

/// A backend's connection: a TCP stream, or the TLS stream over one.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Accepts on `listener` until it fails, each connection in a task of its own: over TLS
/// by `acceptor` if set (a failed handshake drops the connection), then `serve`d. The
/// counter it returns counts the connections accepted.
fn serve_each<F, Fut>(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    serve: F,
) -> Arc<AtomicUsize>
where
    F: Fn(Box<dyn Io>) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => serve(Box::new(stream)).await,
                    Some(a) => {
                        if let Ok(tls) = a.accept(stream).await {
                            serve(Box::new(tls)).await;
                        }
                    }
                }
            });
        }
    });
    accepted
}

/// An HTTP/1.1 backend answering `name proto=<X-Forwarded-Proto>`; over TLS with `leaf`.
pub(crate) async fn backend(name: &'static str, leaf: Option<&Leaf>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend addr");
    serve_each(listener, leaf.map(|l| acceptor(l, &[])), move |io| {
        serve_backend(name, io)
    });
    addr
}

async fn serve_backend(name: &'static str, io: Box<dyn Io>) {
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
        let proto = req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(format!(
            "{name} proto={proto}"
        )))))
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await
    {
        eprintln!("backend connection: {e}");
    }
}

/// An HTTP/2 backend (ALPN `h2` over TLS with `leaf`, else h2c prior knowledge)
/// answering `name version=<request version>`; counts the connections it accepted.
pub(crate) async fn h2_backend(
    name: &'static str,
    leaf: Option<&Leaf>,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().expect("backend addr");
    let accepted = serve_each(listener, leaf.map(|l| acceptor(l, &[b"h2"])), move |io| {
        serve_h2(name, io)
    });
    (addr, accepted)
}

async fn serve_h2(name: &'static str, io: Box<dyn Io>) {
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| async move {
        let text = format!(
            "{name} version={:?} authority={}",
            req.version(),
            req.uri().authority().map_or("-", |a| a.as_str())
        );
        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
    });
    if let Err(e) = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), svc)
        .await
    {
        eprintln!("h2 backend connection: {e}");
    }
}

pub(crate) use weir_e2e::spawn_tcp_echo as echo_backend;

/// Connects and handshakes, verifying the certificate for `name`.
pub(crate) async fn connect(
    addr: SocketAddr,
    config: ClientConfig,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let handshake = TlsConnector::from(Arc::new(config)).connect(name, tcp);
    tokio::time::timeout(WAIT, handshake)
        .await
        .expect("handshake within the wait")
}

/// The certificate the server presented.
pub(crate) fn peer_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a peer certificate")
        .clone()
        .into_owned()
}

/// One HTTP/1.1 GET over `io`; the status and body.
pub(crate) async fn get_h1<S>(io: S) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "a.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    read(sender.send_request(req).await.expect("h1 response")).await
}

/// One HTTP/2 GET over `io`.
pub(crate) async fn get_h2<S>(io: S) -> (u16, String)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get("https://a.test/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    read(sender.send_request(req).await.expect("h2 response")).await
}

async fn read(resp: Response<Incoming>) -> (u16, String) {
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Upstream TLS settings trusting `ca` (written to `dir`) with SNI `server_name`.
pub(crate) fn upstream_tls(dir: &Dir, ca: &Ca, server_name: &str) -> UpstreamTlsConfig {
    let ca_path: PathBuf = dir.write("ca.pem", &ca.pem());
    UpstreamTlsConfig {
        server_name: Some(server_name.to_owned()),
        ca: Some(ca_path),
        verify: true,
        origin: Origin::default(),
    }
}
