//! TLS from weir to backends, per pool (`pools.*.tls`).
//!
//! An [`UpstreamTls`] is built from the pool's config off the data path (start-up, `weir
//! check`, every reload, so CA files are re-read) and becomes part of the pool's
//! [`crate::Transport`], which the routing table holds. New backend connections run the
//! TLS handshake right after the TCP connect (and the PROXY header, if any), sending the
//! configured `server_name` (default: the host of the backend's address as written) as
//! SNI and verifying the chain against the pool's `ca` and that name. A handshake
//! failure is a connect failure: nothing was sent, so the request may go to another
//! backend, and the client gets 502 if none is left.
//!
//! HTTP requests, TCP relays and health probes all use the same settings and the same
//! verification; only the ALPN offered differs ([`Alpn`]): the pool's HTTP version for
//! its requests, none for relayed bytes, `http/1.1` for HTTP probes. An `h2` pool offers
//! ALPN `h2` only.
//!
//! [`TlsError`] and the PEM reading live here too, shared with the proxy's listener TLS:
//! both report an unusable file at its entry in the configuration.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use weir_config::{Origin, UpstreamTlsConfig};

/// A certificate, key or CA file that cannot be used, and where the config names it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    origin: Origin,
    message: String,
}

impl TlsError {
    /// An error about the config entry at `origin`.
    pub fn new(origin: &Origin, message: String) -> Self {
        TlsError {
            origin: origin.clone(),
            message,
        }
    }

    /// The same error as a configuration error (`FILE:LINE:COLUMN: FIELD.PATH: message`),
    /// for `weir check` and rejected reloads.
    pub fn config_error(&self) -> weir_config::ConfigError {
        self.origin.error(self.message.clone())
    }
}

/// The crypto provider weir uses everywhere: `ring` (no C toolchain or cmake needed).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file at `path`; at least one. `what` names the file's
/// role in the error (`certificate chain`, `CA certificates`).
///
/// # Errors
///
/// An unreadable file, invalid PEM, or no certificate in it; placed at `origin`.
pub fn read_certificates(
    path: &Path,
    origin: &Origin,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |detail: String| {
        TlsError::new(
            origin,
            format!("cannot read the {what} {}: {detail}", path.display()),
        )
    };
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| fail(pem_error(&e)))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_error(&e)))?;
    if certs.is_empty() {
        return Err(fail(
            "no PEM certificate (BEGIN CERTIFICATE) found".to_owned(),
        ));
    }
    Ok(certs)
}

/// pki-types' PEM errors, in an operator's words.
pub fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => {
            "no PEM item of the expected kind found".to_owned()
        }
        other => format!("invalid PEM: {other:?}"),
    }
}

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
    /// The DER of every CA certificate read, in order: a reload that rewrote the CA
    /// file under the same path has other settings, though its config reads the same.
    roots: Arc<[u8]>,
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
        let mut read_roots = Vec::new();
        let client = if config.verify {
            let mut roots = RootCertStore::empty();
            if let Some(ca) = &config.ca {
                for cert in read_certificates(ca, origin, "CA certificates")? {
                    read_roots.extend_from_slice(&(cert.len() as u64).to_be_bytes());
                    read_roots.extend_from_slice(&cert);
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
            roots: Arc::from(read_roots),
        })
    }

    /// Whether `other` was built from the same settings (then connections made with one
    /// are as good as connections made with the other): the same HTTP version, server
    /// name, verification and trusted certificates. Where the `tls` entry stands in the
    /// file (its origin) and the CA file's path do not count: moving a line or the file
    /// must not close every warm connection, and rewriting the file under the same
    /// path must not keep the old roots.
    pub fn same_settings(&self, other: &UpstreamTls) -> bool {
        self.h2 == other.h2
            && self.config.server_name == other.config.server_name
            && self.config.verify == other.config.verify
            && self.roots == other.roots
    }

    /// The TLS handshake with the backend written `address` in the config, over a
    /// connected `stream`, offering `alpn`; verified as every connection of the pool is.
    /// No timeout of its own: the caller bounds it ([`crate::Transport::connect`]).
    ///
    /// # Errors
    ///
    /// No usable server name for the backend, a failed handshake or a refused
    /// certificate.
    pub async fn handshake(
        &self,
        address: &str,
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
            None => host_name(address)
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

/// The host part of an address written as `host:port` (`[v6]:port` too), as a TLS name.
fn host_name(address: &str) -> Result<ServerName<'static>, String> {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("backend {address}: no TLS server name ({e}); set tls.server_name"))
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
    use super::{host_name, UpstreamTls};
    use rustls_pki_types::ServerName;
    use weir_config::{Origin, UpstreamTlsConfig};

    /// A fresh self-signed CA certificate, as PEM.
    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("self-signed").pem()
    }

    fn settings(ca: &std::path::Path, line: usize) -> UpstreamTlsConfig {
        UpstreamTlsConfig {
            server_name: None,
            ca: Some(ca.to_path_buf()),
            verify: true,
            origin: Origin {
                file: "weir.yaml".into(),
                line,
                column: 5,
                path: "pools.app.tls".into(),
            },
        }
    }

    #[test]
    fn settings_are_the_same_by_what_they_trust_not_by_where_they_are_written() {
        let dir = std::env::temp_dir().join(format!("weir-upstream-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_pem()).expect("write CA");
        let first = UpstreamTls::load(&settings(&ca, 3), false).expect("load");
        let moved = UpstreamTls::load(&settings(&ca, 9), false).expect("load");
        assert!(
            first.same_settings(&moved),
            "moving the tls entry changes nothing"
        );
        assert!(!first.same_settings(&UpstreamTls::load(&settings(&ca, 3), true).expect("h2")));
        // The CA file rewritten under the same path (a CA rotation, then SIGHUP).
        std::fs::write(&ca, ca_pem()).expect("rewrite CA");
        let rotated = UpstreamTls::load(&settings(&ca, 3), false).expect("load");
        assert!(
            !first.same_settings(&rotated),
            "a rotated CA must be taken up"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

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
