//! How a probe's connection is secured: plain TCP, or the pool's TLS.
//!
//! A pool with `tls` must be probed the way its traffic reaches it, or an `http` check
//! sends `GET` in the clear to a TLS port and takes every healthy backend down. The TLS
//! settings belong to the proxy (`weir_proxy::tls`, attached to each backend before a
//! table goes live), and this crate sits beside the proxy, not above it, so the binary
//! hands the checker a [`Transport`] that knows them; [`Plain`] is the default.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use weir_balance::Backend;

/// A stream a probe reads and writes: the TCP socket, or TLS over it.
pub trait ProbeStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ProbeStream for T {}

/// What the probe will say over the connection (the TLS ALPN depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// A `tcp` check: nothing is sent.
    Tcp,
    /// An `http` check: one HTTP/1.1 request.
    Http,
}

/// The future [`Transport::secure`] returns.
pub type Secured<'a> = Pin<Box<dyn Future<Output = io::Result<Box<dyn ProbeStream>>> + Send + 'a>>;

/// Turns a probe's fresh TCP connection into what the pool's traffic uses.
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// `stream` is connected to `backend`; the result is what the probe talks over. An
    /// error (a failed TLS handshake, a refused certificate) fails the probe. The
    /// probe's timeout bounds the whole call.
    fn secure<'a>(
        &'a self,
        backend: &'a Backend,
        stream: TcpStream,
        kind: ProbeKind,
    ) -> Secured<'a>;
}

/// Every backend in plain TCP.
#[derive(Debug, Default, Clone, Copy)]
pub struct Plain;

impl Transport for Plain {
    fn secure<'a>(&'a self, _: &'a Backend, stream: TcpStream, _: ProbeKind) -> Secured<'a> {
        Box::pin(async move { Ok(Box::new(stream) as Box<dyn ProbeStream>) })
    }
}
