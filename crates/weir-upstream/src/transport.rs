//! A pool's transport settings and the one connector every backend connection goes
//! through.
//!
//! [`Transport::connect`] is the only place weir opens a connection to a backend: the
//! TCP connect, an optional preamble (the PROXY header of a TCP listener with
//! `proxy_protocol`), then the pool's TLS handshake with the ALPN the caller speaks, all
//! within one timeout. HTTP requests (the HTTP/1 engine and hyper's HTTP/2 client), TCP
//! relays and health probes call it, so they connect and verify alike.
//!
//! The PROXY header goes first and in the clear, as HAProxy's `send-proxy` with `ssl`
//! does: it describes the TCP connection, and a backend reads it before its TLS
//! handshake (nginx's `listen ... ssl proxy_protocol`).
//!
//! A transport is part of the routing snapshot (each `Pool` holds one), so a request
//! connects with the settings of the table it was routed on. Each has an identity
//! ([`Transport::id`]); the registry hands a reload that keeps a pool's settings the
//! same `Arc<Transport>`, so connections made under it stay reusable
//! ([`crate::Conns`]), and a reload that changes them gets a new identity, under which
//! the old connections are never reused.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use weir_config::{Config, PoolConfig, UpstreamProtocol};

use crate::tls::{Alpn, TlsError, UpstreamTls};
use crate::Stream;

/// Longest a backend connection waits in its idle queue by default: shorter than the
/// keep-alive timeouts of common servers (nginx 75 s; shorter ones, such as Apache's
/// 5 s, are caught by the readiness check before reuse), and what Envoy and Pingora use
/// for upstream idle connections by default (60 s).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Source of [`Transport::id`]s: unique for the process's life, so an id is never
/// taken by another transport after its first one is dropped.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How weir reaches the backends of one pool. A clone is the same transport (same
/// identity).
#[derive(Debug, Clone)]
pub struct Transport {
    id: u64,
    /// `None`: plain TCP.
    tls: Option<UpstreamTls>,
    /// `upstream_protocol: h2`.
    h2: bool,
    /// How long a pooled connection may stay idle ([`POOL_IDLE_TIMEOUT`]).
    idle_timeout: Duration,
}

/// Why [`Transport::connect`] failed; every case is a connect failure (nothing of a
/// request was sent).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connect failed (refused, unreachable, ...).
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    /// Writing the preamble (PROXY header) failed.
    #[error("sending the PROXY header failed: {0}")]
    Preamble(#[source] io::Error),
    /// The TLS handshake failed or the backend's certificate was refused.
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// The whole connect did not finish within its timeout.
    #[error("connect timed out")]
    Timeout,
}

impl ConnectError {
    /// The I/O error, for callers that report one (`None` for a timeout).
    pub fn into_io(self) -> Option<io::Error> {
        match self {
            ConnectError::Connect(e) | ConnectError::Preamble(e) | ConnectError::Tls(e) => Some(e),
            ConnectError::Timeout => None,
        }
    }
}

// === impl Transport ===

impl Transport {
    fn build(tls: Option<UpstreamTls>, h2: bool) -> Self {
        Transport {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            tls,
            h2,
            idle_timeout: POOL_IDLE_TIMEOUT,
        }
    }

    /// Plain TCP, HTTP/2 when `h2`, else HTTP/1.1.
    pub fn plain(h2: bool) -> Self {
        Self::build(None, h2)
    }

    /// The transport of `pool`: its `tls` (CA file read now) and `upstream_protocol`.
    ///
    /// Blocking file I/O when the pool has `tls`: call it off the runtime's workers.
    ///
    /// # Errors
    ///
    /// The pool's TLS settings cannot be used (see [`UpstreamTls::load`]).
    pub fn load(pool: &PoolConfig) -> Result<Self, TlsError> {
        let h2 = pool.upstream_protocol == UpstreamProtocol::H2;
        let tls = match &pool.tls {
            Some(tls) => Some(UpstreamTls::load(tls, h2)?),
            None => None,
        };
        Ok(Self::build(tls, h2))
    }

    /// The same transport with pooled connections expiring after `timeout` idle
    /// instead of [`POOL_IDLE_TIMEOUT`]. weir's config has no field for it; embedders
    /// (and the tests proving the expiry) choose it here.
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// This transport's identity: connections are reused only under the identity they
    /// were made with.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the pool speaks HTTP/2 to its backends.
    pub fn is_h2(&self) -> bool {
        self.h2
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS settings, if any.
    pub fn tls(&self) -> Option<&UpstreamTls> {
        self.tls.as_ref()
    }

    /// How long a pooled connection may stay idle.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Whether connections made with `other` may serve requests under `self`: same TLS
    /// settings (as configured) and the same HTTP version. The idle timeout does not
    /// change what a connection is.
    pub fn same_settings(&self, other: &Transport) -> bool {
        let same_tls = match (&self.tls, &other.tls) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_settings(b),
            _ => false,
        };
        same_tls && self.h2 == other.h2
    }

    /// Opens a connection to the backend at `addr` (written `address` in the config):
    /// the TCP connect (`TCP_NODELAY` set), then `preamble` if any, then the TLS
    /// handshake offering `alpn` if the pool has `tls`, all within `timeout`.
    ///
    /// # Errors
    ///
    /// Which step failed, or [`ConnectError::Timeout`].
    pub async fn connect(
        &self,
        addr: SocketAddr,
        address: &str,
        alpn: Alpn,
        preamble: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Stream, ConnectError> {
        let deadline = Instant::now() + timeout;
        let within = |fut| tokio::time::timeout_at(deadline, fut);
        let mut tcp = match within(TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(ConnectError::Connect(e)),
            Err(_) => return Err(ConnectError::Timeout),
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(backend = %addr, error = %e, "TCP_NODELAY failed");
        }
        if let Some(bytes) = preamble {
            match tokio::time::timeout_at(deadline, tcp.write_all(bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(ConnectError::Preamble(e)),
                Err(_) => return Err(ConnectError::Timeout),
            }
        }
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        match tokio::time::timeout_at(deadline, tls.handshake(address, tcp, alpn)).await {
            Ok(Ok(stream)) => Ok(Stream::Tls(Box::new(stream))),
            Ok(Err(e)) => Err(ConnectError::Tls(e)),
            Err(_) => Err(ConnectError::Timeout),
        }
    }
}

/// Every pool's [`Transport`], by pool name: what a configuration needs to reach its
/// backends, built with the configuration (so a reload with an unusable CA file is
/// rejected before anything changes). Cloned to rebuild a table with the same settings
/// (a discovery update).
#[derive(Debug, Default, Clone)]
pub struct Transports {
    pools: HashMap<String, Transport>,
    /// Applied to every transport handed out (`None`: each keeps its own).
    idle_timeout: Option<Duration>,
}

// === impl Transports ===

impl Transports {
    /// The transport of every pool of `config`. Blocking file I/O (CA files).
    ///
    /// # Errors
    ///
    /// Every pool's TLS error (see [`UpstreamTls::load`]).
    pub fn load(config: &Config) -> Result<Self, Vec<TlsError>> {
        let mut pools = HashMap::new();
        let mut errors = Vec::new();
        for p in &config.pools {
            match Transport::load(p) {
                Ok(t) => {
                    pools.insert(p.name.clone(), t);
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Transports {
                pools,
                idle_timeout: None,
            })
        } else {
            Err(errors)
        }
    }

    /// Every transport with pooled connections expiring after `timeout` idle (see
    /// [`Transport::with_idle_timeout`]).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Pool `pool`'s transport: the one loaded, else plain TCP for its HTTP version (a
    /// pool with `tls` and none loaded is a caller's bug: logged, and served plain
    /// rather than not at all).
    pub fn for_pool(&self, pool: &PoolConfig) -> Transport {
        let t = self.pools.get(&pool.name).cloned().unwrap_or_else(|| {
            if pool.tls.is_some() {
                tracing::error!(pool = %pool.name, "pool has tls but no TLS settings were loaded; connecting in plain TCP");
            }
            Transport::plain(pool.upstream_protocol == UpstreamProtocol::H2)
        });
        match self.idle_timeout {
            Some(d) => t.with_idle_timeout(d),
            None => t,
        }
    }

    /// The transport loaded for pool `name`.
    pub fn get(&self, name: &str) -> Option<&Transport> {
        self.pools.get(name)
    }
}

/// A kept pool keeps its transport's identity when its settings did not change.
///
/// Returns `previous` when both describe the same connections (with `next`'s idle
/// timeout, if that is all that changed), else `next` as a new identity. As before
/// transports were part of the table, equal settings keep the TLS client config built
/// first, with its session cache.
pub fn carry_over(previous: Option<&Arc<Transport>>, next: Transport) -> Arc<Transport> {
    match previous {
        Some(p) if p.same_settings(&next) && p.idle_timeout == next.idle_timeout => Arc::clone(p),
        Some(p) if p.same_settings(&next) => Arc::new(Transport {
            idle_timeout: next.idle_timeout,
            ..Transport::clone(p)
        }),
        _ => Arc::new(next),
    }
}
