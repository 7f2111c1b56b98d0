//! Minimal clients for talking to weir the way real clients do.
//!
//! - [`H1Client`]: one keep-alive HTTP/1.1 connection (hyper's `client::conn::http1`), so a
//!   test controls exactly which requests share a connection.
//! - [`H2Client`]: HTTP/2 over plain TCP with prior knowledge (h2c).
//! - [`raw`]: bytes on a socket, for malformed requests hyper would refuse to send and for
//!   checking that a port refuses.
//!
//! Every call is bounded by a timeout and returns an error instead of hanging; the
//! convenience functions ([`get`], [`get_host`]) panic with the address and path instead.

pub mod raw;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// Any client-side failure: connect, protocol, timeout. Counted, not matched on, by tests.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Longest a connect may take before it counts as a failure.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole request (head and body) may take before it counts as a failure.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A response with its body read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The HTTP version the client spoke.
    pub version: Version,
}

impl Response {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn connect_tcp(addr: SocketAddr) -> Result<TcpStream, BoxError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr} timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn read_whole(resp: http::Response<hyper::body::Incoming>) -> Result<Response, BoxError> {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    })
}

// === impl Client ===

/// One client connection to `addr`, its requests sent by `S`: hyper's HTTP/1.1 or HTTP/2
/// sender ([`H1Client`], [`H2Client`]).
#[derive(Debug, Clone)]
pub struct Client<S> {
    addr: SocketAddr,
    sender: S,
}

/// One HTTP/1.1 connection, reused for every request sent on it (keep-alive).
pub type H1Client = Client<http1::SendRequest<Full<Bytes>>>;

/// An HTTP/2 connection over plain TCP (prior knowledge). Clones share the connection
/// and may send concurrently, as HTTP/2 multiplexes.
pub type H2Client = Client<http2::SendRequest<Full<Bytes>>>;

/// What [`Client`] needs of hyper's two senders, which share no trait.
pub trait Sender {
    /// Waits until the connection can take a request.
    fn ready(&mut self) -> impl Future<Output = hyper::Result<()>>;
    /// Sends `req`; resolves to the response head.
    fn send_request(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> impl Future<Output = hyper::Result<http::Response<Incoming>>>;
}

/// hyper's senders have the same two methods, inherent to each: one impl for both.
macro_rules! impl_sender {
    ($($version:ident),*) => {$(
        impl Sender for $version::SendRequest<Full<Bytes>> {
            fn ready(&mut self) -> impl Future<Output = hyper::Result<()>> {
                $version::SendRequest::ready(self)
            }
            fn send_request(
                &mut self,
                req: Request<Full<Bytes>>,
            ) -> impl Future<Output = hyper::Result<http::Response<Incoming>>> {
                $version::SendRequest::send_request(self, req)
            }
        }
    )*};
}

impl_sender!(http1, http2);

impl<S: Sender> Client<S> {
    /// The address this client is connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` as it is and reads the whole response, within [`REQUEST_TIMEOUT`];
    /// `what` names the request in the timeout's error.
    async fn exchange(
        &mut self,
        req: Request<Full<Bytes>>,
        what: &str,
    ) -> Result<Response, BoxError> {
        let fut = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            read_whole(resp).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| format!("{what} to {} timed out", self.addr))?
    }
}

/// Drives a client connection's I/O in a task of its own, logging how it ended.
fn drive<E: std::fmt::Display>(
    what: &'static str,
    addr: SocketAddr,
    conn: impl Future<Output = Result<(), E>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("{what} client connection to {addr} ended: {e}");
        }
    });
}

// === impl H1Client ===

impl H1Client {
    /// Opens a connection to `addr`.
    ///
    /// # Errors
    /// When the connection is refused or the handshake fails or times out.
    pub async fn connect(addr: SocketAddr) -> Result<H1Client, BoxError> {
        let stream = connect_tcp(addr).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        drive("h1", addr, conn.with_upgrades());
        Ok(Client { addr, sender })
    }

    /// Whether the server closed the connection (no further request can be sent).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends `req` (adding `Host: addr` unless set) and reads the whole response.
    ///
    /// # Errors
    /// When the connection fails, the server closes it early, or 15 s pass.
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Result<Response, BoxError> {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut()
                .insert(header::HOST, self.addr.to_string().parse()?);
        }
        self.exchange(req, "request").await
    }

    /// `GET path` on this connection.
    ///
    /// # Errors
    /// As [`H1Client::send`].
    pub async fn get(&mut self, path: &str) -> Result<Response, BoxError> {
        let req = Request::get(path).body(Full::new(Bytes::new()))?;
        self.send(req).await
    }

    /// Sends `n` GETs of `path` one after the other, asserting each is a 200 with the
    /// body `body`.
    ///
    /// # Panics
    /// When a request fails or is answered otherwise.
    pub async fn assert_gets(&mut self, n: usize, path: &str, body: &str) {
        for i in 0..n {
            let resp = self.get(path).await.expect("GET");
            assert_eq!(
                (resp.status.as_u16(), resp.text()),
                (200, body.to_owned()),
                "GET {path} #{i}"
            );
        }
    }
}

/// Sends `req` on a fresh HTTP/1.1 connection to `addr`.
///
/// # Errors
/// As [`H1Client::connect`] and [`H1Client::send`].
pub async fn request(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Response, BoxError> {
    H1Client::connect(addr).await?.send(req).await
}

/// `GET path` on a fresh connection, `Host` = `addr`.
///
/// # Panics
/// On any failure, naming the address and path.
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    let req = Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    request(addr, req)
        .await
        .unwrap_or_else(|e| panic!("GET http://{addr}{path} failed: {e}"))
}

/// `GET path` with `Host: host` on a fresh connection.
///
/// # Panics
/// On any failure, naming the address, host and path.
pub async fn get_host(addr: SocketAddr, host: &str, path: &str) -> Response {
    let req = Request::get(path)
        .header(header::HOST, host)
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    request(addr, req)
        .await
        .unwrap_or_else(|e| panic!("GET {path} (Host: {host}) via {addr} failed: {e}"))
}

// === impl H2Client ===

impl H2Client {
    /// Opens an h2c connection to `addr`.
    ///
    /// # Errors
    /// When the connection is refused or the HTTP/2 handshake fails.
    pub async fn connect(addr: SocketAddr) -> Result<H2Client, BoxError> {
        let stream = connect_tcp(addr).await?;
        let (sender, conn) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            http2::handshake(TokioExecutor::new(), TokioIo::new(stream)),
        )
        .await
        .map_err(|_| format!("h2 handshake with {addr} timed out"))??;
        drive("h2", addr, conn);
        Ok(Client { addr, sender })
    }

    /// Whether the connection has ended (after the server's GOAWAY, once its streams
    /// finished): no further request can be sent.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends `req` (its URI must be absolute: `http://authority/path`) and reads the response.
    ///
    /// # Errors
    /// When the stream or connection fails, or 15 s pass.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response, BoxError> {
        self.exchange(req, "h2 request").await
    }

    /// `GET http://{authority}{path}`.
    ///
    /// # Errors
    /// As [`H2Client::send`].
    pub async fn get(&mut self, authority: &str, path: &str) -> Result<Response, BoxError> {
        let req = Request::get(format!("http://{authority}{path}"))
            .version(Version::HTTP_2)
            .body(Full::new(Bytes::new()))?;
        self.send(req).await
    }
}
