//! TLS from weir to backends, per pool (`pools.*.tls`).
//!
//! An [`UpstreamTls`] is built from the pool's config off the data path (start-up, `weir
//! check`, every reload, so CA files are re-read) and attached to each backend of the
//! pool with [`apply_upstream`] before the table holding them goes live. New backend connections
//! then run the TLS handshake right after the TCP connect, sending the configured
//! `server_name` (default: the host of the backend's address as written) as SNI and
//! verifying the chain against the pool's `ca` and that name. A handshake failure is a
//! connect failure: nothing was sent, so the request may go to another backend, and the
//! client gets 502 if none is left.
//!
//! The attachment lives in the backend's [`UpstreamPool`], with the pool's HTTP version
//! (`upstream_protocol`), so a backend kept across a reload keeps its idle connections
//! only while these settings stay the same: a change empties the idle queue, and new
//! connections use the new settings. An `h2` pool offers ALPN `h2` only.
//!
//! TCP listeners and health probes use the same settings ([`backend_tls`],
//! [`UpstreamTls::connect_as`]), with the same verification; only the ALPN offered
//! differs ([`Alpn`]): none for relayed bytes, `http/1.1` for HTTP probes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use weir_balance::{Backend, Table};
use weir_config::{Config, UpstreamProtocol, UpstreamTlsConfig};

use super::{provider, read_certificates, TlsError};
use crate::http::UpstreamPool;

/// A pool's TLS client settings.
#[derive(Clone)]
pub struct UpstreamTls {
    /// ALPN of the pool's HTTP version.
    connector: TlsConnector,
    /// ALPN `http/1.1` whatever the pool speaks: HTTP health probes.
    http1: TlsConnector,
    /// No ALPN: TCP listeners and `tcp` checks (the bytes inside are not ours to name).
    bytes: TlsConnector,
    /// `None`: each backend's own host name.
    server_name: Option<ServerName<'static>>,
    /// The pool speaks `h2`: a bare handshake ([`Alpn::Handshake`]) must offer it.
    h2: bool,
    /// The settings this was built from: equal settings keep idle connections.
    config: Arc<UpstreamTlsConfig>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("verify", &self.config.verify)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Reads the pool's CA file and builds the client config (TLS 1.2 and 1.3, ALPN
    /// `h2` when `h2`, else `http/1.1`).
    ///
    /// Blocking file I/O: call it off the runtime's workers.
    ///
    /// # Errors
    ///
    /// An unreadable CA file, one without certificates or with an invalid one, or an
    /// invalid `server_name`; placed at the pool's `tls` entry.
    pub fn load(config: &UpstreamTlsConfig, h2: bool) -> Result<Self, TlsError> {
        let origin = &config.origin;
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::new(origin, format!("TLS setup failed: {e}")))?;
        let client = if config.verify {
            let mut roots = RootCertStore::empty();
            if let Some(ca) = &config.ca {
                for cert in read_certificates(ca, origin, "CA certificates")? {
                    roots.add(cert).map_err(|e| {
                        TlsError::new(
                            origin,
                            format!("invalid CA certificate in {}: {e}", ca.display()),
                        )
                    })?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth()
        };
        // Each ALPN its own config, each with its own session cache: a ticket is never
        // offered under another protocol than the one it was issued for.
        let with_alpn = |alpn: &[&[u8]]| {
            let mut c = client.clone();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            c.resumption = rustls::client::Resumption::default();
            TlsConnector::from(Arc::new(c))
        };
        let http1 = with_alpn(&[b"http/1.1"]);
        let bytes = with_alpn(&[]);
        let connector = if h2 {
            with_alpn(&[b"h2"])
        } else {
            http1.clone()
        };
        let server_name = match &config.server_name {
            None => None,
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|e| {
                TlsError::new(origin, format!("invalid server_name {name:?}: {e}"))
            })?),
        };
        Ok(UpstreamTls {
            connector,
            http1,
            bytes,
            server_name,
            h2,
            config: Arc::new(config.clone()),
        })
    }

    /// The TLS handshake with `backend` over a connected `stream`, for the pool's
    /// HTTP requests.
    pub(crate) async fn connect(
        &self,
        backend: &Backend,
        stream: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        self.connect_as(backend, stream, Alpn::Pool).await
    }

    /// The TLS handshake with `backend` over a connected `stream`, offering `alpn`;
    /// verified as every connection of the pool is. No timeout of its own: the caller
    /// bounds it (the pool's connect timeout, a probe's timeout).
    ///
    /// # Errors
    ///
    /// No usable server name for the backend, a failed handshake or a refused
    /// certificate.
    pub async fn connect_as(
        &self,
        backend: &Backend,
        stream: TcpStream,
        alpn: Alpn,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let connector = match alpn {
            Alpn::Pool => &self.connector,
            Alpn::Http1 => &self.http1,
            Alpn::None => &self.bytes,
            Alpn::Handshake if self.h2 => &self.connector,
            Alpn::Handshake => &self.bytes,
        };
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => host_name(backend.address())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        };
        connector.connect(name, stream).await
    }
}

/// The ALPN protocols a connection to a backend offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// The pool's HTTP version: `h2` for an `h2` pool, else `http/1.1`.
    Pool,
    /// `http/1.1`: HTTP health probes, which speak HTTP/1.1 whatever the pool speaks.
    Http1,
    /// None: TCP relays.
    None,
    /// `tcp` health checks (a bare handshake): `h2` on an `h2` pool, since h2-only
    /// servers (grpc-go, Go's `crypto/tls` with `NextProtos: ["h2"]`) refuse a client
    /// offering nothing else; none otherwise, as a TCP relay would.
    Handshake,
}

/// The TLS settings [`apply_upstream`] attached to `backend`; `None`: plain TCP.
pub fn backend_tls(backend: &Backend) -> Option<Arc<UpstreamTls>> {
    backend
        .extension::<UpstreamPool>()
        .and_then(|p| p.tls.load_full())
}

/// The host part of an address written as `host:port` (`[v6]:port` too), as a TLS name.
fn host_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("backend {address}: no TLS server name ({e}); set tls.server_name"))
}

/// Every pool's [`UpstreamTls`], by pool name.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTlsSet {
    pools: HashMap<String, UpstreamTls>,
}

impl UpstreamTlsSet {
    /// Builds the TLS settings of every pool of `config` that has `tls`.
    ///
    /// # Errors
    ///
    /// Every pool's error (see [`UpstreamTls::load`]).
    pub fn load(config: &Config) -> Result<Self, Vec<TlsError>> {
        let mut pools = HashMap::new();
        let mut errors = Vec::new();
        for p in &config.pools {
            if let Some(tls) = &p.tls {
                match UpstreamTls::load(tls, p.upstream_protocol == UpstreamProtocol::H2) {
                    Ok(t) => {
                        pools.insert(p.name.clone(), t);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(UpstreamTlsSet { pools })
        } else {
            Err(errors)
        }
    }

    /// The settings of pool `name`.
    pub fn get(&self, name: &str) -> Option<&UpstreamTls> {
        self.pools.get(name)
    }
}

/// Attaches each pool's TLS settings (or none) and HTTP version to every backend of
/// `table`. Call before the table goes live, so its first request already connects
/// the right way.
pub fn apply_upstream(table: &Table, set: &UpstreamTlsSet) {
    for pool in table.pools() {
        let tls = set.get(pool.name());
        let h2 = table
            .config()
            .pool(pool.name())
            .is_some_and(|p| p.upstream_protocol == UpstreamProtocol::H2);
        for backend in pool.backends() {
            match backend.extension::<UpstreamPool>() {
                Some(p) => p.set_transport(tls, h2),
                None => {
                    tracing::error!(backend = backend.address(), "backend extension slot taken")
                }
            }
        }
    }
}

impl UpstreamPool {
    /// Switches new connections to `tls` and HTTP/2 or not; idle connections made
    /// with other settings are closed.
    fn set_transport(&self, tls: Option<&UpstreamTls>, h2: bool) {
        let same_tls = match (self.tls.load().as_deref(), tls) {
            (None, None) => true,
            (Some(a), Some(b)) => a.config == b.config,
            _ => false,
        };
        if same_tls && self.h2.load(Ordering::Relaxed) == h2 {
            return;
        }
        self.tls.store(tls.cloned().map(Arc::new));
        self.h2.store(h2, Ordering::Relaxed);
        self.clear_idle();
    }
}

/// `verify: false`: any certificate is accepted (the handshake's signatures are still
/// checked, so the session is at least with the holder of the presented key).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::host_name;
    use rustls_pki_types::ServerName;

    #[test]
    fn backend_address_host_becomes_the_tls_name() {
        assert_eq!(
            host_name("api.internal:8443").expect("dns name"),
            ServerName::try_from("api.internal").expect("name")
        );
        assert_eq!(
            host_name("10.0.0.1:443").expect("ip"),
            ServerName::try_from("10.0.0.1").expect("ip name")
        );
        assert_eq!(
            host_name("[::1]:443").expect("v6"),
            ServerName::try_from("::1").expect("v6 name")
        );
        assert!(host_name("bad_name!:1").is_err());
    }
}
